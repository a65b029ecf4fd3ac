import type { RequestHandler } from 'express';
import { z } from 'zod';
import { openApiDocument, type ApiRoute } from './api-spec.js';
import { callsApi } from './routes-calls.js';
import { callEventsApi } from './routes-call-events.js';
import { consoleApi } from './routes-console.js';
import { keysApi } from './routes-keys.js';
import { mcpApi } from './routes-mcp.js';
import { runsApi } from './routes-runs.js';
import { schedulesApi } from './routes-schedules.js';
import { secretsApi } from './routes-secrets.js';
import { toolsApi } from './routes-tools.js';
import { upstreamsApi } from './routes-upstreams.js';
import { webhooksApi } from './routes-webhooks.js';

/** The version the API document states; bumped with the external contract (DESIGN.md), not each release. */
export const API_VERSION = '1.0.0';

/** The routes `createPlannerApp` serves outside the routers: health, metrics and this document. */
const serviceApi: ApiRoute[] = [
  {
    method: 'get',
    path: '/healthz',
    tag: 'service',
    auth: 'public',
    summary: 'Liveness: the event loop answers and has not lagged badly',
    responses: { 200: { description: 'alive', schema: z.object({ status: z.literal('ok') }) } },
    example: { response: { status: 'ok' } },
  },
  {
    method: 'get',
    path: '/readyz',
    tag: 'service',
    auth: 'public',
    summary: 'Readiness: Redis is reachable',
    responses: { 200: { description: 'ready', schema: z.object({ ready: z.literal(true) }) } },
    example: { response: { ready: true } },
  },
  {
    method: 'get',
    path: '/metrics',
    tag: 'service',
    auth: 'metrics',
    summary: 'Prometheus metrics of this planner',
    responses: { 200: { description: 'Prometheus text exposition format', contentType: 'text/plain' } },
    example: { response: '# HELP toolplane_calls_enqueued_total Tool calls accepted and enqueued, by tool.\n' },
  },
  {
    method: 'get',
    path: '/v1/openapi.json',
    tag: 'service',
    auth: 'public',
    summary: 'This API as OpenAPI 3.1',
    description:
      'Generated from the zod schemas the routes validate with. Served without a key: it describes the public contract only ' +
      '(no tenant, tool or call data), and clients and code generators need it before they hold a key.',
    responses: { 200: { description: 'the OpenAPI document', schema: z.looseObject({ openapi: z.string() }) } },
    example: { response: { openapi: '3.1.0' } },
  },
];

/**
 * Every route of the HTTP API, for the document. A router adds its routes' entries next to them
 * (`callsApi` in routes-calls.ts) and its list here; the coverage test fails for a route without one.
 */
export const API_ROUTES: readonly ApiRoute[] = [
  ...serviceApi,
  ...toolsApi,
  ...callsApi,
  ...runsApi,
  ...secretsApi,
  ...keysApi,
  ...upstreamsApi,
  ...mcpApi,
  ...callEventsApi,
  ...consoleApi,
  ...webhooksApi,
  ...schedulesApi,
];

/** `GET /v1/openapi.json`: the document, built once. */
export function serveOpenApi(routes: readonly ApiRoute[] = API_ROUTES): RequestHandler {
  let body: string | undefined;
  return (_req, res) => {
    body ??= JSON.stringify(openApiDocument(routes, { version: API_VERSION }));
    res.type('application/json').send(body);
  };
}
