// Manifests: push by tag and by digest, pull with the stored media type, validation of every
// supported type, references that must exist, the size limit and Docker schema 1.
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  configBlob,
  createTestApp,
  descriptorOf,
  emptyConfig,
  emptyConfigDescriptor,
  manifestBytes,
  mediaTypes,
  ociError,
  ociIndex,
  ociManifest,
  sha256,
  sha512,
  type TestApp,
} from '../support/http-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.cleanup();
});

const ociConfigType = 'application/vnd.oci.image.config.v1+json';
const ociLayerType = 'application/vnd.oci.image.layer.v1.tar+gzip';
const dockerConfigType = 'application/vnd.docker.container.image.v1+json';
const dockerLayerType = 'application/vnd.docker.image.rootfs.diff.tar.gzip';
const maxManifestBytes = 4 * 1024 * 1024;

/** Pushes a config blob and returns an OCI manifest (no layers) that references it. */
async function simpleManifest(repository: string, annotations?: Record<string, string>): Promise<Buffer> {
  const config = configBlob();
  await t.pushBlob(repository, config);
  return ociManifest({ config: descriptorOf(ociConfigType, config), annotations });
}

/** Expects the manifest to be served with its exact bytes and stored media type. */
async function expectManifest(repository: string, reference: string, content: Buffer, mediaType: string): Promise<void> {
  const response = await t.get(`/v2/${repository}/manifests/${reference}`);
  expect(response.statusCode, response.body).toBe(200);
  expect(response.headers['content-type']).toBe(mediaType);
  expect(response.headers['content-length']).toBe(String(content.length));
  expect(response.headers['docker-content-digest']).toBe(sha256(content));
  expect(response.rawPayload.equals(content)).toBe(true);
}

describe('push and pull an OCI image', () => {
  let image: Awaited<ReturnType<TestApp['pushImage']>>;
  beforeAll(async () => {
    image = await t.pushImage('image', 'v1', { layers: [Buffer.from('layer one'), Buffer.from('layer two')] });
  });

  it('PUT by tag answers 201 with Location, Docker-Content-Digest over the exact bytes and no body', async () => {
    const manifest = await simpleManifest('image');
    const response = await t.putManifest('image', 'v2', manifest);
    expect(response.statusCode).toBe(201);
    expect(response.headers['docker-content-digest']).toBe(sha256(manifest));
    expect(response.headers.location).toBe(`/v2/image/manifests/${sha256(manifest)}`);
    expect(response.headers['content-length']).toBe('0');
    expect(response.headers['oci-subject']).toBeUndefined();
    // The Location is pullable as given.
    expect((await t.get(response.headers.location as string)).statusCode).toBe(200);
  });

  it('GET by tag and by digest returns the exact bytes with the stored media type', async () => {
    await expectManifest('image', 'v1', image.manifest, mediaTypes.ociManifest);
    await expectManifest('image', image.digest, image.manifest, mediaTypes.ociManifest);
  });

  it('HEAD by tag and by digest carries Content-Length, Content-Type and the digest without a body', async () => {
    for (const reference of ['v1', image.digest]) {
      const response = await t.head(`/v2/image/manifests/${reference}`, { accept: mediaTypes.ociManifest });
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-length']).toBe(String(image.manifest.length));
      expect(response.headers['content-type']).toBe(mediaTypes.ociManifest);
      expect(response.headers['docker-content-digest']).toBe(image.digest);
      expect(response.body).toBe('');
    }
  });

  it('an unknown tag or digest is 404 MANIFEST_UNKNOWN (HEAD without a body)', async () => {
    expect(ociError(await t.get('/v2/image/manifests/nope'), 404, 'MANIFEST_UNKNOWN').detail).toEqual({ tag: 'nope' });
    const digest = sha256('no such manifest');
    expect(ociError(await t.get(`/v2/image/manifests/${digest}`), 404, 'MANIFEST_UNKNOWN').detail).toEqual({ digest });
    const head = await t.head(`/v2/image/manifests/${digest}`);
    expect(head.statusCode).toBe(404);
    expect(head.body).toBe('');
    ociError(await t.get('/v2/no-such-repo/manifests/latest'), 404, 'MANIFEST_UNKNOWN');
  });

  it('a manifest is visible only in its repository', async () => {
    ociError(await t.get(`/v2/elsewhere/manifests/${image.digest}`), 404, 'MANIFEST_UNKNOWN');
  });

  it('pushing the same manifest again, to another tag, is idempotent', async () => {
    expect(await t.pushManifest('image', 'v1-again', image.manifest)).toBe(image.digest);
    expect(await t.pushManifest('image', 'v1', image.manifest)).toBe(image.digest);
    expect(await t.tags('image')).toEqual(['v1', 'v1-again', 'v2']);
  });

  it('pushing a tag again moves it and keeps the old manifest by digest', async () => {
    const first = await simpleManifest('moves');
    const second = await simpleManifest('moves');
    await t.pushManifest('moves', 'latest', first);
    await t.pushManifest('moves', 'latest', second);
    await expectManifest('moves', 'latest', second, mediaTypes.ociManifest);
    await expectManifest('moves', sha256(first), first, mediaTypes.ociManifest);
    const history = await t.app.metadata.tags.history('moves', 'latest');
    expect(history.map((entry) => entry.digest)).toEqual([sha256(second), sha256(first)]);
  });

  it('a manifest without layers, without a mediaType field and with unknown descriptor fields is accepted', async () => {
    const config = configBlob();
    await t.pushBlob('image', config);
    const manifest = manifestBytes({
      schemaVersion: 2,
      config: { ...descriptorOf(ociConfigType, config), data: config.toString('base64'), newUnspecifiedField: 'aGVsbG8=' },
      layers: [],
    });
    await t.pushManifest('image', 'emptylayer', manifest);
    await expectManifest('image', 'emptylayer', manifest, mediaTypes.ociManifest);
  });

  it('a Content-Type with parameters is accepted', async () => {
    const manifest = await simpleManifest('image');
    const response = await t.put('/v2/image/manifests/params', manifest, { 'content-type': `${mediaTypes.ociManifest}; charset=utf-8` });
    expect(response.statusCode).toBe(201);
    await expectManifest('image', 'params', manifest, mediaTypes.ociManifest);
  });
});

describe('push by digest', () => {
  it('PUT by digest stores the manifest untagged', async () => {
    const manifest = await simpleManifest('bydigest');
    const response = await t.putManifest('bydigest', sha256(manifest), manifest);
    expect(response.statusCode).toBe(201);
    expect(response.headers.location).toBe(`/v2/bydigest/manifests/${sha256(manifest)}`);
    expect(response.headers['docker-content-digest']).toBe(sha256(manifest));
    await expectManifest('bydigest', sha256(manifest), manifest, mediaTypes.ociManifest);
    expect(await t.tags('bydigest')).toEqual([]);
  });

  it('a digest in the URL that does not match the bytes is DIGEST_INVALID and stores nothing', async () => {
    const manifest = await simpleManifest('bydigest');
    const wrong = sha256(Buffer.concat([manifest, Buffer.from(' ')]));
    const error = ociError(await t.putManifest('bydigest', wrong, manifest), 400, 'DIGEST_INVALID');
    expect(error.detail).toEqual({ expected: wrong, actual: sha256(manifest) });
    ociError(await t.get(`/v2/bydigest/manifests/${sha256(manifest)}`), 404, 'MANIFEST_UNKNOWN');
    ociError(await t.get(`/v2/bydigest/manifests/${wrong}`), 404, 'MANIFEST_UNKNOWN');
  });

  it('a sha512 digest reference is verified with sha512', async () => {
    const manifest = await simpleManifest('bydigest');
    const response = await t.putManifest('bydigest', sha512(manifest), manifest);
    expect(response.statusCode, response.body).toBe(201);
    expect(response.headers['docker-content-digest']).toBe(sha512(manifest));
    const pulled = await t.get(`/v2/bydigest/manifests/${sha512(manifest)}`);
    expect(pulled.statusCode).toBe(200);
    expect(pulled.headers['docker-content-digest']).toBe(sha512(manifest));
    expect(pulled.rawPayload.equals(manifest)).toBe(true);
  });
});

describe('references that must exist', () => {
  it('a layer missing from the repository is MANIFEST_BLOB_UNKNOWN with the digest, and nothing is stored', async () => {
    const config = configBlob();
    await t.pushBlob('refs', config);
    const layer = Buffer.from('never pushed');
    const manifest = ociManifest({ config: descriptorOf(ociConfigType, config), layers: [descriptorOf(ociLayerType, layer)] });
    const error = ociError(await t.putManifest('refs', 'broken', manifest), 400, 'MANIFEST_BLOB_UNKNOWN');
    expect(error.detail).toEqual({ digest: sha256(layer) });
    ociError(await t.get('/v2/refs/manifests/broken'), 404, 'MANIFEST_UNKNOWN');
    ociError(await t.get(`/v2/refs/manifests/${sha256(manifest)}`), 404, 'MANIFEST_UNKNOWN');
    expect(await t.tags('refs')).toEqual([]);
  });

  it('a config missing from the repository is MANIFEST_BLOB_UNKNOWN', async () => {
    const config = configBlob();
    const manifest = ociManifest({ config: descriptorOf(ociConfigType, config) });
    expect(ociError(await t.putManifest('refs', 'noconfig', manifest), 400, 'MANIFEST_BLOB_UNKNOWN').detail).toEqual({ digest: sha256(config) });
  });

  it('a blob that only another repository holds is MANIFEST_BLOB_UNKNOWN', async () => {
    const config = configBlob();
    await t.pushBlob('refs-other', config);
    const manifest = ociManifest({ config: descriptorOf(ociConfigType, config) });
    ociError(await t.putManifest('refs', 'foreign', manifest), 400, 'MANIFEST_BLOB_UNKNOWN');
    // Once mounted, the same manifest is accepted.
    expect((await t.post(`/v2/refs/blobs/uploads/?mount=${sha256(config)}&from=refs-other`)).statusCode).toBe(201);
    await t.pushManifest('refs', 'foreign', manifest);
  });

  it('an index whose child manifest is missing is MANIFEST_UNKNOWN with the child digest', async () => {
    const present = await simpleManifest('refs');
    await t.pushManifest('refs', 'present', present);
    const absent = await simpleManifest('refs');
    const index = ociIndex({ manifests: [descriptorOf(mediaTypes.ociManifest, present), descriptorOf(mediaTypes.ociManifest, absent)] });
    const error = ociError(await t.putManifest('refs', 'index', index, mediaTypes.ociIndex), 404, 'MANIFEST_UNKNOWN');
    expect(error.detail).toEqual({ digest: sha256(absent) });
    ociError(await t.get('/v2/refs/manifests/index'), 404, 'MANIFEST_UNKNOWN');

    await t.pushManifest('refs', sha256(absent), absent);
    await t.pushManifest('refs', 'index', index, mediaTypes.ociIndex);
    await expectManifest('refs', 'index', index, mediaTypes.ociIndex);
  });
});

describe('manifest media types', () => {
  it('an OCI image index is accepted and served as one', async () => {
    const amd64 = await simpleManifest('types');
    const arm64 = await simpleManifest('types');
    await t.pushManifest('types', sha256(amd64), amd64);
    await t.pushManifest('types', sha256(arm64), arm64);
    const index = ociIndex({
      manifests: [
        descriptorOf(mediaTypes.ociManifest, amd64, { platform: { architecture: 'amd64', os: 'linux' } }),
        descriptorOf(mediaTypes.ociManifest, arm64, { platform: { architecture: 'arm64', os: 'linux' } }),
      ],
    });
    await t.pushManifest('types', 'multi', index, mediaTypes.ociIndex);
    await expectManifest('types', 'multi', index, mediaTypes.ociIndex);
  });

  it('a Docker v2 schema 2 manifest is accepted and served with its media type', async () => {
    const config = configBlob();
    const layer = Buffer.from('docker layer');
    await t.pushBlob('types', config);
    await t.pushBlob('types', layer);
    const manifest = manifestBytes({
      schemaVersion: 2,
      mediaType: mediaTypes.dockerManifest,
      config: descriptorOf(dockerConfigType, config),
      layers: [descriptorOf(dockerLayerType, layer)],
    });
    await t.pushManifest('types', 'docker', manifest, mediaTypes.dockerManifest);
    await expectManifest('types', 'docker', manifest, mediaTypes.dockerManifest);
    const head = await t.head('/v2/types/manifests/docker', { accept: mediaTypes.dockerManifest });
    expect(head.headers['content-type']).toBe(mediaTypes.dockerManifest);
  });

  it('a Docker manifest list is accepted and served with its media type', async () => {
    const config = configBlob();
    await t.pushBlob('types', config);
    const child = manifestBytes({ schemaVersion: 2, mediaType: mediaTypes.dockerManifest, config: descriptorOf(dockerConfigType, config), layers: [] });
    await t.pushManifest('types', sha256(child), child, mediaTypes.dockerManifest);
    const list = manifestBytes({
      schemaVersion: 2,
      mediaType: mediaTypes.dockerManifestList,
      manifests: [descriptorOf(mediaTypes.dockerManifest, child, { platform: { architecture: 'amd64', os: 'linux' } })],
    });
    await t.pushManifest('types', 'list', list, mediaTypes.dockerManifestList);
    await expectManifest('types', 'list', list, mediaTypes.dockerManifestList);
  });

  it('Docker foreign layers need not be in the registry', async () => {
    const config = configBlob();
    await t.pushBlob('types', config);
    const foreign = Buffer.from('windows base layer');
    const manifest = manifestBytes({
      schemaVersion: 2,
      mediaType: mediaTypes.dockerManifest,
      config: descriptorOf(dockerConfigType, config),
      layers: [{ ...descriptorOf('application/vnd.docker.image.rootfs.foreign.diff.tar.gzip', foreign), urls: ['https://example.com/layer'] }],
    });
    await t.pushManifest('types', 'foreign', manifest, mediaTypes.dockerManifest);
  });

  it('an OCI artifact (artifactType and the empty config) is accepted', async () => {
    const payload = Buffer.from('an SBOM');
    await t.pushBlob('types', emptyConfig);
    await t.pushBlob('types', payload);
    expect(emptyConfigDescriptor.digest).toBe('sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a');
    const artifact = ociManifest({
      artifactType: 'application/vnd.example.sbom.v1',
      config: emptyConfigDescriptor,
      layers: [descriptorOf('application/vnd.example.sbom.v1+json', payload)],
    });
    await t.pushManifest('types', 'sbom', artifact);
    await expectManifest('types', 'sbom', artifact, mediaTypes.ociManifest);
  });

  it('an artifact whose empty config has the wrong size is MANIFEST_INVALID', async () => {
    await t.pushBlob('types', emptyConfig);
    const artifact = ociManifest({ artifactType: 'application/vnd.example', config: { ...emptyConfigDescriptor, size: 3 } });
    ociError(await t.putManifest('types', 'bad-artifact', artifact), 400, 'MANIFEST_INVALID');
  });

  it('Docker schema 1 is refused with a message that says so', async () => {
    const schema1 = manifestBytes({
      schemaVersion: 1,
      name: 'types',
      tag: 'old',
      architecture: 'amd64',
      fsLayers: [{ blobSum: sha256('layer') }],
      history: [{ v1Compatibility: '{}' }],
      signatures: [],
    });
    for (const contentType of ['application/vnd.docker.distribution.manifest.v1+prettyjws', 'application/vnd.docker.distribution.manifest.v1+json', 'application/json']) {
      const error = ociError(await t.putManifest('types', 'old', schema1, contentType), 400, 'MANIFEST_INVALID');
      expect(error.message).toMatch(/schema 1 is not supported/);
    }
    ociError(await t.get('/v2/types/manifests/old'), 404, 'MANIFEST_UNKNOWN');
  });
});

describe('invalid manifests', () => {
  let config: Buffer;
  beforeAll(async () => {
    config = configBlob();
    await t.pushBlob('invalid', config);
  });

  const cases: [string, () => Buffer, string?][] = [
    ['bytes that are not JSON', () => Buffer.from('blablabla')],
    ['a JSON array', () => Buffer.from('[]')],
    ['invalid UTF-8', () => Buffer.from([0x7b, 0xff, 0xfe, 0x7d])],
    ['schemaVersion 3', () => manifestBytes({ schemaVersion: 3, mediaType: mediaTypes.ociManifest, config: descriptorOf(ociConfigType, config), layers: [] })],
    ['no config', () => manifestBytes({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, layers: [] })],
    ['layers that are no array', () => manifestBytes({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: descriptorOf(ociConfigType, config), layers: {} })],
    [
      'a layer with an invalid digest',
      () => manifestBytes({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: descriptorOf(ociConfigType, config), layers: [{ mediaType: ociLayerType, digest: 'sha256:nope', size: 1 }] }),
    ],
    [
      'a layer with a negative size',
      () => manifestBytes({ schemaVersion: 2, mediaType: mediaTypes.ociManifest, config: descriptorOf(ociConfigType, config), layers: [{ ...descriptorOf(ociLayerType, config), size: -1 }] }),
    ],
    ['an index without manifests', () => manifestBytes({ schemaVersion: 2, mediaType: mediaTypes.ociIndex }), mediaTypes.ociIndex],
    ['an unsupported media type', () => manifestBytes({ schemaVersion: 2, mediaType: 'application/vnd.example+json', config: descriptorOf(ociConfigType, config) }), 'application/vnd.example+json'],
    ['a mediaType that differs from the Content-Type', () => ociManifest({ config: descriptorOf(ociConfigType, config) }), mediaTypes.ociIndex],
    ['a Docker manifest without its mediaType field', () => manifestBytes({ schemaVersion: 2, config: descriptorOf(dockerConfigType, config), layers: [] }), mediaTypes.dockerManifest],
    [
      'a Docker manifest with a subject',
      () =>
        manifestBytes({
          schemaVersion: 2,
          mediaType: mediaTypes.dockerManifest,
          config: descriptorOf(dockerConfigType, config),
          layers: [],
          subject: descriptorOf(mediaTypes.ociManifest, Buffer.from('x')),
        }),
      mediaTypes.dockerManifest,
    ],
  ];

  it.each(cases)('%s is MANIFEST_INVALID and stores nothing', async (_label, build, contentType = mediaTypes.ociManifest) => {
    const manifest = build();
    ociError(await t.putManifest('invalid', 'bad', manifest, contentType), 400, 'MANIFEST_INVALID');
    ociError(await t.get('/v2/invalid/manifests/bad'), 404, 'MANIFEST_UNKNOWN');
    ociError(await t.get(`/v2/invalid/manifests/${sha256(manifest)}`), 404, 'MANIFEST_UNKNOWN');
    expect(await t.tags('invalid')).toEqual([]);
  });

  it('an empty body is MANIFEST_INVALID', async () => {
    ociError(await t.putManifest('invalid', 'bad', Buffer.alloc(0)), 400, 'MANIFEST_INVALID');
  });
});

describe('size limit', () => {
  /** A valid manifest of exactly `size` bytes (padded with an annotation). */
  async function manifestOfSize(size: number): Promise<Buffer> {
    const config = configBlob();
    await t.pushBlob('big', config);
    const base = ociManifest({ config: descriptorOf(ociConfigType, config), annotations: { pad: '' } });
    return ociManifest({ config: descriptorOf(ociConfigType, config), annotations: { pad: 'x'.repeat(size - base.length) } });
  }

  it('a manifest of exactly 4 MiB is accepted', async () => {
    const manifest = await manifestOfSize(maxManifestBytes);
    expect(manifest.length).toBe(maxManifestBytes);
    await t.pushManifest('big', 'limit', manifest);
    await expectManifest('big', 'limit', manifest, mediaTypes.ociManifest);
  });

  it('a manifest over 4 MiB is refused with 413 and stores nothing', async () => {
    const manifest = await manifestOfSize(maxManifestBytes + 1);
    const error = ociError(await t.putManifest('big', 'over', manifest), 413, 'MANIFEST_TOO_LARGE');
    expect(error.detail).toEqual({ limit: maxManifestBytes });
    ociError(await t.get('/v2/big/manifests/over'), 404, 'MANIFEST_UNKNOWN');
  });

  it('a manifest over 4 MiB sent without Content-Length is refused with 413 too', async () => {
    const manifest = await manifestOfSize(maxManifestBytes + 1024);
    const chunks = Array.from({ length: Math.ceil(manifest.length / 65536) }, (_, i) => manifest.subarray(i * 65536, (i + 1) * 65536));
    const response = await t.inject({
      method: 'PUT',
      url: '/v2/big/manifests/streamed',
      payload: Readable.from(chunks),
      headers: { 'content-type': mediaTypes.ociManifest, 'transfer-encoding': 'chunked' },
    });
    ociError(response, 413, 'MANIFEST_TOO_LARGE');
    ociError(await t.get('/v2/big/manifests/streamed'), 404, 'MANIFEST_UNKNOWN');
  });
});
