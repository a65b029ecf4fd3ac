/**
 * Every Redis key Toolplane writes, in one place.
 *
 * Cluster rule: keys used together in one command or script share a `{hash tag}`. The registry lives
 * under `{prefix}`; each tool's BullMQ queue under its own `{tool}` tag, so different tools' queues
 * spread over the cluster's slots; each tenant's bookkeeping (call index, calls in flight, stored
 * result bytes) under `{tenant:<name>}`.
 */
export type Keys = ReturnType<typeof createKeys>;

export function createKeys(prefix: string) {
  const reg = `{${prefix}}`;
  return {
    /** BullMQ `prefix` option. */
    bullPrefix: prefix,
    /** BullMQ queue name for a tool: the braces make it the key's hash tag. */
    queueName: (tool: string) => `{${tool}}`,
    toolFromQueueName: (queueName: string) => queueName.slice(1, -1),
    registrySpecs: `${reg}:tools:spec`,
    registryCurrent: `${reg}:tools:current`,
    registrySeq: `${reg}:tools:seq`,
    /** Names of deleted tools whose queues may still hold calls to archive (set). */
    registryDeleted: `${reg}:tools:deleted`,
    registryChanged: `${reg}:tools:changed`,
    callIndex: (id: string) => `${prefix}:call:${id}`,
    /** Hash of API key id → record with the hash of its secret. */
    apiKeys: `${reg}:apikeys`,
    /** Request counter of one API key for one second (the API's own rate limit); a key's seconds share a slot. */
    requestWindow: (keyId: string, second: number) => `${prefix}:req:{${keyId}}:${second}`,
    callDone: `${reg}:calls:done`,
    /** Hash of secret name → value (sealed with AES-256-GCM when a key is configured). */
    secrets: `${reg}:secrets`,
    /** Hash of MCP upstream name → spec (URL, header sources, settings for its tools). */
    upstreams: `${reg}:upstreams`,
    callCancel: `${reg}:calls:cancel`,
    /** Zset of tools with runnable calls, by when they became runnable (ms): the workers' scheduler pops the oldest. */
    readyTools: `${reg}:sched:ready`,
    /** Zset of tools whose calls become runnable later (delays, backoffs, rate limits), by when (ms). */
    toolTimers: `${reg}:sched:timers`,
    /** Zset of tools a worker took from {@link readyTools}, by when its claim lapses (ms). */
    claimedTools: `${reg}:sched:claimed`,
    /** Zset of tools with calls running somewhere, by when a worker last said so (ms): stalled checks look at these only. */
    busyTools: `${reg}:sched:busy`,
    /** Lease of the worker that runs the fleet's slow repair sweep. */
    schedulerRepair: `${reg}:sched:repair`,
    /** Lease of the worker that runs the fleet's deadline sweep (`DeadlineSweeper`), about once a second. */
    deadlineSweepLease: `${reg}:sched:deadline-lease`,
    /**
     * Zset of tools whose deadline index (`callDeadlines`) has entries, by the earliest of them
     * (ms): the deadline sweep comes back to each tool then, even once it has left the scheduler's sets.
     */
    deadlineTools: `${reg}:sched:deadline-tools`,
    /** Per-tool keys below share the tool queue's `{tool}` tag, so one script may use them together. */
    cancelMarker: (tool: string, id: string) => `${prefix}:{${tool}}:cancel:${id}`,
    breakerOpen: (tool: string) => `${prefix}:{${tool}}:breaker:open`,
    breakerTripped: (tool: string) => `${prefix}:{${tool}}:breaker:tripped`,
    breakerTrial: (tool: string) => `${prefix}:{${tool}}:breaker:trial`,
    /**
     * Hash of the tool's fair-share tags: tenant → start tag of its last queued call, plus `~v` (the
     * virtual time), `~max` (the highest tag handed out) and `~solo` (the tenant whose calls wait
     * untagged); see `lua/tag-calls-5.lua`.
     */
    fairTags: (tool: string) => `${prefix}:{${tool}}:fair`,
    /**
     * Zset of the tool's queued calls that have a deadline → the deadline (ms), written with the add;
     * the deadline sweeper ends those still waiting past it and drops entries once past.
     */
    callDeadlines: (tool: string) => `${prefix}:{${tool}}:deadlines`,
    rateHold: (tool: string) => `${prefix}:{${tool}}:rl:hold`,
    rateWindow: (tool: string) => `${prefix}:{${tool}}:rl:window`,
    tenantWindow: (tool: string, tenant: string) => `${prefix}:{${tool}}:rl:tenant:${tenant}`,
    /**
     * Per tool version: a tool belongs to one tenant, and a name taken over by another tenant (after
     * a delete) starts at a new version, so no tenant is ever answered from another's cache.
     */
    resultCache: (tool: string, version: number, argsHash: string) => `${prefix}:{${tool}}:cache:${version}:${argsHash}`,
    /**
     * Zset of the tool's calls removed before they ran (cancelled, rejected) → ms they ended: the
     * archiver's list of tombstones to move to history (finished jobs it finds in BullMQ's own sets).
     */
    tombstones: (tool: string) => `${prefix}:{${tool}}:tombstones`,
    /** The archiver's lease: one archiver at a time moves finished calls to history. */
    archiverLease: `${reg}:history:lease`,
    /** Stream of a call's `ctx.progress` reports (`call-events.ts`); expires after the call. */
    callProgress: (tool: string, id: string) => `${prefix}:{${tool}}:progress:${id}`,
    approvalPending: (tool: string, id: string) => `${prefix}:{${tool}}:approval:${id}`,
    approvalGrant: (tool: string, id: string) => `${prefix}:{${tool}}:approved:${id}`,
    /** List of a call's earlier runs (JSON, oldest first), pushed each time a failed call is retried: the console's attempts. */
    callEarlierRuns: (tool: string, id: string) => `${prefix}:{${tool}}:earlier-runs:${id}`,
    // Per-tenant keys below share the `{tenant:<name>}` tag (tool names have no `:`, so no tool's tag
    // can be a tenant's), so one script may use them together; a tenant's listing reads only these.
    /** Zset of the tenant's calls by creation time (ms): the audit trail `GET /v1/calls` pages through. */
    tenantCalls: (tenant: string) => `${prefix}:{tenant:${tenant}}:calls`,
    /** The same index restricted to one tool (`GET /v1/calls?tool=`). */
    tenantToolCalls: (tenant: string, tool: string) => `${prefix}:{tenant:${tenant}}:tool-calls:${tool}`,
    /** Zset of the tenant's calls queued, running or awaiting approval, scored by when the entry goes stale. */
    tenantInFlight: (tenant: string) => `${prefix}:{tenant:${tenant}}:inflight`,
    /** Zset of the tenant's stored results (call id → ms when the result expires). */
    tenantResults: (tenant: string) => `${prefix}:{tenant:${tenant}}:results`,
    /** Hash of the tenant's stored results: call id → bytes. */
    tenantResultSizes: (tenant: string) => `${prefix}:{tenant:${tenant}}:result-sizes`,
    /** Bytes of the tenant's stored results, the sum of {@link tenantResultSizes}, kept by the same scripts. */
    tenantResultBytes: (tenant: string) => `${prefix}:{tenant:${tenant}}:result-bytes`,
    /** Set while the tenant's results fill its quota; expires when its oldest result does. */
    tenantResultsFull: (tenant: string) => `${prefix}:{tenant:${tenant}}:results-full`,
  };
}
