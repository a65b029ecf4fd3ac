import { describe, expect, test } from 'vitest';
import { isPrivateAddress, matchEgress, parseEgressRule, type EgressRule } from './egress.js';
import { retryAfterMs } from './fetch-bridge.js';

const rules = (...entries: string[]) => entries.map((e) => parseEgressRule(e)).filter((r): r is EgressRule => !!r);
const check = (r: EgressRule[], url: string) => matchEgress(r, new URL(url));

describe('egress rules', () => {
  test('parse host, host:port, wildcard and IPv6; refuse the rest', () => {
    expect(parseEgressRule('API.example.com')).toEqual({ host: 'api.example.com', wildcard: false, port: undefined });
    expect(parseEgressRule('*.example.com:8443')).toEqual({ host: 'example.com', wildcard: true, port: 8443 });
    expect(parseEgressRule('[::1]:80')).toEqual({ host: '::1', wildcard: false, port: 80 });
    for (const bad of ['http://a.com', 'a.com/path', 'a.com:0', 'a.com:70000', '*.[::1]', 'user@a.com', '']) expect(parseEgressRule(bad)).toBeUndefined();
  });

  test('scheme, host and port must all match', () => {
    const r = rules('api.example.com', '*.example.org:8443');
    expect(check(r, 'https://api.example.com/x')).toEqual({ ok: true, literal: true });
    expect(check(r, 'http://api.example.com/x')).toEqual({ ok: true, literal: true });
    expect(check(r, 'https://api.example.com:8443/')).toMatchObject({ ok: false });
    expect(check(r, 'https://a.b.example.org:8443/')).toEqual({ ok: true, literal: false });
    expect(check(r, 'https://example.org:8443/')).toMatchObject({ ok: false });
    expect(check(r, 'https://evilexample.org:8443/')).toMatchObject({ ok: false });
    expect(check(r, 'ftp://api.example.com/')).toMatchObject({ ok: false });
    expect(check(r, 'https://u:p@api.example.com/')).toMatchObject({ ok: false });
  });

  test('private, loopback, link-local and mapped addresses are private', () => {
    for (const a of ['127.0.0.1', '10.1.2.3', '172.16.0.1', '192.168.1.1', '169.254.169.254', '100.64.0.1', '0.0.0.0', '::1', '::', 'fe80::1', 'fd00::1', '::ffff:127.0.0.1', '::ffff:7f00:1', 'not-an-ip']) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ['93.184.216.34', '8.8.8.8', '2606:4700::1111', '::ffff:8.8.8.8']) expect(isPrivateAddress(a), a).toBe(false);
  });

  test('Retry-After as seconds or date', () => {
    expect(retryAfterMs('5')).toBe(5000);
    expect(retryAfterMs(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThan(50_000);
    expect(retryAfterMs('soon')).toBeUndefined();
    expect(retryAfterMs(undefined)).toBeUndefined();
  });
});
