// Pure IPv4/IPv6 address and prefix arithmetic on bigint (RFC 4291 parsing, RFC 5952 text form):
// parse, format, subnet enumeration of a pool, host addresses of a CIDR.
import * as ip from '../lib/ip.js';

export type Family = ip.Family;

export interface Cidr {
  family: Family;
  /** Network address (host bits zero). */
  addr: bigint;
  prefixLen: number;
}

export const bitsOf = ip.familyBits;

/** Family of an address text (zone ids refused, as everywhere in nrd), or null. */
export const familyOf: (text: string) => Family | null = ip.ipFamily;

/** Parse an address; throws on invalid text. IPv4-embedded IPv6 forms are accepted. */
export function parseIp(text: string): { family: Family; addr: bigint } {
  const a = ip.parseIp(text);
  if (!a) throw new Error(`invalid IP address "${text}"`);
  return { family: a.family, addr: a.value };
}

export const formatIp = ip.formatIp;

export const maskOf = ip.maskOf;

const toLib = (c: Cidr): ip.IpCidr => ({ family: c.family, value: c.addr, prefixLength: c.prefixLen });

/**
 * Parse "a.b.c.d/n" or "x::/n". With `strict` (the default) host bits must be zero: a pool or a
 * CIDR with host bits set is almost always a typo worth refusing.
 */
export function parseCidr(text: string, strict = true): Cidr {
  const r = ip.parseCidr(text);
  if (!r.ok) {
    switch (r.error) {
      case 'missing-length':
        throw new Error(`invalid CIDR "${text}": missing /prefix-length`);
      case 'bad-length':
        throw new Error(`invalid CIDR "${text}": bad prefix length`);
      case 'bad-address':
        throw new Error(`invalid IP address "${text.slice(0, text.indexOf('/'))}"`);
      case 'length-too-long':
        throw new Error(`invalid CIDR "${text}": prefix length above ${bitsOf(r.family ?? 6)}`);
    }
  }
  const c: Cidr = { family: r.cidr.family, addr: r.cidr.value, prefixLen: r.cidr.prefixLength };
  if (strict && r.hostBitsSet) throw new Error(`invalid CIDR "${text}": host bits set (network is ${formatCidr(c)})`);
  return c;
}

export function formatCidr(c: Cidr): string {
  return ip.formatCidr(toLib(c));
}

export function cidrContains(outer: Cidr, inner: Cidr): boolean {
  return ip.cidrContains(toLib(outer), toLib(inner));
}

export function cidrContainsIp(c: Cidr, family: Family, addr: bigint): boolean {
  return ip.cidrContainsIp(toLib(c), { family, value: addr });
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
