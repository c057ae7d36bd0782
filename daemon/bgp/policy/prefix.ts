// IP address and prefix arithmetic for policy matching and decision tie-breaks (RFC 4291 text
// forms for IPv6, dotted quads for IPv4). IPv4 values are unsigned 32-bit numbers, IPv6 values
// bigints: IPv4 is the hot path (a million prefix checks per full table) and stays in Smi land.

export type ParsedAddress = { afi: 1; value: number } | { afi: 2; value: bigint };
export type ParsedPrefix = ParsedAddress & { length: number };

/** Dotted quad to unsigned 32-bit number, or -1 when the text is not an IPv4 address. */
export function parseIpv4(text: string): number {
  let value = 0;
  let octet = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 46 /* . */) {
      if (digits === 0 || dots === 3) return -1;
      value = value * 256 + octet;
      octet = 0;
      digits = 0;
      dots++;
    } else if (c >= 48 && c <= 57) {
      octet = octet * 10 + (c - 48);
      if (++digits > 3 || octet > 255) return -1;
    } else {
      return -1;
    }
  }
  if (dots !== 3 || digits === 0) return -1;
  return value * 256 + octet;
}

/** RFC 4291 §2.2 text (with "::" and an embedded dotted quad) to a 128-bit bigint, or null. */
export function parseIpv6(text: string): bigint | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const groups = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    const items = part.split(':');
    for (let i = 0; i < items.length; i++) {
      const item = items[i]!;
      if (i === items.length - 1 && item.includes('.')) {
        const v4 = parseIpv4(item);
        if (v4 < 0) return null;
        out.push(v4 >>> 16, v4 & 0xffff);
      } else {
        if (!/^[0-9a-fA-F]{1,4}$/.test(item)) return null;
        out.push(parseInt(item, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0]!);
  const tail = halves.length === 2 ? groups(halves[1]!) : [];
  if (!head || !tail) return null;
  const fill = 8 - head.length - tail.length;
  if (halves.length === 2 ? fill < 1 : fill !== 0) return null;
  let value = 0n;
  for (const g of [...head, ...new Array<number>(fill).fill(0), ...tail]) value = (value << 16n) | BigInt(g);
  return value;
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
