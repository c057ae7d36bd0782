// Packed IPv4 unicast NLRI (RFC 4271 §4.3 NLRI field) for bulk ingest: the prefixes of an UPDATE
// as two typed arrays (address, length) instead of one object and one string per prefix. A full
// table is a million prefixes in about a thousand UPDATEs: objects and text built per prefix cost
// more than the RIB work itself, and the RIB keys short IPv4 prefixes by number anyway.
import type { MpReach, MpUnreach, Nlri, PathAttributes, UpdateMessage } from '../types.js';
import { ipv4PrefixText, ipv4PrefixValue } from './addr.js';

/**
 * An UPDATE whose classic NLRI field is kept packed. It is an UpdateMessage: reading `nlri`
 * builds (once) the usual Nlri[]; a consumer that knows the packed form reads `nlriAddrs` /
 * `nlriLens` instead and never pays for the objects. Only without add-path (no path ids).
 */
export class PackedUpdate implements UpdateMessage {
  readonly type = 'update' as const;
  mpReach?: MpReach;
  mpUnreach?: MpUnreach;
  private list: Nlri[] | null = null;

  constructor(
    public withdrawn: Nlri[],
    public attrs: PathAttributes | null,
    /** Prefix addresses, host bits zero, as unsigned 32-bit values; null once `nlri` was assigned. */
    public nlriAddrs: Uint32Array | null,
    /** Prefix lengths, same order. */
    public nlriLens: Uint8Array | null,
  ) {}

  /** Number of NLRI in the classic field, without building them. */
  get nlriCount(): number {
    return this.nlriAddrs !== null ? this.nlriAddrs.length : (this.list?.length ?? 0);
  }

  get nlri(): Nlri[] {
    if (this.list === null) this.list = unpackIpv4(this.nlriAddrs, this.nlriLens);
    return this.list;
  }

  /** Assigning a list replaces the packed form (they could no longer agree). */
  set nlri(list: Nlri[]) {
    this.list = list;
    this.nlriAddrs = null;
    this.nlriLens = null;
  }
}

/** The Nlri objects of a packed list. */
export function unpackIpv4(addrs: Uint32Array | null, lens: Uint8Array | null): Nlri[] {
  if (addrs === null || lens === null) return [];
  const out = new Array<Nlri>(addrs.length);
  for (let i = 0; i < addrs.length; i++) out[i] = { prefix: ipv4PrefixText(addrs[i]!, lens[i]!) };
  return out;
}

// Scratch space for one NLRI field: a 65535-octet extended message holds at most 65535 prefixes.
let scratchAddrs = new Uint32Array(1024);
let scratchLens = new Uint8Array(1024);

export interface PackedIpv4 {
  addrs: Uint32Array;
  lens: Uint8Array;
}

/**
 * Decode an IPv4 NLRI field without path identifiers (buf[start..end)) into packed arrays of
 * exact size; host bits are cleared as in decodePrefixes. Returns the reason when malformed.
 */
export function decodePackedIpv4(buf: Uint8Array, start: number, end: number): PackedIpv4 | string {
  if (scratchAddrs.length < end - start) {
    scratchAddrs = new Uint32Array(end - start);
    scratchLens = new Uint8Array(end - start);
  }
  const addrs = scratchAddrs;
  const lens = scratchLens;
  let n = 0;
  let p = start;
  while (p < end) {
    const len = buf[p++]!;
    if (len > 32) return `IPv4 prefix length ${len} > 32`;
    const octets = (len + 7) >> 3;
    if (p + octets > end) return 'prefix overruns the NLRI field';
    addrs[n] = ipv4PrefixValue(buf, p, len);
    p += octets;
    lens[n] = len;
    n++;
  }
  return { addrs: addrs.slice(0, n), lens: lens.slice(0, n) };
}
