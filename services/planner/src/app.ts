import express, { type Request, type Response, type NextFunction } from 'express';
import {
  CALL_ID_PATTERN,
  CallRequest,
  DEFAULT_WAIT_MS,
  MAX_TOOL_CODE_BYTES,
  RequestError,
  ToolName,
  ToolSpec,
  isFinished,
  type CallRecord,
  type Logger,
} from '@toolplane/core';
import type { HttpMetrics, Registry } from '@toolplane/metrics';
import type { CallWaiter, RedisConnection, ToolQueues, ToolRegistry } from '@toolplane/queue';
import { checkToolCode } from '@toolplane/sandbox';
import { errorHandler } from './errors.js';
import { mcpTool, openAiTool, toolView } from './tool-formats.js';
import type { ArgumentValidator } from './validation.js';

export type PlannerDeps = {
  redis: RedisConnection;
  registry: ToolRegistry;
  queues: ToolQueues;
  waiter: CallWaiter;
  validator: ArgumentValidator;
  promRegistry: Registry;
  httpMetrics: HttpMetrics;
  logger: Logger;
  maxBodyBytes: number;
};

/** The HTTP API as an express app: pure wiring, no `process`, no listening. */
export function createPlannerApp(deps: PlannerDeps): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('query parser', 'simple');

  app.use((req, res, next) => {
    const start = performance.now();
    res.on('finish', () => {
      const route = req.route?.path ? String(req.baseUrl + req.route.path) : 'unmatched';
      deps.httpMetrics.requests.inc({ method: req.method, route, status: String(res.statusCode) });
      deps.httpMetrics.duration.observe({ method: req.method, route }, (performance.now() - start) / 1000);
    });
    next();
  });
  // Any content type is read as JSON: clients that forget the header still get a precise error.
  app.use(express.json({ limit: deps.maxBodyBytes, type: () => true, strict: true }));

  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', async (_req, res) => {
    try {
      await deps.redis.ping();
      res.json({ ready: true });
    } catch {
      res.status(503).json({ ready: false, error: { code: 'UNAVAILABLE', message: 'redis is unreachable' } });
    }
  });
  app.get('/metrics', async (_req, res) => {
    res.type(deps.promRegistry.contentType).send(await deps.promRegistry.metrics());
  });

  const v1 = express.Router();

  v1.put('/tools/:name', async (req, res) => {
    const name = parseToolName(req.params.name);
    const parsed = ToolSpec.safeParse(req.body);
    if (!parsed.success) {
      throw new RequestError('INVALID_TOOL', 'tool body is invalid', { issues: zodIssues(parsed.error.issues) });
    }
    const spec = parsed.data;
    if (Buffer.byteLength(spec.code) > MAX_TOOL_CODE_BYTES) {
      throw new RequestError('INVALID_TOOL', `code is larger than ${MAX_TOOL_CODE_BYTES} bytes`);
    }
    deps.validator.checkSchema(spec.parameters);
    const check = await checkToolCode(spec.code);
    if (!check.ok) throw new RequestError('INVALID_TOOL', check.message);
    const { tool, created } = await deps.registry.put(name, spec);
    res.status(created ? 201 : 200).json(toolView(tool));
  });

  v1.get('/tools', async (req, res) => {
    const tools = await deps.registry.list();
    switch (req.query.format) {
      case 'openai':
        return void res.json(tools.map(openAiTool));
      case 'mcp':
        return void res.json({ tools: tools.map(mcpTool) });
      case undefined:
        return void res.json({ tools: tools.map(toolView) });
      default:
        throw new RequestError('INVALID_REQUEST', 'format must be openai or mcp');
    }
  });

  v1.get('/tools/:name', async (req, res) => {
    const name = parseToolName(req.params.name);
    const tool = await deps.registry.get(name);
    if (!tool) throw toolNotFound(name);
    const counts = await deps.queues.queue(name).getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'completed', 'failed');
    res.json({ ...toolView(tool), stats: { queue: counts } });
  });

  v1.delete('/tools/:name', async (req, res) => {
    const name = parseToolName(req.params.name);
    if (!(await deps.registry.delete(name))) throw toolNotFound(name);
    res.status(204).end();
  });

  v1.post('/calls', async (req, res) => {
    const parsed = CallRequest.safeParse(req.body);
    if (!parsed.success) {
      throw new RequestError('INVALID_REQUEST', 'call body is invalid', { issues: zodIssues(parsed.error.issues) });
    }
    const body = parsed.data;
    const tool = await deps.registry.get(body.tool);
    if (!tool) throw toolNotFound(body.tool);
    deps.validator.validate(tool, body.arguments);
    const { id } = await deps.queues.enqueue(tool, body.arguments, {
      tenant: 'default',
      ...(body.idempotencyKey ? { idempotencyKey: body.idempotencyKey } : {}),
      ...(body.priority ? { priority: body.priority } : {}),
      ...(body.delayMs ? { delayMs: body.delayMs } : {}),
    });
    deps.httpMetrics.enqueued.inc({ tool: tool.name });
    if (body.wait === undefined || body.wait === false) {
      return void res.status(202).json({ id, status: 'queued' });
    }
    const waitMs = body.wait === true ? DEFAULT_WAIT_MS : body.wait;
    const record = await waitForCall(deps, id, waitMs, req);
    res.status(record && isFinished(record.status) ? 200 : 202).json(record ?? { id, status: 'queued' });
  });

  v1.get('/calls/:id', async (req, res) => {
    const id = String(req.params.id);
    const record = CALL_ID_PATTERN.test(id) ? await deps.queues.get(id) : undefined;
    if (!record) throw new RequestError('NOT_FOUND', `no call with id '${id}'`);
    res.json(record);
  });

  app.use('/v1', v1);
  app.use((req: Request, _res: Response, next: NextFunction) => {
    next(new RequestError('NOT_FOUND', `no route for ${req.method} ${req.path}`));
  });
  app.use(errorHandler(deps.logger));
  return app;
}

function parseToolName(raw: unknown): string {
  const parsed = ToolName.safeParse(raw);
  if (!parsed.success) throw new RequestError('INVALID_REQUEST', `invalid tool name: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

function toolNotFound(name: string): RequestError {
  return new RequestError('TOOL_NOT_FOUND', `no tool named '${name}'`);
}

function zodIssues(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>) {
  return issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
}

/**
 * Holds the request until the call finishes or `waitMs` passes. The waiter is registered before the
 * state is read, so a finish announced in between is not missed.
 */
async function waitForCall(deps: PlannerDeps, id: string, waitMs: number, req: Request): Promise<CallRecord | undefined> {
  const deadline = Date.now() + waitMs;
  const gone = new AbortController();
  req.socket.once('close', () => gone.abort());
  for (;;) {
    const w = deps.waiter.wait(id, Math.max(1, deadline - Date.now()), gone.signal);
    const record = await deps.queues.get(id);
    if (!record || isFinished(record.status) || Date.now() >= deadline || gone.signal.aborted) {
      w.cancel();
      return record;
    }
    if (!(await w.done)) return deps.queues.get(id);
  }
}
