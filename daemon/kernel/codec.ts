// rtnetlink message codec for the subset nrd speaks: rtmsg + RTA_* (incl. RTA_MULTIPATH rtnexthop
// arrays and RTA_METRICS/RTAX_MTU), ifinfomsg + IFLA_* (IFLA_LINKINFO/IFLA_INFO_DATA for vxlan),
// ifaddrmsg + IFA_*, ndmsg + NDA_* (AF_INET/AF_INET6 neighbours and AF_BRIDGE FDB entries).
// Kernel UAPI: linux/rtnetlink.h, linux/if_link.h, linux/neighbour.h, linux/if_addr.h.
// Why our own: the npm `netlink` package leaves IFLA_INFO_DATA and RTA_MULTIPATH as raw buffers
// anyway, and encoding the fixed headers ourselves lets the channel pack many requests into one
// datagram; the package still provides the socket (netlink.ts / channel.ts).
import { bytesToIp, bytesToMac, canonicalPrefix, ipToBytes, macToBytes, parsePrefix, type Family } from './addr.js';
import type { AddressInfo, FdbEntry, LinkInfo, Neighbour, NextHop, Route, RouteType, VxlanSpec } from './types.js';

// nlmsghdr
export const NLMSG_HDRLEN = 16;
export const NLMSG_ERROR = 2;
export const NLMSG_DONE = 3;
export const NLMSG_OVERRUN = 4;
export const NLM_F_REQUEST = 0x1;
export const NLM_F_MULTI = 0x2;
export const NLM_F_ACK = 0x4;
export const NLM_F_DUMP_INTR = 0x10;
export const NLM_F_DUMP = 0x300;
export const NLM_F_REPLACE = 0x100;
export const NLM_F_EXCL = 0x200;
export const NLM_F_CREATE = 0x400;
export const NLM_F_APPEND = 0x800;

export const RTM_NEWLINK = 16;
export const RTM_DELLINK = 17;
export const RTM_GETLINK = 18;
export const RTM_SETLINK = 19;
export const RTM_NEWADDR = 20;
export const RTM_DELADDR = 21;
export const RTM_GETADDR = 22;
export const RTM_NEWROUTE = 24;
export const RTM_DELROUTE = 25;
export const RTM_GETROUTE = 26;
export const RTM_NEWNEIGH = 28;
export const RTM_DELNEIGH = 29;
export const RTM_GETNEIGH = 30;

// Multicast groups (RTNLGRP_*), joined with NETLINK_ADD_MEMBERSHIP.
export const RTNLGRP_LINK = 1;
export const RTNLGRP_NEIGH = 3;
export const RTNLGRP_IPV4_IFADDR = 5;
export const RTNLGRP_IPV6_IFADDR = 9;
export const RTNLGRP_IPV4_ROUTE = 7;
export const RTNLGRP_IPV6_ROUTE = 11;

export const AF_UNSPEC = 0;
export const AF_INET = 2;
export const AF_BRIDGE = 7;
export const AF_INET6 = 10;

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RTA_PRIORITY = 6;
const RTA_METRICS = 8;
const RTA_MULTIPATH = 9;
const RTA_TABLE = 15;
const RTAX_MTU = 2;
const RTNH_F_ONLINK = 4;
export const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RT_SCOPE_NOWHERE = 255;
const RT_TABLE_UNSPEC = 0;

export const IFLA_ADDRESS = 1;
export const IFLA_IFNAME = 3;
export const IFLA_MTU = 4;
export const IFLA_LINKINFO = 18;
export const IFLA_INFO_KIND = 1;
export const IFLA_INFO_DATA = 2;
const IFLA_VXLAN_ID = 1;
const IFLA_VXLAN_LINK = 3;
const IFLA_VXLAN_LOCAL = 4;
const IFLA_VXLAN_LEARNING = 7;
const IFLA_VXLAN_PORT = 15;
const IFLA_VXLAN_LOCAL6 = 17;
const IFF_UP = 0x1;

export const IFA_ADDRESS = 1;
export const IFA_LOCAL = 2;

const NDA_DST = 1;
const NDA_LLADDR = 2;
const NUD_PERMANENT = 0x80;
const NUD_NOARP = 0x40;
const NTF_SELF = 0x02;

const NLA_TYPE_MASK = 0x3fff; // strips NLA_F_NESTED / NLA_F_NET_BYTEORDER

// ---------------------------------------------------------------------------------------------
// Attribute writer: fork()/join() fill the nested length after the body.

export class AttrWriter {
  private buf: Buffer;
  private off = 0;

  constructor(size = 256) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const b = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n + 64));
    this.buf.copy(b, 0, 0, this.off);
    this.buf = b;
  }

  get length(): number {
    return this.off;
  }

  bytes(b: Uint8Array): this {
    this.ensure(b.length);
    this.buf.set(b, this.off);
    this.off += b.length;
    return this;
  }

  u8(v: number): this {
    this.ensure(1);
    this.buf.writeUInt8(v, this.off);
    this.off += 1;
    return this;
  }

  u16(v: number): this {
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.off);
    this.off += 2;
    return this;
  }

  u32(v: number): this {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.off);
    this.off += 4;
    return this;
  }

  s32(v: number): this {
    this.ensure(4);
    this.buf.writeInt32LE(v, this.off);
    this.off += 4;
    return this;
  }

  private pad(): void {
    const p = (4 - (this.off & 3)) & 3;
    this.ensure(p);
    this.buf.fill(0, this.off, this.off + p);
    this.off += p;
  }

  attr(type: number, data: Uint8Array): this {
    this.u16(4 + data.length).u16(type).bytes(data);
    this.pad();
    return this;
  }

  attrU8(type: number, v: number): this {
    this.u16(5).u16(type).u8(v);
    this.pad();
    return this;
  }

  attrU32(type: number, v: number): this {
    this.ensure(8);
    this.buf.writeUInt16LE(8, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.writeUInt32LE(v >>> 0, this.off + 4);
    this.off += 8;
    return this;
  }

  attrBe16(type: number, v: number): this {
    this.ensure(8);
    this.buf.writeUInt16LE(6, this.off);
    this.buf.writeUInt16LE(type, this.off + 2);
    this.buf.writeUInt16BE(v, this.off + 4);
    this.buf.writeUInt16LE(0, this.off + 6);
    this.off += 8;
    return this;
  }

  attrString(type: number, s: string): this {
    return this.attr(type, Buffer.concat([Buffer.from(s, 'utf8'), Buffer.from([0])]));
  }

  /** Start a length-prefixed region (a nested attribute or an rtnexthop); returns its offset. */
  fork(): number {
    const at = this.off;
    this.u16(0);
    return at;
  }

  forkAttr(type: number): number {
    const at = this.off;
    this.u16(0).u16(type);
    return at;
  }

  /** Fill the u16 length at `at` with the bytes written since, then pad. */
  join(at: number): this {
    this.buf.writeUInt16LE(this.off - at, at);
    this.pad();
    return this;
  }

  finish(): Buffer {
    return this.buf.subarray(0, this.off);
  }
}

// ---------------------------------------------------------------------------------------------
// Attribute reader.

export type Attrs = Map<number, Buffer>;

/** Attributes of a region; a repeated type keeps the last (none of ours repeat). */
export function parseAttrs(b: Buffer, off = 0, end = b.length): Attrs {
  const m: Attrs = new Map();
  while (off + 4 <= end) {
    const len = b.readUInt16LE(off);
    const type = b.readUInt16LE(off + 2) & NLA_TYPE_MASK;
    if (len < 4 || off + len > end) break; // truncated: keep what parsed
    m.set(type, b.subarray(off + 4, off + len));
    off += (len + 3) & ~3;
  }
  return m;
}

const u32 = (b: Buffer | undefined): number | undefined => (b && b.length >= 4 ? b.readUInt32LE(0) : undefined);
const cstr = (b: Buffer | undefined): string | undefined => {
  if (!b) return undefined;
  const z = b.indexOf(0);
  return b.subarray(0, z < 0 ? b.length : z).toString('utf8');
};

// ---------------------------------------------------------------------------------------------
// Routes (rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags u32).

const ROUTE_TYPES: Record<number, RouteType> = { 1: 'unicast', 2: 'local', 3: 'broadcast', 6: 'blackhole', 7: 'unreachable', 8: 'prohibit' };
const ROUTE_TYPE_NUM: Record<Exclude<RouteType, 'other'>, number> = {
  unicast: 1,
  local: 2,
  broadcast: 3,
  blackhole: 6,
  unreachable: 7,
  prohibit: 8,
};

function routeTypeNum(t: RouteType): number {
  if (t === 'other') throw new Error('cannot write a route of type "other"');
  return ROUTE_TYPE_NUM[t];
}

const afOf = (f: Family): number => (f === 4 ? AF_INET : AF_INET6);

function writeRtmsg(w: AttrWriter, family: Family, dstLen: number, table: number, protocol: number, scope: number, type: number, flags: number): void {
  w.u8(afOf(family)).u8(dstLen).u8(0).u8(0).u8(table < 256 ? table : RT_TABLE_UNSPEC).u8(protocol).u8(scope).u8(type).u32(flags);
}

/** RTM_NEWROUTE payload for a route (flags of the request are the caller's). */
export function encodeRoute(r: Route): Buffer {
  const p = parsePrefix(r.dst);
  if (p.family !== r.family) throw new Error(`route ${r.dst}: family ${r.family} does not match`);
  const w = new AttrWriter(128 + r.nextHops.length * 24);
  const typeNum = routeTypeNum(r.type);
  const single = r.nextHops.length === 1 ? r.nextHops[0]! : undefined;
  // A unicast route with no gateway at all is a route onto a link: scope link, like ip-route.
  const scope = typeNum === 1 && r.nextHops.length > 0 && r.nextHops.every((n) => !n.gateway) ? RT_SCOPE_LINK : RT_SCOPE_UNIVERSE;
  writeRtmsg(w, r.family, p.len, r.table, r.protocol, scope, typeNum, single?.onlink ? RTNH_F_ONLINK : 0);
  w.attrU32(RTA_TABLE, r.table);
  if (p.len > 0 || r.family === 6) w.attr(RTA_DST, p.bytes);
  if (r.metric !== undefined) w.attrU32(RTA_PRIORITY, r.metric);
  if (r.mtu !== undefined) {
    const m = w.forkAttr(RTA_METRICS);
    w.attrU32(RTAX_MTU, r.mtu);
    w.join(m);
  }
  if (single) {
    if (single.gateway) w.attr(RTA_GATEWAY, ipToBytes(single.gateway));
    if (single.ifindex !== undefined) w.attrU32(RTA_OIF, single.ifindex);
  } else if (r.nextHops.length > 1) {
    // RTA_MULTIPATH: an array of struct rtnexthop {u16 len; u8 flags; u8 hops; s32 ifindex} each
    // followed by its own attributes (RTA_GATEWAY); rtnh_hops is weight - 1.
    const mp = w.forkAttr(RTA_MULTIPATH);
    for (const nh of r.nextHops) {
      const at = w.fork();
      w.u8(nh.onlink ? RTNH_F_ONLINK : 0)
        .u8(Math.max(0, Math.min(255, (nh.weight ?? 1) - 1)))
        .s32(nh.ifindex ?? 0);
      if (nh.gateway) w.attr(RTA_GATEWAY, ipToBytes(nh.gateway));
      w.join(at);
    }
    w.join(mp);
  }
  return w.finish();
}

// ---------------------------------------------------------------------------------------------
// Fast route writer for batches: writes an rtmsg payload straight into a caller's (datagram)
// buffer with index stores, parsing IPv4 text in place — no intermediate Buffers, no AttrWriter,
// no Prefix objects. Produces exactly the bytes of encodeRoute/encodeRouteDelete (a unit test holds
// them equal); IPv6 addresses take the general path (ipToBytes) and are copied in.

/** Upper bound of the payload writeRoute produces for `r` (the caller reserves it). */
export function routeMaxBytes(r: Pick<Route, 'nextHops'>): number {
  return 12 + 8 + 20 + 8 + 16 + 24 + 8 + r.nextHops.length * 32;
}

const put16 = (b: Buffer, o: number, v: number): void => {
  b[o] = v & 255;
  b[o + 1] = (v >>> 8) & 255;
};
const put32 = (b: Buffer, o: number, v: number): void => {
  b[o] = v & 255;
  b[o + 1] = (v >>> 8) & 255;
  b[o + 2] = (v >>> 16) & 255;
  b[o + 3] = (v >>> 24) & 255;
};
const attr32 = (b: Buffer, o: number, type: number, v: number): number => {
  b[o] = 8;
  b[o + 1] = 0;
  b[o + 2] = type;
  b[o + 3] = 0;
  put32(b, o + 4, v);
  return o + 8;
};

/**
 * Dotted-quad text (stopping at `end`) into b[o..o+4]; false when not IPv4 (nothing promised
 * about the bytes then). Same acceptance as addr.ts's parser: four decimal parts 0..255, no
 * leading zeros.
 */
function putV4(b: Buffer, o: number, a: string, end: number): boolean {
  let part = 0;
  let digits = 0;
  let v = 0;
  for (let i = 0; i <= end; i++) {
    const c = i < end ? a.charCodeAt(i) : 46;
    if (c === 46) {
      if (digits === 0 || part > 3 || v > 255) return false;
      b[o + part++] = v;
      v = 0;
      digits = 0;
    } else if (c >= 48 && c <= 57 && digits < 3) {
      if (digits === 1 && v === 0) return false;
      v = v * 10 + (c - 48);
      digits++;
    } else {
      return false;
    }
  }
  return part === 4;
}

/** An address attribute (RTA_DST/RTA_GATEWAY) of the text `a[0..end)`; returns the new offset. */
function putAddrAttr(b: Buffer, o: number, type: number, a: string, end: number, family: Family): number {
  if (family === 4 && putV4(b, o + 4, a, end)) {
    b[o] = 8;
    b[o + 1] = 0;
    b[o + 2] = type;
    b[o + 3] = 0;
    return o + 8;
  }
  const bytes = ipToBytes(end === a.length ? a : a.slice(0, end));
  const want = family === 4 ? 4 : 16;
  if (bytes.length !== want) throw new Error(`address ${a.slice(0, end)} is not IPv${family}`);
  b[o] = 4 + want;
  b[o + 1] = 0;
  b[o + 2] = type;
  b[o + 3] = 0;
  bytes.copy(b, o + 4);
  return o + 4 + want;
}

/** Clear the host bits of the `want`-byte address at b[o..] for a /len prefix. */
function maskAt(b: Buffer, o: number, want: number, len: number): void {
  for (let i = 0; i < want; i++) {
    const bits = len - i * 8;
    if (bits >= 8) continue;
    b[o + i]! &= bits <= 0 ? 0 : (0xff << (8 - bits)) & 0xff;
  }
}

/** Prefix length of 'a/len' text (the address part ends at the slash); throws when malformed. */
function prefixLenOf(dst: string, slash: number, max: number): number {
  if (slash < 0) return max;
  let v = 0;
  const n = dst.length - slash - 1;
  if (n < 1 || n > 3) throw new Error(`bad prefix length in ${JSON.stringify(dst)}`);
  for (let i = slash + 1; i < dst.length; i++) {
    const c = dst.charCodeAt(i);
    if (c < 48 || c > 57) throw new Error(`bad prefix length in ${JSON.stringify(dst)}`);
    v = v * 10 + (c - 48);
  }
  if (v > max) throw new Error(`bad prefix length in ${JSON.stringify(dst)}`);
  return v;
}

/**
 * Write the RTM_NEWROUTE (or, with `del`, RTM_DELROUTE) payload of `r` at b[o..]; returns the end
 * offset (4-aligned). The caller reserved routeMaxBytes(r) bytes.
 */
export function writeRoute(b: Buffer, o: number, r: Route, del = false): number {
  const family = r.family;
  const dst = r.dst;
  const slash = dst.indexOf('/');
  const max = family === 4 ? 32 : 128;
  const len = prefixLenOf(dst, slash, max);
  const hops = r.nextHops;
  let typeNum: number;
  let scope: number;
  let flags = 0;
  if (del) {
    typeNum = 0;
    scope = RT_SCOPE_NOWHERE;
  } else {
    typeNum = routeTypeNum(r.type);
    scope = RT_SCOPE_UNIVERSE;
    if (typeNum === 1 && hops.length > 0) {
      let anyGw = false;
      for (let i = 0; i < hops.length; i++) if (hops[i]!.gateway) anyGw = true;
      if (!anyGw) scope = RT_SCOPE_LINK;
    }
    if (hops.length === 1 && hops[0]!.onlink) flags = RTNH_F_ONLINK;
  }
  // rtmsg
  b[o] = family === 4 ? AF_INET : AF_INET6;
  b[o + 1] = len;
  b[o + 2] = 0;
  b[o + 3] = 0;
  b[o + 4] = r.table < 256 ? r.table : RT_TABLE_UNSPEC;
  b[o + 5] = r.protocol;
  b[o + 6] = scope;
  b[o + 7] = typeNum;
  put32(b, o + 8, flags);
  let p = attr32(b, o + 12, RTA_TABLE, r.table);
  if (len > 0 || family === 6) {
    const end = putAddrAttr(b, p, RTA_DST, dst, slash < 0 ? dst.length : slash, family);
    maskAt(b, p + 4, end - p - 4, len);
    p = end;
  }
  if (r.metric !== undefined) p = attr32(b, p, RTA_PRIORITY, r.metric);
  if (del) return p;
  if (r.mtu !== undefined) {
    b[p] = 12;
    b[p + 1] = 0;
    b[p + 2] = RTA_METRICS;
    b[p + 3] = 0;
    p = attr32(b, p + 4, RTAX_MTU, r.mtu);
  }
  if (hops.length === 1) {
    const h = hops[0]!;
    if (h.gateway) p = putAddrAttr(b, p, RTA_GATEWAY, h.gateway, h.gateway.length, family);
    if (h.ifindex !== undefined) p = attr32(b, p, RTA_OIF, h.ifindex);
  } else if (hops.length > 1) {
    const mp = p;
    p += 4;
    for (let i = 0; i < hops.length; i++) {
      const h = hops[i]!;
      const at = p;
      b[p + 2] = h.onlink ? RTNH_F_ONLINK : 0;
      b[p + 3] = Math.max(0, Math.min(255, (h.weight ?? 1) - 1));
      put32(b, p + 4, h.ifindex ?? 0);
      p += 8;
      if (h.gateway) p = putAddrAttr(b, p, RTA_GATEWAY, h.gateway, h.gateway.length, family);
      put16(b, at, p - at);
    }
    put16(b, mp, p - mp);
    b[mp + 2] = RTA_MULTIPATH;
    b[mp + 3] = 0;
  }
  return p;
}

/** RTM_DELROUTE payload: table, prefix, metric, protocol and type select the route. */
export function encodeRouteDelete(r: Pick<Route, 'family' | 'dst' | 'table' | 'metric' | 'protocol' | 'type'>): Buffer {
  const p = parsePrefix(r.dst);
  const w = new AttrWriter(64);
  // Scope RT_SCOPE_NOWHERE and type 0 are the kernel's "any" wildcards (fib_table_delete); the
  // protocol is NOT a wildcard: a foreign route with the same prefix and metric never matches.
  writeRtmsg(w, r.family, p.len, r.table, r.protocol, RT_SCOPE_NOWHERE, 0, 0);
  w.attrU32(RTA_TABLE, r.table);
  if (p.len > 0 || r.family === 6) w.attr(RTA_DST, p.bytes);
  if (r.metric !== undefined) w.attrU32(RTA_PRIORITY, r.metric);
  return w.finish();
}

export function encodeRouteDumpRequest(family: Family): Buffer {
  const w = new AttrWriter(12);
  writeRtmsg(w, family, 0, 0, 0, 0, 0, 0);
  return w.finish();
}

/** Decode an RTM_NEWROUTE/DELROUTE payload; null for families we do not handle. */
export function decodeRoute(b: Buffer): Route | null {
  if (b.length < 12) return null;
  const af = b.readUInt8(0);
  if (af !== AF_INET && af !== AF_INET6) return null;
  const family: Family = af === AF_INET ? 4 : 6;
  const dstLen = b.readUInt8(1);
  const tableHdr = b.readUInt8(4);
  const protocol = b.readUInt8(5);
  const type = ROUTE_TYPES[b.readUInt8(7)] ?? 'other';
  const rtFlags = b.readUInt32LE(8);
  const a = parseAttrs(b, 12);
  const dstBytes = a.get(RTA_DST) ?? Buffer.alloc(family === 4 ? 4 : 16);
  const dst = `${bytesToIp(dstBytes)}/${dstLen}`;
  const route: Route = {
    family,
    dst,
    table: u32(a.get(RTA_TABLE)) ?? tableHdr,
    protocol,
    type,
    nextHops: [],
  };
  const prio = u32(a.get(RTA_PRIORITY));
  if (prio !== undefined) route.metric = prio;
  const metrics = a.get(RTA_METRICS);
  if (metrics) {
    const mtu = u32(parseAttrs(metrics).get(RTAX_MTU));
    if (mtu !== undefined) route.mtu = mtu;
  }
  const mp = a.get(RTA_MULTIPATH);
  if (type === 'blackhole' || type === 'unreachable' || type === 'prohibit') {
    // IPv6 reports these through the loopback device; they have no next hop to compare.
  } else if (mp) {
    let off = 0;
    while (off + 8 <= mp.length) {
      const len = mp.readUInt16LE(off);
      if (len < 8 || off + len > mp.length) break;
      const nh: NextHop = { weight: mp.readUInt8(off + 3) + 1 };
      const flags = mp.readUInt8(off + 2);
      const ifindex = mp.readInt32LE(off + 4);
      if (ifindex > 0) nh.ifindex = ifindex;
      if (flags & RTNH_F_ONLINK) nh.onlink = true;
      const gw = parseAttrs(mp, off + 8, off + len).get(RTA_GATEWAY);
      if (gw) nh.gateway = bytesToIp(gw);
      route.nextHops.push(nh);
      off += (len + 3) & ~3;
    }
  } else {
    const gw = a.get(RTA_GATEWAY);
    const oif = u32(a.get(RTA_OIF));
    if (gw || oif !== undefined) {
      const nh: NextHop = {};
      if (gw) nh.gateway = bytesToIp(gw);
      if (oif !== undefined) nh.ifindex = oif;
      if (rtFlags & RTNH_F_ONLINK) nh.onlink = true;
      route.nextHops.push(nh);
    }
  }
  return route;
}

// ---------------------------------------------------------------------------------------------
// Links (ifinfomsg: family u8, pad u8, type u16, index s32, flags u32, change u32).

function writeIfinfomsg(w: AttrWriter, index: number, flags = 0, change = 0): void {
  w.u8(AF_UNSPEC).u8(0).u16(0).s32(index).u32(flags).u32(change);
}

export function encodeLinkGet(nameOrIndex: string | number): Buffer {
  const w = new AttrWriter(48);
  writeIfinfomsg(w, typeof nameOrIndex === 'number' ? nameOrIndex : 0);
  if (typeof nameOrIndex === 'string') w.attrString(IFLA_IFNAME, nameOrIndex);
  return w.finish();
}

export function encodeLinkDumpRequest(): Buffer {
  const w = new AttrWriter(16);
  writeIfinfomsg(w, 0);
  return w.finish();
}

/** RTM_NEWLINK payload creating a VXLAN device (IFLA_LINKINFO { KIND "vxlan", DATA {…} }). */
export function encodeVxlanCreate(s: VxlanSpec): Buffer {
  const w = new AttrWriter(160);
  writeIfinfomsg(w, 0);
  w.attrString(IFLA_IFNAME, s.name);
  w.attrU32(IFLA_MTU, s.mtu);
  if (s.mac) w.attr(IFLA_ADDRESS, macToBytes(s.mac));
  const li = w.forkAttr(IFLA_LINKINFO);
  w.attrString(IFLA_INFO_KIND, 'vxlan');
  const data = w.forkAttr(IFLA_INFO_DATA);
  w.attrU32(IFLA_VXLAN_ID, s.vni);
  const local = ipToBytes(s.local);
  w.attr(local.length === 4 ? IFLA_VXLAN_LOCAL : IFLA_VXLAN_LOCAL6, local);
  if (s.underlayIndex !== undefined) w.attrU32(IFLA_VXLAN_LINK, s.underlayIndex);
  w.attrU8(IFLA_VXLAN_LEARNING, 0);
  w.attrBe16(IFLA_VXLAN_PORT, s.port);
  w.join(data);
  w.join(li);
  return w.finish();
}

export function encodeLinkSet(index: number, opts: { up?: boolean; mtu?: number }): Buffer {
  const w = new AttrWriter(40);
  writeIfinfomsg(w, index, opts.up ? IFF_UP : 0, opts.up !== undefined ? IFF_UP : 0);
  if (opts.mtu !== undefined) w.attrU32(IFLA_MTU, opts.mtu);
  return w.finish();
}

export function encodeLinkDelete(index: number): Buffer {
  const w = new AttrWriter(16);
  writeIfinfomsg(w, index);
  return w.finish();
}

export function decodeLink(b: Buffer): LinkInfo | null {
  if (b.length < 16) return null;
  const index = b.readInt32LE(4);
  const flags = b.readUInt32LE(8);
  const a = parseAttrs(b, 16);
  const link: LinkInfo = {
    index,
    name: cstr(a.get(IFLA_IFNAME)) ?? '',
    mtu: u32(a.get(IFLA_MTU)) ?? 0,
    up: (flags & IFF_UP) !== 0,
  };
  const mac = a.get(IFLA_ADDRESS);
  if (mac && mac.length === 6) link.mac = bytesToMac(mac);
  const li = a.get(IFLA_LINKINFO);
  if (li) {
    const la = parseAttrs(li);
    const kind = cstr(la.get(IFLA_INFO_KIND));
    if (kind) link.kind = kind;
    const data = la.get(IFLA_INFO_DATA);
    if (kind === 'vxlan' && data) {
      const d = parseAttrs(data);
      const port = d.get(IFLA_VXLAN_PORT);
      const local = d.get(IFLA_VXLAN_LOCAL) ?? d.get(IFLA_VXLAN_LOCAL6);
      link.vxlan = {
        vni: u32(d.get(IFLA_VXLAN_ID)) ?? 0,
        port: port && port.length >= 2 ? port.readUInt16BE(0) : 0,
        learning: (d.get(IFLA_VXLAN_LEARNING)?.readUInt8(0) ?? 1) !== 0,
      };
      if (local) link.vxlan.local = bytesToIp(local);
      const ul = u32(d.get(IFLA_VXLAN_LINK));
      if (ul) link.vxlan.link = ul;
    }
  }
  return link;
}

// ---------------------------------------------------------------------------------------------
// Addresses (ifaddrmsg: family u8, prefixlen u8, flags u8, scope u8, index u32).

export function encodeAddrDumpRequest(family?: Family): Buffer {
  const w = new AttrWriter(8);
  w.u8(family === undefined ? AF_UNSPEC : afOf(family)).u8(0).u8(0).u8(0).u32(0);
  return w.finish();
}

export function decodeAddress(b: Buffer): AddressInfo | null {
  if (b.length < 8) return null;
  const af = b.readUInt8(0);
  if (af !== AF_INET && af !== AF_INET6) return null;
  const a = parseAttrs(b, 8);
  // IFA_LOCAL is the interface's own address on point-to-point links; IFA_ADDRESS otherwise.
  const addr = a.get(IFA_LOCAL) ?? a.get(IFA_ADDRESS);
  if (!addr) return null;
  return { ifindex: b.readUInt32LE(4), family: af === AF_INET ? 4 : 6, address: bytesToIp(addr), prefixLen: b.readUInt8(1) };
}

// ---------------------------------------------------------------------------------------------
// Neighbours and FDB (ndmsg: family u8, pad u8, pad u16, ifindex s32, state u16, flags u8, type u8).

function writeNdmsg(w: AttrWriter, af: number, ifindex: number, state: number, flags: number): void {
  w.u8(af).u8(0).u16(0).s32(ifindex).u16(state).u8(flags).u8(0);
}

export function encodeNeighbour(n: { ifindex: number; ip: string; mac?: string }): Buffer {
  const ip = ipToBytes(n.ip);
  const w = new AttrWriter(48);
  writeNdmsg(w, ip.length === 4 ? AF_INET : AF_INET6, n.ifindex, NUD_PERMANENT, 0);
  w.attr(NDA_DST, ip);
  if (n.mac) w.attr(NDA_LLADDR, macToBytes(n.mac));
  return w.finish();
}

export function encodeFdb(e: { ifindex: number; mac: string; dst?: string }): Buffer {
  const w = new AttrWriter(48);
  writeNdmsg(w, AF_BRIDGE, e.ifindex, NUD_PERMANENT, NTF_SELF);
  w.attr(NDA_LLADDR, macToBytes(e.mac));
  if (e.dst) w.attr(NDA_DST, ipToBytes(e.dst));
  return w.finish();
}

export function encodeNeighDumpRequest(af: number, ifindex = 0): Buffer {
  const w = new AttrWriter(12);
  writeNdmsg(w, af, ifindex, 0, 0);
  return w.finish();
}

export function decodeNeighbour(b: Buffer): Neighbour | null {
  if (b.length < 12) return null;
  const af = b.readUInt8(0);
  if (af !== AF_INET && af !== AF_INET6) return null;
  const state = b.readUInt16LE(8);
  const a = parseAttrs(b, 12);
  const dst = a.get(NDA_DST);
  if (!dst) return null;
  const n: Neighbour = {
    ifindex: b.readInt32LE(4),
    family: af === AF_INET ? 4 : 6,
    ip: bytesToIp(dst),
    permanent: (state & NUD_PERMANENT) !== 0,
  };
  const ll = a.get(NDA_LLADDR);
  if (ll && ll.length === 6) n.mac = bytesToMac(ll);
  return n;
}

export function decodeFdb(b: Buffer): FdbEntry | null {
  if (b.length < 12 || b.readUInt8(0) !== AF_BRIDGE) return null;
  const state = b.readUInt16LE(8);
  const flags = b.readUInt8(10);
  const a = parseAttrs(b, 12);
  const ll = a.get(NDA_LLADDR);
  if (!ll || ll.length !== 6) return null;
  const e: FdbEntry = {
    ifindex: b.readInt32LE(4),
    mac: bytesToMac(ll),
    permanent: (state & (NUD_PERMANENT | NUD_NOARP)) !== 0 && (state & NUD_PERMANENT) !== 0,
    self: (flags & NTF_SELF) !== 0,
  };
  const dst = a.get(NDA_DST);
  if (dst && (dst.length === 4 || dst.length === 16)) e.dst = bytesToIp(dst);
  return e;
}

// ---------------------------------------------------------------------------------------------
// Message framing.

export function frame(type: number, flags: number, seq: number, payload: Buffer): Buffer {
  const total = NLMSG_HDRLEN + ((payload.length + 3) & ~3);
  const b = Buffer.allocUnsafe(total);
  b.fill(0, NLMSG_HDRLEN + payload.length, total);
  b.writeUInt32LE(NLMSG_HDRLEN + payload.length, 0);
  b.writeUInt16LE(type, 4);
  b.writeUInt16LE(flags, 6);
  b.writeUInt32LE(seq >>> 0, 8);
  b.writeUInt32LE(0, 12);
  payload.copy(b, NLMSG_HDRLEN);
  return b;
}

export interface RawMessage {
  type: number;
  flags: number;
  seq: number;
  port: number;
  payload: Buffer;
}

/** Split a received datagram into netlink messages (NLMSG_ALIGN'd). */
export function splitMessages(b: Buffer): RawMessage[] {
  const out: RawMessage[] = [];
  let off = 0;
  while (off + NLMSG_HDRLEN <= b.length) {
    const len = b.readUInt32LE(off);
    if (len < NLMSG_HDRLEN || off + len > b.length) break;
    out.push({
      type: b.readUInt16LE(off + 4),
      flags: b.readUInt16LE(off + 6),
      seq: b.readUInt32LE(off + 8),
      port: b.readUInt32LE(off + 12),
      payload: b.subarray(off + NLMSG_HDRLEN, off + len),
    });
    off += (len + 3) & ~3;
  }
  return out;
}

/** Canonical text of a route's prefix (the key the port and reconciler use). */
export function routeDst(prefix: string): string {
  return canonicalPrefix(prefix);
}
