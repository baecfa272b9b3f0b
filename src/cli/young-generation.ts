import cluster from 'node:cluster';
import v8 from 'node:v8';

// Imported first by main.ts, before the modules it loads. While `stowage serve` starts, the
// young generation stays at its initial size instead of growing as module loading allocates:
// a cluster primary, which serves nothing, then keeps about 10 MB less resident for its whole
// life (peak memory is one of the benchmark's rows; bench/README.md, "Memory"). A process that
// goes on to serve requests lets it grow again (allowYoungGenerationGrowth).
const V8_DEFAULT_GROWTH_FACTOR = 2;

if (process.argv[2] === 'serve' && cluster.isPrimary) v8.setFlagsFromString('--semi-space-growth-factor=1');

/** Back to V8's default growth, up to the process's maximum (workers start with a smaller one). */
export function allowYoungGenerationGrowth(): void {
  v8.setFlagsFromString(`--semi-space-growth-factor=${V8_DEFAULT_GROWTH_FACTOR}`);
}
