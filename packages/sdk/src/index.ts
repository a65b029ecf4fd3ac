/**
 * `@toolplane/sdk`: write a Toolplane tool as a typed TypeScript module. Everything here is bundled
 * into the tool and runs inside its isolate; nothing runs on a host.
 *
 * @example
 * ```ts
 * import { defineTool } from '@toolplane/sdk';
 * // The namespace import lets the bundler drop what the tool does not use (`{ z }` keeps all of zod).
 * import * as z from 'zod';
 *
 * export default defineTool({
 *   name: 'hello',
 *   description: 'Greets someone',
 *   parameters: z.object({ name: z.string() }),
 *   run: async ({ name }, ctx) => {
 *     ctx.log('greeting', name);
 *     return `Hello, ${name}!`;
 *   },
 * });
 * ```
 */
import { toJSONSchema, type z } from 'zod';

/** The reply of `ctx.fetch` (the global `fetch` returns a web `Response`). */
export type ToolFetchResponse = {
  readonly status: number;
  readonly statusText: string;
  readonly ok: boolean;
  readonly url: string;
  readonly redirected: boolean;
  readonly headers: Readonly<Record<string, string>>;
  /** The body as text (at most 1 MiB). */
  readonly body: string;
  text(): Promise<string>;
  json(): Promise<unknown>;
};

/** What a tool's `run` gets besides its arguments. */
export type ToolContext = {
  /** An HTTP request through the tool's `egress` rules (as is the global `fetch`). */
  fetch(url: string, init?: { method?: string; headers?: Record<string, string> | Array<[string, string]>; body?: string }): Promise<ToolFetchResponse>;
  /** The secrets the tool lists in `secrets`, by name. */
  readonly secrets: Readonly<Record<string, string>>;
  /** One line in the call's logs (`console.*` writes there too). */
  log(...parts: unknown[]): void;
  /**
   * Reports how far the call is, `fraction` from 0 to 1, with an optional short message (cut at 500
   * characters): streamed to `GET /v1/calls/{id}/events` and MCP progress notifications. Sent at most
   * 10 times a second (the latest report wins in between); throws a TypeError on a bad fraction.
   */
  progress(fraction: number, message?: string): void;
  /** Aborted when the call ends; pass it to `fetch` to stop waiting. */
  readonly signal: AbortSignal;
  /** The call's id (`GET /v1/calls/{id}`). */
  readonly callId: string;
  /** 1 on the first run, 2 on the first retry, … */
  readonly attempt: number;
};

export type ToolLimits = { timeoutMs?: number; cpuMs?: number; memoryMb?: number; maxResultBytes?: number };

/** A JSON Schema object, as registered. */
export type JsonSchema = { type?: string; properties?: Record<string, unknown>; required?: string[]; [key: string]: unknown };

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
type Args<P> = P extends z.ZodType ? z.output<P> : Record<string, unknown>;

/** A tool as `defineTool` takes it. `args` is typed from `parameters` when it is a zod schema. */
export type ToolDefinition<P extends z.ZodType | JsonSchema> = {
  /** `[a-zA-Z0-9_-]`, at most 64. */
  name: string;
  description: string;
  /** A zod schema (its JSON Schema is what gets registered) or a plain JSON Schema. */
  parameters: P;
  limits?: ToolLimits;
  /** Hosts `fetch` may reach: `api.example.com`, `host:port`, `*.example.com`. */
  egress?: string[];
  /** Names of the secrets the tool reads as `ctx.secrets.NAME`. */
  secrets?: string[];
  /** Results are cached this long per arguments (deterministic tools only). */
  cacheTtlMs?: number;
  /** Calls wait for a person's approval (`POST /v1/calls/{id}/approve`). */
  requiresApproval?: boolean;
  /** Retries of failed runs (retryable errors only). @default `{ attempts: 3, backoffMs: 200 }` */
  retries?: { attempts?: number; backoffMs?: number };
  /** At most `max` calls per `perMs`, across all workers. */
  rateLimit?: { max: number; perMs: number };
  /** Calls running at once, across all workers. @default 50 */
  concurrency?: number;
  /** How long a call may wait to start, in ms (see the README's Deadlines). */
  deadlineMs?: number;
  /**
   * `call` (default): every call evaluates the module afresh. `isolate`: an isolate keeps the module
   * instance across calls of this version (state carries over), which saves loading big dependencies
   * (zod's classic API costs ~1.5 ms a call to load) on every call.
   */
  isolation?: 'call' | 'isolate';
  run(args: Args<P>, ctx: ToolContext): Json | void | Promise<Json | void>;
};

/** What a tool module's default export is: the definition, with `parameters` as JSON Schema. */
export type DefinedTool = Omit<ToolDefinition<JsonSchema>, 'run'> & {
  parameters: JsonSchema;
  run(args: unknown, ctx: ToolContext): unknown;
  /** Marks a module made by `defineTool`, for the CLI. */
  readonly toolplane: 1;
};

function isZod(p: unknown): p is z.ZodType {
  return typeof p === 'object' && p !== null && '_zod' in p;
}

/** Defines a tool; export it as the module's default. */
export function defineTool<P extends z.ZodType | JsonSchema>(def: ToolDefinition<P>): DefinedTool {
  const run = def.run as (args: unknown, ctx: ToolContext) => unknown;
  let schema: JsonSchema | undefined;
  // Read once, at build time (`toolplane deploy`): a call evaluates the module afresh but only runs
  // `run`, so it never pays for the JSON Schema conversion.
  const parameters = (): JsonSchema => {
    if (schema) return schema;
    const converted = isZod(def.parameters) ? (toJSONSchema(def.parameters) as JsonSchema) : (def.parameters as JsonSchema);
    const { $schema: _schema, ...rest } = converted;
    return (schema = rest);
  };
  const tool = { ...def, run, toolplane: 1 as const } as Omit<DefinedTool, 'parameters'>;
  return Object.freeze(Object.defineProperty(tool, 'parameters', { get: parameters, enumerable: true })) as DefinedTool;
}
