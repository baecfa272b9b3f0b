// Pulling blobs: HEAD and GET (whole and ranged), visibility per repository, sha512, DELETE.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, ociError, sha256, sha512, type TestApp } from '../support/http-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.cleanup();
});

describe('HEAD and GET', () => {
  const content = randomBytes(1000);
  let digest: string;
  beforeAll(async () => {
    digest = await t.pushBlob('pull', content);
  });

  it('HEAD of a missing blob is 404 without a body; GET is BLOB_UNKNOWN with the digest', async () => {
    const missing = sha256('hello world');
    const head = await t.head(`/v2/pull/blobs/${missing}`);
    expect(head.statusCode).toBe(404);
    expect(head.body).toBe('');
    expect(ociError(await t.get(`/v2/pull/blobs/${missing}`), 404, 'BLOB_UNKNOWN').detail).toEqual({ digest: missing });
  });

  it('HEAD answers 200 with the exact Content-Length, the digest and no body', async () => {
    const response = await t.head(`/v2/pull/blobs/${digest}`);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-length']).toBe(String(content.length));
    expect(response.headers['docker-content-digest']).toBe(digest);
    expect(response.headers['content-type']).toBe('application/octet-stream');
    expect(response.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(response.body).toBe('');
  });

  it('GET streams the exact bytes with Content-Length, Content-Type and Docker-Content-Digest', async () => {
    const response = await t.get(`/v2/pull/blobs/${digest}`);
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-length']).toBe(String(content.length));
    expect(response.headers['docker-content-digest']).toBe(digest);
    expect(response.headers['content-type']).toBe('application/octet-stream');
    expect(response.headers['accept-ranges']).toBe('bytes');
    expect(response.rawPayload.equals(content)).toBe(true);
  });

  it('a blob is visible only in the repositories it was pushed or mounted to', async () => {
    expect((await t.head(`/v2/other/blobs/${digest}`)).statusCode).toBe(404);
    ociError(await t.get(`/v2/other/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
    await t.pushBlob('other', content);
    expect((await t.get(`/v2/other/blobs/${digest}`)).rawPayload.equals(content)).toBe(true);
  });

  it('an empty blob has Content-Length 0', async () => {
    const empty = await t.pushBlob('pull', Buffer.alloc(0));
    expect(empty).toBe('sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
    const head = await t.head(`/v2/pull/blobs/${empty}`);
    expect(head.statusCode).toBe(200);
    expect(head.headers['content-length']).toBe('0');
    const get = await t.get(`/v2/pull/blobs/${empty}`);
    expect(get.statusCode).toBe(200);
    expect(get.rawPayload).toHaveLength(0);
  });
});

describe('Range requests', () => {
  const content = randomBytes(100);
  let url: string;
  beforeAll(async () => {
    url = `/v2/ranges/blobs/${await t.pushBlob('ranges', content)}`;
  });

  it.each([
    ['bytes=0-9', 0, 9],
    ['bytes=10-19', 10, 19],
    ['bytes=90-', 90, 99],
    ['bytes=-5', 95, 99],
    ['bytes=-500', 0, 99],
    ['bytes=50-5000', 50, 99],
    ['bytes=99-99', 99, 99],
  ])('%s answers 206 with the slice, Content-Range and Content-Length', async (range, start, end) => {
    const response = await t.get(url, { range });
    expect(response.statusCode).toBe(206);
    expect(response.headers['content-range']).toBe(`bytes ${start}-${end}/100`);
    expect(response.headers['content-length']).toBe(String(end - start + 1));
    expect(response.headers['docker-content-digest']).toBe(sha256(content));
    expect(response.rawPayload.equals(content.subarray(start, end + 1))).toBe(true);
  });

  it.each(['bytes=100-', 'bytes=100-200', 'bytes=5000-', 'bytes=-0'])('%s is 416 with Content-Range bytes */100', async (range) => {
    const response = await t.get(url, { range });
    expect(response.statusCode).toBe(416);
    expect(response.headers['content-range']).toBe('bytes */100');
  });

  it('any range of an empty blob is unsatisfiable', async () => {
    const digest = await t.pushBlob('ranges', Buffer.alloc(0));
    const response = await t.get(`/v2/ranges/blobs/${digest}`, { range: 'bytes=0-' });
    expect(response.statusCode).toBe(416);
    expect(response.headers['content-range']).toBe('bytes */0');
  });

  it.each(['items=0-5', 'bytes=5-2', 'bytes=0-1,5-6', 'bytes=abc'])('an unusable Range (%s) is ignored: 200 with the whole blob', async (range) => {
    const response = await t.get(url, { range });
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-length']).toBe('100');
    expect(response.headers['content-range']).toBeUndefined();
    expect(response.rawPayload.equals(content)).toBe(true);
  });
});

describe('sha512 blobs', () => {
  it('a blob pushed with a sha512 digest is served under it', async () => {
    const content = randomBytes(300);
    const digest = await t.pushBlob('sha512', content, sha512(content));
    const head = await t.head(`/v2/sha512/blobs/${digest}`);
    expect(head.statusCode).toBe(200);
    expect(head.headers['docker-content-digest']).toBe(digest);
    expect(head.headers['content-length']).toBe('300');
    const get = await t.get(`/v2/sha512/blobs/${digest}`);
    expect(get.rawPayload.equals(content)).toBe(true);
    // The same bytes under their sha256 digest were not pushed.
    expect((await t.head(`/v2/sha512/blobs/${sha256(content)}`)).statusCode).toBe(404);
  });

  it('a chunked upload can complete with a sha512 digest', async () => {
    const content = randomBytes(1000);
    const digest = await t.pushBlobChunked('sha512', content, 300, sha512(content));
    expect((await t.get(`/v2/sha512/blobs/${digest}`)).rawPayload.equals(content)).toBe(true);
  });

  it('a sha512 digest that does not match is DIGEST_INVALID', async () => {
    const content = randomBytes(10);
    const wrong = sha512('something else');
    const response = await t.post(`/v2/sha512/blobs/uploads/?digest=${wrong}`, content);
    expect(ociError(response, 400, 'DIGEST_INVALID').detail).toEqual({ expected: wrong, actual: sha512(content) });
    expect((await t.head(`/v2/sha512/blobs/${wrong}`)).statusCode).toBe(404);
  });
});

describe('DELETE', () => {
  it('removes the blob from the repository: 202, then 404 for HEAD, GET and a second DELETE', async () => {
    const digest = await t.pushBlob('delete', Buffer.from('to be deleted'));
    const response = await t.delete(`/v2/delete/blobs/${digest}`);
    expect(response.statusCode).toBe(202);
    expect(response.headers['content-length']).toBe('0');
    expect((await t.head(`/v2/delete/blobs/${digest}`)).statusCode).toBe(404);
    ociError(await t.get(`/v2/delete/blobs/${digest}`), 404, 'BLOB_UNKNOWN');
    expect(ociError(await t.delete(`/v2/delete/blobs/${digest}`), 404, 'BLOB_UNKNOWN').detail).toEqual({ digest });
  });

  it('deleting from one repository leaves the other repositories that hold the blob alone', async () => {
    const content = Buffer.from('shared bytes');
    const digest = await t.pushBlob('delete-a', content);
    await t.pushBlob('delete-b', content);
    expect((await t.delete(`/v2/delete-a/blobs/${digest}`)).statusCode).toBe(202);
    expect((await t.head(`/v2/delete-a/blobs/${digest}`)).statusCode).toBe(404);
    const other = await t.get(`/v2/delete-b/blobs/${digest}`);
    expect(other.statusCode).toBe(200);
    expect(other.rawPayload.equals(content)).toBe(true);
  });

  it('a blob of an unknown repository is BLOB_UNKNOWN', async () => {
    ociError(await t.delete(`/v2/never-pushed/blobs/${sha256('x')}`), 404, 'BLOB_UNKNOWN');
  });
});
