// A node killed with SIGKILL in the middle of an upload: the other nodes carry on, and the
// session continues on another node from its last acknowledged offset once the dead node's
// write lease has expired.
import { request } from 'node:http';
import { randomBytes } from 'node:crypto';
import { ListMultipartUploadsCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../support/http-app.js';
import { bytes, makeImage, pullImage, pushImage, startScaleOut, type ScaleOut } from '../support/scaleout.js';
import { s3Service } from '../support/services.js';

const MiB = 1024 * 1024;
let cluster: ScaleOut;

beforeAll(async () => {
  cluster = await startScaleOut('node-kill', 3);
});

afterAll(async () => {
  await cluster?.stop();
});

describe('a node killed mid-upload', () => {
  it('leaves the session at its last acknowledged offset; another node finishes it; the others carry on', async () => {
    const [a, b, victim] = cluster.nodes as [(typeof cluster.nodes)[0], (typeof cluster.nodes)[0], (typeof cluster.nodes)[0]];
    const blob = randomBytes(24 * MiB);
    const first = 4 * MiB;
    const post = await fetch(`${a.url}/v2/kill/upload/blobs/uploads/`, { method: 'POST' });
    const location = post.headers.get('location')!;
    const patch = (url: string, from: number, to: number) =>
      fetch(`${url}${location}`, {
        method: 'PATCH',
        body: bytes(blob.subarray(from, to)),
        headers: { 'content-type': 'application/octet-stream', 'content-range': `${from}-${to - 1}` },
      });
    expect((await patch(a.url, 0, first)).status).toBe(202);

    // The victim receives most of the next chunk (a streamed multipart append), then dies.
    const rest = blob.length - first;
    const inFlight = request(`${victim.url}${location}`, {
      method: 'PATCH',
      headers: { 'content-type': 'application/octet-stream', 'content-range': `${first}-${blob.length - 1}`, 'content-length': rest },
    });
    inFlight.on('error', () => undefined); // the connection dies with the node
    inFlight.write(blob.subarray(first, first + 18 * MiB));
    await new Promise((r) => setTimeout(r, 1500));
    await victim.kill();

    // The others carry on: a whole image pushed through A and pulled through B meanwhile.
    const image = makeImage('while-dead', [randomBytes(10_000)]);
    await pushImage([a.url, b.url], b.url, 'kill/other', image, 'v1');
    expect((await pullImage(a.url, 'kill/other', 'v1')).digest).toBe(image.digest);

    // Nothing of the interrupted chunk was acknowledged.
    const status = await fetch(`${b.url}${location}`);
    expect(status.headers.get('range')).toBe(`0-${first - 1}`);
    // The dead node still holds the session's write lease until it expires (15 s): meanwhile a
    // writer is told to retry (409), then it may continue from the acknowledged offset.
    const started = Date.now();
    let resumed: Response;
    for (;;) {
      resumed = await patch(b.url, first, blob.length);
      if (resumed.status !== 409) break;
      expect(((await resumed.json()) as { errors: { code: string }[] }).errors[0]!.code).toBe('BLOB_UPLOAD_INVALID');
      expect(Date.now() - started).toBeLessThan(30_000);
      await new Promise((r) => setTimeout(r, 500));
    }
    expect(resumed.status).toBe(202);
    expect(resumed.headers.get('range')).toBe(`0-${blob.length - 1}`);
    const done = await fetch(`${a.url}${location}?digest=${sha256(blob)}`, { method: 'PUT' });
    expect(done.status).toBe(201);
    const pulled = Buffer.from(await (await fetch(`${b.url}/v2/kill/upload/blobs/${sha256(blob)}`)).arrayBuffer());
    expect(sha256(pulled)).toBe(sha256(blob));

    // The killed append left an incomplete multipart upload in the bucket: invisible, and what
    // the upload expiry's abortStaleWrites removes once it is older than the cutoff.
    const s3 = s3Service();
    const client = new S3Client({
      endpoint: s3.endpoint,
      region: s3.region,
      forcePathStyle: true,
      credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
    });
    const pending = await client.send(new ListMultipartUploadsCommand({ Bucket: cluster.bucket }));
    expect((pending.Uploads ?? []).some((u) => u.Key?.includes(location.split('/').pop()!))).toBe(true);
    client.destroy();
  });
});
