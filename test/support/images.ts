// Test images as OCI layouts, built with umoci (and by hand where umoci cannot: indexes,
// OCI 1.1 artifacts). Timestamps, file modes and the "random" bytes are pinned, so the digests are
// the same on every run and every machine with the same umoci.
import { createCipheriv, createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import type { ClientEnv } from './clients.js';

export const MEDIA = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociEmpty: 'application/vnd.oci.empty.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

/** Accept header that admits every manifest type a registry may hold. */
export const ACCEPT_ALL_MANIFESTS = [
  MEDIA.ociManifest,
  MEDIA.ociIndex,
  MEDIA.dockerManifest,
  MEDIA.dockerList,
  'application/vnd.docker.distribution.manifest.v1+prettyjws',
].join(', ');

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  artifactType?: string;
  annotations?: Record<string, string>;
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  manifests: Descriptor[];
  annotations?: Record<string, string>;
}

export interface FixtureImage {
  /** OCI layout directory. */
  layout: string;
  tag: string;
  /** containers/image reference, e.g. oci:/tmp/stw-x/fixtures/single:latest */
  ref: string;
  /** Manifest digest (from the layout's index.json). */
  digest: string;
  size: number;
  mediaType: string;
  manifest: ImageManifest;
  /** Uncompressed layer digests from the config. */
  diffIds: string[];
}

export interface BigLayer {
  /** Compressed (gzip) layer digest and size as in the OCI manifest. */
  digest: string;
  size: number;
  diffId: string;
  /** Path of the 64 MiB file inside the layer (no leading slash) and its content digest. */
  file: string;
  fileDigest: string;
  fileSize: number;
}

export interface FixtureIndex {
  layout: string;
  tag: string;
  ref: string;
  digest: string;
  size: number;
  index: ImageIndex;
  children: { platform: string; digest: string; size: number }[];
}

export interface FixtureArtifact {
  layout: string;
  tag: string;
  ref: string;
  digest: string;
  size: number;
  artifactType: string;
  manifest: ImageManifest;
  subject: Descriptor;
}

export interface Fixtures {
  dir: string;
  /** One gzip layer with /hello.txt. */
  single: FixtureImage;
  /** Three layers: a small file, a 64 MiB incompressible file, a small file. */
  multi: FixtureImage & { bigLayer: BigLayer };
  /** The same images converted to Docker schema 2 by skopeo (same layer bytes), as OCI layouts. */
  singleDocker: FixtureImage;
  multiDocker: FixtureImage;
  /** OCI index of two images, linux/amd64 and linux/arm64. */
  index: FixtureIndex;
  /** OCI 1.1 artifact (artifactType, empty config) whose subject is `single`. */
  artifact: FixtureArtifact;
  /** The 64 MiB file itself. */
  randomFile: string;
}

export const BIG_FILE_SIZE = 64 * 1024 * 1024;
const CREATED = '2023-11-14T22:13:20Z';
const EPOCH = Date.parse(CREATED) / 1000;

function sha256(data: string | Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

function blobPath(layout: string, digest: string): string {
  const [alg, hex] = digest.split(':');
  return join(layout, 'blobs', alg ?? 'sha256', hex ?? '');
}

export function readBlob(layout: string, digest: string): Buffer {
  return readFileSync(blobPath(layout, digest));
}

function writeBlob(layout: string, data: string | Buffer): Descriptor & { data: Buffer } {
  const buf = Buffer.isBuffer(data) ? data : Buffer.from(data);
  const digest = sha256(buf);
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(blobPath(layout, digest), buf);
  return { mediaType: '', digest, size: buf.length, data: buf };
}

function writeLayout(layout: string, entries: Descriptor[]): void {
  mkdirSync(join(layout, 'blobs', 'sha256'), { recursive: true });
  writeFileSync(join(layout, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: entries }));
}

function copyBlob(from: string, to: string, digest: string): void {
  mkdirSync(join(to, 'blobs', 'sha256'), { recursive: true });
  const dest = blobPath(to, digest);
  if (!existsSync(dest)) copyFileSync(blobPath(from, digest), dest);
}

/** Reads the manifest tagged `tag` in an OCI layout (digest from index.json). */
export function readLayoutImage(layout: string, tag = 'latest'): FixtureImage {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8')) as ImageIndex;
  const entry = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag);
  if (!entry) throw new Error(`no tag ${tag} in ${layout}/index.json`);
  const raw = readBlob(layout, entry.digest);
  if (sha256(raw) !== entry.digest) throw new Error(`corrupt manifest blob ${entry.digest} in ${layout}`);
  const manifest = JSON.parse(raw.toString('utf8')) as ImageManifest;
  let diffIds: string[] = [];
  if (manifest.config.mediaType === MEDIA.ociConfig || manifest.config.mediaType === MEDIA.dockerConfig) {
    const config = JSON.parse(readBlob(layout, manifest.config.digest).toString('utf8')) as { rootfs?: { diff_ids?: string[] } };
    diffIds = config.rootfs?.diff_ids ?? [];
  }
  return { layout, tag, ref: `oci:${layout}:${tag}`, digest: entry.digest, size: entry.size, mediaType: entry.mediaType, manifest, diffIds };
}

/** Writes `size` deterministic, incompressible bytes (AES-128-CTR keystream of a fixed key). */
function writeRandomFile(path: string, size: number, seed: string): void {
  const key = createHash('sha256').update(`key:${seed}`).digest().subarray(0, 16);
  const iv = createHash('sha256').update(`iv:${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, iv);
  const zeros = Buffer.alloc(1 << 20);
  const fd = openSync(path, 'w');
  try {
    for (let written = 0; written < size; ) {
      const n = Math.min(zeros.length, size - written);
      writeSync(fd, cipher.update(zeros.subarray(0, n)));
      written += n;
    }
  } finally {
    closeSync(fd);
  }
}

function writePinnedFile(path: string, content: string | Buffer): void {
  writeFileSync(path, content, { mode: 0o644 });
  utimesSync(path, EPOCH, EPOCH);
}

async function newImage(env: ClientEnv, layout: string, tag: string, arch = 'amd64'): Promise<void> {
  const image = `${layout}:${tag}`;
  if (!existsSync(join(layout, 'index.json'))) await env.umoci(['init', '--layout', layout]);
  await env.umoci(['new', '--image', image]);
  await env.umoci([
    'config',
    '--image',
    image,
    '--created',
    CREATED,
    '--author',
    'stowage-tests',
    '--os',
    'linux',
    '--architecture',
    arch,
    '--config.cmd',
    '/hello.txt',
    '--no-history',
  ]);
}

async function insert(env: ClientEnv, layout: string, tag: string, source: string, target: string): Promise<void> {
  await env.umoci([
    'insert',
    '--image',
    `${layout}:${tag}`,
    '--history.created',
    CREATED,
    '--history.created_by',
    `insert ${target}`,
    source,
    target,
  ]);
}

/**
 * Converts an OCI image to Docker schema 2 with `skopeo copy --format v2s2` (layer bytes are kept)
 * and stores the result as an OCI layout (index.json may reference any manifest type; containerd
 * imports it as is).
 */
async function toDockerLayout(env: ClientEnv, source: FixtureImage, layout: string, scratch: string): Promise<FixtureImage> {
  rmSync(scratch, { recursive: true, force: true });
  await env.skopeo(['copy', '--quiet', '--format', 'v2s2', source.ref, `dir:${scratch}`]);
  const manifestRaw = readFileSync(join(scratch, 'manifest.json'));
  const manifest = JSON.parse(manifestRaw.toString('utf8')) as ImageManifest;
  if (manifest.mediaType !== MEDIA.dockerManifest) throw new Error(`skopeo did not produce a Docker manifest: ${manifest.mediaType}`);
  const digest = sha256(manifestRaw);
  writeLayout(layout, [
    { mediaType: MEDIA.dockerManifest, digest, size: manifestRaw.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } },
  ]);
  writeFileSync(blobPath(layout, digest), manifestRaw);
  for (const d of [manifest.config, ...manifest.layers]) {
    copyFileSync(join(scratch, d.digest.replace(/^sha256:/, '')), blobPath(layout, d.digest));
  }
  rmSync(scratch, { recursive: true, force: true });
  return readLayoutImage(layout);
}

const built = new Map<string, Promise<Fixtures>>();

/** Builds (once per client environment) all fixtures under `${env.dir}/fixtures`. */
export function buildFixtures(env: ClientEnv): Promise<Fixtures> {
  let pending = built.get(env.dir);
  if (!pending) {
    pending = doBuild(env);
    built.set(env.dir, pending);
  }
  return pending;
}

async function doBuild(env: ClientEnv): Promise<Fixtures> {
  // No dot-directories anywhere in these paths: podman 4.3 rejects such oci: references.
  const dir = join(env.dir, 'fixtures');
  const src = join(dir, 'src');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(src, { recursive: true });
  const umociEnv = { SOURCE_DATE_EPOCH: String(EPOCH) };
  const u = { ...env, umoci: (args: readonly string[]) => env.umoci(args, { env: umociEnv }) } as ClientEnv;

  // Single-layer image.
  writePinnedFile(join(src, 'hello.txt'), 'hello from stowage\n');
  const singleLayout = join(dir, 'single');
  await newImage(u, singleLayout, 'latest');
  await insert(u, singleLayout, 'latest', join(src, 'hello.txt'), '/hello.txt');
  await u.umoci(['gc', '--layout', singleLayout]);
  const single = readLayoutImage(singleLayout);

  // Multi-layer image with a 64 MiB incompressible layer.
  const randomFile = join(src, 'random.bin');
  writeRandomFile(randomFile, BIG_FILE_SIZE, 'stowage-e2e');
  utimesSync(randomFile, EPOCH, EPOCH);
  writePinnedFile(join(src, 'a.txt'), 'first layer\n');
  writePinnedFile(join(src, 'c.txt'), 'third layer\n');
  const multiLayout = join(dir, 'multi');
  await newImage(u, multiLayout, 'latest');
  await insert(u, multiLayout, 'latest', join(src, 'a.txt'), '/a.txt');
  await insert(u, multiLayout, 'latest', randomFile, '/random.bin');
  await insert(u, multiLayout, 'latest', join(src, 'c.txt'), '/c.txt');
  await u.umoci(['gc', '--layout', multiLayout]);
  const multiImage = readLayoutImage(multiLayout);
  const bigDesc = multiImage.manifest.layers[1];
  const bigDiffId = multiImage.diffIds[1];
  if (multiImage.manifest.layers.length !== 3 || !bigDesc || !bigDiffId || bigDesc.size < BIG_FILE_SIZE) {
    throw new Error(`unexpected multi-layer fixture: ${JSON.stringify(multiImage.manifest)}`);
  }
  const multi = {
    ...multiImage,
    bigLayer: {
      digest: bigDesc.digest,
      size: bigDesc.size,
      diffId: bigDiffId,
      file: 'random.bin',
      fileDigest: sha256(readFileSync(randomFile)),
      fileSize: BIG_FILE_SIZE,
    },
  };

  // Docker schema 2 variants.
  const singleDocker = await toDockerLayout(env, single, join(dir, 'single-docker'), join(dir, 'scratch'));
  const multiDocker = await toDockerLayout(env, multi, join(dir, 'multi-docker'), join(dir, 'scratch'));

  // Two single-platform images, then an index over them, written by hand.
  const platformsLayout = join(dir, 'platforms');
  const children: FixtureIndex['children'] = [];
  const indexLayout = join(dir, 'index');
  writeLayout(indexLayout, []);
  const indexEntries: Descriptor[] = [];
  for (const arch of ['amd64', 'arm64']) {
    writePinnedFile(join(src, `${arch}.txt`), `built for linux/${arch}\n`);
    await newImage(u, platformsLayout, arch, arch);
    await insert(u, platformsLayout, arch, join(src, `${arch}.txt`), '/hello.txt');
    const image = readLayoutImage(platformsLayout, arch);
    for (const d of [image.digest, image.manifest.config.digest, ...image.manifest.layers.map((l) => l.digest)]) {
      copyBlob(platformsLayout, indexLayout, d);
    }
    children.push({ platform: `linux/${arch}`, digest: image.digest, size: image.size });
    indexEntries.push({ mediaType: MEDIA.ociManifest, digest: image.digest, size: image.size, platform: { architecture: arch, os: 'linux' } });
  }
  const indexBody: ImageIndex = { schemaVersion: 2, mediaType: MEDIA.ociIndex, manifests: indexEntries };
  const indexBlob = writeBlob(indexLayout, JSON.stringify(indexBody));
  writeLayout(indexLayout, [
    { mediaType: MEDIA.ociIndex, digest: indexBlob.digest, size: indexBlob.size, annotations: { 'org.opencontainers.image.ref.name': 'latest' } },
  ]);
  const index: FixtureIndex = {
    layout: indexLayout,
    tag: 'latest',
    ref: `oci:${indexLayout}:latest`,
    digest: indexBlob.digest,
    size: indexBlob.size,
    index: indexBody,
    children,
  };

  // OCI 1.1 artifact: artifactType, the empty config, one layer, subject = single.
  const artifactLayout = join(dir, 'artifact');
  writeLayout(artifactLayout, []);
  const artifactType = 'application/vnd.stowage.test.sbom.v1+json';
  const empty = writeBlob(artifactLayout, '{}');
  const payload = writeBlob(artifactLayout, JSON.stringify({ sbom: 'stowage-e2e', packages: ['hello'] }));
  const subject: Descriptor = { mediaType: MEDIA.ociManifest, digest: single.digest, size: single.size };
  const artifactManifest: ImageManifest = {
    schemaVersion: 2,
    mediaType: MEDIA.ociManifest,
    artifactType,
    config: { mediaType: MEDIA.ociEmpty, digest: empty.digest, size: empty.size },
    layers: [{ mediaType: artifactType, digest: payload.digest, size: payload.size }],
    subject,
    annotations: { 'org.opencontainers.image.created': CREATED },
  };
  const artifactBlob = writeBlob(artifactLayout, JSON.stringify(artifactManifest));
  writeLayout(artifactLayout, [
    {
      mediaType: MEDIA.ociManifest,
      digest: artifactBlob.digest,
      size: artifactBlob.size,
      artifactType,
      annotations: { 'org.opencontainers.image.ref.name': 'latest' },
    },
  ]);
  const artifact: FixtureArtifact = {
    layout: artifactLayout,
    tag: 'latest',
    ref: `oci:${artifactLayout}:latest`,
    digest: artifactBlob.digest,
    size: artifactBlob.size,
    artifactType,
    manifest: artifactManifest,
    subject,
  };

  // Sanity: every blob named in the layouts exists.
  for (const layout of [singleLayout, multiLayout, indexLayout, artifactLayout, singleDocker.layout, multiDocker.layout]) {
    if (readdirSync(join(layout, 'blobs', 'sha256')).length === 0) throw new Error(`empty layout ${layout}`);
  }
  return { dir, single, multi, singleDocker, multiDocker, index, artifact, randomFile };
}
