// The memory bar's measure: a process tree's memory on its own, each page counted once, must not
// move when unrelated processes map the same binary (summed PSS does). node --test bench/test/
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { memoryKiB, treeMemoryKiB } from '../lib/procstat.mjs';

/** A node process holding `mib` MiB of its own memory, spawned by a node parent when `child`. */
function startTree(mib, child) {
  const hold = `globalThis.b = Buffer.alloc(${mib} * 1048576, 1); setInterval(() => {}, 1000);`;
  const script = child
    ? `${hold} const c = require('node:child_process').spawn(process.execPath, ['-e', ${JSON.stringify(hold)}], { stdio: 'ignore' }); process.send(c.pid);`
    : `${hold} process.send(0);`;
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  return new Promise((resolve) => proc.once('message', (childPid) => resolve({ proc, pids: childPid ? [proc.pid, childPid] : [proc.pid] })));
}

const settle = () => new Promise((r) => setTimeout(r, 300));
const measure = (pids) => {
  const samples = pids.map(memoryKiB);
  return { own: treeMemoryKiB(samples), pss: samples.reduce((a, m) => a + m.pss, 0), rss: samples.reduce((a, m) => a + m.private + m.shared, 0) };
};

test('a tree counts its shared binary once, whatever else runs on the machine', async () => {
  const tree = await startTree(20, true);
  const others = [];
  try {
    await settle();
    const alone = measure(tree.pids);
    // Two processes of 20 MiB each: both buffers count, the node binary once (not twice as in RSS).
    assert.ok(alone.own >= 2 * 20 * 1024, `own ${alone.own} KiB holds both 20 MiB buffers`);
    assert.ok(alone.own < alone.rss, `own ${alone.own} KiB < summed RSS ${alone.rss} KiB`);
    for (let i = 0; i < 3; i++) others.push((await startTree(1, false)).proc);
    await settle();
    const crowded = measure(tree.pids);
    // Three more node processes share the binary's pages: summed PSS falls, the tree's own memory does not.
    assert.ok(crowded.pss < alone.pss - 1024, `PSS ${alone.pss} -> ${crowded.pss} KiB`);
    assert.ok(Math.abs(crowded.own - alone.own) < 256, `own ${alone.own} -> ${crowded.own} KiB`);
  } finally {
    for (const p of others) p.kill();
    process.kill(tree.pids[1]);
    tree.proc.kill();
  }
});
