// Pure IPv4/IPv6 address and prefix arithmetic on bigint (RFC 4291 parsing, RFC 5952 text form):
// parse, format, subnet enumeration of a pool, host addresses of a CIDR.
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

export interface Cidr {
  family: Family;
  /** Network address (host bits zero). */
  addr: bigint;
  prefixLen: number;
}

export const bitsOf = (f: Family): number => (f === 4 ? 32 : 128);

export function familyOf(ip: string): Family | null {
  if (isIPv4(ip)) return 4;
  if (isIPv6(ip)) return 6;
  return null;
}

/** Parse an address; throws on invalid text. IPv4-embedded IPv6 forms are accepted. */
export function parseIp(ip: string): { family: Family; addr: bigint } {
  if (isIPv4(ip)) {
    const n = ip.split('.').reduce((acc, o) => (acc << 8n) | BigInt(Number(o)), 0n);
    return { family: 4, addr: n };
  }
  if (!isIPv6(ip)) throw new Error(`invalid IP address "${ip}"`);
  let text = ip.toLowerCase();
  // Trailing dotted quad: fold into two hextets.
  const m = /^(.*:)(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (m) {
    const v4 = parseIp(m[2]!).addr;
    text = `${m[1]}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const fill = tail === undefined ? 0 : 8 - h.length - t.length;
  const groups = [...h, ...Array<string>(fill).fill('0'), ...t];
  if (groups.length !== 8) throw new Error(`invalid IP address "${ip}"`);
  return { family: 6, addr: groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

export function formatIp(family: Family, addr: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((addr >> s) & 0xffn)).join('.');
  }
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((addr >> BigInt(i * 16)) & 0xffffn));
  // RFC 5952 §4.2: compress the longest run (≥ 2) of zero groups, the first one on a tie.
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function maskOf(family: Family, prefixLen: number): bigint {
  const bits = BigInt(bitsOf(family));
  return ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(prefixLen))) - 1n);
}

/**
 * Parse "a.b.c.d/n" or "x::/n". With `strict` (the default) host bits must be zero: a pool or a
 * CIDR with host bits set is almost always a typo worth refusing.
 */
export function parseCidr(text: string, strict = true): Cidr {
  const slash = text.indexOf('/');
  if (slash < 0) throw new Error(`invalid CIDR "${text}": missing /prefix-length`);
  const ipText = text.slice(0, slash);
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText)) throw new Error(`invalid CIDR "${text}": bad prefix length`);
  const { family, addr } = parseIp(ipText);
  const prefixLen = Number(lenText);
  if (prefixLen > bitsOf(family)) throw new Error(`invalid CIDR "${text}": prefix length above ${bitsOf(family)}`);
  const net = addr & maskOf(family, prefixLen);
  if (strict && net !== addr) throw new Error(`invalid CIDR "${text}": host bits set (network is ${formatIp(family, net)}/${prefixLen})`);
  return { family, addr: net, prefixLen };
}

export function formatCidr(c: Cidr): string {
  return `${formatIp(c.family, c.addr)}/${c.prefixLen}`;
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return (
    outer.family === inner.family &&
    inner.prefixLen >= outer.prefixLen &&
    (inner.addr & maskOf(outer.family, outer.prefixLen)) === outer.addr
  );
}

export function cidrContainsIp(c: Cidr, family: Family, addr: bigint): boolean {
  return c.family === family && (addr & maskOf(family, c.prefixLen)) === c.addr;
}

export function cidrsOverlap(a: Cidr, b: Cidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}

/** Number of /maskSize subnets in a pool. */
export function subnetCount(pool: Cidr, maskSize: number): bigint {
  if (maskSize < pool.prefixLen || maskSize > bitsOf(pool.family)) {
    throw new Error(`mask size /${maskSize} does not fit pool ${formatCidr(pool)}`);
  }
  return 1n << BigInt(maskSize - pool.prefixLen);
}

/** The i-th /maskSize subnet of the pool. */
export function subnetAt(pool: Cidr, maskSize: number, i: bigint): Cidr {
  const shift = BigInt(bitsOf(pool.family) - maskSize);
  return { family: pool.family, addr: pool.addr + (i << shift), prefixLen: maskSize };
}

/** Index of a subnet inside its pool (inverse of subnetAt). */
export function subnetIndex(pool: Cidr, sub: Cidr): bigint {
  return (sub.addr - pool.addr) >> BigInt(bitsOf(pool.family) - sub.prefixLen);
}

export function hostCount(c: Cidr): bigint {
  return 1n << BigInt(bitsOf(c.family) - c.prefixLen);
}

/**
 * Offsets inside a CIDR that endpoints may get: not the network address (the IPv6 subnet-router
 * anycast, and .0 in IPv4) and, in IPv4 subnets larger than /31, not the broadcast address.
 */
export function usableRange(c: Cidr): { first: bigint; last: bigint } {
  const n = hostCount(c);
  if (n <= 2n) return { first: 0n, last: n - 1n };
  return { first: 1n, last: c.family === 4 ? n - 2n : n - 1n };
}
