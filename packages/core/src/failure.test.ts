import { describe, expect, test } from 'vitest';
import { CallErrorCode, ToolExecError, isToolExecError, toToolExecError } from './errors.js';
import { MAX_FAILURE_MESSAGE_CHARS, RETRYABLE_CODES, isCallErrorCode, toPublicFailure, type PublicFailure } from './failure.js';

/** Every public call code of DESIGN.md, with whether another attempt may help. */
const EXPECTED: ReadonlyArray<[CallErrorCode, boolean]> = [
  ['TIMEOUT', true],
  ['OUT_OF_MEMORY', false],
  ['RESULT_TOO_LARGE', false],
  ['TOOL_ERROR', true],
  ['SANDBOX_ERROR', true],
  ['EGRESS_DENIED', false],
  ['CANCELLED', false],
  ['REJECTED', false],
  ['DEADLINE_EXCEEDED', false],
  ['POISONED', false],
  ['QUOTA_EXCEEDED', false],
];

describe('RETRYABLE_CODES', () => {
  test('covers every call code, and only those', () => {
    expect(Object.keys(RETRYABLE_CODES).sort()).toEqual([...CallErrorCode.options].sort());
    expect(EXPECTED.map(([code]) => code).sort()).toEqual([...CallErrorCode.options].sort());
  });

  test('cannot be changed at run time', () => {
    expect(() => {
      (RETRYABLE_CODES as Record<string, boolean>).SANDBOX_ERROR = false;
    }).toThrow(TypeError);
    expect(RETRYABLE_CODES.SANDBOX_ERROR).toBe(true);
  });

  test('is not fooled by inherited names', () => {
    expect(isCallErrorCode('toString')).toBe(false);
    expect(isCallErrorCode('__proto__')).toBe(false);
    expect(isCallErrorCode('timeout')).toBe(false);
    expect(isCallErrorCode(42)).toBe(false);
  });
});

describe('toPublicFailure', () => {
  describe.each(EXPECTED)('%s', (code, retryable) => {
    test(`a ToolExecError keeps its code and message, retryable ${retryable}`, () => {
      const err = new ToolExecError(code, `${code} happened`);
      expect(toPublicFailure(err)).toEqual({ code, message: `${code} happened`, retryable });
      expect(err.retryable).toBe(retryable);
      expect(err.toJSON()).toEqual({ code, message: `${code} happened`, retryable });
    });

    test('the same failure as data from another process maps the same way', () => {
      expect(toPublicFailure({ code, message: 'from a sandbox host' })).toEqual({ code, message: 'from a sandbox host', retryable });
    });

    test('a retryability the data claims is ignored: the code decides', () => {
      expect(toPublicFailure({ code, message: 'm', retryable: !retryable }).retryable).toBe(retryable);
    });
  });

  // [what was thrown, the failure it gives]
  const cases: ReadonlyArray<[string, () => unknown, PublicFailure]> = [
    ['a plain Error', () => new Error('redis went away'), { code: 'SANDBOX_ERROR', message: 'redis went away', retryable: true }],
    ['an Error without a message', () => new Error(), { code: 'SANDBOX_ERROR', message: 'unknown failure', retryable: true }],
    ['a TypeError', () => new TypeError('x is not a function'), { code: 'SANDBOX_ERROR', message: 'x is not a function', retryable: true }],
    ['a string', () => 'boom', { code: 'SANDBOX_ERROR', message: 'boom', retryable: true }],
    ['an empty string', () => '', { code: 'SANDBOX_ERROR', message: 'unknown failure', retryable: true }],
    ['a number', () => 42, { code: 'SANDBOX_ERROR', message: '42', retryable: true }],
    ['undefined', () => undefined, { code: 'SANDBOX_ERROR', message: 'unknown failure', retryable: true }],
    ['null', () => null, { code: 'SANDBOX_ERROR', message: 'unknown failure', retryable: true }],
    ['a symbol', () => Symbol('s'), { code: 'SANDBOX_ERROR', message: 'unknown failure', retryable: true }],
    ['a plain object', () => ({ reason: 'x' }), { code: 'SANDBOX_ERROR', message: 'unknown failure', retryable: true }],
    ['an object whose message is not a string', () => ({ message: { nested: true } }), { code: 'SANDBOX_ERROR', message: 'unknown failure', retryable: true }],
    ['an error with a Node code that is no call code', () => Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }), { code: 'SANDBOX_ERROR', message: 'connect ECONNREFUSED', retryable: true }],
    ['an unknown code as data', () => ({ code: 'NOT_A_CODE', message: 'forged' }), { code: 'SANDBOX_ERROR', message: 'forged', retryable: true }],
    ['an inherited name as a code', () => ({ code: 'constructor', message: 'forged' }), { code: 'SANDBOX_ERROR', message: 'forged', retryable: true }],
    ['a coded failure without a message', () => ({ code: 'TIMEOUT' }), { code: 'TIMEOUT', message: 'TIMEOUT', retryable: true }],
    [
      'a wrapper whose cause is a ToolExecError',
      () => new Error('attempt failed', { cause: new ToolExecError('OUT_OF_MEMORY', 'tool exceeded its memory limit') }),
      { code: 'OUT_OF_MEMORY', message: 'tool exceeded its memory limit', retryable: false },
    ],
    [
      'a cause two wrappers deep',
      () => new Error('outer', { cause: new Error('middle', { cause: { code: 'EGRESS_DENIED', message: 'host not allowed' } }) }),
      { code: 'EGRESS_DENIED', message: 'host not allowed', retryable: false },
    ],
    [
      'a ToolExecError with its own cause keeps its own code',
      () => new ToolExecError('DEADLINE_EXCEEDED', 'late', { cause: new ToolExecError('TIMEOUT', 'slow') }),
      { code: 'DEADLINE_EXCEEDED', message: 'late', retryable: false },
    ],
    ['a cause that is no failure', () => new Error('outer', { cause: 'just text' }), { code: 'SANDBOX_ERROR', message: 'outer', retryable: true }],
    [
      'a cycle of causes',
      () => {
        const a = new Error('a');
        const b = new Error('b', { cause: a });
        (a as { cause?: unknown }).cause = b;
        return a;
      },
      { code: 'SANDBOX_ERROR', message: 'a', retryable: true },
    ],
    [
      'getters that throw',
      () => ({
        get code(): string {
          throw new Error('no code for you');
        },
        get message(): string {
          throw new Error('no message either');
        },
        get cause(): unknown {
          throw new Error('nor a cause');
        },
      }),
      { code: 'SANDBOX_ERROR', message: 'unknown failure', retryable: true },
    ],
    [
      'a getter that throws for the code only',
      () => ({
        get code(): string {
          throw new Error('no');
        },
        message: 'still readable',
      }),
      { code: 'SANDBOX_ERROR', message: 'still readable', retryable: true },
    ],
    [
      'a proxy whose every trap throws',
      () =>
        new Proxy(
          {},
          {
            get: () => {
              throw new Error('get');
            },
            getPrototypeOf: () => {
              throw new Error('getPrototypeOf');
            },
            has: () => {
              throw new Error('has');
            },
          },
        ),
      { code: 'SANDBOX_ERROR', message: 'unknown failure', retryable: true },
    ],
    [
      'a code whose toString is hostile',
      () => ({
        code: {
          toString: () => {
            throw new Error('x');
          },
        },
        message: 'm',
      }),
      { code: 'SANDBOX_ERROR', message: 'm', retryable: true },
    ],
  ];

  test.each(cases)('%s', (_name, make, expected) => {
    expect(toPublicFailure(make())).toEqual(expected);
  });

  test('a huge message is cut', () => {
    const failure = toPublicFailure('x'.repeat(MAX_FAILURE_MESSAGE_CHARS * 3));
    expect(failure.message).toHaveLength(MAX_FAILURE_MESSAGE_CHARS);
  });
});

describe('toToolExecError', () => {
  test('gives back a ToolExecError as it is', () => {
    const err = new ToolExecError('CANCELLED', 'call was cancelled');
    expect(toToolExecError(err)).toBe(err);
  });

  test('wraps anything else with its public code, keeping what was thrown as the cause', () => {
    const thrown = { code: 'RESULT_TOO_LARGE', message: 'too big' };
    const err = toToolExecError(thrown);
    expect(isToolExecError(err)).toBe(true);
    expect({ code: err.code, message: err.message, retryable: err.retryable, cause: err.cause }).toEqual({
      code: 'RESULT_TOO_LARGE',
      message: 'too big',
      retryable: false,
      cause: thrown,
    });
    expect(toToolExecError('boom').code).toBe('SANDBOX_ERROR');
  });

  test('a proxy that throws on every trap is no ToolExecError and still maps', () => {
    const hostile = new Proxy(
      {},
      {
        getPrototypeOf: () => {
          throw new Error('getPrototypeOf');
        },
      },
    );
    expect(isToolExecError(hostile)).toBe(false);
    expect(toToolExecError(hostile).code).toBe('SANDBOX_ERROR');
  });
});
