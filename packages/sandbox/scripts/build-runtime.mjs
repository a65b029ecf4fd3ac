// Bundles the in-isolate runtime (src/isolate/runner.ts and src/isolate/web/*) into one script,
// dist/isolate-runtime.js, whose value is the runtime's `boot` function. Run after `tsc`.
import { build } from 'esbuild';
import { writeFile } from 'node:fs/promises';

const result = await build({
  entryPoints: [new URL('../src/isolate/runner.ts', import.meta.url).pathname],
  bundle: true,
  format: 'cjs',
  platform: 'neutral',
  target: 'es2022',
  write: false,
  // Minified for a smaller parse per isolate. Not `keepNames`: it wraps every named closure in an
  // `Object.defineProperty` call, which a host profile showed at ~10 % of its CPU (closures made per
  // call). The runner names the globals it installs instead, so `URL.name === 'URL'` still holds.
  minify: true,
  legalComments: 'none',
  logLevel: 'warning',
});
const cjs = result.outputFiles[0].text;
// A script whose completion value is `boot`; no global is declared (everything stays in the closure).
const script = `(function () { 'use strict'; var module = { exports: {} }; var exports = module.exports;\n${cjs}\nreturn module.exports.boot; })()`;
await writeFile(new URL('../dist/isolate-runtime.js', import.meta.url), script);
console.log(`isolate runtime: ${(script.length / 1024).toFixed(1)} KiB`);
