// Blob GET's buffer-reusing copy (src/storage/fs/file-copy.ts) over a real socket: exact bytes
// for whole files and ranges across buffer boundaries, and a client that goes away mid-copy.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FsBlobStore } from '../../src/storage/fs/fs-blob-store.js';
import { isCopyable } from '../../src/storage/fs/file-copy.js';
import type { ByteRange } from '../../src/storage/blob-store.js';

const MiB = 1024 * 1024;
let root: string;
let store: FsBlobStore;
let server: http.Server;
let base: string;
// Larger than loopback socket buffers (so a copy cut short is really cut), not a whole number of 1 MiB buffers.
const content = randomBytes(24 * MiB + 12_345);
const digest = `sha256:${createHash('sha256').update(content).digest('hex')}`;
const copies: Promise<string>[] = [];

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-copy-'));
  store = new FsBlobStore(root);
  const id = randomUUID();
  await store.createUpload(id);
  await store.appendUpload(id, Readable.from([content]), 0);
  await store.commitUpload(id, digest, content.length);
  server = http.createServer((request, response) => {
    const url = new URL(request.url ?? '/', 'http://x');
    const range: ByteRange | undefined = url.searchParams.has('start')
      ? { start: Number(url.searchParams.get('start')), end: Number(url.searchParams.get('end')) }
      : undefined;
    const copy = (async () => {
      const stream = await store.open(digest, range);
      if (!isCopyable(stream)) throw new Error('the filesystem store should return a copyable stream');
      response.writeHead(200, { 'content-length': range ? range.end - range.start + 1 : content.length });
      try {
        await stream.copyTo(response);
        response.end();
        return 'done';
      } catch (error) {
        response.destroy();
        return `failed: ${(error as Error).message}`;
      }
    })();
    copies.push(copy);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  await rm(root, { recursive: true, force: true });
});

async function fetchBytes(path: string): Promise<Buffer> {
  const response = await fetch(base + path);
  expect(response.status).toBe(200);
  return Buffer.from(await response.arrayBuffer());
}

async function openDescriptors(): Promise<number> {
  return (await readdir('/proc/self/fd')).length;
}

describe('copying a blob file to a socket with reused buffers', () => {
  it('sends exactly the file, and exactly each range, also across buffer boundaries', async () => {
    expect((await fetchBytes('/')).equals(content)).toBe(true);
    for (const [start, end] of [[0, 0], [MiB - 1, MiB], [MiB - 10, 3 * MiB + 10], [24 * MiB, content.length - 1], [17, 2 * MiB - 1]] as const) {
      expect((await fetchBytes(`/?start=${start}&end=${end}`)).equals(content.subarray(start, end + 1))).toBe(true);
    }
    expect(await Promise.all(copies)).toEqual(Array(copies.length).fill('done'));
  });

  it('stops, closes the file and keeps serving when the client goes away mid-copy', async () => {
    const before = await openDescriptors();
    copies.length = 0;
    await new Promise<void>((resolve, reject) => {
      http.get(base + '/', (response) => {
        response.once('data', () => {
          response.destroy(); // read one chunk, then hang up with megabytes still to come
          resolve();
        });
      }).on('error', reject);
    });
    expect(await copies[0]).toMatch(/^failed: /);
    expect((await fetchBytes('/')).equals(content)).toBe(true);
    // The file of the cut copy is closed (give the close a moment to land).
    for (let i = 0; i < 50 && (await openDescriptors()) > before; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await openDescriptors()).toBeLessThanOrEqual(before);
  });

  // A stand-in for the response, whose client hangs up once `closeAfter` bytes have arrived: the
  // close is seen on a later turn, before the callback of the write that completed the body
  // (queued after it), which comes only if `lastWriteCallsBack`. Earlier writes call back on the
  // next turn, as a socket's do; writes after the hang-up never call back (Node drops them).
  class HangingUpClient extends Writable {
    received = 0;
    private hungUp = false;
    constructor(
      private readonly closeAfter: number,
      private readonly lastWriteCallsBack: boolean,
    ) {
      super({ highWaterMark: 4 * MiB });
    }
    override _write(chunk: Buffer, _encoding: string, callback: (error?: Error | null) => void): void {
      if (this.hungUp) return;
      this.received += chunk.length;
      if (this.received < this.closeAfter) {
        setImmediate(callback);
        return;
      }
      this.hungUp = true;
      setImmediate(() => this.emit('close'));
      if (this.lastWriteCallsBack) setImmediate(callback);
    }
  }

  async function copyInto(out: Writable): Promise<string> {
    const stream = await store.open(digest);
    if (!isCopyable(stream)) throw new Error('the filesystem store should return a copyable stream');
    return stream.copyTo(out).then(
      () => 'done',
      (error: Error) => `failed: ${error.message}`,
    );
  }

  it('counts a copy as done when the client hangs up after the last byte, before the last write called back', async () => {
    const out = new HangingUpClient(content.length, true);
    expect(await copyInto(out)).toBe('done');
    expect(out.received).toBe(content.length);
  });

  it('fails a copy when the client hangs up before the last byte was handed over', async () => {
    expect(await copyInto(new HangingUpClient(3 * MiB, true))).toBe('failed: the client closed the connection');
  });

  it('fails, within a moment, a copy whose last write never called back because the client had gone', async () => {
    const started = Date.now();
    expect(await copyInto(new HangingUpClient(content.length, false))).toBe('failed: the client closed the connection');
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});
