// Sync calls over HTTP with 64 connections (issue 14's goal: Toolplane ≥ 2 × a hand-built
// express + BullMQ + isolated-vm stack on the same Redis): each side gets `concurrency` clients
// that POST a call and wait for its result, one after another, until `calls` are done.
import { join } from 'node:path';
import { freePort } from '@toolplane/queue/testing';
import { ROOT, spawnNode, waitHealthy } from './processes.mjs';
import { BENCH_TOOL } from './throughput.mjs';

/** The hand-built server and its worker (bench/handbuilt/), on `redisUrl` under `prefix`. */
export async function startHandBuilt({ redisUrl, prefix, concurrency }) {
  const env = { REDIS_URL: redisUrl, BENCH_PREFIX: prefix, BENCH_QUEUE: 'handbuilt' };
  const port = await freePort();
  const worker = spawnNode(join(ROOT, 'bench', 'handbuilt', 'worker.mjs'), { ...env, WORKER_CONCURRENCY: String(concurrency) });
  const server = spawnNode(join(ROOT, 'bench', 'handbuilt', 'server.mjs'), { ...env, PORT: String(port) });
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(server, url, 'hand-built server');
  return { url, pids: [server.pid, worker.pid], stop: async () => Promise.all([server.stop(), worker.stop()]) };
}

/** Calls/s of `calls` sync calls through `url` (Toolplane's POST /v1/calls or the hand-built one's). */
export async function measureSyncHttp(url, { calls, concurrency = 64 }) {
  let next = 0;
  let failed;
  const t0 = performance.now();
  const client = async () => {
    while (next < calls && !failed) {
      const i = next++;
      const res = await fetch(`${url}/v1/calls`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ tool: BENCH_TOOL, arguments: { a: 1, b: i }, wait: true }),
      });
      const body = await res.json();
      if (body.result !== 1 + i) failed = new Error(`${url}: call ${i} answered ${res.status} ${JSON.stringify(body).slice(0, 300)}`);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, client));
  if (failed) throw failed;
  return calls / ((performance.now() - t0) / 1000);
}
