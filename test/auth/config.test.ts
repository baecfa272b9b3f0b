// Access-control settings: `auth: none`, defaults, validation naming key and source.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.js';

function configFile(yaml: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'stowage-config-')), 'stowage.yaml');
  writeFileSync(file, yaml);
  return file;
}

describe('access-control settings', () => {
  it('default to token authentication with short-lived tokens and admin-only project creation', () => {
    const config = loadConfig({ env: {} });
    expect(config.auth).toMatchObject({ mode: 'token', service: 'stowage', tokenTtl: 300_000, basicOnRegistry: false, projectCreation: 'admins' });
    expect(config.auth.loginFailures).toEqual({ perUser: 10, perAddress: 50, window: 900_000 });
    expect(config.adminPasswordFile).toBe(resolve('data/admin-password'));
    expect(config.tls).toEqual({ hsts: 365 * 86_400_000 });
    expect(config.trustedProxies).toEqual([]);
    expect(config.audit).toEqual({ retention: 90 * 86_400_000, pulls: true });
  });

  it('take `auth: none` in a file, even with other auth settings from the environment', () => {
    const file = configFile('auth: none\n');
    expect(loadConfig({ file, env: {} }).auth.mode).toBe('none');
    const withEnv = loadConfig({ file, env: { STOWAGE_AUTH_SERVICE: 'registry.example.com' } });
    expect(withEnv.auth).toMatchObject({ mode: 'none', service: 'registry.example.com' });
    expect(loadConfig({ env: { STOWAGE_AUTH: 'none' } }).auth.mode).toBe('none');
  });

  it('read the admin password from the environment or the file only, and proxies as a list', () => {
    expect(loadConfig({ env: { STOWAGE_ADMIN_PASSWORD: 'a-long-password' } }).auth.adminPassword).toBe('a-long-password');
    expect(loadConfig({ file: configFile('auth:\n  adminPassword: from-the-file\n'), env: {} }).auth.adminPassword).toBe('from-the-file');
    expect(loadConfig({ env: { STOWAGE_TRUSTED_PROXIES: '10.0.0.0/8, 192.168.1.10,loopback' } }).trustedProxies).toEqual(['10.0.0.0/8', '192.168.1.10', 'loopback']);
    expect(loadConfig({ file: configFile('trustedProxies: [::1, fd00::/8]\n'), env: {} }).trustedProxies).toEqual(['::1', 'fd00::/8']);
  });

  it('refuse bad values naming the key and where it came from', () => {
    expect(() => loadConfig({ env: { STOWAGE_AUTH: 'open' } })).toThrow(/auth\.mode:.*environment variable STOWAGE_AUTH/);
    expect(() => loadConfig({ env: { STOWAGE_AUTH_TOKEN_TTL: '30s' } })).toThrow(/auth\.tokenTtl: must be between 60s and 24h.*STOWAGE_AUTH_TOKEN_TTL/);
    expect(() => loadConfig({ env: { STOWAGE_ADMIN_PASSWORD: 'short' } })).toThrow(/auth\.adminPassword: must have at least 8 characters.*STOWAGE_ADMIN_PASSWORD/);
    expect(() => loadConfig({ env: { STOWAGE_TRUSTED_PROXIES: '10.0.0.0/40' } })).toThrow(/trustedProxies\.0:.*STOWAGE_TRUSTED_PROXIES/);
    expect(() => loadConfig({ env: { STOWAGE_TLS_CERT: '/etc/cert.pem' } })).toThrow(/tls\.cert: tls\.cert and tls\.key go together.*STOWAGE_TLS_CERT/);
    expect(() => loadConfig({ env: { STOWAGE_AUTH_REALM: 'not a url' } })).toThrow(/auth\.realm:/);
    expect(() => loadConfig({ file: configFile('auth:\n  mode: token\n  colour: blue\n'), env: {} })).toThrow(/unknown setting\(s\) colour/);
  });
});
