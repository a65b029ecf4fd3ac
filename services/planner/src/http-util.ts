import type { Response } from 'express';
import { RequestError, ToolName } from '@toolplane/core';

export function parseToolName(raw: unknown): string {
  const parsed = ToolName.safeParse(raw);
  if (!parsed.success) throw new RequestError('INVALID_REQUEST', `invalid tool name: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

export function toolNotFound(name: string): RequestError {
  return new RequestError('TOOL_NOT_FOUND', `no tool named '${name}'`);
}

export function zodIssues(issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>) {
  return issues.map((i) => ({ path: i.path.map(String).join('.'), message: i.message }));
}

/**
 * Aborts when the client hangs up before its response is complete (waits and streams end with it).
 * The response's close, not the socket's: a kept-alive socket serves many requests, and a listener
 * left on it per request kept each request's controller and closures until it closed. A response
 * sent in full has nobody left to stop, so its close aborts nothing: `abort()` builds a DOMException
 * with a stack (~10 µs), which every sync call paid once its answer had gone.
 */
export function clientGone(res: Response): AbortSignal {
  const gone = new AbortController();
  res.once('close', () => {
    if (!res.writableFinished) gone.abort();
  });
  return gone.signal;
}
