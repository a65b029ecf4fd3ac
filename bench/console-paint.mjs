// The console's first paint with 10,000 calls in the audit trail (issue 17: under 1 s on `make up`'s
// stack): a planner and a worker on their own Redis, 10,000 finished calls over 5 tools, then each
// page opened cold in headless Chromium (playwright-core, the Chromium the bootstrap installs) and
// timed by the browser's own first-contentful-paint, plus the time until the page shows its data.
import { randomBytes } from 'node:crypto';
import { chromium } from 'playwright-core';
import { createCalls, ToolRegistry, closeRedis, createKeys, createRedisConnection } from '@toolplane/queue';
import { startRedisServer } from '@toolplane/queue/testing';
import { startPlanner, startToolplaneWorker, waitForConsumers, sleep } from './lib/processes.mjs';
import { BENCH_TOOL_SPEC } from './lib/throughput.mjs';
import { percentile, round } from './lib/stats.mjs';

const PAGES = [
  { name: 'tools', path: '/console', ready: 'table tbody tr' },
  { name: 'calls', path: '/console/calls', ready: 'table tbody tr' },
  { name: 'tool', path: '/console/tools/paint-0', ready: 'table tbody tr' },
];

export async function consolePaintBench({ calls = 10_000, repeats = 3, log = console.log } = {}) {
  const server = await startRedisServer({});
  const redis = createRedisConnection(server.url, 'worker');
  const keys = createKeys(`paint${randomBytes(3).toString('hex')}`);
  const stops = [() => server.stop(), () => closeRedis(redis)];
  try {
    const registry = new ToolRegistry(redis, keys);
    const parts = createCalls(redis, keys, { maxCallsInFlight: 0 });
    const tools = [];
    for (let t = 0; t < 5; t++) {
      const { tool } = await registry.put(`paint-${t}`, BENCH_TOOL_SPEC);
      await parts.lifecycle.applyToolSettings(tool);
      tools.push(tool);
    }
    const worker = startToolplaneWorker({ redisUrl: server.url, prefix: keys.bullPrefix, concurrency: 100 });
    stops.unshift(() => worker.stop());
    await waitForConsumers(parts.queues.queue('paint-0'), 1, [worker]);
    for (let i = 0; i < calls; i += 500) {
      const tool = tools[(i / 500) % tools.length];
      await parts.producer.enqueueBulk(tool, Array.from({ length: Math.min(500, calls - i) }, (_, j) => ({ a: 1, b: i + j })), { tenant: 'default' });
    }
    for (;;) {
      const done = (await Promise.all(tools.map((t) => parts.queues.queue(t.name).getCompletedCount()))).reduce((a, b) => a + b, 0);
      if (done >= calls) break;
      await sleep(100);
    }
    log(`  ${calls} calls in the trail`);
    const planner = await startPlanner({ redisUrl: server.url, prefix: keys.bullPrefix });
    stops.unshift(() => planner.stop());
    const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
    stops.unshift(() => browser.close());
    const results = {};
    for (const page of PAGES) {
      const fcp = [];
      const ready = [];
      for (let r = 0; r < repeats + 1; r++) {
        // A new context each time: nothing cached, as a first visit.
        const context = await browser.newContext({ viewport: { width: 1366, height: 800 } });
        const tab = await context.newPage();
        const t0 = Date.now();
        await tab.goto(`${planner.url}${page.path}`);
        await tab.waitForSelector(page.ready, { timeout: 30_000 });
        const shown = Date.now() - t0;
        const paint = await tab.evaluate(() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1);
        await context.close();
        if (r === 0) continue; // the planner's first answer of each page warms its code paths
        fcp.push(paint);
        ready.push(shown);
      }
      results[page.name] = { first_contentful_paint_ms: round(percentile(fcp, 50)), data_shown_ms: round(percentile(ready, 50)) };
      log(`  ${page.name.padEnd(6)} first paint ${results[page.name].first_contentful_paint_ms} ms, data shown ${results[page.name].data_shown_ms} ms`);
    }
    return { calls, pages: results, goal_ms: 1_000, met: Object.values(results).every((p) => p.first_contentful_paint_ms < 1_000 && p.data_shown_ms < 1_000) };
  } finally {
    for (const stop of stops) await stop().catch(() => {});
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.log(JSON.stringify(await consolePaintBench(), null, 2));
}
