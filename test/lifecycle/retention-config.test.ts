// retention.schedule: off by default, a UTC cron from the file, the environment or a flag;
// anything else stops the start naming the key.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config/load.js';

describe('retention.schedule', () => {
  it('is off by default and takes a cron expression from the environment or a flag', () => {
    expect(loadConfig({ env: {} }).retention.schedule).toBeNull();
    expect(loadConfig({ env: { STOWAGE_RETENTION_SCHEDULE: '0 3 * * *' } }).retention.schedule).toBe('0 3 * * *');
    expect(loadConfig({ env: { STOWAGE_RETENTION_SCHEDULE: 'off' } }).retention.schedule).toBeNull();
    expect(loadConfig({ env: {}, flags: { 'retention.schedule': '*/30 * * * *' } }).retention.schedule).toBe('*/30 * * * *');
  });

  it('refuses what is not a cron expression, naming the key', () => {
    let error: unknown;
    try {
      loadConfig({ env: { STOWAGE_RETENTION_SCHEDULE: 'nightly' } });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toContain('retention.schedule');
    expect((error as Error).message).toContain('not a cron expression');
  });
});
