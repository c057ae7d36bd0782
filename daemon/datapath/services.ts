// Services part of the datapath: turns the service set from etcd into the nrd_lb.h maps
// (nrd_services, nrd_backends, nrd_svc_slots, nrd_revnat) and serves the connection table nrd_ct.
//
//  - ServiceMapWriter runs in the datapath worker (all libbpf work does): it opens the maps the
//    endpoint datapath pinned under <pinPath>/maps and applies ServiceOps from plan.ts one write
//    each; it lists, flushes and garbage-collects nrd_ct.
//  - ServicesDatapath runs on the main thread: setServices(records) is level-triggered (the whole
//    set each time, idempotent); it plans against the last applied plan and sends only the diff, so
//    one service change is a few map writes whatever the number of services. A backend that
//    disappears stays DRAINING (no new flow, existing ones continue) for drainMs, then goes.
import { PinnedMaps } from './pinned-maps.js';
import { formatIpBytes } from '../lib/ip.js';
import { TypedMap, u32Codec } from './maps.js';
import {
  type BackendRef, type LbAlgorithm, type ServiceOp, type ServicePlan, BackendState, backendKeyText, diffPlan, emptyPlan, planServices,
} from '../services/plan.js';
import type { Protocol, ServiceRecord } from '../state/records.js';
import {
  type CtEntry, type CtKey, CtDir, backendCodec, ctEntryCodec, ctKeyCodec, revNatCodec, slotKeyCodec, svcKeyCodec, svcValueCodec,
} from './services-layout.js';
import { ctTimeoutNs } from './masquerade.js';
import { CtState } from './endpoint-layout.js';

// ---- worker side --------------------------------------------------------------------------------

/** A set-slots/delete-slots op carries no old length: the writer is told it (the plan knows). */
export type WireServiceOp = ServiceOp | { op: 'delete-slot-range'; serviceId: number; from: number; to: number };

export interface CtRow {
  family: 4 | 6;
  dir: 'fwd' | 'reply';
  proto: number;
  src: string;
  dst: string;
  backendId: number;
  serviceId: number;
  state: number;
  ageSeconds: number;
  idleSeconds: number;
}

/** RFC 5952 text of the 4 or 16 address bytes a map entry holds for its family. */
const addrText = (family: 4 | 6, a: Uint8Array): string => formatIpBytes(a.subarray(0, family === 4 ? 4 : 16));
const hostPort = (family: 4 | 6, a: Uint8Array, port: number): string =>
  family === 4 ? `${addrText(4, a)}:${port}` : `[${addrText(6, a)}]:${port}`;

/** The maps the service writer holds open (pinned by nrd_endpoint's load). */
const SERVICE_MAPS = ['nrd_services', 'nrd_backends', 'nrd_svc_slots', 'nrd_revnat', 'nrd_ct'] as const;

export class ServiceMapWriter {
  private readonly maps: PinnedMaps<(typeof SERVICE_MAPS)[number]>;

  constructor(pinPath: string) {
    this.maps = new PinnedMaps(pinPath, SERVICE_MAPS);
  }

  private open() {
    const fd = (m: (typeof SERVICE_MAPS)[number]): number => this.maps.fd(m);
    return {
      services: new TypedMap(fd('nrd_services'), svcKeyCodec, svcValueCodec),
      backends: new TypedMap(fd('nrd_backends'), u32Codec, backendCodec),
      slots: new TypedMap(fd('nrd_svc_slots'), slotKeyCodec, u32Codec),
      revnat: new TypedMap(fd('nrd_revnat'), u32Codec, revNatCodec),
      ct: new TypedMap(fd('nrd_ct'), ctKeyCodec, ctEntryCodec),
    };
  }

  /** Applies the ops in order; returns the number of map writes and deletes made. */
  apply(ops: readonly WireServiceOp[]): number {
    const m = this.open();
    let writes = 0;
    for (const o of ops) {
      switch (o.op) {
        case 'set-backend': m.backends.set(o.id, o.value); writes++; break;
        case 'set-slots':
          for (let s = 0; s < o.slots.length; s++) m.slots.set({ svcId: o.serviceId, slot: s }, o.slots[s]!);
          writes += o.slots.length;
          break;
        case 'set-slot': m.slots.set({ svcId: o.serviceId, slot: o.slot }, o.backendId); writes++; break;
        case 'set-revnat': m.revnat.set(o.id, o.value); writes++; break;
        case 'set-service': m.services.set(o.key, o.value); writes++; break;
        case 'delete-service': m.services.delete(o.key); writes++; break;
        case 'delete-revnat': m.revnat.delete(o.id); writes++; break;
        case 'delete-slots': break; // expanded by the caller into delete-slot-range
        case 'delete-slot-range':
          for (let s = o.from; s < o.to; s++) m.slots.delete({ svcId: o.serviceId, slot: s });
          writes += o.to - o.from;
          break;
        case 'delete-backend': m.backends.delete(o.id); writes++; break;
      }
    }
    return writes;
  }

  ctList(nowNs: bigint): CtRow[] {
    const rows: CtRow[] = [];
    for (const [k, v] of this.open().ct.entries()) rows.push(ctRow(k, v, nowNs));
    return rows;
  }

  /** Deletes the flows of one service (by rev-NAT id = service id) or all; returns how many entries. */
  ctFlush(serviceId?: number): number {
    const ct = this.open().ct;
    let n = 0;
    for (const [k, v] of ct.entries()) {
      if (serviceId !== undefined && v.revNatId !== serviceId) continue;
      if (ct.delete(k)) n++;
    }
    return n;
  }

  /** The masquerade timeouts, per entry (each direction carries its own last_seen and state). */
  ctGc(nowNs: bigint): { deleted: number; entries: number } {
    const ct = this.open().ct;
    let deleted = 0;
    const all = ct.entries();
    for (const [k, v] of all) {
      if (nowNs - v.lastSeenNs > ctTimeoutNs(v.state, k.proto) && ct.delete(k)) deleted++;
    }
    return { deleted, entries: all.length - deleted };
  }

  close(): void {
    this.maps.close();
  }
}

function ctRow(k: CtKey, v: CtEntry, nowNs: bigint): CtRow {
  return {
    family: k.family, dir: k.dir === CtDir.FWD ? 'fwd' : 'reply', proto: k.proto,
    src: hostPort(k.family, k.saddr, k.sport), dst: hostPort(k.family, k.daddr, k.dport),
    backendId: v.backendId, serviceId: v.revNatId, state: v.state,
    ageSeconds: Number((nowNs - v.createdNs) / 1_000_000_000n), idleSeconds: Number((nowNs - v.lastSeenNs) / 1_000_000_000n),
  };
}

export const CT_STATE_NAMES: Record<number, string> = { [CtState.SYN]: 'syn', [CtState.EST]: 'established', [CtState.FIN]: 'fin', [CtState.CLOSED]: 'closed' };

// ---- main-thread side ---------------------------------------------------------------------------

export interface ServicesApplier {
  applyServiceOps(ops: WireServiceOp[]): Promise<number>;
}

export interface ServicesOptions {
  lbAlgorithm: LbAlgorithm;
  maglevTableSize: number;
  /** How long a removed backend keeps its flows before its entry is deleted. */
  drainMs: number;
}

export interface BackendStatus {
  ip: string;
  port: number;
  id: number;
  state: 'active' | 'draining';
}

export interface ServicesMetrics {
  applies: number;
  writes: number;
  lastApplyWrites: number;
  lastApplyMs: number;
  errors: number;
}

/** Expands delete-slots into explicit slot ranges (the old table's length is in `prev`). */
export function wireOps(prev: ServicePlan, ops: readonly ServiceOp[]): WireServiceOp[] {
  const out: WireServiceOp[] = [];
  for (const o of ops) {
    if (o.op === 'delete-slots') out.push({ op: 'delete-slot-range', serviceId: o.serviceId, from: 0, to: prev.slots.get(o.serviceId)?.length ?? 0 });
    else out.push(o);
    // A table that shrank (random: one entry per backend) leaves its tail behind otherwise.
    if (o.op === 'set-slots') {
      const old = prev.slots.get(o.serviceId)?.length ?? 0;
      if (old > o.slots.length) out.push({ op: 'delete-slot-range', serviceId: o.serviceId, from: o.slots.length, to: old });
    }
  }
  return out;
}

export class ServicesDatapath {
  private applied: ServicePlan = emptyPlan();
  private records: readonly ServiceRecord[] = [];
  /** Backend key text → when its drain ends, with its reference. */
  private readonly draining = new Map<string, { ref: BackendRef; until: number; services: string[] }>();
  private lastPlanned: ServicePlan | undefined;
  private lastRecords: readonly ServiceRecord[] = [];
  private running: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  readonly metrics: ServicesMetrics = { applies: 0, writes: 0, lastApplyWrites: 0, lastApplyMs: 0, errors: 0 };
  lastError: string | undefined;

  constructor(private readonly applier: ServicesApplier, private opts: ServicesOptions, private readonly now: () => number = Date.now) {}

  /** A config change (algorithm, table size, drain time): replans every service with it. */
  setOptions(opts: ServicesOptions): Promise<void> {
    this.opts = opts;
    return this.enqueue();
  }

  /** Services and backends (by state) in the maps, for the metrics. */
  counts(): { services: number; active: number; draining: number } {
    let draining = 0;
    for (const text of this.draining.keys()) if (this.applied.backendIds.has(text)) draining++;
    return { services: this.applied.services.size, active: this.applied.backendIds.size - draining, draining };
  }

  /** Level-triggered: the whole service set; resolves once the maps hold it. */
  setServices(records: readonly ServiceRecord[]): Promise<void> {
    this.records = records;
    return this.enqueue();
  }

  private enqueue(): Promise<void> {
    this.running = this.running.then(() => this.reconcile()).catch((e: unknown) => {
      this.metrics.errors++;
      this.lastError = (e as Error).message;
    });
    return this.running;
  }

  private async reconcile(): Promise<void> {
    const t0 = performance.now();
    const now = this.now();
    // A drain ends when its time is up, or at once when the backend is back in a record: a backend
    // re-added within the drain must take new flows again, not keep the service without slots.
    const present = new Set<string>();
    for (const r of this.records) for (const b of r.backends) present.add(backendKeyText({ ...b, protocol: r.protocol }));
    for (const [k, d] of this.draining) if (d.until <= now || present.has(k)) this.draining.delete(k);
    const input = {
      services: this.records, lbAlgorithm: this.opts.lbAlgorithm, maglevTableSize: this.opts.maglevTableSize,
      draining: [...this.draining.values()].map((d) => d.ref),
    };
    let next = planServices(input, this.applied);
    // Backends active before and gone now: draining for drainMs (replanned so they stay in nrd_backends).
    let added = false;
    const prevRecords = this.applied === this.lastPlanned ? this.lastRecords : [];
    for (const [text, id] of this.applied.backendIds) {
      const was = this.applied.backends.get(String(id))?.value;
      if (next.backendIds.has(text) || !was || was.state !== BackendState.ACTIVE) continue;
      const [protocol, ip, port] = text.split('|') as [Protocol, string, string];
      const ref = { ip, port: Number(port), protocol };
      const services = prevRecords.filter((r) => r.protocol === protocol && r.backends.some((b) => backendKeyText({ ...b, protocol }) === text)).map((r) => r.name);
      this.draining.set(text, { ref, until: now + this.opts.drainMs, services });
      added = true;
    }
    if (added) next = planServices({ ...input, draining: [...this.draining.values()].map((d) => d.ref) }, this.applied);
    const ops = wireOps(this.applied, diffPlan(this.applied, next));
    const writes = ops.length ? await this.applier.applyServiceOps(ops) : 0;
    this.applied = next;
    this.lastPlanned = next;
    this.lastRecords = this.records;
    this.metrics.applies++;
    this.metrics.writes += writes;
    this.metrics.lastApplyWrites = writes;
    this.metrics.lastApplyMs = performance.now() - t0;
    this.lastError = undefined;
    this.armDrainTimer();
  }

  private armDrainTimer(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    if (this.draining.size === 0) return;
    const next = Math.min(...[...this.draining.values()].map((d) => d.until));
    this.timer = setTimeout(() => void this.enqueue(), Math.max(0, next - this.now()));
    this.timer.unref();
  }

  /** Per service: its id and backends with their state, for /v1/services. */
  status(): Map<string, { id: number; backends: BackendStatus[] }> {
    const out = new Map<string, { id: number; backends: BackendStatus[] }>();
    const p = this.applied;
    for (const e of p.services.values()) {
      const backends: BackendStatus[] = [];
      const rec = this.records.find((r) => r.name === e.name);
      for (const b of rec?.backends ?? []) {
        const text = backendKeyText({ ...b, protocol: rec!.protocol });
        const id = p.backendIds.get(text);
        if (id !== undefined) backends.push({ ip: b.ip, port: b.port, id, state: this.draining.has(text) ? 'draining' : 'active' });
      }
      for (const [text, d] of this.draining) {
        if (d.services.includes(e.name) && !rec?.backends.some((b) => backendKeyText({ ...b, protocol: rec.protocol }) === text)) {
          const id = p.backendIds.get(text);
          if (id !== undefined) backends.push({ ip: d.ref.ip, port: d.ref.port, id, state: 'draining' });
        }
      }
      out.set(e.name, { id: e.value.id, backends });
    }
    return out;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
