// The hand-built stack of `make bench` (issue 14), worker side: what a team writes in an afternoon
// with BullMQ and isolated-vm — one isolate per process, a fresh context per job (so jobs do not see
// each other's state, as Toolplane's default), the tool's function compiled once per context.
// No breaker, rate limit, quota, audit, metrics or host process: the bar Toolplane must clear.
// Env: REDIS_URL, BENCH_PREFIX, BENCH_QUEUE, WORKER_CONCURRENCY.
import ivm from 'isolated-vm';
import { Worker } from 'bullmq';
import { createRedisConnection } from '@toolplane/queue';

const TOOL = '(function (args) { return args.a + args.b })';
let isolate;
let script;
/** The isolate, made again when V8 disposed it (contexts made faster than its GC frees them can fill its heap). */
function current() {
  if (!isolate || isolate.isDisposed) {
    isolate = new ivm.Isolate({ memoryLimit: 128 });
    script = isolate.compileScriptSync(TOOL);
  }
  return { isolate, script };
}

const worker = new Worker(
  process.env.BENCH_QUEUE,
  async (job) => {
    const { isolate, script } = current();
    const context = await isolate.createContext();
    try {
      const fn = await script.run(context, { reference: true, timeout: 1000 });
      try {
        return await fn.apply(undefined, [new ivm.ExternalCopy(job.data.arguments).copyInto()], { timeout: 1000, result: { copy: true } });
      } finally {
        fn.release();
      }
    } finally {
      context.release();
    }
  },
  {
    connection: createRedisConnection(process.env.REDIS_URL, 'worker'),
    prefix: process.env.BENCH_PREFIX,
    concurrency: Number(process.env.WORKER_CONCURRENCY ?? 100),
  },
);
worker.on('error', (err) => process.stderr.write(`hand-built worker error: ${err.message}\n`));
process.on('SIGTERM', () => {
  worker.close().then(() => process.exit(0), () => process.exit(1));
});
