// Codecs for the endpoint datapath's map keys and values (bpf/include/nrd_dp_shared.h), used by
// nrd_endpoint and nrd_netdev. Same mechanism as maps.ts: every C struct is described once in
// DP_STRUCTS (field name, offset, size, kind), its raw codec is derived by structCodec, and
// test/unit/datapath/endpoint-layout.test.ts checks each description against the objects' BTF.
// Where a struct holds u8 or network-order u16 fields (kind 'bytes' here), a thin adapter gives
// callers numbers; it converts values only and knows no offsets.
import { type Codec, type StructSpec, type StructValue, structCodec } from './maps.js';

// ---- layouts (one per struct of nrd_dp_shared.h) ------------------------------------------------

type Kind = 'u32' | 'u64' | 'bytes';
const fld = <N extends string, K extends Kind>(name: N, offset: number, size: number, kind: K) =>
  ({ name, offset, size, kind }) as const;

export const DP_STRUCTS = {
  nrd_ep_key: { name: 'nrd_ep_key', size: 20, fields: [fld('family', 0, 4, 'u32'), fld('addr', 4, 16, 'bytes')] },
  nrd_ep_value: {
    name: 'nrd_ep_value', size: 20,
    fields: [fld('ifindex', 0, 4, 'u32'), fld('id', 4, 4, 'u32'), fld('mac', 8, 6, 'bytes'), fld('pad', 14, 2, 'bytes'), fld('flags', 16, 4, 'u32')],
  },
  nrd_ep_if: {
    name: 'nrd_ep_if', size: 32,
    fields: [fld('id', 0, 4, 'u32'), fld('flags', 4, 4, 'u32'), fld('ip4', 8, 4, 'bytes'), fld('pad', 12, 4, 'bytes'), fld('ip6', 16, 16, 'bytes')],
  },
  nrd_ep_counters: {
    name: 'nrd_ep_counters', size: 32,
    fields: [fld('from_packets', 0, 8, 'u64'), fld('from_bytes', 8, 8, 'u64'), fld('to_packets', 16, 8, 'u64'), fld('to_bytes', 24, 8, 'u64')],
  },
  nrd_nonat_value: { name: 'nrd_nonat_value', size: 8, fields: [fld('kind', 0, 4, 'u32'), fld('reserved', 4, 4, 'u32')] },
  nrd_nat4_key: {
    name: 'nrd_nat4_key', size: 16,
    fields: [
      fld('saddr', 0, 4, 'bytes'), fld('daddr', 4, 4, 'bytes'), fld('sport_be', 8, 2, 'bytes'), fld('dport_be', 10, 2, 'bytes'),
      fld('proto', 12, 1, 'bytes'), fld('dir', 13, 1, 'bytes'), fld('pad', 14, 2, 'bytes'),
    ],
  },
  nrd_nat4_entry: {
    name: 'nrd_nat4_entry', size: 24,
    fields: [
      fld('addr', 0, 4, 'bytes'), fld('port_be', 4, 2, 'bytes'), fld('state', 6, 1, 'bytes'), fld('flags', 7, 1, 'bytes'),
      fld('last_seen_ns', 8, 8, 'u64'), fld('created_ns', 16, 8, 'u64'),
    ],
  },
  nrd_nat6_key: {
    name: 'nrd_nat6_key', size: 40,
    fields: [
      fld('saddr', 0, 16, 'bytes'), fld('daddr', 16, 16, 'bytes'), fld('sport_be', 32, 2, 'bytes'), fld('dport_be', 34, 2, 'bytes'),
      fld('proto', 36, 1, 'bytes'), fld('dir', 37, 1, 'bytes'), fld('pad', 38, 2, 'bytes'),
    ],
  },
  nrd_nat6_entry: {
    name: 'nrd_nat6_entry', size: 40,
    fields: [
      fld('addr', 0, 16, 'bytes'), fld('port_be', 16, 2, 'bytes'), fld('state', 18, 1, 'bytes'), fld('flags', 19, 1, 'bytes'),
      fld('pad', 20, 4, 'bytes'), fld('last_seen_ns', 24, 8, 'u64'), fld('created_ns', 32, 8, 'u64'),
    ],
  },
} as const satisfies Record<string, StructSpec>;

/** Which object defines which map (both objects define the shared ones; the daemon pins them). */
export const DP_MAPS = {
  nrd_endpoints: { objects: ['nrd_endpoint', 'nrd_netdev'], key: 'nrd_ep_key', value: 'nrd_ep_value', perCpu: false },
  nrd_ep_ifs: { objects: ['nrd_endpoint', 'nrd_netdev'], key: 'u32', value: 'nrd_ep_if', perCpu: false },
  nrd_ep_stats: { objects: ['nrd_endpoint', 'nrd_netdev'], key: 'u32', value: 'nrd_ep_counters', perCpu: true },
  nrd_dp_drops: { objects: ['nrd_endpoint', 'nrd_netdev'], key: 'u32', value: 'nrd_counter', perCpu: true },
  nrd_nonat4: { objects: ['nrd_netdev'], key: 'nrd_lpm4_key', value: 'nrd_nonat_value', perCpu: false },
  nrd_nonat6: { objects: ['nrd_netdev'], key: 'nrd_lpm6_key', value: 'nrd_nonat_value', perCpu: false },
  nrd_nat4: { objects: ['nrd_netdev'], key: 'nrd_nat4_key', value: 'nrd_nat4_entry', perCpu: false },
  nrd_nat6: { objects: ['nrd_netdev'], key: 'nrd_nat6_key', value: 'nrd_nat6_entry', perCpu: false },
} as const;

/** enum nrd_drop; the keys are the metric label values. */
export const DropReason = {
  malformed: 0, unknown_endpoint: 1, spoofed: 2, nat_exhausted: 3, rewrite_failed: 4, policy: 5, no_backend: 6, no_route: 7, prefilter: 8,
} as const;
export const DROP_MAX = 9;
/** cfg_flags bits of nrd_endpoint and nrd_netdev. */
export const NRD_DP_F_IPV6 = 1;
export const NRD_DP_F_ARP_ANY = 2;
export const NRD_DP_F_MASQ = 4;
/** Forwarded flow events (first packet and verdict changes of every endpoint flow; nrd_policy.h). */
export const NRD_DP_F_FWD_EVENTS = 16;
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

/** The node_ip6 knob (a u32[4] in .rodata): the 16 wire-order bytes as they lie in memory. */
export function ip6Knob(addr: Buffer): Buffer {
  if (addr.length !== 16) throw new Error(`IPv6 address must be 16 bytes, got ${addr.length}`);
  return Buffer.from(addr);
}

// ---- codecs -------------------------------------------------------------------------------------

function adapt<R, T>(raw: Codec<R>, enc: (v: T) => R, dec: (r: R) => T): Codec<T> {
  return { size: raw.size, encode: (v) => raw.encode(enc(v)), decode: (b) => dec(raw.decode(b)) };
}
const be16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n, 0);
  return b;
};
const u8 = (n: number): Buffer => Buffer.from([n]);
const Z2 = Buffer.alloc(2);
const Z4 = Buffer.alloc(4);

export interface EpKey {
  family: 4 | 6;
  /** 4 or 16 bytes, network order. */
  addr: Buffer;
}

export const epKeyCodec: Codec<EpKey> = adapt(
  structCodec(DP_STRUCTS.nrd_ep_key),
  (k) => ({ family: k.family, addr: k.addr.subarray(0, k.family === 4 ? 4 : 16) }),
  (r) => (r.family === 6 ? { family: 6, addr: r.addr } : { family: 4, addr: r.addr.subarray(0, 4) }),
);

export interface EpValue {
  ifindex: number;
  id: number;
  mac: Buffer;
  flags: number;
}

export const epValueCodec: Codec<EpValue> = adapt(
  structCodec(DP_STRUCTS.nrd_ep_value),
  (v) => ({ ...v, pad: Z2 }),
  ({ ifindex, id, mac, flags }) => ({ ifindex, id, mac, flags }),
);

export interface EpIf {
  id: number;
  flags: number;
  /** 4 bytes (zero when the endpoint has no IPv4). */
  ip4: Buffer;
  /** 16 bytes (zero when the endpoint has no IPv6). */
  ip6: Buffer;
}

export const epIfCodec: Codec<EpIf> = adapt(
  structCodec(DP_STRUCTS.nrd_ep_if),
  (v) => ({ ...v, pad: Z4 }),
  ({ id, flags, ip4, ip6 }) => ({ id, flags, ip4, ip6 }),
);

export type EpCounters = StructValue<typeof DP_STRUCTS.nrd_ep_counters>;
export const epCountersCodec: Codec<EpCounters> = structCodec(DP_STRUCTS.nrd_ep_counters);

export function sumEpCounters(cs: readonly EpCounters[]): EpCounters {
  const s = { from_packets: 0n, from_bytes: 0n, to_packets: 0n, to_bytes: 0n };
  for (const c of cs) {
    s.from_packets += c.from_packets;
    s.from_bytes += c.from_bytes;
    s.to_packets += c.to_packets;
    s.to_bytes += c.to_bytes;
  }
  return s;
}

export type NonatValue = StructValue<typeof DP_STRUCTS.nrd_nonat_value>;
export const nonatValueCodec: Codec<NonatValue> = structCodec(DP_STRUCTS.nrd_nonat_value);

/** A NAT map key of either family: addresses are 4 bytes in nrd_nat4, 16 in nrd_nat6. */
export interface NatKey {
  saddr: Buffer;
  daddr: Buffer;
  /** Host numbers here; the map holds them in network order. */
  sport: number;
  dport: number;
  proto: number;
  dir: number;
}

export type Nat4Key = NatKey;

// Both families' keys and values have the same fields; only the address sizes differ.
interface RawNatKey { saddr: Buffer; daddr: Buffer; sport_be: Buffer; dport_be: Buffer; proto: Buffer; dir: Buffer }
const natKeyEnc = (k: NatKey) =>
  ({ saddr: k.saddr, daddr: k.daddr, sport_be: be16(k.sport), dport_be: be16(k.dport), proto: u8(k.proto), dir: u8(k.dir), pad: Z2 });
const natKeyDec = (r: RawNatKey): NatKey =>
  ({ saddr: r.saddr, daddr: r.daddr, sport: r.sport_be.readUInt16BE(0), dport: r.dport_be.readUInt16BE(0), proto: r.proto[0], dir: r.dir[0] });

export const nat4KeyCodec: Codec<NatKey> = adapt(structCodec(DP_STRUCTS.nrd_nat4_key), natKeyEnc, natKeyDec);
export const nat6KeyCodec: Codec<NatKey> = adapt(structCodec(DP_STRUCTS.nrd_nat6_key), natKeyEnc, natKeyDec);

/** A NAT map value of either family (addr: 4 or 16 bytes). */
export interface NatEntry {
  addr: Buffer;
  port: number;
  state: number;
  flags: number;
  lastSeenNs: bigint;
  createdNs: bigint;
}

export type Nat4Entry = NatEntry;

interface RawNatEntry { addr: Buffer; port_be: Buffer; state: Buffer; flags: Buffer; last_seen_ns: bigint; created_ns: bigint }
const natEntryDec = (r: RawNatEntry): NatEntry =>
  ({ addr: r.addr, port: r.port_be.readUInt16BE(0), state: r.state[0], flags: r.flags[0], lastSeenNs: r.last_seen_ns, createdNs: r.created_ns });
const natEntryEnc = (v: NatEntry) =>
  ({ addr: v.addr, port_be: be16(v.port), state: u8(v.state), flags: u8(v.flags), last_seen_ns: v.lastSeenNs, created_ns: v.createdNs });

/** nrd_nat6_entry has 4 bytes of explicit padding before the u64s; nrd_nat4_entry needs none. */
export const nat6EntryCodec: Codec<NatEntry> = adapt(structCodec(DP_STRUCTS.nrd_nat6_entry), (v) => ({ ...natEntryEnc(v), pad: Z4 }), natEntryDec);

export const nat4EntryCodec: Codec<NatEntry> = adapt(structCodec(DP_STRUCTS.nrd_nat4_entry), natEntryEnc, natEntryDec);
