// UPDATE path attributes codec: RFC 4271 §4.3/§5, RFC 7606 revised error handling, RFC 6793
// (AS4_PATH/AS4_AGGREGATOR), RFC 4760 (MP_REACH/MP_UNREACH, RFC 2545 IPv6 next hops), RFC 1997/4360/8092
// (communities), RFC 4456 (ORIGINATOR_ID/CLUSTER_LIST), RFC 7607 (AS 0), RFC 7911 (add-path NLRI).
import {
  AS_CONFED_SEQUENCE,
  AS_CONFED_SET,
  AS_SEQUENCE,
  AS_SET,
  familyKey,
  type AsPathSegment,
  type BgpError,
  type ErrorAction,
  type LargeCommunity,
  type MpReach,
  type MpUnreach,
  type Nlri,
  type Origin,
  type PathAttributes,
  type SessionContext,
  type UnknownAttribute,
} from '../types.js';
import { decodePrefixes, ipv4Text, ipv6Text, parseIpv4, parseIpv6, u32be as u32At } from './addr.js';
import {
  UPD_ATTR_FLAGS,
  UPD_ATTR_LENGTH,
  UPD_INVALID_NETWORK,
  UPD_INVALID_NEXT_HOP,
  UPD_INVALID_ORIGIN,
  UPD_MALFORMED_AS_PATH,
  UPD_MALFORMED_ATTR_LIST,
  UPD_OPTIONAL_ATTR,
  UPD_UNRECOGNIZED_WELL_KNOWN,
  updateError,
} from './errors.js';
import { AS_TRANS } from './open.js';
import type { Writer } from './writer.js';

export const ATTR_ORIGIN = 1;
export const ATTR_AS_PATH = 2;
export const ATTR_NEXT_HOP = 3;
export const ATTR_MED = 4;
export const ATTR_LOCAL_PREF = 5;
export const ATTR_ATOMIC_AGGREGATE = 6;
export const ATTR_AGGREGATOR = 7;
export const ATTR_COMMUNITIES = 8;
export const ATTR_ORIGINATOR_ID = 9;
export const ATTR_CLUSTER_LIST = 10;
export const ATTR_MP_REACH = 14;
export const ATTR_MP_UNREACH = 15;
export const ATTR_EXT_COMMUNITIES = 16;
export const ATTR_AS4_PATH = 17;
export const ATTR_AS4_AGGREGATOR = 18;
export const ATTR_LARGE_COMMUNITY = 32;

export const FLAG_OPTIONAL = 0x80;
export const FLAG_TRANSITIVE = 0x40;
export const FLAG_PARTIAL = 0x20;
export const FLAG_EXTENDED = 0x10;

const WELL_KNOWN = FLAG_TRANSITIVE;
const OPT_TRANS = FLAG_OPTIONAL | FLAG_TRANSITIVE;
const OPT_NON_TRANS = FLAG_OPTIONAL;

/** Optional/transitive bits each recognised attribute must carry (RFC 4271 §5, RFC 7606 §3 c). */
const EXPECTED_FLAGS = new Int16Array(256).fill(-1);
for (const t of [ATTR_ORIGIN, ATTR_AS_PATH, ATTR_NEXT_HOP, ATTR_LOCAL_PREF, ATTR_ATOMIC_AGGREGATE])
  EXPECTED_FLAGS[t] = WELL_KNOWN;
for (const t of [ATTR_AGGREGATOR, ATTR_COMMUNITIES, ATTR_EXT_COMMUNITIES, ATTR_AS4_PATH, ATTR_AS4_AGGREGATOR, ATTR_LARGE_COMMUNITY])
  EXPECTED_FLAGS[t] = OPT_TRANS;
for (const t of [ATTR_MED, ATTR_ORIGINATOR_ID, ATTR_CLUSTER_LIST, ATTR_MP_REACH, ATTR_MP_UNREACH])
  EXPECTED_FLAGS[t] = OPT_NON_TRANS;

/** Families whose NLRI nrd can parse (IPv4/IPv6 unicast and multicast share the RFC 4271 format). */
export const nlriFormatKnown = (afi: number, safi: number): boolean => (afi === 1 || afi === 2) && (safi === 1 || safi === 2);

/** What decoding the attribute list found; the UPDATE decoder applies the strongest action. */
export interface AttributeScan {
  attrs: PathAttributes | null;
  mpReach?: MpReach;
  mpUnreach?: MpUnreach;
  /** Errors already handled here (attribute-discard) or to apply (treat-as-withdraw and stronger). */
  errors: BgpError[];
  /** Strongest action among errors, or null. */
  action: ErrorAction | null;
  /** Family concerned when action is afisafi-disable. */
  family?: { afi: number; safi: number };
  /** Attribute types seen, for the well-known mandatory check. */
  seen: Uint8Array;
}

const HEX: string[] = [];
for (let i = 0; i < 256; i++) HEX.push(i.toString(16).padStart(2, '0'));

function asPathSegments(
  buf: Uint8Array,
  start: number,
  end: number,
  asSize: 2 | 4,
): AsPathSegment[] | string {
  const segs: AsPathSegment[] = [];
  let p = start;
  while (p < end) {
    if (end - p < 2) return 'one octet left where a segment header belongs';
    const type = buf[p]!;
    const n = buf[p + 1]!;
    p += 2;
    if (type < AS_SET || type > AS_CONFED_SET) return `segment type ${type}`;
    if (n === 0) return 'empty segment';
    if (p + n * asSize > end) return 'segment overruns the attribute';
    const asns = new Array<number>(n);
    for (let i = 0; i < n; i++) {
      asns[i] =
        asSize === 4
          ? u32At(buf, p)
          : (buf[p]! << 8) | buf[p + 1]!;
      p += asSize;
    }
    segs.push({ type: type as AsPathSegment['type'], asns });
  }
  return segs;
}

const isConfed = (s: AsPathSegment): boolean => s.type === AS_CONFED_SEQUENCE || s.type === AS_CONFED_SET;

/** RFC 6793 §4.2.3 path length: AS_SET counts one, confederation segments zero. */
function pathLength(segs: AsPathSegment[]): number {
  let n = 0;
  for (const s of segs) n += s.type === AS_SEQUENCE ? s.asns.length : s.type === AS_SET ? 1 : 0;
  return n;
}

/**
 * RFC 6793 §4.2.3: rebuild the four-octet path from AS_PATH (with AS_TRANS) and AS4_PATH.
 * Leading AS_PATH entries the AS4_PATH lacks (prepended by an old speaker) are kept in front.
 */
export function mergeAs4Path(asPath: AsPathSegment[], as4: AsPathSegment[]): AsPathSegment[] {
  const n = pathLength(asPath);
  const m = pathLength(as4);
  if (n < m) return asPath;
  let need = n - m;
  const out: AsPathSegment[] = [];
  for (const s of asPath) {
    if (isConfed(s)) {
      out.push(s);
      continue;
    }
    if (need === 0) break;
    if (s.type === AS_SET) {
      out.push(s);
      need -= 1;
    } else {
      const take = Math.min(need, s.asns.length);
      out.push({ type: AS_SEQUENCE, asns: s.asns.slice(0, take) });
      need -= take;
    }
  }
  // Join the taken AS_PATH head and the AS4_PATH where both are sequences; segments of the
  // AS4_PATH itself stay as the sender cut them.
  const taken = n - m > 0;
  as4.forEach((s, i) => {
    const last = out[out.length - 1];
    if (i === 0 && taken && last && last.type === AS_SEQUENCE && s.type === AS_SEQUENCE && last.asns.length + s.asns.length <= 255) {
      out[out.length - 1] = { type: AS_SEQUENCE, asns: [...last.asns, ...s.asns] };
    } else out.push(s);
  });
  return out;
}

function nextHopsText(buf: Uint8Array, p: number, len: number): string[] | null {
  if (len === 4) return [ipv4Text(buf, p)];
  if (len === 16) return [ipv6Text(buf, p)];
  if (len === 32) return [ipv6Text(buf, p), ipv6Text(buf, p + 16)];
  return null;
}

/** RFC 4760 §3 next hop lengths nrd accepts per AFI (RFC 2545: 16 or 32 for IPv6; RFC 8950 for IPv4). */
const nextHopLengthOk = (afi: number, len: number): boolean =>
  afi === 1 ? len === 4 || len === 16 || len === 32 : len === 16 || len === 32;

/**
 * Decode the path attribute field buf[start..end) with the RFC 7606 rules. Never throws: every
 * problem becomes an entry in `errors` and, where it matters, the strongest `action`.
 */
export function decodeAttributes(buf: Uint8Array, start: number, end: number, ctx: SessionContext): AttributeScan {
  const scan: AttributeScan = { attrs: null, errors: [], action: null, seen: new Uint8Array(256) };
  const seen = scan.seen;
  const ebgp = ctx.peerType === 'ebgp';
  const asSize = ctx.fourOctetAs ? 4 : 2;

  let origin: Origin | undefined;
  let asPath: AsPathSegment[] | undefined;
  let as4Path: AsPathSegment[] | undefined;
  let as4Aggregator: { asn: number; address: string } | undefined;
  const a: Partial<PathAttributes> = {};
  let count = 0;

  const raise = (e: BgpError, family?: { afi: number; safi: number }): void => {
    scan.errors.push(e);
    const rank = { 'attribute-discard': 0, 'treat-as-withdraw': 1, 'afisafi-disable': 2, 'session-reset': 3 };
    if (scan.action === null || rank[e.action] > rank[scan.action]) {
      scan.action = e.action;
      if (family) scan.family = family;
    }
  };

  let p = start;
  while (p < end) {
    const hdrStart = p;
    if (end - p < 3 || (buf[p]! & FLAG_EXTENDED && end - p < 4)) {
      // RFC 7606 §4: too few octets for an attribute header.
      raise(updateError(UPD_MALFORMED_ATTR_LIST, 'treat-as-withdraw', `${end - p} stray octets after the last attribute`));
      break;
    }
    const flags = buf[p]!;
    const type = buf[p + 1]!;
    let len: number;
    if (flags & FLAG_EXTENDED) {
      len = (buf[p + 2]! << 8) | buf[p + 3]!;
      p += 4;
    } else {
      len = buf[p + 2]!;
      p += 3;
    }
    if (p + len > end) {
      // RFC 7606 §4: the attribute overruns the attribute field; the total length still locates NLRI.
      raise(updateError(UPD_ATTR_LENGTH, 'treat-as-withdraw', `attribute ${type} length ${len} overruns the attribute field`));
      break;
    }
    const v = p;
    const vEnd = p + len;
    p = vEnd;
    const whole = (): Uint8Array => buf.slice(hdrStart, vEnd);

    if (seen[type]) {
      // RFC 7606 §3 g: a repeated MP attribute resets, any other repeat is dropped.
      if (type === ATTR_MP_REACH || type === ATTR_MP_UNREACH) {
        raise(updateError(UPD_MALFORMED_ATTR_LIST, 'session-reset', `MP attribute ${type} appears twice`));
        return scan;
      }
      raise(updateError(UPD_MALFORMED_ATTR_LIST, 'attribute-discard', `attribute ${type} repeated; later copy discarded`));
      continue;
    }
    seen[type] = 1;

    const expected = EXPECTED_FLAGS[type]!;
    if (expected >= 0 && (flags & OPT_TRANS) !== expected) {
      raise(updateError(UPD_ATTR_FLAGS, 'treat-as-withdraw', `attribute ${type} flags 0x${flags.toString(16)}`, whole()));
      // Keep decoding the value: an MP_REACH with bad flags still tells which NLRI to withdraw.
    }
    if (type !== ATTR_MP_REACH && type !== ATTR_MP_UNREACH) count++;

    const lenError = (action: ErrorAction, what: string): void =>
      raise(updateError(UPD_ATTR_LENGTH, action, `${what} length ${len}`, whole()));

    switch (type) {
      case ATTR_ORIGIN:
        if (len !== 1) lenError('treat-as-withdraw', 'ORIGIN');
        else if (buf[v]! > 2) raise(updateError(UPD_INVALID_ORIGIN, 'treat-as-withdraw', `ORIGIN ${buf[v]}`, whole()));
        else origin = buf[v] as Origin;
        break;
      case ATTR_AS_PATH: {
        const segs = asPathSegments(buf, v, vEnd, asSize);
        if (typeof segs === 'string') {
          raise(updateError(UPD_MALFORMED_AS_PATH, 'treat-as-withdraw', `AS_PATH: ${segs}`));
        } else if (ebgp && segs.some(isConfed)) {
          raise(updateError(UPD_MALFORMED_AS_PATH, 'treat-as-withdraw', 'AS_PATH confederation segment from an eBGP peer'));
        } else if (segs.some((s) => s.asns.includes(0))) {
          raise(updateError(UPD_MALFORMED_AS_PATH, 'treat-as-withdraw', 'AS_PATH contains AS 0 (RFC 7607)'));
        } else asPath = segs;
        break;
      }
      case ATTR_NEXT_HOP:
        if (len !== 4) lenError('treat-as-withdraw', 'NEXT_HOP');
        else if (buf[v] === 0 || buf[v]! >= 224) {
          // RFC 4271 §6.3 semantic check; the "own address" check needs config and is the session's.
          raise(updateError(UPD_INVALID_NEXT_HOP, 'treat-as-withdraw', `NEXT_HOP ${ipv4Text(buf, v)}`, whole()));
        } else a.nextHop = ipv4Text(buf, v);
        break;
      case ATTR_MED:
        if (len !== 4) lenError('treat-as-withdraw', 'MULTI_EXIT_DISC');
        else a.med = u32At(buf, v);
        break;
      case ATTR_LOCAL_PREF:
        if (ebgp) raise(updateError(UPD_OPTIONAL_ATTR, 'attribute-discard', 'LOCAL_PREF from an eBGP peer ignored'));
        else if (len !== 4) lenError('treat-as-withdraw', 'LOCAL_PREF');
        else a.localPref = u32At(buf, v);
        break;
      case ATTR_ATOMIC_AGGREGATE:
        if (len !== 0) lenError('attribute-discard', 'ATOMIC_AGGREGATE');
        else a.atomicAggregate = true;
        break;
      case ATTR_AGGREGATOR: {
        if (len !== asSize + 4) {
          lenError('attribute-discard', 'AGGREGATOR');
          break;
        }
        const asn = asSize === 4 ? u32At(buf, v) : (buf[v]! << 8) | buf[v + 1]!;
        if (asn === 0) raise(updateError(UPD_OPTIONAL_ATTR, 'attribute-discard', 'AGGREGATOR AS 0 (RFC 7607)'));
        else a.aggregator = { asn, address: ipv4Text(buf, v + asSize) };
        break;
      }
      case ATTR_COMMUNITIES: {
        if (len === 0 || len % 4 !== 0) {
          lenError('treat-as-withdraw', 'COMMUNITIES');
          break;
        }
        const list = new Array<number>(len / 4);
        for (let i = 0; i < list.length; i++) list[i] = u32At(buf, v + 4 * i);
        a.communities = list;
        break;
      }
      case ATTR_ORIGINATOR_ID:
        if (ebgp) raise(updateError(UPD_OPTIONAL_ATTR, 'attribute-discard', 'ORIGINATOR_ID from an eBGP peer ignored'));
        else if (len !== 4) lenError('treat-as-withdraw', 'ORIGINATOR_ID');
        else a.originatorId = ipv4Text(buf, v);
        break;
      case ATTR_CLUSTER_LIST: {
        if (ebgp) {
          raise(updateError(UPD_OPTIONAL_ATTR, 'attribute-discard', 'CLUSTER_LIST from an eBGP peer ignored'));
          break;
        }
        if (len === 0 || len % 4 !== 0) {
          lenError('treat-as-withdraw', 'CLUSTER_LIST');
          break;
        }
        const list: string[] = [];
        for (let q = v; q < vEnd; q += 4) list.push(ipv4Text(buf, q));
        a.clusterList = list;
        break;
      }
      case ATTR_MP_REACH: {
        // RFC 7606 §7.11: when AFI/SAFI cannot be read the NLRI cannot be located: reset.
        if (len < 5) {
          raise(updateError(UPD_OPTIONAL_ATTR, 'session-reset', `MP_REACH_NLRI length ${len}`, whole()));
          return scan;
        }
        const afi = (buf[v]! << 8) | buf[v + 1]!;
        const safi = buf[v + 2]!;
        const family = { afi, safi };
        if (!nlriFormatKnown(afi, safi)) {
          raise(updateError(UPD_OPTIONAL_ATTR, 'attribute-discard', `MP_REACH_NLRI for unsupported family ${afi}/${safi}`));
          break;
        }
        const nhLen = buf[v + 3]!;
        const nhAt = v + 4;
        if (!nextHopLengthOk(afi, nhLen) || nhAt + nhLen + 1 > vEnd) {
          raise(updateError(UPD_OPTIONAL_ATTR, 'afisafi-disable', `MP_REACH_NLRI next hop length ${nhLen} for AFI ${afi}`, whole()), family);
          break;
        }
        const nextHops = nextHopsText(buf, nhAt, nhLen)!;
        // The reserved (former SNPA count) octet is ignored on receipt (RFC 4760 §3).
        const nlri: Nlri[] = [];
        const bad = decodePrefixes(buf, nhAt + nhLen + 1, vEnd, afi, ctx.addPathReceive.has(familyKey(afi, safi)), nlri);
        if (bad) {
          raise(updateError(UPD_OPTIONAL_ATTR, 'afisafi-disable', `MP_REACH_NLRI: ${bad}`, whole()), family);
          break;
        }
        scan.mpReach = { afi, safi, nextHops, nlri };
        break;
      }
      case ATTR_MP_UNREACH: {
        if (len < 3) {
          raise(updateError(UPD_OPTIONAL_ATTR, 'session-reset', `MP_UNREACH_NLRI length ${len}`, whole()));
          return scan;
        }
        const afi = (buf[v]! << 8) | buf[v + 1]!;
        const safi = buf[v + 2]!;
        if (!nlriFormatKnown(afi, safi)) {
          raise(updateError(UPD_OPTIONAL_ATTR, 'attribute-discard', `MP_UNREACH_NLRI for unsupported family ${afi}/${safi}`));
          break;
        }
        const withdrawn: Nlri[] = [];
        const bad = decodePrefixes(buf, v + 3, vEnd, afi, ctx.addPathReceive.has(familyKey(afi, safi)), withdrawn);
        if (bad) {
          raise(updateError(UPD_OPTIONAL_ATTR, 'afisafi-disable', `MP_UNREACH_NLRI: ${bad}`, whole()), { afi, safi });
          break;
        }
        scan.mpUnreach = { afi, safi, withdrawn };
        break;
      }
      case ATTR_EXT_COMMUNITIES: {
        if (len === 0 || len % 8 !== 0) {
          lenError('treat-as-withdraw', 'EXTENDED_COMMUNITIES');
          break;
        }
        const list: string[] = [];
        for (let q = v; q < vEnd; q += 8) {
          let s = '';
          for (let i = 0; i < 8; i++) s += HEX[buf[q + i]!]!;
          list.push(s);
        }
        a.extCommunities = list;
        break;
      }
      case ATTR_AS4_PATH: {
        // RFC 6793 §4.1: between two four-octet speakers AS4_PATH is meaningless; §6: errors discard it.
        if (ctx.fourOctetAs) {
          raise(updateError(UPD_OPTIONAL_ATTR, 'attribute-discard', 'AS4_PATH on a four-octet session'));
          break;
        }
        const segs = asPathSegments(buf, v, vEnd, 4);
        if (typeof segs === 'string') raise(updateError(UPD_OPTIONAL_ATTR, 'attribute-discard', `AS4_PATH: ${segs}`));
        else if (segs.some(isConfed) || segs.some((s) => s.asns.includes(0)))
          raise(updateError(UPD_OPTIONAL_ATTR, 'attribute-discard', 'AS4_PATH with confederation segment or AS 0'));
        else as4Path = segs;
        break;
      }
      case ATTR_AS4_AGGREGATOR:
        if (ctx.fourOctetAs) raise(updateError(UPD_OPTIONAL_ATTR, 'attribute-discard', 'AS4_AGGREGATOR on a four-octet session'));
        else if (len !== 8) lenError('attribute-discard', 'AS4_AGGREGATOR');
        else if (u32At(buf, v) === 0) raise(updateError(UPD_OPTIONAL_ATTR, 'attribute-discard', 'AS4_AGGREGATOR AS 0'));
        else as4Aggregator = { asn: u32At(buf, v), address: ipv4Text(buf, v + 4) };
        break;
      case ATTR_LARGE_COMMUNITY: {
        if (len === 0 || len % 12 !== 0) {
          lenError('treat-as-withdraw', 'LARGE_COMMUNITY');
          break;
        }
        const list: LargeCommunity[] = [];
        for (let q = v; q < vEnd; q += 12) list.push({ global: u32At(buf, q), local1: u32At(buf, q + 4), local2: u32At(buf, q + 8) });
        a.largeCommunities = list;
        break;
      }
      default:
        if (!(flags & FLAG_OPTIONAL)) {
          // RFC 4271 §6.3 says: NOTIFICATION 3/2 (Unrecognized Well-known Attribute) and a session
          // reset. nrd does treat-as-withdraw, as BIRD does: every well-known attribute is known
          // to nrd, so this is a peer's bug confined to the routes of this UPDATE, and RFC 7606's
          // aim is that one bad UPDATE must not take down every route of the session.
          raise(updateError(UPD_UNRECOGNIZED_WELL_KNOWN, 'treat-as-withdraw', `unrecognised well-known attribute ${type}`, whole()));
        } else if (flags & FLAG_TRANSITIVE) {
          // RFC 4271 §5: pass unrecognised optional transitive attributes on, marked partial.
          const u: UnknownAttribute = { flags: (flags & ~FLAG_EXTENDED) | FLAG_PARTIAL, type, value: buf.slice(v, vEnd) };
          (a.unknown ??= []).push(u);
        }
      // Unrecognised optional non-transitive attributes are quietly ignored (RFC 4271 §5).
    }
  }

  if (asPath && !ctx.fourOctetAs) {
    // RFC 6793 §4.2.3: an AGGREGATOR without AS_TRANS means the AS4 attributes are stale.
    if (a.aggregator && a.aggregator.asn !== AS_TRANS && (as4Aggregator || as4Path)) {
      as4Path = undefined;
      as4Aggregator = undefined;
    }
    if (as4Path) asPath = mergeAs4Path(asPath, as4Path);
  }
  if (as4Aggregator && a.aggregator && a.aggregator.asn === AS_TRANS) a.aggregator = as4Aggregator;

  if (count > 0) {
    // Absent ORIGIN/AS_PATH leave INCOMPLETE / empty path; with NLRI present the UPDATE decoder
    // turns their absence into treat-as-withdraw before anyone reads these defaults.
    scan.attrs = { origin: origin ?? 2, asPath: asPath ?? [], ...a } as PathAttributes;
  }
  return scan;
}

/** Write one attribute header + body; `body` writes the value. Extended length only when needed. */
function attr(w: Writer, flags: number, type: number, body: (w: Writer) => void, alwaysExtended = false): void {
  const at = w.pos;
  w.u8(flags | FLAG_EXTENDED).u8(type);
  const f = w.fork(2);
  body(w);
  w.join(f);
  const len = w.pos - f.at - 2;
  if (len <= 255 && !alwaysExtended) {
    w.patchU8(at, flags & ~FLAG_EXTENDED);
    w.patchU8(f.at, len);
    w.remove(f.at + 1, 1);
  }
}

function writeSegments(w: Writer, segs: AsPathSegment[], asSize: 2 | 4): void {
  for (const s of segs) {
    // A segment holds 1..255 ASNs: longer ones become consecutive segments, empty ones are skipped.
    for (let i = 0; i < s.asns.length; i += 255) {
      const n = Math.min(255, s.asns.length - i);
      w.u8(s.type).u8(n);
      for (let k = i; k < i + n; k++) {
        const asn = s.asns[k]!;
        if (asSize === 4) w.u32(asn);
        else w.u16(asn > 0xffff ? AS_TRANS : asn);
      }
    }
  }
}

const ip4 = new Uint8Array(4);
function writeIpv4(w: Writer, text: string, what: string): void {
  if (!parseIpv4(text, ip4, 0)) throw new RangeError(`${what} ${text} is not an IPv4 address`);
  w.bytes(ip4);
}

const ip16 = new Uint8Array(16);
/** Write a next hop address (IPv4 or IPv6 text); returns nothing, throws RangeError on bad text. */
export function writeAddress(w: Writer, text: string): void {
  if (parseIpv4(text, ip4, 0)) w.bytes(ip4);
  else if (parseIpv6(text, ip16, 0)) w.bytes(ip16);
  else throw new RangeError(`next hop ${text} is not an address`);
}

export interface EncodeAttrOptions {
  /** Leave out NEXT_HOP (UPDATEs whose NLRI travel in MP_REACH only). */
  omitNextHop?: boolean;
}

/**
 * Write the path attributes in type order (RFC 4271 §5 recommends ascending order). On a two-octet
 * session AS numbers above 65535 become AS_TRANS and AS4_PATH/AS4_AGGREGATOR carry the real ones
 * (RFC 6793 §4.2.2). Attributes that must not reach an eBGP peer (LOCAL_PREF, ORIGINATOR_ID,
 * CLUSTER_LIST: RFC 4271 §5.1.5, RFC 4456 §8) are left out on eBGP sessions.
 */
export function encodeAttributes(w: Writer, a: PathAttributes, ctx: SessionContext, opts: EncodeAttrOptions = {}): void {
  const asSize = ctx.fourOctetAs ? 4 : 2;
  const ibgp = ctx.peerType === 'ibgp';
  const unknown = [...(a.unknown ?? [])].sort((x, y) => x.type - y.type);
  let ui = 0;
  const before = (type: number): void => {
    while (ui < unknown.length && unknown[ui]!.type < type) {
      const u = unknown[ui++]!;
      attr(w, u.flags & ~FLAG_EXTENDED, u.type, (b) => b.bytes(u.value));
    }
  };

  before(ATTR_ORIGIN);
  attr(w, WELL_KNOWN, ATTR_ORIGIN, (b) => b.u8(a.origin));
  before(ATTR_AS_PATH);
  attr(w, WELL_KNOWN, ATTR_AS_PATH, (b) => writeSegments(b, a.asPath, asSize));
  if (a.nextHop !== undefined && !opts.omitNextHop) {
    before(ATTR_NEXT_HOP);
    attr(w, WELL_KNOWN, ATTR_NEXT_HOP, (b) => writeIpv4(b, a.nextHop!, 'NEXT_HOP'));
  }
  if (a.med !== undefined) {
    before(ATTR_MED);
    attr(w, OPT_NON_TRANS, ATTR_MED, (b) => b.u32(a.med!));
  }
  if (a.localPref !== undefined && ibgp) {
    before(ATTR_LOCAL_PREF);
    attr(w, WELL_KNOWN, ATTR_LOCAL_PREF, (b) => b.u32(a.localPref!));
  }
  if (a.atomicAggregate) {
    before(ATTR_ATOMIC_AGGREGATE);
    attr(w, WELL_KNOWN, ATTR_ATOMIC_AGGREGATE, () => {});
  }
  const agg = a.aggregator;
  if (agg) {
    before(ATTR_AGGREGATOR);
    attr(w, OPT_TRANS, ATTR_AGGREGATOR, (b) => {
      if (asSize === 4) b.u32(agg.asn);
      else b.u16(agg.asn > 0xffff ? AS_TRANS : agg.asn);
      writeIpv4(b, agg.address, 'AGGREGATOR address');
    });
  }
  if (a.communities && a.communities.length > 0) {
    before(ATTR_COMMUNITIES);
    attr(w, OPT_TRANS, ATTR_COMMUNITIES, (b) => {
      for (const c of a.communities!) b.u32(c);
    });
  }
  if (a.originatorId !== undefined && ibgp) {
    before(ATTR_ORIGINATOR_ID);
    attr(w, OPT_NON_TRANS, ATTR_ORIGINATOR_ID, (b) => writeIpv4(b, a.originatorId!, 'ORIGINATOR_ID'));
  }
  if (a.clusterList && a.clusterList.length > 0 && ibgp) {
    before(ATTR_CLUSTER_LIST);
    attr(w, OPT_NON_TRANS, ATTR_CLUSTER_LIST, (b) => {
      for (const id of a.clusterList!) writeIpv4(b, id, 'CLUSTER_LIST id');
    });
  }
  if (a.extCommunities && a.extCommunities.length > 0) {
    before(ATTR_EXT_COMMUNITIES);
    attr(w, OPT_TRANS, ATTR_EXT_COMMUNITIES, (b) => {
      for (const x of a.extCommunities!) {
        if (!/^[0-9a-fA-F]{16}$/.test(x)) throw new RangeError(`extended community ${x} is not 16 hex digits`);
        for (let i = 0; i < 16; i += 2) b.u8(parseInt(x.slice(i, i + 2), 16));
      }
    });
  }
  if (asSize === 2) {
    const as4 = a.asPath.filter((s) => !isConfed(s));
    if (as4.some((s) => s.asns.some((n) => n > 0xffff))) {
      before(ATTR_AS4_PATH);
      attr(w, OPT_TRANS, ATTR_AS4_PATH, (b) => writeSegments(b, as4, 4));
    }
    if (agg && agg.asn > 0xffff) {
      before(ATTR_AS4_AGGREGATOR);
      attr(w, OPT_TRANS, ATTR_AS4_AGGREGATOR, (b) => {
        b.u32(agg.asn);
        writeIpv4(b, agg.address, 'AS4_AGGREGATOR address');
      });
    }
  }
  if (a.largeCommunities && a.largeCommunities.length > 0) {
    before(ATTR_LARGE_COMMUNITY);
    attr(w, OPT_TRANS, ATTR_LARGE_COMMUNITY, (b) => {
      for (const c of a.largeCommunities!) b.u32(c.global).u32(c.local1).u32(c.local2);
    });
  }
  before(256);
}

/** Write the head of an MP_REACH_NLRI attribute up to its NLRI; returns the fork to join after. */
export function startMpReach(w: Writer, afi: number, safi: number, nextHops: string[]): import('./writer.js').Fork {
  // Always the extended length form (as BIRD writes it): the NLRI size is not known up front.
  w.u8(OPT_NON_TRANS | FLAG_EXTENDED).u8(ATTR_MP_REACH);
  const f = w.fork(2);
  w.u16(afi).u8(safi);
  const nh = w.fork(1);
  for (const h of nextHops) writeAddress(w, h);
  w.join(nh);
  w.u8(0); // reserved
  return f;
}

/**
 * Write the head of an MP_UNREACH_NLRI attribute. Like BIRD: the extended length form when NLRI
 * follow, the short form for an End-of-RIB marker (no NLRI), so BIRD's captures re-encode exactly.
 */
export function startMpUnreach(w: Writer, afi: number, safi: number, withNlri = true): import('./writer.js').Fork {
  w.u8(OPT_NON_TRANS | (withNlri ? FLAG_EXTENDED : 0)).u8(ATTR_MP_UNREACH);
  const f = w.fork(withNlri ? 2 : 1);
  w.u16(afi).u8(safi);
  return f;
}

/** Invalid-network-field error for a classic NLRI or withdrawn field (RFC 7606 §5.3: reset). */
export const nlriFieldError = (what: string, reason: string): BgpError =>
  updateError(UPD_INVALID_NETWORK, 'session-reset', `${what}: ${reason}`);
