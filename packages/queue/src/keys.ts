/**
 * Every Redis key Toolplane writes, in one place.
 *
 * Cluster rule: keys used together in one command or script share a `{hash tag}`. The registry lives
 * under `{prefix}`; each tool's BullMQ queue under its own `{tool}` tag, so different tools' queues
 * spread over the cluster's slots.
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
    registryChanged: `${reg}:tools:changed`,
    callIndex: (id: string) => `${prefix}:call:${id}`,
    /** Hash of API key id → record with the hash of its secret. */
    apiKeys: `${reg}:apikeys`,
    /** Request counter of one API key for one second (the API's own rate limit). */
    requestWindow: (keyId: string, second: number) => `${prefix}:req:${keyId}:${second}`,
    callDone: `${reg}:calls:done`,
    /** Hash of secret name → value (sealed with AES-256-GCM when a key is configured). */
    secrets: `${reg}:secrets`,
    /** Hash of MCP upstream name → spec (URL, header sources, settings for its tools). */
    upstreams: `${reg}:upstreams`,
    callCancel: `${reg}:calls:cancel`,
    /** Per-tool keys below share the tool queue's `{tool}` tag, so one script may use them together. */
    cancelMarker: (tool: string, id: string) => `${prefix}:{${tool}}:cancel:${id}`,
    breakerOpen: (tool: string) => `${prefix}:{${tool}}:breaker:open`,
    breakerTripped: (tool: string) => `${prefix}:{${tool}}:breaker:tripped`,
    breakerTrial: (tool: string) => `${prefix}:{${tool}}:breaker:trial`,
    rateHold: (tool: string) => `${prefix}:{${tool}}:rl:hold`,
    rateWindow: (tool: string) => `${prefix}:{${tool}}:rl:window`,
    tenantWindow: (tool: string, tenant: string) => `${prefix}:{${tool}}:rl:tenant:${tenant}`,
    resultCache: (tool: string, version: number, argsHash: string) => `${prefix}:{${tool}}:cache:${version}:${argsHash}`,
    callLog: (tool: string) => `${prefix}:{${tool}}:calls`,
    approvalPending: (tool: string, id: string) => `${prefix}:{${tool}}:approval:${id}`,
    approvalGrant: (tool: string, id: string) => `${prefix}:{${tool}}:approved:${id}`,
  };
}
