// The raw BullMQ side of `make bench`: a worker process with a no-op processor, so the comparison
// pays the same process boundary and Redis connection options as a Toolplane worker.
// Env: REDIS_URL, BENCH_PREFIX, BENCH_QUEUE, WORKER_CONCURRENCY.
import { Worker } from 'bullmq';
import { createRedisConnection } from '@toolplane/queue';

const worker = new Worker(process.env.BENCH_QUEUE, async () => null, {
  connection: createRedisConnection(process.env.REDIS_URL, 'worker'),
  prefix: process.env.BENCH_PREFIX,
  concurrency: Number(process.env.WORKER_CONCURRENCY ?? 100),
});
worker.on('error', (err) => process.stderr.write(`bullmq worker error: ${err.message}\n`));
process.on('SIGTERM', () => {
  worker.close().then(() => process.exit(0), () => process.exit(1));
});
