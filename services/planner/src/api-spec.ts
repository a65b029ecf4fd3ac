import { z } from 'zod';
import type { RequestErrorCode, Scope } from '@toolplane/core';
import { statusOf } from './errors.js';

/**
 * The HTTP API described route by route, next to each route's handler, with the same zod schemas
 * the handler validates with; {@link openApiDocument} turns the list into OpenAPI 3.1. Nothing of
 * the document is written by hand, so it cannot drift from what the routes accept.
 */

export type HttpMethod = 'get' | 'put' | 'post' | 'delete';

/**
 * Who may call a route: an API key with this scope (or `admin`); `authenticated` for any valid
 * key; `public` for no key at all; `metrics` for the metrics token or an admin key.
 */
export type ApiAuth = Scope | 'authenticated' | 'public' | 'metrics';

/** A success response. Without `schema` the body is empty (`204`) or described by `contentType` alone. */
export type ApiResponse = {
  description: string;
  schema?: z.ZodType;
  /** @default 'application/json' */
  contentType?: string;
};

/** One operation of the API: enough to validate, document and generate a client from. */
export type ApiRoute = {
  method: HttpMethod;
  /** The express route template, e.g. `/v1/calls/:id`. */
  path: string;
  summary: string;
  description?: string;
  /** Groups operations in the document (and in generated clients). */
  tag: string;
  auth: ApiAuth;
  /** Path parameters; without it each `:name` of the path is a string. */
  params?: z.ZodObject;
  query?: z.ZodObject;
  /** The JSON request body, as the handler parses it. */
  body?: z.ZodType;
  /** Success responses by status. */
  responses: Record<number, ApiResponse>;
  /**
   * Codes this operation may answer with beyond the ones every operation of its kind has (those are
   * added by {@link openApiDocument}: auth codes for authenticated routes, body codes for routes with
   * a body, `INVALID_REQUEST` for routes with a query, `UNAVAILABLE` and `INTERNAL` for all).
   */
  errors?: RequestErrorCode[];
  /**
   * One example exchange: the path parameters, the request body (when there is one) and the
   * response body of `status` (by default the lowest success status). An operation with neither a
   * request nor a response body (a `DELETE` answered `204`) gives its example as `params`.
   */
  example: { request?: unknown; response?: unknown; status?: number; params?: Record<string, string> };
  /** Overrides the operation id derived from method and path. */
  operationId?: string;
};

/** The error body every failing request gets. */
export const ErrorBody = z.object({
  error: z.object({
    code: z.string().describe('a stable code: clients switch on it'),
    message: z.string(),
    details: z.unknown().optional(),
  }),
});

/** `/v1/calls/:id/cancel` → `/v1/calls/{id}/cancel`. */
export function openApiPath(expressPath: string): string {
  return expressPath.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

/** `post /v1/calls/:id/cancel` → `postCallsIdCancel`: stable, readable and unique per method and path. */
export function operationIdOf(route: Pick<ApiRoute, 'method' | 'path' | 'operationId'>): string {
  if (route.operationId) return route.operationId;
  const words = route.path
    .replace(/^\/v1\//, '/')
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean);
  return route.method + words.map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
}

type JsonSchema = Record<string, unknown>;

/** Schemas named in the document (`components/schemas`), so generated clients get a type per name. */
const namedSchemas = z.registry<{ id: string }>();

/**
 * Gives `schema` a name in the API document: it appears once under `components/schemas/<id>` and is
 * referenced wherever a route uses it. Returns the schema, for use in place.
 */
export function apiSchema<T extends z.ZodType>(id: string, schema: T): T {
  if (!namedSchemas.has(schema)) namedSchemas.add(schema, { id });
  return schema;
}

/** The named schemas of one document, filled as routes are converted. */
type Components = Map<string, JsonSchema>;

function jsonSchema(schema: z.ZodType, io: 'input' | 'output', components: Components): JsonSchema {
  // Refinements and transforms stay out of the document; what a value must look like on the wire
  // (the input side for requests, the output side for responses) is what it describes.
  const converted = z.toJSONSchema(schema, { io, unrepresentable: 'any', metadata: namedSchemas }) as JsonSchema;
  const { $schema: _drop, $defs, ...rest } = converted as JsonSchema & { $defs?: Record<string, JsonSchema> };
  // A named schema may read differently as a request (defaults optional) than as a response: the
  // side converted second gets a suffixed name when the two differ.
  const names = new Map<string, string>();
  const rewrite = (value: JsonSchema): JsonSchema =>
    JSON.parse(JSON.stringify(value).replace(/"#\/\$defs\/([^"]+)"/g, (_m, id: string) => JSON.stringify(`#/components/schemas/${names.get(id) ?? id}`))) as JsonSchema;
  for (const [id, def] of Object.entries($defs ?? {})) {
    const taken = components.get(id);
    const same = !taken || JSON.stringify(taken) === JSON.stringify(rewrite(def));
    names.set(id, same ? id : `${id}${io === 'input' ? 'Input' : 'Output'}`);
  }
  for (const [id, def] of Object.entries($defs ?? {})) components.set(names.get(id)!, rewrite(def));
  return rewrite(rest);
}

/** Codes every operation with these traits may answer, besides its own. */
function commonErrors(route: ApiRoute): RequestErrorCode[] {
  const codes: RequestErrorCode[] = ['UNAVAILABLE', 'INTERNAL'];
  if (route.auth !== 'public') codes.push('UNAUTHORIZED', 'FORBIDDEN');
  if (route.auth !== 'public' && route.auth !== 'metrics' && (route.path.startsWith('/v1/') || route.path === '/mcp')) codes.push('RATE_LIMITED');
  if (route.body) codes.push('INVALID_JSON', 'INVALID_REQUEST', 'PAYLOAD_TOO_LARGE', 'UNSUPPORTED_MEDIA_TYPE');
  if (route.query || route.params) codes.push('INVALID_REQUEST');
  return codes;
}

const ERROR_TEXT: Record<number, string> = {
  400: 'the request is malformed or its arguments break a schema',
  401: 'no API key, or an unknown one',
  403: 'the API key lacks the needed scope',
  404: 'no such resource (or one of another tenant)',
  409: 'the resource is not in a state that allows this',
  413: 'the body is too large',
  415: 'the body is not JSON',
  429: 'too many requests or a tenant ceiling; see Retry-After',
  500: 'an unexpected error',
  502: 'an upstream could not be reached',
  503: 'a dependency (Redis, a model endpoint, a sandbox host) is unavailable; retry later',
};

function errorResponses(route: ApiRoute): Record<string, unknown> {
  const byStatus = new Map<number, Set<RequestErrorCode>>();
  for (const code of [...(route.errors ?? []), ...commonErrors(route)]) {
    const status = statusOf(code);
    byStatus.set(status, (byStatus.get(status) ?? new Set()).add(code));
  }
  const out: Record<string, unknown> = {};
  for (const status of [...byStatus.keys()].sort()) {
    const codes = [...byStatus.get(status)!].sort();
    out[String(status)] = {
      description: `${ERROR_TEXT[status] ?? 'error'}: ${codes.join(', ')}`,
      ...(status === 429 || status === 503 ? { headers: { 'Retry-After': { description: 'seconds to wait before retrying', schema: { type: 'integer' } } } } : {}),
      content: {
        'application/json': {
          schema: {
            type: 'object',
            required: ['error'],
            properties: {
              error: {
                type: 'object',
                required: ['code', 'message'],
                properties: { code: { type: 'string', enum: codes }, message: { type: 'string' }, details: {} },
              },
            },
          },
          example: { error: { code: codes[0], message: ERROR_TEXT[status] ?? 'error' } },
        },
      },
    };
  }
  return out;
}

function parameters(route: ApiRoute, components: Components): unknown[] {
  const out: unknown[] = [];
  const pathNames = [...route.path.matchAll(/:([A-Za-z0-9_]+)/g)].map((m) => m[1]!);
  for (const name of pathNames) {
    const field = route.params?.shape[name] as z.ZodType | undefined;
    const example = route.example.params?.[name];
    out.push({ name, in: 'path', required: true, schema: field ? jsonSchema(field, 'input', components) : { type: 'string' }, ...(example !== undefined ? { example } : {}) });
  }
  for (const [name, field] of Object.entries(route.query?.shape ?? {})) {
    const schema = field as z.ZodType;
    out.push({ name, in: 'query', required: !schema.safeParse(undefined).success, schema: jsonSchema(schema, 'input', components) });
  }
  return out;
}

function successResponses(route: ApiRoute, components: Components): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const statuses = Object.keys(route.responses).map(Number).sort();
  for (const status of statuses) {
    const r = route.responses[status]!;
    const type = r.contentType ?? 'application/json';
    const first = status === (route.example.status ?? statuses[0]);
    if (!r.schema && !r.contentType) {
      out[String(status)] = { description: r.description };
      continue;
    }
    out[String(status)] = {
      description: r.description,
      content: {
        [type]: {
          schema: r.schema ? jsonSchema(r.schema, 'output', components) : { type: 'string' },
          ...(first && route.example.response !== undefined ? { example: route.example.response } : {}),
        },
      },
    };
  }
  return out;
}

function authText(auth: ApiAuth): string {
  if (auth === 'public') return 'No API key needed.';
  if (auth === 'authenticated') return 'Any valid API key.';
  if (auth === 'metrics') return 'The metrics token, or an API key with the `admin` scope.';
  return `Needs an API key with the \`${auth}\` scope (or \`admin\`).`;
}

/** The OpenAPI 3.1 document of `routes`. */
export function openApiDocument(routes: readonly ApiRoute[], info: { version: string }): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  const tags = new Set<string>();
  const components: Components = new Map();
  for (const route of routes) {
    tags.add(route.tag);
    const path = openApiPath(route.path);
    const operation: Record<string, unknown> = {
      operationId: operationIdOf(route),
      summary: route.summary,
      description: [route.description, authText(route.auth)].filter(Boolean).join('\n\n'),
      tags: [route.tag],
      security: route.auth === 'public' ? [] : [{ bearer: [] }],
      'x-toolplane-auth': route.auth,
    };
    const params = parameters(route, components);
    if (params.length > 0) operation.parameters = params;
    if (route.body) {
      operation.requestBody = {
        required: true,
        content: {
          'application/json': {
            schema: jsonSchema(route.body, 'input', components),
            ...(route.example.request !== undefined ? { example: route.example.request } : {}),
          },
        },
      };
    }
    operation.responses = { ...successResponses(route, components), ...errorResponses(route) };
    (paths[path] ??= {})[route.method] = operation;
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'Toolplane API',
      version: info.version,
      description:
        'Runs the tool calls of LLM agents: register tools, submit calls, read their results, start agent runs. ' +
        'Errors are `{"error":{"code","message","details"?}}` with a stable code.',
      license: { name: 'Apache-2.0', identifier: 'Apache-2.0' },
    },
    // Relative: the document is served by the planner it describes, wherever that runs.
    servers: [{ url: '/', description: 'the planner that serves this document' }],
    security: [{ bearer: [] }],
    tags: [...tags].sort().map((name) => ({ name, description: `${name} operations` })),
    paths,
    components: {
      schemas: Object.fromEntries([...components].sort(([a], [b]) => a.localeCompare(b))),
      securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'an API key: `Authorization: Bearer tp_…`' } },
    },
  };
}
