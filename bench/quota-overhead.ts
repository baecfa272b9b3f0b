// What a project quota costs a push: pushes small images (config, one layer, manifest) through
// the in-process app (inject, no sockets) into a project without a quota and into one with a
// quota (the link then locks the quota row and computes the project's usage), alternating
// rounds. Usage: node --import tsx bench/quota-overhead.ts [images per round] [rounds]
import { createHash } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { createApp } from '../src/app/app.js';
import { loadConfig } from '../src/config/load.js';

const perRound = Number(process.argv[2] ?? 200);
const rounds = Number(process.argv[3] ?? 3);
const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

const dataDir = await mkdtemp(join(tmpdir(), 'stowage-quota-bench-'));
const config = loadConfig({ flags: { dataDir, 'auth.mode': 'none', 'log.requests': 'false', 'audit.pulls': 'false' } });
const app = await createApp(config, pino({ level: 'silent' }));
for (const name of ['free', 'limited']) await app.metadata.control.projects.create({ name, public: false, createdBy: null });
await app.metadata.quotas.set('limited', { bytes: 1e12, repositories: 10_000 });

let serial = 0;
async function pushImage(project: string): Promise<void> {
  const n = serial++;
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', n }));
  const layer = Buffer.from(`layer ${n} `.repeat(100));
  const repository = `${project}/app${n % 20}`;
  for (const blob of [config, layer]) {
    const r = await app.http.inject({ method: 'POST', url: `/v2/${repository}/blobs/uploads/?digest=${sha(blob)}`, payload: blob, headers: { 'content-type': 'application/octet-stream' } });
    if (r.statusCode !== 201) throw new Error(`${r.statusCode} ${r.body}`);
  }
  const d = (mediaType: string, b: Buffer) => ({ mediaType, digest: sha(b), size: b.length });
  const manifest = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', config: d('application/vnd.oci.image.config.v1+json', config), layers: [d('application/vnd.oci.image.layer.v1.tar', layer)] });
  const r = await app.http.inject({ method: 'PUT', url: `/v2/${repository}/manifests/t${n}`, payload: manifest, headers: { 'content-type': 'application/vnd.oci.image.manifest.v1+json' } });
  if (r.statusCode !== 201) throw new Error(`${r.statusCode} ${r.body}`);
}

async function round(project: string): Promise<number> {
  const started = process.hrtime.bigint();
  // Concurrency 8, as the benchmark's small-image workload.
  let next = 0;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (next++ < perRound) await pushImage(project);
  }));
  return Number(process.hrtime.bigint() - started) / 1e6 / perRound;
}

const results: Record<string, number[]> = { free: [], limited: [] };
await round('free'); // warm-up
for (let i = 0; i < rounds; i++) for (const project of i % 2 === 0 ? ['free', 'limited'] : ['limited', 'free']) results[project]!.push(await round(project));
const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;
console.log(JSON.stringify({ perRound, rounds, msPerImage: { noQuota: results.free!.map((v) => +v.toFixed(3)), quota: results.limited!.map((v) => +v.toFixed(3)) }, median: { noQuota: +median(results.free!).toFixed(3), quota: +median(results.limited!).toFixed(3) }, usage: await app.metadata.quotas.usage('limited') }));
await app.close();
await rm(dataDir, { recursive: true, force: true });
