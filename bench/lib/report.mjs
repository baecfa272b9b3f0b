// Turns the raw per-round measurements into rows (medians, per-round ratios A/B, spread), and
// writes the JSON, the markdown table and a hand-written SVG chart of the ratios.
import { writeFileSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { median, finite, fmtNum } from './util.mjs';

const OP = { '>=': '≥', '<=': '≤' };

export function buildRows(results) {
  const rows = [];
  for (const w of results.workloads) {
    const notes = w.metrics.filter((m) => m.note);
    for (const m of w.metrics.filter((m) => !m.note)) {
      const a = w.rounds.map((r) => r.A?.[m.key]);
      const b = w.rounds.map((r) => r.B?.[m.key]);
      const ratios = w.rounds.map((r, i) => (Number.isFinite(a[i]) && Number.isFinite(b[i]) && b[i] !== 0 ? a[i] / b[i] : null));
      const errors = [...new Set(w.rounds.flatMap((r) => [r.A?.error && `A: ${r.A.error}`, r.B?.error && `B: ${r.B.error}`]).filter(Boolean))];
      const row = {
        id: `${w.id}:${m.key}`, workload: w.id, label: m.label, unit: m.unit, better: m.better, target: m.target ?? null, chart: m.chart !== false,
        a, b, ratios,
        medianA: median(a), medianB: median(b),
        ratioMedian: median(ratios), ratioMin: finite(ratios).length ? Math.min(...finite(ratios)) : null,
        ratioMax: finite(ratios).length ? Math.max(...finite(ratios)) : null,
        notes: m === w.metrics.find((x) => !x.note)
          ? notes.map((n) => `${n.label} ${fmtNum(median(w.rounds.map((r) => r.A?.[n.key])))} / ${fmtNum(median(w.rounds.map((r) => r.B?.[n.key])))}`).join(', ')
          : '',
        errors,
      };
      // Push workloads: the ceiling (lib/upload-sink.mjs) measured in the same rounds.
      if (m === w.metrics[0] && w.rounds.some((r) => Number.isFinite(r.C?.[m.key]))) {
        const c = w.rounds.map((r) => r.C?.[m.key]);
        const fractions = w.rounds.map((r, i) => (Number.isFinite(a[i]) && Number.isFinite(c[i]) && c[i] > 0 ? a[i] / c[i] : null));
        Object.assign(row, { ceiling: c, ceilingMedian: median(c), ceilingFractionMedian: median(fractions) });
        const pct = (v) => `${Math.round(v * 100)}%`;
        const f = finite(fractions);
        row.notes = [row.notes, `ceiling (simplest durable push server, same rounds) ${fmtNum(row.ceilingMedian)}${m.unit ? ` ${m.unit}` : ''}; ${results.meta.labels?.A ?? 'A'} at ${pct(row.ceilingFractionMedian)} of it (${pct(Math.min(...f))}–${pct(Math.max(...f))}), ${results.meta.labels?.B ?? 'B'} at ${pct(median(w.rounds.map((r, i) => (Number.isFinite(b[i]) && c[i] > 0 ? b[i] / c[i] : null))))}`].filter(Boolean).join('; ');
      }
      row.pass = passes(row);
      rows.push(row);
    }
  }
  const res = results.resources;
  if (res?.A && res?.B) {
    const one = (id, label, unit, better, target, a, b) => {
      const ratio = a != null && b ? a / b : null;
      const row = { id, workload: 'resources', chart: true, label, unit, better, target, a: [a], b: [b], ratios: [ratio], medianA: a, medianB: b, ratioMedian: ratio, ratioMin: ratio, ratioMax: ratio, notes: '', errors: [] };
      row.pass = passes(row);
      rows.push(row);
    };
    // The target applies to the tree's own memory, each page counted once (procstat.mjs): the sum
    // of RSS counts the pages its processes share (the node binary) once per process, and summed
    // PSS shares them out with whatever other processes map them, the benchmark's runner included.
    if (res.A.peakOwnBytes != null) one('resources:peakOwn', 'peak resident memory, process tree on its own (whole run)', 'MB', 'lower', { op: '<=', value: 1 }, res.A.peakOwnBytes / 1e6, res.B.peakOwnBytes / 1e6);
    one('resources:peakPss', 'peak PSS summed over the process tree (whole run)', 'MB', 'lower', res.A.peakOwnBytes != null ? null : { op: '<=', value: 1 }, res.A.peakPssBytes / 1e6, res.B.peakPssBytes / 1e6);
    one('resources:peakRss', 'peak RSS summed over the process tree (whole run)', 'MB', 'lower', null, res.A.peakRssBytes / 1e6, res.B.peakRssBytes / 1e6);
    one('resources:cpu', 'CPU seconds, process tree (whole run)', 's', 'lower', null, res.A.cpuSeconds, res.B.cpuSeconds);
  }
  return rows;
}

function passes(row) {
  if (!row.target || row.ratioMedian == null) return null;
  return row.target.op === '>=' ? row.ratioMedian >= row.target.value : row.ratioMedian <= row.target.value;
}

const x = (r) => (r == null ? '—' : `${fmtNum(r)}×`);

export function markdown(results, rows, svgName) {
  const { meta, ceilings } = results;
  const A = meta.labels.A;
  const B = meta.labels.B;
  const L = [];
  L.push(`# Benchmark: ${A} vs ${B}`);
  L.push('');
  L.push(`${meta.timestamp} · ${meta.quick ? 'QUICK (small sizes) · ' : ''}load average ${meta.loadavgStart?.[0]} → ${meta.loadavgEnd?.[0]} · ${meta.rounds} rounds (A B alternating) · mode \`${meta.mode}\` · ${meta.cpu}, ${meta.cores} cores, ${meta.memGiB} GiB · Node ${meta.node} · ${meta.distributionVersion}${meta.stowageRev ? ` · Stowage ${meta.stowageRev}` : ''}`);
  L.push('');
  L.push(`Ratio = ${A} / ${B}, computed per round; "median" is the median of the per-round ratios, "spread" their min–max. `
    + 'For rates higher is better (↑), for times, latency and memory lower is better (↓).');
  L.push('');
  if (svgName) { L.push(`![ratios](${svgName})`); L.push(''); }
  L.push(`| workload | ${A} median | ${B} median | ratio median | ratio spread (min–max) | target | met | notes (A / B) |`);
  L.push('|---|---:|---:|---:|---|---:|:---:|---|');
  for (const r of rows) {
    const u = r.unit ? ` ${r.unit}` : '';
    const arrow = r.better === 'higher' ? '↑' : '↓';
    const spread = r.ratioMin == null ? '—' : r.ratios.filter((v) => v != null).length > 1 ? `${fmtNum(r.ratioMin)}–${fmtNum(r.ratioMax)}` : 'single value';
    const target = r.target ? `${OP[r.target.op]} ${r.target.value}×` : '';
    const met = r.pass == null ? '' : r.pass ? '✅' : '❌';
    const notes = [r.notes, ...r.errors.map((e) => `⚠ ${e.replaceAll('|', '\\|').slice(0, 200)}`)].filter(Boolean).join('; ');
    L.push(`| ${r.label} ${arrow} | ${fmtNum(r.medianA)}${u} | ${fmtNum(r.medianB)}${u} | ${x(r.ratioMedian)} | ${spread} | ${target} | ${met} | ${notes} |`);
  }
  L.push('');
  L.push('Machine ceilings (same run):');
  L.push('');
  L.push('| ceiling | value |');
  L.push('|---|---:|');
  L.push(`| SHA-256, one core (node crypto) | ${fmtNum(ceilings.sha256MBps)} MB/s |`);
  L.push(`| loopback HTTP, trivial Node server, 1 KB GET, wrk c=64 | ${fmtNum(ceilings.loopbackGetRps)} req/s |`);
  L.push(`| loopback HTTP, trivial Node server, HEAD, ab -k c=64 | ${fmtNum(ceilings.loopbackHeadRps)} req/s |`);
  L.push(`| loopback HTTP bulk GET, Node server → curl | ${fmtNum(ceilings.loopbackBulkMBps)} MB/s |`);
  L.push(`| disk write, 8 MiB writes + fsync | ${fmtNum(ceilings.diskWriteMBps)} MB/s |`);
  L.push('');
  const res = results.resources;
  if (res?.A) {
    L.push(`Resources: ${A} peak memory on its own ${fmtNum((res.A.peakOwnBytes ?? 0) / 1e6)} MB, peak PSS ${fmtNum((res.A.peakPssBytes ?? 0) / 1e6)} MB, peak RSS ${fmtNum(res.A.peakRssBytes / 1e6)} MB (sum of per-process VmHWM ${fmtNum(res.A.hwmSumBytes / 1e6)} MB, ${res.A.processes} processes), CPU ${fmtNum(res.A.cpuSeconds)} s; `
      + `${B} peak memory on its own ${fmtNum((res.B.peakOwnBytes ?? 0) / 1e6)} MB, peak PSS ${fmtNum((res.B.peakPssBytes ?? 0) / 1e6)} MB, peak RSS ${fmtNum(res.B.peakRssBytes / 1e6)} MB (VmHWM ${fmtNum(res.B.hwmSumBytes / 1e6)} MB, ${res.B.processes} processes), CPU ${fmtNum(res.B.cpuSeconds)} s. `
      + `Seeding took ${fmtNum(results.seedSeconds?.A)} s / ${fmtNum(results.seedSeconds?.B)} s.`);
    L.push('');
  }
  const peaks = results.workloads.filter((w) => w.peakRssBytes?.A != null);
  if (peaks.length) {
    L.push(`Peak RSS during each workload (MB, ${A} / ${B}): ` + peaks.map((w) => `${w.id} ${fmtNum(w.peakRssBytes.A / 1e6)} / ${fmtNum(w.peakRssBytes.B / 1e6)}`).join(' · '));
    const pss = peaks.filter((w) => w.peakPssBytes?.A > 0);
    const own = peaks.filter((w) => w.peakOwnBytes?.A > 0);
    if (own.length) L.push('', `Peak memory on its own during each workload (MB, ${A} / ${B}): ` + own.map((w) => `${w.id} ${fmtNum(w.peakOwnBytes.A / 1e6)} / ${fmtNum(w.peakOwnBytes.B / 1e6)}`).join(' · '));
    if (pss.length) L.push('', `Peak PSS during each workload (MB, ${A} / ${B}): ` + pss.map((w) => `${w.id} ${fmtNum(w.peakPssBytes.A / 1e6)} / ${fmtNum(w.peakPssBytes.B / 1e6)}`).join(' · '));
    L.push('');
  }
  if (results.problems?.length) {
    L.push('Problems seen:');
    L.push('');
    for (const p of results.problems) L.push(`- ${p.replaceAll('\n', ' ').slice(0, 400)}`);
    L.push('');
  }
  return L.join('\n');
}

const esc = (s) => String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** Horizontal bars on a log scale, growing from 1.0; whiskers = spread; orange tick = target. */
export function svg(results, rows) {
  const plotted = rows.filter((r) => r.chart && (r.ratioMedian != null || r.errors.length));
  const A = results.meta.labels.A;
  const B = results.meta.labels.B;
  const vals = plotted.flatMap((r) => [r.ratioMin, r.ratioMax, r.target?.value]).filter((v) => v > 0);
  const lo = Math.min(0.01, ...vals.map((v) => v / 1.5));
  const hi = Math.max(100, ...vals.map((v) => v * 1.5));
  const W = 980, labelW = 360, right = 70, top = 84, rowH = 26;
  const H = top + plotted.length * rowH + 50;
  const px = (v) => labelW + ((Math.log10(v) - Math.log10(lo)) / (Math.log10(hi) - Math.log10(lo))) * (W - labelW - right);
  const o = [];
  o.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="Helvetica, Arial, sans-serif" font-size="12">`);
  o.push(`<rect width="${W}" height="${H}" fill="#ffffff"/>`);
  o.push(`<text x="12" y="22" font-size="15" font-weight="bold">${esc(A)} / ${esc(B)} — ratio per workload (log scale)</text>`);
  o.push(`<text x="12" y="42" fill="#444">${esc(results.meta.timestamp)}${results.meta.quick ? ' · QUICK (small sizes)' : ''} · ${results.meta.rounds} rounds, A B alternating · ${esc(results.meta.cpu)}, ${results.meta.cores} cores</text>`);
  o.push(`<text x="12" y="60" fill="#444">bar = median of per-round ratios (from 1×) · whisker = min–max · orange = target · green met, red missed, grey no target · ↑/↓ higher/lower is better</text>`);
  for (let e = Math.ceil(Math.log10(lo)); e <= Math.floor(Math.log10(hi)); e++) {
    const v = 10 ** e;
    const xx = px(v);
    o.push(`<line x1="${xx}" y1="${top - 8}" x2="${xx}" y2="${H - 40}" stroke="${e === 0 ? '#000' : '#ddd'}" stroke-width="${e === 0 ? 1.5 : 1}"/>`);
    o.push(`<text x="${xx}" y="${H - 24}" text-anchor="middle" fill="#333">${v >= 1 ? v : v.toString()}×</text>`);
  }
  plotted.forEach((r, i) => {
    const y = top + i * rowH;
    const cy = y + rowH / 2;
    if (i % 2 === 0) o.push(`<rect x="0" y="${y}" width="${W}" height="${rowH}" fill="#f6f6f6"/>`);
    const arrow = r.better === 'higher' ? '↑' : '↓';
    o.push(`<text x="${labelW - 8}" y="${cy + 4}" text-anchor="end">${esc(r.label)} ${arrow}</text>`);
    if (r.ratioMedian == null) {
      o.push(`<text x="${px(1) + 6}" y="${cy + 4}" fill="#b00">error: ${esc((r.errors[0] ?? '').slice(0, 70))}</text>`);
      return;
    }
    const color = r.pass == null ? '#7b8fa6' : r.pass ? '#2e9d48' : '#d0453a';
    const x1 = px(1);
    const x2 = px(Math.min(Math.max(r.ratioMedian, lo), hi));
    o.push(`<rect x="${Math.min(x1, x2)}" y="${y + 6}" width="${Math.max(1, Math.abs(x2 - x1))}" height="${rowH - 12}" fill="${color}"/>`);
    if (r.ratioMin != null && r.ratioMax != null && r.ratioMax > r.ratioMin) {
      o.push(`<line x1="${px(r.ratioMin)}" y1="${cy}" x2="${px(r.ratioMax)}" y2="${cy}" stroke="#222" stroke-width="1.2"/>`);
      for (const v of [r.ratioMin, r.ratioMax]) o.push(`<line x1="${px(v)}" y1="${cy - 5}" x2="${px(v)}" y2="${cy + 5}" stroke="#222" stroke-width="1.2"/>`);
    }
    if (r.target) {
      const tx = px(r.target.value);
      o.push(`<line x1="${tx}" y1="${y + 2}" x2="${tx}" y2="${y + rowH - 2}" stroke="#f08c00" stroke-width="3"/>`);
    }
    const tgt = r.target && r.target.value > 1 ? px(r.target.value) : 0;
    const textX = Math.max(x1, x2, r.ratioMax ? px(r.ratioMax) : 0, tgt) + 6;
    o.push(`<text x="${Math.min(textX, W - right + 4)}" y="${cy + 4}" fill="#111">${fmtNum(r.ratioMedian)}×${r.target ? ` (${OP[r.target.op]}${r.target.value})` : ''}</text>`);
  });
  o.push('</svg>');
  return o.join('\n');
}

/** Replaces the block between the results markers in bench/README.md (full runs only). */
export function updateReadme(readme, md) {
  if (!existsSync(readme)) return false;
  const s = readFileSync(readme, 'utf8');
  const start = '<!-- bench:results:start -->';
  const end = '<!-- bench:results:end -->';
  const i = s.indexOf(start);
  const j = s.indexOf(end);
  if (i < 0 || j < i) return false;
  const body = md.replace(/^# .*\n/, '').replaceAll('](latest', '](results/latest');
  writeFileSync(readme, `${s.slice(0, i + start.length)}\n${body}\n${s.slice(j)}`);
  return true;
}

/** File-name suffix of a run: '' for a full default run against Stowage. */
export function variantSuffix(meta, partial) {
  const v = [meta.quick && 'quick', meta.kinds?.A !== 'stowage' && 'dvd', meta.mode !== 'default' && meta.mode, partial && 'partial'].filter(Boolean).join('-');
  return v ? `-${v}` : '';
}

/** Writes latest<suffix>.md/.svg for `results` (rows are rebuilt); updates the README block for full runs. */
export function writeReports(results, { resultsDir, suffix, jsonRel, readme }) {
  results.rows = buildRows(results);
  const svgName = `latest${suffix}.svg`;
  writeFileSync(join(resultsDir, svgName), svg(results, results.rows));
  const md = markdown(results, results.rows, svgName);
  writeFileSync(join(resultsDir, `latest${suffix}.md`), md + `\nRaw data: \`${jsonRel}\`\n`);
  const readmeUpdated = !suffix && readme ? updateReadme(readme, md + `\nRaw data: \`${jsonRel.replace(/^bench\//, '')}\`\n`) : false;
  return { md, svgName, readmeUpdated };
}
