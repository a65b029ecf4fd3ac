import { PubSubWaiter, type RedisConnection } from '@toolplane/queue';
import type { AgentKeys } from './keys.js';
import type { RunStore, StoredRunEvent } from './run-store.js';

/** Stream ids are `<ms>-<seq>`; anything else from a client is refused before it reaches XRANGE. */
export const EVENT_ID_PATTERN = /^\d{1,15}-\d{1,10}$/;

/**
 * Live run events for any planner replica: the owner of a run appends to the run's Redis stream and
 * publishes the run id; each planner holds one subscription and wakes the readers of that run, which
 * then read the stream from where they are. A missed wake-up costs at most one idle period.
 */
export class RunEventFeed {
  private readonly changes: PubSubWaiter;

  constructor(
    subscriber: RedisConnection,
    keys: AgentKeys,
    private readonly store: RunStore,
  ) {
    this.changes = new PubSubWaiter(subscriber, keys.runsChanged);
  }

  start(): Promise<unknown> {
    return this.changes.start();
  }

  /**
   * The run's events after `after` (`0`: from the start), then live ones, until the `finished`
   * event or `signal`. Yields `undefined` after `idleMs` without events, so callers can send a
   * keep-alive.
   */
  async *follow(id: string, after: string, signal: AbortSignal, idleMs = 15_000): AsyncGenerator<StoredRunEvent | undefined> {
    let cursor = after;
    for (;;) {
      if (signal.aborted) return;
      // Listen before reading, so an event appended between the read and the wait still wakes us.
      const woken = this.changes.wait(id, idleMs, signal);
      try {
        const events = await this.store.eventsAfter(id, cursor);
        for (const e of events) {
          cursor = e.id;
          yield e;
          if (e.event.type === 'finished') return;
        }
        if (events.length > 0) continue;
        if (!(await woken.done)) yield undefined;
      } finally {
        // Also when the reader stops early or the read throws: the wait's timer and listener go now.
        woken.cancel();
      }
    }
  }
}
