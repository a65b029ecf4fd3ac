import { z } from 'zod';

/** OpenAI function names allow `[a-zA-Z0-9_-]{1,64}`; the dot is kept for MCP upstreams (`server.tool`). */
export const TOOL_NAME_PATTERN = /^[a-zA-Z0-9_-][a-zA-Z0-9_.-]{0,63}$/;
export const ToolName = z.string().regex(TOOL_NAME_PATTERN, 'letters, digits, _ - . only, at most 64');
export type ToolName = z.infer<typeof ToolName>;

/** Code larger than this is refused at registration: tools are small glue, not bundles. */
export const MAX_TOOL_CODE_BYTES = 256 * 1024;

/** A bundled tool's source map is kept with its version, up to this size. */
export const MAX_SOURCE_MAP_BYTES = 1024 * 1024;

/**
 * The longest deadline a call may have (7 days, the default retention of finished calls): a deadline
 * is how long a call may wait to start, not a way to keep it queued forever.
 */
export const MAX_DEADLINE_MS = 7 * 86_400_000;

/**
 * A call's deadline (schedule-to-close, as Temporal calls it), in ms from when the call is due (its
 * `delayMs` after it was accepted). A call still waiting past it ends `failed` with `DEADLINE_EXCEEDED`.
 */
export const DeadlineMs = z.number().int().positive().max(MAX_DEADLINE_MS);

export const ToolLimits = z
  .object({
    /** Wall time of the whole call, promises and `ctx` calls included. */
    timeoutMs: z.number().int().min(10).max(300_000).default(10_000),
    /** CPU time the call may burn; unset means `timeoutMs`. Useful when a tool mostly waits on `ctx.fetch`. */
    cpuMs: z.number().int().min(10).max(300_000).optional(),
    /** Heap cap of the isolate; isolated-vm's minimum is 8. */
    memoryMb: z.number().int().min(8).max(1024).default(64),
    /** Largest JSON result accepted, measured inside the isolate. */
    maxResultBytes: z.number().int().min(16).max(16 * 1024 * 1024).default(1024 * 1024),
  })
  .strict()
  .refine((l) => l.cpuMs === undefined || l.cpuMs <= l.timeoutMs, { message: 'cpuMs cannot exceed timeoutMs', path: ['cpuMs'] });
export type ToolLimits = z.infer<typeof ToolLimits>;

export const ToolRateLimit = z
  .object({ max: z.number().int().min(1), perMs: z.number().int().min(1).max(86_400_000) })
  .strict();
export type ToolRateLimit = z.infer<typeof ToolRateLimit>;

export const ToolRetries = z
  .object({
    attempts: z.number().int().min(1).max(20).default(3),
    backoffMs: z.number().int().min(0).max(3_600_000).default(200),
  })
  .strict();
export type ToolRetries = z.infer<typeof ToolRetries>;

export const ToolBreaker = z
  .object({
    errorThresholdPercentage: z.number().min(1).max(100).default(50),
    volumeThreshold: z.number().int().min(1).default(10),
    resetTimeoutMs: z.number().int().min(10).max(3_600_000).default(10_000),
  })
  .strict();
export type ToolBreaker = z.infer<typeof ToolBreaker>;

/**
 * One `egress` entry: `host` (default port of the scheme), `host:port`, `*.example.com[:port]` or an
 * IP literal (`10.0.0.7:8080`, `[::1]:8080`). No scheme, path or credentials.
 */
export const EgressEntry = z
  .string()
  .max(260)
  .regex(/^(\*\.)?([a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:.]+\])(:\d{1,5})?$/, 'host, host:port or *.domain, without scheme or path')
  .refine((e) => !/:(\d+)$/.test(e) || (Number(/:(\d+)$/.exec(e)![1]) >= 1 && Number(/:(\d+)$/.exec(e)![1]) <= 65_535), 'port out of range');
export type EgressEntry = z.infer<typeof EgressEntry>;

/** A secret's name, as tool code reads it: `ctx.secrets.NAME`. */
export const SecretName = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'letters, digits and _, not starting with a digit, at most 64');
export type SecretName = z.infer<typeof SecretName>;

/**
 * Marks a tool that runs on an MCP upstream (`PUT /v1/upstreams/{name}`) through an MCP client
 * instead of in the sandbox. Set only by the upstream routes; `PUT /v1/tools` refuses it.
 */
export const UpstreamToolRef = z
  .object({
    /** The upstream's name, the part of the tool name before the first dot. */
    name: z.string().min(1).max(64),
    /** The tool's name on the upstream MCP server, which may contain characters ours does not. */
    tool: z.string().min(1).max(256),
  })
  .strict();
export type UpstreamToolRef = z.infer<typeof UpstreamToolRef>;

/** The body of `PUT /v1/tools/{name}`. Everything but description, parameters and code has a default. */
export const ToolSpec = z
  .object({
    description: z.string().min(1).max(4096),
    parameters: z.record(z.string(), z.unknown()),
    code: z.string().min(1),
    limits: ToolLimits.default(ToolLimits.parse({})),
    rateLimit: ToolRateLimit.optional(),
    /** Each tenant's calls of this tool are limited separately, on top of `rateLimit`. */
    tenantRateLimit: ToolRateLimit.optional(),
    /** Calls wait in `awaiting_approval` until approved or rejected through the API. */
    requiresApproval: z.boolean().default(false),
    /**
     * Calls of this tool running at once across the whole fleet; `null` sets no cap (then BullMQ keeps
     * no fleet-wide count for it, which saves Redis commands on every call).
     */
    concurrency: z.number().int().min(1).max(10_000).nullable().default(50),
    retries: ToolRetries.default(ToolRetries.parse({})),
    breaker: ToolBreaker.default(ToolBreaker.parse({})),
    egress: z.array(EgressEntry).max(100).default([]),
    /** Names of the secrets this tool may read as `ctx.secrets.NAME`; set them with `PUT /v1/secrets/{name}`. */
    secrets: z.array(SecretName).max(50).default([]),
    cacheTtlMs: z.number().int().min(0).max(86_400_000).default(0),
    /**
     * Deadline of this tool's calls that set none ({@link DeadlineMs}); unset, the platform's
     * (`CALL_DEFAULT_DEADLINE_MS` of the planner). Counts the wait for an approval too.
     */
    deadlineMs: DeadlineMs.optional(),
    /**
     * Operator switch: a disabled tool is offered to no model and refused to agent runs, while its
     * registration, versions and history stay. Availability (breaker, holds) is derived on top of it.
     */
    enabled: z.boolean().default(true),
    /** Present on tools of an MCP upstream; their `code` is {@link UPSTREAM_TOOL_CODE} and never runs. */
    upstream: UpstreamToolRef.optional(),
    /**
     * Source map (v3 JSON) of bundled `code` (`toolplane deploy` sends it): a failed call's stack
     * frames are mapped through it, so they name the tool's TypeScript lines.
     */
    sourceMap: z.string().max(MAX_SOURCE_MAP_BYTES).optional(),
    /**
     * `call` (the default when absent): each call runs a fresh instance of the module, so no state
     * carries over between calls. `isolate`: an isolate keeps the module instance it made and its
     * later calls reuse it (warm caches and clients; state carries over between calls of this tool
     * version, never to another tool or tenant), as Cloudflare Workers do. An explicit opt-in.
     */
    isolation: z.enum(['call', 'isolate']).optional(),
  })
  .strict();
export type ToolSpec = z.infer<typeof ToolSpec>;
export type ToolSpecInput = z.input<typeof ToolSpec>;

/** A registered tool: its spec, frozen under a name and a version that grows with each replace. */
export type Tool = ToolSpec & {
  name: string;
  /** The tenant that registered it; only that tenant (and admins) see and call it. */
  tenant: string;
  version: number;
  createdAt: string;
  /** SHA-256 of `code`, hex: tells versions apart without their code. */
  codeHash?: string;
  /** The API key (its name) that registered this version. */
  createdBy?: string;
  /** Set on a version made by a rollback: the version whose spec it copies. */
  rolledBackFrom?: number;
};

/** One line of `GET /v1/tools/{name}/versions`. */
export type ToolVersionInfo = {
  version: number;
  createdAt: string;
  codeHash: string;
  createdBy?: string;
  rolledBackFrom?: number;
  current: boolean;
};
