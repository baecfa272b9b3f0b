// End-to-end: the real clients from Debian (skopeo, podman, buildah, containerd's ctr, and the
// Docker engine of docker.io) against one Stowage server with token authentication on: the
// containers clients and docker log in, ctr passes --user. One shared body per operation, run with every client; plain
// HTTP checks of what the registry then holds (with Basic credentials, which this server also
// takes on /v2/). Then each kind of credential: user, robot account, personal access token,
// anonymous. See ../shared/CLIENTS.md for the client facts behind the invocations.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createClientEnv,
  ensureTools,
  run,
  sha256File,
  startContainerd,
  startDocker,
  type ClientEnv,
  type RunningContainerd,
  type RunningDocker,
} from '../support/clients.js';
import {
  BIG_FILE_SIZE,
  buildFixtures,
  MEDIA,
  readLayoutImage,
  type FixtureImage,
  type Fixtures,
  type ImageIndex,
  type ImageManifest,
} from '../support/images.js';
import { startStowage, type RunningStowage } from '../support/stowage.js';
import { e2eBackendEnv } from '../support/e2e-backend.js';
import { basicAuth, manageRegistry } from '../support/registry-admin.js';
import * as http from './registry-http.js';

type Kind = 'single' | 'multi';
type Format = 'oci' | 'docker';
interface Target {
  name: string;
  tag: string;
}
interface Pulled {
  /** Manifest digest of the image as the client holds it after the pull. */
  digest: string;
  /** Diff IDs the client recorded, when it exposes them. */
  diffIds?: string[];
}
interface ClientDriver {
  name: 'skopeo' | 'podman' | 'buildah' | 'ctr' | 'docker';
  /** The manifest formats it can push (all by default). */
  formats?: Format[];
  /** The client pushes the fixture's bytes unchanged: the digest must equal the fixture's. */
  exact: boolean;
  /** The pushed layers carry the fixture's files unchanged (same diff IDs). */
  sameContent: boolean;
  /** Pushes an image of this kind in this format; returns the manifest digest the client reports. */
  push(kind: Kind, format: Format, to: Target): Promise<string>;
  /** Pulls the image back into the client's own (separate) store. */
  pull(from: Target): Promise<Pulled>;
}

let registry: RunningStowage;
/** The registry as the plain HTTP checks reach it (as the admin). */
let checks: http.Registry;
let env: ClientEnv;
let fx: Fixtures;
let containerd: RunningContainerd;
/** Two Docker engines: one pushes, the other pulls (so a pull downloads every layer). */
let dockerPush: RunningDocker;
let dockerPull: RunningDocker;

const runId = randomBytes(3).toString('hex');
const ADMIN = { username: 'admin', password: `admin-${randomBytes(8).toString('hex')}` };
/** The user the clients log in as: maintainer of the run's project. */
const USER = { username: 'e2e-ci', password: `ci-${randomBytes(8).toString('hex')}` };
const PROJECT = `e2e-${runId}`;
let counter = 0;
const next = (): number => ++counter;
/** A repository name used by exactly one test. */
const repo = (label: string): string => `${PROJECT}/${label}-${next()}`;
const hex = (digest: string): string => digest.replace(/^sha256:/, '');
const ref = (t: Target): string => `${registry.host}/${t.name}:${t.tag}`;
const tmpPath = (label: string): string => join(env.dir, 'tmp', `${label}-${next()}`);
const readDigestFile = (path: string): string => readFileSync(path, 'utf8').trim();

const manage = (method: string, path: string, body?: unknown) => manageRegistry(registry, ADMIN, method, path, body);

function fixture(kind: Kind, format: Format): FixtureImage {
  if (format === 'oci') return kind === 'single' ? fx.single : fx.multi;
  return kind === 'single' ? fx.singleDocker : fx.multiDocker;
}

function once<K, V>(fn: (key: K) => Promise<V>): (key: K) => Promise<V> {
  const cache = new Map<K, Promise<V>>();
  return (key) => {
    let v = cache.get(key);
    if (!v) {
      v = fn(key);
      cache.set(key, v);
      v.catch(() => cache.delete(key));
    }
    return v;
  };
}

// ---------------------------------------------------------------------------------------------
// The clients
// ---------------------------------------------------------------------------------------------

const skopeo: ClientDriver = {
  name: 'skopeo',
  exact: true,
  sameContent: true,
  async push(kind, format, to) {
    const digestFile = tmpPath('digest');
    await env.skopeo([
      'copy',
      '--quiet',
      '--dest-tls-verify=false',
      '--digestfile',
      digestFile,
      ...(format === 'docker' ? ['--format', 'v2s2'] : []),
      fixture(kind, 'oci').ref,
      `docker://${ref(to)}`,
    ]);
    return readDigestFile(digestFile);
  },
  async pull(from) {
    // dir: keeps the manifest exactly as served (oci: would convert Docker manifests).
    const dir = tmpPath('pulled');
    await env.skopeo(['copy', '--quiet', '--src-tls-verify=false', `docker://${ref(from)}`, `dir:${dir}`]);
    const raw = readFileSync(join(dir, 'manifest.json'));
    const manifest = JSON.parse(raw.toString('utf8')) as ImageManifest;
    for (const d of http.blobsOf(manifest)) expect(await sha256File(join(dir, hex(d.digest))), `pulled blob ${d.digest}`).toBe(d.digest);
    const config = JSON.parse(readFileSync(join(dir, hex(manifest.config.digest)), 'utf8')) as { rootfs: { diff_ids: string[] } };
    rmSync(dir, { recursive: true, force: true });
    const inspected = await env.skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref(from)}`]);
    expect(http.sha256(Buffer.from(inspected.stdout, 'utf8')), 'sha256 of skopeo inspect --raw').toBe(http.sha256(raw));
    return { digest: http.sha256(raw), diffIds: config.rootfs.diff_ids };
  },
};

// podman: load the fixture (oci: layout) into its store, push from there. The push recompresses
// the layers, so the digests differ from the fixture's, but the content (diff IDs) is the same.
const podmanLoad = once(async (kind: Kind): Promise<string> => {
  const image = fixture(kind, 'oci');
  await env.podman(['pull', '--quiet', image.ref]);
  return `localhost${image.layout}:${image.tag}`;
});

const podman: ClientDriver = {
  name: 'podman',
  exact: false,
  sameContent: true,
  async push(kind, format, to) {
    const local = await podmanLoad(kind);
    const digestFile = tmpPath('digest');
    await env.podman([
      'push',
      '--quiet',
      '--tls-verify=false',
      '--format',
      format === 'oci' ? 'oci' : 'v2s2',
      '--digestfile',
      digestFile,
      local,
      `docker://${ref(to)}`,
    ]);
    return readDigestFile(digestFile);
  },
  async pull(from) {
    const image = ref(from);
    await env.podman(['pull', '--quiet', '--tls-verify=false', image], { store: 'pull' });
    const [info] = JSON.parse((await env.podman(['image', 'inspect', image], { store: 'pull' })).stdout) as {
      Digest: string;
      RootFS: { Layers: string[] };
    }[];
    await env.podman(['rmi', '--force', image], { store: 'pull' });
    if (!info) throw new Error(`podman image inspect ${image} returned nothing`);
    return { digest: info.Digest, diffIds: info.RootFS.Layers };
  },
};

// buildah: build from scratch (one commit per layer), then push.
const buildahFiles: Record<Kind, string[]> = { single: ['hello.txt'], multi: ['a.txt', 'random.bin', 'c.txt'] };
const buildahBuild = once(async (key: `${Kind}-${Format}`): Promise<string> => {
  const [kind, format] = key.split('-') as [Kind, Format];
  let from = 'scratch';
  for (const [i, file] of buildahFiles[kind].entries()) {
    const container = `bctr-${key}-${i}`;
    await env.buildah(['from', '--quiet', '--name', container, from]);
    await env.buildah(['copy', '--quiet', container, join(fx.dir, 'src', file), `/${file}`]);
    if (i === 0) await env.buildah(['config', '--cmd', `/${file}`, '--author', 'stowage-tests', container]);
    const image = `localhost/buildah-${key}-${i}:latest`;
    await env.buildah(['commit', '--quiet', '--rm', '--format', format, '--timestamp', '1700000000', container, image]);
    from = image;
  }
  return from;
});

const buildah: ClientDriver = {
  name: 'buildah',
  exact: false,
  sameContent: false,
  async push(kind, format, to) {
    const image = await buildahBuild(`${kind}-${format}`);
    const digestFile = tmpPath('digest');
    await env.buildah([
      'push',
      '--quiet',
      '--tls-verify=false',
      '--format',
      format === 'oci' ? 'oci' : 'v2s2',
      '--digestfile',
      digestFile,
      image,
      `docker://${ref(to)}`,
    ]);
    return readDigestFile(digestFile);
  },
  async pull(from) {
    const image = ref(from);
    await env.buildah(['pull', '--quiet', '--tls-verify=false', `docker://${image}`], { store: 'pull' });
    const info = JSON.parse((await env.buildah(['inspect', '--type', 'image', image], { store: 'pull' })).stdout) as {
      FromImageDigest: string;
      OCIv1: { rootfs: { diff_ids: string[] } };
    };
    await env.buildah(['rmi', '--force', image], { store: 'pull' });
    return { digest: info.FromImageDigest, diffIds: info.OCIv1.rootfs.diff_ids };
  },
};

// ctr: import the fixture layout (exact bytes) into a fresh namespace and push it; pull into
// another fresh namespace (content stores are isolated per namespace, so the pull downloads).
const layoutTar = once(async (layout: string): Promise<string> => {
  const tar = `${layout}.tar`;
  await run('tar', ['-C', layout, '-cf', tar, '.']);
  return tar;
});

async function ctrImageDigest(namespace: string, image: string): Promise<string> {
  const { stdout } = await containerd.ctr(['images', 'ls', `name==${image}`], { namespace });
  const line = stdout.split('\n').find((l) => l.startsWith(`${image} `));
  const digest = line?.split(/\s+/)[2];
  if (!digest) throw new Error(`ctr does not list ${image}:\n${stdout}`);
  return digest;
}

async function ctrContent(namespace: string, digest: string): Promise<Buffer> {
  const { stdout } = await containerd.ctr(['content', 'get', digest], { namespace });
  return Buffer.from(stdout, 'utf8');
}

const ctr: ClientDriver = {
  name: 'ctr',
  exact: true,
  sameContent: true,
  async push(kind, format, to) {
    const image = fixture(kind, format);
    const tar = await layoutTar(image.layout);
    const namespace = `push-${next()}`;
    const local = `stowage.test/fixture-${kind}-${format}`;
    await containerd.ctr(['images', 'import', '--base-name', local, tar], { namespace });
    const digest = await ctrImageDigest(namespace, `${local}:latest`);
    await containerd.ctr(['images', 'push', '--plain-http', '--user', `${USER.username}:${USER.password}`, ref(to), `${local}:latest`], { namespace });
    return digest;
  },
  async pull(from) {
    const namespace = `pull-${next()}`;
    await containerd.ctr(['images', 'pull', '--plain-http', '--user', `${USER.username}:${USER.password}`, ref(from)], { namespace });
    const digest = await ctrImageDigest(namespace, ref(from));
    const manifest = JSON.parse((await ctrContent(namespace, digest)).toString('utf8')) as ImageManifest;
    const config = JSON.parse((await ctrContent(namespace, manifest.config.digest)).toString('utf8')) as { rootfs: { diff_ids: string[] } };
    return { digest, diffIds: config.rootfs.diff_ids };
  },
};

// docker: load the fixture into the engine (as a docker-archive that skopeo writes), tag it and
// push it. Docker pushes Docker v2 schema 2 manifests only, and recompresses the layers.
const dockerLoad = once(async (kind: Kind): Promise<string> => {
  const tar = tmpPath(`docker-${kind}.tar`);
  const local = `stowage.test/fixture-${kind}:latest`;
  // skopeo reads only OCI manifests from an OCI layout; docker-archive is Docker's format anyway.
  await env.skopeo(['copy', '--quiet', fixture(kind, 'oci').ref, `docker-archive:${tar}:${local}`]);
  await dockerPush.docker(['load', '--quiet', '--input', tar]);
  rmSync(tar, { force: true });
  return local;
});

async function dockerPullImage(from: Target): Promise<Pulled> {
  const image = ref(from);
  await dockerPull.docker(['pull', '--quiet', image]);
  const [info] = JSON.parse((await dockerPull.docker(['image', 'inspect', image])).stdout) as { RepoDigests: string[]; RootFS: { Layers: string[] } }[];
  await dockerPull.docker(['rmi', image]);
  const digest = info?.RepoDigests.find((d) => d.startsWith(`${registry.host}/${from.name}@`))?.split('@')[1];
  if (!info || !digest) throw new Error(`docker image inspect ${image} names no digest from the registry: ${JSON.stringify(info?.RepoDigests)}`);
  return { digest, diffIds: info.RootFS.Layers };
}

const docker: ClientDriver = {
  name: 'docker',
  formats: ['docker'],
  exact: false,
  sameContent: true,
  async push(kind, _format, to) {
    const local = await dockerLoad(kind);
    await dockerPush.docker(['tag', local, ref(to)]);
    const { stdout } = await dockerPush.docker(['push', ref(to)]);
    await dockerPush.docker(['rmi', ref(to)]);
    const digest = /digest: (sha256:[0-9a-f]{64})/.exec(stdout)?.[1];
    if (!digest) throw new Error(`docker push printed no digest:\n${stdout}`);
    return digest;
  },
  pull: dockerPullImage,
};

const clients: ClientDriver[] = [skopeo, podman, buildah, ctr, docker];
const cases: { kind: Kind; format: Format }[] = [
  { kind: 'single', format: 'oci' },
  { kind: 'single', format: 'docker' },
  { kind: 'multi', format: 'oci' },
  { kind: 'multi', format: 'docker' },
];

// ---------------------------------------------------------------------------------------------
// Shared checks
// ---------------------------------------------------------------------------------------------

interface Config {
  rootfs: { diff_ids: string[] };
}

/** Checks that the registry serves `digest` at name:tag and by digest, with all its blobs. */
async function expectImageInRegistry(
  target: Target,
  digest: string,
  mediaType: string,
): Promise<{ manifest: ImageManifest; config: Config }> {
  const byTag = await http.getManifest(checks, target.name, target.tag);
  expect(byTag.status, `GET /v2/${target.name}/manifests/${target.tag}`).toBe(200);
  expect(byTag.digest, 'Docker-Content-Digest').toBe(digest);
  expect(http.sha256(byTag.body)).toBe(digest);
  expect(byTag.contentType).toBe(mediaType);
  const head = await http.headManifest(checks, target.name, digest);
  expect(head.status, `HEAD /v2/${target.name}/manifests/${digest}`).toBe(200);
  expect(head.digest).toBe(digest);
  const manifest = JSON.parse(byTag.body.toString('utf8')) as ImageManifest;
  for (const d of http.blobsOf(manifest)) {
    const blob = await http.headBlob(checks, target.name, d.digest);
    expect({ blob: d.digest, status: blob.status, size: blob.size }).toEqual({ blob: d.digest, status: 200, size: d.size });
  }
  const configBlob = await http.getBlob(checks, target.name, manifest.config.digest);
  expect(configBlob.status).toBe(200);
  expect(http.sha256(configBlob.body)).toBe(manifest.config.digest);
  return { manifest, config: JSON.parse(configBlob.body.toString('utf8')) as Config };
}

/** Streams the largest layer and checks its digest, size, diff ID and the 64 MiB file inside. */
async function expectBigLayer(target: Target, manifest: ImageManifest, config: Config): Promise<string> {
  const big = manifest.layers.reduce((a, b) => (b.size > a.size ? b : a));
  const at = manifest.layers.indexOf(big);
  expect(big.size).toBeGreaterThan(BIG_FILE_SIZE);
  const check = await http.streamBlob(checks, target.name, big.digest, true);
  expect(check.status).toBe(200);
  expect(check.size).toBe(big.size);
  expect(check.digest).toBe(big.digest);
  expect(check.diffId).toBe(config.rootfs.diff_ids[at]);
  expect(check.files?.get(fx.multi.bigLayer.file)).toEqual({ size: BIG_FILE_SIZE, digest: fx.multi.bigLayer.fileDigest });
  return big.digest;
}

async function pushAndPull(client: ClientDriver, kind: Kind, format: Format): Promise<void> {
  const target = { name: repo(`${client.name}-${kind}-${format}`), tag: 'v1' };
  const source = fixture(kind, format);
  const mediaType = format === 'oci' ? MEDIA.ociManifest : MEDIA.dockerManifest;

  const pushed = await client.push(kind, format, target);
  expect(pushed).toMatch(/^sha256:[0-9a-f]{64}$/);
  if (client.exact) expect(pushed, 'pushed digest = fixture digest').toBe(source.digest);

  const { manifest, config } = await expectImageInRegistry(target, pushed, mediaType);
  expect(manifest.layers).toHaveLength(kind === 'single' ? 1 : 3);
  if (client.sameContent) expect(config.rootfs.diff_ids).toEqual(source.diffIds);
  if (kind === 'multi') {
    const big = await expectBigLayer(target, manifest, config);
    if (client.exact) expect(big).toBe(fx.multi.bigLayer.digest);
  }

  const pulled = await client.pull(target);
  expect(pulled.digest, 'digest after pulling back').toBe(pushed);
  if (pulled.diffIds) expect(pulled.diffIds).toEqual(config.rootfs.diff_ids);
}

// ---------------------------------------------------------------------------------------------
// Setup
// ---------------------------------------------------------------------------------------------

beforeAll(async () => {
  await ensureTools('skopeo', 'podman', 'buildah', 'ctr', 'containerd', 'umoci', 'unshare', 'dockerd', 'docker');
  registry = await startStowage({ env: { ...(await e2eBackendEnv('e2e-clients')), STOWAGE_AUTH: 'token', STOWAGE_ADMIN_PASSWORD: ADMIN.password, STOWAGE_AUTH_BASIC: 'true' } });
  checks = { url: registry.url, authorization: basicAuth(ADMIN) };
  await manage('POST', '/users', { name: USER.username, password: USER.password });
  await manage('POST', '/projects', { name: PROJECT });
  await manage('PUT', `/projects/${PROJECT}/members/${USER.username}`, { role: 'maintainer' });
  env = await createClientEnv({ insecureRegistries: [registry.host] });
  // The containers clients share the auth file (REGISTRY_AUTH_FILE): each logs in to it.
  for (const client of ['podman', 'skopeo', 'buildah'] as const) {
    const { stdout } = await env[client](['login', '--tls-verify=false', '--username', USER.username, '--password-stdin', registry.host], { input: `${USER.password}\n` });
    expect(stdout, `${client} login`).toMatch(/Login Succeeded/);
  }
  mkdirSync(join(env.dir, 'tmp'), { recursive: true });
  [fx, containerd, dockerPush, dockerPull] = await Promise.all([
    buildFixtures(env),
    startContainerd(env, join(env.dir, 'ctd')),
    startDocker(env, join(env.dir, 'dk1')),
    startDocker(env, join(env.dir, 'dk2')),
  ]);
  for (const engine of [dockerPush, dockerPull]) {
    const { stdout } = await engine.docker(['login', '--username', USER.username, '--password-stdin', registry.host], { input: `${USER.password}\n` });
    expect(stdout, 'docker login').toMatch(/Login Succeeded/);
  }
});

afterAll(async () => {
  await Promise.all([containerd?.stop(), dockerPush?.stop(), dockerPull?.stop()]);
  await registry?.stop();
  await env?.cleanup();
  if (registry?.dataDir && existsSync(registry.dataDir)) rmSync(registry.dataDir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

for (const client of clients) {
  describe(client.name, () => {
    for (const { kind, format } of cases.filter((c) => client.formats?.includes(c.format) ?? true)) {
      it(`pushes and pulls back the ${kind}-layer image (${format} format)`, async () => {
        await pushAndPull(client, kind, format);
      });
    }
  });
}

describe('skopeo', () => {
  it('lists tags', async () => {
    const name = repo('tags');
    const tags = ['v2', 'latest', 'v1', '1.0.0'];
    for (const tag of tags) {
      await env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', fx.single.ref, `docker://${registry.host}/${name}:${tag}`]);
    }
    const { stdout } = await env.skopeo(['list-tags', '--tls-verify=false', `docker://${registry.host}/${name}`]);
    const listed = JSON.parse(stdout) as { Repository: string; Tags: string[] };
    expect(listed.Repository).toBe(`${registry.host}/${name}`);
    expect([...listed.Tags].sort()).toEqual([...tags].sort());
    const api = await http.getJson<{ name: string; tags: string[] }>(checks, `/v2/${name}/tags/list`);
    expect(api.status).toBe(200);
    expect(api.json?.name).toBe(name);
    expect([...(api.json?.tags ?? [])].sort()).toEqual([...tags].sort());
  });

  it('deletes a manifest', async () => {
    const target = { name: repo('delete'), tag: 'v1' };
    await env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', fx.single.ref, `docker://${ref(target)}`]);
    expect((await http.headManifest(checks, target.name, target.tag)).status).toBe(200);

    await env.skopeo(['delete', '--tls-verify=false', `docker://${ref(target)}`]);

    const byTag = await http.getManifest(checks, target.name, target.tag);
    expect(byTag.status, `GET /v2/${target.name}/manifests/${target.tag} after delete`).toBe(404);
    const byDigest = await http.headManifest(checks, target.name, fx.single.digest);
    expect(byDigest.status, `HEAD /v2/${target.name}/manifests/${fx.single.digest} after delete`).toBe(404);
    await expect(env.skopeo(['inspect', '--raw', '--tls-verify=false', `docker://${ref(target)}`])).rejects.toThrow(/manifest unknown|not found|404/i);
  });

  it('copies a multi-platform index with --all', async () => {
    const target = { name: repo('index'), tag: 'v1' };
    const digestFile = tmpPath('digest');
    await env.skopeo(['copy', '--quiet', '--all', '--dest-tls-verify=false', '--digestfile', digestFile, fx.index.ref, `docker://${ref(target)}`]);
    expect(readDigestFile(digestFile)).toBe(fx.index.digest);

    const index = await http.getManifest(checks, target.name, target.tag);
    expect(index.status).toBe(200);
    expect(index.digest).toBe(fx.index.digest);
    expect(http.sha256(index.body)).toBe(fx.index.digest);
    expect(index.contentType).toBe(MEDIA.ociIndex);
    for (const child of fx.index.children) {
      const head = await http.headManifest(checks, target.name, child.digest);
      expect({ platform: child.platform, status: head.status, digest: head.digest }).toEqual({ platform: child.platform, status: 200, digest: child.digest });
      const manifest = JSON.parse((await http.getManifest(checks, target.name, child.digest)).body.toString('utf8')) as ImageManifest;
      for (const d of http.blobsOf(manifest)) expect((await http.headBlob(checks, target.name, d.digest)).status).toBe(200);
    }

    // And back: the whole index into an OCI layout, byte for byte.
    const layout = tmpPath('index-back');
    await env.skopeo(['copy', '--quiet', '--all', '--src-tls-verify=false', `docker://${ref(target)}`, `oci:${layout}:back`]);
    const back = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as ImageIndex;
    expect(back.manifests.map((m) => m.digest)).toEqual([fx.index.digest]);
    for (const child of fx.index.children) expect(existsSync(join(layout, 'blobs', 'sha256', hex(child.digest)))).toBe(true);
  });

  it('pushes an OCI 1.1 artifact, listed by the referrers API', async () => {
    const name = repo('artifact');
    await env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', fx.single.ref, `docker://${registry.host}/${name}:v1`]);
    const digestFile = tmpPath('digest');
    await env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', '--digestfile', digestFile, fx.artifact.ref, `docker://${registry.host}/${name}:sbom`]);
    expect(readDigestFile(digestFile)).toBe(fx.artifact.digest);

    const stored = await http.getManifest(checks, name, 'sbom');
    expect(stored.status).toBe(200);
    expect(stored.digest).toBe(fx.artifact.digest);
    expect(http.sha256(stored.body)).toBe(fx.artifact.digest);
    expect(stored.contentType).toBe(MEDIA.ociManifest);
    const emptyConfig = await http.getBlob(checks, name, fx.artifact.manifest.config.digest);
    expect(emptyConfig.status).toBe(200);
    expect(emptyConfig.body.toString('utf8')).toBe('{}');

    const listed = await http.referrers(checks, name, fx.single.digest);
    expect(listed.status, `GET /v2/${name}/referrers/${fx.single.digest}: ${listed.text.slice(0, 300)}`).toBe(200);
    expect(listed.contentType?.split(';')[0]).toBe(MEDIA.ociIndex);
    expect(listed.index?.schemaVersion).toBe(2);
    expect(listed.index?.manifests).toEqual([
      expect.objectContaining({ mediaType: MEDIA.ociManifest, digest: fx.artifact.digest, size: fx.artifact.size, artifactType: fx.artifact.artifactType }),
    ]);

    // Filtering, if the registry applies it, must exclude other artifact types.
    const filtered = await http.referrers(checks, name, fx.single.digest, 'application/vnd.stowage.test.other');
    expect(filtered.status).toBe(200);
    if (filtered.filtersApplied?.split(',').map((s) => s.trim()).includes('artifactType')) expect(filtered.index?.manifests).toEqual([]);
    else expect(filtered.index?.manifests).toHaveLength(1);

    // A digest nothing refers to: an empty index, not an error.
    const none = await http.referrers(checks, name, fx.multi.digest);
    expect(none.status).toBe(200);
    expect(none.index?.manifests).toEqual([]);

    // And the artifact copies back unchanged.
    const layout = tmpPath('artifact-back');
    await env.skopeo(['copy', '--quiet', '--src-tls-verify=false', `docker://${registry.host}/${name}:sbom`, `oci:${layout}:back`]);
    expect(readLayoutImage(layout, 'back').digest).toBe(fx.artifact.digest);
  });

  it('serves 8 concurrent pushes and pulls to distinct repositories', { timeout: 240_000 }, async () => {
    const jobs = Array.from({ length: 8 }, (_, i) => ({
      target: { name: repo(`parallel-${i}`), tag: 'v1' },
      format: (i % 2 === 0 ? 'oci' : 'docker') as Format,
    }));
    const pushed = await Promise.all(jobs.map((j) => skopeo.push('multi', j.format, j.target)));
    for (const [i, j] of jobs.entries()) {
      const expected = fixture('multi', j.format).digest;
      expect(pushed[i]).toBe(expected);
      const head = await http.headManifest(checks, j.target.name, j.target.tag);
      expect({ status: head.status, digest: head.digest }).toEqual({ status: 200, digest: expected });
      const big = await http.headBlob(checks, j.target.name, fx.multi.bigLayer.digest);
      expect({ status: big.status, size: big.size }).toEqual({ status: 200, size: fx.multi.bigLayer.size });
    }
    const pulled = await Promise.all(jobs.map((j) => skopeo.pull(j.target)));
    expect(pulled.map((p) => p.digest)).toEqual(jobs.map((j) => fixture('multi', j.format).digest));
  });
});

describe('ctr', () => {
  it('pulls a multi-platform index with --all-platforms and pushes it to another repository', async () => {
    const source = { name: repo('ctr-index-src'), tag: 'v1' };
    const dest = { name: repo('ctr-index-dest'), tag: 'v1' };
    await env.skopeo(['copy', '--quiet', '--all', '--dest-tls-verify=false', fx.index.ref, `docker://${ref(source)}`]);

    const namespace = `index-${next()}`;
    await containerd.ctr(['images', 'pull', '--plain-http', '--user', `${USER.username}:${USER.password}`, '--all-platforms', ref(source)], { namespace });
    expect(await ctrImageDigest(namespace, ref(source))).toBe(fx.index.digest);
    await containerd.ctr(['images', 'push', '--plain-http', '--user', `${USER.username}:${USER.password}`, ref(dest), ref(source)], { namespace });

    const index = await http.headManifest(checks, dest.name, dest.tag);
    expect({ status: index.status, digest: index.digest }).toEqual({ status: 200, digest: fx.index.digest });
    for (const child of fx.index.children) {
      const head = await http.headManifest(checks, dest.name, child.digest);
      expect({ platform: child.platform, status: head.status, digest: head.digest }).toEqual({ platform: child.platform, status: 200, digest: child.digest });
    }
  });
});

describe('docker', () => {
  it('pulls an OCI image pushed by skopeo, with the same digest and layers', async () => {
    const target = { name: repo('docker-oci'), tag: 'v1' };
    await env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', fx.multi.ref, `docker://${ref(target)}`]);
    const pulled = await dockerPullImage(target);
    expect(pulled).toEqual({ digest: fx.multi.digest, diffIds: fx.multi.diffIds });
  });

  it('login refuses a wrong password and accepts the right one', async () => {
    const config = tmpPath('docker-config');
    const login = (password: string) =>
      dockerPull.docker(['--config', config, 'login', '--username', USER.username, '--password-stdin', registry.host], { input: `${password}\n` });
    await expect(login('wrong-password')).rejects.toThrow(/unauthorized|incorrect username or password|401/i);
    expect((await login(USER.password)).stdout).toMatch(/Login Succeeded/);
    // Docker keeps the refresh token of the OAuth2 password grant, not the password.
    const saved = (JSON.parse(readFileSync(join(config, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string; identitytoken?: string }> }).auths[registry.host];
    expect(Buffer.from(saved!.auth, 'base64').toString()).toBe(`${USER.username}:`);
    expect(saved!.identitytoken).toMatch(/\S{20,}/);
    expect(JSON.stringify(saved)).not.toContain(USER.password);
    // ...and that token is what the next pull authenticates with.
    const target = { name: repo('docker-login'), tag: 'v1' };
    await env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', fx.single.ref, `docker://${ref(target)}`]);
    await dockerPull.docker(['--config', config, 'pull', '--quiet', ref(target)]);
    await dockerPull.docker(['rmi', ref(target)]);
  });
});

// ---------------------------------------------------------------------------------------------
// Logins and each kind of credential
// ---------------------------------------------------------------------------------------------

describe('login', () => {
  for (const client of ['podman', 'skopeo', 'buildah'] as const) {
    it(`${client} login refuses a wrong password and accepts the right one (its own auth file)`, async () => {
      const authfile = tmpPath(`${client}-auth.json`);
      const login = (password: string) =>
        env[client](['login', '--authfile', authfile, '--tls-verify=false', '--username', USER.username, '--password-stdin', registry.host], { input: `${password}\n` });
      await expect(login('wrong-password')).rejects.toThrow(/unauthorized|invalid username( or |\/)password|401/i);
      expect((await login(USER.password)).stdout).toMatch(/Login Succeeded/);
      const auths = (JSON.parse(readFileSync(authfile, 'utf8')) as { auths: Record<string, { auth: string }> }).auths;
      expect(Buffer.from(auths[registry.host]!.auth, 'base64').toString()).toBe(`${USER.username}:${USER.password}`);
    });
  }
});

describe('credentials', () => {
  it('a robot account pushes with skopeo and pulls with podman; outside its permissions it is refused', async () => {
    const created = await manage('POST', '/robots', { name: `ci-${runId}`, project: PROJECT, permissions: [`repository:${PROJECT}/robot-*:pull,push`] });
    const robot = `${created.robot.name as string}:${created.secret as string}`;
    const target = { name: repo('robot-push'), tag: 'v1' };
    const digestFile = tmpPath('digest');
    await env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', robot, '--digestfile', digestFile, fx.single.ref, `docker://${ref(target)}`]);
    expect(readDigestFile(digestFile)).toBe(fx.single.digest);
    const authfile = tmpPath('robot-auth.json');
    await env.podman(['login', '--authfile', authfile, '--tls-verify=false', '--username', created.robot.name, '--password-stdin', registry.host], { input: `${created.secret}\n` });
    await env.podman(['pull', '--quiet', '--authfile', authfile, '--tls-verify=false', ref(target)], { store: 'robot' });
    await expect(
      env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', robot, fx.single.ref, `docker://${registry.host}/${repo('elsewhere')}:v1`]),
    ).rejects.toThrow(/unauthorized|denied|authentication required/i);
  });

  it('a personal access token is the password for ctr --user and skopeo, within its scopes', async () => {
    const created = await manage('POST', '/tokens', { name: 'e2e', user: USER.username, scopes: [`repository:${PROJECT}/**:pull`] });
    const pat = `${USER.username}:${created.secret as string}`;
    const source = { name: repo('pat'), tag: 'v1' };
    await env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', fx.single.ref, `docker://${ref(source)}`]);
    const namespace = `pat-${next()}`;
    await containerd.ctr(['images', 'pull', '--plain-http', '--user', pat, ref(source)], { namespace });
    expect(await ctrImageDigest(namespace, ref(source))).toBe(fx.single.digest);
    await env.skopeo(['inspect', '--raw', '--tls-verify=false', '--creds', pat, `docker://${ref(source)}`]);
    // Pull-only: pushing with it is refused.
    await expect(
      containerd.ctr(['images', 'push', '--plain-http', '--user', pat, `${registry.host}/${repo('pat-push')}:v1`, ref(source)], { namespace }),
    ).rejects.toThrow(/unauthorized|denied|insufficient_scope|401|403/i);
  });

  it('anonymous clients pull from a public project only, and never push', async () => {
    const open = `${PROJECT}-pub`;
    await manage('POST', '/projects', { name: open, public: true });
    await env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', `${ADMIN.username}:${ADMIN.password}`, fx.single.ref, `docker://${registry.host}/${open}/app:v1`]);
    const layout = tmpPath('anonymous');
    await env.skopeo(['copy', '--quiet', '--src-tls-verify=false', '--src-no-creds', `docker://${registry.host}/${open}/app:v1`, `oci:${layout}:v1`]);
    expect(readLayoutImage(layout, 'v1').digest).toBe(fx.single.digest);
    const namespace = `anon-${next()}`;
    await containerd.ctr(['images', 'pull', '--plain-http', `${registry.host}/${open}/app:v1`], { namespace });
    const secret = { name: repo('private'), tag: 'v1' };
    await env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', fx.single.ref, `docker://${ref(secret)}`]);
    await expect(env.skopeo(['copy', '--quiet', '--src-tls-verify=false', '--src-no-creds', `docker://${ref(secret)}`, `oci:${tmpPath('denied')}:v1`])).rejects.toThrow(
      /unauthorized|authentication required|denied/i,
    );
    await expect(
      env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', '--dest-no-creds', fx.single.ref, `docker://${registry.host}/${open}/anon:v1`]),
    ).rejects.toThrow(/unauthorized|authentication required|denied/i);
  });

  it('a reader pulls but cannot push', async () => {
    const reader = { username: `reader-${runId}`, password: `reader-${randomBytes(6).toString('hex')}` };
    await manage('POST', '/users', { name: reader.username, password: reader.password });
    await manage('PUT', `/projects/${PROJECT}/members/${reader.username}`, { role: 'reader' });
    const source = { name: repo('read'), tag: 'v1' };
    await env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', fx.single.ref, `docker://${ref(source)}`]);
    const creds = `${reader.username}:${reader.password}`;
    await env.skopeo(['copy', '--quiet', '--src-tls-verify=false', '--src-creds', creds, `docker://${ref(source)}`, `oci:${tmpPath('reader')}:v1`]);
    await expect(
      env.skopeo(['copy', '--quiet', '--dest-tls-verify=false', '--dest-creds', creds, fx.single.ref, `docker://${registry.host}/${repo('reader-push')}:v1`]),
    ).rejects.toThrow(/unauthorized|denied|authentication required/i);
  });
});
