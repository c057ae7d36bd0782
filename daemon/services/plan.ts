// Service load-balancing plan: the ServiceRecords in etcd → the desired contents of the service
// BPF maps as plain data, and the minimal map writes between two plans (the Felix delta-tracker
// shape: desired vs applied, write only differences). A change of one service touches only that
// service's entries, so an update costs a few map writes whatever the number of services — unlike
// kube-proxy's iptables mode, which rewrites whole rule sets.
//
// Maps (C layouts next to each type; ids little-endian u32, addresses and ports network order):
//   nrd_services  hash  nrd_svc_key (vip, port, proto) → nrd_svc_value (id, backend count, flags, rev-NAT id, table id)
//   nrd_backends  hash  u32 backend id → nrd_backend (address, port, proto, state)
//   nrd_svc_tables hash-of-maps  u32 table id → inner array of one u32[M] value: backend ids (Maglev: M slots; random: one per backend, the rest zero, at most M)
//   nrd_revnat    hash  u32 rev-NAT id → nrd_revnat (vip, port): the source a reply is rewritten to
// A new connection to a service picks slots[hash(5-tuple) mod M] with Maglev (flag SVC_F_MAGLEV;
// M is the load-time knob maglev_m), or slots[random mod backend_count] with 'random'; the
// conntrack entry then remembers the backend id, so later packets never consult the slots again.
//
// Draining: a backend listed in `draining` gets no slot (no new connection) but keeps its
// nrd_backends entry with state DRAINING, so established connections still resolve it; once the
// caller drops it from `draining` its entry is deleted and the datapath resets what is left.
// Writes are ordered so the datapath never follows a dangling id: backends, then the frontends
// that go (a service whose VIP changed keeps its id: its old frontend must not pick from the new
// table), tables, rev-NAT, the services; the other deletions in the reverse order. A table is
// swapped whole; one that shrinks (random) is swapped after its service's backend_count went
// down, so no pick indexes past its end. During a shrink a new connection can still
// land on a slot of a backend just turned DRAINING, so the datapath admits new connections only to
// ACTIVE backends (and rejects otherwise).
import { type Family, formatIp, ipValueToBytes, parseIp } from '../lib/ip.js';
import { IPPROTO } from '../lib/ip-proto.js';
import { diffKeyed, type Keyed, sameData } from '../lib/keyed-diff.js';
import { stableIds } from '../lib/stable-hash.js';
import type { Protocol, ServiceRecord } from '../state/records.js';
import { buildTable, type MaglevBackend } from './maglev.js';

export type LbAlgorithm = 'maglev' | 'random';

/** struct nrd_svc_key { __u32 family; __u8 addr[16]; __be16 port; __u8 proto; __u8 pad; } — 24 bytes. */
export interface ServiceKey {
  family: Family;
  /** 4 or 16 network-order bytes (an IPv4 address fills addr[0..4], the rest is zero). */
  addr: Uint8Array;
  port: number;
  /** IANA protocol number. */
  proto: number;
}

/** struct nrd_svc_value { __u32 id; __u32 backend_count; __u32 flags; __u32 rev_nat_id; __u32 table_id; } — 20 bytes. */
export interface ServiceValue {
  id: number;
  backendCount: number;
  flags: number;
  revNatId: number;
  /** Key of the service's table in nrd_svc_tables: chosen by the map writer (its spare-table
   * pool), not by the plan; encoded as the service id when absent. */
  tableId?: number;
}

/** No active backend: the datapath rejects (TCP RST / ICMP unreachable) instead of black-holing. */
export const SVC_F_NO_BACKEND = 1;
/** Slots are a Maglev table of M entries; without it the first backend_count slots, picked at random. */
export const SVC_F_MAGLEV = 2;

export const BackendState = { ACTIVE: 0, DRAINING: 1 } as const;
export type BackendStateValue = (typeof BackendState)[keyof typeof BackendState];

/** struct nrd_backend { __u32 family; __u8 addr[16]; __be16 port; __u8 proto; __u8 state; } — 24 bytes, keyed by u32 id. */
export interface BackendValue {
  family: Family;
  addr: Uint8Array;
  port: number;
  proto: number;
  state: BackendStateValue;
}

/** struct nrd_revnat { __u32 family; __u8 addr[16]; __be16 port; __u8 pad[2]; } — 24 bytes, keyed by u32 rev-NAT id. */
export interface RevNatValue {
  family: Family;
  addr: Uint8Array;
  port: number;
}

export interface BackendRef {
  ip: string;
  port: number;
  protocol: Protocol;
}

export interface PlanInput {
  services: readonly ServiceRecord[];
  /** Backends that take no new connection but keep their established ones. */
  draining?: readonly BackendRef[];
  lbAlgorithm: LbAlgorithm;
  /** Maglev M: a prime, ideally ≥ 100 × the largest backend count. */
  maglevTableSize: number;
  /** Ids read back from the maps after a restart (service name → id, backend key text → id). */
  previousIds?: { services?: ReadonlyMap<string, number>; backends?: ReadonlyMap<string, number> };
}

export interface ServiceEntry extends Keyed<ServiceKey, ServiceValue> {
  name: string;
}

export interface ServicePlan {
  /** By service key text (`family|vip|port|proto`). */
  services: Map<string, ServiceEntry>;
  /** By backend id (as text, for diffKeyed). */
  backends: Map<string, Keyed<number, BackendValue>>;
  revNat: Map<string, Keyed<number, RevNatValue>>;
  /** Service id → slots (backend ids); absent when the service has no active backend. */
  slots: Map<number, Uint32Array>;
  /** Service id → what its slots were computed from; an equal source reuses the array. */
  slotSource: Map<number, string>;
  serviceIds: Map<string, number>;
  /** Backend key text (`proto|ip|port`) → id. */
  backendIds: Map<string, number>;
  /** Services left out because another (earlier by name) has the same VIP, port and protocol. */
  conflicts: { name: string; keptName: string }[];
}

export type ServiceOp =
  | { op: 'set-backend'; id: number; value: BackendValue }
  | { op: 'set-slots'; serviceId: number; slots: Uint32Array }
  | { op: 'set-revnat'; id: number; value: RevNatValue }
  | { op: 'set-service'; key: ServiceKey; value: ServiceValue }
  | { op: 'delete-service'; key: ServiceKey }
  | { op: 'delete-revnat'; id: number }
  | { op: 'delete-slots'; serviceId: number }
  | { op: 'delete-backend'; id: number };

// Ids are u32 in the maps; 0 means "none" (an empty slot), and the top bit is left free for the
// datapath's own use (e.g. marking a conntrack entry), so ids live in [1, 2^31).
export const ID_MIN = 1;
export const ID_MAX = 0x7fffffff;
export const SEED_SERVICE = 0x73766331; // "svc1"
export const SEED_BACKEND = 0x62656e31; // "ben1"

type ParsedAddr = Readonly<{ family: Family; addr: Uint8Array; canon: string }>;

/** Parsed addresses by text: a replan of 10k services reads the same few thousand addresses
 * again each time; parsing them anew was a third of its cost. Bounded: cleared when it grows
 * past what any cluster's service set holds. */
const addrCache = new Map<string, ParsedAddr>();
const ADDR_CACHE_MAX = 1 << 18;

function addrOf(text: string): ParsedAddr {
  const hit = addrCache.get(text);
  if (hit) return hit;
  const a = parseIp(text);
  if (!a) throw new RangeError(`not an IP address: ${JSON.stringify(text)}`);
  const parsed: ParsedAddr = Object.freeze({ family: a.family, addr: ipValueToBytes(a.family, a.value), canon: formatIp(a.family, a.value) });
  if (addrCache.size >= ADDR_CACHE_MAX) addrCache.clear();
  addrCache.set(text, parsed);
  return parsed;
}

/** Key text of a backend: one id per (protocol, address, port), shared by the services using it. */
export function backendKeyText(b: BackendRef): string {
  return `${b.protocol}|${addrOf(b.ip).canon}|${b.port}`;
}

/** The Maglev name of a backend: "ip:port", "[ip6]:port"; the same text on every node. */
export function maglevKey(ip: string, port: number): string {
  const a = addrOf(ip);
  return a.family === 4 ? `${a.canon}:${port}` : `[${a.canon}]:${port}`;
}

export function serviceKeyText(k: ServiceKey): string {
  return `${k.family}|${Buffer.from(k.addr).toString('hex')}|${k.port}|${k.proto}`;
}

/** The desired service maps for `input`; `previous` (the plan applied last) keeps ids and reuses unchanged slot arrays. */
export function planServices(input: PlanInput, previous?: ServicePlan): ServicePlan {
  const draining = new Set((input.draining ?? []).map(backendKeyText));
  // One service per (vip, port, proto): the first by name wins, deterministically on every node.
  const byKey = new Map<string, { rec: ServiceRecord; key: ServiceKey }>();
  const conflicts: ServicePlan['conflicts'] = [];
  for (const rec of [...input.services].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
    const key = serviceKeyOf(rec);
    const t = serviceKeyText(key);
    const kept = byKey.get(t);
    if (kept) conflicts.push({ name: rec.name, keptName: kept.rec.name });
    else byKey.set(t, { rec, key });
  }
  const serviceIds = stableIds(
    [...byKey.values()].map((s) => s.rec.name),
    { min: ID_MIN, max: ID_MAX, seed: SEED_SERVICE, previous: input.previousIds?.services ?? previous?.serviceIds },
  );
  const allBackends = new Map<string, BackendRef>();
  for (const { rec } of byKey.values()) for (const b of rec.backends) allBackends.set(backendKeyText({ ...b, protocol: rec.protocol }), { ...b, protocol: rec.protocol });
  for (const b of input.draining ?? []) allBackends.set(backendKeyText(b), b);
  const backendIds = stableIds(allBackends.keys(), {
    min: ID_MIN, max: ID_MAX, seed: SEED_BACKEND, previous: input.previousIds?.backends ?? previous?.backendIds,
  });

  const plan: ServicePlan = {
    services: new Map(), backends: new Map(), revNat: new Map(), slots: new Map(), slotSource: new Map(), serviceIds, backendIds, conflicts,
  };
  const active = new Set<string>();
  for (const [t, { rec, key }] of byKey) {
    const id = serviceIds.get(rec.name)!;
    const s = computeService(rec, key, id, draining, backendIds, input, previous);
    for (const b of s.live) active.add(b);
    plan.services.set(t, { name: rec.name, key, value: s.value });
    plan.revNat.set(String(id), { key: id, value: s.revNat });
    if (!s.slots) continue;
    plan.slots.set(id, s.slots);
    plan.slotSource.set(id, s.source);
  }
  for (const [text, ref] of allBackends) {
    const id = backendIds.get(text)!;
    plan.backends.set(String(id), { key: id, value: backendValue(ref, active.has(text) ? BackendState.ACTIVE : BackendState.DRAINING) });
  }
  return plan;
}

/** Backends active in `prev` and absent from `next`: what a caller puts in `draining` for a while. */
export function removedBackends(prev: ServicePlan, next: ServicePlan): string[] {
  const out: string[] = [];
  for (const [text, id] of prev.backendIds) {
    if (!next.backendIds.has(text) && prev.backends.get(String(id))?.value.state === BackendState.ACTIVE) out.push(text);
  }
  return out;
}

/** One service's share of a plan: its value, rev-NAT entry and slots (absent without an active backend). */
export interface ServiceParts {
  value: ServiceValue;
  revNat: RevNatValue;
  /** Key texts of the backends that take new flows. */
  live: string[];
  slots?: Uint32Array;
  source: string;
}

/** The map contents of one service (planServices and the incremental planner share it). */
export function computeService(
  rec: ServiceRecord, key: ServiceKey, id: number, draining: ReadonlySet<string>, backendIds: ReadonlyMap<string, number>,
  opts: { lbAlgorithm: LbAlgorithm; maglevTableSize: number }, previous?: Pick<ServicePlan, 'slots' | 'slotSource'>,
): ServiceParts {
  const live = rec.backends
    .map((b) => ({ ...b, text: backendKeyText({ ...b, protocol: rec.protocol }) }))
    .filter((b) => !draining.has(b.text));
  let flags = live.length === 0 ? SVC_F_NO_BACKEND : 0;
  if (opts.lbAlgorithm === 'maglev') flags |= SVC_F_MAGLEV;
  // The rev-NAT id is the service id: one record is one (vip, port, proto), so one frontend.
  const parts: ServiceParts = {
    value: { id, backendCount: live.length, flags, revNatId: id },
    revNat: { family: key.family, addr: key.addr, port: key.port },
    live: live.map((b) => b.text),
    source: '',
  };
  if (live.length === 0) return parts;
  const ids = live.map((b) => backendIds.get(b.text)!);
  const source = `${opts.lbAlgorithm}|${opts.maglevTableSize}|${live.map((b, i) => `${maglevKey(b.ip, b.port)}=${ids[i]}`).join(',')}`;
  const reuse = previous?.slotSource.get(id) === source ? previous.slots.get(id) : undefined;
  if (reuse) parts.slots = reuse;
  else if (opts.lbAlgorithm === 'maglev') {
    const mb: MaglevBackend[] = live.map((b) => ({ key: maglevKey(b.ip, b.port) }));
    parts.slots = buildTable(mb, opts.maglevTableSize).map((i) => ids[i]!);
  } else {
    // Random: the backends in key order, so every node writes the same slots.
    parts.slots = Uint32Array.from(live.map((b, i) => ({ k: b.text, id: ids[i]! })).sort((a, b) => (a.k < b.k ? -1 : 1)).map((x) => x.id));
  }
  parts.source = source;
  return parts;
}

/** The map key of a service record (vip, port, protocol). */
export function serviceKeyOf(rec: ServiceRecord): ServiceKey {
  const v = addrOf(rec.vip);
  return { family: v.family, addr: v.addr, port: rec.port, proto: IPPROTO[rec.protocol] };
}

/** A backend's nrd_backends value. */
export function backendValue(ref: BackendRef, state: BackendStateValue): BackendValue {
  const a = addrOf(ref.ip);
  return { family: a.family, addr: a.addr, port: ref.port, proto: IPPROTO[ref.protocol], state };
}

/** The map writes that turn `prev` (applied) into `next` (desired), ordered as the module comment says. */
export function diffPlan(prev: ServicePlan, next: ServicePlan): ServiceOp[] {
  const ops: ServiceOp[] = [];
  const be = diffKeyed(prev.backends, next.backends);
  const rn = diffKeyed(prev.revNat, next.revNat);
  const sv = diffKeyed(prev.services, next.services);
  for (const e of be.set) ops.push({ op: 'set-backend', id: e.key, value: e.value });
  // Frontends that go first: a service whose VIP, port or protocol changed keeps its id, and its
  // old frontend must not pick from the new table.
  for (const k of sv.del) ops.push({ op: 'delete-service', key: k });
  // A table is replaced whole (the writer swaps in a new inner array: the datapath sees the old
  // table or the new one, never a mix). A table that shrinks (random: one slot per backend) is
  // swapped after its service's backend_count went down, so no pick indexes past its end.
  const late: ServiceOp[] = [];
  for (const [id, slots] of next.slots) {
    const old = prev.slots.get(id);
    if (old === slots || (old && sameData(old, slots))) continue;
    (old && old.length > slots.length ? late : ops).push({ op: 'set-slots', serviceId: id, slots });
  }
  for (const e of rn.set) ops.push({ op: 'set-revnat', id: e.key, value: e.value });
  for (const e of sv.set) ops.push({ op: 'set-service', key: e.key, value: e.value });
  ops.push(...late);
  for (const k of rn.del) ops.push({ op: 'delete-revnat', id: k });
  for (const id of prev.slots.keys()) if (!next.slots.has(id)) ops.push({ op: 'delete-slots', serviceId: id });
  for (const k of be.del) ops.push({ op: 'delete-backend', id: k });
  return ops;
}

/** The plan with nothing in it: what a first start diffs against when no map is pinned. */
export function emptyPlan(): ServicePlan {
  return { services: new Map(), backends: new Map(), revNat: new Map(), slots: new Map(), slotSource: new Map(), serviceIds: new Map(), backendIds: new Map(), conflicts: [] };
}
