import './young-generation.js';
import { Command, Option } from 'commander';
import { pino } from 'pino';
import { ConfigError, loadConfig } from '../config/load.js';
import { settings } from '../config/schema.js';
import { Workers, exchangeMetrics, exitWithPrimary, isWorker, prepareEmbeddedMetadata, receiveListeningSocket, reportListening } from '../app/cluster.js';

const program = new Command('stowage').description('Stowage: a self-hosted OCI container registry').showHelpAfterError();

const serve = program
  .command('serve')
  .description('start the registry (settings: flags over STOWAGE_* environment variables over the config file)')
  .option('-c, --config <file>', 'YAML config file (or STOWAGE_CONFIG)');
for (const setting of settings) {
  serve.addOption(new Option(setting.flag, `${setting.help} [env ${setting.env}; file key ${setting.key}]`));
}
serve.action(async (options: Record<string, string | undefined>) => {
  const flags: Record<string, string | undefined> = {};
  for (const setting of settings) flags[setting.key] = options[flagProperty(setting.flag)];
  let config;
  try {
    config = loadConfig({ file: options.config, flags });
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`stowage: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
  const logger = pino({ level: config.log.level, base: { service: 'stowage' } });
  // SIGHUP reloads the TLS files. Handled from the start: by default it would end the process,
  // and one that arrives while the server starts is applied once it has started.
  let reload: (() => void) | undefined;
  let reloadPending = false;
  process.on('SIGHUP', () => (reload ? reload() : (reloadPending = true)));
  // The first process prepares the database, starts the other workers (src/app/cluster.ts) and
  // serves too; workers build their app and then accept on its listening socket.
  exitWithPrimary();
  let workers: Workers | undefined;
  if (!isWorker()) {
    await prepareEmbeddedMetadata(config, logger);
    if (config.workers > 1) {
      workers = new Workers(config.workers, logger);
      workers.start();
    }
  }
  const { createApp } = await import('../app/app.js');
  const app = await createApp(config, logger);
  // /metrics answers for the node's processes together, whichever of them takes the scrape.
  const ownMetrics = () => app.metrics.own();
  if (isWorker()) {
    app.metrics.nodeWide(exchangeMetrics(ownMetrics));
    await app.listen(await receiveListeningSocket());
    reportListening();
  } else {
    const node = workers;
    if (node) {
      node.shareMetrics(ownMetrics);
      app.metrics.nodeWide(() => node.gatherMetrics());
    }
    const address = await app.listen();
    workers?.share(app.http.server);
    void (workers?.allListening ?? Promise.resolve()).then(() => logger.info({ address, workers: config.workers, dataDir: config.dataDir }, `stowage listening on ${address}`));
  }

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    try {
      await Promise.all([workers?.stop(), app.close()]);
      process.exit(0);
    } catch (error) {
      logger.error({ err: error }, 'shutdown failed');
      process.exit(1);
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
  reload = () => {
    workers?.reload();
    app.reloadTls().then(
      (reloaded) => logger.info({ reloaded }, reloaded ? 'TLS certificate and key reloaded' : 'SIGHUP: not serving HTTPS, nothing to reload'),
      (error: unknown) => logger.error({ err: error }, 'reloading the TLS certificate and key failed; keeping the current ones'),
    );
  };
  if (reloadPending) reload();
});

/** commander's property name for a flag such as `--data-dir <dir>` (dataDir). */
function flagProperty(flag: string): string {
  return flag
    .split(' ')[0]!
    .replace(/^--/, '')
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

// `stowage serve` (each of its processes) loads none of the other commands: their modules pull in
// the control plane's clients, the S3 SDK and more (peak memory is one of the benchmark's rows).
if (process.argv[2] !== 'serve') {
  const [admin, lifecycle, housekeeping, webhook, gc, migrate] = await Promise.all([
    import('./admin.js'),
    import('./lifecycle.js'),
    import('./housekeeping.js'),
    import('./webhook.js'),
    import('./gc.js'),
    import('./migrate.js'),
  ]);
  admin.addAdminCommands(program);
  lifecycle.addLifecycleCommands(program);
  housekeeping.addHousekeepingCommands(program);
  webhook.addWebhookCommands(program);
  gc.addGcCommand(program);
  migrate.addMigrateCommand(program);
}

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`stowage: ${(error as Error).stack ?? String(error)}\n`);
  process.exit(1);
});
