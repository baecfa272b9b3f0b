// Content discovery: the tag list and the catalog, in lexical order, with `n`, `last` and the
// RFC 5988 Link header to the next page.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { configBlob, createTestApp, descriptorOf, ociError, ociManifest, type Response, type TestApp } from '../support/http-app.js';

let t: TestApp;
beforeAll(async () => {
  t = await createTestApp();
});
afterAll(async () => {
  await t.cleanup();
});

/** Pushes one small image and tags it with each tag, in the given order. */
async function pushTags(repository: string, tags: string[]): Promise<void> {
  const config = configBlob();
  await t.pushBlob(repository, config);
  const manifest = ociManifest({ config: descriptorOf('application/vnd.oci.image.config.v1+json', config) });
  for (const tag of tags) await t.pushManifest(repository, tag, manifest);
}

/** The URL in a `Link: <url>; rel="next"` header, checking its exact form. */
function nextUrl(response: Response): string | undefined {
  const link = response.headers.link as string | undefined;
  if (link === undefined) return undefined;
  const match = /^<([^>]+)>; rel="next"$/.exec(link);
  expect(match, `malformed Link header: ${link}`).not.toBeNull();
  return match![1];
}

/** Follows the Link headers from `url` to the end; returns every page's items. */
async function allPages(app: TestApp, url: string, key: 'tags' | 'repositories'): Promise<string[][]> {
  const pages: string[][] = [];
  for (let next: string | undefined = url; next !== undefined; ) {
    const response = await app.get(next);
    expect(response.statusCode).toBe(200);
    pages.push(response.json()[key]);
    next = nextUrl(response);
    expect(pages.length).toBeLessThan(100);
  }
  return pages;
}

describe('tags list', () => {
  const tags = ['1.0', 'latest', 'v1', 'v10', 'v2'];
  beforeAll(async () => {
    await pushTags('paged', ['v2', 'latest', 'v10', '1.0', 'v1']);
  });

  it('lists every tag in lexical order, as JSON, without Link', async () => {
    const response = await t.get('/v2/paged/tags/list');
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.json()).toEqual({ name: 'paged', tags });
    expect(response.headers.link).toBeUndefined();
  });

  it('n=0 answers an empty list without Link', async () => {
    const response = await t.get('/v2/paged/tags/list?n=0');
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ name: 'paged', tags: [] });
    expect(response.headers.link).toBeUndefined();
  });

  it('n=1 answers the first tag and a Link to the next page in the exact format', async () => {
    const response = await t.get('/v2/paged/tags/list?n=1');
    expect(response.json().tags).toEqual(['1.0']);
    expect(response.headers.link).toBe('</v2/paged/tags/list?n=1&last=1.0>; rel="next"');
  });

  it.each([1, 2, 3, 4])('following the Link headers with n=%i visits every tag once, in order', async (n) => {
    const pages = await allPages(t, `/v2/paged/tags/list?n=${n}`, 'tags');
    expect(pages.flat()).toEqual(tags);
    expect(pages.length).toBe(Math.ceil(tags.length / n));
    for (const page of pages) expect(page.length).toBeLessThanOrEqual(n);
  });

  it('n equal to or above the number of tags answers all of them without Link', async () => {
    for (const n of [5, 6, 1000, 999_999_999]) {
      const response = await t.get(`/v2/paged/tags/list?n=${n}`);
      expect(response.json().tags).toEqual(tags);
      expect(response.headers.link).toBeUndefined();
    }
  });

  it('`last` starts after the given tag, with or without n', async () => {
    const withN = await t.get('/v2/paged/tags/list?n=2&last=1.0');
    expect(withN.json().tags).toEqual(['latest', 'v1']);
    expect(withN.headers.link).toBe('</v2/paged/tags/list?n=2&last=v1>; rel="next"');
    const withoutN = await t.get('/v2/paged/tags/list?last=v1');
    expect(withoutN.json().tags).toEqual(['v10', 'v2']);
    expect(withoutN.headers.link).toBeUndefined();
  });

  it('`last` need not be an existing tag', async () => {
    expect((await t.get('/v2/paged/tags/list?last=m')).json().tags).toEqual(['v1', 'v10', 'v2']);
    expect((await t.get('/v2/paged/tags/list?last=0')).json().tags).toEqual(tags);
  });

  it('`last` at or beyond the end answers an empty list without Link', async () => {
    for (const last of ['v2', 'zzz']) {
      const response = await t.get(`/v2/paged/tags/list?n=2&last=${last}`);
      expect(response.statusCode).toBe(200);
      expect(response.json()).toEqual({ name: 'paged', tags: [] });
      expect(response.headers.link).toBeUndefined();
    }
  });

  it('a page that ends exactly on the last tag has no Link', async () => {
    const response = await t.get('/v2/paged/tags/list?n=2&last=v1');
    expect(response.json().tags).toEqual(['v10', 'v2']);
    expect(response.headers.link).toBeUndefined();
  });

  it.each(['-1', 'abc', '1.5', '1e3'])('n=%s is refused with the OCI error JSON', async (n) => {
    const error = ociError(await t.get(`/v2/paged/tags/list?n=${n}`), 400, 'UNSUPPORTED');
    expect(error.detail).toEqual({ n });
  });

  it('the Link of a repository with slashes keeps the name as a path', async () => {
    await pushTags('team/app', ['a', 'b']);
    const response = await t.get('/v2/team/app/tags/list?n=1');
    expect(response.json()).toEqual({ name: 'team/app', tags: ['a'] });
    expect(response.headers.link).toBe('</v2/team/app/tags/list?n=1&last=a>; rel="next"');
  });

  it('an unknown repository is 404 NAME_UNKNOWN', async () => {
    expect(ociError(await t.get('/v2/no-such-repo/tags/list'), 404, 'NAME_UNKNOWN').detail).toEqual({ name: 'no-such-repo' });
  });

  it('a repository with blobs but no tags answers an empty list', async () => {
    await t.pushBlob('untagged', Buffer.from('just a blob'));
    const response = await t.get('/v2/untagged/tags/list');
    expect(response.statusCode).toBe(200);
    expect(response.json()).toEqual({ name: 'untagged', tags: [] });
  });
});

describe('catalog', () => {
  // The catalog lists the whole registry: this block has a registry of its own.
  let c: TestApp;
  const repositories = ['a', 'a/x', 'a/y/z', 'b', 'c-d'];
  beforeAll(async () => {
    c = await createTestApp();
  });
  afterAll(async () => {
    await c.cleanup();
  });

  it('an empty registry has an empty catalog without Link', async () => {
    const response = await c.get('/v2/_catalog');
    expect(response.statusCode).toBe(200);
    expect(response.headers['content-type']).toMatch(/^application\/json/);
    expect(response.json()).toEqual({ repositories: [] });
    expect(response.headers.link).toBeUndefined();
  });

  it('lists every repository in lexical order', async () => {
    for (const name of ['c-d', 'a/y/z', 'b', 'a', 'a/x']) await c.pushBlob(name, Buffer.from(`in ${name}`));
    const response = await c.get('/v2/_catalog');
    expect(response.json()).toEqual({ repositories });
    expect(response.headers.link).toBeUndefined();
  });

  it('n=0 answers an empty list without Link', async () => {
    const response = await c.get('/v2/_catalog?n=0');
    expect(response.json()).toEqual({ repositories: [] });
    expect(response.headers.link).toBeUndefined();
  });

  it('n=1 and n=2 answer a Link in the exact format, with the name URL-encoded', async () => {
    const one = await c.get('/v2/_catalog?n=1');
    expect(one.json().repositories).toEqual(['a']);
    expect(one.headers.link).toBe('</v2/_catalog?n=1&last=a>; rel="next"');
    const two = await c.get('/v2/_catalog?n=2');
    expect(two.json().repositories).toEqual(['a', 'a/x']);
    expect(two.headers.link).toBe('</v2/_catalog?n=2&last=a%2Fx>; rel="next"');
  });

  it.each([1, 2, 3])('following the Link headers with n=%i visits every repository once, in order', async (n) => {
    const pages = await allPages(c, `/v2/_catalog?n=${n}`, 'repositories');
    expect(pages.flat()).toEqual(repositories);
    expect(pages.length).toBe(Math.ceil(repositories.length / n));
  });

  it('`last` beyond the end answers an empty list; `last` between names starts after it', async () => {
    const beyond = await c.get('/v2/_catalog?n=2&last=zzz');
    expect(beyond.json()).toEqual({ repositories: [] });
    expect(beyond.headers.link).toBeUndefined();
    expect((await c.get('/v2/_catalog?last=a%2Fx')).json().repositories).toEqual(['a/y/z', 'b', 'c-d']);
    expect((await c.get('/v2/_catalog?last=a0')).json().repositories).toEqual(['b', 'c-d']);
  });

  it('n that is not a number is refused with the OCI error JSON', async () => {
    ociError(await c.get('/v2/_catalog?n=many'), 400, 'UNSUPPORTED');
  });
});
