import { once } from 'node:events';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { z } from 'zod';

/** A real MCP server (the official SDK over Streamable HTTP) in the test process, steered by the test. */
export type McpFixture = {
  /** The MCP endpoint, `http://127.0.0.1:<port>/mcp`. */
  url: string;
  /** While true, `flaky` answers with an MCP tool error (`isError`), as when its downstream is down. */
  failing: boolean;
  /** While true, the server offers a third tool, `later`, to test refreshes. */
  offerLater: boolean;
  /** Calls received per tool. */
  calls: Record<string, number>;
  /** Requests refused for a missing or wrong bearer token. */
  unauthorized: number;
  stop(): Promise<void>;
};

/**
 * Starts the fixture with two tools: `add` (`{a, b}` → `{sum}` as structured content) and `flaky`
 * (fails while {@link McpFixture.failing}). Every request must carry `Authorization: Bearer <token>`.
 * Stateless, like the planner's own endpoint: a fresh SDK server per request.
 */
export async function startMcpFixture(token: string): Promise<McpFixture> {
  const fixture: McpFixture = {
    url: '',
    failing: false,
    offerLater: false,
    calls: {},
    unauthorized: 0,
    stop: async () => {},
  };
  const count = (tool: string) => (fixture.calls[tool] = (fixture.calls[tool] ?? 0) + 1);

  const build = () => {
    const server = new McpServer({ name: 'fixture', version: '1.0.0' });
    server.registerTool(
      'add',
      { description: 'Adds two numbers', inputSchema: { a: z.number(), b: z.number() } },
      async ({ a, b }) => {
        count('add');
        return { content: [{ type: 'text', text: String(a + b) }], structuredContent: { sum: a + b } };
      },
    );
    server.registerTool('flaky', { description: 'Fails while the test says its downstream is down' }, async () => {
      count('flaky');
      if (fixture.failing) return { isError: true, content: [{ type: 'text', text: 'downstream is down' }] };
      return { content: [{ type: 'text', text: 'ok' }] };
    });
    if (fixture.offerLater) {
      server.registerTool('later', { description: 'Appears on demand' }, async () => ({ content: [{ type: 'text', text: 'later' }] }));
    }
    return server;
  };

  const http: HttpServer = createServer((req, res) => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      fixture.unauthorized++;
      res.writeHead(401, { 'content-type': 'application/json' }).end('{"error":"unauthorized"}');
      return;
    }
    if (req.method !== 'POST') {
      // No notifications to stream and no sessions to end.
      res.writeHead(405, { allow: 'POST' }).end();
      return;
    }
    const server = build();
    const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
    res.on('close', () => void server.close());
    server
      .connect(transport)
      .then(() => transport.handleRequest(req, res))
      .catch(() => {
        if (!res.headersSent) res.writeHead(500).end();
      });
  });
  http.listen(0, '127.0.0.1');
  await once(http, 'listening');
  fixture.url = `http://127.0.0.1:${(http.address() as AddressInfo).port}/mcp`;
  fixture.stop = async () => {
    http.closeAllConnections();
    await new Promise<void>((r) => http.close(() => r()));
  };
  return fixture;
}
