/**
 * Injected into every bundle (esbuild `inject`), so the tool's free `globalThis` means this object.
 *
 * The sandbox freezes the real global (no call may leave state for the next), but many packages
 * write a global at load time (zod keeps its config in `globalThis.__zod_globalConfig`). Here such a
 * write lands on an object of this module instance — a fresh one per call — and every read falls
 * through to the real, frozen global. Overwriting a built-in still fails, as it should.
 */
const scope: typeof globalThis = Object.create(globalThis) as typeof globalThis;
export { scope as globalThis };
