import { describe, expect, test } from 'vitest';
import { ToolSpec, isRequestError, type Tool } from '@toolplane/core';
import { ArgumentValidator, isUrl } from './validation.js';

let versions = 0;
function tool(name: string, parameters: Record<string, unknown>, tenant = 't1', version = ++versions): Tool {
  const spec = ToolSpec.parse({ description: 'd', parameters, code: 'export default () => 1' });
  return { ...spec, name, tenant, version, createdAt: new Date(0).toISOString() };
}

/** The request error `fn` throws, as `[code, message]`. */
function errorOf(fn: () => void): [string, string] {
  try {
    fn();
  } catch (err: unknown) {
    if (isRequestError(err)) return [err.code, err.message];
    throw err;
  }
  throw new Error('nothing was thrown');
}

const stringWith = (pattern: string) => ({ type: 'object', properties: { s: { type: 'string', pattern } }, required: ['s'] });

describe('schema patterns run in linear time', () => {
  test("validating 'a'.repeat(50) + '!' against ^(a+)+$ takes well under 100 ms", () => {
    const v = new ArgumentValidator();
    const t = tool('redos', stringWith('^(a+)+$'));
    v.checkSchema(t.parameters);
    v.validate(t, { s: 'aaa' });
    const started = performance.now();
    expect(errorOf(() => v.validate(t, { s: `${'a'.repeat(50)}!` }))[0]).toBe('INVALID_ARGUMENTS');
    expect(performance.now() - started).toBeLessThan(100);
  });

  test('patternProperties, additionalProperties and propertyNames use the same engine', () => {
    const v = new ArgumentValidator();
    const key = `${'a'.repeat(50)}!`;
    const schemas = [
      { type: 'object', patternProperties: { '^(a+)+$': { type: 'number' } } },
      { type: 'object', patternProperties: { '^(a+)+$': true }, additionalProperties: false },
      { type: 'object', propertyNames: { pattern: '^(a+)+$' } },
    ];
    for (const parameters of schemas) {
      const t = tool('keys', parameters);
      v.checkSchema(parameters);
      const started = performance.now();
      try {
        v.validate(t, { [key]: 'x', aaa: 1 });
      } catch {
        // valid or not depends on the keyword; only the time matters here
      }
      expect(performance.now() - started, JSON.stringify(parameters)).toBeLessThan(100);
    }
    const names = tool('names', schemas[2]!);
    expect(errorOf(() => v.validate(names, { [key]: 1 }))[0]).toBe('INVALID_ARGUMENTS');
    expect(() => v.validate(names, { aaa: 1 })).not.toThrow();
  });

  test('a registration with a backreference or lookaround pattern is refused with INVALID_TOOL', () => {
    const v = new ArgumentValidator();
    const [code, message] = errorOf(() => v.checkSchema(stringWith('^(a+)\\1$')));
    expect(code).toBe('INVALID_TOOL');
    expect(message).toMatch(/pattern "\^\(a\+\)\\\\1\$" is not supported: backreferences cannot run in linear time/);
    expect(errorOf(() => v.checkSchema(stringWith('^(?=a)')))).toEqual(['INVALID_TOOL', expect.stringMatching(/lookahead/)]);
    const inPatternProperties = { type: 'object', patternProperties: { '(?<=x)y': {} } };
    expect(errorOf(() => v.checkSchema(inPatternProperties))).toEqual(['INVALID_TOOL', expect.stringMatching(/lookahead and lookbehind/)]);
    const nested = { type: 'object', properties: { a: { type: 'array', items: stringWith('(a)\\1') } } };
    expect(errorOf(() => v.checkSchema(nested))[0]).toBe('INVALID_TOOL');
    const unused = { type: 'object', definitions: { never: { type: 'string', pattern: '(a)\\1' } } };
    expect(errorOf(() => v.checkSchema(unused))).toEqual(['INVALID_TOOL', expect.stringMatching(/backreferences/)]);
    const viaRef = { type: 'object', properties: { a: { $ref: '#/definitions/bad' } }, definitions: { bad: { pattern: '(a)\\1' } } };
    expect(errorOf(() => v.checkSchema(viaRef))[0]).toBe('INVALID_TOOL');
  });

  test('patterns keep JSON Schema semantics: unanchored search, unicode', () => {
    const v = new ArgumentValidator();
    const t = tool('sem', { type: 'object', properties: { a: { type: 'string', pattern: 'b+' }, e: { type: 'string', pattern: '^.$' } } });
    expect(() => v.validate(t, { a: 'abba', e: '😀' })).not.toThrow();
    expect(errorOf(() => v.validate(t, { a: 'aaa' }))[0]).toBe('INVALID_ARGUMENTS');
    expect(errorOf(() => v.validate(t, { e: 'ab' }))[0]).toBe('INVALID_ARGUMENTS');
  });

  test('arguments too large for the regex work budget are refused quickly, and the next call is checked normally', () => {
    const v = new ArgumentValidator({ patternWorkBudget: 1_000_000 });
    const t = tool('budget', stringWith('^(a+)+$'));
    const started = performance.now();
    const [code, message] = errorOf(() => v.validate(t, { s: 'a'.repeat(500_000) }));
    expect([code, message]).toEqual(['INVALID_ARGUMENTS', "the arguments are too large to check against the patterns of this schema of tool 'budget'"]);
    expect(performance.now() - started).toBeLessThan(100);
    expect(() => v.validate(t, { s: 'a'.repeat(1000) })).not.toThrow();
  });

  test('the url format is linear too', () => {
    const v = new ArgumentValidator();
    const t = tool('url', { type: 'object', properties: { u: { type: 'string', format: 'url' } } });
    expect(() => v.validate(t, { u: 'https://example.com/a?b=c#d' })).not.toThrow();
    expect(errorOf(() => v.validate(t, { u: 'not a url' }))[0]).toBe('INVALID_ARGUMENTS');
    const started = performance.now();
    // ajv-formats' regex took 1.5 s on 32 KiB of this shape.
    expect(errorOf(() => v.validate(t, { u: `http://${':'.repeat(200_000)}\n` }))[0]).toBe('INVALID_ARGUMENTS');
    expect(performance.now() - started).toBeLessThan(100);
    expect([isUrl('ftp://files.example.com/x'), isUrl('mailto:a@b.c'), isUrl('http://exa mple.com'), isUrl('http://'), isUrl('https://a.b/\u0000')]).toEqual([true, false, false, false, false]);
  });
});

describe('other keywords stay fast on hostile arguments', () => {
  test('uniqueItems on 20,000 objects takes well under a second, with JSON Schema equality', () => {
    const v = new ArgumentValidator();
    const t = tool('unique', { type: 'object', properties: { xs: { type: 'array', uniqueItems: true } } });
    const xs = Array.from({ length: 20_000 }, (_, i) => ({ i, tags: [i % 7], nested: { s: String(i) } }));
    const started = performance.now();
    expect(() => v.validate(t, { xs })).not.toThrow();
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(() => v.validate(t, { xs: [1, '1', [1], { a: 1 }, { a: '1' }, null, 0, false] })).not.toThrow();
    for (const xs of [[{ a: 1, b: [2] }, { b: [2], a: 1 }], [0, -0], [[1, { x: null }], [1, { x: null }]]]) {
      expect(errorOf(() => v.validate(t, { xs }))[0], JSON.stringify(xs)).toBe('INVALID_ARGUMENTS');
    }
    const thrown = (() => {
      try {
        v.validate(t, { xs: ['a', 'b', 'a'] });
      } catch (err: unknown) {
        return err;
      }
      return undefined;
    })();
    expect(thrown).toMatchObject({
      details: { errors: [{ path: '/xs', keyword: 'uniqueItems', message: 'must NOT have duplicate items (items ## 0 and 2 are identical)', params: { i: 2, j: 0 } }] },
    });
    expect(() => v.validate(tool('not-unique', { type: 'object', properties: { xs: { type: 'array', uniqueItems: false } } }), { xs: [1, 1] })).not.toThrow();
  });
});

describe('schemas are checked at registration', () => {
  test('invalid schemas, unknown $schema and async schemas are refused; draft-07 is accepted', () => {
    const v = new ArgumentValidator();
    expect(errorOf(() => v.checkSchema({ type: 'string' }))[0]).toBe('INVALID_TOOL');
    const [code, message] = errorOf(() => v.checkSchema({ type: 'object', properties: { a: { type: 'nonsense' } } }));
    expect(code).toBe('INVALID_TOOL');
    expect(message).toMatch(/^parameters is not a valid JSON Schema: parameters\/properties\/a\/type must be/);
    expect(errorOf(() => v.checkSchema({ type: 'object', $schema: 'https://example.com/meta' }))).toEqual(['INVALID_TOOL', expect.stringMatching(/\$schema must be/)]);
    expect(errorOf(() => v.checkSchema({ type: 'object', properties: { a: { type: 'string', pattern: '(' } } }))).toEqual(['INVALID_TOOL', expect.stringMatching(/not a valid regular expression/)]);
    expect(errorOf(() => v.checkSchema({ type: 'object', $async: true }))).toEqual(['INVALID_TOOL', expect.stringMatching(/\$async/)]);
    expect(() => v.checkSchema({ type: 'object', $schema: 'http://json-schema.org/draft-07/schema#' })).not.toThrow();
  });

  test('a tool stored before a rule existed gets INVALID_TOOL on call, not an internal error', () => {
    const v = new ArgumentValidator();
    expect(errorOf(() => v.validate(tool('old', stringWith('(a)\\1')), { s: 'aa' }))).toEqual([
      'INVALID_TOOL',
      expect.stringMatching(/^tool 'old' must be registered again: .*backreferences/),
    ]);
  });
});

describe('$ids are scoped to one tool version', () => {
  const withId = (id: string, extra: Record<string, unknown> = {}) => ({
    $id: id,
    type: 'object',
    properties: { n: { type: 'number' } },
    ...extra,
  });

  test('two tenants register schemas with the same $id; both work', () => {
    const v = new ArgumentValidator();
    const a = tool('a-tool', withId('https://schemas.example/args', { required: ['n'] }), 'tenant-a');
    const b = tool('b-tool', withId('https://schemas.example/args', { properties: { s: { type: 'string' } }, required: ['s'] }), 'tenant-b');
    v.checkSchema(a.parameters);
    v.checkSchema(b.parameters);
    v.checkSchema(a.parameters); // the same schema again, as a replace does
    expect(() => v.validate(a, { n: 1 })).not.toThrow();
    expect(() => v.validate(b, { s: 'x' })).not.toThrow();
    expect(errorOf(() => v.validate(a, { s: 'x' }))[0]).toBe('INVALID_ARGUMENTS');
    expect(errorOf(() => v.validate(b, { n: 1 }))[0]).toBe('INVALID_ARGUMENTS');
  });

  test("B cannot $ref A's schema, a URL, or the meta-schema; its own parts it can", () => {
    const v = new ArgumentValidator();
    const a = tool('a-tool', withId('https://tenant-a.example/secret', { definitions: { inner: { type: 'string' } } }), 'tenant-a');
    v.checkSchema(a.parameters);
    v.validate(a, { n: 1 });
    for (const ref of ['https://tenant-a.example/secret', 'https://tenant-a.example/secret#/definitions/inner', 'https://evil.example/schema.json', 'http://json-schema.org/draft-07/schema#']) {
      const [code, message] = errorOf(() => v.checkSchema({ type: 'object', properties: { x: { $ref: ref } } }));
      expect(code, ref).toBe('INVALID_TOOL');
      expect(message, ref).toMatch(/may only \$ref parts of itself .*cannot resolve/);
    }
    const own = withId('https://tenant-b.example/own', {
      properties: { x: { $ref: '#/definitions/pos' }, y: { $ref: 'https://tenant-b.example/own#/definitions/pos' }, z: { $ref: 'item' } },
      definitions: { pos: { type: 'number', minimum: 0 }, item: { $id: 'item', type: 'string' } },
    });
    v.checkSchema(own);
    const b = tool('b-tool', own, 'tenant-b');
    expect(() => v.validate(b, { x: 1, y: 2, z: 'k' })).not.toThrow();
    expect(errorOf(() => v.validate(b, { x: -1 }))[0]).toBe('INVALID_ARGUMENTS');
    expect(errorOf(() => v.validate(b, { z: 1 }))[0]).toBe('INVALID_ARGUMENTS');
  });
});

describe('compiled schemas are bounded and dropped', () => {
  test('one compiled version per tool: a new version replaces the old one', () => {
    const v = new ArgumentValidator();
    v.validate(tool('t', stringWith('a'), 't1', 1), { s: 'a' });
    v.validate(tool('t', stringWith('b'), 't1', 2), { s: 'b' });
    expect(v.stats().compiled).toBe(1);
    expect(errorOf(() => v.validate(tool('t', stringWith('b'), 't1', 2), { s: 'a' }))[0]).toBe('INVALID_ARGUMENTS');
  });

  test('forget drops a tool; the next call compiles its schema again', () => {
    const v = new ArgumentValidator();
    const t = tool('t', stringWith('a'));
    v.validate(t, { s: 'a' });
    v.validate(tool('u', stringWith('a')), { s: 'a' });
    expect(v.stats().compiled).toBe(2);
    v.forget('t');
    v.forget('never-seen');
    expect(v.stats().compiled).toBe(1);
    v.forget('u');
    expect(v.stats()).toEqual({ compiled: 0, bytes: 0 });
    v.validate(t, { s: 'a' });
    expect(v.stats().compiled).toBe(1);
  });

  test('at most maxCompiled are kept, least recently used dropped first', () => {
    const v = new ArgumentValidator({ maxCompiled: 3 });
    const tools = ['a', 'b', 'c', 'd'].map((n) => tool(n, stringWith(n)));
    for (const t of tools.slice(0, 3)) v.validate(t, { s: t.name });
    v.validate(tools[0]!, { s: 'a' }); // a is now the most recently used
    v.validate(tools[3]!, { s: 'd' }); // b goes
    expect(v.stats().compiled).toBe(3);
    const before = v.stats().bytes;
    v.forget('b');
    expect(v.stats().bytes).toBe(before); // b was no longer there
    v.forget('a');
    expect(v.stats().bytes).toBeLessThan(before);
  });

  test('the estimated size of what is kept stays under maxCompiledBytes', () => {
    const v = new ArgumentValidator({ maxCompiledBytes: 200 * 1024 });
    for (let i = 0; i < 30; i++) {
      const properties = Object.fromEntries(Array.from({ length: 10 }, (_, k) => [`p${k}`, { type: 'string', pattern: `^x${i}[a-z]{${k + 1}}$` }]));
      v.validate(tool(`t${i}`, { type: 'object', properties }), {});
    }
    expect(v.stats().bytes).toBeLessThanOrEqual(200 * 1024);
    expect(v.stats().compiled).toBeGreaterThan(0);
    expect(v.stats().compiled).toBeLessThan(30);
  });
});
