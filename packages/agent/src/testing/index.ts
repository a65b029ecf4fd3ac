/**
 * A scripted model server for tests and for `make up` without an API key: a real HTTP server that
 * speaks Chat Completions and answers from a script. Never used when `OPENAI_BASE_URL` is set.
 *
 * @example
 * ```ts
 * const llm = await startScriptedModelServer();
 * llm.script('demo', [{ toolCalls: [{ name: 'add', arguments: { a: 1, b: 2 } }] }, { content: '3' }]);
 * // planner env: OPENAI_BASE_URL=llm.baseUrl, TOOLPLANE_MODEL=demo
 * ```
 */
export { startScriptedModelServer } from './scripted-model-server.js';
export type { ScriptedModelServer, ScriptedTurn, ScriptStep, ReceivedRequest } from './scripted-model-server.js';
