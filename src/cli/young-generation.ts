import v8 from 'node:v8';

// Imported first by main.ts, before the modules it loads. The processes of `stowage serve` keep
// V8's young generation at its initial size (1 MiB semi-spaces) instead of letting it grow to
// Node 20's 16 MiB: a server's garbage is short-lived (a request's objects), so the small
// young generation costs a few more, cheap scavenges — the manifest GET rate was the same
// (14.0–15.0k/s against 14.7k/s with 2 MiB, one process, alternated) — and keeps each process
// 5–25 MB smaller (peak memory is one of the benchmark's rows; bench/README.md, "Memory").
// The growth factor is the one setting V8 reads after start; an operator's own semi-space flag
// (node flags or NODE_OPTIONS) wins.
const ownSetting = [...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].some((flag) => flag.includes('semi-space'));

if (process.argv[2] === 'serve' && !ownSetting) v8.setFlagsFromString('--semi-space-growth-factor=1');
