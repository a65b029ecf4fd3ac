import { randomUUID } from 'node:crypto';
import type { RedisConnection } from '@toolplane/queue';
import type { AgentKeys } from './keys.js';
import { countTokens } from './tokens.js';

/** One thing a session remembers. */
export type MemoryEntry = {
  id: string;
  role: 'user' | 'assistant' | 'note';
  content: string;
  /** 0..1; decides what long-term memory keeps and what a tight context shows first. */
  importance: number;
  at: number;
};

export type AgentMemoryOptions = {
  /**
   * Entries kept verbatim in short-term memory; older ones are consolidated into long-term memory.
   * @default 20
   */
  shortTermSize?: number;
  /**
   * Long-term entries kept per session; the least important go first.
   * @default 200
   */
  longTermSize?: number;
  /**
   * Entries below this importance are forgotten instead of consolidated.
   * @default 0.3
   */
  minImportance?: number;
  /**
   * A session untouched this long is forgotten.
   * @default 30 days
   */
  ttlMs?: number;
};

/*
 * Appends to short-term memory and consolidates what overflows it into long-term memory, atomically.
 * KEYS[1] short-term list, KEYS[2] long-term zset (same hash tag)
 * ARGV[1] entry JSON, ARGV[2] short-term size, ARGV[3] long-term size, ARGV[4] min importance, ARGV[5] ttl ms
 * Returns how many entries were consolidated.
 */
const REMEMBER = `
redis.call('RPUSH', KEYS[1], ARGV[1])
local moved = 0
while redis.call('LLEN', KEYS[1]) > tonumber(ARGV[2]) do
  local old = redis.call('LPOP', KEYS[1])
  local importance = tonumber(cjson.decode(old).importance) or 0
  if importance >= tonumber(ARGV[4]) then
    redis.call('ZADD', KEYS[2], importance, old)
    moved = moved + 1
  end
end
local extra = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if extra > 0 then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, extra - 1) end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if redis.call('EXISTS', KEYS[2]) == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[5]) end
return moved
`;

/**
 * A session's memory in Redis: a short-term window of recent entries and long-term entries ranked by
 * importance. Entries that fall out of the window are consolidated into long-term memory if they
 * matter enough. {@link AgentMemory.buildContext} fits both into a token budget.
 *
 * Every method takes the tenant first: a session id is the tenant's own name for a conversation, and
 * another tenant using the same id reads and writes a memory of its own.
 */
export class AgentMemory {
  private readonly shortTermSize: number;
  private readonly longTermSize: number;
  private readonly minImportance: number;
  private readonly ttlMs: number;

  constructor(
    private readonly redis: RedisConnection,
    private readonly keys: AgentKeys,
    opts: AgentMemoryOptions = {},
  ) {
    this.shortTermSize = opts.shortTermSize ?? 20;
    this.longTermSize = opts.longTermSize ?? 200;
    this.minImportance = opts.minImportance ?? 0.3;
    this.ttlMs = opts.ttlMs ?? 30 * 86_400_000;
  }

  /** Remembers an entry; returns how many old entries moved to long-term memory. */
  async remember(tenant: string, session: string, entry: Omit<MemoryEntry, 'id' | 'at'> & { at?: number }): Promise<number> {
    const full: MemoryEntry = { id: randomUUID(), at: Date.now(), ...entry, importance: clamp01(entry.importance) };
    return (await this.redis.eval(
      REMEMBER,
      2,
      this.keys.memoryShort(tenant, session),
      this.keys.memoryLong(tenant, session),
      JSON.stringify(full),
      this.shortTermSize,
      this.longTermSize,
      this.minImportance,
      this.ttlMs,
    )) as number;
  }

  /** Recent entries, oldest first. */
  async shortTerm(tenant: string, session: string): Promise<MemoryEntry[]> {
    return (await this.redis.lrange(this.keys.memoryShort(tenant, session), 0, -1)).map(decode);
  }

  /** Long-term entries, most important first. */
  async longTerm(tenant: string, session: string): Promise<MemoryEntry[]> {
    return (await this.redis.zrevrange(this.keys.memoryLong(tenant, session), 0, -1)).map(decode);
  }

  /**
   * The memory that fits in `maxTokens` (counted with the BPE tokenizer), as text for a system
   * message: the most important long-term entries first, then as many recent entries as still fit.
   * Long-term memory gets at most half the budget, so recent turns are never crowded out.
   */
  async buildContext(tenant: string, session: string, maxTokens: number): Promise<string> {
    const [longTerm, shortTerm] = await Promise.all([this.longTerm(tenant, session), this.shortTerm(tenant, session)]);
    const line = (e: MemoryEntry) => `- ${e.role}: ${e.content}`;
    const header = (title: string) => countTokens(`${title}\n`);
    let used = 0;
    const pickedLong: MemoryEntry[] = [];
    if (longTerm.length) {
      const cap = Math.floor(maxTokens / 2);
      used += header('Long-term memory:');
      for (const e of longTerm) {
        const cost = countTokens(line(e)) + 1;
        if (used + cost > cap) continue;
        pickedLong.push(e);
        used += cost;
      }
      if (pickedLong.length === 0) used = 0;
    }
    const pickedShort: MemoryEntry[] = [];
    if (shortTerm.length) {
      let shortUsed = header('Recent conversation:');
      for (const e of [...shortTerm].reverse()) {
        const cost = countTokens(line(e)) + 1;
        if (used + shortUsed + cost > maxTokens) break;
        pickedShort.unshift(e);
        shortUsed += cost;
      }
    }
    // Per-line counts can differ by a token from the joined text's: trim until the real count fits.
    for (;;) {
      const text = render(pickedLong, pickedShort, line);
      if (countTokens(text) <= maxTokens || (pickedLong.length === 0 && pickedShort.length === 0)) return text;
      if (pickedShort.length > 0) pickedShort.shift();
      else pickedLong.pop();
    }
  }

  async forget(tenant: string, session: string): Promise<void> {
    await this.redis.del(this.keys.memoryShort(tenant, session), this.keys.memoryLong(tenant, session));
  }
}

function render(longTerm: MemoryEntry[], shortTerm: MemoryEntry[], line: (e: MemoryEntry) => string): string {
  const blocks: string[] = [];
  if (longTerm.length) blocks.push(`Long-term memory:\n${[...longTerm].sort((a, b) => a.at - b.at).map(line).join('\n')}`);
  if (shortTerm.length) blocks.push(`Recent conversation:\n${shortTerm.map(line).join('\n')}`);
  return blocks.join('\n\n');
}

function decode(raw: string): MemoryEntry {
  return JSON.parse(raw) as MemoryEntry;
}

function clamp01(n: number): number {
  return Number.isFinite(n) ? Math.min(1, Math.max(0, n)) : 0;
}
