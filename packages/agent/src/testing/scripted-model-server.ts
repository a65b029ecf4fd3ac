import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { countMessageTokens, countTokens } from '../tokens.js';
import type { ChatMessage } from '../types.js';

/** One scripted model reply. */
export type ScriptedTurn = {
  /** Native tool calls; `arguments` may be a raw string to script arguments that are not JSON. */
  toolCalls?: Array<{ name: string; arguments: unknown; id?: string }>;
  /** The text of the reply: a final answer with native tools, the whole reply in the text protocol. */
  content?: string;
  /** Reported usage; by default measured with the tokenizer from the request and the reply. */
  usage?: { promptTokens?: number; completionTokens?: number };
  /** Answer this late, to test deadlines and timeouts. */
  delayMs?: number;
  /** HTTP statuses to answer first, one per request for this turn, before the real reply (retries). */
  failWith?: number[];
};

/** What the server received, for assertions. */
export type ReceivedRequest = { model: string; messages: ChatMessage[]; tools?: unknown[] };

/** A turn fixed in advance, or computed from the request (e.g. a final answer from the tool results it carries). */
export type ScriptStep = ScriptedTurn | ((request: ReceivedRequest) => ScriptedTurn);

export type ScriptedModelServer = {
  /** Base URL to use as `OPENAI_BASE_URL` (ends in `/v1`). */
  baseUrl: string;
  /** Sets the script answered for `model`; each test uses a model name of its own. */
  script(model: string, turns: ScriptStep[]): void;
  requests(model: string): ReceivedRequest[];
  close(): Promise<void>;
};

/**
 * A real HTTP server speaking the Chat Completions protocol that answers from a script instead of
 * a model. The turn answered is the number of assistant messages in the request, so the server
 * is stateless across retries and planner restarts, and many runs can share it (one model each).
 */
export async function startScriptedModelServer(
  opts: { port?: number; host?: string; scripts?: Record<string, ScriptStep[]> } = {},
): Promise<ScriptedModelServer> {
  const scripts = new Map<string, ScriptStep[]>(Object.entries(opts.scripts ?? {}));
  const received = new Map<string, ReceivedRequest[]>();
  const failures = new Map<string, number>();
  let seq = 0;

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const send = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method === 'GET' && req.url?.endsWith('/models')) {
      return send(200, { object: 'list', data: [...scripts.keys()].map((id) => ({ id, object: 'model' })) });
    }
    if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
      return send(404, { error: { message: 'not found', type: 'invalid_request_error' } });
    }
    let body: ReceivedRequest;
    try {
      const chunks: Buffer[] = [];
      for await (const c of req) chunks.push(c as Buffer);
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ReceivedRequest;
    } catch {
      return send(400, { error: { message: 'body is not JSON', type: 'invalid_request_error' } });
    }
    const turns = scripts.get(body.model);
    if (!turns) return send(404, { error: { message: `model '${body.model}' has no script`, type: 'invalid_request_error' } });
    let list = received.get(body.model);
    if (!list) received.set(body.model, (list = []));
    list.push(body);
    const index = body.messages.filter((m) => m.role === 'assistant').length;
    const step = turns[index];
    const turn = typeof step === 'function' ? step(body) : step;
    if (!turn) return send(400, { error: { message: `script of '${body.model}' has no turn ${index}`, type: 'invalid_request_error' } });
    const failKey = `${body.model}#${index}`;
    const failed = failures.get(failKey) ?? 0;
    if (turn.failWith && failed < turn.failWith.length) {
      failures.set(failKey, failed + 1);
      return send(turn.failWith[failed]!, { error: { message: 'scripted failure', type: 'server_error' } });
    }
    if (turn.delayMs) await new Promise((r) => setTimeout(r, turn.delayMs));
    if (res.destroyed) return;
    const toolCalls = (turn.toolCalls ?? []).map((c, i) => ({
      id: c.id ?? `call_${index}_${i}`,
      type: 'function',
      function: { name: c.name, arguments: typeof c.arguments === 'string' ? c.arguments : JSON.stringify(c.arguments ?? {}) },
    }));
    const content = turn.content ?? null;
    const completion = countTokens(content ?? '') + toolCalls.reduce((n, c) => n + countTokens(c.function.arguments), 0);
    send(200, {
      id: `chatcmpl-${++seq}`,
      object: 'chat.completion',
      created: Math.floor(Date.now() / 1000),
      model: body.model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content, ...(toolCalls.length ? { tool_calls: toolCalls } : {}) },
          finish_reason: toolCalls.length ? 'tool_calls' : 'stop',
        },
      ],
      usage: {
        prompt_tokens: turn.usage?.promptTokens ?? countMessageTokens(body.messages),
        completion_tokens: turn.usage?.completionTokens ?? completion,
        total_tokens: 0,
      },
    });
  };

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://${opts.host ?? '127.0.0.1'}:${port}/v1`,
    script: (model, turns) => void scripts.set(model, turns),
    requests: (model) => received.get(model) ?? [],
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
