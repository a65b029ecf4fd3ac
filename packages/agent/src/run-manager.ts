import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { DEFAULT_TENANT, RequestError, newCallId, silentLogger, type Logger } from '@toolplane/core';
import type { RedisConnection } from '@toolplane/queue';
import type { AgentKeys } from './keys.js';
import type { LlmCaller } from './llm/llm-caller.js';
import type { AgentMemory } from './memory.js';
import { nativeToolsProtocol } from './protocols/native-tools.js';
import { textProtocol } from './protocols/text-protocol.js';
import { PLAN_MODE_PROMPT, submitPlanTool } from './plan/submit-plan.js';
import { priceOf, type PriceTable } from './prices.js';
import { RunLoop, type RunHooks } from './run-loop.js';
import { RunStore } from './run-store.js';
import type { ToolGateway } from './tool-gateway.js';
import { isRunFinished, toRunView, type ChatMessage, type RunRecord, type RunRequest, type RunView } from './types.js';

export type RunManagerOptions = {
  redis: RedisConnection;
  keys: AgentKeys;
  llm: LlmCaller;
  tools: ToolGateway;
  /** Model of runs that name none. */
  defaultModel: string;
  prices: PriceTable;
  memory?: AgentMemory;
  /**
   * Tokens of session memory put in front of a run's conversation.
   * @default 1_000
   */
  memoryContextTokens?: number;
  hooks?: RunHooks;
  logger?: Logger;
  /**
   * How long a planner's claim on a run lasts without renewal; a crashed planner's runs are taken
   * over by another (or the restarted one) after this.
   * @default 15_000
   */
  leaseMs?: number;
  /**
   * How often the active runs are scanned for ones nobody drives.
   * @default 5_000
   */
  scanIntervalMs?: number;
  /**
   * How often a call's state is read while no finish is announced.
   * @default 1_000
   */
  pollMs?: number;
  /**
   * How long finished runs stay readable.
   * @default 7 days
   */
  retentionMs?: number;
};

/**
 * Starts runs, drives them in this process and takes over runs whose planner went away (including
 * this one's before a restart). Which planner drives a run is decided by a lease in Redis.
 */
export class RunManager {
  readonly store: RunStore;
  private readonly owner = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  private readonly driving = new Map<string, { stop: AbortController; done: Promise<void> }>();
  private readonly leaseMs: number;
  private readonly scanIntervalMs: number;
  private readonly logger: Logger;
  private timers: NodeJS.Timeout[] = [];
  private stopped = false;

  constructor(private readonly opts: RunManagerOptions) {
    this.leaseMs = opts.leaseMs ?? 15_000;
    this.scanIntervalMs = opts.scanIntervalMs ?? 5_000;
    this.logger = opts.logger ?? silentLogger();
    this.store = new RunStore(opts.redis, opts.keys, opts.retentionMs ?? 7 * 86_400_000);
  }

  /** Takes over runs nobody drives now and keeps doing so, and keeps this planner's leases alive. */
  async start(): Promise<void> {
    this.timers.push(setInterval(() => void this.renewLeases(), Math.max(100, Math.floor(this.leaseMs / 3))));
    this.timers.push(setInterval(() => void this.adoptOrphans(), this.scanIntervalMs));
    await this.adoptOrphans();
  }

  /** Validates a request against the registry and price table, stores the run and starts driving it. */
  async create(request: RunRequest, tenant = DEFAULT_TENANT): Promise<RunView> {
    const model = request.model ?? this.opts.defaultModel;
    if (request.budget.maxCostUsd !== undefined && !priceOf(this.opts.prices, model)) {
      throw new RequestError('INVALID_REQUEST', `no price is known for model '${model}', so a cost budget cannot be enforced`, {
        hint: 'add the model to TOOLPLANE_MODEL_PRICES',
      });
    }
    const { tools, missing } = await this.opts.tools.describe(request.tools, tenant);
    if (missing.length) throw new RequestError('TOOL_NOT_FOUND', `no tool named ${missing.map((m) => `'${m}'`).join(', ')}`);
    const protocol = request.protocol === 'text' ? textProtocol : nativeToolsProtocol;
    // Plan mode offers one function, submit_plan, whose description lists the tools a step may call.
    const system =
      request.mode === 'plan' ? `${protocol.systemPrompt([submitPlanTool(tools)])}\n\n${PLAN_MODE_PROMPT}` : protocol.systemPrompt(tools);
    const messages: ChatMessage[] = [{ role: 'system', content: system }];
    if (request.sessionId && this.opts.memory) {
      const context = await this.opts.memory.buildContext(tenant, request.sessionId, this.opts.memoryContextTokens ?? 1_000);
      if (context) messages.push({ role: 'system', content: `What you remember from this session:\n${context}` });
    }
    messages.push({ role: 'user', content: request.input });
    const now = Date.now();
    const run: RunRecord = {
      id: newCallId(now),
      tenant,
      status: 'running',
      input: request.input,
      model,
      protocol: request.protocol,
      mode: request.mode,
      ...(request.mode === 'plan' ? { maxPlans: request.maxPlans } : {}),
      ...(request.tools ? { tools: request.tools } : {}),
      maxIterations: request.maxIterations,
      budget: request.budget,
      ...(request.sessionId ? { sessionId: request.sessionId } : {}),
      ...(request.callbackUrl ? { callbackUrl: request.callbackUrl } : {}),
      createdAt: new Date(now).toISOString(),
      updatedAt: new Date(now).toISOString(),
      ...(request.budget.deadlineMs ? { deadlineAt: now + request.budget.deadlineMs } : {}),
      steps: [],
      usage: { promptTokens: 0, completionTokens: 0, totalTokens: 0, costUsd: 0, modelCalls: 0 },
      messages,
    };
    // Active first: a crash right after still leaves the run findable (or its id, which the scan drops).
    await this.store.markActive(run.id, now);
    await this.store.claim(run.id, this.owner, this.leaseMs);
    await this.store.save(run, this.owner, [{ type: 'status', status: 'running' }]);
    this.logger.info({ runId: run.id, model, mode: run.mode }, 'run started');
    this.drive(run);
    return toRunView(run);
  }

  async get(id: string): Promise<RunView | undefined> {
    const run = await this.store.get(id);
    return run && toRunView(run);
  }

  /** Stops driving (on shutdown) and gives the leases up, so another planner continues at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    const runs = [...this.driving.entries()];
    for (const [, d] of runs) d.stop.abort(new Error('planner stopping'));
    await Promise.all(runs.map(([, d]) => d.done));
    await Promise.all(runs.map(([id]) => this.store.release(id, this.owner).catch(() => {})));
  }

  private drive(run: RunRecord): void {
    const stop = new AbortController();
    const loop = new RunLoop(
      {
        store: this.store,
        llm: this.opts.llm,
        tools: this.opts.tools,
        prices: this.opts.prices,
        ...(this.opts.memory ? { memory: this.opts.memory } : {}),
        hooks: this.opts.hooks ?? {},
        logger: this.logger,
        owner: this.owner,
        pollMs: this.opts.pollMs ?? 1_000,
      },
      run,
    );
    const done = loop
      .drive(stop.signal)
      .catch((err: unknown) => this.logger.error({ err, runId: run.id }, 'run loop crashed'))
      .finally(() => this.driving.delete(run.id));
    this.driving.set(run.id, { stop, done });
  }

  private async renewLeases(): Promise<void> {
    for (const [id, d] of this.driving) {
      try {
        if (!(await this.store.renew(id, this.owner, this.leaseMs))) d.stop.abort(new Error('lease lost'));
      } catch (err: unknown) {
        this.logger.warn({ err: (err as Error).message, runId: id }, 'lease renewal failed');
      }
    }
  }

  /** Runs in the active set whose lease lapsed: their planner is gone, so this one takes over. */
  private async adoptOrphans(): Promise<void> {
    if (this.stopped) return;
    let ids: string[];
    try {
      ids = await this.store.activeIds();
    } catch (err: unknown) {
      return void this.logger.warn({ err: (err as Error).message }, 'scan for runs to take over failed');
    }
    for (const id of ids) {
      if (this.stopped || this.driving.has(id)) continue;
      try {
        if (!(await this.store.claim(id, this.owner, this.leaseMs))) continue;
        await this.adopt(id);
      } catch (err: unknown) {
        this.logger.warn({ err: (err as Error).message, runId: id }, 'run take-over failed');
      }
    }
  }

  private async adopt(id: string): Promise<void> {
    let run: RunRecord | undefined;
    try {
      run = await this.store.get(id);
    } catch (err: unknown) {
      // A state that can't be read can't be resumed: end it with a clear status instead of leaving it hanging.
      this.logger.error({ err, runId: id }, 'run state unreadable');
      const raw = { id, status: 'failed', steps: [], messages: [] } as unknown as RunRecord;
      raw.error = { code: 'RESUME_FAILED', message: 'the run state could not be read after a planner restart' };
      raw.finishedAt = new Date().toISOString();
      await this.store.save(raw, this.owner, [{ type: 'status', status: 'failed' }, { type: 'finished', run: toRunView(raw) }], true);
      return;
    }
    if (!run || isRunFinished(run.status)) {
      await this.store.unmarkActive(id);
      await this.store.release(id, this.owner);
      return;
    }
    this.logger.info({ runId: id, step: run.steps.length }, 'resuming run');
    this.drive(run);
  }
}
