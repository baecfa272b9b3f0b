// Resource accounting for a registry's whole process tree (the root process plus every
// descendant: cluster workers, helpers), read from /proc.
//
// A worker thread samples resident memory every SAMPLE_MS so that busy phases of the main thread
// (hashing, HTTP clients) cannot hide a peak; the numbers live in a SharedArrayBuffer that the
// main thread reads synchronously. CPU time is read on demand (it is cumulative, so it needs no
// sampling): utime+stime+cutime+cstime summed over the live tree, which also keeps the time of
// workers that already exited (it moves into the parent's cutime/cstime when they are reaped).
import { readFileSync, readdirSync } from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { execFileSync } from 'node:child_process';

const SAMPLE_MS = 100;
// Slot layout per tracked tree (Float64): peak tree RSS, window peak tree RSS, current tree RSS,
// max over time of the summed per-process VmHWM, process count seen last, samples taken; then
// peak, window peak and current of the summed PSS, and the same three of the tree's own memory
// (see treeMemoryKiB).
const SLOT = 12;
const MAX_TREES = 8;

function sysconf(name, fallback) {
  try { return Number(execFileSync('getconf', [name]).toString().trim()) || fallback; } catch { return fallback; }
}

/** Parses /proc/<pid>/stat; returns null when the process is gone. */
export function readStat(pid) {
  let s;
  try { s = readFileSync(`/proc/${pid}/stat`, 'latin1'); } catch { return null; }
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return {
    state: f[0],
    ppid: Number(f[1]),
    ticks: Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]),
    userTicks: Number(f[11]) + Number(f[13]),
    rssPages: Number(f[21]),
  };
}

function hwmKiB(pid) {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) : 0;
  } catch { return 0; }
}

/**
 * One process's resident memory from smaps_rollup (KiB): `pss`, the proportional set size (each
 * page shared by N processes counted 1/N, whoever they are), and its `private` and `shared` pages.
 */
export function memoryKiB(pid) {
  let text;
  try { text = readFileSync(`/proc/${pid}/smaps_rollup`, 'latin1'); } catch { return null; }
  const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? 0);
  return {
    pss: field('Pss'),
    private: field('Private_Clean') + field('Private_Dirty'),
    shared: field('Shared_Clean') + field('Shared_Dirty'),
  };
}

/**
 * The resident memory a process tree needs on its own, each page counted once: the private pages
 * of all its processes plus the largest shared set of any one of them (the node binary and
 * libraries and the database map, which the tree's processes all map alike). Summed PSS does not
 * give this: it divides a shared page among every process that maps it, so the node binary's
 * pages (≈ 45 MB) count for less whenever other `node` processes run on the machine (the
 * benchmark's own runner, the push-ceiling server), by how much depending on how many run.
 */
export function treeMemoryKiB(samples) {
  let privateSum = 0;
  let sharedMax = 0;
  for (const m of samples) {
    privateSum += m.private;
    sharedMax = Math.max(sharedMax, m.shared);
  }
  return privateSum + sharedMax;
}

/** The root pid and all of its live descendants (full /proc scan: robust for any spawner). */
export function treePids(root) {
  const children = new Map();
  for (const name of readdirSync('/proc')) {
    if (name.charCodeAt(0) < 48 || name.charCodeAt(0) > 57) continue;
    const st = readStat(name);
    if (!st) continue;
    const list = children.get(st.ppid);
    if (list) list.push(Number(name)); else children.set(st.ppid, [Number(name)]);
  }
  const out = [];
  const stack = [root];
  while (stack.length && out.length < 4096) {
    const p = stack.pop();
    out.push(p);
    for (const c of children.get(p) ?? []) stack.push(c);
  }
  return out;
}

if (!isMainThread && workerData?.procstat) {
  const { buf, pageSize } = workerData;
  const data = new Float64Array(buf);
  const roots = new Map(); // slot -> root pid
  const trees = new Map(); // slot -> pids
  const hwm = new Map(); // slot -> Map(pid -> max VmHWM KiB)
  let tick = 0;
  parentPort.on('message', (m) => {
    if (m.add) { roots.set(m.slot, m.pid); trees.set(m.slot, [m.pid]); hwm.set(m.slot, new Map()); }
    if (m.remove) { roots.delete(m.slot); trees.delete(m.slot); hwm.delete(m.slot); }
  });
  setInterval(() => {
    tick++;
    for (const [slot, root] of roots) {
      if (tick % 10 === 1) trees.set(slot, treePids(root));
      let rss = 0;
      let pss = 0;
      const memory = [];
      let n = 0;
      const h = hwm.get(slot);
      for (const pid of trees.get(slot)) {
        const st = readStat(pid);
        if (!st) continue;
        rss += st.rssPages * pageSize;
        n++;
        if (tick % 5 === 0) {
          h.set(pid, Math.max(h.get(pid) ?? 0, hwmKiB(pid)));
          const m = memoryKiB(pid);
          if (m) {
            pss += m.pss * 1024;
            memory.push(m);
          }
        }
      }
      let hsum = 0;
      for (const v of h.values()) hsum += v * 1024;
      const o = slot * SLOT;
      data[o + 0] = Math.max(data[o + 0], rss);
      data[o + 1] = Math.max(data[o + 1], rss);
      data[o + 2] = rss;
      data[o + 3] = Math.max(data[o + 3], hsum);
      data[o + 4] = n;
      data[o + 5]++;
      if (pss > 0) {
        data[o + 6] = Math.max(data[o + 6], pss);
        data[o + 7] = Math.max(data[o + 7], pss);
        data[o + 8] = pss;
        const own = treeMemoryKiB(memory) * 1024;
        data[o + 9] = Math.max(data[o + 9], own);
        data[o + 10] = Math.max(data[o + 10], own);
        data[o + 11] = own;
      }
    }
  }, SAMPLE_MS);
}

/** One sampler for all trees; call `track(pid)` per registry. */
export function createSampler() {
  const pageSize = sysconf('PAGESIZE', 4096);
  const clkTck = sysconf('CLK_TCK', 100);
  const buf = new SharedArrayBuffer(8 * SLOT * MAX_TREES);
  const data = new Float64Array(buf);
  const worker = new Worker(new URL(import.meta.url), { workerData: { procstat: true, buf, pageSize } });
  worker.unref();
  let nextSlot = 0;
  return {
    track(pid) {
      const slot = nextSlot++;
      if (slot >= MAX_TREES) throw new Error('too many tracked process trees');
      worker.postMessage({ add: true, slot, pid });
      const o = slot * SLOT;
      let lastCpu = 0;
      let lastUser = 0;
      return {
        /** CPU seconds of the live tree, including reaped children; monotonic. */
        cpuSeconds() {
          let ticks = 0;
          let user = 0;
          for (const p of treePids(pid)) {
            const st = readStat(p);
            ticks += st?.ticks ?? 0;
            user += st?.userTicks ?? 0;
          }
          lastCpu = Math.max(lastCpu, ticks / clkTck);
          lastUser = Math.max(lastUser, user / clkTck);
          return lastCpu;
        },
        /** User-mode part of the last cpuSeconds() reading (the rest is kernel time). */
        userSeconds: () => lastUser,
        peakRss: () => data[o + 0],
        currentRss: () => data[o + 2],
        hwmSum: () => data[o + 3],
        /** Peak of the tree's summed PSS (sampled every 0.5 s). */
        peakPss: () => data[o + 6],
        /** Peak of the tree's own memory, each page counted once (see treeMemoryKiB; every 0.5 s). */
        peakOwn: () => data[o + 9],
        processes: () => data[o + 4],
        samples: () => data[o + 5],
        /** Starts a new window for windowPeakRss() (e.g. per workload). */
        resetWindow() { data[o + 1] = data[o + 2]; data[o + 7] = data[o + 8]; data[o + 10] = data[o + 11]; },
        windowPeakRss: () => data[o + 1],
        windowPeakPss: () => data[o + 7],
        windowPeakOwn: () => data[o + 10],
        stop() { worker.postMessage({ remove: true, slot }); },
      };
    },
    close() { return worker.terminate(); },
  };
}
