// IP address and prefix helpers for the kernel port: text <-> bytes for rtnetlink attributes
// (RTA_DST, RTA_GATEWAY, NDA_DST, IFA_ADDRESS) and prefix containment. IPv4 (RFC 791) and IPv6
// (RFC 4291 text forms, RFC 5952 canonical output).
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

export function familyOf(address: string): Family {
  if (isIPv4(address)) return 4;
  if (isIPv6(address)) return 6;
  throw new Error(`not an IP address: ${JSON.stringify(address)}`);
}

/** Dotted-quad parse without regexes (the route encoder's hot path); null when not IPv4. */
function parseV4(a: string, out?: Buffer): Buffer | null {
  const b = out ?? Buffer.allocUnsafe(4);
  let part = 0;
  let digits = 0;
  let v = 0;
  for (let i = 0; i <= a.length; i++) {
    const c = i < a.length ? a.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || part > 3 || v > 255) return null;
      b[part++] = v;
      v = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      if (digits === 1 && v === 0) return null; // no leading zeros (as node:net isIPv4)
      v = v * 10 + (c - 48);
      digits++;
    } else {
      return null;
    }
  }
  return part === 4 ? b : null;
}

/** Network-order bytes of an IPv4 or IPv6 address. */
export function ipToBytes(address: string): Buffer {
  const quad = parseV4(address);
  if (quad) return quad;
  if (isIPv4(address)) return Buffer.from(address.split('.').map((p) => Number(p)));
  if (!isIPv6(address)) throw new Error(`not an IP address: ${JSON.stringify(address)}`);
  let text = address;
  // An embedded IPv4 tail (::ffff:1.2.3.4) becomes two hextets.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text = text.slice(0, -v4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...new Array<string>(8 - h.length - t.length).fill('0'), ...t];
  const out = Buffer.alloc(16);
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** Text form of 4 or 16 address bytes (RFC 5952 for IPv6). */
export function bytesToIp(b: Uint8Array): string {
  if (b.length === 4) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (b.length !== 16) throw new Error(`address of ${b.length} bytes`);
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  // Longest run of zero groups (length >= 2) becomes '::'.
  let best = -1;
  let bestLen = 0;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (best < 0) return hex.join(':');
  return `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

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
  maskInPlace(bytes, len);
  return { family, bytes, len };
}

function maskInPlace(bytes: Buffer, len: number): void {
  for (let i = 0; i < bytes.length; i++) {
    const bits = Math.max(0, Math.min(8, len - i * 8));
    bytes[i]! &= (0xff << (8 - bits)) & 0xff;
  }
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
  maskInPlace(a, p.len);
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
