import { RequestError, TenantName, ToolExecError } from '@toolplane/core';
import type { RedisConnection } from './connection.js';
import type { Keys } from './keys.js';
import { LuaScript } from './lua-script.js';
import { TickBatcher } from './tick-batcher.js';

const ADMIT = LuaScript.fromFile('admit-calls-4');
const STORE = LuaScript.fromFile('store-results-5');
const RELEASE = LuaScript.fromFile('release-calls-5');

/** 10,000 calls in flight per tenant. */
export const DEFAULT_TENANT_MAX_CALLS_IN_FLIGHT = 10_000;
/** 256 MiB of stored results per tenant. */
export const DEFAULT_TENANT_MAX_RESULT_BYTES = 256 * 1024 * 1024;

export type TenantQuotasOptions = {
  /**
   * Calls of one tenant queued, running or awaiting approval at once; a new call past it is refused
   * with `QUOTA_EXCEEDED` (429). 0 turns the cap off.
   * @default 10_000
   */
  maxCallsInFlight?: number;
  /**
   * Bytes of results one tenant keeps stored (results stay for the call retention); a result that
   * would take the tenant past it is not stored and its call fails with `QUOTA_EXCEEDED`. 0 turns
   * the quota off.
   * @default 256 MiB
   */
  maxResultBytes?: number;
};

/** New calls to admit for one tenant, all of one tool. */
export type CallAdmission = {
  tenant: string;
  tool: string;
  ids: readonly string[];
  /** Creation time (ms since epoch): the calls' place in the tenant's call index. */
  createdAt: number;
  /** How long the in-flight entries may live at most: the calls' delay plus the retention. */
  inFlightMs: number;
  /** The call retention: index entries older than this are trimmed. */
  retentionMs: number;
  /**
   * `false` for a call that runs again (retry): counted in flight, already in the index.
   * @default true
   */
  record?: boolean;
};

type StoredResult = { id: string; bytes: number; keepMs: number };

/** A tenant's use of its quotas. */
export type TenantUsage = { callsInFlight: number; resultBytes: number; resultsFull: boolean };

/**
 * Per-tenant ceilings, so that one tenant can neither fill the queues nor Redis's memory for all:
 *
 * - **Calls in flight**: a sorted set of the tenant's call ids (queued, running, awaiting approval)
 *   scored by when the entry goes stale. A call enters it when admitted and leaves when it ends (a
 *   result is stored, it fails, is cancelled or rejected). Adding and removing an id are idempotent,
 *   so repeats and races cannot unbalance it as they would a counter, and an entry whose end was
 *   never reported (a crashed process) expires instead of holding a slot for good.
 * - **Stored result bytes**: each stored result's size and expiry, and their total, changed together
 *   in one script. Bytes come back when a result expires (its call's retention) or its call is
 *   released. A result that does not fit is refused, and the tenant is marked full until its oldest
 *   result expires: new calls are refused meanwhile instead of running only to be thrown away.
 *
 * Every key is under the tenant's hash tag, so each operation is one script on one cluster slot.
 */
export class TenantQuotas {
  readonly maxCallsInFlight: number;
  readonly maxResultBytes: number;
  private readonly stores = new TickBatcher<StoredResult, [number, number]>((tenant, results) => this.storeBatch(tenant, results));

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: Keys,
    opts: TenantQuotasOptions = {},
  ) {
    this.maxCallsInFlight = opts.maxCallsInFlight ?? DEFAULT_TENANT_MAX_CALLS_IN_FLIGHT;
    this.maxResultBytes = opts.maxResultBytes ?? DEFAULT_TENANT_MAX_RESULT_BYTES;
  }

  /**
   * Admits new calls (all or none) and enters them in the tenant's call index. Returns `duplicate`
   * for a single id the index already holds (an idempotent repeat: nothing is counted again).
   * @throws RequestError `QUOTA_EXCEEDED` past the cap of calls in flight or while results fill the quota.
   */
  async admit(a: CallAdmission): Promise<'admitted' | 'duplicate'> {
    const k = this.keys;
    const t = checkTenant(a.tenant);
    const [verdict, value] = (await ADMIT.run(
      this.redis,
      [k.tenantInFlight(t), k.tenantCalls(t), k.tenantToolCalls(t, a.tool), k.tenantResultsFull(t)],
      [a.createdAt, this.maxCallsInFlight, a.retentionMs, Math.ceil(a.inFlightMs), a.record === false ? '0' : '1', ...a.ids],
    )) as [string, number];
    switch (verdict) {
      case 'admitted':
      case 'duplicate':
        return verdict;
      case 'calls_in_flight':
        throw new RequestError(
          'QUOTA_EXCEEDED',
          `tenant '${t}' has ${value} calls in flight, its cap is ${this.maxCallsInFlight}; wait for some to finish`,
          { quota: 'calls_in_flight', limit: this.maxCallsInFlight, inFlight: value },
        );
      case 'result_bytes':
        throw new RequestError(
          'QUOTA_EXCEEDED',
          `the stored results of tenant '${t}' fill its quota; the oldest expires in ${Math.ceil(value / 1000)} s`,
          { quota: 'result_bytes', retryAfterMs: value },
        );
      default:
        throw new Error(`unexpected admission verdict ${verdict}`);
    }
  }

  /**
   * A call of `tenant` finished with `output`: it leaves the calls in flight, and the output's JSON
   * size is charged to the tenant's result quota for `keepMs`. Charging the same call again (it ran
   * again after a crash) replaces its earlier charge.
   * @throws ToolExecError `QUOTA_EXCEEDED` (not retryable) when the result does not fit: it must not be stored.
   */
  async storeResult(tenant: string, id: string, output: unknown, keepMs: number): Promise<void> {
    const bytes = Buffer.byteLength(JSON.stringify(output) ?? 'null');
    const [stored, used] = await this.stores.add(checkTenant(tenant), { id, bytes, keepMs: Math.max(1, Math.ceil(keepMs)) });
    if (stored === 1) return;
    throw new ToolExecError(
      'QUOTA_EXCEEDED',
      `the result is ${bytes} bytes and the stored results of tenant '${tenant}' take ${used} of its ${this.maxResultBytes} bytes; it was not kept`,
    );
  }

  /** Results of one tenant finished in the same event-loop turn, charged in one script run, in order. */
  private async storeBatch(tenant: string, results: StoredResult[]): Promise<Array<[number, number]>> {
    const args: Array<string | number> = [this.maxResultBytes];
    for (const r of results) args.push(r.id, r.bytes, r.keepMs);
    const out = (await STORE.run(this.redis, this.resultKeys(tenant), args)) as number[];
    return results.map((_, i) => [out[3 * i]!, out[3 * i + 1]!]);
  }

  /**
   * Calls of `tenant` ended without a result to keep (failed, cancelled, rejected, removed): they
   * leave the calls in flight and any result charged for them is given back. Returns the bytes given back.
   */
  async release(tenant: string, ids: readonly string[]): Promise<number> {
    if (ids.length === 0) return 0;
    return (await RELEASE.run(this.redis, this.resultKeys(tenant), ids)) as number;
  }

  /** The tenant's calls in flight and stored result bytes right now. */
  async usage(tenant: string): Promise<TenantUsage> {
    const k = this.keys;
    const t = checkTenant(tenant);
    const [inFlight, bytes, full] = await Promise.all([
      this.redis.zcount(k.tenantInFlight(t), Date.now(), '+inf'),
      this.redis.get(k.tenantResultBytes(t)),
      this.redis.exists(k.tenantResultsFull(t)),
    ]);
    return { callsInFlight: inFlight, resultBytes: Number(bytes ?? 0), resultsFull: full === 1 };
  }

  private resultKeys(tenant: string): string[] {
    const k = this.keys;
    const t = checkTenant(tenant);
    return [k.tenantInFlight(t), k.tenantResults(t), k.tenantResultSizes(t), k.tenantResultBytes(t), k.tenantResultsFull(t)];
  }
}

/** A tenant name goes into a hash tag: a `}` or `:` in it could make two tenants share keys' structure. */
function checkTenant(tenant: string): string {
  if (!TenantName.safeParse(tenant).success) throw new Error(`invalid tenant name '${tenant}'`);
  return tenant;
}
