// `stowage serve` with access control, as separate processes with two workers: the first-start
// bootstrap (race-free, password printed once, 0600 file), open mode's warning, revocations seen
// by every worker, and HTTPS with HSTS and certificate reload on SIGHUP.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { startStowage, type RunningStowage } from '../support/stowage.js';

const dirs: string[] = [];
const servers: RunningStowage[] = [];

afterAll(async () => {
  for (const server of servers) await server.stop();
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `stowage-${label}-`));
  dirs.push(dir);
  return dir;
}

async function serve(options: Parameters<typeof startStowage>[0]): Promise<RunningStowage> {
  const server = await startStowage({ capture: true, ...options, env: { STOWAGE_AUTH: 'token', STOWAGE_WORKERS: '2', STOWAGE_LOG_LEVEL: 'info', ...options?.env } });
  servers.push(server);
  return server;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  /** Common name of the server certificate (HTTPS). */
  certificate?: string;
}

/** One request on a new connection (so that requests spread over the workers). */
function call(url: string, options: { method?: string; headers?: Record<string, string>; body?: string; ca?: Buffer } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const send = url.startsWith('https:') ? httpsRequest : httpRequest;
    const req = send(url, { method: options.method ?? 'GET', headers: options.headers, agent: false, ...(options.ca ? { ca: options.ca } : {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const socket = res.socket as TLSSocket;
        resolve({
          status: res.statusCode ?? 0,
          headers: res.headers,
          body: Buffer.concat(chunks).toString('utf8'),
          certificate: typeof socket.getPeerCertificate === 'function' ? String(socket.getPeerCertificate().subject?.CN) : undefined,
        });
      });
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}` });

async function waitFor(condition: () => Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

describe('first start', () => {
  it('creates the admin once across two workers, prints its generated password once and writes it to a 0600 file', async () => {
    const dataDir = tempDir('bootstrap');
    const server = await serve({ dataDir });
    await waitFor(async () => server.output!().includes('stowage listening'), 10_000, 'both workers');
    const output = server.output!();
    const printed = [...output.matchAll(/created the user "admin" with the password:\s+(\S+)/g)];
    expect(printed).toHaveLength(1);
    const password = printed[0]![1]!;
    const file = join(dataDir, 'admin-password');
    expect(readFileSync(file, 'utf8').trim()).toBe(password);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // Printed once, never logged.
    expect(output.split(password)).toHaveLength(2);
    expect(output).toContain('"passwordFile"');

    for (let i = 0; i < 4; i++) expect((await call(`${server.url}/auth/token?service=stowage`, { headers: basic('admin', password) })).status).toBe(200);
    expect((await call(`${server.url}/auth/token?service=stowage`, { headers: basic('admin', 'wrong-password') })).status).toBe(401);

    // A restart finds the admin: nothing printed, the same password still works.
    await server.stop();
    const again = await serve({ dataDir });
    await waitFor(async () => again.output!().includes('stowage listening'), 10_000, 'restart');
    expect(again.output!()).not.toContain('created the user');
    expect((await call(`${again.url}/auth/token?service=stowage`, { headers: basic('admin', password) })).status).toBe(200);
  });

  it('uses STOWAGE_ADMIN_PASSWORD without printing or writing it', async () => {
    const dataDir = tempDir('given');
    const server = await serve({ dataDir, env: { STOWAGE_ADMIN_PASSWORD: 'given-admin-password' } });
    await waitFor(async () => server.output!().includes('stowage listening'), 10_000, 'workers');
    expect(server.output!()).not.toContain('given-admin-password');
    expect(server.output!()).toContain('STOWAGE_ADMIN_PASSWORD');
    expect(() => statSync(join(dataDir, 'admin-password'))).toThrow();
    expect((await call(`${server.url}/auth/token?service=stowage`, { headers: basic('admin', 'given-admin-password') })).status).toBe(200);
  });

  it('warns loudly when authentication is off', async () => {
    const server = await serve({ env: { STOWAGE_AUTH: 'none', STOWAGE_WORKERS: '1' } });
    await waitFor(async () => server.output!().includes('authentication is OFF'), 5000, 'the warning');
    expect(server.output!()).toMatch(/"level":40.*authentication is OFF/);
    expect((await call(`${server.url}/v2/`)).status).toBe(200);
  });
});

describe('revocation across workers', () => {
  it('a disabled user and its tokens stop working in every worker within seconds', async () => {
    const server = await serve({ env: { STOWAGE_ADMIN_PASSWORD: 'admin-password-x' } });
    await waitFor(async () => server.output!().includes('stowage listening'), 10_000, 'both workers');
    const admin = basic('admin', 'admin-password-x');
    const json = { ...admin, 'content-type': 'application/json' };
    expect((await call(`${server.url}/api/v1/users`, { method: 'POST', headers: json, body: JSON.stringify({ name: 'eve', password: 'eve-password-1' }) })).status).toBe(201);
    expect((await call(`${server.url}/api/v1/projects`, { method: 'POST', headers: json, body: JSON.stringify({ name: 'team', public: false }) })).status).toBe(201);
    expect((await call(`${server.url}/api/v1/projects/team/members/eve`, { method: 'PUT', headers: json, body: JSON.stringify({ role: 'reader' }) })).status).toBe(204);
    const answer = await call(`${server.url}/auth/token?service=stowage&scope=repository:team/app:pull`, { headers: basic('eve', 'eve-password-1') });
    const token = JSON.parse(answer.body).token as string;
    const tags = () => call(`${server.url}/v2/team/app/tags/list`, { headers: { authorization: `Bearer ${token}` } });
    for (let i = 0; i < 4; i++) expect((await tags()).status).toBe(404);

    expect((await call(`${server.url}/api/v1/users/eve`, { method: 'PATCH', headers: json, body: JSON.stringify({ disabled: true }) })).status).toBe(200);
    // Every worker polls revocations every 2 s: after that, no connection gets through.
    await new Promise((r) => setTimeout(r, 2500));
    for (let i = 0; i < 6; i++) expect((await tags()).status).toBe(401);
    expect((await call(`${server.url}/api/v1/projects`, { headers: basic('eve', 'eve-password-1') })).status).toBe(401);
  });
});

describe('HTTPS', () => {
  function certificate(dir: string, name: string): { cert: string; key: string } {
    const cert = join(dir, `${name}.crt`);
    const key = join(dir, `${name}.key`);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', `/CN=${name}`, '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', key, '-out', cert], { stdio: 'ignore' });
    return { cert, key };
  }

  it('serves HTTPS with HSTS and the challenge realm on https, and reloads the certificate on SIGHUP', async () => {
    const dir = tempDir('tls');
    const first = certificate(dir, 'first');
    const second = certificate(dir, 'second');
    const live = { cert: join(dir, 'live.crt'), key: join(dir, 'live.key') };
    execFileSync('cp', [first.cert, live.cert]);
    execFileSync('cp', [first.key, live.key]);
    const server = await serve({ https: true, env: { STOWAGE_TLS_CERT: live.cert, STOWAGE_TLS_KEY: live.key } });
    expect(server.url).toMatch(/^https:/);
    await waitFor(async () => server.output!().includes('stowage listening'), 10_000, 'both workers');

    const ca = readFileSync(first.cert);
    const base = await call(`${server.url}/v2/`, { ca });
    expect(base.status).toBe(401);
    expect(base.certificate).toBe('first');
    expect(base.headers['strict-transport-security']).toBe('max-age=31536000');
    expect(base.headers['www-authenticate']).toBe(`Bearer realm="https://${server.host}/auth/token",service="stowage"`);
    // Plain HTTP is not served on the HTTPS port.
    await expect(call(server.url.replace('https:', 'http:') + '/v2/')).rejects.toThrow();

    execFileSync('cp', [second.cert, live.cert]);
    execFileSync('cp', [second.key, live.key]);
    server.process.kill('SIGHUP');
    const secondCa = readFileSync(second.cert);
    await waitFor(async () => (await call(`${server.url}/healthz`, { ca: secondCa }).catch(() => undefined))?.certificate === 'second', 10_000, 'the new certificate');
    // Every worker reloaded: each new connection gets the new certificate.
    for (let i = 0; i < 6; i++) expect((await call(`${server.url}/healthz`, { ca: secondCa })).certificate).toBe('second');
    expect(server.output!()).toContain('TLS certificate and key reloaded');
  });
});
