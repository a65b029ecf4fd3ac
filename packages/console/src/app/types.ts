/*
 * The shapes the console reads, as the planner's routes answer them (services/planner/src/
 * routes-console.ts and the /v1 routes). Written out here because a browser bundle cannot import
 * the planner (dependencies point from services to packages).
 */
export type Session = { tenant: string; keyId: string; scopes: string[]; admin: boolean; traceUrl: string | null };

export type ConsoleTool = {
  name: string;
  tenant: string;
  version: number;
  description: string;
  enabled: boolean;
  requiresApproval: boolean;
  availability: 'AVAILABLE' | 'UNAVAILABLE' | 'RATE_LIMITED';
  reason?: string;
  retryAfterMs?: number;
  breaker: 'closed' | 'half_open' | 'open';
  holdMs: number;
  rateLimitMs: number;
  queue: { waiting: number; active: number; delayed: number; prioritized: number; completed: number; failed: number };
  stats: { calls: number; errors: number; callsPerMin: number; errorRate: number | null; p50Ms: number | null; p95Ms: number | null; sample: number };
};

export type ToolVersion = { version: number; createdAt: string; codeHash: string; createdBy?: string; rolledBackFrom?: number; current: boolean };

export type CallError = { code: string; message: string };

export type CallRecord = {
  id: string;
  tool: string;
  version: number;
  status: 'queued' | 'awaiting_approval' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  tenant?: string;
  argsHash?: string;
  result?: unknown;
  cached?: boolean;
  error?: CallError;
  logs?: string[];
  attempts: number;
  starts?: number;
  createdAt: string;
  timings: { queuedMs: number | null; runMs: number | null; startedAt?: number };
};

export type Attempt = { number: number; outcome: 'succeeded' | 'failed' | 'running' | 'waiting'; error?: CallError; startedAt?: number; finishedAt?: number; runMs: number | null };

export type ConsoleCall = {
  call: CallRecord;
  arguments?: unknown;
  traceId?: string;
  deadlineAt?: number;
  pendingArgsHash?: string;
  approvedArgsHash?: string;
  attempts: Attempt[];
};

export type Approval = { id: string; tool: string; tenant: string; argsHash: string; arguments: unknown; createdAt: string };

export type StepToolCall = {
  id: string;
  tool: string;
  arguments: unknown;
  callId?: string;
  status: string;
  result?: unknown;
  error?: CallError;
  enqueuedAt?: number;
  startedAt?: number;
  finishedAt?: number;
};

export type RunStep = {
  index: number;
  thought?: string;
  toolCalls: StepToolCall[];
  finalAnswer?: string;
  plan?: { revision?: number; status: string; steps: Array<{ id: string; tool: string; status: string; callId?: string; result?: unknown; error?: CallError }>; problems?: string[] };
  correction?: string;
  usage: { promptTokens: number; completionTokens: number };
};

export type Run = {
  id: string;
  tenant?: string;
  status: string;
  input: string;
  model: string;
  mode?: string;
  maxIterations: number;
  budget: { maxTokens?: number; maxCostUsd?: number; deadlineMs?: number; maxSteps?: number };
  createdAt: string;
  finishedAt?: string;
  steps: RunStep[];
  current?: RunStep;
  finalAnswer?: string;
  error?: CallError;
  budgetExceeded?: { kind: string; limit: number; used: number };
  usage: { promptTokens: number; completionTokens: number; totalTokens: number; costUsd: number; modelCalls: number };
};

export type RunSummary = { id: string; tenant: string; status: string; input: string; model: string; createdAt: string; steps: number };

/** What a page gets: who is signed in, where to draw, and a signal that aborts when the user leaves. */
export type PageContext = {
  session: Session;
  main: HTMLElement;
  params: URLSearchParams;
  signal: AbortSignal;
  navigate(path: string): void;
};

export function can(session: Session, scope: string): boolean {
  return session.scopes.includes('admin') || session.scopes.includes(scope);
}
