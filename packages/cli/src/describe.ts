import { createHash } from 'node:crypto';
import { ToolName, ToolSpec, type ToolSpecInput } from '@toolplane/core';
import { Sandbox } from '@toolplane/sandbox';
import { BundleError, type ToolBundle } from './bundle.js';

/** A bundled tool with its definition read back: what `PUT /v1/tools/{name}` gets. */
export type BuiltTool = {
  name: string;
  file: string;
  bytes: number;
  /** The registration body; its `code` ends with a fingerprint of the whole body (see {@link specFingerprint}). */
  spec: ToolSpecInput & { code: string; sourceMap: string };
};

/** Reading a definition runs the tool's top-level code, in an isolate like a call's, never on the host. */
const DESCRIBE_LIMITS = { timeoutMs: 2_000, memoryMb: 128, maxResultBytes: 4 * 1024 * 1024 };

let shared: Sandbox | undefined;
/** One sandbox per CLI process, made on first use. */
export function localSandbox(): Sandbox {
  return (shared ??= new Sandbox({ maxIsolatesPerTool: 2, idleTtlMs: 5_000 }));
}

/** Disposes the sandbox of {@link localSandbox}, so the process can exit. */
export async function closeLocalSandbox(): Promise<void> {
  const s = shared;
  shared = undefined;
  await s?.close();
}

/**
 * Evaluates the bundle's definition (name, description, parameters as JSON Schema, limits, egress,
 * secrets, …) inside an isolate and turns it into a registration body. The tool's top-level code
 * runs there with the sandbox's globals, so a module that needs Node fails here, at build time.
 */
export async function describeTool(bundle: ToolBundle): Promise<BuiltTool> {
  let value: unknown;
  try {
    ({ value } = await localSandbox().run(
      { key: `describe:${createHash('sha256').update(bundle.describeCode).digest('hex').slice(0, 16)}`, code: bundle.describeCode, ...DESCRIBE_LIMITS },
      null,
    ));
  } catch (err: unknown) {
    throw new BundleError(bundle.file, `${bundle.file}: loading the tool in the sandbox failed: ${err instanceof Error ? err.message : String(err)}`);
  }
  const def = value as Record<string, unknown> & { notATool?: string };
  if (def.notATool !== undefined) {
    throw new BundleError(bundle.file, `${bundle.file}: the default export must be \`defineTool({ … })\` from '@toolplane/sdk' (got ${def.notATool})`);
  }
  const name = ToolName.safeParse(def.name);
  if (!name.success) throw new BundleError(bundle.file, `${bundle.file}: name must be 1-64 letters, digits, _ or - (got ${JSON.stringify(def.name)})`);
  const body: Record<string, unknown> = { description: def.description, parameters: def.parameters };
  for (const key of SPEC_KEYS) if (def[key] !== undefined) body[key] = def[key];
  body.code = bundle.code;
  body.sourceMap = bundle.sourceMap;
  const checked = ToolSpec.safeParse(body);
  if (!checked.success) {
    const issues = checked.error.issues.map((i) => `${i.path.join('.') || '(definition)'}: ${i.message}`).join('; ');
    throw new BundleError(bundle.file, `${bundle.file}: the definition of '${name.data}' is invalid: ${issues}`);
  }
  const spec = body as BuiltTool['spec'];
  spec.code = `${bundle.code}\n${FINGERPRINT_PREFIX}${specFingerprint(spec)}\n`;
  return { name: name.data, file: bundle.file, bytes: Buffer.byteLength(spec.code), spec };
}

/** Fields of a definition that go into the registration as they are. */
const SPEC_KEYS = ['limits', 'egress', 'secrets', 'cacheTtlMs', 'requiresApproval', 'rateLimit', 'concurrency', 'retries', 'deadlineMs', 'isolation'] as const;

/**
 * The registry shows a tool's code but not every field (`requiresApproval`, the source map), so the
 * code carries a hash of the whole body in a trailing comment: equal code means nothing changed.
 * At the end, so line numbers (and the source map) stay as they are.
 */
const FINGERPRINT_PREFIX = '// toolplane-spec: ';

export function specFingerprint(spec: Record<string, unknown>): string {
  const { code, ...rest } = spec;
  return createHash('sha256')
    .update(JSON.stringify([code, canonical(rest)]))
    .digest('hex')
    .slice(0, 32);
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}
