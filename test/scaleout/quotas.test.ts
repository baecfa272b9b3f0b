// Quotas and retention on the scale-out backends: two nodes on one PostgreSQL database and one
// S3 bucket; concurrent pushes through both nodes, monolithic and chunked, admit exactly those
// that fit; a retention dry run and real run agree.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeImage, pushImage, startScaleOut, type ScaleOut } from '../support/scaleout.js';

let cluster: ScaleOut;
let urls: string[];
const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

async function api(method: string, path: string, body?: unknown): Promise<any> {
  const response = await fetch(`${urls[0]}/api/v1${path}`, { method, headers: body === undefined ? {} : { 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  expect(response.ok, `${method} ${path}: ${text}`).toBe(true);
  return text === '' ? undefined : JSON.parse(text);
}

/** A monolithic push (even i) or a POST, one PATCH and the completing PUT (odd i); resolves to the final status. */
async function push(url: string, repository: string, blob: Buffer, chunked: boolean): Promise<number> {
  if (!chunked) {
    const r = await fetch(`${url}/v2/${repository}/blobs/uploads/?digest=${sha(blob)}`, { method: 'POST', body: new Uint8Array(blob), headers: { 'content-type': 'application/octet-stream' } });
    await r.arrayBuffer();
    return r.status;
  }
  const post = await fetch(`${url}/v2/${repository}/blobs/uploads/`, { method: 'POST' });
  const patch = await fetch(`${url}${post.headers.get('location')}`, { method: 'PATCH', body: new Uint8Array(blob), headers: { 'content-type': 'application/octet-stream', 'content-range': `0-${blob.length - 1}` } });
  await patch.arrayBuffer();
  if (patch.status !== 202) return patch.status;
  const location = patch.headers.get('location')!;
  const put = await fetch(`${url}${location}${location.includes('?') ? '&' : '?'}digest=${sha(blob)}`, { method: 'PUT' });
  await put.arrayBuffer();
  return put.status;
}

beforeAll(async () => {
  cluster = await startScaleOut('quotas', 2);
  urls = cluster.nodes.map((n) => n.url);
  await api('POST', '/projects', { name: 'team' });
}, 120_000);

afterAll(async () => {
  await cluster?.stop();
});

describe('scale-out quotas and retention', () => {
  it('admit exactly the concurrent pushes through both nodes that fit the quota', async () => {
    await api('PUT', '/projects/team/quota', { bytes: 3500 });
    const blobs = Array.from({ length: 10 }, (_, i) => Buffer.alloc(1000, i + 1));
    const statuses = await Promise.all(blobs.map((blob, i) => push(urls[i % 2]!, `team/r${i % 3}`, blob, i % 2 === 1)));
    expect(statuses.filter((s) => s === 201)).toHaveLength(3);
    expect(statuses.filter((s) => s === 403)).toHaveLength(7);
    expect((await api('GET', '/projects/team/usage')).usage).toMatchObject({ bytes: 3000, blobs: 3 });
    // A refused blob is not in any repository of the project, on either node.
    for (const [i, blob] of blobs.entries()) {
      if (statuses[i] === 201) continue;
      for (const url of urls) expect((await fetch(`${url}/v2/team/r${i % 3}/blobs/${sha(blob)}`, { method: 'HEAD' })).status).toBe(404);
    }
  }, 120_000);

  it('run retention with the same plan as its dry run', async () => {
    await api('PUT', '/projects/team/quota', {});
    for (const tag of ['one', 'two', 'three']) await pushImage(urls, urls[1]!, 'team/app', makeImage(tag, [Buffer.from(`layer ${tag}`)]), tag);
    await api('PUT', '/projects/team/retention', { keepMostRecent: 1 });
    const dry = await api('POST', '/projects/team/retention/run?dryRun=true');
    expect(dry.removed.map((d: { tags: string[] }) => d.tags[0]).sort()).toEqual(['one', 'two']);
    const real = await api('POST', '/projects/team/retention/run');
    expect(real.removed.map((d: { digest: string }) => d.digest).sort()).toEqual(dry.removed.map((d: { digest: string }) => d.digest).sort());
    const tags = await (await fetch(`${urls[1]}/v2/team/app/tags/list`)).json();
    expect(tags.tags).toEqual(['three']);
  }, 120_000);
});
