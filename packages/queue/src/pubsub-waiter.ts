import type { RedisConnection } from './connection.js';

/**
 * One wait handed out by {@link PubSubWaiter}: `done` is `true` when woken, `false` otherwise;
 * `detail()` is what the announcement that woke it said of its id, if anything.
 */
export type Wait = { done: Promise<boolean>; cancel: () => void; detail: () => string | undefined };

/** An id one message announces, with what the publisher told of it, if anything. */
export type Announced = readonly [id: string, detail?: string];

/**
 * Waits for an id to be announced on one Redis pub/sub channel, with a timeout and an AbortSignal.
 * The channel is subscribed once, however many waits are open; each announcement wakes the waits
 * registered for its ids. Whatever ends a wait (announcement, timeout, abort, cancel), the wait's
 * timer, abort listener and entry go with it: long-lived signals, such as a run's waiting for an
 * approval for hours, do not collect listeners.
 *
 * Wake-ups are hints, never the state itself: callers register a wait before reading the state
 * they wait on, so an announcement between the read and the wait is not missed.
 */
export class PubSubWaiter {
  private readonly waits = new Map<string, Set<(woken: boolean, detail?: string) => void>>();
  private subscribed: Promise<unknown> | undefined;

  /**
   * @param announced the ids one message announces (default: the message is one id), so a
   *   publisher can batch, each with a detail it may add.
   */
  constructor(
    private readonly subscriber: RedisConnection,
    private readonly channel: string,
    announced: (message: string) => Iterable<Announced> = (message) => [[message]],
  ) {
    subscriber.on('message', (from: string, message: string) => {
      if (from !== channel) return;
      for (const [id, detail] of announced(message)) this.wake(id, detail);
    });
  }

  /** Subscribes to the channel, once; waits opened before it resolves may miss announcements. */
  start(): Promise<unknown> {
    this.subscribed ??= this.subscriber.subscribe(this.channel);
    return this.subscribed;
  }

  /**
   * Resolves `true` when `id` is announced, `false` after `timeoutMs`, on `signal`'s abort or on
   * `cancel()`.
   */
  wait(id: string, timeoutMs: number, signal?: AbortSignal): Wait {
    let end!: (woken: boolean, detail?: string) => void;
    let told: string | undefined;
    let ended = false;
    const done = new Promise<boolean>((resolve) => {
      end = (woken, detail) => {
        if (ended) return;
        ended = true;
        told = detail;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        const set = this.waits.get(id);
        if (set?.delete(end) && set.size === 0) this.waits.delete(id);
        resolve(woken);
      };
    });
    const onAbort = () => end(false);
    const timer = setTimeout(onAbort, timeoutMs);
    let set = this.waits.get(id);
    if (!set) this.waits.set(id, (set = new Set()));
    set.add(end);
    if (signal?.aborted) end(false);
    else signal?.addEventListener('abort', onAbort, { once: true });
    return { done, cancel: onAbort, detail: () => told };
  }

  /** Ids with open waits (an id's entry goes with its last wait). */
  get size(): number {
    return this.waits.size;
  }

  private wake(id: string, detail: string | undefined): void {
    const set = this.waits.get(id);
    if (!set) return;
    // Each `end` removes itself from the set; a copy keeps the iteration well defined.
    for (const end of [...set]) end(true, detail);
  }
}
