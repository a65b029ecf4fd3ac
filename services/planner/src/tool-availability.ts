import { RequestError, type Tool } from '@toolplane/core';
import type { ToolAvailability } from '@toolplane/agent';
import type { CallGate, ToolQueueCache } from '@toolplane/queue';

/** A tool's availability now, and why it is not available. */
export type Availability = { availability: ToolAvailability; reason?: string; retryAfterMs?: number };

/**
 * Whether tools can be called now, as the seed's registry has it: the operator's `enabled` flag,
 * then what the fleet derived — an open breaker makes a tool `UNAVAILABLE`; a Retry-After hold
 * (gate) or the fleet-wide pause of its queue after hitting its rate limit makes it `RATE_LIMITED`.
 * Read from Redis on every ask (a few PTTLs per tool, all under the tool's hash tag), never cached:
 * a breaker that closes is offered again on the next model turn.
 */
export class ToolAvailabilityReader {
  constructor(
    private readonly deps: {
      gate: Pick<CallGate, 'breakerState' | 'holdRemaining'>;
      queues: ToolQueueCache;
    },
  ) {}

  async of(tool: Tool): Promise<Availability> {
    if (tool.enabled === false) return { availability: 'UNAVAILABLE', reason: 'disabled by an operator' };
    const [breaker, holdMs, limitMs] = await Promise.all([
      this.deps.gate.breakerState(tool.name),
      this.deps.gate.holdRemaining(tool.name),
      // -2: no limiter key, -1: no expiry; only a positive TTL is a pause in force.
      this.deps.queues.queue(tool.name).getRateLimitTtl(),
    ]);
    if (breaker === 'open') return { availability: 'UNAVAILABLE', reason: 'its circuit breaker is open' };
    if (holdMs > 0) return { availability: 'RATE_LIMITED', reason: 'a downstream asked to wait (Retry-After)', retryAfterMs: holdMs };
    if (limitMs > 0) return { availability: 'RATE_LIMITED', reason: 'it reached its rate limit', retryAfterMs: limitMs };
    return { availability: 'AVAILABLE' };
  }

  /** Each tool with its availability, in the order given. */
  async all(tools: Tool[]): Promise<Array<{ tool: Tool } & Availability>> {
    return Promise.all(tools.map(async (tool) => ({ tool, ...(await this.of(tool)) })));
  }
}

/** `GET /v1/tools?available=`: `true` keeps the tools available now, `false` or absent keeps all. */
export async function filterAvailable(
  deps: { gate: Pick<CallGate, 'breakerState' | 'holdRemaining'>; queues: ToolQueueCache },
  tools: Tool[],
  available: unknown,
): Promise<Tool[]> {
  if (available === undefined || available === 'false') return tools;
  if (available !== 'true') throw new RequestError('INVALID_REQUEST', 'available must be true or false');
  const rated = await new ToolAvailabilityReader(deps).all(tools);
  return rated.filter((r) => r.availability === 'AVAILABLE').map((r) => r.tool);
}
