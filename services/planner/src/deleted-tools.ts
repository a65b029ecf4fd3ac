import type { Logger } from '@toolplane/core';
import type { ToolLifecycle, ToolRegistry } from '@toolplane/queue';

/**
 * How often the deleted tools are looked at. A deleted tool still listed has calls left: queued
 * ones finishing, finished ones waiting for the archiver or their retention, so a few seconds late
 * costs nothing; a round costs a handful of Redis commands per listed name.
 */
const DEFAULT_SWEEP_MS = 5_000;

export type DeletedToolSweepOptions = {
  registry: ToolRegistry;
  lifecycle: Pick<ToolLifecycle, 'settleDeleted'>;
  logger: Logger;
  /** @default 5_000 */
  intervalMs?: number;
};

/**
 * Settles each deleted tool now and then ({@link ToolLifecycle.settleDeleted}): what it held goes
 * as its calls finish, and its name leaves the deleted list once nothing of it is left in Redis. A
 * tool deleted with nothing left is settled by the delete itself; this sweep is for the others. It
 * runs in every planner, archiver or not (without an archiver nothing else ever forgets a name);
 * rounds of several planners overlap harmlessly, each step being safe to repeat.
 */
export class DeletedToolSweep {
  private timer: NodeJS.Timeout | undefined;
  private round: Promise<void> | undefined;

  constructor(private readonly opts: DeletedToolSweepOptions) {}

  start(): void {
    this.timer ??= setInterval(() => {
      this.round ??= this.sweep()
        .then(
          () => undefined,
          (err: unknown) => this.opts.logger.warn({ err }, 'deleted tool sweep failed'),
        )
        .finally(() => (this.round = undefined));
    }, this.opts.intervalMs ?? DEFAULT_SWEEP_MS);
    this.timer.unref();
  }

  /** One round over every listed name; returns those forgotten. */
  async sweep(): Promise<string[]> {
    const forgotten: string[] = [];
    for (const name of await this.opts.registry.deletedNames()) {
      if ((await this.opts.lifecycle.settleDeleted(name, this.opts.registry)) === 'forgotten') forgotten.push(name);
    }
    if (forgotten.length > 0) this.opts.logger.info({ tools: forgotten.length }, 'deleted tools forgotten');
    return forgotten;
  }

  /** Stops the timer and waits for a round under way. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.round;
  }
}
