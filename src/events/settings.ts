import type { ResolvedConfig } from '../config/load.js';
import { nodeName } from './context.js';
import type { DispatcherOptions } from './dispatcher.js';
import type { EventRecorderOptions } from './recorder.js';

/** The event recorder's settings (`node`, `events.*`). */
export function recorderOptions(config: ResolvedConfig): EventRecorderOptions {
  return { node: nodeName(config.node.name), pulls: config.events.pulls, pullSampleRate: config.events.pullSampleRate, pullWindowMs: config.events.pullWindow };
}

/** The dispatcher's settings (`webhooks.*`, `events.retention`). */
export function dispatcherOptions(config: ResolvedConfig): DispatcherOptions {
  const w = config.webhooks;
  return {
    node: nodeName(config.node.name),
    allowPrivateTargets: w.allowPrivateTargets,
    maxAttempts: w.maxAttempts,
    timeoutMs: w.timeout,
    concurrency: w.concurrency,
    pollIntervalMs: w.pollInterval,
    retryBaseMs: w.retryBase,
    retryMaxMs: w.retryMax,
    breakerThreshold: w.breakerThreshold,
    breakerCooldownMs: w.breakerCooldown,
    retentionMs: config.events.retention,
    // Embedded: the one process that runs background jobs is the only dispatcher there is.
    releaseClaimsAtStart: config.metadata.driver === 'sqlite',
    baseUrl: config.auth.realm ? new URL(config.auth.realm).origin : '',
  };
}
