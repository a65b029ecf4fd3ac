/** `console.*` into the running call's logs (bounded like `ctx.log`); nothing is written outside a call. */
import { runtime } from './call.js';

const line = (prefix: string) => (...parts: unknown[]): void => {
  const call = runtime.current;
  if (call === undefined || call.done) return;
  if (prefix) call.log(prefix, ...parts);
  else call.log(...parts);
};

export function makeConsole(): Record<string, (...parts: unknown[]) => void> {
  const log = line('');
  const noop = (): void => {};
  return {
    log,
    info: log,
    debug: log,
    trace: log,
    dir: log,
    table: log,
    warn: line('[warn]'),
    error: line('[error]'),
    assert: (condition: unknown, ...parts: unknown[]) => {
      if (!condition) line('[error] Assertion failed:')(...parts);
    },
    group: log,
    groupCollapsed: log,
    groupEnd: noop,
    time: noop,
    timeEnd: noop,
    timeLog: noop,
    count: noop,
    countReset: noop,
  };
}
