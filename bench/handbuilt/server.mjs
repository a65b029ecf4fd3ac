// The hand-built stack of `make bench` (issue 14), API side: express, `queue.add` and
// `job.waitUntilFinished` on one QueueEvents, answering `{status, result}` like a sync Toolplane call.
// Env: REDIS_URL, BENCH_PREFIX, BENCH_QUEUE, PORT.
import express from 'express';
import { Queue, QueueEvents } from 'bullmq';
import { createRedisConnection } from '@toolplane/queue';

const connection = createRedisConnection(process.env.REDIS_URL, 'worker');
const queue = new Queue(process.env.BENCH_QUEUE, { connection, prefix: process.env.BENCH_PREFIX });
const events = new QueueEvents(process.env.BENCH_QUEUE, { connection: createRedisConnection(process.env.REDIS_URL, 'worker'), prefix: process.env.BENCH_PREFIX });
await events.waitUntilReady();

const app = express();
app.use(express.json({ limit: '1mb' }));
app.get('/healthz', (_req, res) => res.json({ ok: true }));
app.post('/v1/calls', async (req, res) => {
  try {
    const job = await queue.add('call', { arguments: req.body.arguments }, { removeOnComplete: { age: 3600 }, removeOnFail: { age: 3600 } });
    const result = await job.waitUntilFinished(events, 30_000);
    res.json({ id: job.id, status: 'succeeded', result });
  } catch (err) {
    res.status(500).json({ status: 'failed', error: String(err) });
  }
});
const server = app.listen(Number(process.env.PORT), '127.0.0.1');
process.on('SIGTERM', () => {
  server.close();
  Promise.all([events.close(), queue.close()]).then(() => process.exit(0), () => process.exit(1));
});
