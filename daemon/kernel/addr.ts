// IP address and prefix helpers for the kernel port: text <-> bytes for rtnetlink attributes
// (RTA_DST, RTA_GATEWAY, NDA_DST, IFA_ADDRESS) and prefix containment. IPv4 (RFC 791) and IPv6
// (RFC 4291 text forms, RFC 5952 canonical output).
import { formatIpBytes, ipFamily, maskBytesInPlace, parseIpBytes, parseIpv4Into, type Family } from '../lib/ip.js';

export type { Family } from '../lib/ip.js';

export function familyOf(address: string): Family {
  const f = ipFamily(address);
  if (f !== null) return f;
  throw new Error(`not an IP address: ${JSON.stringify(address)}`);
}

/** Dotted-quad parse without regexes (the route encoder's hot path); null when not IPv4. */
function parseV4(a: string): Buffer | null {
  const b = Buffer.allocUnsafe(4);
  return parseIpv4Into(a, b, 0) ? b : null;
}

/** Network-order bytes of an IPv4 or IPv6 address. */
export function ipToBytes(address: string): Buffer {
  const b = parseIpBytes(address);
  if (!b) throw new Error(`not an IP address: ${JSON.stringify(address)}`);
  return b;
}

/** Text form of 4 or 16 address bytes (RFC 5952 for IPv6). */
export const bytesToIp: (b: Uint8Array) => string = formatIpBytes;

export interface Prefix {
  family: Family;
  /** Network address bytes, host bits zero. */
  bytes: Buffer;
  len: number;
}

/** Parse 'a.b.c.d/n' or 'x::/n' (a bare address is a host prefix); host bits are cleared. */
export function parsePrefix(text: string): Prefix {
  const slash = text.indexOf('/');
  const addr = slash < 0 ? text : text.slice(0, slash);
  const v4 = parseV4(addr);
  const family: Family = v4 ? 4 : familyOf(addr);
  const max = family === 4 ? 32 : 128;
  const len = slash < 0 ? max : Number(text.slice(slash + 1));
  if (!Number.isInteger(len) || len < 0 || len > max) throw new Error(`bad prefix length in ${JSON.stringify(text)}`);
  const bytes = v4 ?? ipToBytes(addr);
  maskBytesInPlace(bytes, len);
  return { family, bytes, len };
}

/** Canonical text of a prefix: host bits zero, RFC 5952 for IPv6. */
export function canonicalPrefix(text: string): string {
  const p = parsePrefix(text);
  return `${bytesToIp(p.bytes)}/${p.len}`;
}

/** True when `address` lies inside `prefix`. */
export function prefixContains(prefix: string, address: string): boolean {
  const p = parsePrefix(prefix);
  if (familyOf(address) !== p.family) return false;
  const a = ipToBytes(address);
  maskBytesInPlace(a, p.len);
  return a.equals(p.bytes);
}

/** The first address of a prefix (its network address), e.g. 10.244.1.0 for 10.244.1.0/24. */
export function firstAddress(prefix: string): string {
  return bytesToIp(parsePrefix(prefix).bytes);
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Lower-case colon form of a 6-byte MAC; throws on anything else. */
export function canonicalMac(mac: string): string {
  const m = mac.toLowerCase();
  if (!MAC_RE.test(m)) throw new Error(`not a MAC address: ${JSON.stringify(mac)}`);
  return m;
}

export function macToBytes(mac: string): Buffer {
  return Buffer.from(canonicalMac(mac).split(':').map((h) => parseInt(h, 16)));
}

export function bytesToMac(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join(':');
}
