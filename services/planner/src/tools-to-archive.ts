import type { ToolNames, ToolRegistry } from '@toolplane/queue';

/**
 * The tools whose queues the archiver reads: the current ones, and deleted ones until their queues
 * hold nothing more (their finished calls are archived like any others). The name is forgotten by
 * `DeletedToolSweep` (deleted-tools.ts), which runs with or without an archiver.
 */
export function toolsToArchive(current: ToolNames, registry: ToolRegistry): () => Promise<string[]> {
  return async () => [...current.list(), ...(await registry.deletedNames())];
}
