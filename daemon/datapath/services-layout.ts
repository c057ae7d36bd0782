// Codecs for the service load-balancing maps of bpf/include/nrd_lb.h (nrd_services, nrd_backends,
// nrd_svc_tables, nrd_revnat, nrd_ct), in the form daemon/services/plan.ts produces them. Same
// mechanism as endpoint-layout.ts: each C struct described once, raw codecs derived by structCodec,
// test/unit/datapath/services-layout.test.ts checks the descriptions against the objects' BTF.
import type { Family } from '../lib/ip.js';
import type { BackendStateValue, BackendValue, RevNatValue, ServiceKey, ServiceValue } from '../services/plan.js';
import { type Codec, type StructSpec, structCodec } from './maps.js';

type Kind = 'u32' | 'u64' | 'bytes';
const fld = <N extends string, K extends Kind>(name: N, offset: number, size: number, kind: K) =>
  ({ name, offset, size, kind }) as const;

export const LB_STRUCTS = {
  nrd_svc_key: {
    name: 'nrd_svc_key', size: 24,
    fields: [fld('family', 0, 4, 'u32'), fld('addr', 4, 16, 'bytes'), fld('port', 20, 2, 'bytes'), fld('proto', 22, 1, 'bytes'), fld('pad', 23, 1, 'bytes')],
  },
  nrd_svc_value: {
    name: 'nrd_svc_value', size: 20,
    fields: [fld('id', 0, 4, 'u32'), fld('backend_count', 4, 4, 'u32'), fld('flags', 8, 4, 'u32'), fld('rev_nat_id', 12, 4, 'u32'), fld('table_id', 16, 4, 'u32')],
  },
  nrd_backend: {
    name: 'nrd_backend', size: 24,
    fields: [fld('family', 0, 4, 'u32'), fld('addr', 4, 16, 'bytes'), fld('port', 20, 2, 'bytes'), fld('proto', 22, 1, 'bytes'), fld('state', 23, 1, 'bytes')],
  },
  nrd_revnat: {
    name: 'nrd_revnat', size: 24,
    fields: [fld('family', 0, 4, 'u32'), fld('addr', 4, 16, 'bytes'), fld('port', 20, 2, 'bytes'), fld('pad', 22, 2, 'bytes')],
  },
  nrd_ct_key: {
    name: 'nrd_ct_key', size: 40,
    fields: [
      fld('saddr', 0, 16, 'bytes'), fld('daddr', 16, 16, 'bytes'), fld('sport', 32, 2, 'bytes'), fld('dport', 34, 2, 'bytes'),
      fld('proto', 36, 1, 'bytes'), fld('dir', 37, 1, 'bytes'), fld('family', 38, 1, 'bytes'), fld('pad', 39, 1, 'bytes'),
    ],
  },
  nrd_ct_entry: {
    name: 'nrd_ct_entry', size: 32,
    fields: [
      fld('backend_id', 0, 4, 'u32'), fld('rev_nat_id', 4, 4, 'u32'), fld('state', 8, 1, 'bytes'), fld('flags', 9, 1, 'bytes'),
      fld('pad', 10, 6, 'bytes'), fld('last_seen_ns', 16, 8, 'u64'), fld('created_ns', 24, 8, 'u64'),
    ],
  },
} as const satisfies Record<string, StructSpec>;

/** The load-balancing maps: defined in nrd_lb.h, so in both endpoint objects, pinned by name. */
export const LB_MAPS = {
  nrd_services: { key: 'nrd_svc_key', value: 'nrd_svc_value' },
  nrd_backends: { key: 'u32', value: 'nrd_backend' },
  // Hash of maps: u32 table id → an inner array of u32 backend ids (a table); no BTF key or
  // value (a map-in-map's value is an inner map fd on write, its id on read).
  nrd_svc_tables: { key: 'u32', value: 'u32', mapInMap: true },
  nrd_revnat: { key: 'u32', value: 'nrd_revnat' },
  nrd_ct: { key: 'nrd_ct_key', value: 'nrd_ct_entry' },
} as const;
export const LB_MAP_NAMES = Object.keys(LB_MAPS) as Array<keyof typeof LB_MAPS>;

/** lb_flags knob bits. */
export const NRD_LB_F_DRAIN_RESET = 1;
export const CtDir = { FWD: 0, REPLY: 1 } as const;

function adapt<R, T>(raw: Codec<R>, enc: (v: T) => R, dec: (r: R) => T): Codec<T> {
  return { size: raw.size, encode: (v) => raw.encode(enc(v)), decode: (b) => dec(raw.decode(b)) };
}
const be16 = (n: number): Buffer => {
  const b = Buffer.alloc(2);
  b.writeUInt16BE(n, 0);
  return b;
};
const u8 = (n: number): Buffer => Buffer.from([n]);
const addr16 = (a: Uint8Array): Buffer => {
  const b = Buffer.alloc(16);
  Buffer.from(a).copy(b);
  return b;
};
const addrOut = (family: number, b: Buffer): Uint8Array => Uint8Array.from(b.subarray(0, family === 4 ? 4 : 16));
const fam = (n: number): Family => (n === 6 ? 6 : 4);

export const svcKeyCodec: Codec<ServiceKey> = adapt(
  structCodec(LB_STRUCTS.nrd_svc_key),
  (k) => ({ family: k.family, addr: addr16(k.addr), port: be16(k.port), proto: u8(k.proto), pad: u8(0) }),
  (r) => ({ family: fam(r.family), addr: addrOut(r.family, r.addr), port: r.port.readUInt16BE(0), proto: r.proto[0]! }),
);

export const svcValueCodec: Codec<ServiceValue> = adapt(
  structCodec(LB_STRUCTS.nrd_svc_value),
  (v) => ({ id: v.id, backend_count: v.backendCount, flags: v.flags, rev_nat_id: v.revNatId, table_id: v.tableId ?? v.id }),
  (r) => ({ id: r.id, backendCount: r.backend_count, flags: r.flags, revNatId: r.rev_nat_id, tableId: r.table_id }),
);

export const backendCodec: Codec<BackendValue> = adapt(
  structCodec(LB_STRUCTS.nrd_backend),
  (v) => ({ family: v.family, addr: addr16(v.addr), port: be16(v.port), proto: u8(v.proto), state: u8(v.state) }),
  (r) => ({ family: fam(r.family), addr: addrOut(r.family, r.addr), port: r.port.readUInt16BE(0), proto: r.proto[0]!, state: r.state[0]! as BackendStateValue }),
);

export const revNatCodec: Codec<RevNatValue> = adapt(
  structCodec(LB_STRUCTS.nrd_revnat),
  (v) => ({ family: v.family, addr: addr16(v.addr), port: be16(v.port), pad: Buffer.alloc(2) }),
  (r) => ({ family: fam(r.family), addr: addrOut(r.family, r.addr), port: r.port.readUInt16BE(0) }),
);

export interface CtKey {
  family: Family;
  saddr: Uint8Array;
  daddr: Uint8Array;
  sport: number;
  dport: number;
  proto: number;
  dir: number;
}
export const ctKeyCodec: Codec<CtKey> = adapt(
  structCodec(LB_STRUCTS.nrd_ct_key),
  (k) => ({
    saddr: addr16(k.saddr), daddr: addr16(k.daddr), sport: be16(k.sport), dport: be16(k.dport),
    proto: u8(k.proto), dir: u8(k.dir), family: u8(k.family), pad: u8(0),
  }),
  (r) => ({
    family: fam(r.family[0]!), saddr: addrOut(r.family[0]!, r.saddr), daddr: addrOut(r.family[0]!, r.daddr),
    sport: r.sport.readUInt16BE(0), dport: r.dport.readUInt16BE(0), proto: r.proto[0]!, dir: r.dir[0]!,
  }),
);

export interface CtEntry {
  backendId: number;
  revNatId: number;
  state: number;
  lastSeenNs: bigint;
  createdNs: bigint;
}
export const ctEntryCodec: Codec<CtEntry> = adapt(
  structCodec(LB_STRUCTS.nrd_ct_entry),
  (v) => ({
    backend_id: v.backendId, rev_nat_id: v.revNatId, state: u8(v.state), flags: u8(0), pad: Buffer.alloc(6),
    last_seen_ns: v.lastSeenNs, created_ns: v.createdNs,
  }),
  (r) => ({ backendId: r.backend_id, revNatId: r.rev_nat_id, state: r.state[0]!, lastSeenNs: r.last_seen_ns, createdNs: r.created_ns }),
);
