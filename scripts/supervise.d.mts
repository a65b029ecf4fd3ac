// Types of supervise.mjs for the tests (test/scripts/supervise.test.ts).
import type { ChildProcess } from 'node:child_process';

export type SuperviseTimings = {
  probeEveryMs: number;
  probeTimeoutMs: number;
  unresponsiveMs: number;
  startupGraceMs: number;
  maxBackoffMs: number;
};
export const SUPERVISE_DEFAULTS: Readonly<SuperviseTimings>;
export function respawnDelayMs(crashes: number, opts?: SuperviseTimings): number;
export function decide(
  s: { now: number; startedAt: number; lastHealthyAt?: number; killedAt?: number; exitedAt?: number; crashes: number },
  opts?: SuperviseTimings,
): 'wait' | 'kill' | 'respawn';
export class Supervisor {
  constructor(
    opts: {
      name: string;
      spawn: () => ChildProcess;
      healthUrl: string;
      log: (message: string) => void;
      onSpawn?: (child: ChildProcess) => void;
      now?: () => number;
    } & Partial<SuperviseTimings>,
  );
  readonly name: string;
  child: ChildProcess;
  start(): this;
  stop(): void;
}
