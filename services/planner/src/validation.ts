import { Ajv, MissingRefError, type ErrorObject, type SchemaValidateFunction, type ValidateFunction } from 'ajv';
import addFormatsImport from 'ajv-formats';
import { RequestError, canonicalJson, type Tool } from '@toolplane/core';
import { PatternBudgetError, PatternMeter, UnsupportedPatternError, createLinearRegExpEngine } from './schema-regexp.js';

// ajv-formats ships CommonJS with a default export that NodeNext sees one level down.
const addFormats = addFormatsImport as unknown as (ajv: Ajv) => Ajv;

/** Limits of {@link ArgumentValidator}; every field has a default. */
export type ArgumentValidatorOptions = {
  /**
   * Compiled schemas kept, one per tool (its current version); the least recently used go first.
   * @default 1000
   */
  maxCompiled?: number;
  /**
   * Estimated memory of the compiled schemas kept, in bytes (see {@link estimateBytes}).
   * @default 64 MiB
   */
  maxCompiledBytes?: number;
  /**
   * RE2 instructions all the patterns of one schema may compile to (up to 800 bytes and 2 µs each,
   * measured; a 40-character UUID pattern takes 40).
   * @default 10_000
   */
  maxPatternInstructions?: number;
  /**
   * Regex work one validation may do, in string length × (pattern program size + 10): about 12 ns
   * a unit in the worst case measured, so the default stays near a quarter of a second.
   * @default 20_000_000
   */
  patternWorkBudget?: number;
};

/** The only `$schema` Ajv's default build knows. */
const DRAFT_07 = 'http://json-schema.org/draft-07/schema';

type Compiled = { version: number; fn: ValidateFunction; bytes: number };

/**
 * Validates tool schemas at registration and call arguments against them.
 *
 * Tenants' schemas are hostile (issue 13), so:
 * - each schema is compiled by an Ajv instance of its own, which holds nothing but that schema:
 *   a `$id` cannot collide with another tenant's, a `$ref` can reach only the schema's own parts (no
 *   other schema, no URL), and dropping the compiled function frees everything it used. A shared Ajv
 *   keeps every compiled schema and pattern in its scope even after `removeSchema`, and costs more
 *   per compile (0.8 ms against 0.5 ms for a small schema, measured);
 * - patterns run on a linear-time engine under a per-validation work budget (`schema-regexp.ts`);
 * - compiled schemas are kept per tool, for its current version only, bounded in count and size, and
 *   dropped by {@link forget} when a tool is replaced or deleted on any replica.
 */
export class ArgumentValidator {
  private readonly limits: Required<ArgumentValidatorOptions>;
  /** The draft-07 meta-schema, compiled with format checks; it holds nothing of any tenant. */
  private readonly checkMeta: ValidateFunction;
  private readonly meter: PatternMeter;
  /** Tool name → its compiled schema; a Map iterates in insertion order, so the first is the least recently used. */
  private readonly compiled = new Map<string, Compiled>();
  private compiledBytes = 0;
  /** Why the meta-schema check refused a pattern, for a clearer message than "must match format". */
  private patternRefusal: string | undefined;

  constructor(options: ArgumentValidatorOptions = {}) {
    this.limits = {
      maxCompiled: options.maxCompiled ?? 1000,
      maxCompiledBytes: options.maxCompiledBytes ?? 64 * 1024 * 1024,
      maxPatternInstructions: options.maxPatternInstructions ?? 10_000,
      patternWorkBudget: options.patternWorkBudget ?? 20_000_000,
    };
    this.meter = new PatternMeter(this.limits.patternWorkBudget);
    // Ajv compiles its own meta-schema without format checks, so a pattern would only be looked at
    // where Ajv compiles it. Compiled as an ordinary schema, draft-07 marks every pattern as
    // `format: regex`, also those Ajv never compiles (in unreferenced definitions, or with an
    // always-true subschema): all must run on the linear engine.
    const draft07 = new Ajv({ logger: false }).getSchema(DRAFT_07)!.schema as Record<string, unknown>;
    const metaAjv = new Ajv({ strict: false, logger: false, meta: false, validateSchema: false });
    addFormats(metaAjv);
    useLinearUniqueItems(metaAjv);
    metaAjv.addFormat('regex', {
      type: 'string',
      validate: (pattern: string) => {
        try {
          createLinearRegExpEngine({ maxInstructions: this.limits.maxPatternInstructions, meter: this.meter })(pattern, 'u');
          return true;
        } catch (err: unknown) {
          this.patternRefusal ??= (err as Error).message;
          return false;
        }
      },
    });
    this.checkMeta = metaAjv.compile(draft07);
  }

  /** Throws `INVALID_TOOL` unless `schema` is a valid JSON Schema for an object of arguments that this validator can run. */
  checkSchema(schema: Record<string, unknown>): void {
    if (schema.type !== 'object') {
      throw new RequestError('INVALID_TOOL', 'parameters must be a JSON Schema with "type": "object"');
    }
    if (schema.$schema !== undefined && schema.$schema !== DRAFT_07 && schema.$schema !== `${DRAFT_07}#`) {
      throw new RequestError('INVALID_TOOL', `parameters.$schema must be ${DRAFT_07}# (JSON Schema draft-07) or absent`);
    }
    this.patternRefusal = undefined;
    if (!this.checkMeta(schema)) {
      if (this.patternRefusal) throw patternRefused(this.patternRefusal);
      const errors = (this.checkMeta.errors ?? []).map((e) => `parameters${e.instancePath} ${e.message ?? 'is invalid'}`);
      throw new RequestError('INVALID_TOOL', `parameters is not a valid JSON Schema: ${errors.join(', ')}`);
    }
    this.compile(schema);
  }

  /** Throws `INVALID_ARGUMENTS` with Ajv's errors when `args` break the tool's schema. */
  validate(tool: Tool, args: unknown): void {
    const fn = this.compiledFor(tool);
    let valid: boolean;
    try {
      valid = this.meter.run(() => fn(args) as boolean);
    } catch (err: unknown) {
      if (!(err instanceof PatternBudgetError)) throw err;
      throw new RequestError('INVALID_ARGUMENTS', `${err.message} of tool '${tool.name}'`, undefined, { cause: err });
    }
    if (!valid) {
      throw new RequestError('INVALID_ARGUMENTS', `arguments do not match the schema of tool '${tool.name}'`, {
        errors: (fn.errors ?? []).map((e: ErrorObject) => ({
          path: e.instancePath || '/',
          message: e.message ?? 'invalid',
          keyword: e.keyword,
          params: e.params,
        })),
      });
    }
  }

  /** Drops the compiled schema of a tool that was replaced or deleted (here or on another replica). */
  forget(name: string): void {
    const entry = this.compiled.get(name);
    if (!entry) return;
    this.compiled.delete(name);
    this.compiledBytes -= entry.bytes;
  }

  /** What is kept: for tests and diagnostics. */
  stats(): { compiled: number; bytes: number } {
    return { compiled: this.compiled.size, bytes: this.compiledBytes };
  }

  private compiledFor(tool: Tool): ValidateFunction {
    const entry = this.compiled.get(tool.name);
    if (entry?.version === tool.version) {
      // Most recently used moves to the end.
      this.compiled.delete(tool.name);
      this.compiled.set(tool.name, entry);
      return entry.fn;
    }
    // Another version (the tool was replaced, or a request still holds the old one): one version per tool is kept.
    this.forget(tool.name);
    let compiled: { fn: ValidateFunction; bytes: number };
    try {
      compiled = this.compile(tool.parameters);
    } catch (err: unknown) {
      // A tool registered before a rule of `compile` existed (a backreference, say) can no longer be called.
      const why = err instanceof Error ? err.message : String(err);
      throw new RequestError('INVALID_TOOL', `tool '${tool.name}' must be registered again: ${why}`, undefined, { cause: err });
    }
    this.compiled.set(tool.name, { version: tool.version, ...compiled });
    this.compiledBytes += compiled.bytes;
    for (const [name] of this.compiled) {
      if (this.compiled.size <= this.limits.maxCompiled && this.compiledBytes <= this.limits.maxCompiledBytes) break;
      if (name !== tool.name) this.forget(name);
    }
    return compiled.fn;
  }

  /** Compiles `schema` in an Ajv of its own; throws `INVALID_TOOL` with the reason. */
  private compile(schema: Record<string, unknown>): { fn: ValidateFunction; bytes: number } {
    const regExp = createLinearRegExpEngine({ maxInstructions: this.limits.maxPatternInstructions, meter: this.meter });
    const ajv = new Ajv({
      allErrors: true,
      strict: false,
      useDefaults: false,
      logger: false,
      // Checked against draft-07 at registration; without the meta-schema here a `$ref` to it fails like any other remote one.
      validateSchema: false,
      meta: false,
      // Ajv's optimizer passes made compiling 3 times slower (1.9 ms against 0.6 ms for a small
      // schema, seconds for large ones) for 20% faster validation (0.30 µs against 0.36 µs).
      code: { regExp, optimize: false },
    });
    addFormats(ajv);
    ajv.addFormat('url', { type: 'string', validate: isUrl });
    useLinearUniqueItems(ajv);
    let fn: ValidateFunction;
    try {
      fn = ajv.compile(schema);
    } catch (err: unknown) {
      if (err instanceof UnsupportedPatternError) throw patternRefused(err.message);
      if (err instanceof MissingRefError) {
        throw new RequestError(
          'INVALID_TOOL',
          `parameters may only $ref parts of itself (no other schema, no URL): cannot resolve '${err.missingRef}'`,
        );
      }
      throw new RequestError('INVALID_TOOL', `parameters is not a valid JSON Schema: ${(err as Error).message}`);
    }
    if ((fn as { $async?: boolean }).$async) throw new RequestError('INVALID_TOOL', 'parameters must not be an asynchronous schema ($async)');
    return { fn, bytes: estimateBytes(schema, fn, regExp.instructions()) };
  }
}

function patternRefused(reason: string): RequestError {
  return new RequestError('INVALID_TOOL', `parameters has a pattern the planner cannot run: ${reason}`);
}

/**
 * Rough memory of one compiled schema, from measurements of small, wide, deep and enum-heavy
 * schemas (it errs high): its Ajv instance, the generated code (the function's source text), the
 * schema itself, which the code refers to, and the patterns' RE2 programs.
 */
export function estimateBytes(schema: unknown, fn: ValidateFunction, patternInstructions: number): number {
  return 16 * 1024 + 3 * fn.toString().length + 4 * JSON.stringify(schema).length + 800 * patternInstructions;
}

/**
 * `uniqueItems` in linear time. Ajv's compares every pair of items unless the schema types them as
 * scalars: 20,000 small objects (a 160 KB body) took 6.4 s. Equal JSON values have equal canonical
 * text (keys sorted), so a map of the texts finds the same duplicates, with Ajv's error shape.
 */
function useLinearUniqueItems(ajv: Ajv): void {
  const validate: SchemaValidateFunction = (unique: boolean, data: unknown[]) => {
    if (!unique) return true;
    const seen = new Map<string, number>();
    for (let i = 0; i < data.length; i++) {
      const text = canonicalJson(data[i]);
      const j = seen.get(text);
      if (j !== undefined) {
        validate.errors = [
          { keyword: 'uniqueItems', message: `must NOT have duplicate items (items ## ${j} and ${i} are identical)`, params: { i, j } },
        ];
        return false;
      }
      seen.set(text, i);
    }
    return true;
  };
  ajv.removeKeyword('uniqueItems');
  ajv.addKeyword({ keyword: 'uniqueItems', type: 'array', schemaType: 'boolean', errors: true, validate });
}

/**
 * The `url` format. ajv-formats' regex backtracks quadratically (a 32 KiB string took 1.5 s, and a
 * 1 MiB body holds many), so URLs are checked with the WHATWG parser, which is linear: an http,
 * https or ftp URL with a host and no whitespace or control characters. Unlike the regex, it also
 * accepts hosts without a dot and private addresses.
 */
export function isUrl(s: string): boolean {
  if (/[\s\u0000-\u001f\u007f]/u.test(s)) return false;
  const url = URL.parse(s);
  return url !== null && ['http:', 'https:', 'ftp:'].includes(url.protocol) && url.hostname !== '';
}
