// The management commands: `stowage user|project|robot|token|key`, on the local database (next to
// a running server, which honours what they write) and against a remote server's API.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startStowage, type RunningStowage } from '../support/stowage.js';

const root = resolve(import.meta.dirname, '../..');
let dataDir: string;
let server: RunningStowage;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function stowage(args: string[], options: { input?: string; env?: Record<string, string> } = {}): Run {
  const result = spawnSync(process.execPath, ['--import', 'tsx', join(root, 'src/cli/main.ts'), ...args], {
    cwd: root,
    encoding: 'utf8',
    input: options.input,
    env: { ...process.env, STOWAGE_DATA_DIR: dataDir, STOWAGE_SERVER: '', ...options.env },
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function ok(args: string[], options?: Parameters<typeof stowage>[1]): Run {
  const run = stowage(args, options);
  expect(run.status, `stowage ${args.join(' ')}\n${run.stderr}`).toBe(0);
  return run;
}

async function token(user: string, password: string, scope = ''): Promise<{ status: number; scopes: string[] }> {
  const response = await fetch(`${server.url}/auth/token?service=stowage${scope ? `&scope=${scope}` : ''}`, {
    headers: { authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` },
  });
  if (response.status !== 200) return { status: response.status, scopes: [] };
  const claims = JSON.parse(Buffer.from(((await response.json()) as { token: string }).token.split('.')[1]!, 'base64url').toString());
  return { status: 200, scopes: (claims.access as { name: string; actions: string[] }[]).map((a) => `${a.name}:${a.actions.join(',')}`) };
}

beforeAll(async () => {
  dataDir = mkdtempSync(join(tmpdir(), 'stowage-cli-'));
  server = await startStowage({ dataDir, env: { STOWAGE_AUTH: 'token', STOWAGE_WORKERS: '1', STOWAGE_ADMIN_PASSWORD: 'admin-password-cli' } });
});

afterAll(async () => {
  await server?.stop();
  if (dataDir) rmSync(dataDir, { recursive: true, force: true });
});

describe('on the local database', () => {
  it('adds users (password from stdin or generated), lists, disables and enables them', async () => {
    expect(ok(['user', 'add', 'alice', '--password-stdin', '--email', 'alice@example.com'], { input: 'alice-password-1\n' }).stdout).toContain('created user alice');
    const generated = ok(['user', 'add', 'bob']).stdout;
    const bobPassword = /password \(shown once\): (\S+)/.exec(generated)![1]!;
    expect((await token('alice', 'alice-password-1')).status).toBe(200);
    expect((await token('bob', bobPassword)).status).toBe(200);

    const listed = JSON.parse(ok(['user', 'list', '--json']).stdout) as { items: { name: string; admin: boolean }[] };
    expect(listed.items.map((u) => [u.name, u.admin])).toEqual([
      ['admin', true],
      ['alice', false],
      ['bob', false],
    ]);
    expect(ok(['user', 'list']).stdout).toMatch(/^NAME\s+ADMIN\s+DISABLED/);

    ok(['user', 'disable', 'bob']);
    // The server sees the revocation within its poll interval.
    await new Promise((r) => setTimeout(r, 2500));
    expect((await token('bob', bobPassword)).status).toBe(401);
    ok(['user', 'enable', 'bob']);
    expect((await token('bob', bobPassword)).status).toBe(200);

    ok(['user', 'passwd', 'bob', '--password-stdin'], { input: 'bob-new-password\n' });
    expect((await token('bob', 'bob-new-password')).status).toBe(200);
  });

  it('creates projects with an owner, manages members, creates robots and tokens that the server accepts', async () => {
    ok(['project', 'create', 'team', '--owner', 'alice']);
    ok(['project', 'create', 'open', '--public']);
    expect(ok(['project', 'list']).stdout).toMatch(/open\s+true[\s\S]*team\s+false/);
    ok(['project', 'member', 'team', 'bob', 'developer']);
    const members = JSON.parse(ok(['project', 'member', 'team', '--json']).stdout) as { items: { userName: string; role: string }[] };
    expect(members.items.map((m) => `${m.userName}:${m.role}`)).toEqual(['alice:owner', 'bob:developer']);
    expect((await token('bob', 'bob-new-password', 'repository:team/app:pull,push,delete')).scopes).toEqual(['team/app:pull,push']);

    const robot = ok(['robot', 'create', 'ci', '--project', 'team', '--permission', 'repository:team/**:pull,push', '--expires', '30d']).stdout;
    const secret = /secret \(shown once\): (\S+)/.exec(robot)![1]!;
    expect((await token('robot$team+ci', secret, 'repository:team/app:pull,push,delete')).scopes).toEqual(['team/app:pull,push']);

    const created = JSON.parse(ok(['token', 'create', '--user', 'alice', '--name', 'laptop', '--scope', 'repository:team/*:pull', '--json']).stdout) as { token: { id: string }; secret: string };
    expect((await token('alice', created.secret, 'repository:team/app:pull,push')).scopes).toEqual(['team/app:pull']);
    ok(['token', 'revoke', created.token.id]);
    // Revoked by another process (the CLI): the server applies it within its 2 s revocation poll,
    // also to the credentials it remembered for the token endpoint.
    let status = 0;
    for (const until = Date.now() + 5_000; Date.now() < until && status !== 401; ) {
      status = (await token('alice', created.secret)).status as number;
      if (status !== 401) await new Promise((r) => setTimeout(r, 200));
    }
    expect(status).toBe(401);

    ok(['project', 'member', 'team', 'bob', 'remove']);
    await new Promise((r) => setTimeout(r, 2500));
    expect((await token('bob', 'bob-new-password', 'repository:team/app:pull')).scopes).toEqual([]);
    expect(ok(['key', 'rotate']).stdout).toMatch(/signing with new key \S+/);
  });

  it('exits 2 naming the field for invalid input, 1 for conflicts', () => {
    const invalid = stowage(['user', 'add', 'Bad Name']);
    expect(invalid.status).toBe(2);
    expect(invalid.stderr).toContain('name:');
    const taken = stowage(['project', 'create', 'team']);
    expect(taken.status).toBe(1);
    expect(taken.stderr).toContain('project team already exists');
    const outside = stowage(['robot', 'create', 'x', '--project', 'team', '--permission', 'repository:other/*:pull']);
    expect(outside.status).toBe(2);
    expect(outside.stderr).toContain('team/');
  });
});

describe('against a remote server', () => {
  const as = (user: string, password: string) => ({ env: { STOWAGE_USERNAME: user, STOWAGE_PASSWORD: password } });

  it('manages over the API with the caller’s permissions', () => {
    const admin = as('admin', 'admin-password-cli');
    ok(['user', 'add', 'carol', '--server', server.url, '--password-stdin'], { input: 'carol-password-1\n', ...admin });
    expect(ok(['user', 'list', '--server', server.url], admin).stdout).toContain('carol');
    ok(['project', 'create', 'remote', '--owner', 'carol', '--server', server.url], admin);
    // carol owns `remote`: she manages its members and robots, not users.
    const carol = as('carol', 'carol-password-1');
    ok(['project', 'member', 'remote', 'alice', 'reader', '--server', server.url], carol);
    expect(ok(['robot', 'create', 'bot', '--project', 'remote', '--permission', 'repository:remote/**:pull', '--server', server.url], carol).stdout).toContain('robot$remote+bot');
    const denied = stowage(['user', 'list', '--server', server.url], carol);
    expect(denied.status).toBe(1);
    expect(denied.stderr).toContain('only system administrators');
    ok(['user', 'passwd', 'carol', '--current-password-stdin', '--server', server.url], { input: 'carol-password-1\ncarol-password-2\n', ...carol });
    const wrong = stowage(['project', 'list', '--server', server.url], carol);
    expect(wrong.status).toBe(1);
    expect(wrong.stderr).toContain('invalid username or password');
    const missing = stowage(['user', 'list', '--server', server.url]);
    expect(missing.status).toBe(2);
    expect(missing.stderr).toContain('STOWAGE_PASSWORD');
  });
});
