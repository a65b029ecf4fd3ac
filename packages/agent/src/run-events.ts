import type { RedisConnection } from '@toolplane/queue';
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
  private readonly listeners = new Map<string, Set<() => void>>();
  private subscribed: Promise<unknown> | undefined;

  constructor(
    private readonly subscriber: RedisConnection,
    private readonly keys: AgentKeys,
    private readonly store: RunStore,
  ) {
    subscriber.on('message', (channel: string, id: string) => {
      if (channel !== keys.runsChanged) return;
      for (const wake of this.listeners.get(id) ?? []) wake();
    });
  }

  start(): Promise<unknown> {
    this.subscribed ??= this.subscriber.subscribe(this.keys.runsChanged);
    return this.subscribed;
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
      const woken = this.nextWake(id, idleMs, signal);
      const events = await this.store.eventsAfter(id, cursor);
      for (const e of events) {
        cursor = e.id;
        yield e;
        if (e.event.type === 'finished') {
          woken.cancel();
          return;
        }
      }
      if (events.length > 0) {
        woken.cancel();
        continue;
      }
      if (!(await woken.done)) yield undefined;
    }
  }

  private nextWake(id: string, timeoutMs: number, signal: AbortSignal): { done: Promise<boolean>; cancel: () => void } {
    let set = this.listeners.get(id);
    if (!set) this.listeners.set(id, (set = new Set()));
    const listeners = set;
    let wake!: () => void;
    let timer: NodeJS.Timeout | undefined;
    const remove = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      listeners.delete(wake);
      if (listeners.size === 0 && this.listeners.get(id) === listeners) this.listeners.delete(id);
    };
    let onAbort!: () => void;
    const done = new Promise<boolean>((resolve) => {
      wake = () => {
        remove();
        resolve(true);
      };
      onAbort = () => {
        remove();
        resolve(false);
      };
      timer = setTimeout(onAbort, timeoutMs);
      signal.addEventListener('abort', onAbort, { once: true });
    });
    listeners.add(wake);
    return { done, cancel: remove };
  }
}
