// Compact keys of IP prefixes for tables of a million routes: an IPv4 prefix of length ≤ 24 in
// canonical text is a small integer, (len << 24) | first three octets — a Smi, which a Map hashes
// and stores without a string (a full table is mostly ≤ /24, and a prefix's text costs ~60 bytes
// once a Map has flattened it). Every other prefix (longer IPv4, IPv6) keeps its canonical text.
// The BGP RIB keys its IPv4 table the same way, so routing and the kernel reconciler hold no
// second copy of a prefix's text.

/** A canonical prefix as a table key: a short IPv4 key (number) or the canonical text. */
export type PrefixKey = number | string;

/**
 * Small-integer key of an IPv4 prefix of length ≤ 24 in canonical text ("a.b.c.0/len", host bits
 * zero, no leading zeros): (len << 24) | first three octets, or -1.
 */
export function shortKeyV4(t: string): number {
  const n = t.length;
  let v = 0;
  let o = 0;
  let d = 0;
  let dots = 0;
  let i = 0;
  for (; i < n; i++) {
    const c = t.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      if (d === 1 && o === 0) return -1;
      o = o * 10 + (c - 48);
      if (++d > 3 || o > 255) return -1;
    } else if (c === 46) {
      if (d === 0 || dots === 3) return -1;
      v = (v << 8) | o;
      o = 0;
      d = 0;
      dots++;
    } else if (c === 47) {
      break;
    } else {
      return -1;
    }
  }
  // Lengths ≤ 24 leave the fourth octet zero, written "0".
  if (dots !== 3 || d !== 1 || o !== 0 || i >= n - 1) return -1;
  let len = 0;
  let ld = 0;
  for (i++; i < n; i++) {
    const c = t.charCodeAt(i);
    if (c < 48 || c > 57 || (ld === 1 && len === 0)) return -1;
    len = len * 10 + (c - 48);
    if (++ld > 2) return -1;
  }
  if (ld === 0 || len > 24) return -1;
  if ((v & ((1 << (24 - len)) - 1)) !== 0) return -1;
  return (len << 24) | v;
}

const DOTTED: string[] = [];
for (let i = 0; i < 256; i++) DOTTED.push(`${i}.`);

/** The text of a short IPv4 key ((length << 24) | first three octets): "a.b.c.0/len". */
export function shortKeyText(k: number): string {
  return `${DOTTED[(k >>> 16) & 0xff]!}${DOTTED[(k >>> 8) & 0xff]!}${DOTTED[k & 0xff]!}0/${k >>> 24}`;
}

/** The key of a prefix in canonical text (addr.ts canonicalPrefix). */
export function prefixKey(canonical: string): PrefixKey {
  const k = shortKeyV4(canonical);
  return k >= 0 ? k : canonical;
}

/** The canonical text of a key (a new string for a short key: callers use it and drop it). */
export function prefixText(k: PrefixKey): string {
  return typeof k === 'number' ? shortKeyText(k) : k;
}

/** Address family of a key. */
export function keyFamily(k: PrefixKey): 4 | 6 {
  return typeof k === 'number' || !k.includes(':') ? 4 : 6;
}

/**
 * IPv4 network address (unsigned 32-bit) and length of a key, or undefined for an IPv6 key or a
 * text that is not an IPv4 prefix (the hijack guard compares these without parsing text).
 */
export function keyV4(k: PrefixKey): { addr: number; len: number } | undefined {
  if (typeof k === 'number') return { addr: ((k & 0xffffff) << 8) >>> 0, len: k >>> 24 };
  const slash = k.indexOf('/');
  if (slash < 0 || k.includes(':')) return undefined;
  const parts = k.slice(0, slash).split('.');
  if (parts.length !== 4) return undefined;
  let addr = 0;
  for (const p of parts) {
    const o = Number(p);
    if (!Number.isInteger(o) || o < 0 || o > 255 || p === '') return undefined;
    addr = addr * 256 + o;
  }
  const len = Number(k.slice(slash + 1));
  if (!Number.isInteger(len) || len < 0 || len > 32) return undefined;
  return { addr, len };
}
