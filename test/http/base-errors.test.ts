// The base endpoint, the error format, and the validation of names, tags and digests on every
// route: wrong input gets the OCI error JSON with the right code, and changes nothing.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configBlob, createTestApp, descriptorOf, ociError, ociManifest, sha256, type TestApp } from '../support/http-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.cleanup();
});

/** What a refused request must not change: repositories, blobs, sessions and staged data. */
async function registryState() {
  return {
    catalog: (await t.get('/v2/_catalog')).json(),
    storedBytes: await t.app.metadata.blobs.totalSize(),
    sessions: await t.app.metadata.uploads.count(),
    staged: await t.stagedUploads(),
  };
}

/** Runs `work` and checks that the registry state is the same afterwards. */
async function expectUnchanged(work: () => Promise<void>): Promise<void> {
  const before = await registryState();
  await work();
  expect(await registryState()).toEqual(before);
}

describe('base endpoint', () => {
  it('GET /v2/ answers 200 with the API version header and a JSON body', async () => {
    const response = await t.get('/v2/');
    expect(response.statusCode).toBe(200);
    expect(response.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.json()).toEqual({});
  });

  it('HEAD /v2/ answers 200 without a body', async () => {
    const response = await t.head('/v2/');
    expect(response.statusCode).toBe(200);
    expect(response.headers['docker-distribution-api-version']).toBe('registry/2.0');
    expect(response.body).toBe('');
  });

  it('/healthz and /readyz answer 200', async () => {
    expect((await t.get('/healthz')).statusCode).toBe(200);
    const ready = await t.get('/readyz');
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready' });
  });

  it('/metrics exposes request counters in the Prometheus format', async () => {
    const response = await t.get('/metrics');
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^text\/plain/);
    expect(response.body).toMatch(/# TYPE \S+ counter/);
  });
});

describe('error responses', () => {
  it('an unknown endpoint under /v2/ is a 404 in the OCI error format, with the API version header', async () => {
    const response = await t.get('/v2/repo/nothing-here');
    ociError(response, 404, 'NOT_FOUND');
    expect(response.headers['docker-distribution-api-version']).toBe('registry/2.0');
  });

  it('a method the endpoint does not have is a 405 with Allow', async () => {
    const response = await t.inject({ method: 'POST', url: '/v2/repo/tags/list' });
    ociError(response, 405, 'METHOD_UNKNOWN');
    expect(response.headers.allow).toBe('GET');
  });
});

describe('repository names', () => {
  const digest = sha256('x');
  const badNames = [
    ['upper case', 'Repo'],
    ['upper case in a later component', 'team/Repo'],
    ['a leading separator', '-repo'],
    ['a trailing separator', 'repo_'],
    ['two dots', 'a..b'],
    ['three underscores', 'a___b'],
    ['an empty component', 'a//b'],
    ['a trailing slash component', 'a/b/'],
    ['odd bytes', 'a%00b'],
    ['a space', 'a%20b'],
    ['an encoded slash', 'a%2Fb'],
    ['256 characters', 'a'.repeat(256)],
    ['256 characters over several components', `${'a'.repeat(127)}/${'b'.repeat(128)}`],
  ];

  it.each(badNames)('a name with %s is NAME_INVALID on every route', (_label, name) =>
    expectUnchanged(async () => {
      const responses = await Promise.all([
        t.get(`/v2/${name}/tags/list`),
        t.get(`/v2/${name}/blobs/${digest}`),
        t.delete(`/v2/${name}/blobs/${digest}`),
        t.post(`/v2/${name}/blobs/uploads/`),
        t.post(`/v2/${name}/blobs/uploads/?digest=${sha256('x')}`, Buffer.from('x')),
        t.get(`/v2/${name}/blobs/uploads/00000000-0000-4000-8000-000000000000`),
        t.get(`/v2/${name}/manifests/latest`),
        t.putManifest(name, 'latest', Buffer.from('{}')),
        t.delete(`/v2/${name}/manifests/latest`),
        t.get(`/v2/${name}/referrers/${digest}`),
      ]);
      for (const response of responses) expect(ociError(response, 400, 'NAME_INVALID').detail).toEqual({ name });
      expect((await t.head(`/v2/${name}/blobs/${digest}`)).statusCode).toBe(400);
    }));

  it('names with the allowed separators and exactly 255 characters work', async () => {
    const long = `${'a'.repeat(127)}/${'b'.repeat(127)}`;
    expect(long).toHaveLength(255);
    for (const name of ['a', 'a.b', 'a_b', 'a__b', 'a-b', 'a---b', 'a0/b1/c2', long]) {
      const content = Buffer.from(`blob for ${name}`);
      const digest = await t.pushBlob(name, content);
      const response = await t.get(`/v2/${name}/blobs/${digest}`);
      expect(response.statusCode).toBe(200);
      expect(response.rawPayload.equals(content)).toBe(true);
      expect((await t.delete(`/v2/${name}/blobs/${digest}`)).statusCode).toBe(202);
    }
  });

  it('a mount from an invalid repository name is NAME_INVALID', () =>
    expectUnchanged(async () => {
      const error = ociError(await t.post(`/v2/target/blobs/uploads/?mount=${digest}&from=Bad..Name`), 400, 'NAME_INVALID');
      expect(error.detail).toEqual({ name: 'Bad..Name' });
    }));

  it('`last` in the catalog must be a repository name', async () => {
    ociError(await t.get('/v2/_catalog?last=Not_A_Name'), 400, 'NAME_INVALID');
  });
});

describe('path traversal (raw paths over a socket, as inject() would normalise them)', () => {
  const digest = sha256('traversal');
  const paths = [
    ['POST', '/v2/a/../b/blobs/uploads/'],
    ['POST', '/v2/../../etc/blobs/uploads/'],
    ['POST', '/v2/a/%2e%2e/b/blobs/uploads/'],
    ['POST', '/v2/a/%2E%2E/b/blobs/uploads/'],
    ['POST', '/v2/a/./b/blobs/uploads/'],
    ['POST', '/v2/a/%2F../b/blobs/uploads/'],
    ['POST', `/v2/a/..%2Fb/blobs/uploads/?digest=${digest}`],
    ['GET', `/v2/a/../b/blobs/${digest}`],
    ['GET', '/v2/a/../b/tags/list'],
    ['GET', '/v2/a/../b/manifests/latest'],
    ['PUT', '/v2/a/%2e%2e/b/manifests/latest'],
    ['DELETE', `/v2/a/../b/manifests/${digest}`],
  ];

  it.each(paths)('%s %s is NAME_INVALID', (method, path) =>
    expectUnchanged(async () => {
      const response = await t.raw(method, path);
      expect(response.status).toBe(400);
      expect(JSON.parse(response.body).errors[0].code).toBe('NAME_INVALID');
    }));

  it.each([
    ['GET', '/v2/repo/blobs/..%2F..%2Fstowage.db'],
    ['GET', '/v2/repo/blobs/sha256:..%2F..%2F..%2Fetc%2Fpasswd'],
    ['GET', '/v2/repo/blobs/%2e%2e'],
    ['DELETE', '/v2/repo/blobs/sha256%3A..'],
    ['GET', '/v2/repo/referrers/..'],
  ])('%s %s (a traversal in the digest) is DIGEST_INVALID', async (method, path) => {
    const response = await t.raw(method, path);
    expect(response.status).toBe(400);
    expect(JSON.parse(response.body).errors[0].code).toBe('DIGEST_INVALID');
  });

  it('a traversal in an upload id is BLOB_UPLOAD_UNKNOWN', () =>
    expectUnchanged(async () => {
      const response = await t.raw('PATCH', '/v2/repo/blobs/uploads/..%2F..%2Fstowage.db');
      expect(response.status).toBe(404);
      expect(JSON.parse(response.body).errors[0].code).toBe('BLOB_UPLOAD_UNKNOWN');
    }));
});

describe('digests', () => {
  const hex = 'a'.repeat(64);
  const badDigests = [
    ['upper-case hex', `sha256:${'A'.repeat(64)}`],
    ['an upper-case algorithm', `SHA256:${hex}`],
    ['short hex', `sha256:${'a'.repeat(63)}`],
    ['long hex', `sha256:${'a'.repeat(65)}`],
    ['an unknown algorithm', `md5:${'a'.repeat(32)}`],
    ['sha512 with a sha256 length', `sha512:${hex}`],
    ['non-hex characters', 'sha256:totallywrong'],
    ['no algorithm', hex],
  ];

  it.each(badDigests)('a digest with %s is DIGEST_INVALID wherever a digest is expected', (_label, digest) =>
    expectUnchanged(async () => {
      const responses = [
        await t.get(`/v2/repo/blobs/${digest}`),
        await t.delete(`/v2/repo/blobs/${digest}`),
        await t.post(`/v2/repo/blobs/uploads/?digest=${digest}`, Buffer.from('x')),
        await t.post(`/v2/repo/blobs/uploads/?mount=${digest}&from=other`),
        await t.get(`/v2/repo/referrers/${digest}`),
      ];
      for (const response of responses) ociError(response, 400, 'DIGEST_INVALID');
      expect((await t.head(`/v2/repo/blobs/${digest}`)).statusCode).toBe(400);
    }));

  it('an invalid digest as a manifest reference is DIGEST_INVALID (it contains a colon, so it is no tag)', () =>
    expectUnchanged(async () => {
      ociError(await t.get('/v2/repo/manifests/sha256:totallywrong'), 400, 'DIGEST_INVALID');
      ociError(await t.putManifest('repo', 'sha256:totallywrong', Buffer.from('blablabla')), 400, 'DIGEST_INVALID');
      ociError(await t.delete(`/v2/repo/manifests/sha256:${'A'.repeat(64)}`), 400, 'DIGEST_INVALID');
    }));

  it('completing an upload with an invalid or missing digest is DIGEST_INVALID and keeps the session', async () => {
    const url = await t.startUpload('digests');
    const patched = await t.patch(url, Buffer.from('abc'));
    expect(patched.statusCode).toBe(202);
    ociError(await t.put(`${url}?digest=sha256:nope`), 400, 'DIGEST_INVALID');
    ociError(await t.put(url), 400, 'DIGEST_INVALID');
    const status = await t.get(url);
    expect(status.statusCode).toBe(204);
    expect(status.headers.range).toBe('0-2');
    expect((await t.put(`${url}?digest=${sha256('abc')}`)).statusCode).toBe(201);
  });
});

describe('tags', () => {
  async function pushableManifest(repository: string): Promise<Buffer> {
    const config = configBlob();
    await t.pushBlob(repository, config);
    return ociManifest({ config: descriptorOf('application/vnd.oci.image.config.v1+json', config) });
  }

  it.each([
    ['a leading dot', '.hidden'],
    ['a leading dash', '-v1'],
    ['129 characters', 'a'.repeat(129)],
    ['a plus sign', 'v1+build'],
    ['odd bytes', 'v1%00'],
    ['an encoded slash', 'v1%2Fx'],
    ['a non-ASCII letter', 'v%C3%A9'],
  ])('pushing to a tag with %s is TAG_INVALID and tags nothing', async (_label, tag) => {
    const manifest = await pushableManifest('tags-invalid');
    const error = ociError(await t.putManifest('tags-invalid', tag, manifest), 400, 'TAG_INVALID');
    expect(error.detail).toEqual({ tag });
    expect((await t.get('/v2/tags-invalid/tags/list')).json()).toEqual({ name: 'tags-invalid', tags: [] });
    expect((await t.get(`/v2/tags-invalid/manifests/${sha256(manifest)}`)).statusCode).toBe(404);
  });

  it('a 128-character tag and tags with _ . - are accepted', async () => {
    const manifest = await pushableManifest('tags-valid');
    const tags = ['a'.repeat(128), '_private', 'v1.2.3-rc.1_b', 'LATEST'];
    for (const tag of tags) expect((await t.putManifest('tags-valid', tag, manifest)).statusCode).toBe(201);
    expect(await t.tags('tags-valid')).toEqual([...tags].sort());
  });

  it('reading a reference that cannot be a tag is a 404 MANIFEST_UNKNOWN, as the conformance suite expects', async () => {
    for (const response of [await t.get('/v2/repo/manifests/.INVALID_MANIFEST_NAME'), await t.delete('/v2/repo/manifests/-x')]) {
      ociError(response, 404, 'MANIFEST_UNKNOWN');
    }
    expect((await t.head('/v2/repo/manifests/.INVALID_MANIFEST_NAME')).statusCode).toBe(404);
  });
});
