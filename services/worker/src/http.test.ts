import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { expect, test } from 'vitest';
import { createRegistry } from '@toolplane/metrics';
import { createOpsServer } from './http.js';

test('/healthz answers 503 for a while after the event loop was blocked, then 200 again', async () => {
  const server = createOpsServer(createRegistry(), () => true, undefined, { maxLagMs: 200, windowMs: 1_000, intervalMs: 20 });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
  try {
    expect((await fetch(url)).status).toBe(200);
    const until = performance.now() + 400;
    while (performance.now() < until) {
      // the loop is blocked: nothing answers, the monitor's timer is late
    }
    const res = await fetch(url);
    expect(res.status).toBe(503);
    expect(await res.json()).toMatchObject({ status: 'unhealthy', error: { code: 'UNAVAILABLE' } });
    await sleep(1_300);
    expect((await fetch(url)).status).toBe(200);
  } finally {
    server.close();
    server.closeAllConnections();
  }
});
