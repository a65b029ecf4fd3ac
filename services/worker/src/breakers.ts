import CircuitBreaker from 'opossum';
import { toPublicFailure, type Logger, type Tool } from '@toolplane/core';

/**
 * One opossum breaker per tool version in this process. Opossum measures the rolling error rate;
 * when it trips, `onTrip` opens the breaker fleet-wide (in Redis, through the call gate), and the
 * local breaker is closed again at once: admission is decided by the shared state, so every replica
 * agrees and only one trial call runs while half-open.
 */
export class ToolBreakers {
  private readonly breakers = new Map<string, CircuitBreaker<[() => Promise<unknown>], unknown>>();

  constructor(
    private readonly onTrip: (tool: Tool) => void,
    private readonly logger: Logger,
  ) {}

  /** Runs `fn` through the tool's breaker; its failures count unless the error says retrying is pointless. */
  fire<T>(tool: Tool, fn: () => Promise<T>): Promise<T> {
    return this.get(tool).fire(fn) as Promise<T>;
  }

  shutdown(): void {
    for (const b of this.breakers.values()) b.shutdown();
    this.breakers.clear();
  }

  private get(tool: Tool) {
    const key = `${tool.name}@${tool.version}`;
    let breaker = this.breakers.get(key);
    if (!breaker) {
      breaker = new CircuitBreaker((fn: () => Promise<unknown>) => fn(), {
        timeout: false,
        errorThresholdPercentage: tool.breaker.errorThresholdPercentage,
        volumeThreshold: tool.breaker.volumeThreshold,
        resetTimeout: tool.breaker.resetTimeoutMs,
        rollingCountTimeout: 10_000,
        // Bad input, oversized results or cancellations say nothing about the tool's health; a
        // poison call does (it brought down sandbox hosts or workers), though it is never retried.
        errorFilter: ignoredByBreaker,
      });
      const b = breaker;
      b.on('open', () => {
        this.logger.warn({ tool: tool.name }, 'circuit breaker tripped');
        this.onTrip(tool);
        b.close();
      });
      for (const old of this.breakers.keys()) {
        if (old.startsWith(`${tool.name}@`)) {
          this.breakers.get(old)?.shutdown();
          this.breakers.delete(old);
        }
      }
      this.breakers.set(key, breaker);
    }
    return breaker;
  }
}

/**
 * Failures the breaker does not count: what is not worth another attempt (bad input, oversized
 * results, cancellations) says nothing about the tool's health; a poison call does.
 */
function ignoredByBreaker(err: unknown): boolean {
  const { code, retryable } = toPublicFailure(err);
  return !retryable && code !== 'POISONED';
}
