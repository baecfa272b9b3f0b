// The race the pin exists for, made deterministic: a push of a blob that GC has queued for
// deletion finds its bytes still there (so it does not write them), and the sweep runs right
// then, between the push's storage step and its metadata step. The push must end with the blob
// linked and its bytes present (the mark was cleared first, so the sweep leaves it).
import { afterEach, beforeEach, expect, it } from 'vitest';
import { createTestApp, sha256, type TestApp } from '../support/http-app.js';
import { sqlite } from '../support/auth.js';

let app: TestApp;

beforeEach(async () => {
  app = await createTestApp();
});
afterEach(async () => {
  await app?.cleanup();
});

/** Runs GC's sweep (every marked blob) inside the next storage commit of an upload. */
function sweepDuringNextCommit(): { swept: () => string[] } {
  const store = app.app.blobStore;
  const commit = store.commitUpload.bind(store);
  const swept: string[] = [];
  store.commitUpload = async (id, digest, size) => {
    await commit(id, digest, size);
    store.commitUpload = commit;
    const marked = await app.app.metadata.gc.marked({ limit: 100 });
    for (const blob of await app.app.metadata.gc.sweep(marked.map((b) => b.digest), (d) => Promise.all(d.map((x) => store.delete(x))).then(() => undefined))) swept.push(blob.digest);
  };
  return { swept: () => swept };
}

async function queueForDeletion(content: Buffer): Promise<void> {
  await app.pushBlob('lib/app', content);
  sqlite(app, 'update blobs set seen_at = seen_at - 7200000');
  expect(await app.app.metadata.gc.mark(sha256(content), new Date(Date.now() - 3_600_000))).toBe(true);
  expect((await app.head(`/v2/lib/app/blobs/${sha256(content)}`)).statusCode).toBe(404);
}

it.each([
  ['monolithic', (content: Buffer) => app.pushBlob('lib/app', content)],
  ['chunked', (content: Buffer) => app.pushBlobChunked('lib/app', content, 5)],
])('a %s push of a queued blob rescues it even when the sweep runs mid-push', async (_kind, push) => {
  const content = Buffer.from('queued for deletion, then pushed again');
  await queueForDeletion(content);
  const sweep = sweepDuringNextCommit();
  await push(content);
  expect(sweep.swept()).toEqual([]); // the push cleared the mark before its storage step
  const pulled = await app.get(`/v2/lib/app/blobs/${sha256(content)}`);
  expect(pulled.statusCode).toBe(200);
  expect(pulled.rawPayload.equals(content)).toBe(true);
});

it('a push after its blob was swept stores the bytes again', async () => {
  const content = Buffer.from('swept, then pushed again');
  await queueForDeletion(content);
  const marked = await app.app.metadata.gc.marked({ limit: 10 });
  await app.app.metadata.gc.sweep(marked.map((b) => b.digest), (d) => Promise.all(d.map((x) => app.app.blobStore.delete(x))).then(() => undefined));
  expect(await app.app.blobStore.stat(sha256(content))).toBeNull();
  await app.pushBlob('lib/app', content);
  expect((await app.get(`/v2/lib/app/blobs/${sha256(content)}`)).rawPayload.equals(content)).toBe(true);
});
