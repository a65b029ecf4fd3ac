import { randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** One command as MONITOR shows it: who sent it (`127.0.0.1:port`, or `lua` inside a script) and its words. */
export type MonitoredCommand = { source: string; args: string[] };

/**
 * Every command Redis runs while `fn` runs, read from a MONITOR stream on a socket of its own.
 * ioredis's `monitor()` is not used: it switches the connection to monitoring only once MONITOR's
 * reply has gone through a promise, so on a busy server the lines that arrive in the same read as
 * that reply are taken for replies to commands it never sent ("Command queue state error", thrown
 * where no test can catch it).
 *
 * MONITOR streams on its own, so after `fn` a sentinel `GET` is sent on `redis` (a connection of the
 * caller's) and the stream is read until it shows it.
 */
export async function commandsDuring(redisUrl: string, redis: { get(key: string): Promise<unknown> }, fn: () => Promise<void>): Promise<MonitoredCommand[]> {
  const monitor = await startMonitor(redisUrl);
  const sentinel = `sentinel-${randomUUID()}`;
  try {
    await fn();
    await redis.get(sentinel);
    const deadline = Date.now() + 5_000;
    while (!monitor.seen.some((c) => c.args.includes(sentinel))) {
      if (monitor.error) throw monitor.error;
      if (Date.now() > deadline) throw new Error('MONITOR did not show the sentinel within 5 s');
      await sleep(10);
    }
    return monitor.seen;
  } finally {
    monitor.stop();
  }
}

type Monitor = { seen: MonitoredCommand[]; error: Error | undefined; stop(): void };

/** A socket in MONITOR mode, resolved once Redis has said OK (commands after that are all seen). */
function startMonitor(redisUrl: string): Promise<Monitor> {
  const url = new URL(redisUrl);
  const socket = connect(Number(url.port || 6379), url.hostname);
  const monitor: Monitor = { seen: [], error: undefined, stop: () => socket.destroy() };
  // With a password, AUTH's OK comes first.
  let oksToCome = url.password ? 2 : 1;
  let pending = '';
  return new Promise((resolve, reject) => {
    const fail = (err: Error) => {
      monitor.error = err;
      socket.destroy();
      reject(err);
    };
    socket.setEncoding('utf8');
    socket.on('error', fail);
    socket.on('data', (chunk: string) => {
      pending += chunk;
      for (let end = pending.indexOf('\r\n'); end >= 0; end = pending.indexOf('\r\n')) {
        const line = pending.slice(0, end);
        pending = pending.slice(end + 2);
        if (line.startsWith('-')) return fail(new Error(`MONITOR: ${line.slice(1)}`));
        if (oksToCome > 0) {
          if (line === '+OK' && --oksToCome === 0) resolve(monitor);
          continue;
        }
        const command = parseMonitorLine(line);
        if (command) monitor.seen.push(command);
      }
    });
    const auth = url.password ? respCommand(['AUTH', ...(url.username ? [decodeURIComponent(url.username)] : []), decodeURIComponent(url.password)]) : '';
    socket.write(auth + respCommand(['MONITOR']));
  });
}

function respCommand(words: string[]): string {
  return `*${words.length}\r\n${words.map((w) => `$${Buffer.byteLength(w)}\r\n${w}\r\n`).join('')}`;
}

const ESCAPES: Record<string, string> = { n: '\n', r: '\r', t: '\t', a: '\x07', b: '\b', '"': '"', '\\': '\\' };

/** `+1796095879.322456 [0 127.0.0.1:35602] "evalsha" "30b4…" "6"`: Redis quotes each word and escapes what is not printable. */
function parseMonitorLine(line: string): MonitoredCommand | undefined {
  const head = /^\+\d+\.\d+ \[\d+ ([^\]]+)\] /.exec(line);
  if (!head) return undefined;
  const args = [...line.slice(head[0].length).matchAll(/"((?:[^"\\]|\\.)*)"/g)].map(([, word]) =>
    word!.replace(/\\x([0-9a-f]{2})|\\(.)/gi, (_, hex: string | undefined, ch: string | undefined) => (hex ? String.fromCharCode(parseInt(hex, 16)) : (ESCAPES[ch!] ?? ch!))),
  );
  return { source: head[1]!, args };
}
