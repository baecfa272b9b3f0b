#!/usr/bin/env node
// Summarises .cpuprofile files (from BENCH_PROFILE=1): top functions by self time, and by
// inclusive time for Stowage's own code. Usage: node bench/profile-summary.mjs DIR|FILE... [--top N]
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';

const args = process.argv.slice(2);
const topI = args.indexOf('--top');
const top = topI >= 0 ? Number(args.splice(topI, 2)[1]) : 25;
const files = args.flatMap((a) => (statSync(a).isDirectory() ? readdirSync(a).filter((f) => f.endsWith('.cpuprofile')).map((f) => join(a, f)) : [a]));
if (!files.length) { console.error('usage: node bench/profile-summary.mjs DIR|FILE... [--top N]'); process.exit(2); }

const root = process.cwd();
const where = (cf) => {
  const url = cf.url.replace(/^file:\/\//, '');
  const short = url ? (url.startsWith(root) ? relative(root, url) : url.replace(/.*node_modules\//, 'node_modules/')) : '(native)';
  return `${cf.functionName || '(anonymous)'} ${short}${url ? `:${cf.lineNumber + 1}` : ''}`;
};

for (const file of files) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const dt = new Map();
  for (let i = 0; i < p.samples.length; i++) dt.set(p.samples[i], (dt.get(p.samples[i]) ?? 0) + (p.timeDeltas[i] ?? 0));
  const total = [...dt.values()].reduce((a, b) => a + b, 0);
  const self = new Map();
  const incl = new Map();
  for (const [id, us] of dt) {
    const n = byId.get(id);
    const k = where(n.callFrame);
    self.set(k, (self.get(k) ?? 0) + us);
    const seen = new Set();
    for (let cur = id; cur != null; cur = parent.get(cur)) {
      const kk = where(byId.get(cur).callFrame);
      if (seen.has(kk)) continue;
      seen.add(kk);
      incl.set(kk, (incl.get(kk) ?? 0) + us);
    }
  }
  const idle = self.get('(idle) (native)') ?? 0;
  console.log(`\n== ${file}: ${(total / 1e6).toFixed(2)} s sampled, ${((total - idle) / 1e6).toFixed(2)} s busy`);
  const show = (m, title, filter = () => true) => {
    console.log(`-- ${title}`);
    for (const [k, us] of [...m].filter(([k]) => filter(k) && !k.startsWith('(idle)') && !k.startsWith('(root)') && !k.startsWith('(program)')).sort((a, b) => b[1] - a[1]).slice(0, top)) {
      console.log(`${(us / 1000).toFixed(0).padStart(8)} ms ${((100 * us) / Math.max(1, total - idle)).toFixed(1).padStart(5)}%  ${k}`);
    }
  };
  show(self, 'self time');
  show(incl, 'inclusive time, Stowage code (dist/ or src/)', (k) => / (dist|src)\//.test(k));
}
