import { Cluster, Redis, type RedisOptions } from 'ioredis';

/** A connection to a single Redis or to a Redis Cluster; everything Toolplane does works on both. */
export type RedisConnection = Redis | Cluster;

/**
 * - `worker`: BullMQ workers and anything that should wait out an outage (`maxRetriesPerRequest: null`
 *   is what BullMQ requires for blocking connections).
 * - `client`: request paths that must fail fast while Redis is down (the API answers 503 within a
 *   second instead of hanging), so no offline queue and a command timeout.
 * - `subscriber`: pub/sub; reconnects and resubscribes by itself.
 */
export type ConnectionRole = 'worker' | 'client' | 'subscriber';

const ROLE_OPTIONS: Record<ConnectionRole, RedisOptions> = {
  worker: { maxRetriesPerRequest: null, enableReadyCheck: true },
  client: { maxRetriesPerRequest: 0, enableOfflineQueue: false, commandTimeout: 1_000, connectTimeout: 1_000 },
  subscriber: { maxRetriesPerRequest: null },
};

/** Caps reconnect backoff at 1 s so service resumes within a second of Redis coming back. */
function retryStrategy(times: number): number {
  return Math.min(50 * 2 ** Math.min(times, 5), 1_000);
}

/**
 * Opens a connection from `redis://…`, `rediss://…` or `redis-cluster://host:port,host:port` (seed nodes).
 */
export function createRedisConnection(url: string, role: ConnectionRole, connectionName?: string, extra: RedisOptions = {}): RedisConnection {
  const base: RedisOptions = { ...ROLE_OPTIONS[role], retryStrategy, lazyConnect: false, ...(connectionName ? { connectionName } : {}), ...extra };
  if (url.startsWith('redis-cluster://')) {
    const nodes = url
      .slice('redis-cluster://'.length)
      .split(',')
      .map((hp) => {
        const [host, port] = hp.trim().split(':');
        return { host: host || '127.0.0.1', port: Number(port) || 6379 };
      });
    return new Cluster(nodes, {
      redisOptions: base,
      enableOfflineQueue: base.enableOfflineQueue ?? true,
      clusterRetryStrategy: retryStrategy,
      ...(role === 'client' ? { maxRedirections: 4 } : {}),
    });
  }
  return new Redis(url, base);
}

/**
 * Sends the commands given to a connection in one turn of the event loop in one socket write: its
 * socket is corked at the turn's first write and uncorked on `process.nextTick`, once the code that
 * issued them is done. What ioredis's auto-pipelining is for, without its two costs: it waits for
 * `setImmediate` (after the loop's I/O phase), and it builds a `Pipeline` per batch that copies every
 * script defined on the connection — BullMQ defines ~45, ~50 µs per batch, which was a worker's
 * largest single cost per call when calls arrive one at a time. Commands still go out in the order
 * they were issued. On a cluster, each node's connection, including nodes found later.
 */
export function coalesceWrites(conn: RedisConnection): void {
  if (conn instanceof Cluster) {
    for (const node of conn.nodes()) coalesceWrites(node);
    conn.on('+node', (node: Redis) => coalesceWrites(node));
    return;
  }
  if (coalescing.has(conn)) return;
  coalescing.add(conn);
  // A reconnect brings a new socket.
  const corkEachTurn = () => {
    const socket = conn.stream as (NodeJS.WritableStream & { cork(): void; uncork(): void }) | undefined;
    if (!socket || corked.has(socket)) return;
    corked.add(socket);
    const write = socket.write;
    let pending = false;
    socket.write = function (this: unknown, ...args: unknown[]) {
      if (!pending) {
        pending = true;
        socket.cork();
        process.nextTick(() => {
          pending = false;
          socket.uncork();
        });
      }
      return (write as (...a: unknown[]) => boolean).apply(this, args);
    } as typeof socket.write;
  };
  corkEachTurn();
  conn.on('connect', corkEachTurn);
}

const coalescing = new WeakSet<Redis>();
const corked = new WeakSet<object>();

/** Resolves once the connection is ready, or rejects after `timeoutMs`. */
export async function waitForRedis(conn: RedisConnection, timeoutMs = 10_000): Promise<void> {
  if (conn.status === 'ready') return;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      cleanup();
      reject(new Error(`redis not ready after ${timeoutMs}ms`));
    }, timeoutMs);
    const onReady = () => {
      cleanup();
      resolve();
    };
    const cleanup = () => {
      clearTimeout(timer);
      conn.off('ready', onReady);
    };
    conn.on('ready', onReady);
  });
}

/** Closes politely, then hard if Redis does not answer. */
export async function closeRedis(conn: RedisConnection): Promise<void> {
  try {
    await Promise.race([conn.quit(), new Promise((r) => setTimeout(r, 500))]);
  } catch {
    // already closed or unreachable: disconnect below is enough
  }
  conn.disconnect();
}

/** True for the errors ioredis raises while Redis cannot be reached (no offline queue, timeouts, retries exhausted). */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (
    err.name === 'MaxRetriesPerRequestError' ||
    /enableOfflineQueue|Connection is closed|Command timed out|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|LOADING|Stream isn't writeable|CLUSTERDOWN|None of startup nodes/i.test(
      err.message,
    )
  );
}

/**
 * Refuses a Redis that may evict keys: an evicted job is a lost call. On a cluster every master is
 * asked, as each one holds some tools' queues. Managed Redis services that forbid CONFIG report
 * `unknown` and are trusted to be configured right (documented in the README).
 */
export async function checkNoEviction(conn: RedisConnection): Promise<'ok' | 'unknown'> {
  const nodes = conn instanceof Cluster ? conn.nodes('master') : [conn];
  const verdicts = await Promise.all(nodes.map(checkNodeNoEviction));
  return verdicts.every((v) => v === 'ok') ? 'ok' : 'unknown';
}

async function checkNodeNoEviction(conn: Redis): Promise<'ok' | 'unknown'> {
  let policy: string | undefined;
  try {
    const reply = (await conn.call('CONFIG', 'GET', 'maxmemory-policy')) as string[] | Record<string, string>;
    policy = Array.isArray(reply) ? reply[1] : reply['maxmemory-policy'];
  } catch {
    return 'unknown';
  }
  if (policy !== undefined && policy !== 'noeviction') {
    const where = conn.options.port ? ` on ${conn.options.host ?? 'localhost'}:${conn.options.port}` : '';
    throw new Error(
      `redis maxmemory-policy is '${policy}'${where}: Toolplane needs 'noeviction' so that no accepted call is ever evicted ` +
        `(set it with CONFIG SET maxmemory-policy noeviction or in redis.conf)`,
    );
  }
  return policy === undefined ? 'unknown' : 'ok';
}
