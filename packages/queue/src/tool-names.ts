import { EventEmitter } from 'node:events';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { watchToolChanges, type ToolRegistry } from './registry.js';

export type ToolNamesEvents = {
  /** A tool name became current (a registration, or one found by a full read). */
  added: [name: string];
  /** A current name went (a deletion). */
  removed: [name: string];
  /** A read failed; the names known stay as they were (not `error`: nobody has to listen). */
  failed: [err: Error];
};

export type ToolNamesOptions = {
  /**
   * How often every name is read again: a safety net for a change notice never sent. Notices missed
   * while the subscriber was away are made up for when it is back.
   * @default 60_000
   */
  refreshMs?: number;
};

/**
 * The names of the current tools, held in memory from the registry's change notices: each notice
 * names its tool, so it costs one look at that name (`HEXISTS`), where reading every name costs
 * Redis O(tools) (an `HKEYS` of 100,000 names: ~28 ms) in every process, for every registration.
 * Every name is read (in pages) at start, when the subscriber reconnects and every `refreshMs`.
 */
export class ToolNames extends EventEmitter<ToolNamesEvents> {
  private readonly known = new Set<string>();
  /** Names a notice changed while a full read was under way: the read's older view of them is not applied. */
  private changedDuringRead: Set<string> | undefined;
  private reading: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private unwatch: (() => void) | undefined;
  private readonly onReconnect = () => void this.refresh();

  constructor(
    private readonly registry: ToolRegistry,
    private readonly subscriber: RedisConnection,
    private readonly keys: Keys,
    private readonly opts: ToolNamesOptions = {},
  ) {
    super();
  }

  /** Subscribes to change notices, then reads every name; resolves once the names are known. */
  async start(): Promise<void> {
    this.unwatch = await watchToolChanges(this.subscriber, this.keys, (name) => void this.changed(name));
    this.subscriber.on('ready', this.onReconnect);
    await this.refresh();
    this.timer = setInterval(() => void this.refresh(), this.opts.refreshMs ?? 60_000);
    this.timer.unref();
  }

  stop(): void {
    clearInterval(this.timer);
    this.unwatch?.();
    this.subscriber.off('ready', this.onReconnect);
  }

  /** The current names as last heard. */
  list(): string[] {
    return [...this.known];
  }

  has(name: string): boolean {
    return this.known.has(name);
  }

  get size(): number {
    return this.known.size;
  }

  /** Reads every name and applies the difference; a read already under way is shared. */
  refresh(): Promise<void> {
    this.reading ??= this.readAll().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private async readAll(): Promise<void> {
    const changed = (this.changedDuringRead = new Set());
    try {
      const names = new Set(await this.registry.names());
      for (const name of names) if (!changed.has(name)) this.add(name);
      for (const name of this.known) if (!names.has(name) && !changed.has(name)) this.remove(name);
    } catch (err: unknown) {
      this.emit('failed', err as Error);
    } finally {
      this.changedDuringRead = undefined;
    }
  }

  private async changed(name: string): Promise<void> {
    this.changedDuringRead?.add(name);
    try {
      // Replies come back in the order of the notices: a put and a delete heard together end as the later one.
      if (await this.registry.has(name)) this.add(name);
      else this.remove(name);
    } catch (err: unknown) {
      this.emit('failed', err as Error);
    }
  }

  private add(name: string): void {
    if (this.known.has(name)) return;
    this.known.add(name);
    this.emit('added', name);
  }

  private remove(name: string): void {
    if (!this.known.delete(name)) return;
    this.emit('removed', name);
  }
}
