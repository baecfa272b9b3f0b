#!/usr/bin/env node
// Re-renders the markdown table and SVG chart from a results JSON (e.g. after changing the
// report format): node bench/report.mjs bench/results/<timestamp>.json
import { readFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeReports, variantSuffix } from './lib/report.mjs';

const file = process.argv[2];
if (!file) { console.error('usage: node bench/report.mjs bench/results/<timestamp>.json'); process.exit(2); }
const results = JSON.parse(readFileSync(file, 'utf8'));
const benchDir = fileURLToPath(new URL('.', import.meta.url));
const partial = basename(file).includes('-partial');
const suffix = variantSuffix(results.meta, partial);
const jsonRel = join('bench/results', basename(file));
const { md } = writeReports(results, { resultsDir: resolve(dirname(file)), suffix, jsonRel, readme: join(benchDir, 'README.md') });
console.log(md);
