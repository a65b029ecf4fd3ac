/**
 * `@toolplane/cli`: the `toolplane` command (init, dev, deploy, test, call, calls, versions,
 * rollback, rm) and the bundler behind it. Tests of tools use `@toolplane/cli/testing`.
 *
 * @example
 * ```ts
 * import { bundleTool } from '@toolplane/cli';
 * const { code, sourceMap, bytes } = await bundleTool(projectDir, 'tools/hello.ts');
 * ```
 */
export { main, USAGE } from './main.js';
export { bundleTool, BundleError, MAX_BUNDLE_BYTES } from './bundle.js';
export type { ToolBundle } from './bundle.js';
export { describeTool } from './describe.js';
export type { BuiltTool } from './describe.js';
export { PlannerApi, ApiError } from './api.js';
export type { Connection, CallView, VersionView, ToolView } from './api.js';
