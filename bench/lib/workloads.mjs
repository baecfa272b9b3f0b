// The seeded content and the workloads of issue #3. A workload declares the metrics it reports
// (with direction and target ratio Stowage/Distribution) and how to run one measurement against
// one registry; the runner alternates registries round by round (A B A B ...).
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import { createHash } from 'node:crypto';
import { MiB, GiB, median, pool, deadline, sleep, log } from './util.mjs';
import { repeatingBlob, smallBlob, imageConfig, imageManifest, MT, PULL_ACCEPT } from './data.mjs';
import { wrk, abHead } from './tools.mjs';
import { download, parallelDownloads } from './transfer.mjs';
import { createLeanPusher } from './lean-http.mjs';

export function sizes(quick) {
  const env = (k, d) => (process.env[k] ? Number(process.env[k]) : d);
  // Blob sizes in MiB, for a store that cannot hold the defaults (bench/scaleout.ts).
  const mib = (k, d) => {
    if (!process.env[k]) return d;
    const n = Number(process.env[k]);
    if (!Number.isInteger(n) || n < 1) throw new Error(`${k} must be a whole number of MiB (got "${process.env[k]}")`);
    return n * MiB;
  };
  return quick
    ? {
        rounds: env('ROUNDS', 2), seconds: env('BENCH_SECONDS', 3), warmupSeconds: 1,
        bigBlob: 128 * MiB, mediumBlob: 16 * MiB, parallel: 8, pushMono: 128 * MiB, pushChunked: 64 * MiB,
        chunk: 8 * MiB, smallImages: 50, imageConcurrency: 8, tags: 500, repos: 200,
        listRepeats: 3, pageRepeats: 5, catalogPage: 1000, concurrencies: [1, 16, 64, 256],
      }
    : {
        rounds: env('ROUNDS', 3), seconds: env('BENCH_SECONDS', 10), warmupSeconds: 3,
        bigBlob: mib('BENCH_BIG_BLOB_MIB', 1 * GiB), mediumBlob: 64 * MiB, parallel: 8,
        pushMono: mib('BENCH_PUSH_MIB', 1 * GiB), pushChunked: mib('BENCH_CHUNKED_PUSH_MIB', 256 * MiB),
        chunk: 8 * MiB, smallImages: 500, imageConcurrency: 8, tags: 5000, repos: 2000,
        listRepeats: 10, pageRepeats: 20, catalogPage: 1000, concurrencies: [1, 16, 64, 256],
      };
}

/** The small-images workload spreads its images over this many repositories. */
const SMALL_REPOS = 25;
const human = (n) => (n >= GiB ? `${n / GiB} GiB` : `${n / MiB} MiB`);
const pad = (i, w) => String(i).padStart(w, '0');

/** Content shared by both registries: generated once, seeded identically. */
export async function prepareContent(sz) {
  const hotCfg = smallBlob(imageConfig('hot'));
  const hotLayers = [1, 2, 3].map((i) => smallBlob(randomBytes(2048 * i)));
  // ~1 KB manifest: config + 3 layers + the annotations a CI build typically adds.
  const hotManifest = imageManifest(hotCfg, hotLayers, {
    'org.opencontainers.image.created': '2024-01-01T00:00:00Z',
    'org.opencontainers.image.source': 'https://example.com/stowage/bench',
    'org.opencontainers.image.revision': 'd6cd1e2bd19e03a81132a23b2025920577f84e37',
  });
  const big = repeatingBlob(sz.bigBlob);
  const medium = repeatingBlob(sz.mediumBlob);
  await big.computeDigest();
  await medium.computeDigest();
  const blobsCfg = smallBlob(imageConfig('blobs'));
  const tagCfg = smallBlob(imageConfig('tags'));
  const tagLayer = smallBlob(randomBytes(1024));
  return {
    hotCfg, hotLayers, hotManifest, big, medium, blobsCfg, tagCfg, tagLayer,
    tagManifest: (i) => imageManifest(tagCfg, [tagLayer], { 'org.example.build': String(i) }),
  };
}

/** Seeds one registry over the plain OCI API (concurrency 8). */
export async function seed(client, c, sz) {
  const limit = deadline(30 * 60_000, 'seeding');
  const t = performance.now();
  for (const b of [c.hotCfg, ...c.hotLayers]) await client.pushBlob('bench/hot', b);
  await client.putManifest('bench/hot', 'latest', c.hotManifest);

  for (const b of [c.blobsCfg, c.big, c.medium]) await client.pushBlob('bench/blobs', b);
  await client.putManifest('bench/blobs', 'latest', imageManifest(c.blobsCfg, [c.big, c.medium]));

  await client.pushBlob('bench/tags', c.tagCfg);
  await client.pushBlob('bench/tags', c.tagLayer);
  await pool(sz.tags, 8, (i) => client.putManifest('bench/tags', `t${pad(i, 5)}`, c.tagManifest(i)), limit);

  const repoManifest = imageManifest(c.tagCfg, [c.tagLayer]);
  await pool(sz.repos, 8, async (i) => {
    const repo = `catalog/r${pad(i, 5)}`;
    await client.mountOrPush(repo, 'bench/tags', c.tagCfg);
    await client.mountOrPush(repo, 'bench/tags', c.tagLayer);
    await client.putManifest(repo, 'latest', repoManifest);
  }, limit);
  return (performance.now() - t) / 1000;
}

/** Untimed correctness checks so a fast wrong answer is never measured as a fast answer. */
export async function verify(client, c) {
  const auth = await client.authHeaders('bench/blobs', { validForS: 60 });
  const r = await client.getManifest('bench/hot', 'latest', PULL_ACCEPT);
  if (!r.body.equals(c.hotManifest)) throw new Error('manifest GET returned different bytes than were pushed');
  const ct = String(r.headers['content-type'] ?? '');
  if (!ct.startsWith(MT.manifest)) throw new Error(`manifest GET content-type ${ct}`);
  const h = await client.request('HEAD', `/v2/bench/hot/blobs/${c.hotLayers[0].digest}`);
  if (h.status !== 200 || Number(h.headers['content-length']) !== c.hotLayers[0].size) {
    throw new Error(`blob HEAD -> ${h.status}, content-length ${h.headers['content-length']}`);
  }
  // Hash the medium blob as served, and check the big one's length.
  const digest = await new Promise((ok, fail) => {
    http.get(`${client.base}/v2/bench/blobs/blobs/${c.medium.digest}`, { headers: auth }, (res) => {
      if (res.statusCode !== 200) { res.resume(); return fail(new Error(`blob GET -> ${res.statusCode}`)); }
      const hash = createHash('sha256');
      res.on('data', (d) => hash.update(d));
      res.on('end', () => ok('sha256:' + hash.digest('hex')));
      res.on('error', fail);
    }).on('error', fail);
  });
  if (digest !== c.medium.digest) throw new Error(`blob GET bytes hash to ${digest}, expected ${c.medium.digest}`);
  await download(`${client.base}/v2/bench/blobs/blobs/${c.big.digest}`, { expectBytes: c.big.size, headers: auth });
}

/**
 * BENCH_AUTH=token: proves that tokens are really required, so the variant never measures an
 * open registry: anonymous manifest GET and blob HEAD must get 401 with a Bearer challenge.
 */
export async function verifyTokenRequired(client, c) {
  const probes = [['GET', '/v2/bench/hot/manifests/latest'], ['HEAD', `/v2/bench/hot/blobs/${c.hotLayers[0].digest}`]];
  for (const [method, path] of probes) {
    const r = await client.request(method, path, { anonymous: true, headers: { accept: PULL_ACCEPT } });
    const challenge = String(r.headers['www-authenticate'] ?? '');
    if (r.status !== 401 || !/^Bearer\s.*realm=/i.test(challenge)) {
      throw new Error(`anonymous ${method} ${path} -> ${r.status} (www-authenticate: ${challenge || 'none'}); expected 401 with a Bearer challenge`);
    }
  }
  if (client.tokensFetched() === 0) throw new Error('no token was fetched while seeding: the requests were not authenticated');
}

const ratioTargets = {
  manifestRps: { op: '>=', value: 10 },
  manifestP99: { op: '<=', value: 0.5 },
  headRps: { op: '>=', value: 10 },
  get: { op: '>=', value: 1 },
  push: { op: '>=', value: 3 },
  images: { op: '>=', value: 3 },
  tagsFull: { op: '<=', value: 0.5 },
  catalog: { op: '<=', value: 0.1 },
};

/** The workload list, in run order (listings before pushes, so the catalog holds only seeds). */
export function workloads(sz, c) {
  const list = [];
  const hotUrl = (reg) => `${reg.url}/v2/bench/hot/manifests/latest`;
  // BENCH_AUTH=token: the runner calls a workload's `auth(client)` before each measurement, outside
  // the timed part and the CPU window, so that the measurement carries cached tokens as a client in
  // steady state does; `run` then gets the same token from the cache. {} without auth.
  const runToken = (client, repo) => client.authHeaders(repo, { validForS: sz.seconds + sz.warmupSeconds + 30 });
  const transferToken = (client) => client.authHeaders('bench/blobs', { validForS: 120 });

  for (const conc of sz.concurrencies) {
    const big = conc >= 64;
    list.push({
      id: `manifest-get-c${conc}`,
      title: `manifest GET by tag, c=${conc}`,
      metrics: [
        { key: 'rps', label: `manifest GET c=${conc} req/s`, unit: 'req/s', better: 'higher', target: big ? ratioTargets.manifestRps : null },
        { key: 'p50Ms', label: `manifest GET c=${conc} p50`, unit: 'ms', better: 'lower', target: null, chart: false },
        { key: 'p99Ms', label: `manifest GET c=${conc} p99`, unit: 'ms', better: 'lower', target: big ? ratioTargets.manifestP99 : null },
        { key: 'cpuMsPerReq', label: `manifest GET c=${conc} registry CPU/req`, unit: 'ms', better: 'lower', target: null, cpu: true, chart: false },
      ],
      auth: (client) => runToken(client, 'bench/hot'),
      async warmup(reg, client) {
        if (conc !== sz.concurrencies[0]) return;
        const { authorization } = await runToken(client, 'bench/hot');
        await wrk(hotUrl(reg), { connections: 16, seconds: sz.warmupSeconds, accept: PULL_ACCEPT, authorization });
      },
      async run(reg, client) {
        const { authorization } = await runToken(client, 'bench/hot');
        const r = await wrk(hotUrl(reg), { connections: conc, seconds: sz.seconds, accept: PULL_ACCEPT, authorization });
        if (r.errors) throw new Error(`wrk: ${r.errors} errors ${JSON.stringify(r.errorDetail)}`);
        if (Math.abs(r.bytesPerReq - c.hotManifest.length) > 1024) throw new Error(`wrk: ${r.bytesPerReq.toFixed(0)} bytes per response, manifest is ${c.hotManifest.length}`);
        return { rps: r.rps, p50Ms: r.p50Ms, p99Ms: r.p99Ms, requests: r.requests };
      },
    });
  }

  list.push({
    id: 'blob-head-c64',
    title: 'blob HEAD, c=64 (ab -i -k)',
    metrics: [
      { key: 'rps', label: 'blob HEAD c=64 req/s', unit: 'req/s', better: 'higher', target: ratioTargets.headRps },
      { key: 'p99Ms', label: 'blob HEAD c=64 p99', unit: 'ms', better: 'lower', target: null },
      { key: 'cpuMsPerReq', label: 'blob HEAD c=64 registry CPU/req', unit: 'ms', better: 'lower', target: null, cpu: true, chart: false },
    ],
    auth: (client) => runToken(client, 'bench/hot'),
    async run(reg, client) {
      const { authorization } = await runToken(client, 'bench/hot');
      const r = await abHead(`${reg.url}/v2/bench/hot/blobs/${c.hotLayers[0].digest}`, { concurrency: 64, seconds: sz.seconds, authorization });
      if (r.errors) throw new Error(`ab: ${r.errors} errors ${JSON.stringify(r.errorDetail)}`);
      return { rps: r.rps, p99Ms: r.p99Ms, requests: r.requests };
    },
  });

  const listing = (id, title, label, path, key, repeats, target, expectItems, repo) => ({
    id,
    title,
    auth: (client) => client.authHeaders(repo, { validForS: 120 }),
    metrics: [
      { key: 'ms', label, unit: 'ms', better: 'lower', target },
      { key: 'items', label: 'items', note: true },
      { key: 'pages', label: 'pages', note: true },
    ],
    async run(reg, client) {
      const times = [];
      let last;
      for (let i = 0; i < repeats; i++) {
        const t = performance.now();
        last = await client.walk(path, key, 1000);
        times.push(performance.now() - t);
      }
      if (last.unique < Math.min(expectItems, last.items)) throw new Error(`${id}: duplicate items (${last.items} returned, ${last.unique} unique)`);
      // A short list is a wrong answer (e.g. a catalog filtered to what an anonymous caller may see).
      if (last.items < expectItems) throw new Error(`${id}: ${last.items} items returned, ${expectItems} expected`);
      return { ms: median(times), items: last.items, pages: last.pages };
    },
  });
  list.push(listing('tags-full', `full tag list (${sz.tags} tags)`, `tag list, full (${sz.tags} tags)`,
    '/v2/bench/tags/tags/list', 'tags', sz.listRepeats, ratioTargets.tagsFull, sz.tags, 'bench/tags'));
  list.push(listing('tags-page', 'first tag page, n=100', 'tag list, first page n=100',
    '/v2/bench/tags/tags/list?n=100', 'tags', sz.pageRepeats, null, 100, 'bench/tags'));
  // One GET of the first page only: walk() would follow Link; use maxPages=1 via a dedicated run.
  list.at(-1).run = async (reg, client) => {
    const times = [];
    let items = 0;
    for (let i = 0; i < sz.pageRepeats; i++) {
      const t = performance.now();
      const r = await client.expect('GET', '/v2/bench/tags/tags/list?n=100', [200]);
      times.push(performance.now() - t);
      items = JSON.parse(r.body.toString()).tags?.length ?? 0;
    }
    return { ms: median(times), items, pages: 1 };
  };
  list.push(listing('catalog-walk', `full _catalog walk (${sz.repos} repos, n=${sz.catalogPage})`, `catalog walk (${sz.repos}+ repos)`,
    `/v2/_catalog?n=${sz.catalogPage}`, 'repositories', sz.listRepeats, ratioTargets.catalog, sz.repos, 'catalog'));

  list.push({
    id: 'blob-get-big',
    title: `blob GET, one ${human(sz.bigBlob)} blob`,
    metrics: [{ key: 'mbps', label: `blob GET ${human(sz.bigBlob)}`, unit: 'MB/s', better: 'higher', target: ratioTargets.get }],
    pauseMs: 500,
    auth: transferToken,
    async warmup(reg, client) { await download(`${reg.url}/v2/bench/blobs/blobs/${c.big.digest}`, { expectBytes: c.big.size, headers: await transferToken(client) }); },
    async run(reg, client) {
      const r = await download(`${reg.url}/v2/bench/blobs/blobs/${c.big.digest}`, { expectBytes: c.big.size, headers: await transferToken(client) });
      return { mbps: r.bytes / 1e6 / (r.ms / 1000) };
    },
  });
  list.push({
    id: 'blob-get-parallel',
    title: `blob GET, ${sz.parallel} parallel × ${human(sz.mediumBlob)}`,
    metrics: [{ key: 'mbps', label: `blob GET ${sz.parallel}×${human(sz.mediumBlob)}`, unit: 'MB/s', better: 'higher', target: ratioTargets.get }],
    pauseMs: 500,
    auth: transferToken,
    async warmup(reg, client) { await download(`${reg.url}/v2/bench/blobs/blobs/${c.medium.digest}`, { expectBytes: c.medium.size, headers: await transferToken(client) }); },
    async run(reg, client) {
      const r = await parallelDownloads(`${reg.url}/v2/bench/blobs/blobs/${c.medium.digest}`, sz.parallel, { expectBytes: c.medium.size, headers: await transferToken(client) });
      return { mbps: r.mbps };
    },
  });

  // Pushes: fresh content each round (same for A and B within the round), deleted afterwards.
  list.push({
    id: 'push-monolithic',
    title: `monolithic blob push (POST + PUT), ${human(sz.pushMono)}`,
    metrics: [{ key: 'mbps', label: `push monolithic ${human(sz.pushMono)}`, unit: 'MB/s', better: 'higher', target: ratioTargets.push },
      { key: 'cpuSec', label: `push monolithic ${human(sz.pushMono)} registry CPU`, unit: 's', better: 'lower', target: null, cpu: true, chart: false }],
    pauseMs: 1000,
    ceiling: true, // also measured against lib/upload-sink.mjs, see run.mjs
    bytes: sz.pushMono,
    auth: (client) => client.authHeaders('bench/push', { validForS: 120, push: true }),
    async prepareRound() { const b = repeatingBlob(sz.pushMono); await b.computeDigest(); return b; },
    async run(reg, client, blob) {
      const ms = await client.pushBlob('bench/push', blob);
      return { mbps: blob.size / 1e6 / (ms / 1000) };
    },
    async cleanup(reg, client, blob) { await client.deleteBlob('bench/push', blob.digest); },
  });
  list.push({
    id: 'push-chunked',
    title: `chunked blob push, ${human(sz.pushChunked)} in ${human(sz.chunk)} PATCHes`,
    metrics: [{ key: 'mbps', label: `push chunked ${human(sz.pushChunked)} (${human(sz.chunk)} PATCH)`, unit: 'MB/s', better: 'higher', target: ratioTargets.push },
      { key: 'cpuSec', label: `push chunked ${human(sz.pushChunked)} registry CPU`, unit: 's', better: 'lower', target: null, cpu: true, chart: false }],
    pauseMs: 1000,
    ceiling: true, // also measured against lib/upload-sink.mjs, see run.mjs
    bytes: sz.pushChunked,
    auth: (client) => client.authHeaders('bench/push', { validForS: 120, push: true }),
    async prepareRound() { const b = repeatingBlob(sz.pushChunked); await b.computeDigest(); return b; },
    async run(reg, client, blob) {
      const ms = await client.pushBlobChunked('bench/push', blob, sz.chunk);
      return { mbps: blob.size / 1e6 / (ms / 1000) };
    },
    async cleanup(reg, client, blob) { await client.deleteBlob('bench/push', blob.digest); },
  });

  list.push({
    id: 'small-images',
    title: `${sz.smallImages} small images (3 layers + config + manifest), concurrency ${sz.imageConcurrency}`,
    metrics: [{ key: 'ips', label: `${sz.smallImages} small images, c=${sz.imageConcurrency}`, unit: 'images/s', better: 'higher', target: ratioTargets.images },
      { key: 'cpuMsPerImage', label: 'small images: registry CPU/image', unit: 'ms', better: 'lower', target: null, cpu: true, chart: false }],
    pauseMs: 500,
    ceiling: true, // also measured against lib/upload-sink.mjs, see run.mjs
    async auth(client) {
      for (let i = 0; i < SMALL_REPOS; i++) await client.authHeaders(`small/app-${i}`, { validForS: 120, push: true });
    },
    async prepareRound(round) {
      return Array.from({ length: sz.smallImages }, (_, i) => {
        const layers = [0, 1, 2].map(() => smallBlob(randomBytes(1024 + Math.floor(Math.random() * 7168))));
        const cfg = smallBlob(imageConfig(`small-${round}-${i}`));
        return { repo: `small/app-${i % SMALL_REPOS}`, tag: `r${round}-${i}`, cfg, layers, manifest: imageManifest(cfg, layers) };
      });
    },
    async run(reg, client, images) {
      const limit = deadline(20 * 60_000, 'small images');
      // The lean client (lean-http.mjs): through node:http the load generator took a quarter of
      // the machine. Each repository's headers (a cached token, or none) are looked up first.
      const headers = new Map();
      for (const img of images) if (!headers.has(img.repo)) headers.set(img.repo, await client.authHeaders(img.repo, { validForS: 120, push: true }));
      const pusher = createLeanPusher(reg.url, (repo) => headers.get(repo), { connections: sz.imageConcurrency });
      try {
        const t = performance.now();
        await pool(images.length, sz.imageConcurrency, async (i) => {
          const img = images[i];
          for (const b of [...img.layers, img.cfg]) await pusher.ensureBlob(img.repo, b);
          await pusher.putManifest(img.repo, img.tag, img.manifest, MT.manifest);
        }, limit);
        const s = (performance.now() - t) / 1000;
        return { ips: images.length / s, images: images.length };
      } finally {
        pusher.close();
      }
    },
  });
  return list;
}
