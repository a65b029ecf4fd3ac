/**
 * MCP for Toolplane, on the official `@modelcontextprotocol/sdk`: the server adapter the planner
 * serves its tools with (`/mcp`), and the client workers call MCP upstreams' tools with.
 *
 * @example
 * ```ts
 * const mcp = new McpServerAdapter({ catalog, serverInfo: { name: 'toolplane', version: '1' } });
 * app.all('/mcp', (req, res) => mcp.handle(req, res, req.body, principal));
 *
 * const upstreams = new UpstreamClients({ resolve: async (name) => ({ url, headers }) });
 * const { value } = await upstreams.call('github', 'search', { q: 'mcp' }, { timeoutMs: 5000, maxResultBytes: 1 << 20 });
 * ```
 */
export { McpServerAdapter, toCallToolResult } from './server-adapter.js';
export type { McpCallOutcome, McpToolCatalog, McpServerAdapterOptions, McpTool, McpProgress } from './server-adapter.js';
export { UpstreamClients, UpstreamConnectError, listUpstreamTools, MAX_UPSTREAM_TOOLS } from './upstream-client.js';
export type { UpstreamCallOptions, UpstreamCallResult, UpstreamClientsOptions, UpstreamConnection } from './upstream-client.js';
