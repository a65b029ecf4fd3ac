import type { ToolRegistry } from '@toolplane/queue';

/**
 * The tools whose queues the archiver reads: the current ones, and deleted ones until their queues
 * hold nothing more (their finished calls are archived like any others). The name is forgotten by
 * `DeletedToolSweep` (deleted-tools.ts), which runs with or without an archiver.
 */
export function toolsToArchive(registry: ToolRegistry): () => Promise<string[]> {
  return async () => {
    const [current, deleted] = await Promise.all([registry.names(), registry.deletedNames()]);
    return [...current, ...deleted];
  };
}
