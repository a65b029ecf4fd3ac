import type { Tool } from '@toolplane/core';

/** The tool as the API returns it. */
export function toolView(tool: Tool) {
  return {
    name: tool.name,
    version: tool.version,
    description: tool.description,
    parameters: tool.parameters,
    code: tool.code,
    limits: tool.limits,
    ...(tool.rateLimit ? { rateLimit: tool.rateLimit } : {}),
    concurrency: tool.concurrency,
    retries: tool.retries,
    breaker: tool.breaker,
    egress: tool.egress,
    secrets: tool.secrets,
    cacheTtlMs: tool.cacheTtlMs,
    enabled: tool.enabled !== false,
    ...(tool.upstream ? { upstream: tool.upstream } : {}),
    createdAt: tool.createdAt,
    ...(tool.codeHash ? { codeHash: tool.codeHash } : {}),
    ...(tool.rolledBackFrom ? { rolledBackFrom: tool.rolledBackFrom } : {}),
  };
}

/** OpenAI function-calling format (`tools` of Chat Completions). */
export function openAiTool(tool: Tool) {
  return { type: 'function' as const, function: { name: tool.name, description: tool.description, parameters: tool.parameters } };
}

/** MCP `Tool` object as in `tools/list`. */
export function mcpTool(tool: Tool) {
  return { name: tool.name, description: tool.description, inputSchema: tool.parameters };
}
