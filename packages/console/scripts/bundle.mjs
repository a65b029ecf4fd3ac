// Bundles the browser app (src/app/main.ts) into dist/public/ with the static files beside it: what
// the planner serves at /console. One minified script and one stylesheet, no source fetched at run
// time from anywhere else (the console works offline).
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist', 'public');
mkdirSync(out, { recursive: true });
await build({
  entryPoints: [join(root, 'src', 'app', 'main.ts')],
  outfile: join(out, 'console.js'),
  bundle: true,
  minify: true,
  format: 'esm',
  target: 'es2022',
  platform: 'browser',
  sourcemap: 'linked',
  logLevel: 'warning',
});
for (const file of readdirSync(join(root, 'src', 'static'))) copyFileSync(join(root, 'src', 'static', file), join(out, file));
