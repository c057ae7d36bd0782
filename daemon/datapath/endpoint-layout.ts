// Codecs for the endpoint datapath's map keys and values (bpf/include/nrd_dp_shared.h), used by
// nrd_endpoint and nrd_netdev. Same mechanism as maps.ts: each codec's C layout is declared in
// DP_LAYOUTS and the map-to-struct table in DP_MAPS, both checked against the objects' BTF.
import type { StructLayout } from './btf.js';
import type { Codec } from './maps.js';

// ---- layouts (must match nrd_dp_shared.h) -------------------------------------------------------

const f = (offset: number, size: number): { offset: number; size: number } => ({ offset, size });

export const DP_LAYOUTS = {
  nrd_ep_key: { name: 'nrd_ep_key', size: 20, fields: { family: f(0, 4), addr: f(4, 16) } },
  nrd_ep_value: {
    name: 'nrd_ep_value', size: 20,
    fields: { ifindex: f(0, 4), id: f(4, 4), mac: f(8, 6), pad: f(14, 2), flags: f(16, 4) },
  },
  nrd_ep_if: {
    name: 'nrd_ep_if', size: 32,
    fields: { id: f(0, 4), flags: f(4, 4), ip4: f(8, 4), pad: f(12, 4), ip6: f(16, 16) },
  },
  nrd_ep_counters: {
    name: 'nrd_ep_counters', size: 32,
    fields: { from_packets: f(0, 8), from_bytes: f(8, 8), to_packets: f(16, 8), to_bytes: f(24, 8) },
  },
  nrd_nonat_value: { name: 'nrd_nonat_value', size: 8, fields: { kind: f(0, 4), reserved: f(4, 4) } },
  nrd_nat4_key: {
    name: 'nrd_nat4_key', size: 16,
    fields: { saddr: f(0, 4), daddr: f(4, 4), sport_be: f(8, 2), dport_be: f(10, 2), proto: f(12, 1), dir: f(13, 1), pad: f(14, 2) },
  },
  nrd_nat4_entry: {
    name: 'nrd_nat4_entry', size: 24,
    fields: { addr: f(0, 4), port_be: f(4, 2), state: f(6, 1), flags: f(7, 1), last_seen_ns: f(8, 8), created_ns: f(16, 8) },
  },
} as const satisfies Record<string, StructLayout>;

/** Which object defines which map (both objects define the shared ones; the daemon pins them). */
export const DP_MAPS = {
  nrd_endpoints: { objects: ['nrd_endpoint', 'nrd_netdev'], key: 'nrd_ep_key', value: 'nrd_ep_value', perCpu: false },
  nrd_ep_ifs: { objects: ['nrd_endpoint', 'nrd_netdev'], key: 'u32', value: 'nrd_ep_if', perCpu: false },
  nrd_ep_stats: { objects: ['nrd_endpoint', 'nrd_netdev'], key: 'u32', value: 'nrd_ep_counters', perCpu: true },
  nrd_dp_drops: { objects: ['nrd_endpoint', 'nrd_netdev'], key: 'u32', value: 'nrd_counter', perCpu: true },
  nrd_nonat4: { objects: ['nrd_netdev'], key: 'nrd_lpm4_key', value: 'nrd_nonat_value', perCpu: false },
  nrd_nonat6: { objects: ['nrd_netdev'], key: 'nrd_lpm6_key', value: 'nrd_nonat_value', perCpu: false },
  nrd_nat4: { objects: ['nrd_netdev'], key: 'nrd_nat4_key', value: 'nrd_nat4_entry', perCpu: false },
} as const;

/** enum nrd_drop; the keys are the metric label values. */
export const DropReason = { malformed: 0, unknown_endpoint: 1, spoofed: 2, nat_exhausted: 3, rewrite_failed: 4 } as const;
export const DROP_MAX = 5;
/** cfg_flags bits of nrd_endpoint and nrd_netdev. */
export const NRD_DP_F_IPV6 = 1;
export const NRD_DP_F_ARP_ANY = 2;
export const NRD_DP_F_MASQ = 4;
export const NRD_EP_IF_F_IP4 = 1;
export const NRD_EP_IF_F_IP6 = 2;
export const NonatKind = { POOL: 1, EXCLUDE: 2 } as const;
export const NatDir = { OUT: 0, REPLY: 1 } as const;
export const CtState = { SYN: 1, EST: 2, FIN: 3, CLOSED: 4 } as const;
export const NAT_PORT_MIN_DEFAULT = 61000;
export const NAT_PORT_MAX_DEFAULT = 65535;

/** The `gw_mac` knob: a MAC (wire order) as the little-endian u64 the C side reads bytes 0..5 of. */
export function macKnob(mac: Buffer): bigint {
  if (mac.length !== 6) throw new Error(`MAC must be 6 bytes, got ${mac.length}`);
  const b = Buffer.alloc(8);
  mac.copy(b, 0);
  return b.readBigUInt64LE(0);
}

/** An IPv4 address knob (node_ip4): the 4 wire-order bytes as the u32 the C side compares. */
export function ip4Knob(addr: Buffer): number {
  if (addr.length !== 4) throw new Error(`IPv4 address must be 4 bytes, got ${addr.length}`);
  return addr.readUInt32LE(0);
}

// ---- codecs -------------------------------------------------------------------------------------

export interface EpKey {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  addr: Buffer;
}

export const epKeyCodec: Codec<EpKey> = {
  size: 20,
  encode(k) {
    const b = Buffer.alloc(20);
    b.writeUInt32LE(k.family, 0);
    k.addr.copy(b, 4, 0, k.family === 4 ? 4 : 16);
    return b;
  },
  decode(b) {
    const family = b.readUInt32LE(0) === 6 ? 6 : 4;
    return { family, addr: Buffer.from(b.subarray(4, family === 4 ? 8 : 20)) };
  },
};

export interface EpValue {
  ifindex: number;
  id: number;
  mac: Buffer;
  flags: number;
}

export const epValueCodec: Codec<EpValue> = {
  size: 20,
  encode(v) {
    const b = Buffer.alloc(20);
    b.writeUInt32LE(v.ifindex >>> 0, 0);
    b.writeUInt32LE(v.id >>> 0, 4);
    v.mac.copy(b, 8, 0, 6);
    b.writeUInt32LE(v.flags >>> 0, 16);
    return b;
  },
  decode: (b) => ({ ifindex: b.readUInt32LE(0), id: b.readUInt32LE(4), mac: Buffer.from(b.subarray(8, 14)), flags: b.readUInt32LE(16) }),
};

export interface EpIf {
  id: number;
  flags: number;
  /** 4 bytes (zero when the endpoint has no IPv4). */
  ip4: Buffer;
  /** 16 bytes (zero when the endpoint has no IPv6). */
  ip6: Buffer;
}

export const epIfCodec: Codec<EpIf> = {
  size: 32,
  encode(v) {
    const b = Buffer.alloc(32);
    b.writeUInt32LE(v.id >>> 0, 0);
    b.writeUInt32LE(v.flags >>> 0, 4);
    v.ip4.copy(b, 8, 0, 4);
    v.ip6.copy(b, 16, 0, 16);
    return b;
  },
  decode: (b) => ({ id: b.readUInt32LE(0), flags: b.readUInt32LE(4), ip4: Buffer.from(b.subarray(8, 12)), ip6: Buffer.from(b.subarray(16, 32)) }),
};

export interface EpCounters {
  fromPackets: bigint;
  fromBytes: bigint;
  toPackets: bigint;
  toBytes: bigint;
}

export const epCountersCodec: Codec<EpCounters> = {
  size: 32,
  encode(v) {
    const b = Buffer.alloc(32);
    b.writeBigUInt64LE(v.fromPackets, 0);
    b.writeBigUInt64LE(v.fromBytes, 8);
    b.writeBigUInt64LE(v.toPackets, 16);
    b.writeBigUInt64LE(v.toBytes, 24);
    return b;
  },
  decode: (b) => ({ fromPackets: b.readBigUInt64LE(0), fromBytes: b.readBigUInt64LE(8), toPackets: b.readBigUInt64LE(16), toBytes: b.readBigUInt64LE(24) }),
};

export function sumEpCounters(cs: readonly EpCounters[]): EpCounters {
  const s = { fromPackets: 0n, fromBytes: 0n, toPackets: 0n, toBytes: 0n };
  for (const c of cs) {
    s.fromPackets += c.fromPackets;
    s.fromBytes += c.fromBytes;
    s.toPackets += c.toPackets;
    s.toBytes += c.toBytes;
  }
  return s;
}

export interface NonatValue {
  kind: number;
  reserved: number;
}

export const nonatValueCodec: Codec<NonatValue> = {
  size: 8,
  encode(v) {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(v.kind >>> 0, 0);
    b.writeUInt32LE(v.reserved >>> 0, 4);
    return b;
  },
  decode: (b) => ({ kind: b.readUInt32LE(0), reserved: b.readUInt32LE(4) }),
};

export interface Nat4Key {
  saddr: Buffer;
  daddr: Buffer;
  /** Host numbers here; the map holds them in network order. */
  sport: number;
  dport: number;
  proto: number;
  dir: number;
}

export const nat4KeyCodec: Codec<Nat4Key> = {
  size: 16,
  encode(k) {
    const b = Buffer.alloc(16);
    k.saddr.copy(b, 0, 0, 4);
    k.daddr.copy(b, 4, 0, 4);
    b.writeUInt16BE(k.sport, 8);
    b.writeUInt16BE(k.dport, 10);
    b[12] = k.proto;
    b[13] = k.dir;
    return b;
  },
  decode: (b) => ({
    saddr: Buffer.from(b.subarray(0, 4)), daddr: Buffer.from(b.subarray(4, 8)),
    sport: b.readUInt16BE(8), dport: b.readUInt16BE(10), proto: b[12], dir: b[13],
  }),
};

export interface Nat4Entry {
  addr: Buffer;
  port: number;
  state: number;
  flags: number;
  lastSeenNs: bigint;
  createdNs: bigint;
}

export const nat4EntryCodec: Codec<Nat4Entry> = {
  size: 24,
  encode(v) {
    const b = Buffer.alloc(24);
    v.addr.copy(b, 0, 0, 4);
    b.writeUInt16BE(v.port, 4);
    b[6] = v.state;
    b[7] = v.flags;
    b.writeBigUInt64LE(v.lastSeenNs, 8);
    b.writeBigUInt64LE(v.createdNs, 16);
    return b;
  },
  decode: (b) => ({
    addr: Buffer.from(b.subarray(0, 4)), port: b.readUInt16BE(4), state: b[6], flags: b[7],
    lastSeenNs: b.readBigUInt64LE(8), createdNs: b.readBigUInt64LE(16),
  }),
};
