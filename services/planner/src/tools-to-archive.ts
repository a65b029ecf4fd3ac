import type { ToolLifecycle, ToolRegistry } from '@toolplane/queue';

/** How often deleted tools are checked for what their queues still hold. */
const RECHECK_MS = 2_000;

/**
 * The tools whose queues the archiver reads: the current ones, and deleted ones until their queues
 * hold nothing more (their finished calls are archived like any others, then the name is forgotten).
 */
export function toolsToArchive(registry: ToolRegistry, lifecycle: Pick<ToolLifecycle, 'holdsNothing'>): () => Promise<string[]> {
  let checkedAt = 0;
  return async () => {
    const [current, deleted] = await Promise.all([registry.names(), registry.deletedNames()]);
    if (deleted.length === 0 || Date.now() - checkedAt < RECHECK_MS) return [...current, ...deleted];
    checkedAt = Date.now();
    const left: string[] = [];
    for (const name of deleted) {
      if (await lifecycle.holdsNothing(name)) await registry.forgetDeleted(name);
      else left.push(name);
    }
    return [...current, ...left];
  };
}
