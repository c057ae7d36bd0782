// Address, prefix and community text parsing for the site config (IPv4/IPv6 text forms of
// RFC 4291 §2.2 and RFC 5952; communities of RFC 1997 and RFC 8092 through the BGP codec's one
// parser, daemon/bgp/wire/communities.ts). Pure, no I/O.
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

// Communities have one parser, shared with the BGP speaker's export policy (a pure codec module:
// the config layer does not depend on the speaker).
export { parseCommunity, parseLargeCommunity, WELL_KNOWN_COMMUNITIES } from '../bgp/wire/communities.js';
