// Pushing blobs: sessions, monolithic, streamed and chunked uploads, the errors of each, mounts,
// cancellation, restarts and expiry.
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App } from '../../src/app/app.js';
import { createTestApp, location, ociError, sha256, withQuery, type TestApp } from '../support/http-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.cleanup();
});

const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The blob must be pullable from `repository` with exactly these bytes. */
async function expectBlob(repository: string, digest: string, content: Buffer): Promise<void> {
  const response = await t.get(`/v2/${repository}/blobs/${digest}`);
  expect(response.statusCode).toBe(200);
  expect(response.headers['docker-content-digest']).toBe(digest);
  expect(response.rawPayload.equals(content)).toBe(true);
}

describe('starting a session', () => {
  it('POST answers 202 with a usable Location, Docker-Upload-UUID, Range 0-0 and no body', async () => {
    const response = await t.post('/v2/start/blobs/uploads/');
    expect(response.statusCode).toBe(202);
    const id = response.headers['docker-upload-uuid'] as string;
    expect(id).toMatch(uuid);
    expect(response.headers.location).toBe(`/v2/start/blobs/uploads/${id}`);
    expect(response.headers.range).toBe('0-0');
    expect(response.headers['content-length']).toBe('0');
    const status = await t.get(location(response));
    expect(status.statusCode).toBe(204);
  });

  it('POST without the trailing slash works too', async () => {
    const response = await t.post('/v2/start/blobs/uploads');
    expect(response.statusCode).toBe(202);
    expect(response.headers.location).toMatch(/^\/v2\/start\/blobs\/uploads\/[0-9a-f-]{36}$/);
  });
});

describe('monolithic uploads', () => {
  it('POST ?digest= with the body answers 201 with Location and Docker-Content-Digest', async () => {
    const content = randomBytes(5000);
    const digest = sha256(content);
    const staged = await t.stagedUploads();
    const response = await t.post(`/v2/mono/blobs/uploads/?digest=${digest}`, content, { 'content-type': 'application/octet-stream' });
    expect(response.statusCode).toBe(201);
    expect(response.headers.location).toBe(`/v2/mono/blobs/${digest}`);
    expect(response.headers['docker-content-digest']).toBe(digest);
    expect(response.headers['content-length']).toBe('0');
    await expectBlob('mono', digest, content);
    expect(await t.stagedUploads()).toEqual(staged);
  });

  it('POST then a single PUT ?digest= with the whole body answers 201', async () => {
    const content = randomBytes(2000);
    const url = await t.startUpload('mono');
    const response = await t.put(withQuery(url, { digest: sha256(content) }), content, { 'content-type': 'application/octet-stream' });
    expect(response.statusCode).toBe(201);
    expect(response.headers.location).toBe(`/v2/mono/blobs/${sha256(content)}`);
    await expectBlob('mono', sha256(content), content);
    ociError(await t.get(url), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('a wrong digest is DIGEST_INVALID and leaves nothing behind', async () => {
    const content = randomBytes(100);
    const wrong = sha256('not the content');
    const staged = await t.stagedUploads();
    const error = ociError(await t.post(`/v2/mono/blobs/uploads/?digest=${wrong}`, content), 400, 'DIGEST_INVALID');
    expect(error.detail).toEqual({ expected: wrong, actual: sha256(content) });
    expect((await t.head(`/v2/mono/blobs/${wrong}`)).statusCode).toBe(404);
    expect((await t.head(`/v2/mono/blobs/${sha256(content)}`)).statusCode).toBe(404);
    expect(await t.stagedUploads()).toEqual(staged);
  });

  it('a body shorter than its Content-Length is SIZE_INVALID', async () => {
    const content = randomBytes(100);
    const staged = await t.stagedUploads();
    const response = await t.post(`/v2/mono/blobs/uploads/?digest=${sha256(content)}`, content, { 'content-length': '150' });
    expect(ociError(response, 400, 'SIZE_INVALID').detail).toEqual({ declared: 150, received: 100 });
    expect((await t.head(`/v2/mono/blobs/${sha256(content)}`)).statusCode).toBe(404);
    expect(await t.stagedUploads()).toEqual(staged);
  });

  it('pushing the same blob twice is fine', async () => {
    const content = Buffer.from('twice');
    await t.pushBlob('mono', content);
    await t.pushBlob('mono', content);
    await expectBlob('mono', sha256(content), content);
  });
});

describe('streamed uploads', () => {
  it('PATCH without Content-Range appends; PUT ?digest= without a body completes', async () => {
    const content = randomBytes(3000);
    const url = await t.startUpload('stream');
    const first = await t.patch(url, content.subarray(0, 1000));
    expect(first.statusCode).toBe(202);
    expect(first.headers.range).toBe('0-999');
    expect(first.headers['content-length']).toBe('0');
    expect(first.headers['docker-upload-uuid']).toBe(url.split('/').pop());
    const second = await t.patch(location(first), content.subarray(1000));
    expect(second.statusCode).toBe(202);
    expect(second.headers.range).toBe('0-2999');
    const done = await t.put(withQuery(location(second), { digest: sha256(content) }), undefined, { 'content-length': '0' });
    expect(done.statusCode).toBe(201);
    expect(done.headers.location).toBe(`/v2/stream/blobs/${sha256(content)}`);
    expect(done.headers['docker-content-digest']).toBe(sha256(content));
    await expectBlob('stream', sha256(content), content);
  });

  it('a PATCH with chunked transfer encoding (no Content-Length) streams the body', async () => {
    const content = randomBytes(200_000);
    const url = await t.startUpload('stream');
    const parts = [content.subarray(0, 70_000), content.subarray(70_000, 140_000), content.subarray(140_000)];
    const response = await t.inject({
      method: 'PATCH',
      url,
      payload: Readable.from(parts),
      headers: { 'content-type': 'application/octet-stream', 'transfer-encoding': 'chunked' },
    });
    expect(response.statusCode, response.body).toBe(202);
    expect(response.headers.range).toBe(`0-${content.length - 1}`);
    expect((await t.put(withQuery(url, { digest: sha256(content) }))).statusCode).toBe(201);
    await expectBlob('stream', sha256(content), content);
  });

  it('a PATCH body shorter than its Content-Length is SIZE_INVALID and the session keeps its size', async () => {
    const url = await t.startUpload('stream');
    await t.patch(url, Buffer.from('12345'));
    ociError(await t.patch(url, Buffer.from('678'), { 'content-length': '10' }), 400, 'SIZE_INVALID');
    expect((await t.get(url)).headers.range).toBe('0-4');
  });
});

describe('chunked uploads', () => {
  const content = randomBytes(42);
  const chunk1 = content.subarray(0, 22);
  const chunk2 = content.subarray(22);

  it('an out-of-order first chunk is 416 with the current Range', async () => {
    const url = await t.startUpload('chunks');
    const response = await t.patch(url, chunk2, { 'content-range': '22-41', 'content-length': '20' });
    ociError(response, 416, 'RANGE_INVALID');
    expect(response.headers.range).toBe('0-0');
    expect(response.headers['docker-upload-uuid']).toBe(url.split('/').pop());
    const status = await t.get(url);
    expect(status.headers.range).toBe('0-0');
  });

  it('chunks in order, a retried chunk (416), the status GET and the closing PUT', async () => {
    const url = await t.startUpload('chunks');
    const first = await t.patch(url, chunk1, { 'content-range': '0-21', 'content-length': '22' });
    expect(first.statusCode).toBe(202);
    expect(first.headers.range).toBe('0-21');
    expect(first.headers.location).toBe(url);

    const retry = await t.patch(url, chunk1, { 'content-range': '0-21' });
    ociError(retry, 416, 'RANGE_INVALID');
    expect(retry.headers.range).toBe('0-21');

    const gap = await t.patch(url, chunk2, { 'content-range': '30-49' });
    ociError(gap, 416, 'RANGE_INVALID');
    expect(gap.headers.range).toBe('0-21');

    const status = await t.get(url);
    expect(status.statusCode).toBe(204);
    expect(status.headers.range).toBe('0-21');
    expect(status.headers.location).toBe(url);
    expect(status.headers['docker-upload-uuid']).toBe(url.split('/').pop());
    expect(status.body).toBe('');

    const second = await t.patch(location(status), chunk2, { 'content-range': '22-41', 'content-length': '20' });
    expect(second.statusCode).toBe(202);
    expect(second.headers.range).toBe('0-41');

    const done = await t.put(withQuery(location(second), { digest: sha256(content) }), undefined, { 'content-length': '0' });
    expect(done.statusCode).toBe(201);
    expect(done.headers.location).toBe(`/v2/chunks/blobs/${sha256(content)}`);
    await expectBlob('chunks', sha256(content), content);
  });

  it('the closing PUT may carry the final chunk with its Content-Range', async () => {
    const url = await t.startUpload('chunks');
    expect((await t.patch(url, chunk1, { 'content-range': '0-21' })).statusCode).toBe(202);
    const done = await t.put(withQuery(url, { digest: sha256(content) }), chunk2, {
      'content-range': '22-41',
      'content-type': 'application/octet-stream',
    });
    expect(done.statusCode).toBe(201);
    expect(done.headers['docker-content-digest']).toBe(sha256(content));
    await expectBlob('chunks', sha256(content), content);
  });

  it('the closing PUT may carry the final chunk without Content-Range', async () => {
    const other = randomBytes(64);
    const url = await t.startUpload('chunks');
    await t.patch(url, other.subarray(0, 10), { 'content-range': '0-9' });
    const done = await t.put(withQuery(url, { digest: sha256(other) }), other.subarray(10));
    expect(done.statusCode).toBe(201);
    await expectBlob('chunks', sha256(other), other);
  });

  it('a final chunk at the wrong offset is 416 and completes nothing', async () => {
    const url = await t.startUpload('chunks');
    await t.patch(url, chunk1, { 'content-range': '0-21' });
    const response = await t.put(withQuery(url, { digest: sha256(content) }), chunk2, { 'content-range': '23-42' });
    ociError(response, 416, 'RANGE_INVALID');
    expect(response.headers.range).toBe('0-21');
    expect((await t.get(url)).statusCode).toBe(204);
  });

  it('Content-Length that differs from the Content-Range span is SIZE_INVALID', async () => {
    const url = await t.startUpload('chunks');
    const error = ociError(await t.patch(url, chunk1.subarray(0, 5), { 'content-range': '0-21', 'content-length': '5' }), 400, 'SIZE_INVALID');
    expect(error.detail).toEqual({ span: 22, length: 5 });
    expect((await t.get(url)).headers.range).toBe('0-0');
  });

  it('a body shorter than its Content-Range is SIZE_INVALID and the chunk can be sent again', async () => {
    const url = await t.startUpload('chunks');
    const error = ociError(await t.patch(url, chunk1.subarray(0, 5), { 'content-range': '0-21', 'content-length': '22' }), 400, 'SIZE_INVALID');
    expect(error.detail).toEqual({ declared: 22, received: 5 });
    expect((await t.get(url)).headers.range).toBe('0-0');
    expect((await t.patch(url, chunk1, { 'content-range': '0-21' })).headers.range).toBe('0-21');
  });

  it('two concurrent chunks for the same offset: one is appended, the other is 416', async () => {
    const url = await t.startUpload('chunks');
    const responses = await Promise.all([
      t.patch(url, chunk1, { 'content-range': '0-21' }),
      t.patch(url, chunk1, { 'content-range': '0-21' }),
    ]);
    expect(responses.map((r) => r.statusCode).sort()).toEqual([202, 416]);
    expect((await t.get(url)).headers.range).toBe('0-21');
    expect((await t.put(withQuery(url, { digest: sha256(content) }), chunk2, { 'content-range': '22-41' })).statusCode).toBe(201);
  });

  it.each(['bytes */42', '5-2', 'abc', '0-'])('a malformed Content-Range (%s) is 416', async (range) => {
    const url = await t.startUpload('chunks');
    ociError(await t.patch(url, chunk1, { 'content-range': range }), 416, 'RANGE_INVALID');
  });

  it('the spec form `bytes <start>-<end>/<total>` of Content-Range is accepted', async () => {
    const url = await t.startUpload('chunks');
    expect((await t.patch(url, chunk1, { 'content-range': 'bytes 0-21/42' })).statusCode).toBe(202);
    expect((await t.patch(url, chunk2, { 'content-range': 'bytes 22-41/*' })).statusCode).toBe(202);
    expect((await t.put(withQuery(url, { digest: sha256(content) }))).statusCode).toBe(201);
  });

  it('a wrong digest on the closing PUT is DIGEST_INVALID and the blob stays invisible', async () => {
    const url = await t.startUpload('chunks-bad');
    await t.patch(url, chunk1, { 'content-range': '0-21' });
    const wrong = sha256('wrong');
    const error = ociError(await t.put(withQuery(url, { digest: wrong })), 400, 'DIGEST_INVALID');
    expect(error.detail).toEqual({ expected: wrong, actual: sha256(chunk1) });
    expect((await t.head(`/v2/chunks-bad/blobs/${wrong}`)).statusCode).toBe(404);
    expect((await t.head(`/v2/chunks-bad/blobs/${sha256(chunk1)}`)).statusCode).toBe(404);
  });

  it('a helper-driven chunked push of a larger blob round-trips', async () => {
    const big = randomBytes(256 * 1024 + 7);
    const digest = await t.pushBlobChunked('chunks', big, 64 * 1024);
    await expectBlob('chunks', digest, big);
  });
});

describe('session lifecycle', () => {
  it('DELETE cancels: 204, then GET, PATCH, PUT and DELETE are BLOB_UPLOAD_UNKNOWN and the data is gone', async () => {
    const url = await t.startUpload('cancel');
    const id = url.split('/').pop()!;
    // With Content-Range: staged (a whole body alone would be stored as the blob it is).
    await t.patch(url, Buffer.from('some bytes'), { 'content-range': '0-9' });
    expect(await t.stagedUploads()).toContain(id);

    const cancelled = await t.delete(url);
    expect(cancelled.statusCode).toBe(204);
    expect(await t.stagedUploads()).not.toContain(id);

    ociError(await t.get(url), 404, 'BLOB_UPLOAD_UNKNOWN');
    ociError(await t.patch(url, Buffer.from('more')), 404, 'BLOB_UPLOAD_UNKNOWN');
    ociError(await t.put(withQuery(url, { digest: sha256('some bytes') })), 404, 'BLOB_UPLOAD_UNKNOWN');
    ociError(await t.delete(url), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('a completed session is gone', async () => {
    const url = await t.startUpload('cancel');
    await t.put(withQuery(url, { digest: sha256('x') }), Buffer.from('x'));
    ociError(await t.get(url), 404, 'BLOB_UPLOAD_UNKNOWN');
    ociError(await t.patch(url, Buffer.from('y')), 404, 'BLOB_UPLOAD_UNKNOWN');
  });

  it('unknown and malformed session ids are BLOB_UPLOAD_UNKNOWN', async () => {
    for (const id of ['00000000-0000-4000-8000-000000000000', 'not-a-uuid', 'ABCDEF00-0000-4000-8000-000000000000']) {
      ociError(await t.get(`/v2/cancel/blobs/uploads/${id}`), 404, 'BLOB_UPLOAD_UNKNOWN');
      ociError(await t.patch(`/v2/cancel/blobs/uploads/${id}`, Buffer.from('x')), 404, 'BLOB_UPLOAD_UNKNOWN');
    }
  });

  it('upload data cut short behind the session (e.g. a crash) is BLOB_UPLOAD_INVALID, not a corrupt blob', async () => {
    const content = Buffer.from('0123456789');
    for (const complete of [false, true]) {
      const url = await t.startUpload('lost');
      const id = url.split('/').pop()!;
      await t.patch(url, content, { 'content-range': '0-9' }); // staged
      await t.app.blobStore.appendUpload(id, Readable.from([]), 5); // keeps only the first 5 bytes
      const response = complete
        ? await t.put(withQuery(url, { digest: sha256(content) }))
        : await t.patch(url, Buffer.from('abc'), { 'content-range': '10-12' });
      expect(ociError(response, 400, 'BLOB_UPLOAD_INVALID').detail).toEqual({ session: id });
      expect((await t.head(`/v2/lost/blobs/${sha256(content)}`)).statusCode).toBe(404);
    }
  });

  it('upload data removed behind the session is BLOB_UPLOAD_UNKNOWN', async () => {
    const content = Buffer.from('0123456789');
    for (const complete of [false, true]) {
      const url = await t.startUpload('lost');
      const id = url.split('/').pop()!;
      await t.patch(url, content, { 'content-range': '0-9' }); // staged
      await t.app.blobStore.abortUpload(id);
      const response = complete ? await t.put(withQuery(url, { digest: sha256(content) })) : await t.patch(url, Buffer.from('abc'));
      expect(ociError(response, 404, 'BLOB_UPLOAD_UNKNOWN').detail).toEqual({ session: id });
    }
  });

  it('a session belongs to its repository', async () => {
    const url = await t.startUpload('owner');
    const foreign = url.replace('/v2/owner/', '/v2/intruder/');
    ociError(await t.get(foreign), 404, 'BLOB_UPLOAD_UNKNOWN');
    ociError(await t.patch(foreign, Buffer.from('x')), 404, 'BLOB_UPLOAD_UNKNOWN');
    ociError(await t.put(withQuery(foreign, { digest: sha256('') })), 404, 'BLOB_UPLOAD_UNKNOWN');
    expect((await t.get(url)).statusCode).toBe(204);
  });
});

describe('cross-repository mounts', () => {
  const content = randomBytes(500);
  let digest: string;
  beforeAll(async () => {
    digest = await t.pushBlob('mount-source', content);
  });

  it('mounting a blob the source repository holds answers 201 and makes it pullable', async () => {
    const response = await t.post(`/v2/mount-target/blobs/uploads/?mount=${digest}&from=mount-source`);
    expect(response.statusCode).toBe(201);
    expect(response.headers.location).toBe(`/v2/mount-target/blobs/${digest}`);
    expect(response.headers['docker-content-digest']).toBe(digest);
    const pulled = await t.get(location(response));
    expect(pulled.statusCode).toBe(200);
    expect(pulled.rawPayload.equals(content)).toBe(true);
  });

  it('mounting from a repository that does not hold the blob falls back to a 202 session', async () => {
    await t.pushBlob('mount-empty', Buffer.from('something else'));
    const response = await t.post(`/v2/mount-fallback/blobs/uploads/?mount=${digest}&from=mount-empty`);
    expect(response.statusCode).toBe(202);
    expect(location(response)).toMatch(/^\/v2\/mount-fallback\/blobs\/uploads\/[0-9a-f-]{36}$/);
    expect(response.headers['docker-upload-uuid']).toMatch(uuid);
    expect((await t.head(`/v2/mount-fallback/blobs/${digest}`)).statusCode).toBe(404);
    // The session is usable as given.
    const done = await t.put(withQuery(location(response), { digest }), content);
    expect(done.statusCode).toBe(201);
    await expectBlob('mount-fallback', digest, content);
  });

  it('mounting from a repository that does not exist falls back to a 202 session', async () => {
    const response = await t.post(`/v2/mount-fallback2/blobs/uploads/?mount=${digest}&from=no-such-repo`);
    expect(response.statusCode).toBe(202);
    expect(location(response)).toMatch(/^\/v2\/mount-fallback2\/blobs\/uploads\//);
  });

  it('mounting a digest unknown to the registry falls back to a 202 session', async () => {
    const response = await t.post(`/v2/mount-target/blobs/uploads/?mount=${sha256('hello world')}&from=mount-source`);
    expect(response.statusCode).toBe(202);
    expect(response.headers['docker-upload-uuid']).toMatch(uuid);
  });

  it('an OCI 1.1 mount without `from` finds the blob anywhere in the registry (201)', async () => {
    const response = await t.post(`/v2/mount-anywhere/blobs/uploads/?mount=${digest}`);
    expect(response.statusCode).toBe(201);
    expect(response.headers.location).toBe(`/v2/mount-anywhere/blobs/${digest}`);
    await expectBlob('mount-anywhere', digest, content);
  });

  it('a mount without `from` of an unknown digest answers a 202 session', async () => {
    const response = await t.post(`/v2/mount-anywhere/blobs/uploads/?mount=${sha256('unknown')}`);
    expect(response.statusCode).toBe(202);
    expect(location(response)).toMatch(/^\/v2\/mount-anywhere\/blobs\/uploads\//);
  });

  it('a mounted blob is independent of its source: deleting the source keeps the mount', async () => {
    const own = await t.pushBlob('mount-src2', Buffer.from('mount me'));
    expect((await t.post(`/v2/mount-dst2/blobs/uploads/?mount=${own}&from=mount-src2`)).statusCode).toBe(201);
    expect((await t.delete(`/v2/mount-src2/blobs/${own}`)).statusCode).toBe(202);
    await expectBlob('mount-dst2', own, Buffer.from('mount me'));
  });
});

describe('restarts and expiry', () => {
  it('an upload session survives a restart of the server and completes with the right digest', async () => {
    const content = randomBytes(10_000);
    const url = await t.startUpload('restart');
    const first = await t.patch(url, content.subarray(0, 4000), { 'content-range': '0-3999' });
    expect(first.statusCode).toBe(202);

    await t.restart();

    const status = await t.get(url);
    expect(status.statusCode).toBe(204);
    expect(status.headers.range).toBe('0-3999');
    const second = await t.patch(location(status), content.subarray(4000), { 'content-range': '4000-9999' });
    expect(second.statusCode).toBe(202);
    expect(second.headers.range).toBe('0-9999');
    const wrong = await t.put(withQuery(location(second), { digest: sha256(content.subarray(1)) }));
    ociError(wrong, 400, 'DIGEST_INVALID');
    const done = await t.put(withQuery(location(second), { digest: sha256(content) }));
    expect(done.statusCode).toBe(201);
    expect(done.headers['docker-content-digest']).toBe(sha256(content));
    await expectBlob('restart', sha256(content), content);
  });

  it('blobs, sessions and their sizes are all still there after a restart', async () => {
    const digest = await t.pushBlob('restart', Buffer.from('durable'));
    await t.restart();
    await expectBlob('restart', digest, Buffer.from('durable'));
  });

  it('expired sessions are removed with their data', async () => {
    const url = await t.startUpload('expire');
    const id = url.split('/').pop()!;
    await t.patch(url, randomBytes(1000), { 'content-range': '0-999' });
    expect(await t.stagedUploads()).toContain(id);

    const removed = await t.app.registry.uploads.expire(new Date(Date.now() + 1000));
    expect(removed).toBeGreaterThanOrEqual(1);

    ociError(await t.get(url), 404, 'BLOB_UPLOAD_UNKNOWN');
    ociError(await t.patch(url, Buffer.from('late')), 404, 'BLOB_UPLOAD_UNKNOWN');
    expect(await t.stagedUploads()).toEqual([]);
    expect(await t.app.metadata.uploads.count()).toBe(0);
  });

  it('sessions younger than the cutoff are kept', async () => {
    const url = await t.startUpload('expire');
    await t.patch(url, Buffer.from('fresh'));
    expect(await t.app.registry.uploads.expire(new Date(Date.now() - 60_000))).toBe(0);
    expect((await t.get(url)).headers.range).toBe('0-4');
  });
});

describe('sessions staged lazily (the POST creates no staging data)', () => {
  /** Sends a request to another app on the same data directory (another worker or node). */
  function on(app: App, method: 'GET' | 'PATCH' | 'PUT', url: string, body?: Buffer, headers: Record<string, string> = {}) {
    return app.http.inject({ method, url, payload: body, headers: body ? { 'content-type': 'application/octet-stream', ...headers } : headers });
  }

  it('a POST writes nothing; a PUT with the whole body stores the blob without staging', async () => {
    const before = await t.stagedUploads();
    const url = await t.startUpload('lazy');
    expect(await t.stagedUploads()).toEqual(before);
    const content = randomBytes(5000);
    const done = await t.put(withQuery(url, { digest: sha256(content) }), content, { 'content-type': 'application/octet-stream' });
    expect(done.statusCode, done.body).toBe(201);
    expect(await t.stagedUploads()).toEqual(before);
    await expectBlob('lazy', sha256(content), content);
  });

  it('a session started before a restart completes after it with the whole body', async () => {
    const url = await t.startUpload('lazy-restart');
    await t.restart();
    const content = randomBytes(3000);
    const done = await t.put(withQuery(url, { digest: sha256(content) }), content, { 'content-type': 'application/octet-stream' });
    expect(done.statusCode, done.body).toBe(201);
    await expectBlob('lazy-restart', sha256(content), content);
  });

  it('a session continues across two processes: chunks, a streamed PATCH and the PUT on either', async () => {
    const other = await t.openSibling();
    try {
      // Chunked: started here, first chunk there, second here, completed there.
      const content = randomBytes(9000);
      const url = await t.startUpload('lazy-two');
      const first = await on(other, 'PATCH', url, content.subarray(0, 4000), { 'content-range': '0-3999' });
      expect(first.statusCode, first.body).toBe(202);
      const second = await t.patch(location(first), content.subarray(4000), { 'content-range': '4000-8999' });
      expect(second.statusCode, second.body).toBe(202);
      expect(second.headers.range).toBe('0-8999');
      const done = await on(other, 'PUT', withQuery(location(second), { digest: sha256(content) }));
      expect(done.statusCode, done.body).toBe(201);
      await expectBlob('lazy-two', sha256(content), content);

      // Streamed: the whole body in one PATCH here (stored as the blob it is), then a chunk and the PUT there.
      const more = randomBytes(6000);
      const streamed = await t.startUpload('lazy-two');
      const patched = await t.patch(streamed, more.subarray(0, 2500));
      expect(patched.statusCode, patched.body).toBe(202);
      const rest = await on(other, 'PATCH', location(patched), more.subarray(2500), { 'content-range': '2500-5999' });
      expect(rest.statusCode, rest.body).toBe(202);
      const finished = await on(other, 'PUT', withQuery(location(rest), { digest: sha256(more) }));
      expect(finished.statusCode, finished.body).toBe(201);
      await expectBlob('lazy-two', sha256(more), more);

      // The status answers the same on both.
      const idle = await t.startUpload('lazy-two');
      const status = await on(other, 'GET', idle);
      expect(status.statusCode).toBe(204);
      expect(status.headers.range).toBe('0-0');
    } finally {
      await other.close();
    }
  });

  it('a first chunk cut short before it was acknowledged is written again from the start', async () => {
    const url = await t.startUpload('lazy-retry');
    const id = url.split('/').pop()!;
    // What an interrupted first append leaves: staging data, nothing acknowledged.
    await t.app.blobStore.createUpload(id);
    await t.app.blobStore.appendUpload(id, Readable.from([Buffer.from('half a chunk')]), 0);
    const content = randomBytes(2000);
    const chunk = await t.patch(url, content, { 'content-range': '0-1999' });
    expect(chunk.statusCode, chunk.body).toBe(202);
    const done = await t.put(withQuery(location(chunk), { digest: sha256(content) }));
    expect(done.statusCode, done.body).toBe(201);
    await expectBlob('lazy-retry', sha256(content), content);
  });
});
