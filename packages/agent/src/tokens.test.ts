import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, test } from 'vitest';
import { countMessageTokens, countTokens } from './tokens.js';

test('counts with the o200k encoding, and nothing for empty text', () => {
  expect(countTokens('hello world')).toBe(2);
  expect(countTokens('')).toBe(0);
  // 3 to prime the reply, then 3 per message plus its content.
  expect(countMessageTokens([{ role: 'user', content: 'hello world' }])).toBe(3 + 3 + 2);
});

test('the tokenizer is loaded by the first count, not by loading the package', () => {
  // A process of its own: the tables (~16 MB of heap) stay out of a planner that never counts.
  const script = `
    import { registerHooks } from 'node:module';
    let loaded = false;
    registerHooks({ resolve: (specifier, context, next) => ((loaded ||= specifier === 'gpt-tokenizer'), next(specifier, context)) });
    const { countTokens } = await import(${JSON.stringify(fileURLToPath(new URL('./tokens.ts', import.meta.url)))});
    const before = loaded;
    countTokens('hello world');
    console.log(JSON.stringify([before, loaded]));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: fileURLToPath(new URL('.', import.meta.url)) });
  expect(JSON.parse(out)).toEqual([false, true]);
});
