/**
 * Every Redis key of agent runs and memory, in one place (the queue's keys are in `@toolplane/queue`).
 *
 * Cluster rule: the keys of one run share the hash tag `{run:<id>}` and the keys of one memory
 * session `{mem:<tenant>:<session>}`, so the scripts that touch them together stay on one slot.
 * Memory is the tenant's: the same session id in two tenants names two memories (tenant names have
 * no `:`, so `<tenant>:<session>` is unambiguous).
 */
export type AgentKeys = ReturnType<typeof createAgentKeys>;

export function createAgentKeys(prefix: string) {
  const run = (id: string) => `${prefix}:{run:${id}}`;
  const mem = (tenant: string, session: string) => `${prefix}:{mem:${tenant}:${session}}`;
  return {
    /** The run record, JSON. */
    run: (id: string) => `${run(id)}:state`,
    /** The run's events as a stream; its entry ids are the SSE ids. */
    runEvents: (id: string) => `${run(id)}:events`,
    /** Which planner drives the run, with a time to live that the owner keeps renewing. */
    runLease: (id: string) => `${run(id)}:lease`,
    /** Runs not finished yet (zset by start time): what a planner scans to take over orphans. */
    runsActive: `{${prefix}}:runs:active`,
    /** Finished runs still in Redis (zset by finish time): what the history archiver moves out. */
    runsFinished: `{${prefix}}:runs:finished`,
    /** Pub/sub channel: a run id is published whenever the run has a new event. */
    runsChanged: `{${prefix}}:runs:changed`,
    /** Short-term memory of a tenant's session: a list of recent entries. */
    memoryShort: (tenant: string, session: string) => `${mem(tenant, session)}:short`,
    /** Long-term memory of a tenant's session: a zset of entries scored by importance. */
    memoryLong: (tenant: string, session: string) => `${mem(tenant, session)}:long`,
  };
}
