import { ConfigError, createLogger } from '@toolplane/core';
import { loadConfig } from './config.js';
import { createWorkerApp } from './app.js';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (err: unknown) {
    if (err instanceof ConfigError) {
      process.stderr.write(`toolplane worker: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
  const logger = createLogger({ name: 'worker', level: config.LOG_LEVEL });
  const app = createWorkerApp(config, logger);
  let stopping = false;
  const shutdown = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, 'shutting down');
    app.stop().then(
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
