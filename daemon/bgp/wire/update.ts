// UPDATE message codec: RFC 4271 §4.3, RFC 7606 (treat-as-withdraw applied here), RFC 4760
// (MP_REACH/MP_UNREACH), RFC 7911 (add-path), RFC 4724 §2 (End-of-RIB), and bulk packing of many
// prefixes into as few UPDATEs as the message size allows (RFC 8654 extended messages).
import {
  familyKey,
  type BgpError,
  type FamilyKey,
  type Nlri,
  type PathAttributes,
  type SessionContext,
  type UpdateMessage,
} from '../types.js';
import { decodePrefixes, writePrefix } from './addr.js';
import {
  ATTR_AS_PATH,
  ATTR_NEXT_HOP,
  ATTR_ORIGIN,
  decodeAttributes,
  encodeAttributes,
  nlriFieldError,
  startMpReach,
  startMpUnreach,
} from './attributes.js';
import { UPD_MALFORMED_ATTR_LIST, UPD_MISSING_WELL_KNOWN, updateError } from './errors.js';
import { beginMessage, endMessage, HEADER_LEN, maxMessageSize, MSG_UPDATE } from './header.js';
import { Writer } from './writer.js';
import { decodePackedIpv4, PackedUpdate, unpackIpv4, type PackedIpv4 } from './packed.js';

export type UpdateResult =
  | { ok: true; message: UpdateMessage; errors: BgpError[] }
  | { ok: false; error: BgpError; family?: FamilyKey };

const IPV4_UNICAST: FamilyKey = '1/1';

export interface DecodeUpdateOptions {
  /**
   * Return a PackedUpdate when the classic NLRI field has no path identifiers: its prefixes as
   * typed arrays, Nlri objects built only if someone reads `nlri` (bulk ingest into the RIB).
   */
  packIpv4?: boolean;
}

/** Decode an UPDATE frame (header included, already checked). Never throws. */
export function decodeUpdate(frame: Uint8Array, ctx: SessionContext, opts?: DecodeUpdateOptions): UpdateResult {
  const end = frame.length;
  let p = HEADER_LEN;
  const addPath4 = ctx.addPathReceive.has(IPV4_UNICAST);
  const wlen = (frame[p]! << 8) | frame[p + 1]!;
  p += 2;
  if (p + wlen + 2 > end) {
    return { ok: false, error: updateError(UPD_MALFORMED_ATTR_LIST, 'session-reset', `withdrawn routes length ${wlen} overruns the message`) };
  }
  const withdrawn: Nlri[] = [];
  let bad = decodePrefixes(frame, p, p + wlen, 1, addPath4, withdrawn);
  if (bad) return { ok: false, error: nlriFieldError('withdrawn routes', bad) };
  p += wlen;
  const alen = (frame[p]! << 8) | frame[p + 1]!;
  p += 2;
  if (p + alen > end) {
    return { ok: false, error: updateError(UPD_MALFORMED_ATTR_LIST, 'session-reset', `total path attribute length ${alen} overruns the message`) };
  }
  const scan = decodeAttributes(frame, p, p + alen, ctx);
  if (scan.action === 'session-reset' || scan.action === 'afisafi-disable') {
    const error = scan.errors.find((e) => e.action === scan.action)!;
    return scan.family && scan.action === 'afisafi-disable'
      ? { ok: false, error, family: familyKey(scan.family.afi, scan.family.safi) }
      : { ok: false, error };
  }
  p += alen;
  let packed: PackedIpv4 | null = null;
  let nlri: Nlri[] = [];
  if (opts?.packIpv4 === true && !addPath4) {
    const r = decodePackedIpv4(frame, p, end);
    if (typeof r === 'string') return { ok: false, error: nlriFieldError('NLRI', r) };
    packed = r;
  } else {
    bad = decodePrefixes(frame, p, end, 1, addPath4, nlri);
    if (bad) return { ok: false, error: nlriFieldError('NLRI', bad) };
  }
  const nlriCount = packed !== null ? packed.addrs.length : nlri.length;

  const errors = scan.errors;
  let withdraw = scan.action === 'treat-as-withdraw';
  if (nlriCount > 0 || (scan.mpReach !== undefined && scan.mpReach.nlri.length > 0)) {
    // RFC 7606 §3 d: a missing well-known mandatory attribute is treat-as-withdraw. NEXT_HOP is
    // mandatory only with classic NLRI (RFC 4760 §3). RFC 4271 also makes LOCAL_PREF mandatory
    // on iBGP; nrd, like BIRD, lets the RIB assume the default instead.
    const required = nlriCount > 0 ? [ATTR_ORIGIN, ATTR_AS_PATH, ATTR_NEXT_HOP] : [ATTR_ORIGIN, ATTR_AS_PATH];
    for (const t of required) {
      if (!scan.seen[t]) {
        errors.push(updateError(UPD_MISSING_WELL_KNOWN, 'treat-as-withdraw', `missing well-known attribute ${t}`, new Uint8Array([t])));
        withdraw = true;
      }
    }
  }

  if (!withdraw && packed !== null && packed.addrs.length > 0) {
    const message = new PackedUpdate(withdrawn, scan.attrs, packed.addrs, packed.lens);
    if (scan.mpReach) message.mpReach = scan.mpReach;
    if (scan.mpUnreach) message.mpUnreach = scan.mpUnreach;
    return { ok: true, message, errors };
  }
  if (packed !== null) nlri = unpackIpv4(packed.addrs, packed.lens);
  const message: UpdateMessage = { type: 'update', withdrawn, attrs: scan.attrs, nlri };
  if (scan.mpReach) message.mpReach = scan.mpReach;
  if (scan.mpUnreach) message.mpUnreach = scan.mpUnreach;
  if (!withdraw) return { ok: true, message, errors };

  // treat-as-withdraw (RFC 7606 §2): every NLRI the UPDATE announces is withdrawn instead.
  const out: UpdateMessage = { type: 'update', withdrawn: nlri.length ? withdrawn.concat(nlri) : withdrawn, attrs: null, nlri: [] };
  let unreach = scan.mpUnreach;
  const reach = scan.mpReach;
  if (reach && reach.nlri.length > 0) {
    if (reach.afi === 1 && reach.safi === 1) out.withdrawn = out.withdrawn.concat(reach.nlri);
    else if (!unreach) unreach = { afi: reach.afi, safi: reach.safi, withdrawn: reach.nlri };
    else if (unreach.afi === reach.afi && unreach.safi === reach.safi)
      unreach = { ...unreach, withdrawn: unreach.withdrawn.concat(reach.nlri) };
    else {
      // Two MP families and a withdraw: the model has one MP_UNREACH per UPDATE. RFC says
      // treat-as-withdraw / nrd resets rather than lose a withdrawal.
      const error = updateError(UPD_MALFORMED_ATTR_LIST, 'session-reset', 'treat-as-withdraw with MP_REACH and MP_UNREACH of different families');
      return { ok: false, error };
    }
  }
  if (unreach) out.mpUnreach = unreach;
  return { ok: true, message: out, errors };
}

const scratch = new Uint8Array(24);

function writeNlriList(w: Writer, afi: number, list: Nlri[], addPath: boolean): void {
  for (const n of list) {
    const end = writePrefix(scratch, 0, afi, n, addPath);
    if (end < 0) throw new RangeError(`${n.prefix} is not an AFI ${afi} prefix`);
    w.bytes(scratch.subarray(0, end));
  }
}

/** Write the UPDATE body. MP attributes come first (RFC 7606 §5.1), then the rest in type order. */
export function encodeUpdate(w: Writer, m: UpdateMessage, ctx: SessionContext): void {
  const ap4 = ctx.addPathSend.has(IPV4_UNICAST);
  const wf = w.fork(2);
  writeNlriList(w, 1, m.withdrawn, ap4);
  w.join(wf);
  const af = w.fork(2);
  if (m.mpReach) {
    const r = m.mpReach;
    const f = startMpReach(w, r.afi, r.safi, r.nextHops);
    writeNlriList(w, r.afi, r.nlri, ctx.addPathSend.has(familyKey(r.afi, r.safi)));
    w.join(f);
  }
  if (m.mpUnreach) {
    const u = m.mpUnreach;
    const f = startMpUnreach(w, u.afi, u.safi, u.withdrawn.length > 0);
    writeNlriList(w, u.afi, u.withdrawn, ctx.addPathSend.has(familyKey(u.afi, u.safi)));
    w.join(f);
  }
  if (m.attrs) encodeAttributes(w, m.attrs, ctx);
  w.join(af);
  writeNlriList(w, 1, m.nlri, ap4);
}

/** RFC 4724 §2: the family an End-of-RIB marker closes, or null for any other UPDATE. */
export function isEndOfRib(u: UpdateMessage): FamilyKey | null {
  if (u.attrs !== null || u.withdrawn.length > 0 || u.mpReach || u.nlri.length > 0) return null;
  if (!u.mpUnreach) return IPV4_UNICAST;
  return u.mpUnreach.withdrawn.length === 0 ? familyKey(u.mpUnreach.afi, u.mpUnreach.safi) : null;
}

/** The End-of-RIB UPDATE for a family: empty for IPv4 unicast, an empty MP_UNREACH otherwise. */
export function endOfRib(afi: number, safi: number): Uint8Array {
  const w = new Writer(32);
  const at = beginMessage(w, MSG_UPDATE);
  w.u16(0);
  const af = w.fork(2);
  if (!(afi === 1 && safi === 1)) w.join(startMpUnreach(w, afi, safi, false));
  w.join(af);
  endMessage(w, at, 4096);
  return w.finish();
}

function splitFamily(family: FamilyKey): [number, number] {
  const [afi, safi] = family.split('/').map(Number) as [number, number];
  return [afi, safi];
}

const EMPTY = new Uint8Array(0);

/**
 * Pack NLRI into as few messages as possible: each message is head + NLRI + tail, at most `max`
 * octets; `finish(msg, nlriLen)` patches the length fields. One scratch buffer and one exact-size
 * copy per message; no per-prefix allocation.
 */
function pack(
  prefixes: Nlri[],
  afi: number,
  addPath: boolean,
  head: Uint8Array,
  tail: Uint8Array,
  max: number,
  finish: (msg: Uint8Array, nlriLen: number) => void,
): Uint8Array[] {
  const room = max - head.length - tail.length;
  const body = new Uint8Array(room + 24);
  const out: Uint8Array[] = [];
  let used = 0;
  const flush = (): void => {
    const msg = new Uint8Array(head.length + used + tail.length);
    msg.set(head, 0);
    msg.set(body.subarray(0, used), head.length);
    msg.set(tail, head.length + used);
    finish(msg, used);
    out.push(msg);
    used = 0;
  };
  for (let i = 0; i < prefixes.length; i++) {
    const end = writePrefix(body, used, afi, prefixes[i]!, addPath);
    if (end < 0) throw new RangeError(`${prefixes[i]!.prefix} is not an AFI ${afi} prefix`);
    if (end > room) {
      // This one did not fit: send what came before, then write it again at the start.
      flush();
      used = writePrefix(body, 0, afi, prefixes[i]!, addPath);
    } else used = end;
  }
  if (used > 0) flush();
  return out;
}

const setU16 = (b: Uint8Array, at: number, v: number): void => {
  b[at] = v >>> 8;
  b[at + 1] = v & 0xff;
};

/**
 * Announce `prefixes` of one family with the same attributes in as few UPDATEs as fit the session's
 * maximum message size; the same bytes encodeMessage would produce for each. IPv4 unicast uses the
 * classic NLRI field and attrs.nextHop; other families use MP_REACH_NLRI (first attribute) with
 * `nextHops` (for IPv6: global, then optionally link-local). Throws RangeError on bad input.
 */
export function packUpdates(
  attrs: PathAttributes,
  prefixes: Nlri[],
  ctx: SessionContext,
  family: FamilyKey,
  nextHops: string[] = [],
): Uint8Array[] {
  const [afi, safi] = splitFamily(family);
  const max = maxMessageSize(ctx.extendedMessage);
  const addPath = ctx.addPathSend.has(family);
  const w = new Writer(1024);
  beginMessage(w, MSG_UPDATE);
  w.u16(0); // no withdrawn routes
  const alenAt = w.pos;
  w.u16(0);
  if (family === IPV4_UNICAST) {
    if (attrs.nextHop === undefined) throw new RangeError('IPv4 unicast UPDATE needs attrs.nextHop');
    encodeAttributes(w, attrs, ctx);
    const head = w.finish();
    setU16(head, alenAt, head.length - alenAt - 2);
    return pack(prefixes, 1, addPath, head, EMPTY, max, (msg) => setU16(msg, 16, msg.length));
  }
  if (nextHops.length === 0) throw new RangeError(`family ${family} needs next hops for MP_REACH_NLRI`);
  const mpAt = w.pos;
  startMpReach(w, afi, safi, nextHops);
  const mpFixed = w.pos - mpAt - 4;
  const head = w.finish();
  const tw = new Writer(256);
  encodeAttributes(tw, attrs, ctx, { omitNextHop: true });
  const tail = tw.finish();
  return pack(prefixes, afi, addPath, head, tail, max, (msg, used) => {
    setU16(msg, 16, msg.length);
    setU16(msg, alenAt, msg.length - alenAt - 2);
    setU16(msg, mpAt + 2, mpFixed + used);
  });
}

/** Withdraw `prefixes` of one family in as few UPDATEs as fit (classic field for IPv4 unicast). */
export function packWithdrawals(prefixes: Nlri[], ctx: SessionContext, family: FamilyKey): Uint8Array[] {
  const [afi, safi] = splitFamily(family);
  const max = maxMessageSize(ctx.extendedMessage);
  const addPath = ctx.addPathSend.has(family);
  const w = new Writer(64);
  beginMessage(w, MSG_UPDATE);
  if (family === IPV4_UNICAST) {
    w.u16(0);
    // Withdrawn routes, then a zero total path attribute length as the tail.
    return pack(prefixes, 1, addPath, w.finish(), new Uint8Array(2), max, (msg, used) => {
      setU16(msg, 16, msg.length);
      setU16(msg, HEADER_LEN, used);
    });
  }
  w.u16(0);
  const alenAt = w.pos;
  w.u16(0);
  const mpAt = w.pos;
  startMpUnreach(w, afi, safi);
  return pack(prefixes, afi, addPath, w.finish(), EMPTY, max, (msg, used) => {
    setU16(msg, 16, msg.length);
    setU16(msg, alenAt, msg.length - alenAt - 2);
    setU16(msg, mpAt + 2, 3 + used);
  });
}
