/**
 * A sandbox host: the process where isolates live. Started by {@link SandboxFleet} with a socket
 * pair on fd 3 and an empty environment; it runs calls and registration checks and answers in
 * batched JSON lines. When tool code blocks this process (an uninterruptible native operation, a
 * microtask chain isolated-vm cannot stop, a heap far past its soft limit), the parent's watchdog
 * SIGKILLs it and starts another: nothing here has to survive that.
 */
import { writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { ROOT_CONTEXT, trace, type Context } from '@opentelemetry/api';
import { toToolExecError } from '@toolplane/core';
import { checkToolCode } from '../check-code.js';
import { Sandbox, type SandboxOptions } from '../sandbox.js';
import { CALL_ID, ForwardingTracerProvider } from './forwarding-tracer.js';
import { HEARTBEAT_MS, batchedWriter, lineReader, type HostReply, type HostRequest, type WireTool, type WireTrace } from './protocol.js';

/** What the parent passes in `argv[2]`, as JSON. */
export type HostOptions = Pick<
  SandboxOptions,
  'maxIsolatesPerTool' | 'memoryBudgetMb' | 'syncBudgetMs' | 'maxResponseBytes' | 'maxFetchesPerCall' | 'idleTtlMs' | 'allowPrivateNetworks'
> & {
  /** Tool code kept for calls that leave it out; least recently used goes first. */
  maxCodeBytes: number;
};

const MAX_REQUEST_LINE_BYTES = 256 * 1024 * 1024;

const options = JSON.parse(process.argv[2] ?? '{}') as HostOptions;
const channel = new Socket({ fd: 3, readable: true, writable: true });
const send = batchedWriter((text) => channel.write(text)) as ((msg: HostReply) => void) & { now: (msg: HostReply) => void };
trace.setGlobalTracerProvider(new ForwardingTracerProvider((id, span) => send({ t: 'span', id, span })));

const sandbox = new Sandbox({
  ...options,
  onDispose: (reason) => send({ t: 'disposed', reason }),
  onCatastrophicError: (message) => {
    // The parent sees the exit and re-runs or quarantines the calls this host held.
    process.stderr.write(`toolplane sandbox host: isolated-vm catastrophic error: ${message}\n`);
    process.abort();
  },
});
/** The tools this host was sent, by version key; least recently used goes first past `maxCodeBytes` of code. */
const tools = new Map<string, WireTool>();
let codeBytes = 0;
const running = new Map<number, AbortController>();

function remember(tool: WireTool): void {
  if (tools.delete(tool.key)) codeBytes -= tool.code.length;
  tools.set(tool.key, tool);
  codeBytes += tool.code.length;
  if (codeBytes <= options.maxCodeBytes) return;
  for (const [key, t] of tools) {
    if (codeBytes <= options.maxCodeBytes) break;
    tools.delete(key);
    codeBytes -= t.code.length;
  }
}

function traceContext(id: number, wire: WireTrace | undefined): Context | undefined {
  if (!wire) return undefined;
  return trace.setSpanContext(ROOT_CONTEXT, { ...wire, isRemote: true }).setValue(CALL_ID, id);
}

function run(msg: Extract<HostRequest, { t: 'run' }>): void {
  const tool = msg.tool ?? tools.get(msg.key);
  if (tool === undefined) return send({ t: 'miss', id: msg.id });
  remember(tool);
  const abort = new AbortController();
  running.set(msg.id, abort);
  const traced = traceContext(msg.id, msg.trace);
  sandbox
    .runArgsJson(tool, msg.args, {
      signal: abort.signal,
      ...(msg.secrets ? { secrets: msg.secrets } : {}),
      ...(msg.call ? { call: msg.call } : {}),
      onRetryAfter: (ms) => send({ t: 'retryAfter', id: msg.id, ms }),
      onProgress: (r) => send({ t: 'progress', id: msg.id, fraction: r.fraction, message: r.message, logs: r.logs }),
      // Written at once on its own pipe: the process aborts right after, before any batch is flushed.
      onFatal: (message) => writeSync(4, `${JSON.stringify({ t: 'fatal', id: msg.id, message: message.slice(0, 500) })}\n`),
      // A call that waits for an isolate (under the memory budget, or for one to start) says so, and
      // when its time starts: meanwhile the parent's deadline watch leaves it alone (the heartbeat
      // covers a host that hangs). Other calls' time starts on arrival, as the parent assumes.
      onWait: () => send({ t: 'wait', id: msg.id }),
      // At once: the tool's code runs right after, and may block this thread.
      onStart: () => send.now({ t: 'start', id: msg.id }),
      ...(traced ? { trace: traced } : {}),
    })
    .then(
      (r) => send({ t: 'done', id: msg.id, ok: true, value: r.value, logs: r.logs, runMs: r.runMs }),
      (err: unknown) => {
        const e = toToolExecError(err);
        const { logs = [], stack } = e as { logs?: string[]; stack?: string };
        send({ t: 'done', id: msg.id, ok: false, code: e.code, message: e.message, logs, ...(stack ? { stack } : {}) });
      },
    )
    .finally(() => running.delete(msg.id));
}

function handle(raw: unknown): void {
  const msg = raw as HostRequest;
  switch (msg.t) {
    case 'run':
      return run(msg);
    case 'cancel':
      return void running.get(msg.id)?.abort();
    case 'check':
      return void checkToolCode(msg.code).then((r) => send({ t: 'checked', id: msg.id, ...r }));
  }
}

channel.on('data', lineReader(handle, MAX_REQUEST_LINE_BYTES));
// The parent is gone (or closed us): nothing here outlives it.
channel.on('close', () => process.exit(0));
channel.on('error', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
setInterval(() => send({ t: 'beat' }), HEARTBEAT_MS);
send({ t: 'ready' });
