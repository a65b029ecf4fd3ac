import express, { type Request, type Response, type NextFunction } from 'express';
import helmet from 'helmet';
import { RequestError } from '@toolplane/core';
import { ADMIN_QUEUES_PATH, adminRouter } from './admin.js';
import { serveOpenApi } from './api-routes.js';
import { authenticate, bearerOf, limitJsonDepth, principalOf, rateLimitPerKey, sameSecret } from './auth.js';
import { JSON_TYPES, requireJsonBody } from './browser-guards.js';
import type { PlannerDeps } from './deps.js';
import { errorHandler } from './errors.js';
import { callsRouter } from './routes-calls.js';
import { callEventsRouter } from './routes-call-events.js';
import { keysRouter } from './routes-keys.js';
import { mcpRouter } from './routes-mcp.js';
import { secretsRouter } from './routes-secrets.js';
import { runsRouter } from './routes-runs.js';
import { schedulesRouter } from './routes-schedules.js';
import { webhooksRouter } from './routes-webhooks.js';
import { toolsRouter } from './routes-tools.js';
import { upstreamsRouter } from './routes-upstreams.js';
import { captureRouteTemplates, routeTemplateOf } from './route-template.js';
import { CONSOLE_PATH, consoleRouter } from './console.js';
import { consoleDataRouter } from './routes-console.js';
import { traceRequests } from './tracing.js';

export type { PlannerDeps, PlannerEvents } from './deps.js';

/** The HTTP API as an express app: pure wiring, no `process`, no listening. */
export function createPlannerApp(deps: PlannerDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');
  captureRouteTemplates(app);
  if (deps.tracing) app.use(traceRequests());
  // The API serves JSON only (Bull Board and the console set their own policies below their paths).
  const headers = helmet();
  app.use((req, res, next) => (req.path.startsWith(ADMIN_QUEUES_PATH) || req.path.startsWith(CONSOLE_PATH) ? next() : headers(req, res, next)));

  app.use((req, res, next) => {
    const start = performance.now();
    res.on('finish', () => {
      const route = routeTemplateOf(res) ?? 'unmatched';
      deps.httpMetrics.requests.inc({ method: req.method, route, status: String(res.statusCode) });
      const durationMs = performance.now() - start;
      deps.httpMetrics.duration.observe({ method: req.method, route }, durationMs / 1000);
      // The route template, never the URL: queries carry `?key=` sign-ins.
      deps.logger.debug({ method: req.method, route, status: res.statusCode, durationMs: Math.round(durationMs) }, 'request finished');
    });
    next();
  });
  // JSON only: a cross-site page can send text/plain or a form without a CORS preflight, not JSON.
  app.use(requireJsonBody());
  app.use(express.json({ limit: deps.maxBodyBytes, type: JSON_TYPES, strict: true }));
  app.use(limitJsonDepth(deps.maxJsonDepth));

  // Liveness: the event loop answers, and has not lagged badly of late (see createLagMonitor).
  app.get('/healthz', (_req, res) => {
    const live = deps.liveness?.check() ?? { healthy: true, lagMs: 0 };
    if (live.healthy) return void res.json({ status: 'ok' });
    res.status(503).json({ status: 'unhealthy', error: { code: 'UNAVAILABLE', message: `event loop lagged ${live.lagMs} ms` } });
  });
  app.get('/readyz', async (_req, res) => {
    try {
      await deps.redis.ping();
      res.json({ ready: true });
    } catch {
      res.status(503).json({ ready: false, error: { code: 'UNAVAILABLE', message: 'redis is unreachable' } });
    }
  });
  app.get('/metrics', async (req, res, next) => {
    // With auth on, Prometheus reads metrics with the metrics token (or the admin key, or an admin API key).
    const token = bearerOf(req);
    if (!deps.authOff && !(token && deps.metricsToken && sameSecret(token, deps.metricsToken))) {
      await new Promise<void>((resolve, reject) => authenticate(deps)(req, res, (err?: unknown) => (err ? reject(err) : resolve())));
      if (!principalOf(res).scopes.includes('admin')) return next(new RequestError('FORBIDDEN', 'metrics need the admin scope or the metrics token'));
    }
    res.type(deps.promRegistry.contentType).send(await deps.promRegistry.metrics());
  });

  app.use(ADMIN_QUEUES_PATH, adminRouter(deps));
  // Before authentication: the document describes the public contract, no tenant's data (see api-routes.ts).
  app.get('/v1/openapi.json', serveOpenApi());
  app.use('/v1', authenticate(deps), rateLimitPerKey(deps, deps.apiRateLimitPerS));
  // Calls first: every request walks the routers in order, and submitting a call is the hot path
  // (the routers' paths do not overlap, so the order decides nothing else).
  app.use('/v1', callsRouter(deps));
  app.use('/v1', keysRouter(deps));
  app.use('/v1', toolsRouter(deps));
  app.use('/v1', callEventsRouter(deps));
  app.use('/v1', secretsRouter(deps));
  app.use('/v1', runsRouter(deps));
  app.use('/v1', upstreamsRouter(deps));
  app.use('/v1', webhooksRouter(deps));
  app.use('/v1', schedulesRouter(deps));
  app.use('/v1', consoleDataRouter(deps));
  // The console reads the same routers with its session cookie (console.ts).
  app.use(CONSOLE_PATH, consoleRouter(deps, [toolsRouter(deps), callsRouter(deps), runsRouter(deps), consoleDataRouter(deps)]));
  app.use('/mcp', authenticate(deps), rateLimitPerKey(deps, deps.apiRateLimitPerS));
  app.use(mcpRouter(deps));
  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(new RequestError('NOT_FOUND', `no route for ${req.method} ${req.path}`));
  });
  app.use(errorHandler(deps.logger));
  return app;
}
