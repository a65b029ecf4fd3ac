import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import express, { Router, type NextFunction, type Request, type Response } from 'express';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { captureRouteTemplates, routeTemplateOf } from './route-template.js';

/** A real express app and server: each response says the template the capture saw when it finished. */
let base = '';
const seen: string[] = [];
let close: () => Promise<void>;

beforeAll(async () => {
  const app = express();
  const mounted = express();
  captureRouteTemplates(app);
  app.use((_req, res, next) => {
    res.on('finish', () => seen.push(routeTemplateOf(res) ?? 'unmatched'));
    next();
  });
  const v1 = Router();
  v1.get('/calls/:id', (req, res) => void res.json({ id: req.params.id }));
  v1.post('/calls/:id/cancel', () => {
    throw new Error('boom');
  });
  app.use('/v1', v1);
  mounted.get('/api/queues/:name', (_req, res) => void res.json({}));
  app.use('/admin', mounted);
  app.use((_req: Request, res: Response) => void res.status(404).json({}));
  app.use((_err: unknown, _req: Request, res: Response, _next: NextFunction) => void res.status(500).json({}));
  const server = app.listen(0, '127.0.0.1');
  await once(server, 'listening');
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  close = () => new Promise((resolve) => server.close(() => resolve()));
});
afterAll(() => close());

async function templateOf(method: string, path: string): Promise<string> {
  const before = seen.length;
  await (await fetch(base + path, { method })).arrayBuffer();
  // 'finish' is emitted once the response is handed to the socket, around the time the client reads it.
  for (let i = 0; seen.length === before && i < 100; i++) await new Promise((r) => setTimeout(r, 5));
  return seen[before]!;
}

test('the matched route template, never the path with its ids', async () => {
  expect(await templateOf('GET', '/v1/calls/01abc')).toBe('/v1/calls/:id');
});

test('a route that throws keeps its template for the error handler', async () => {
  expect(await templateOf('POST', '/v1/calls/01abc/cancel')).toBe('/v1/calls/:id/cancel');
});

test('a route of an express app mounted in it (which inherits the capture), and no template where no route matched', async () => {
  expect(await templateOf('GET', '/admin/api/queues/add')).toBe('/admin/api/queues/:name');
  expect(await templateOf('GET', '/nowhere/42')).toBe('unmatched');
  // Requests do not leak templates into each other.
  expect(await templateOf('GET', '/v1/calls/x')).toBe('/v1/calls/:id');
});
