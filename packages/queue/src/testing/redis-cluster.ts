import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { startRedisServer, type RedisServer } from './redis-server.js';

const run = promisify(execFile);

export type RedisClusterOptions = {
  /**
   * Master nodes; each gets an equal share of the 16384 slots. Redis refuses fewer than 3.
   * @default 3
   */
  masters?: number;
  /** Append-only file on every node. */
  aof?: boolean;
  /**
   * How long the cluster waits at most to become `cluster_state:ok` on every node.
   * @default 20000
   */
  timeoutMs?: number;
};

export type RedisCluster = {
  /** `redis-cluster://127.0.0.1:p1,127.0.0.1:p2,…`: every node as a seed, as `REDIS_URL` takes it. */
  url: string;
  /** The nodes, in the order `redis-cli --cluster create` got them (so node 0 holds the first slot range). */
  nodes: RedisServer[];
  /** Stops every node and deletes its data. */
  stop(): Promise<void>;
};

/**
 * Starts a real Redis Cluster: `masters` redis-server processes with `--cluster-enabled yes` on free
 * ports, joined by `redis-cli --cluster create … --cluster-replicas 0`, then waits until every node
 * reports `cluster_state:ok` (slots are gossiped after `create` returns, so a client connecting
 * right away could still see `CLUSTERDOWN`). Every node runs with `maxmemory-policy noeviction`,
 * which the services insist on.
 */
export async function startRedisCluster(opts: RedisClusterOptions = {}): Promise<RedisCluster> {
  const masters = opts.masters ?? 3;
  const timeoutMs = opts.timeoutMs ?? 20_000;
  const nodes: RedisServer[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
  };
  try {
    for (let i = 0; i < masters; i++) {
      // nodes.conf lands in the node's own --dir; a short node timeout keeps failure detection quick in tests.
      nodes.push(await startRedisServer({ aof: opts.aof, args: ['--cluster-enabled', 'yes', '--cluster-node-timeout', '2000'] }));
    }
    await run('redis-cli', ['--cluster', 'create', ...nodes.map((n) => `127.0.0.1:${n.port}`), '--cluster-replicas', '0', '--cluster-yes'], {
      timeout: timeoutMs,
    });
    await waitClusterOk(nodes, timeoutMs);
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `redis-cluster://${nodes.map((n) => `127.0.0.1:${n.port}`).join(',')}`, nodes, stop };
}

async function waitClusterOk(nodes: RedisServer[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const clients = nodes.map((n) => new Redis(n.port, '127.0.0.1', { lazyConnect: true, maxRetriesPerRequest: 1 }));
  try {
    for (;;) {
      const infos = await Promise.all(clients.map((c) => c.cluster('INFO').catch(() => '')));
      if (infos.every((info) => /cluster_state:ok/.test(info) && /cluster_known_nodes:(\d+)/.exec(info)?.[1] === String(nodes.length))) return;
      if (Date.now() > deadline) throw new Error(`redis cluster not ok within ${timeoutMs}ms:\n${infos.join('\n---\n')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  } finally {
    clients.forEach((c) => c.disconnect());
  }
}
