import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';

function configFile(yaml: string): string {
  const file = join(mkdtempSync(join(tmpdir(), 'stowage-config-')), 'stowage.yaml');
  writeFileSync(file, yaml);
  return file;
}

describe('configuration', () => {
  it('defaults to port 5000 and ./data with a 24 h upload expiry', () => {
    const config = loadConfig({ env: {} });
    expect(config.listen).toBe('0.0.0.0:5000');
    expect(config.dataDir).toBe(resolve('data'));
    expect(config.storagePath).toBe(resolve('data/storage'));
    expect(config.metadataPath).toBe(resolve('data/stowage.db'));
    expect(config.uploads.expiry).toBe(24 * 3600 * 1000);
    expect(config.log.requests).toBe(true);
    expect(config.workers).toBeGreaterThanOrEqual(1);
  });

  it('takes flags over environment over file', () => {
    const file = configFile('listen: 127.0.0.1:7000\ndataDir: /srv/file\nlog:\n  level: debug\nuploads:\n  expiry: 2h\n');
    const fromFile = loadConfig({ file, env: {} });
    expect(fromFile).toMatchObject({ listen: '127.0.0.1:7000', dataDir: '/srv/file', log: { level: 'debug' } });
    expect(fromFile.uploads.expiry).toBe(2 * 3600 * 1000);

    const env = { STOWAGE_LISTEN: '127.0.0.1:7001', STOWAGE_DATA_DIR: '/srv/env', STOWAGE_UPLOADS_EXPIRY: '30m' };
    const fromEnv = loadConfig({ file, env });
    expect(fromEnv).toMatchObject({ listen: '127.0.0.1:7001', dataDir: '/srv/env', log: { level: 'debug' } });
    expect(fromEnv.uploads.expiry).toBe(30 * 60 * 1000);

    const fromFlags = loadConfig({ file, env, flags: { listen: '127.0.0.1:7002', 'uploads.expiry': '90s' } });
    expect(fromFlags).toMatchObject({ listen: '127.0.0.1:7002', dataDir: '/srv/env' });
    expect(fromFlags.uploads.expiry).toBe(90 * 1000);
  });

  it('reads the file named by STOWAGE_CONFIG', () => {
    const file = configFile('listen: 127.0.0.1:7003\n');
    expect(loadConfig({ env: { STOWAGE_CONFIG: file } }).listen).toBe('127.0.0.1:7003');
  });

  it('names the key, its source and what is expected when a setting is invalid', () => {
    expect(() => loadConfig({ env: { STOWAGE_UPLOADS_EXPIRY: 'soon' } })).toThrow(
      /uploads\.expiry: expected a duration such as 90s.*got "soon".*environment variable STOWAGE_UPLOADS_EXPIRY/,
    );
    expect(() => loadConfig({ env: {}, flags: { listen: 'localhost' } })).toThrow(/listen: expected HOST:PORT.*flag --listen/);
    expect(() => loadConfig({ env: { STOWAGE_LOG_LEVEL: 'loud' } })).toThrow(/log\.level:.*STOWAGE_LOG_LEVEL/);
    expect(() => loadConfig({ env: { STOWAGE_WORKERS: '0' } })).toThrow(/workers:/);
  });

  it('refuses unknown keys and unreadable files', () => {
    const file = configFile('listen: 127.0.0.1:7004\nstorag:\n  path: /x\n');
    expect(() => loadConfig({ file, env: {} })).toThrow(/unknown setting\(s\) storag/);
    expect(() => loadConfig({ file: '/nonexistent/stowage.yaml', env: {} })).toThrow(ConfigError);
    expect(() => loadConfig({ file: configFile('- a list\n'), env: {} })).toThrow(/must hold a YAML mapping/);
  });
});
