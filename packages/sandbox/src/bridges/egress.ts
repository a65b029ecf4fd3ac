import { BlockList, isIP } from 'node:net';

/** One entry of a tool's `egress` list: `host`, `host:port`, `*.example.com`, `[::1]:8080`. */
export type EgressRule = {
  /** Lower-case host name or IP literal (IPv6 without brackets); for wildcards, the suffix after `*.`. */
  host: string;
  wildcard: boolean;
  /** Without a port, only the scheme's default port (80, 443) is allowed. */
  port: number | undefined;
};

const RULE = /^(\*\.)?([a-z0-9-]+(?:\.[a-z0-9-]+)*|\[[0-9a-f:.]+\])(?::(\d{1,5}))?$/i;

/** Parses an `egress` entry; `undefined` if it is malformed (registration refuses those). */
export function parseEgressRule(entry: string): EgressRule | undefined {
  const m = RULE.exec(entry.trim());
  if (!m) return undefined;
  const wildcard = m[1] !== undefined;
  let host = m[2]!.toLowerCase();
  if (host.startsWith('[')) {
    if (wildcard) return undefined;
    host = host.slice(1, -1);
    if (isIP(host) !== 6) return undefined;
  }
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && (port < 1 || port > 65_535)) return undefined;
  return { host, wildcard, port };
}

export function defaultPort(protocol: string): number {
  return protocol === 'https:' ? 443 : 80;
}

/**
 * The rule that lets `url` through, or why none does. `literal` is true when the host itself is
 * listed (no wildcard): only then may it resolve to a private or loopback address.
 */
export function matchEgress(
  rules: readonly EgressRule[],
  url: URL,
): { ok: true; literal: boolean } | { ok: false; reason: string } {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { ok: false, reason: `scheme ${url.protocol} is not allowed, only http and https` };
  }
  if (url.username || url.password) return { ok: false, reason: 'credentials in the URL are not allowed' };
  const host = hostOf(url);
  const port = url.port === '' ? defaultPort(url.protocol) : Number(url.port);
  for (const rule of rules) {
    const portOk = rule.port === undefined ? port === defaultPort(url.protocol) : port === rule.port;
    if (!portOk) continue;
    if (!rule.wildcard && host === rule.host) return { ok: true, literal: true };
    if (rule.wildcard && host.endsWith(`.${rule.host}`)) return { ok: true, literal: false };
  }
  return { ok: false, reason: `${host}:${port} is not in the tool's egress list` };
}

/** The URL's host, lower case, IPv6 without brackets. */
export function hostOf(url: URL): string {
  const h = url.hostname.toLowerCase();
  return h.startsWith('[') ? h.slice(1, -1) : h;
}

// Two lists: a BlockList checks IPv4 addresses against its IPv6 rules too (as mapped addresses).
const PRIVATE_V4 = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16],
  ['172.16.0.0', 12], ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4],
  ['240.0.0.0', 4],
] as const) {
  PRIVATE_V4.addSubnet(net, bits, 'ipv4');
}
const PRIVATE_V6 = new BlockList();
for (const [net, bits] of [
  ['::', 96], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96], ['2001:db8::', 32],
] as const) {
  PRIVATE_V6.addSubnet(net, bits, 'ipv6');
}

/**
 * True for loopback, private, link-local (cloud metadata lives at 169.254.169.254), CGNAT,
 * multicast, unspecified and reserved addresses, IPv4-mapped IPv6 forms included.
 */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return PRIVATE_V4.check(address, 'ipv4');
  if (family !== 6) return true;
  const v4 = mappedIpv4(address.toLowerCase());
  if (v4 !== undefined) return PRIVATE_V4.check(v4, 'ipv4');
  return PRIVATE_V6.check(address, 'ipv6');
}

/** `::ffff:1.2.3.4` or `::ffff:102:304` → `1.2.3.4`. */
function mappedIpv4(address: string): string | undefined {
  const dotted = /^(?:0{0,4}:){0,5}:?ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(address);
  if (dotted) return dotted[1];
  const hex = /^(?:0{0,4}:){0,5}:?ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(address);
  if (!hex) return undefined;
  const hi = parseInt(hex[1]!, 16);
  const lo = parseInt(hex[2]!, 16);
  return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
}
