// The reference registry (CNCF Distribution 2.8, Debian package docker-registry) as a stand-in
// for Stowage: same return shape as startStowage(), for validating test harnesses and comparing.
import { spawn } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureTool } from './clients.js';
import { freePort, type RunningStowage } from './stowage.js';

export async function startDistribution(options: { dataDir?: string; env?: Record<string, string> } = {}): Promise<RunningStowage> {
  const binary = await ensureTool('docker-registry', 'docker-registry');
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'distribution-'));
  const port = await freePort();
  const host = `127.0.0.1:${port}`;
  const config = join(dataDir, 'config.yml');
  writeFileSync(
    config,
    [
      'version: 0.1',
      'log:',
      '  level: warn',
      '  accesslog:',
      '    disabled: true',
      'storage:',
      '  filesystem:',
      `    rootdirectory: ${join(dataDir, 'data')}`,
      '  delete:',
      '    enabled: true',
      '  cache:',
      '    blobdescriptor: inmemory',
      '  maintenance:',
      '    uploadpurging:',
      '      enabled: false',
      'http:',
      `  addr: ${host}`,
      '',
    ].join('\n'),
  );
  const env: NodeJS.ProcessEnv = { ...process.env, ...options.env };
  // Distribution 2.8's S3 driver panics on AWS_CA_BUNDLE; harmless to drop here.
  delete env.AWS_CA_BUNDLE;
  // Distribution logs every 404 at level error: keep its chatter in a file beside its data.
  const log = openSync(join(dataDir, 'registry.log'), 'a');
  const child = spawn(binary, ['serve', config], { env, stdio: ['ignore', log, log] });
  closeSync(log);
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  child.once('error', () => undefined);
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`docker-registry exited with code ${child.exitCode} before it was ready`);
    try {
      const res = await fetch(`http://${host}/v2/`);
      if (res.status === 200) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error('docker-registry did not become ready within 30 s');
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    host,
    url: `http://${host}`,
    dataDir,
    process: child,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
    async kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await exited;
    },
  };
}
