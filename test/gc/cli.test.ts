// `stowage gc` on the local installation next to a running server (which sees the deletions at
// once) and through the server's API with --server; the schedule; the gc settings.
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import BetterSqlite3 from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeProgress, formatBytes } from '../../src/cli/gc.js';
import { loadConfig } from '../../src/config/load.js';
import { runStowage } from '../support/cli.js';
import { startStowage, type RunningStowage } from '../support/stowage.js';
import { makeImage, pullImage, pushBlob, pushImage } from '../support/scaleout.js';

let dataDir: string;
let server: RunningStowage;

const stowage = (args: string[], env: Record<string, string> = {}) => runStowage(dataDir, args, env);

const sha = (data: Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** Two hours pass for every blob recorded so far. */
function age(): void {
  const db = new BetterSqlite3(join(dataDir, 'stowage.db'));
  db.prepare('update blobs set seen_at = seen_at - 7200000').run();
  db.close();
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'stowage-gccli-'));
  server = await startStowage({ dataDir, env: { STOWAGE_AUTH: 'none', STOWAGE_WORKERS: '1' } });
}, 60_000);

afterAll(async () => {
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('stowage gc', () => {
  it('locally, next to the running server: dry run, then the deletion, with a summary', async () => {
    const kept = makeImage('kept', [randomBytes(500)]);
    await pushImage([server.url], server.url, 'team/app', kept, 'v1');
    const loose = [randomBytes(300), randomBytes(400)];
    for (const blob of loose) await pushBlob(server.url, 'team/app', blob);
    age();

    const dry = stowage(['gc', '--dry-run', '--grace', '1h']);
    expect(dry.status, dry.stderr).toBe(0);
    for (const blob of loose) expect(dry.stdout).toContain(sha(blob));
    expect(dry.stdout).toContain('dry run: 2 blobs, 700 B would be freed');
    expect((await fetch(`${server.url}/v2/team/app/blobs/${sha(loose[0]!)}`, { method: 'HEAD' })).status).toBe(200);

    const run = stowage(['gc', '--grace', '1h']);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/garbage collection run \d+: 2 blobs, 700 B freed; 2 examined/);
    for (const blob of loose) expect((await fetch(`${server.url}/v2/team/app/blobs/${sha(blob)}`, { method: 'HEAD' })).status).toBe(404);
    await pullImage(server.url, 'team/app', 'v1');
    const runs = (await (await fetch(`${server.url}/api/v1/gc/runs`)).json()) as { items: { actor: string; status: string }[] };
    expect(runs.items[0]).toMatchObject({ status: 'succeeded', actor: expect.stringMatching(/^cli:/) });

    const json = stowage(['gc', '--grace', '1h', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({ status: 'succeeded', blobsFreed: 0, phase: 'done' });
  });

  it('through the API with --server, following the run to its end', async () => {
    const blob = randomBytes(1000);
    await pushBlob(server.url, 'team/app', blob);
    age();
    const run = stowage(['gc', '--server', server.url, '--username', 'admin', '--grace', '1h', '--project', 'team'], { STOWAGE_PASSWORD: 'unused-with-auth-none' });
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/garbage collection run \d+: 1 blobs, 1000 B freed/);
    const dry = stowage(['gc', '--server', server.url, '--username', 'admin', '--dry-run', '--grace', '1h'], { STOWAGE_PASSWORD: 'x' });
    expect(dry.stdout).toContain('dry run: 0 blobs');
  });

  it('says what is wrong with its options', () => {
    const short = stowage(['gc', '--grace', '10s']);
    expect(short.status).toBe(2);
    expect(short.stderr).toContain('grace: at least 1m');
    const project = stowage(['gc', '--project', 'Not A Project']);
    expect(project.status).toBe(2);
    expect(project.stderr).toContain('--project');
  });
});

describe('progress line', () => {
  it('shows the phase, a bar while deleting, and sizes in binary units', () => {
    const base = { blobsExamined: 40, bytesExamined: 5 * 1024 * 1024, blobsMarked: 40, blobsFreed: 10, bytesFreed: 2048, uploadsRemoved: 0 };
    expect(describeProgress({ ...base, phase: 'marking' })).toBe('marking: 40 candidates examined (5.0 MiB), 40 marked');
    expect(describeProgress({ ...base, phase: 'sweeping' })).toBe('deleting [#####...............] 25%: 10 of 40 blobs freed (2.0 KiB)');
    expect(formatBytes(999)).toBe('999 B');
    expect(formatBytes(3 * 1024 ** 3)).toBe('3.0 GiB');
  });
});

describe('gc settings', () => {
  it('validates the schedule and the grace period, naming the setting', () => {
    expect(() => loadConfig({ env: { STOWAGE_GC_SCHEDULE: 'every night' } })).toThrow(/gc\.schedule: not a cron expression .*STOWAGE_GC_SCHEDULE/);
    expect(() => loadConfig({ env: { STOWAGE_GC_GRACE: '30s' } })).toThrow(/gc\.grace: at least 1m/);
    expect(() => loadConfig({ env: { STOWAGE_GC_GRACE: '500ms', STOWAGE_GC_UNSAFE_SHORT_GRACE: 'true' } })).toThrow(/gc\.grace: at least 1s/);
    expect(loadConfig({ env: { STOWAGE_GC_GRACE: '1s', STOWAGE_GC_UNSAFE_SHORT_GRACE: 'true' } }).gc).toEqual({ schedule: null, grace: 1000, unsafeShortGrace: true });
    expect(loadConfig({ env: {} }).gc).toEqual({ schedule: null, grace: 86_400_000, unsafeShortGrace: false });
    expect(loadConfig({ env: { STOWAGE_GC_SCHEDULE: '0 3 * * *' } }).gc.schedule).toBe('0 3 * * *');
  });

  it('runs on the schedule (every 2 s here) from the process that runs background jobs', async () => {
    const scheduled = await startStowage({ env: { STOWAGE_AUTH: 'none', STOWAGE_WORKERS: '2', STOWAGE_GC_SCHEDULE: '*/2 * * * * *' } });
    try {
      const deadline = Date.now() + 20_000;
      let runs: { actor: string; status: string }[] = [];
      while (Date.now() < deadline) {
        runs = ((await (await fetch(`${scheduled.url}/api/v1/gc/runs`)).json()) as { items: typeof runs }).items;
        if (runs.filter((r) => r.status === 'succeeded').length >= 2) break;
        await sleep(250);
      }
      expect(runs.filter((r) => r.status === 'succeeded').length).toBeGreaterThanOrEqual(2);
      expect(runs.every((r) => r.actor === 'scheduler')).toBe(true);
    } finally {
      await scheduled.stop();
      rmSync(scheduled.dataDir, { recursive: true, force: true });
    }
  });
});
