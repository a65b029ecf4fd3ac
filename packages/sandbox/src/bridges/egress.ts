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
  if (wildcard && m[2]!.startsWith('[')) return undefined;
  // The host as a URL spells it, so that a rule and a URL compare equal: `0x7f.1` and `2130706433`
  // are `127.0.0.1`, `[0::1]` is `[::1]`. A wildcard over an IP address means nothing.
  let host: string;
  try {
    host = hostOf(new URL(`http://${m[2]!}/`));
  } catch {
    return undefined;
  }
  if (wildcard && isIP(host) !== 0) return undefined;
  const port = m[3] === undefined ? undefined : Number(m[3]);
  if (port !== undefined && (port < 1 || port > 65_535)) return undefined;
  return { host, wildcard, port };
}

export function defaultPort(protocol: string): number {
  return protocol === 'https:' ? 443 : 80;
}

/**
 * The rule that lets `url` through, or why none does. A match says nothing about the address the
 * host resolves to: private ranges are refused whatever the rules say (see {@link isPrivateAddress}).
 */
export function matchEgress(rules: readonly EgressRule[], url: URL): { ok: true } | { ok: false; reason: string } {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    return { ok: false, reason: `scheme ${url.protocol} is not allowed, only http and https` };
  }
  if (url.username || url.password) return { ok: false, reason: 'credentials in the URL are not allowed' };
  const host = hostOf(url);
  const port = url.port === '' ? defaultPort(url.protocol) : Number(url.port);
  for (const rule of rules) {
    const portOk = rule.port === undefined ? port === defaultPort(url.protocol) : port === rule.port;
    if (!portOk) continue;
    if (!rule.wildcard && host === rule.host) return { ok: true };
    if (rule.wildcard && host.endsWith(`.${rule.host}`)) return { ok: true };
  }
  return { ok: false, reason: `${host}:${port} is not in the tool's egress list` };
}

/**
 * The URL's host, lower case, IPv6 without brackets. WHATWG parsing has already turned every IPv4
 * spelling (`2130706433`, `0177.0.0.1`, `0x7f.1`, `127.1`, `127.0.0.1.`) into dotted decimal and
 * every IPv6 one into its short form, so the checks only ever see those.
 */
export function hostOf(url: URL): string {
  const h = url.hostname.toLowerCase();
  return h.startsWith('[') ? h.slice(1, -1) : h;
}

/** IPv4 ranges that are not the public Internet (IANA special-purpose registry, RFC 6890). */
const SPECIAL_V4 = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], // "this network"; 0.0.0.0 reaches the host itself
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // CGNAT; Alibaba Cloud's metadata service is 100.100.100.200
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local; AWS, GCP and Azure metadata live at 169.254.169.254
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments; Oracle Cloud's metadata is 192.0.0.192
  ['192.0.2.0', 24], // documentation (TEST-NET-1)
  ['192.88.99.0', 24], // 6to4 relay anycast, deprecated
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation (TEST-NET-2)
  ['203.0.113.0', 24], // documentation (TEST-NET-3)
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, and 255.255.255.255 broadcast
] as const) {
  SPECIAL_V4.addSubnet(net, bits, 'ipv4');
}

/**
 * True for every address a tenant may not reach unless the operator opened it: loopback, private,
 * link-local (cloud metadata), CGNAT, multicast, unspecified, reserved, benchmarking and
 * documentation ranges, and anything that is not an IP address at all.
 *
 * IPv6 is public only inside global unicast (2000::/3), which leaves out `::`, `::1`, the
 * IPv4-compatible `::a.b.c.d`, ULA fc00::/7, link-local fe80::/10, site-local fec0::/10, multicast
 * ff00::/8, the local-use NAT64 prefix 64:ff9b:1::/48 and the rest of the unassigned space. Inside
 * it, 2001::/23 (Teredo 2001::/32, benchmarking, ORCHID), documentation 2001:db8::/32 and 3fff::/20
 * are refused too. Forms that lead to an IPv4 address are judged by that address: IPv4-mapped
 * `::ffff:a.b.c.d` (dotted or hex), NAT64 64:ff9b::/96 and 6to4 2002::/16. Zone ids (`fe80::1%eth0`)
 * are refused.
 */
export function isPrivateAddress(address: string): boolean {
  const family = isIP(address);
  if (family === 4) return SPECIAL_V4.check(address, 'ipv4');
  if (family !== 6 || address.includes('%')) return true;
  const groups = ipv6Groups(address);
  const v4 = embeddedIpv4(groups);
  if (v4 !== undefined) return SPECIAL_V4.check(v4, 'ipv4');
  const [g0 = 0, g1 = 0] = groups;
  const globalUnicast = (g0 & 0xe000) === 0x2000;
  const special =
    (g0 === 0x2001 && g1 < 0x200) || (g0 === 0x2001 && g1 === 0xdb8) || (g0 === 0x3fff && g1 < 0x1000);
  return !globalUnicast || special;
}

/**
 * Address ranges the operator opened to tenants (`TOOLPLANE_ALLOW_PRIVATE_NETWORKS`), made by
 * {@link parseNetworkList}. A private address passes only if the list includes it.
 */
export type NetworkList = {
  /**
   * True when `address` is in one of the ranges. An IPv6 form that leads to an IPv4 address
   * (`::ffff:10.0.0.1`, `64:ff9b::a00:1`, `2002:a00:1::`) is in the list if that IPv4 address is.
   */
  includes(address: string): boolean;
  /** The entries as given, for logs. */
  readonly entries: readonly string[];
};

/**
 * Parses a comma-separated list of CIDRs and single addresses, IPv4 or IPv6, e.g.
 * `10.0.0.0/8, 192.168.1.10, fd00::/8`. Empty entries are skipped, so `''` opens nothing.
 * @throws Error naming the first malformed entry.
 */
export function parseNetworkList(value: string): NetworkList {
  const blocks = new BlockList();
  const entries: string[] = [];
  for (const raw of value.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    const m = /^([0-9a-fA-F:.]+)(?:\/(\d{1,3}))?$/.exec(entry);
    const family = m ? isIP(m[1]!) : 0;
    const bits = m?.[2] === undefined ? undefined : Number(m[2]);
    if (!m || family === 0 || (bits !== undefined && bits > (family === 4 ? 32 : 128))) {
      throw new Error(`"${entry}" is not an IPv4 or IPv6 address or CIDR range`);
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (bits === undefined) blocks.addAddress(m[1]!, type);
    else blocks.addSubnet(m[1]!, bits, type);
    entries.push(entry);
  }
  return Object.freeze({
    entries: Object.freeze(entries),
    includes(address: string): boolean {
      const family = isIP(address);
      if (family === 0 || address.includes('%')) return false;
      if (blocks.check(address, family === 4 ? 'ipv4' : 'ipv6')) return true;
      const v4 = family === 6 ? embeddedIpv4(ipv6Groups(address)) : undefined;
      return v4 !== undefined && blocks.check(v4, 'ipv4');
    },
  });
}

/** The eight 16-bit groups of a valid IPv6 address (as `isIP` accepts it, without a zone id). */
function ipv6Groups(address: string): number[] {
  const parse = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((g) => {
          if (!g.includes('.')) return [parseInt(g, 16)];
          const [a = 0, b = 0, c = 0, d = 0] = g.split('.').map(Number);
          return [(a << 8) | b, (c << 8) | d];
        });
  const [head = '', tail] = address.split('::');
  const hi = parse(head);
  if (tail === undefined) return hi;
  const lo = parse(tail);
  return [...hi, ...new Array<number>(8 - hi.length - lo.length).fill(0), ...lo];
}

/**
 * The IPv4 address a connection to this IPv6 address reaches: IPv4-mapped `::ffff:0:0/96`, NAT64
 * `64:ff9b::/96` (the translator connects to it) and 6to4 `2002::/16` (a relay tunnels to it).
 */
function embeddedIpv4(groups: readonly number[]): string | undefined {
  const g = (i: number) => groups[i] ?? 0;
  const dotted = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  const zeroes = (from: number, to: number) => groups.slice(from, to).every((x) => x === 0);
  if (zeroes(0, 5) && g(5) === 0xffff) return dotted(g(6), g(7));
  if (g(0) === 0x64 && g(1) === 0xff9b && zeroes(2, 6)) return dotted(g(6), g(7));
  if (g(0) === 0x2002) return dotted(g(1), g(2));
  return undefined;
}
