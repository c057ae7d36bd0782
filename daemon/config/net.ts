// Address, prefix and community text parsing for the site config (IPv4/IPv6 text forms of
// RFC 4291 §2.2 and RFC 5952, communities of RFC 1997 and RFC 8092). Pure, no I/O.
import { isIP } from 'node:net';

export type Family = 4 | 6;

export interface ParsedIp {
  family: Family;
  /** The address as an unsigned integer of 32 or 128 bits. */
  value: bigint;
}

export interface ParsedCidr {
  family: Family;
  /** Network address with the host bits as written (see `hostBitsSet`). */
  value: bigint;
  prefixLength: number;
  /** Canonical text of the network (host bits cleared). */
  network: string;
  hostBitsSet: boolean;
}

export const familyBits = (f: Family): number => (f === 4 ? 32 : 128);

/** Parses an IPv4 or IPv6 address; zone ids ("%eth0") are refused: the config names interfaces apart. */
export function parseIp(text: string): ParsedIp | null {
  if (typeof text !== 'string' || text.includes('%')) return null;
  const fam = isIP(text);
  if (fam === 4) return { family: 4, value: v4ToBig(text) };
  if (fam === 6) return { family: 6, value: v6ToBig(text) };
  return null;
}

function v4ToBig(text: string): bigint {
  return text.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n);
}

function v6ToBig(text: string): bigint {
  let s = text;
  // An embedded IPv4 tail (::ffff:192.0.2.1) becomes two hextets.
  const lastColon = s.lastIndexOf(':');
  const tail = s.slice(lastColon + 1);
  if (tail.includes('.')) {
    const v4 = v4ToBig(tail);
    s = `${s.slice(0, lastColon + 1)}${(v4 >> 16n).toString(16)}:${(v4 & 0xffffn).toString(16)}`;
  }
  const [head, rest] = s.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const r = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups = rest === undefined ? h : [...h, ...Array<string>(8 - h.length - r.length).fill('0'), ...r];
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(parseInt(g, 16)), 0n);
}

/** Canonical text of an address (RFC 5952 for IPv6: lowercase, longest zero run compressed). */
export function formatIp(family: Family, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  }
  const g: number[] = [];
  for (let i = 7; i >= 0; i--) g.push(Number((value >> BigInt(i * 16)) & 0xffffn));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}

/** Parses "address/length"; a prefix with host bits set parses, flagged, so the caller can say which network was meant. */
export function parseCidr(text: string): ParsedCidr | null {
  if (typeof text !== 'string') return null;
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIp(text.slice(0, slash));
  const lenText = text.slice(slash + 1);
  if (!ip || !/^\d{1,3}$/.test(lenText)) return null;
  const prefixLength = Number(lenText);
  const bits = familyBits(ip.family);
  if (prefixLength > bits) return null;
  const hostMask = (1n << BigInt(bits - prefixLength)) - 1n;
  const net = ip.value & ~hostMask;
  return {
    family: ip.family,
    value: net,
    prefixLength,
    network: `${formatIp(ip.family, net)}/${prefixLength}`,
    hostBitsSet: (ip.value & hostMask) !== 0n,
  };
}

/** True when prefix `inner` lies inside prefix `outer` (same family, at least as long). */
export function cidrContains(outer: ParsedCidr, inner: ParsedCidr): boolean {
  if (outer.family !== inner.family || inner.prefixLength < outer.prefixLength) return false;
  const shift = BigInt(familyBits(outer.family) - outer.prefixLength);
  return inner.value >> shift === outer.value >> shift;
}

export function cidrOverlaps(a: ParsedCidr, b: ParsedCidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}

export function cidrHasIp(net: ParsedCidr, ip: ParsedIp): boolean {
  return cidrContains(net, { family: ip.family, value: ip.value, prefixLength: familyBits(ip.family), network: '', hostBitsSet: false });
}

/** RFC 1997 §"Well-known Communities" plus RFC 7999 BLACKHOLE, by the names BIRD and FRR use. */
export const WELL_KNOWN_COMMUNITIES: Readonly<Record<string, number>> = Object.freeze({
  'graceful-shutdown': 0xffff0000, // RFC 8326
  blackhole: 0xffff029a, // RFC 7999
  'no-export': 0xffffff01,
  'no-advertise': 0xffffff02,
  'no-export-subconfed': 0xffffff03,
  'no-peer': 0xffffff04, // RFC 3765
});

/** "65000:100" or a well-known name → the 32-bit community value; null when malformed. */
export function parseCommunity(text: string): number | null {
  if (typeof text !== 'string') return null;
  const named = WELL_KNOWN_COMMUNITIES[text.toLowerCase()];
  if (named !== undefined && Object.prototype.hasOwnProperty.call(WELL_KNOWN_COMMUNITIES, text.toLowerCase())) return named;
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(text);
  if (!m) return null;
  const hi = Number(m[1]);
  const lo = Number(m[2]);
  if (hi > 0xffff || lo > 0xffff) return null;
  return hi * 0x10000 + lo;
}

/** "global:local1:local2" (RFC 8092), each part 0..4294967295; null when malformed. */
export function parseLargeCommunity(text: string): { global: number; local1: number; local2: number } | null {
  if (typeof text !== 'string') return null;
  const m = /^(\d{1,10}):(\d{1,10}):(\d{1,10})$/.exec(text);
  if (!m) return null;
  const parts = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (parts.some((p) => p > 0xffffffff)) return null;
  return { global: parts[0]!, local1: parts[1]!, local2: parts[2]! };
}
