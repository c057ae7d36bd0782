// Address and prefix text <-> wire octets for the BGP codec: RFC 4271 §4.3 NLRI (length + minimal
// prefix octets), RFC 7911 path identifiers, RFC 5952 canonical IPv6 text. The IPv4 NLRI loop is the
// hot path of a full-table ingest: no closures, table-driven text, one object per prefix.
import type { Nlri } from '../types.js';
import { formatIpv6At, parseIpv4Into, parseIpv6Into } from '../../lib/ip.js';

const DEC: string[] = [];
const DOTTED: string[] = [];
for (let i = 0; i < 256; i++) {
  DEC.push(String(i));
  DOTTED.push(`${i}.`);
}
const SUFFIX: string[] = [];
for (let i = 0; i <= 128; i++) SUFFIX.push(`/${i}`);

export function ipv4Text(b: Uint8Array, off: number): string {
  return DOTTED[b[off]!]! + DOTTED[b[off + 1]!]! + DOTTED[b[off + 2]!]! + DEC[b[off + 3]!]!;
}

/** Canonical text of an IPv4 prefix given as an unsigned 32-bit address (host bits zero) and length. */
export function ipv4PrefixText(v: number, len: number): string {
  return DOTTED[v >>> 24]! + DOTTED[(v >>> 16) & 0xff]! + DOTTED[(v >>> 8) & 0xff]! + DEC[v & 0xff]! + SUFFIX[len]!;
}

/** RFC 5952: lowercase, no leading zeros, the longest run (>= 2) of zero groups as "::". */
export const ipv6Text: (b: Uint8Array, off: number) => string = formatIpv6At;

/** Text to wire octets: the one parser of daemon/lib/ip.ts (allocation-free). */
export const parseIpv4: (text: string, out: Uint8Array, off: number) => boolean = parseIpv4Into;
export const parseIpv6: (text: string, out: Uint8Array, off: number) => boolean = parseIpv6Into;

const nh16 = new Uint8Array(16);

/** Canonical text of an address given in any accepted form, or null when invalid. */
export function canonicalAddress(text: string): string | null {
  if (parseIpv4(text, nh16, 0)) return ipv4Text(nh16, 0);
  if (parseIpv6(text, nh16, 0)) return ipv6Text(nh16, 0);
  return null;
}

const pfx = new Uint8Array(16);

/**
 * Decode a run of NLRI (RFC 4271 §4.3, RFC 4760 §5) between start and end into `out`.
 * Returns null, or the reason the field is malformed (prefix too long, overrun).
 * Host bits beyond the prefix length are cleared: prefix text is canonical.
 */
/** Four octets at `p` as an unsigned 32-bit value (RFC 7911 path identifiers). */
export function u32be(buf: Uint8Array, p: number): number {
  return ((buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!) >>> 0;
}

/**
 * An IPv4 prefix of `len` bits stored in its (len + 7) >> 3 octets at `p` (RFC 4271 §4.3), as a
 * 32-bit value with the host bits cleared. The caller checked that the octets are there.
 */
export function ipv4PrefixValue(buf: Uint8Array, p: number, len: number): number {
  let v = 0;
  switch ((len + 7) >> 3) {
    case 4:
      v = (buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8) | buf[p + 3]!;
      break;
    case 3:
      v = (buf[p]! << 24) | (buf[p + 1]! << 16) | (buf[p + 2]! << 8);
      break;
    case 2:
      v = (buf[p]! << 24) | (buf[p + 1]! << 16);
      break;
    case 1:
      v = buf[p]! << 24;
      break;
  }
  return len < 32 ? v & (len === 0 ? 0 : ~0 << (32 - len)) : v;
}

export function decodePrefixes(
  buf: Uint8Array,
  start: number,
  end: number,
  afi: number,
  addPath: boolean,
  out: Nlri[],
): string | null {
  if (afi !== 1 && afi !== 2) return `no NLRI format for AFI ${afi}`;
  const maxLen = afi === 1 ? 32 : 128;
  let p = start;
  while (p < end) {
    let pathId = 0;
    if (addPath) {
      if (end - p < 5) return 'truncated path identifier';
      pathId = u32be(buf, p);
      p += 4;
    }
    const len = buf[p++]!;
    if (len > maxLen) return `IPv${afi === 1 ? 4 : 6} prefix length ${len} > ${maxLen}`;
    const n = (len + 7) >> 3;
    if (p + n > end) return 'prefix overruns the NLRI field';
    const prefix = afi === 1 ? ipv4PrefixText(ipv4PrefixValue(buf, p, len), len) : ipv6PrefixText(buf, p, n, len);
    p += n;
    out.push(addPath ? { prefix, pathId } : { prefix });
  }
  return null;
}

/** Text of an IPv6 prefix of `len` bits whose n minimal octets are at buf[p..] (host bits cleared). */
function ipv6PrefixText(buf: Uint8Array, p: number, n: number, len: number): string {
  pfx.fill(0);
  for (let i = 0; i < n; i++) pfx[i] = buf[p + i]!;
  if (len & 7) pfx[n - 1]! &= (0xff << (8 - (len & 7))) & 0xff;
  return ipv6Text(pfx, 0) + SUFFIX[len]!;
}

/**
 * Write one NLRI (optional path id, length, minimal octets) at out[pos]; returns the new position,
 * or -1 when the text is not a prefix of the family. `out` must have 21 octets of room.
 */
export function writePrefix(out: Uint8Array, pos: number, afi: number, nlri: Nlri, addPath: boolean): number {
  const text = nlri.prefix;
  const slash = text.indexOf('/');
  if (slash < 0) return -1;
  let len = 0;
  for (let i = slash + 1; i < text.length; i++) {
    const c = text.charCodeAt(i) - 48;
    if (c < 0 || c > 9 || i - slash > 3) return -1;
    len = len * 10 + c;
  }
  if (slash + 1 === text.length) return -1;
  const addr = text.slice(0, slash);
  if (afi === 1) {
    if (len > 32 || !parseIpv4(addr, pfx, 0)) return -1;
  } else if (afi === 2) {
    if (len > 128 || !parseIpv6(addr, pfx, 0)) return -1;
  } else return -1;
  if (addPath) {
    const id = nlri.pathId ?? 0;
    out[pos++] = id >>> 24;
    out[pos++] = (id >>> 16) & 0xff;
    out[pos++] = (id >>> 8) & 0xff;
    out[pos++] = id & 0xff;
  }
  out[pos++] = len;
  const n = (len + 7) >> 3;
  for (let i = 0; i < n; i++) out[pos + i] = pfx[i]!;
  if (len & 7) out[pos + n - 1]! &= (0xff << (8 - (len & 7))) & 0xff;
  return pos + n;
}
