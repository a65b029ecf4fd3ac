import { createLogger, loadServiceConfig } from '@toolplane/core';
import { startServiceTracing, traceLogFields } from '@toolplane/tracing';
import { WorkerConfig } from './config.js';
import { createWorkerApp } from './app.js';

async function main(): Promise<void> {
  const config = loadServiceConfig('worker', WorkerConfig, process.env);
  // Before anything makes a span; without an endpoint no SDK is loaded and spans are no-ops.
  const tracing = await startServiceTracing(config, 'toolplane-worker');
  const logger = createLogger({ name: 'worker', level: config.LOG_LEVEL, ...(tracing ? { mixin: traceLogFields } : {}) });
  const app = createWorkerApp(config, logger);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    app
      .stop()
      .then(() => tracing?.shutdown())
      .then(
        () => process.exit(0),
        (err: unknown) => {
          logger.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (err) => logger.error({ err }, 'unhandled rejection'));
  try {
    await app.start();
  } catch (err: unknown) {
    process.stderr.write(`toolplane worker: ${(err as Error).message}\n`);
    process.exit(2);
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`toolplane worker failed to start: ${String(err)}\n`);
  process.exit(1);
});
