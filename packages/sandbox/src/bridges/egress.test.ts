import { describe, expect, test } from 'vitest';
import { hostOf, isPrivateAddress, matchEgress, parseEgressRule, parseNetworkList, type EgressRule } from './egress.js';
import { retryAfterMs } from './fetch-bridge.js';

const rules = (...entries: string[]) => entries.map((e) => parseEgressRule(e)).filter((r): r is EgressRule => !!r);
const check = (r: EgressRule[], url: string) => matchEgress(r, new URL(url));

describe('egress rules', () => {
  test('parse host, host:port, wildcard and IPv6; refuse the rest', () => {
    expect(parseEgressRule('API.example.com')).toEqual({ host: 'api.example.com', wildcard: false, port: undefined });
    expect(parseEgressRule('*.example.com:8443')).toEqual({ host: 'example.com', wildcard: true, port: 8443 });
    expect(parseEgressRule('[::1]:80')).toEqual({ host: '::1', wildcard: false, port: 80 });
    for (const bad of ['http://a.com', 'a.com/path', 'a.com:0', 'a.com:70000', '*.[::1]', 'user@a.com', '', '[1.2.3.4]', '*.1.2.3.4', '*.123', 'a.b.0x7f']) {
      expect(parseEgressRule(bad), bad).toBeUndefined();
    }
  });

  test('a rule host is spelled as a URL spells it, so odd IP spellings match their address', () => {
    for (const spelling of ['2130706433', '0x7f.1', '0177.0.0.1', '127.1', '0x7f000001']) {
      expect(parseEgressRule(`${spelling}:8080`), spelling).toEqual({ host: '127.0.0.1', wildcard: false, port: 8080 });
    }
    expect(parseEgressRule('[0:0:0:0:0:0:0:1]')).toEqual({ host: '::1', wildcard: false, port: undefined });
    expect(parseEgressRule('[::FFFF:127.0.0.1]')).toEqual({ host: '::ffff:7f00:1', wildcard: false, port: undefined });
  });

  test('scheme, host and port must all match', () => {
    const r = rules('api.example.com', '*.example.org:8443');
    expect(check(r, 'https://api.example.com/x')).toEqual({ ok: true });
    expect(check(r, 'http://api.example.com/x')).toEqual({ ok: true });
    expect(check(r, 'https://api.example.com:8443/')).toMatchObject({ ok: false });
    expect(check(r, 'https://a.b.example.org:8443/')).toEqual({ ok: true });
    expect(check(r, 'https://example.org:8443/')).toMatchObject({ ok: false });
    expect(check(r, 'https://evilexample.org:8443/')).toMatchObject({ ok: false });
    expect(check(r, 'ftp://api.example.com/')).toMatchObject({ ok: false });
    expect(check(r, 'https://u:p@api.example.com/')).toMatchObject({ ok: false });
  });

  test('a port other than the scheme default passes only when listed with the host', () => {
    const r = rules('api.example.com', 'db.example.com:8080');
    expect(check(r, 'http://api.example.com:80/')).toEqual({ ok: true });
    expect(check(r, 'https://api.example.com:443/')).toEqual({ ok: true });
    // 443 is not the default of http, 80 not that of https.
    expect(check(r, 'http://api.example.com:443/')).toMatchObject({ ok: false, reason: expect.stringMatching(/api\.example\.com:443 is not in/) });
    expect(check(r, 'https://api.example.com:80/')).toMatchObject({ ok: false });
    expect(check(r, 'http://api.example.com:9464/')).toMatchObject({ ok: false });
    expect(check(r, 'http://db.example.com:8080/')).toEqual({ ok: true });
    expect(check(r, 'https://db.example.com:8080/')).toEqual({ ok: true });
    expect(check(r, 'http://db.example.com/')).toMatchObject({ ok: false });
    expect(check(r, 'http://db.example.com:8081/')).toMatchObject({ ok: false });
  });
});

describe('private addresses', () => {
  test('IPv4 special-purpose ranges are private', () => {
    for (const a of [
      '0.0.0.0', '0.1.2.3', '10.1.2.3', '100.64.0.1', '100.100.100.200', '100.127.255.255', '127.0.0.1', '127.255.255.254',
      '169.254.169.254', '169.254.0.1', '172.16.0.1', '172.31.255.255', '192.0.0.192', '192.0.2.1', '192.88.99.1',
      '192.168.1.1', '198.18.0.1', '198.19.255.255', '198.51.100.7', '203.0.113.9', '224.0.0.251', '239.255.255.250',
      '240.0.0.1', '255.255.255.255',
    ]) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ['93.184.216.34', '8.8.8.8', '1.1.1.1', '100.63.255.255', '100.128.0.0', '172.15.255.255', '172.32.0.0', '192.0.3.1', '198.20.0.1', '223.255.255.255']) {
      expect(isPrivateAddress(a), a).toBe(false);
    }
  });

  test('IPv6 outside public global unicast is private, and forms that embed IPv4 are judged by it', () => {
    for (const a of [
      '::', '::1', '0:0:0:0:0:0:0:1',
      // IPv4-mapped, dotted and hex, and the SIIT-translated form
      '::ffff:127.0.0.1', '::ffff:7f00:1', '::FFFF:169.254.169.254', '::ffff:a9fe:a9fe', '0:0:0:0:0:ffff:10.0.0.1', '::ffff:0:8.8.8.8',
      // IPv4-compatible (deprecated), whatever it embeds
      '::127.0.0.1', '::8.8.8.8', '::a9fe:a9fe',
      // NAT64, well-known prefix with a private IPv4, and the local-use prefix
      '64:ff9b::127.0.0.1', '64:ff9b::a9fe:a9fe', '64:ff9b::10.0.0.1', '64:ff9b:1::8.8.8.8', '64:ff9b:1:abcd::1',
      // 6to4 with a private IPv4
      '2002:7f00:1::', '2002:a9fe:a9fe::1', '2002:c0a8:101::1',
      // Teredo, benchmarking, ORCHID, documentation
      '2001::1', '2001:0:4136:e378:8000:63bf:3fff:fdd2', '2001:2::1', '2001:10::1', '2001:db8::1', '3fff::1',
      // ULA (AWS metadata fd00:ec2::254), link-local, site-local, multicast, discard-only
      'fc00::1', 'fd00:ec2::254', 'fe80::1', 'febf::1', 'fec0::1', 'ff02::1', 'ff0e::1', '100::1',
      // zone ids and non-addresses
      'fe80::1%eth0', 'not-an-ip', '',
    ]) {
      expect(isPrivateAddress(a), a).toBe(true);
    }
    for (const a of ['2606:4700::1111', '2001:4860:4860::8888', '2a00:1450:4001::1', '::ffff:8.8.8.8', '::ffff:808:808', '64:ff9b::8.8.8.8', '2002:808:808::1']) {
      expect(isPrivateAddress(a), a).toBe(false);
    }
  });

  test('odd IPv4 spellings in URLs reach the check as dotted decimal', () => {
    for (const url of ['http://2130706433/', 'http://0177.0.0.1/', 'http://0x7f.1/', 'http://0x7f.0.0.1/', 'http://127.1/', 'http://127.0.0.1./', 'http://%31%32%37.0.0.1/']) {
      expect(hostOf(new URL(url)), url).toBe('127.0.0.1');
    }
    expect(hostOf(new URL('http://169.254.43518/'))).toBe('169.254.169.254');
    expect(hostOf(new URL('http://[0:0:0:0:0:ffff:127.0.0.1]/'))).toBe('::ffff:7f00:1');
    for (const url of ['http://2130706433/', 'http://0xa9fea9fe/', 'http://[::ffff:169.254.169.254]/', 'http://[::127.0.0.1]/']) {
      expect(isPrivateAddress(hostOf(new URL(url))), url).toBe(true);
    }
  });
});

describe('parseNetworkList', () => {
  test('an empty value opens nothing', () => {
    for (const value of ['', ' ', ',']) {
      const list = parseNetworkList(value);
      expect(list.entries).toEqual([]);
      for (const a of ['127.0.0.1', '10.0.0.1', '::1', '169.254.169.254']) expect(list.includes(a)).toBe(false);
    }
  });

  test('CIDRs and single addresses, IPv4 and IPv6', () => {
    const list = parseNetworkList(' 10.0.0.0/8, 192.168.1.10 ,fd00:ec2::/32,::1');
    expect(list.entries).toEqual(['10.0.0.0/8', '192.168.1.10', 'fd00:ec2::/32', '::1']);
    for (const a of ['10.0.0.1', '10.255.255.255', '192.168.1.10', 'fd00:ec2::254', '::1']) expect(list.includes(a), a).toBe(true);
    for (const a of ['11.0.0.1', '192.168.1.11', 'fd00:ec3::1', '::2', '127.0.0.1', '169.254.169.254', 'localhost', 'fe80::1%eth0']) {
      expect(list.includes(a), a).toBe(false);
    }
  });

  test('an IPv6 form that leads to an opened IPv4 address is opened with it', () => {
    const list = parseNetworkList('10.0.0.0/8');
    for (const a of ['::ffff:10.0.0.1', '::ffff:a00:1', '64:ff9b::10.0.0.1', '2002:a00:1::1']) expect(list.includes(a), a).toBe(true);
    for (const a of ['::ffff:127.0.0.1', '64:ff9b::a9fe:a9fe', '::10.0.0.1', '64:ff9b:1::a00:1']) expect(list.includes(a), a).toBe(false);
  });

  test('a malformed entry throws an error naming it', () => {
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0', '010.0.0.1', 'localhost', '10.0.0.0/8/8', '10.0.0.0/', '10.0.0.0/-1', 'fe80::1%eth0', '[::1]', '*']) {
      expect(() => parseNetworkList(`192.168.0.0/16, ${bad}`), bad).toThrow(`"${bad}"`);
    }
  });
});

test('Retry-After as seconds or date', () => {
  expect(retryAfterMs('5')).toBe(5000);
  expect(retryAfterMs(new Date(Date.now() + 60_000).toUTCString())).toBeGreaterThan(50_000);
  expect(retryAfterMs('soon')).toBeUndefined();
  expect(retryAfterMs(undefined)).toBeUndefined();
});
