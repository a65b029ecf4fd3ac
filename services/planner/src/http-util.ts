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

