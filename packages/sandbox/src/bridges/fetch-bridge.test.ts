import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { parseEgressRule, parseNetworkList, type EgressRule, type NetworkList } from './egress.js';
import { hostFetch, type FetchLimits, type FetchReply, type HostResolver } from './fetch-bridge.js';

/**
 * `hostFetch` against a real server on 127.0.0.1. That address is loopback, so every test that
 * reaches the server opens it through `allowPrivate`, as an operator would; the same server is
 * refused without it.
 */

let server: Server;
let port = 0;
/** Paths the server was asked for since the last test began. */
let hits: string[] = [];

beforeAll(async () => {
  server = createServer((req, res) => {
    hits.push(req.url ?? '');
    if (req.url === '/to-metadata') return void res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end();
    if (req.url === '/to-decimal') return void res.writeHead(302, { location: `http://2130706433:${port}/ok` }).end();
    if (req.url === '/to-rebind') return void res.writeHead(302, { location: `http://rebind.example.test:${port}/ok` }).end();
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ path: req.url }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

beforeEach(() => {
  hits = [];
});

const LOOPBACK = () => parseNetworkList('127.0.0.1');

const noDns: HostResolver = (host) => Promise.reject(new Error(`no DNS for ${host} in this test`));

function limits(egress: string[], extra: { allowPrivate?: NetworkList; resolve?: HostResolver; timeoutMs?: number } = {}): FetchLimits {
  return {
    rules: egress.map((e) => parseEgressRule(e)).filter((r): r is EgressRule => r !== undefined),
    deadline: performance.now() + (extra.timeoutMs ?? 5000),
    signal: new AbortController().signal,
    maxResponseBytes: 64 * 1024,
    resolve: extra.resolve ?? noDns,
    ...(extra.allowPrivate ? { allowPrivate: extra.allowPrivate } : {}),
  };
}

const get = (url: string, l: FetchLimits): Promise<FetchReply> => hostFetch({ url, method: 'GET', headers: {}, body: null }, l);

/** A resolver that answers `answers[i]` on its i-th call (the last one from then on), and counts. */
function sequence(...answers: string[][]): HostResolver & { calls: string[] } {
  const calls: string[] = [];
  const resolve = (host: string) => {
    calls.push(host);
    return Promise.resolve(answers[Math.min(calls.length, answers.length) - 1]!);
  };
  return Object.assign(resolve, { calls });
}

const denied = (message: RegExp) => ({ denied: true, message: expect.stringMatching(message) as unknown });

describe('private networks belong to the operator', () => {
  test('a loopback server listed in egress is refused, and reached once the operator opens it', async () => {
    const egress = [`127.0.0.1:${port}`];
    expect(await get(`http://127.0.0.1:${port}/ok`, limits(egress))).toEqual(denied(/127\.0\.0\.1 is a private or loopback address/));
    expect(hits).toEqual([]);
    expect(await get(`http://127.0.0.1:${port}/ok`, limits(egress, { allowPrivate: LOOPBACK() }))).toMatchObject({ status: 200, body: '{"path":"/ok"}' });
    expect(await get(`http://127.0.0.1:${port}/ok`, limits(egress, { allowPrivate: parseNetworkList('') }))).toMatchObject({ denied: true });
    expect(await get(`http://127.0.0.1:${port}/ok`, limits(egress, { allowPrivate: parseNetworkList('10.0.0.0/8,127.0.0.2') }))).toMatchObject({ denied: true });
    expect(hits).toEqual(['/ok']);
  });

  test('metadata, internal and IPv6 forms of them are refused whatever egress lists', async () => {
    // Opening an unrelated private range opens none of these.
    const allowPrivate = parseNetworkList('10.0.0.0/8');
    for (const host of [
      '169.254.169.254', '100.100.100.200', '192.0.0.192', '127.0.0.1:9464', '0.0.0.0', '172.16.0.1', '192.168.0.1',
      '[::1]', '[::]', '[fd00:ec2::254]', '[fe80::1]', '[::ffff:169.254.169.254]', '[::ffff:a9fe:a9fe]', '[::169.254.169.254]',
      '[64:ff9b::169.254.169.254]', '[2002:a9fe:a9fe::1]', '[2001::a9fe:a9fe]',
    ]) {
      const reply = await get(`http://${host}/latest/meta-data/`, limits([host], { allowPrivate }));
      expect(reply, host).toEqual(denied(/private or loopback/));
    }
  });

  test('odd spellings of a loopback address are normalized before the check', async () => {
    const spellings = ['2130706433', '0x7f000001', '0177.0.0.1', '0x7f.1', '127.1', '127.0.0.1.', '%31%32%37.0.0.1'];
    for (const host of spellings) {
      // Listing the odd spelling does not get past the check...
      expect(await get(`http://${host}:${port}/ok`, limits([`${host}:${port}`, `127.0.0.1:${port}`])), host).toEqual(denied(/127\.0\.0\.1 is a private/));
      // ...and the check sees 127.0.0.1: opening it and listing it lets every spelling through.
      expect(await get(`http://${host}:${port}/ok`, limits([`127.0.0.1:${port}`], { allowPrivate: LOOPBACK() })), host).toMatchObject({ status: 200 });
    }
    expect(hits).toHaveLength(spellings.length);
    const mapped = `[::ffff:127.0.0.1]:${port}`;
    expect(await get(`http://${mapped}/ok`, limits([mapped]))).toEqual(denied(/::ffff:7f00:1 is a private/));
  });

  test('a name that resolves to a private address is refused; the operator can open it', async () => {
    const egress = [`internal.example.test:${port}`];
    for (const answer of ['10.0.0.1', '127.0.0.1', '169.254.169.254', '::1', '::ffff:127.0.0.1', 'fd00::1', 'garbage']) {
      const reply = await get(`http://internal.example.test:${port}/ok`, limits(egress, { resolve: sequence([answer]) }));
      expect(reply, answer).toEqual(denied(/internal\.example\.test resolves to a private or loopback address/));
      // The tenant learns that it is private, not which address it is.
      if ('denied' in reply) expect(reply.message).not.toContain(answer);
    }
    expect(hits).toEqual([]);
    const reply = await get(`http://internal.example.test:${port}/ok`, limits(egress, { resolve: sequence(['127.0.0.1']), allowPrivate: LOOPBACK() }));
    expect(reply).toMatchObject({ status: 200, body: '{"path":"/ok"}' });
  });

  test('one private answer among public ones refuses the request', async () => {
    // Documented choice: refuse, rather than pin to a public answer the resolver may not mean.
    const egress = ['mixed.example.test'];
    for (const answer of [['93.184.216.34', '10.0.0.1'], ['10.0.0.1', '93.184.216.34'], ['2606:4700::1111', '::1']]) {
      expect(await get('http://mixed.example.test/', limits(egress, { resolve: sequence(answer) })), answer.join()).toEqual(denied(/private or loopback/));
    }
    // Every answer must pass: an opened one does not carry a closed one.
    const resolve = sequence(['127.0.0.1', '10.0.0.1']);
    expect(await get(`http://mixed.example.test:${port}/ok`, limits([`mixed.example.test:${port}`], { resolve, allowPrivate: LOOPBACK() }))).toEqual(denied(/private/));
    const opened = parseNetworkList('127.0.0.1, 10.0.0.0/8');
    expect(await get(`http://mixed.example.test:${port}/ok`, limits([`mixed.example.test:${port}`], { resolve, allowPrivate: opened }))).toMatchObject({ status: 200 });
  });

  test('a redirect into a private network is refused on its hop', async () => {
    const allowPrivate = LOOPBACK();
    const egress = [`127.0.0.1:${port}`, '169.254.169.254'];
    expect(await get(`http://127.0.0.1:${port}/to-metadata`, limits(egress, { allowPrivate }))).toEqual(denied(/169\.254\.169\.254 is a private/));
    expect(hits).toEqual(['/to-metadata']);
    // A decimal spelling in Location is normalized like one in the request.
    expect(await get(`http://127.0.0.1:${port}/to-decimal`, limits([`127.0.0.1:${port}`]))).toMatchObject({ denied: true });
    expect(await get(`http://127.0.0.1:${port}/to-decimal`, limits([`127.0.0.1:${port}`], { allowPrivate }))).toMatchObject({ status: 200, redirected: true });
  });
});

describe('DNS rebinding', () => {
  test('the connection goes to the address that was checked, not to a later answer', async () => {
    // First answer: an address that passes the check (127.0.0.1, opened here, standing for a public
    // one). Every later answer: 127.0.0.2, closed, on which nothing listens. A client that resolved
    // again to connect would get 127.0.0.2 and fail to connect; a pinned one reaches the server.
    const resolve = sequence(['127.0.0.1'], ['127.0.0.2']);
    const reply = await get(`http://rebind.example.test:${port}/ok`, limits([`rebind.example.test:${port}`], { resolve, allowPrivate: LOOPBACK() }));
    expect(reply).toMatchObject({ status: 200, body: '{"path":"/ok"}' });
    expect(resolve.calls).toEqual(['rebind.example.test']);
  });

  test('a public first answer and a private later one never reach the private address', async () => {
    // Checked against a public answer, the connection must go there (and fail: it leads nowhere in
    // a test), never to the loopback server a second lookup would name.
    const resolve = sequence(['192.88.98.1'], ['127.0.0.1']);
    const l = limits([`rebind.example.test:${port}`], { resolve, allowPrivate: LOOPBACK(), timeoutMs: 300 });
    const reply = await get(`http://rebind.example.test:${port}/ok`, l);
    expect(reply).toHaveProperty('error');
    expect(hits).toEqual([]);
    expect(resolve.calls).toEqual(['rebind.example.test']);
  });

  test('with followRedirects off, a 3xx is the answer and its target is never asked', async () => {
    const allowPrivate = LOOPBACK();
    const reply = await get(`http://127.0.0.1:${port}/to-decimal`, { ...limits([`127.0.0.1:${port}`], { allowPrivate }), followRedirects: false });
    expect(reply).toMatchObject({ status: 302, redirected: false });
    expect(hits).toEqual(['/to-decimal']);
  });

  test('each redirect hop resolves and is checked again', async () => {
    const resolve = sequence(['169.254.169.254']);
    const reply = await get(`http://127.0.0.1:${port}/to-rebind`, limits([`127.0.0.1:${port}`, `rebind.example.test:${port}`], { resolve, allowPrivate: LOOPBACK() }));
    expect(reply).toEqual(denied(/rebind\.example\.test resolves to a private/));
    expect(hits).toEqual(['/to-rebind']);
    expect(resolve.calls).toEqual(['rebind.example.test']);
  });
});

describe('ports and caps', () => {
  test('a port other than the default passes only when listed with the host', async () => {
    const allowPrivate = LOOPBACK();
    expect(await get(`http://127.0.0.1:${port}/ok`, limits(['127.0.0.1'], { allowPrivate }))).toEqual(denied(new RegExp(`127\\.0\\.0\\.1:${port} is not in`)));
    expect(await get(`http://127.0.0.1:${port}/ok`, limits([`127.0.0.1:${port + 1}`], { allowPrivate }))).toMatchObject({ denied: true });
    expect(await get(`http://127.0.0.1:${port}/ok`, limits([`*.example.test:${port}`], { allowPrivate }))).toMatchObject({ denied: true });
    expect(await get(`http://127.0.0.1:${port}/ok`, limits([`127.0.0.1:${port}`], { allowPrivate }))).toMatchObject({ status: 200 });
    expect(hits).toEqual(['/ok']);
  });

  test('request URL length and body size are capped before anything is sent', async () => {
    const l = limits([`127.0.0.1:${port}`], { allowPrivate: LOOPBACK() });
    expect(await get(`http://127.0.0.1:${port}/${'a'.repeat(8200)}`, l)).toEqual({ error: expect.stringMatching(/url must be a string of at most 8192/) as unknown });
    const body = 'b'.repeat(1024 * 1024 + 1);
    expect(await hostFetch({ url: `http://127.0.0.1:${port}/ok`, method: 'POST', headers: {}, body }, l)).toEqual({ error: 'request body is too large' });
    expect(hits).toEqual([]);
  });
});
