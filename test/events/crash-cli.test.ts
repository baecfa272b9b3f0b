// A real `stowage serve` process: the `stowage webhook` commands (local and --server), and a
// crash between the commit of a push and its delivery — the receiver is down, the server is
// SIGKILLed, the receiver comes up, the server restarts: the event arrives, one logical event.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { makeImage, pushImage } from '../support/scaleout.js';
import { freePort, startStowage, type RunningStowage } from '../support/stowage.js';
import { Receiver, verifySignature } from './receiver.js';

const root = resolve(import.meta.dirname, '../..');
const dataDir = mkdtempSync(join(tmpdir(), 'stowage-events-crash-'));
const SECRET = 'crash-test-secret-0123456789';
const env = {
  STOWAGE_WORKERS: '1',
  STOWAGE_WEBHOOKS_ALLOW_PRIVATE: 'true',
  STOWAGE_WEBHOOKS_POLL_INTERVAL: '100ms',
  STOWAGE_WEBHOOKS_RETRY_BASE: '100ms',
  STOWAGE_WEBHOOKS_RETRY_MAX: '300ms',
  STOWAGE_WEBHOOKS_MAX_ATTEMPTS: '100',
  STOWAGE_WEBHOOKS_TIMEOUT: '2s',
};
let server: RunningStowage | undefined;
const receiver = new Receiver();

function stowage(args: string[], extra: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'src/cli/main.ts'), ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { ...process.env, ...env, STOWAGE_DATA_DIR: dataDir, STOWAGE_SERVER: '', STOWAGE_LOG_LEVEL: 'warn', ...extra },
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

afterAll(async () => {
  await server?.kill();
  await receiver.stop().catch(() => {});
  rmSync(dataDir, { recursive: true, force: true });
});

describe('webhooks across a crash, and the webhook commands', () => {
  it('delivers a push committed before a SIGKILL after the restart, exactly one logical event', async () => {
    const port = await freePort();
    server = await startStowage({ dataDir, env });
    const added = stowage(['webhook', 'add', '--url', `http://127.0.0.1:${port}/hook`, '--secret-env', 'HOOK_SECRET', '--events', 'artifact.pushed', '--json'], { HOOK_SECRET: SECRET });
    expect(added.status, added.stderr).toBe(0);
    const hook = JSON.parse(added.stdout);
    expect(hook).toMatchObject({ url: `http://127.0.0.1:${port}/hook`, hasSecret: true, events: ['artifact.pushed'] });
    expect(added.stdout).not.toContain(SECRET);

    // Committed; the receiver is down, so the first attempts fail.
    await pushImage([server.url], server.url, 'team/app', makeImage('crash', [Buffer.from('layer')]), 'v1');
    const deadline = Date.now() + 30_000;
    for (;;) {
      const log = stowage(['webhook', 'deliveries', hook.id, '--json']);
      const items = JSON.parse(log.stdout).items as { attempts: number; state: string }[];
      if (items[0] && items[0].attempts >= 1) {
        expect(items[0].state).toBe('pending');
        break;
      }
      if (Date.now() > deadline) throw new Error(`no failed attempt seen: ${log.stdout} ${log.stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await server.kill();
    await receiver.start(port);
    server = await startStowage({ dataDir, env });
    await receiver.waitFor((all) => all.length >= 1, 'the event after the restart');
    // Give a duplicate the chance to show up, then count logical events by id.
    await new Promise((r) => setTimeout(r, 1000));
    const ids = new Set(receiver.received.map((x) => x.json.id));
    expect(ids.size).toBe(1);
    expect(receiver.received.every((x) => x.headers['idempotency-key'] === x.json.id && verifySignature(SECRET, x))).toBe(true);
    expect(receiver.received[0]!.json).toMatchObject({ type: 'artifact.pushed', repository: 'team/app', tag: 'v1' });
  });

  it('lists, tests, shows deliveries and removes webhooks, locally and with --server', async () => {
    const list = stowage(['webhook', 'list']);
    expect(list.status, list.stderr).toBe(0);
    expect(list.stdout).toContain(`http://127.0.0.1:${receiver.port}/hook`);
    const id = JSON.parse(stowage(['webhook', 'list', '--json']).stdout).items[0].id as string;

    const remote = { STOWAGE_SERVER: server!.url, STOWAGE_USERNAME: 'admin', STOWAGE_PASSWORD: 'unused-with-auth-none' };
    const tested = stowage(['webhook', 'test', id], remote);
    expect(tested.status, tested.stderr).toBe(0);
    await receiver.waitFor((all) => all.some((x) => x.headers['x-stowage-event'] === 'webhook.test'), 'the test event');

    const deliveries = stowage(['webhook', 'deliveries', id], remote);
    expect(deliveries.status, deliveries.stderr).toBe(0);
    expect(deliveries.stdout).toMatch(/webhook\.test\s+\S+\s+delivered/);
    expect(deliveries.stdout).toMatch(/artifact\.pushed\s+\S+\s+delivered/);

    const bad = stowage(['webhook', 'add', '--url', 'ftp://nowhere']);
    expect(bad.status).toBe(2);
    expect(bad.stderr).toContain('url');

    const removed = stowage(['webhook', 'remove', id]);
    expect(removed.status, removed.stderr).toBe(0);
    expect(JSON.parse(stowage(['webhook', 'list', '--json'], remote).stdout).items).toEqual([]);
  });
});
