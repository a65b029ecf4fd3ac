import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { createLagMonitor, type LagMonitorOptions } from '@toolplane/core';
import type { Registry } from '@toolplane/metrics';

/**
 * `/healthz` (alive), `/readyz` (`ready()` says so) and `/metrics` on their own small server. With a
 * `metricsToken`, `/metrics` answers only `Authorization: Bearer <token>` (probes stay open).
 *
 * `/healthz` answers 503 while the event loop lagged more than a second within the last two
 * (`createLagMonitor`'s defaults), and nothing at all while it is blocked: either way the liveness
 * probe fails and the orchestrator replaces the worker. The monitor stops when the server closes.
 */
export function createOpsServer(registry: Registry, ready: () => boolean, metricsToken?: string, liveness?: LagMonitorOptions): Server {
  const lag = createLagMonitor(liveness);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') {
      const live = lag.check();
      const body = live.healthy ? { status: 'ok' } : { status: 'unhealthy', error: { code: 'UNAVAILABLE', message: `event loop lagged ${live.lagMs} ms` } };
      res.writeHead(live.healthy ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    } else if (path === '/readyz') {
      const ok = ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready: ok }));
    } else if (path === '/metrics' && metricsToken && !presents(req, metricsToken)) {
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":{"code":"UNAUTHORIZED","message":"metrics need the metrics token"}}');
    } else if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => res.writeHead(500).end(),
      );
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"NOT_FOUND","message":"no such path"}}');
    }
  });
  server.once('close', () => lag.stop());
  return server;
}

function presents(req: IncomingMessage, token: string): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (!m) return false;
  const digest = (v: string) => createHash('sha256').update(v).digest();
  return timingSafeEqual(digest(m[1]!), digest(token));
}
