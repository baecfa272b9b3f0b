// Content management: untagging, deleting manifests and blobs, and the deletions the registry
// refuses because something still references the content.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, descriptorOf, mediaTypes, ociError, ociIndex, sha256, type TestApp } from '../support/http-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.cleanup();
});

describe('the conformance workflow', () => {
  it('untag, delete the manifest, then delete its blobs; each step is visible', async () => {
    const image = await t.pushImage('workflow', 'tagtest0');
    await t.pushManifest('workflow', 'keep', image.manifest);
    const before = await t.tags('workflow');
    expect(before).toEqual(['keep', 'tagtest0']);

    const untag = await t.delete('/v2/workflow/manifests/tagtest0');
    expect(untag.statusCode).toBe(202);
    expect(untag.headers['content-length']).toBe('0');
    expect((await t.tags('workflow')).length).toBeLessThan(before.length);

    const deleted = await t.delete(`/v2/workflow/manifests/${image.digest}`);
    expect(deleted.statusCode).toBe(202);
    ociError(await t.get(`/v2/workflow/manifests/${image.digest}`), 404, 'MANIFEST_UNKNOWN');
    expect(await t.tags('workflow')).toEqual([]);

    for (const blob of [image.config, ...image.layers]) {
      expect((await t.delete(`/v2/workflow/blobs/${sha256(blob)}`)).statusCode).toBe(202);
      ociError(await t.get(`/v2/workflow/blobs/${sha256(blob)}`), 404, 'BLOB_UNKNOWN');
    }
  });
});

describe('deleting by tag (untag)', () => {
  it('removes only the tag: the manifest and its other tags stay', async () => {
    const image = await t.pushImage('untag', 'a');
    await t.pushManifest('untag', 'b', image.manifest);
    expect((await t.delete('/v2/untag/manifests/a')).statusCode).toBe(202);

    ociError(await t.get('/v2/untag/manifests/a'), 404, 'MANIFEST_UNKNOWN');
    expect((await t.get(`/v2/untag/manifests/${image.digest}`)).statusCode).toBe(200);
    expect((await t.get('/v2/untag/manifests/b')).headers['docker-content-digest']).toBe(image.digest);
    expect(await t.tags('untag')).toEqual(['b']);

    const history = await t.app.metadata.tags.history('untag', 'a');
    expect(history[0]).toMatchObject({ tag: 'a', previousDigest: image.digest, digest: null });
  });

  it('an unknown tag is 404 MANIFEST_UNKNOWN and changes nothing', async () => {
    await t.pushImage('untag2', 'present');
    expect(ociError(await t.delete('/v2/untag2/manifests/absent'), 404, 'MANIFEST_UNKNOWN').detail).toEqual({ tag: 'absent' });
    expect(await t.tags('untag2')).toEqual(['present']);
  });
});

describe('deleting by digest', () => {
  it('removes the manifest and every tag that points at it', async () => {
    const image = await t.pushImage('bydigest', 'one');
    await t.pushManifest('bydigest', 'two', image.manifest);
    const other = await t.pushImage('bydigest', 'other');

    const response = await t.delete(`/v2/bydigest/manifests/${image.digest}`);
    expect(response.statusCode).toBe(202);
    for (const reference of ['one', 'two', image.digest]) ociError(await t.get(`/v2/bydigest/manifests/${reference}`), 404, 'MANIFEST_UNKNOWN');
    expect((await t.head(`/v2/bydigest/manifests/${image.digest}`)).statusCode).toBe(404);
    expect(await t.tags('bydigest')).toEqual(['other']);
    expect((await t.get(`/v2/bydigest/manifests/${other.digest}`)).statusCode).toBe(200);
  });

  it('a second delete, or an unknown digest, is 404 MANIFEST_UNKNOWN', async () => {
    const image = await t.pushImage('bydigest2', 'x');
    expect((await t.delete(`/v2/bydigest2/manifests/${image.digest}`)).statusCode).toBe(202);
    expect(ociError(await t.delete(`/v2/bydigest2/manifests/${image.digest}`), 404, 'MANIFEST_UNKNOWN').detail).toEqual({ digest: image.digest });
    ociError(await t.delete(`/v2/no-such-repo/manifests/${image.digest}`), 404, 'MANIFEST_UNKNOWN');
  });

  it('deleting in one repository leaves the same manifest in another', async () => {
    const image = await t.pushImage('copy-a', 'v1');
    for (const blob of [image.config, ...image.layers]) await t.pushBlob('copy-b', blob);
    await t.pushManifest('copy-b', 'v1', image.manifest);
    expect((await t.delete(`/v2/copy-a/manifests/${image.digest}`)).statusCode).toBe(202);
    expect((await t.get('/v2/copy-b/manifests/v1')).headers['docker-content-digest']).toBe(image.digest);
  });
});

describe('deletions refused while something references the content', () => {
  it('a blob referenced by a manifest of the repository is 409 DENIED and stays pullable', async () => {
    const image = await t.pushImage('inuse', 'v1');
    const layer = sha256(image.layers[0]!);
    const response = await t.delete(`/v2/inuse/blobs/${layer}`);
    const error = ociError(response, 409, 'DENIED');
    expect(error.detail).toEqual({ digest: layer, manifest: image.digest });
    expect(error.message).toMatch(/delete the manifest first/);
    expect((await t.get(`/v2/inuse/blobs/${layer}`)).rawPayload.equals(image.layers[0]!)).toBe(true);

    // Once the manifest is gone, the blob can go.
    expect((await t.delete(`/v2/inuse/manifests/${image.digest}`)).statusCode).toBe(202);
    expect((await t.delete(`/v2/inuse/blobs/${layer}`)).statusCode).toBe(202);
    ociError(await t.get(`/v2/inuse/blobs/${layer}`), 404, 'BLOB_UNKNOWN');
  });

  it('an untagged manifest still protects its blobs', async () => {
    const image = await t.pushImage('inuse2', 'v1');
    await t.delete('/v2/inuse2/manifests/v1');
    ociError(await t.delete(`/v2/inuse2/blobs/${sha256(image.config)}`), 409, 'DENIED');
  });

  it('a manifest of another repository does not protect the blob here', async () => {
    const image = await t.pushImage('holder', 'v1');
    const layer = sha256(image.layers[0]!);
    expect((await t.post(`/v2/bystander/blobs/uploads/?mount=${layer}&from=holder`)).statusCode).toBe(201);
    expect((await t.delete(`/v2/bystander/blobs/${layer}`)).statusCode).toBe(202);
    expect((await t.get(`/v2/holder/blobs/${layer}`)).statusCode).toBe(200);
  });

  it('a manifest referenced by an index of the repository is 409 DENIED until the index is gone', async () => {
    const child = await t.pushImage('indexed', 'child');
    const index = ociIndex({ manifests: [child.descriptor] });
    const indexDigest = await t.pushManifest('indexed', 'multi', index, mediaTypes.ociIndex);

    const error = ociError(await t.delete(`/v2/indexed/manifests/${child.digest}`), 409, 'DENIED');
    expect(error.detail).toEqual({ digest: child.digest, index: indexDigest });
    expect((await t.get(`/v2/indexed/manifests/${child.digest}`)).statusCode).toBe(200);
    expect(await t.tags('indexed')).toEqual(['child', 'multi']);

    // Untagging the child is allowed: the index keeps it.
    expect((await t.delete('/v2/indexed/manifests/child')).statusCode).toBe(202);
    expect((await t.get(`/v2/indexed/manifests/${child.digest}`)).statusCode).toBe(200);

    expect((await t.delete(`/v2/indexed/manifests/${indexDigest}`)).statusCode).toBe(202);
    expect((await t.delete(`/v2/indexed/manifests/${child.digest}`)).statusCode).toBe(202);
    expect(await t.tags('indexed')).toEqual([]);
  });

  it('a referrer does not protect its subject', async () => {
    const subject = await t.pushImage('subjects', 'v1');
    const referrer = await t.pushImage('subjects', 'sig', { subject: subject.descriptor });
    expect((await t.delete(`/v2/subjects/manifests/${subject.digest}`)).statusCode).toBe(202);
    expect((await t.get(`/v2/subjects/manifests/${referrer.digest}`)).statusCode).toBe(200);
    const listed = await t.get(`/v2/subjects/referrers/${subject.digest}`);
    expect(listed.json().manifests.map((m: { digest: string }) => m.digest)).toEqual([referrer.digest]);
  });

  it('an index descriptor may name the child by digest only once it exists (no dangling children after deletes)', async () => {
    const child = await t.pushImage('dangling', 'c');
    expect((await t.delete(`/v2/dangling/manifests/${child.digest}`)).statusCode).toBe(202);
    const index = ociIndex({ manifests: [descriptorOf(mediaTypes.ociManifest, child.manifest)] });
    expect(ociError(await t.putManifest('dangling', 'multi', index, mediaTypes.ociIndex), 404, 'MANIFEST_UNKNOWN').detail).toEqual({ digest: child.digest });
  });
});
