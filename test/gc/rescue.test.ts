// The race the pin exists for, made deterministic: a push of a blob that GC has queued for
// deletion finds its bytes still there (so it does not write them), and the sweep runs right
// then, between the push's storage step and its metadata step. The push must end with the blob
// linked and its bytes present (the mark was cleared first, so the sweep leaves it).
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestApp, sha256, type TestApp } from '../support/http-app.js';
import { sqlite } from '../support/auth.js';
import { createDatabase, scaleOutEnv, uniqueBucket, type TestDatabase } from '../support/services.js';

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

describe('on PostgreSQL + S3, where a blob that arrives in one request is written whole at its address', () => {
  let s3app: TestApp;
  let database: TestDatabase;

  beforeEach(async () => {
    database = await createDatabase('gcrescue');
    const env = scaleOutEnv(database.url, uniqueBucket('gcrescue'));
    // The S3 client of this process reads its credentials from the environment.
    process.env.AWS_ACCESS_KEY_ID = env.AWS_ACCESS_KEY_ID;
    process.env.AWS_SECRET_ACCESS_KEY = env.AWS_SECRET_ACCESS_KEY;
    s3app = await createTestApp({ env });
  });
  afterEach(async () => {
    await s3app?.cleanup();
    await database?.drop();
  });

  it.each([
    ['monolithic', (content: Buffer) => s3app.pushBlob('lib/app', content)],
    [
      'streamed PATCH then PUT',
      async (content: Buffer) => {
        const session = await s3app.post('/v2/lib/app/blobs/uploads/');
        const patch = await s3app.inject({ method: 'PATCH', url: session.headers.location as string, payload: content, headers: { 'content-type': 'application/octet-stream' } });
        expect(patch.statusCode).toBe(202);
        const done = await s3app.put(`${patch.headers.location as string}?digest=${sha256(content)}`);
        expect(done.statusCode).toBe(201);
      },
    ],
  ])('a %s push of a queued blob rescues it even when the sweep runs right after its write', async (_kind, push) => {
    const content = Buffer.from('queued for deletion, then pushed again, on S3');
    const digest = sha256(content);
    await s3app.pushBlob('lib/app', content);
    const client = new pg.Client({ connectionString: database.url });
    await client.connect();
    await client.query('update blobs set seen_at = seen_at - 7200000');
    await client.end();
    expect(await s3app.app.metadata.gc.mark(digest, new Date(Date.now() - 3_600_000))).toBe(true);
    const store = s3app.app.blobStore;
    expect(store.putBlob).toBeDefined();
    const put = store.putBlob!.bind(store);
    const swept: string[] = [];
    store.putBlob = async (d, bytes) => {
      await put(d, bytes);
      store.putBlob = put;
      const marked = await s3app.app.metadata.gc.marked({ limit: 100 });
      for (const blob of await s3app.app.metadata.gc.sweep(marked.map((b) => b.digest), (ds) => store.deleteMany!(ds))) swept.push(blob.digest);
    };
    await push(content);
    expect(store.putBlob).toBe(put); // the whole-blob write happened
    expect(swept).toEqual([]);
    const pulled = await s3app.get(`/v2/lib/app/blobs/${digest}`);
    expect(pulled.statusCode).toBe(200);
    expect(pulled.rawPayload.equals(content)).toBe(true);
  });
});
