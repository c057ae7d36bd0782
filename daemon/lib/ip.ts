// IPv4/IPv6 address and CIDR arithmetic shared by config, kernel, state and datapath: text forms of
// RFC 791 and RFC 4291 §2.2 in, RFC 5952 canonical text out, addresses as bigint or network-order
// bytes. Pure, no I/O. The byte parsers (parseIpv4Into, parseIpv6Into) allocate nothing, so the BGP
// codec's hot paths use them too: there is one parser of address text in nrd.

export type Family = 4 | 6;

/** An address as an unsigned integer of 32 (IPv4) or 128 (IPv6) bits. */
export interface IpAddr {
  family: Family;
  value: bigint;
}

/** A prefix; `value` is the network address (host bits zero). */
export interface IpCidr {
  family: Family;
  value: bigint;
  prefixLength: number;
}

export const familyBits = (f: Family): number => (f === 4 ? 32 : 128);

/**
 * Dotted quad into out[off..off+4] without regexes (route encoders call it per route); false when
 * not IPv4. Accepts exactly what node:net isIPv4 accepts: four decimal octets, no leading zeros.
 */
export function parseIpv4Into(text: string, out: Uint8Array, off = 0): boolean {
  let part = 0;
  let digits = 0;
  let v = 0;
  for (let i = 0; i <= text.length; i++) {
    const c = i < text.length ? text.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || part > 3 || v > 255) return false;
      out[off + part++] = v;
      v = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      if (digits === 1 && v === 0) return false; // no leading zeros
      v = v * 10 + (c - 48);
      digits++;
    } else {
      return false;
    }
  }
  return part === 4;
}

const quad = new Uint8Array(4);

function v4Value(text: string): bigint | null {
  if (!parseIpv4Into(text, quad, 0)) return null;
  return BigInt(((quad[0]! << 24) | (quad[1]! << 16) | (quad[2]! << 8) | quad[3]!) >>> 0);
}

const hextets: number[] = [];

/** Pushes the hextets of one side of '::' (an embedded dotted quad last) onto hextets; false when malformed. */
function pushHextets(text: string, from: number, to: number, quadAllowed: boolean): boolean {
  if (from === to) return true;
  let start = from;
  for (let i = from; i <= to; i++) {
    if (i < to && text.charCodeAt(i) !== 58) continue;
    const len = i - start;
    if (len === 0 || len > 4) {
      // The last item may be a dotted quad (::ffff:192.0.2.1): two hextets.
      if (i === to && quadAllowed && len > 4 && parseIpv4Into(text.slice(start, to), quad, 0)) {
        hextets.push((quad[0]! << 8) | quad[1]!, (quad[2]! << 8) | quad[3]!);
        return true;
      }
      return false;
    }
    let v = 0;
    for (let k = start; k < i; k++) {
      const c = text.charCodeAt(k);
      const d = c >= 48 && c <= 57 ? c - 48 : c >= 97 && c <= 102 ? c - 87 : c >= 65 && c <= 70 ? c - 55 : -1;
      if (d < 0) {
        if (i === to && quadAllowed && parseIpv4Into(text.slice(start, to), quad, 0)) {
          hextets.push((quad[0]! << 8) | quad[1]!, (quad[2]! << 8) | quad[3]!);
          return true;
        }
        return false;
      }
      v = (v << 4) | d;
    }
    hextets.push(v);
    start = i + 1;
  }
  return true;
}

/**
 * RFC 4291 §2.2 text (with '::' and an embedded dotted quad) into out[off..off+16] without
 * allocating; false when not IPv6. Zone ids ("%eth0") are refused.
 */
export function parseIpv6Into(text: string, out: Uint8Array, off = 0): boolean {
  if (typeof text !== 'string' || text.length < 2 || text.length > 45) return false;
  const dbl = text.indexOf('::');
  hextets.length = 0;
  let headCount: number;
  if (dbl >= 0) {
    if (text.indexOf('::', dbl + 1) >= 0) return false;
    if (!pushHextets(text, 0, dbl, false)) return false;
    headCount = hextets.length;
    if (!pushHextets(text, dbl + 2, text.length, true)) return false;
    if (hextets.length > 7) return false;
  } else {
    if (!pushHextets(text, 0, text.length, true) || hextets.length !== 8) return false;
    headCount = 8;
  }
  out.fill(0, off, off + 16);
  const tail = hextets.length - headCount;
  for (let i = 0; i < hextets.length; i++) {
    const slot = i < headCount ? i : 8 - tail + (i - headCount);
    out[off + 2 * slot] = hextets[i]! >> 8;
    out[off + 2 * slot + 1] = hextets[i]! & 0xff;
  }
  return true;
}

const sixteen = new Uint8Array(16);

/** IPv6 text as a 128-bit value; null when not IPv6. */
function v6Value(text: string): bigint | null {
  if (!parseIpv6Into(text, sixteen, 0)) return null;
  let v = 0n;
  for (let i = 0; i < 16; i += 4) v = (v << 32n) | BigInt(((sixteen[i]! << 24) | (sixteen[i + 1]! << 16) | (sixteen[i + 2]! << 8) | sixteen[i + 3]!) >>> 0);
  return v;
}

/** Parses an IPv4 or IPv6 address; null when invalid. Zone ids ("%eth0") are refused. */
export function parseIp(text: string): IpAddr | null {
  if (typeof text !== 'string') return null;
  const v4 = v4Value(text);
  if (v4 !== null) return { family: 4, value: v4 };
  const v6 = v6Value(text);
  if (v6 !== null) return { family: 6, value: v6 };
  return null;
}

/** Family of an address text, or null when it is not one. */
export function ipFamily(text: string): Family | null {
  return parseIp(text)?.family ?? null;
}

/** Canonical text of an address: dotted quad, or RFC 5952 for IPv6 (lowercase, longest zero run as '::'). */
export function formatIp(family: Family, value: bigint): string {
  if (family === 4) {
    return [24n, 16n, 8n, 0n].map((s) => String((value >> s) & 0xffn)).join('.');
  }
  for (let i = 0; i < 8; i++) groups16[i] = Number((value >> BigInt((7 - i) * 16)) & 0xffffn);
  return formatGroups16();
}

const groups16 = new Uint16Array(8);

/** RFC 5952 §4.2 text of the eight hextets in groups16: lowercase, no leading zeros, the longest
 * run (>= 2, the first on a tie) of zero groups as '::'. */
function formatGroups16(): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups16[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups16[j] === 0) j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  let s = '';
  for (let i = 0; i < 8; i++) {
    if (i === best) {
      s += '::';
      i += bestLen - 1;
      continue;
    }
    if (s.length > 0 && !s.endsWith(':')) s += ':';
    s += groups16[i]!.toString(16);
  }
  return s;
}

/** RFC 5952 text of the 16 network-order bytes at b[off..off+16] (the BGP codec's next hops and NLRI). */
export function formatIpv6At(b: Uint8Array, off: number): string {
  for (let i = 0; i < 8; i++) groups16[i] = (b[off + 2 * i]! << 8) | b[off + 2 * i + 1]!;
  return formatGroups16();
}

/** A dotted quad as an unsigned 32-bit number, or -1 when the text is not IPv4 (policy hot path). */
export function ipv4Number(text: string): number {
  if (!parseIpv4Into(text, quad, 0)) return -1;
  return ((quad[0]! << 24) | (quad[1]! << 16) | (quad[2]! << 8) | quad[3]!) >>> 0;
}

/** Network-order bytes (4 or 16) of an address value. */
export function ipValueToBytes(family: Family, value: bigint): Buffer {
  const n = family === 4 ? 4 : 16;
  const out = Buffer.alloc(n);
  let v = value;
  for (let i = n - 1; i >= 0; i--) {
    out[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return out;
}

/** The address held in 4 or 16 network-order bytes; throws on any other length. */
export function bytesToIpValue(b: Uint8Array): IpAddr {
  if (b.length !== 4 && b.length !== 16) throw new Error(`address of ${b.length} bytes`);
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return { family: b.length === 4 ? 4 : 6, value: v };
}

/** Text form of 4 or 16 address bytes (RFC 5952 for IPv6); throws on any other length. */
export function formatIpBytes(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new Error(`address of ${b.length} bytes`);
  return formatIpv6At(b, 0);
}

/** Network-order bytes of an address text, or null when it is not one. */
export function parseIpBytes(text: string): Buffer | null {
  const v4 = Buffer.allocUnsafe(4);
  if (parseIpv4Into(text, v4, 0)) return v4;
  const v6 = Buffer.allocUnsafe(16);
  return parseIpv6Into(text, v6, 0) ? v6 : null;
}

/** The mask of a prefix length as a value of the family's width. */
export function maskOf(family: Family, prefixLength: number): bigint {
  const bits = BigInt(familyBits(family));
  return ((1n << bits) - 1n) ^ ((1n << (bits - BigInt(prefixLength))) - 1n);
}

/** Clears, in place, the bits of network-order address bytes past `prefixLength`. */
export function maskBytesInPlace(bytes: Uint8Array, prefixLength: number): void {
  for (let i = 0; i < bytes.length; i++) {
    const keep = Math.max(0, Math.min(8, prefixLength - i * 8));
    bytes[i]! &= (0xff << (8 - keep)) & 0xff;
  }
}

/** Why a CIDR text did not parse; callers word their own messages from it. */
export type CidrError = 'missing-length' | 'bad-length' | 'bad-address' | 'length-too-long';

export type CidrParse =
  | { ok: true; cidr: IpCidr; hostBitsSet: boolean }
  | { ok: false; error: CidrError; family?: Family };

/**
 * Parses "address/length" (length 1-3 decimal digits, no sign or space). Host bits are cleared and
 * reported in `hostBitsSet`, so a caller can refuse them or accept the network. With `bareIsHost`
 * an address without "/length" is a host prefix (/32, /128). Checks run in this order: missing
 * length, length syntax, address, length range.
 */
export function parseCidr(text: string, opts: { bareIsHost?: boolean } = {}): CidrParse {
  if (typeof text !== 'string') return { ok: false, error: 'bad-address' };
  const slash = text.indexOf('/');
  if (slash < 0 && !opts.bareIsHost) return { ok: false, error: 'missing-length' };
  const lenText = slash < 0 ? null : text.slice(slash + 1);
  if (lenText !== null && !/^\d{1,3}$/.test(lenText)) return { ok: false, error: 'bad-length' };
  const ip = parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!ip) return { ok: false, error: 'bad-address' };
  const bits = familyBits(ip.family);
  const prefixLength = lenText === null ? bits : Number(lenText);
  if (prefixLength > bits) return { ok: false, error: 'length-too-long', family: ip.family };
  const net = ip.value & maskOf(ip.family, prefixLength);
  return { ok: true, cidr: { family: ip.family, value: net, prefixLength }, hostBitsSet: net !== ip.value };
}

export function formatCidr(c: IpCidr): string {
  return `${formatIp(c.family, c.value)}/${c.prefixLength}`;
}

/** Canonical text of a prefix (host bits cleared, RFC 5952), or null when it does not parse. */
export function canonicalCidr(text: string, opts: { bareIsHost?: boolean } = {}): string | null {
  const r = parseCidr(text, opts);
  return r.ok ? formatCidr(r.cidr) : null;
}

/** True when prefix `inner` lies inside prefix `outer` (same family, at least as long). */
export function cidrContains(outer: IpCidr, inner: IpCidr): boolean {
  return (
    outer.family === inner.family &&
    inner.prefixLength >= outer.prefixLength &&
    (inner.value & maskOf(outer.family, outer.prefixLength)) === outer.value
  );
}

export function cidrContainsIp(c: IpCidr, ip: IpAddr): boolean {
  return c.family === ip.family && (ip.value & maskOf(ip.family, c.prefixLength)) === c.value;
}

export function cidrsOverlap(a: IpCidr, b: IpCidr): boolean {
  return cidrContains(a, b) || cidrContains(b, a);
}
