import { z } from 'zod';
import { SecretName, ToolBreaker, ToolRateLimit, ToolRetries } from './tool.js';

/** An upstream's name: the prefix of its tools' names (`name.tool`), so no dots. */
export const UpstreamName = z.string().regex(/^[a-zA-Z0-9_-]{1,32}$/, 'letters, digits, _ and - only, at most 32');
export type UpstreamName = z.infer<typeof UpstreamName>;

/**
 * The `code` stored with every upstream tool. Upstream tools run through an MCP client, never in
 * the sandbox; a fixed value keeps `code` required for every other tool.
 */
export const UPSTREAM_TOOL_CODE = '// MCP upstream tool: called through an MCP client, never run in the sandbox';

/** Headers the transport sets itself; letting a user set them would break or confuse the protocol. */
const RESERVED_HEADERS = new Set([
  'accept',
  'connection',
  'content-length',
  'content-type',
  'host',
  'keep-alive',
  'last-event-id',
  'mcp-protocol-version',
  'mcp-session-id',
  'transfer-encoding',
  'upgrade',
]);

/** `secret:NAME` reads a Toolplane secret when connecting; anything else is sent as it is. */
const SECRET_REF = /^secret:(.*)$/s;

const HeaderName = z
  .string()
  .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$/, 'not a valid HTTP header name')
  .refine((n) => !RESERVED_HEADERS.has(n.toLowerCase()), 'this header is set by the MCP transport');

const HeaderValue = z
  .string()
  .max(8192)
  // CR and LF would split the header; fetch refuses them anyway, but this says so at registration.
  .regex(/^[\t\x20-\x7e\x80-\uffff]*$/, 'header values cannot contain control characters')
  .refine((v) => {
    const m = SECRET_REF.exec(v);
    return !m || SecretName.safeParse(m[1]).success;
  }, 'secret:NAME needs a valid secret name');

/** The body of `PUT /v1/upstreams/{name}`: an MCP server reached over Streamable HTTP. */
export const UpstreamSpec = z
  .object({
    url: z
      .url({ protocol: /^https?$/, error: 'must be an http or https URL' })
      .max(2048)
      // Credentials in the URL would be returned by GET /v1/upstreams: they belong in secret headers.
      .refine((u) => {
        const parsed = new URL(u);
        return parsed.username === '' && parsed.password === '';
      }, 'put credentials in headers ("secret:NAME"), not in the URL'),
    headers: z
      .record(HeaderName, HeaderValue)
      .refine((h) => Object.keys(h).length <= 32, 'at most 32 headers')
      .default({}),
    /** Wall time of one call of any of its tools. */
    timeoutMs: z.number().int().min(10).max(300_000).default(30_000),
    /** Applied to each of its tools: limits, retries and breakers are per tool, as for sandboxed ones. */
    rateLimit: ToolRateLimit.optional(),
    breaker: ToolBreaker.optional(),
    retries: ToolRetries.optional(),
    concurrency: z.number().int().min(1).max(10_000).optional(),
  })
  .strict();
export type UpstreamSpec = z.infer<typeof UpstreamSpec>;

/** How one header's value is obtained. */
export type UpstreamHeaderSource = { kind: 'secret'; secret: string } | { kind: 'literal'; value: string };

/** Splits a header value into a secret reference or a literal. */
export function parseHeaderSource(value: string): UpstreamHeaderSource {
  const m = SECRET_REF.exec(value);
  return m ? { kind: 'secret', secret: m[1]! } : { kind: 'literal', value };
}

/** A registered upstream as stored. */
export type Upstream = UpstreamSpec & {
  name: string;
  /** The tenant whose admin registered it: its tools and the secrets of its headers are that tenant's. */
  tenant: string;
  createdAt: string;
  updatedAt: string;
};
