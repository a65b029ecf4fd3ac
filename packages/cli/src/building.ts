/** What the building commands need, loaded on demand by `main.ts` (esbuild, the sandbox). */
export { deploy } from './commands/deploy.js';
export { dev } from './commands/dev.js';
export { closeLocalSandbox } from './describe.js';
