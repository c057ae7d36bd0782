// IP address and prefix arithmetic for policy matching and decision tie-breaks (RFC 4291 text
// forms for IPv6, dotted quads for IPv4). IPv4 values are unsigned 32-bit numbers, IPv6 values
// bigints: IPv4 is the hot path (a million prefix checks per full table) and stays in Smi land.
// Address text is parsed by daemon/lib/ip.ts, the one parser of nrd.
import { bytesToIpValue, ipv4Number, parseIpv6Into } from '../../lib/ip.js';

export type ParsedAddress = { afi: 1; value: number } | { afi: 2; value: bigint };
export type ParsedPrefix = ParsedAddress & { length: number };

/** Dotted quad to unsigned 32-bit number, or -1 when the text is not an IPv4 address. */
export const parseIpv4: (text: string) => number = ipv4Number;

const v6bytes = new Uint8Array(16);

/** RFC 4291 §2.2 text (with "::" and an embedded dotted quad) to a 128-bit bigint, or null. */
export function parseIpv6(text: string): bigint | null {
  if (!parseIpv6Into(text, v6bytes, 0)) return null;
  return bytesToIpValue(v6bytes).value;
}

export function parseAddress(text: string): ParsedAddress | null {
  const v4 = parseIpv4(text);
  if (v4 >= 0) return { afi: 1, value: v4 };
  const v6 = parseIpv6(text);
  return v6 === null ? null : { afi: 2, value: v6 };
}

/** "a.b.c.d/len" or "x::/len"; null when malformed or when host bits are set. */
export function parsePrefix(text: string): ParsedPrefix | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const lenText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lenText)) return null;
  const length = Number(lenText);
  const addr = parseAddress(text.slice(0, slash));
  if (!addr) return null;
  if (addr.afi === 1) {
    if (length > 32 || (addr.value & ~maskV4(length)) !== 0) return null;
    return { afi: 1, value: addr.value, length };
  }
  if (length > 128 || (addr.value & ~maskV6(length)) !== 0n) return null;
  return { afi: 2, value: addr.value, length };
}

export function maskV4(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

const ALL_V6 = (1n << 128n) - 1n;
export function maskV6(length: number): bigint {
  return length === 0 ? 0n : (ALL_V6 >> BigInt(128 - length)) << BigInt(128 - length);
}

/** True when `inner` lies inside (or equals) `outer`. */
export function prefixContains(outer: ParsedPrefix, inner: ParsedPrefix): boolean {
  if (outer.afi !== inner.afi || inner.length < outer.length) return false;
  if (outer.afi === 1) return ((inner.value as number) & maskV4(outer.length)) >>> 0 === outer.value;
  return ((inner.value as bigint) & maskV6(outer.length)) === outer.value;
}

/**
 * Total order on addresses: IPv4 before IPv6, then numerically. Unparseable text sorts last and
 * by string, so a bad value can never make the decision process non-deterministic.
 */
export function compareAddresses(a: string, b: string): number {
  if (a === b) return 0;
  const pa = parseAddress(a);
  const pb = parseAddress(b);
  if (!pa || !pb) return pa ? -1 : pb ? 1 : a < b ? -1 : 1;
  if (pa.afi !== pb.afi) return pa.afi - pb.afi;
  return pa.value < pb.value ? -1 : pa.value > pb.value ? 1 : 0;
}
