// Content discovery: the referrers API (with and without the artifactType filter), subjects that
// are not pushed yet, and the tag-schema fallback older clients use.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createTestApp,
  descriptorOf,
  emptyConfig,
  emptyConfigDescriptor,
  mediaTypes,
  ociError,
  ociIndex,
  ociManifest,
  sha256,
  type Descriptor,
  type Response,
  type TestApp,
} from '../support/http-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.cleanup();
});

const repo = 'refs';
const typeA = 'application/vnd.example.peanut.butter';
const typeB = 'application/vnd.example.strawberry.jam';
const typeIndex = 'application/vnd.example.food.stand';
const annotationKey = 'org.example.test';
const blobA = Buffer.from('peanut butter on a bagel');
const blobB = Buffer.from('strawberry jam on a croissant');

interface Referrer {
  digest: string;
  manifest: Buffer;
  mediaType: string;
  artifactType: string;
  annotation: string;
}

/** A manifest whose config media type is the artifact type (the pre-1.1 way). */
function configArtifact(type: string, blob: Buffer, subject: Descriptor, annotation: string): Buffer {
  return ociManifest({ config: descriptorOf(type, blob), layers: [emptyConfigDescriptor], subject, annotations: { [annotationKey]: annotation } });
}

/** An artifact with artifactType and the empty config (the 1.1 way). */
function layerArtifact(type: string, blob: Buffer, subject: Descriptor, annotation?: string): Buffer {
  return ociManifest({
    artifactType: type,
    config: emptyConfigDescriptor,
    layers: [descriptorOf(type, blob)],
    subject,
    annotations: annotation === undefined ? undefined : { [annotationKey]: annotation },
  });
}

async function putReferrer(manifest: Buffer, subject: Descriptor, mediaType: string = mediaTypes.ociManifest): Promise<string> {
  const response = await t.putManifest(repo, sha256(manifest), manifest, mediaType);
  expect(response.statusCode, response.body).toBe(201);
  expect(response.headers['oci-subject']).toBe(subject.digest);
  return sha256(manifest);
}

/** GETs the referrers of `subject` and checks the envelope: a 200 OCI image index. */
async function referrers(subject: string, query = ''): Promise<{ manifests: Descriptor[]; headers: Response['headers'] }> {
  const response = await t.get(`/v2/${repo}/referrers/${subject}${query}`);
  expect(response.statusCode, response.body).toBe(200);
  expect(response.headers['content-type']).toBe(mediaTypes.ociIndex);
  const index = response.json();
  expect(index.schemaVersion).toBe(2);
  expect(index.mediaType).toBe(mediaTypes.ociIndex);
  return { manifests: index.manifests, headers: response.headers };
}

describe('referrers', () => {
  let subjectDigest: string;
  let subjectDescriptor: Descriptor;
  let unpushedSubject: Descriptor;
  const expected: Referrer[] = [];

  beforeAll(async () => {
    for (const blob of [emptyConfig, blobA, blobB]) await t.pushBlob(repo, blob);
    // Build the subject first but push it only after the first referrers, as clients may do.
    const subjectConfig = Buffer.from('{"architecture":"amd64","os":"linux"}');
    const subjectLayer = Buffer.from('subject layer');
    await t.pushBlob(repo, subjectConfig);
    await t.pushBlob(repo, subjectLayer);
    const subjectManifest = ociManifest({
      config: descriptorOf('application/vnd.oci.image.config.v1+json', subjectConfig),
      layers: [descriptorOf('application/vnd.oci.image.layer.v1.tar+gzip', subjectLayer)],
    });
    subjectDescriptor = descriptorOf(mediaTypes.ociManifest, subjectManifest);

    const add = async (manifest: Buffer, artifactType: string, annotation: string, mediaType: string = mediaTypes.ociManifest) => {
      const digest = await putReferrer(manifest, subjectDescriptor, mediaType);
      expected.push({ digest, manifest, mediaType, artifactType, annotation });
    };
    const aConfig = configArtifact(typeA, blobA, subjectDescriptor, 'config a');
    const aLayer = layerArtifact(typeA, blobA, subjectDescriptor, 'layer a');
    await add(aConfig, typeA, 'config a');
    await add(aLayer, typeA, 'layer a');
    const index = ociIndex({
      artifactType: typeIndex,
      manifests: [descriptorOf(mediaTypes.ociManifest, aConfig), descriptorOf(mediaTypes.ociManifest, aLayer)],
      subject: subjectDescriptor,
      annotations: { [annotationKey]: 'index' },
    });
    await add(index, typeIndex, 'index', mediaTypes.ociIndex);

    subjectDigest = await t.pushManifest(repo, 'subject', subjectManifest);

    await add(configArtifact(typeB, blobB, subjectDescriptor, 'config b'), typeB, 'config b');
    await add(layerArtifact(typeB, blobB, subjectDescriptor, 'layer b'), typeB, 'layer b');

    unpushedSubject = descriptorOf(mediaTypes.ociManifest, Buffer.from('{"never":"pushed"}'));
    await putReferrer(layerArtifact(typeB, blobB, unpushedSubject), unpushedSubject);
  });

  it('lists every referrer of the subject as descriptors with artifactType and annotations', async () => {
    const { manifests, headers } = await referrers(subjectDigest);
    expect(headers['oci-filters-applied']).toBeUndefined();
    expect(manifests).toHaveLength(5);
    expect(new Set(manifests.map((m) => m.digest)).size).toBe(5);
    const byDigest = new Map(manifests.map((m) => [m.digest, m]));
    for (const referrer of expected) {
      expect(byDigest.get(referrer.digest)).toEqual({
        mediaType: referrer.mediaType,
        digest: referrer.digest,
        size: referrer.manifest.length,
        artifactType: referrer.artifactType,
        annotations: { [annotationKey]: referrer.annotation },
      });
    }
  });

  it('the artifactType filter keeps the matching referrers and says so in OCI-Filters-Applied', async () => {
    const { manifests, headers } = await referrers(subjectDigest, `?artifactType=${encodeURIComponent(typeA)}`);
    expect(headers['oci-filters-applied']).toBe('artifactType');
    expect(manifests.map((m) => m.digest).sort()).toEqual(expected.filter((r) => r.artifactType === typeA).map((r) => r.digest).sort());
    for (const m of manifests) expect(m.artifactType).toBe(typeA);

    const index = await referrers(subjectDigest, `?artifactType=${encodeURIComponent(typeIndex)}`);
    expect(index.manifests.map((m) => m.mediaType)).toEqual([mediaTypes.ociIndex]);
  });

  it('a filter that matches nothing answers an empty index, still with OCI-Filters-Applied', async () => {
    const { manifests, headers } = await referrers(subjectDigest, '?artifactType=application%2Fvnd.nothing');
    expect(manifests).toEqual([]);
    expect(headers['oci-filters-applied']).toBe('artifactType');
  });

  it('a referrer may be pushed before its subject exists, and is listed for it', async () => {
    expect((await t.get(`/v2/${repo}/manifests/${unpushedSubject.digest}`)).statusCode).toBe(404);
    const { manifests } = await referrers(unpushedSubject.digest);
    expect(manifests).toHaveLength(1);
    expect(manifests[0]!.artifactType).toBe(typeB);
    expect(manifests[0]!.annotations).toBeUndefined();
  });

  it('a digest without referrers answers 200 with an empty index', async () => {
    expect((await referrers(sha256('hello world'))).manifests).toEqual([]);
  });

  it('referrers are per repository; an unknown repository answers an empty index, not 404', async () => {
    for (const name of ['refs-other', 'no-such-repo']) {
      const response = await t.get(`/v2/${name}/referrers/${subjectDigest}`);
      expect(response.statusCode).toBe(200);
      expect(response.headers['content-type']).toBe(mediaTypes.ociIndex);
      expect(response.json()).toEqual({ schemaVersion: 2, mediaType: mediaTypes.ociIndex, manifests: [] });
    }
  });

  it('an invalid digest is DIGEST_INVALID', async () => {
    ociError(await t.get(`/v2/${repo}/referrers/sha256:nope`), 400, 'DIGEST_INVALID');
  });

  it('a deleted referrer is no longer listed', async () => {
    const extra = layerArtifact(typeB, blobB, subjectDescriptor, 'short-lived');
    const digest = await putReferrer(extra, subjectDescriptor);
    expect((await referrers(subjectDigest)).manifests).toHaveLength(6);
    expect((await t.delete(`/v2/${repo}/manifests/${digest}`)).statusCode).toBe(202);
    const { manifests } = await referrers(subjectDigest);
    expect(manifests).toHaveLength(5);
    expect(manifests.map((m) => m.digest)).not.toContain(digest);
  });

  it('a manifest without subject answers no OCI-Subject header', async () => {
    const plain = ociManifest({ artifactType: typeA, config: emptyConfigDescriptor, layers: [descriptorOf(typeA, blobA)] });
    const ok = await t.putManifest(repo, 'plain', plain);
    expect(ok.statusCode).toBe(201);
    expect(ok.headers['oci-subject']).toBeUndefined();
  });
});

describe('tag-schema fallback', () => {
  it('a `sha256-<hex>` tag is a normal tag: push, pull, list and untag', async () => {
    const subject = await t.pushImage('fallback', 'v1');
    await t.pushBlob('fallback', emptyConfig);
    await t.pushBlob('fallback', blobA);
    const artifact = layerArtifact(typeA, blobA, subject.descriptor, 'signature');
    await t.pushManifest('fallback', sha256(artifact), artifact);

    const fallbackTag = subject.digest.replace(':', '-');
    expect(fallbackTag).toMatch(/^sha256-[0-9a-f]{64}$/);
    const index = ociIndex({ manifests: [descriptorOf(mediaTypes.ociManifest, artifact, { artifactType: typeA, annotations: { [annotationKey]: 'signature' } })] });
    const put = await t.putManifest('fallback', fallbackTag, index, mediaTypes.ociIndex);
    expect(put.statusCode).toBe(201);
    expect(put.headers['oci-subject']).toBeUndefined();

    const get = await t.get(`/v2/fallback/manifests/${fallbackTag}`);
    expect(get.statusCode).toBe(200);
    expect(get.headers['content-type']).toBe(mediaTypes.ociIndex);
    expect(get.rawPayload.equals(index)).toBe(true);
    expect((await t.head(`/v2/fallback/manifests/${fallbackTag}`)).headers['docker-content-digest']).toBe(sha256(index));
    expect(await t.tags('fallback')).toEqual([fallbackTag, 'v1'].sort());

    // The referrers API sees the artifact itself too.
    expect((await t.get(`/v2/fallback/referrers/${subject.digest}`)).json().manifests.map((m: Descriptor) => m.digest)).toEqual([sha256(artifact)]);

    // Updating the fallback index moves the tag; deleting the tag removes it.
    const updated = ociIndex({ manifests: [] });
    await t.pushManifest('fallback', fallbackTag, updated, mediaTypes.ociIndex);
    expect((await t.get(`/v2/fallback/manifests/${fallbackTag}`)).rawPayload.equals(updated)).toBe(true);
    expect((await t.delete(`/v2/fallback/manifests/${fallbackTag}`)).statusCode).toBe(202);
    ociError(await t.get(`/v2/fallback/manifests/${fallbackTag}`), 404, 'MANIFEST_UNKNOWN');
  });
});
