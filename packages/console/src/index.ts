/**
 * The web console: a small browser app (framework-free TypeScript, bundled by esbuild at build time)
 * shipped as static files that the planner serves at `/console`. This package holds no server code:
 * it only says where its files are.
 *
 * @example
 * ```ts
 * import { consoleAssetsDir, CONSOLE_INDEX } from '@toolplane/console';
 * router.use('/assets', express.static(consoleAssetsDir()));
 * res.sendFile(CONSOLE_INDEX, { root: consoleAssetsDir() });
 * ```
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The page every console address answers with; the app reads the path and draws the page. */
export const CONSOLE_INDEX = 'index.html';

/** Absolute path of the built files (`index.html`, `console.js`, `console.css`). */
export function consoleAssetsDir(): string {
  return join(dirname(fileURLToPath(import.meta.url)), 'public');
}
