import { EventEmitter } from 'node:events';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { Redis } from 'ioredis';
import type { CallRecord } from '@toolplane/core';
import { createAgentKeys } from '../keys.js';
import { DEFAULT_PRICES } from '../prices.js';
import { ChatCompletionsCaller } from '../llm/chat-completions.js';
import { RunManager } from '../run-manager.js';
import type { ToolGateway } from '../tool-gateway.js';
import { RunRequest, type RunRecord } from '../types.js';
import { startScriptedModelServer, type ScriptedModelServer } from '../testing/index.js';
import { freshPrefix } from '../../../../test/support/redis.js';

/** Calls held in memory: `pay` waits for approval, `echo` returns its arguments at once. */
class Desk implements ToolGateway {
  readonly calls = new Map<string, CallRecord>();
  readonly submissions: Array<{ key: string; arguments: unknown }> = [];
  private readonly changes = new EventEmitter();

  async describe(names?: string[]) {
    const all = ['pay', 'echo'].map((name) => ({ name, description: name, parameters: { type: 'object' } }));
    return { tools: all.filter((t) => !names || names.includes(t.name)), missing: [] };
  }

  async submit(call: { tool: string; arguments: unknown; idempotencyKey: string }) {
    this.submissions.push({ key: call.idempotencyKey, arguments: call.arguments });
    const id = `call-${call.idempotencyKey}`;
    if (!this.calls.has(id)) {
      const approval = call.tool === 'pay';
      this.calls.set(id, {
        id,
        tool: call.tool,
        version: 1,
        status: approval ? 'awaiting_approval' : 'succeeded',
        ...(approval ? {} : { result: call.arguments }),
        attempts: approval ? 0 : 1,
        createdAt: new Date().toISOString(),
        timings: approval ? { queuedMs: null, runMs: null } : { queuedMs: 1, runMs: 2 },
      });
    }
    return { callId: id };
  }

  async get(callId: string) {
    return this.calls.get(callId);
  }

  watch(callId: string, timeoutMs: number, signal: AbortSignal) {
    let wake!: () => void;
    let timer: NodeJS.Timeout | undefined;
    const done = new Promise<boolean>((resolve) => {
      wake = () => resolve(true);
      timer = setTimeout(() => resolve(false), timeoutMs);
      signal.addEventListener('abort', () => resolve(false), { once: true });
    });
    this.changes.once(callId, wake);
    return { done, cancel: () => (clearTimeout(timer), this.changes.off(callId, wake)) };
  }

  approve(callId: string, result: unknown): void {
    this.calls.set(callId, { ...this.calls.get(callId)!, status: 'succeeded', result, attempts: 1, timings: { queuedMs: 1, runMs: 2 } });
    this.changes.emit(callId);
  }
}

describe('plan runs (run side)', () => {
  let redis: Redis;
  let llm: ScriptedModelServer;
  const keys = createAgentKeys(freshPrefix('plans'));
  const manager = (tools: ToolGateway) =>
    new RunManager({
      redis,
      keys,
      llm: new ChatCompletionsCaller({ baseUrl: llm.baseUrl, maxRetries: 0 }),
      tools,
      defaultModel: 'unused',
      prices: DEFAULT_PRICES,
      leaseMs: 1_000,
      scanIntervalMs: 100,
      pollMs: 50,
    });
  const waitFor = async (m: RunManager, id: string, ok: (r: RunRecord) => boolean): Promise<RunRecord> => {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const run = await m.store.get(id);
      if (run && ok(run)) return run;
      if (Date.now() > deadline) throw new Error(`run ${id} never got there: ${JSON.stringify(run?.current ?? run?.status)}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  };

  beforeAll(async () => {
    redis = new Redis(inject('redisUrl'));
    llm = await startScriptedModelServer();
  });
  afterAll(async () => {
    await llm.close();
    await redis.quit();
  });

  test('a step awaiting approval pauses the run, survives a planner handover, and its dependent runs once it is approved', async () => {
    llm.script('plan-approval', [
      {
        toolCalls: [
          {
            id: 'p',
            name: 'submit_plan',
            arguments: {
              steps: [
                { id: 'pay', tool: 'pay', arguments: { amount: 5 } },
                { id: 'note', tool: 'echo', arguments: { receipt: { $ref: 'pay', path: 'receipt' } } },
                { id: 'other', tool: 'echo', arguments: { hi: 1 } },
              ],
            },
          },
        ],
      },
      { content: 'paid and noted' },
    ]);
    const desk = new Desk();
    const first = manager(desk);
    await first.start();
    const { id } = await first.create(RunRequest.parse({ input: 'pay 5, then note it', model: 'plan-approval', mode: 'plan' }));
    const paused = await waitFor(first, id, (r) => r.status === 'waiting_approval' && r.current?.plan?.steps[2]?.status === 'succeeded');
    expect(paused.current!.plan!.steps.map((s) => s.status)).toEqual(['awaiting_approval', 'waiting', 'succeeded']);
    await first.stop();

    const second = manager(desk);
    await second.start();
    desk.approve(paused.current!.plan!.steps[0]!.callId!, { receipt: 'r-1' });
    const done = await waitFor(second, id, (r) => r.status === 'succeeded');
    expect(done.steps[0]!.plan!.steps).toMatchObject([
      { id: 'pay', status: 'succeeded' },
      { id: 'note', status: 'succeeded', resolvedArguments: { receipt: 'r-1' }, result: { receipt: 'r-1' } },
      { id: 'other', status: 'succeeded' },
    ]);
    // One key per run, plan revision and step; the handover sent nothing twice.
    expect(desk.submissions.map((s) => s.key).sort()).toEqual([`run:${id}:p1:note`, `run:${id}:p1:other`, `run:${id}:p1:pay`]);
    const statuses = (await second.store.eventsAfter(id, '0')).map((e) => e.event).filter((e) => e.type === 'status');
    expect(statuses).toContainEqual({ type: 'status', status: 'waiting_approval', waitingFor: [paused.current!.plan!.steps[0]!.callId] });
    await second.stop();
  });
});
