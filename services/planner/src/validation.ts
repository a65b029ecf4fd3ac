import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsImport from 'ajv-formats';
import { RequestError, type Tool } from '@toolplane/core';

// ajv-formats ships CommonJS with a default export that NodeNext sees one level down.
const addFormats = addFormatsImport as unknown as (ajv: Ajv) => Ajv;

/** Validates tool schemas at registration and call arguments against them, with compiled validators cached per tool version. */
export class ArgumentValidator {
  private readonly ajv: Ajv;
  private readonly cache = new Map<string, ValidateFunction>();

  constructor() {
    this.ajv = new Ajv({ allErrors: true, strict: false, useDefaults: false });
    addFormats(this.ajv);
  }

  /** Throws `INVALID_TOOL` unless `schema` is a valid JSON Schema for an object of arguments. */
  checkSchema(schema: Record<string, unknown>): void {
    if (schema.type !== 'object') {
      throw new RequestError('INVALID_TOOL', 'parameters must be a JSON Schema with "type": "object"');
    }
    try {
      this.ajv.compile(schema);
    } catch (err: unknown) {
      throw new RequestError('INVALID_TOOL', `parameters is not a valid JSON Schema: ${(err as Error).message}`);
    }
  }

  /** Throws `INVALID_ARGUMENTS` with Ajv's errors when `args` break the tool's schema. */
  validate(tool: Tool, args: unknown): void {
    const key = `${tool.name}@${tool.version}`;
    let fn = this.cache.get(key);
    if (!fn) {
      fn = this.ajv.compile(tool.parameters);
      this.cache.set(key, fn);
      if (this.cache.size > 10_000) this.cache.delete(this.cache.keys().next().value!);
    }
    if (!fn(args)) {
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
}
