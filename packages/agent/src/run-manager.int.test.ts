import { EventEmitter } from 'node:events';
import { afterAll, beforeAll, describe, expect, inject, test } from 'vitest';
import { Redis } from 'ioredis';
import type { CallRecord, SerializedError } from '@toolplane/core';
import { createAgentKeys } from './keys.js';
import { DEFAULT_PRICES } from './prices.js';
import { ChatCompletionsCaller } from './llm/chat-completions.js';
import { RunManager } from './run-manager.js';
import type { ToolGateway } from './tool-gateway.js';
import type { RunRecord } from './types.js';
import { RunRequest } from './types.js';
import { startScriptedModelServer, type ScriptedModelServer } from './testing/index.js';
import { freshPrefix } from '../../../test/support/redis.js';

/**
 * The planner's side of tool calls, held in memory so a test can decide approvals the way
 * `POST /v1/calls/{id}/approve|reject` will: `pay` calls wait for approval, other tools succeed.
 * (The end-to-end approval test over the real endpoints comes with the approval feature.)
 */
class ApprovalDesk implements ToolGateway {
  readonly calls = new Map<string, CallRecord>();
  readonly submissions: string[] = [];
  private readonly changes = new EventEmitter();

  async describe(names?: string[]) {
    const all = ['pay', 'echo'].map((name) => ({ name, description: name, parameters: { type: 'object' } }));
    return { tools: all.filter((t) => !names || names.includes(t.name)), missing: (names ?? []).filter((n) => n !== 'pay' && n !== 'echo') };
  }

  async submit(call: { tool: string; arguments: unknown; idempotencyKey: string }) {
    this.submissions.push(call.idempotencyKey);
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
        timings: { queuedMs: null, runMs: null },
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

  /** Approve: the call is queued, then runs and succeeds (finishes are announced, approvals are not). */
  approve(callId: string, result: unknown): void {
    this.update(callId, { status: 'queued' }, false);
    setTimeout(() => this.update(callId, { status: 'succeeded', result, attempts: 1 }, true), 50);
  }

  reject(callId: string, reason: string): void {
    const error: SerializedError = { code: 'REJECTED', message: reason };
    this.update(callId, { status: 'failed', error }, true);
  }

  private update(callId: string, patch: Partial<CallRecord>, announce: boolean): void {
    this.calls.set(callId, { ...this.calls.get(callId)!, ...patch });
    if (announce) this.changes.emit(callId);
  }
}

describe('runs that wait for approval (run side)', () => {
  let redis: Redis;
  let llm: ScriptedModelServer;
  const keys = createAgentKeys(freshPrefix('runs'));

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
      if (Date.now() > deadline) throw new Error(`run ${id} never got there: ${JSON.stringify(run?.status)}`);
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

  test('pauses while a call awaits approval and resumes after approve', async () => {
    llm.script('approve', [
      { toolCalls: [{ id: 'p', name: 'pay', arguments: { amount: 5 } }, { id: 'e', name: 'echo', arguments: { hi: 1 } }] },
      { content: 'paid' },
    ]);
    const desk = new ApprovalDesk();
    const runs = manager(desk);
    await runs.start();
    const { id } = await runs.create(RunRequest.parse({ input: 'pay 5', model: 'approve' }));
    const paused = await waitFor(runs, id, (r) => r.status === 'waiting_approval' && r.current?.toolCalls[1]?.status === 'succeeded');
    const callId = paused.current!.toolCalls[0]!.callId!;
    expect(paused.current!.toolCalls).toMatchObject([
      { id: 'p', status: 'awaiting_approval' },
      { id: 'e', status: 'succeeded', result: { hi: 1 } },
    ]);
    desk.approve(callId, { receipt: 'r-1' });
    const done = await waitFor(runs, id, (r) => r.status === 'succeeded');
    expect(done.finalAnswer).toBe('paid');
    expect(done.steps[0]!.toolCalls[0]).toMatchObject({ status: 'succeeded', result: { receipt: 'r-1' } });
    const events = (await runs.store.eventsAfter(id, '0')).map((e) => e.event);
    expect(events.filter((e) => e.type === 'status')).toEqual([
      { type: 'status', status: 'running' },
      { type: 'status', status: 'waiting_approval', waitingFor: [callId] },
      { type: 'status', status: 'running' },
      { type: 'status', status: 'succeeded' },
    ]);
    await runs.stop();
  });

  test('a rejected call goes back to the model as a refusal', async () => {
    llm.script('reject', [{ toolCalls: [{ id: 'p', name: 'pay', arguments: { amount: 1e6 } }] }, { content: 'I was not allowed to pay.' }]);
    const desk = new ApprovalDesk();
    const runs = manager(desk);
    await runs.start();
    const { id } = await runs.create(RunRequest.parse({ input: 'pay a lot', model: 'reject' }));
    const paused = await waitFor(runs, id, (r) => r.status === 'waiting_approval');
    desk.reject(paused.current!.toolCalls[0]!.callId!, 'too much money');
    const done = await waitFor(runs, id, (r) => r.status === 'succeeded');
    expect(done.steps[0]!.toolCalls[0]).toMatchObject({ status: 'failed', error: { code: 'REJECTED' } });
    const toolMessage = llm.requests('reject')[1]!.messages.at(-1);
    expect(toolMessage).toMatchObject({ role: 'tool', tool_call_id: 'p', content: expect.stringMatching(/^REFUSED: .*too much money/) });
    await runs.stop();
  });

  test('a paused run survives its planner stopping: another one takes it over without a second call', async () => {
    llm.script('handover', [{ toolCalls: [{ id: 'p', name: 'pay', arguments: { amount: 2 } }] }, { content: 'done' }]);
    const desk = new ApprovalDesk();
    const first = manager(desk);
    await first.start();
    const { id } = await first.create(RunRequest.parse({ input: 'pay 2', model: 'handover' }));
    const paused = await waitFor(first, id, (r) => r.status === 'waiting_approval');
    await first.stop();

    const second = manager(desk);
    await second.start();
    desk.approve(paused.current!.toolCalls[0]!.callId!, 'ok');
    const done = await waitFor(second, id, (r) => r.status === 'succeeded');
    expect(done.finalAnswer).toBe('done');
    // Resubmitted with the same idempotency key, so the desk (like the queues) holds one call.
    expect(new Set(desk.submissions).size).toBe(1);
    expect(desk.calls.size).toBe(1);
    await second.stop();
  });
});
