// Address, prefix and community text parsing for the site config (IPv4/IPv6 text forms of
// RFC 4291 §2.2 and RFC 5952, communities of RFC 1997 and RFC 8092). Pure, no I/O.
import * as ip from '../lib/ip.js';

export type Family = ip.Family;

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

export const familyBits = ip.familyBits;

/** Parses an IPv4 or IPv6 address; zone ids ("%eth0") are refused: the config names interfaces apart. */
export function parseIp(text: string): ParsedIp | null {
  return ip.parseIp(text);
}

/** Canonical text of an address (RFC 5952 for IPv6: lowercase, longest zero run compressed). */
export const formatIp = ip.formatIp;

/** Parses "address/length"; a prefix with host bits set parses, flagged, so the caller can say which network was meant. */
export function parseCidr(text: string): ParsedCidr | null {
  const r = ip.parseCidr(text);
  if (!r.ok) return null;
  return { ...r.cidr, network: ip.formatCidr(r.cidr), hostBitsSet: r.hostBitsSet };
}

/** True when prefix `inner` lies inside prefix `outer` (same family, at least as long). */
export const cidrContains: (outer: ParsedCidr, inner: ParsedCidr) => boolean = ip.cidrContains;

export const cidrOverlaps: (a: ParsedCidr, b: ParsedCidr) => boolean = ip.cidrsOverlap;

export const cidrHasIp: (net: ParsedCidr, addr: ParsedIp) => boolean = ip.cidrContainsIp;

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
