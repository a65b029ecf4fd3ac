/**
 * How the runner gets a tool's module at `start` (shared by the host and the isolate runtime):
 * - `Module`: the namespace of a module the host compiled and evaluated for this call;
 * - `Fresh`: a module factory (`module-factory.ts`), called once per call for a fresh instance;
 * - `Reuse`: the same factory, called once per isolate and its instance kept, for tools that opted
 *   into `isolation: "isolate"`.
 */
export const EntryKind = { Module: 0, Fresh: 1, Reuse: 2 } as const;
export type EntryKind = (typeof EntryKind)[keyof typeof EntryKind];
