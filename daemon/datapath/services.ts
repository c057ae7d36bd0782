// Services part of the datapath: turns the service set from etcd into the nrd_lb.h maps
// (nrd_services, nrd_backends, nrd_svc_tables, nrd_revnat) and serves the connection table nrd_ct.
//
//  - ServiceMapWriter runs in the datapath worker (all libbpf work does): it opens the maps the
//    endpoint datapath pinned under <pinPath>/maps and applies ServiceOps from plan.ts; a service's
//    selection table (one u32[M] value) is a spare inner array filled through mmap and swapped
//    into nrd_svc_tables by one update (4 syscalls whatever M); it lists, flushes and
//    garbage-collects nrd_ct.
//  - ServicesDatapath runs on the main thread: setServices(records) is level-triggered (the whole
//    set each time, idempotent); the incremental planner recomputes only the services whose records
//    changed and sends their writes, so one service change is a few map writes whatever the number
//    of services. The first apply (and the one after a failed write) writes the whole plan and
//    prunes what the maps hold beyond it (leftovers of a previous run); a failed write is retried
//    with backoff. A backend that disappears stays DRAINING (no new flow, existing ones continue)
//    for drainMs, then goes.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { PinnedMaps } from './pinned-maps.js';
import { formatIpBytes } from '../lib/ip.js';
import { TypedMap, u32Codec } from './maps.js';
import { type PoolStats, TablePool, tableSlots } from './service-tables.js';

export { readTable, writeTable } from './service-tables.js';
import {
  type BackendRef, type LbAlgorithm, type ServiceKey, type ServiceOp, type ServicePlan, type ServiceValue, SVC_F_NO_BACKEND, backendKeyText,
  diffPlan, emptyPlan,
} from '../services/plan.js';
import { type GoneBackend, IncrementalPlanner } from '../services/incremental.js';
import type { ServiceRecord } from '../state/records.js';
import {
  type CtEntry, type CtKey, CtDir, backendCodec, ctEntryCodec, ctKeyCodec, revNatCodec, svcKeyCodec, svcValueCodec,
} from './services-layout.js';
import { ctTimeoutNs } from './masquerade.js';
import { CtState } from './endpoint-layout.js';

// ---- worker side --------------------------------------------------------------------------------

/** The plan's ops, plus 'prune': delete every entry the maps hold beyond `keep` (a first apply),
 *  and 'table-size': the slots of every table (M, the lb_maglev_m the programs were loaded with;
 *  the kernel takes no other size). A new size reopens the maps: the reload that changed M
 *  replaced nrd_svc_tables. */
export type WireServiceOp = ServiceOp | { op: 'prune'; keep: PruneKeep } | { op: 'table-size'; slots: number };
export interface PruneKeep {
  services: ServiceKey[];
  backends: number[];
  revNat: number[];
  tables: number[];
}

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
const SERVICE_MAPS = ['nrd_services', 'nrd_backends', 'nrd_svc_tables', 'nrd_revnat', 'nrd_ct'] as const;

type OpenMaps = ReturnType<ServiceMapWriter['open']>;
const keyHex = (k: ServiceKey): string => svcKeyCodec.encode(k).toString('hex');

export class ServiceMapWriter {
  private readonly maps: PinnedMaps<(typeof SERVICE_MAPS)[number]>;
  private pool: TablePool | undefined;
  /** What nrd_services holds, by service id (the writer fills in table ids). */
  private readonly services = new Map<number, { key: ServiceKey; hex: string; value: ServiceValue }>();
  private readonly idByKey = new Map<string, number>();
  private maintainTimer: NodeJS.Timeout | undefined;
  private tableSize: number | undefined;

  /**
   * `maintain: false` for a second writer of maps another writer owns (the services bench times
   * one on its own thread beside the worker's): it resyncs before each use and never tops up or
   * trims the spare tables, so the owner's view of them stays true. `tableSlots`: M, until a
   * 'table-size' op says otherwise.
   */
  constructor(
    private readonly pinPath: string,
    private readonly now: () => number = Date.now,
    private readonly opts: { maintain?: boolean; tableSlots?: number } = {},
  ) {
    this.maps = new PinnedMaps(pinPath, SERVICE_MAPS);
    if (opts.tableSlots !== undefined) this.tableSize = tableSlots(opts.tableSlots);
  }

  private open() {
    const fd = (m: (typeof SERVICE_MAPS)[number]): number => this.maps.fd(m);
    return {
      services: new TypedMap(fd('nrd_services'), svcKeyCodec, svcValueCodec),
      backends: new TypedMap(fd('nrd_backends'), u32Codec, backendCodec),
      tables: new TypedMap(fd('nrd_svc_tables'), u32Codec, u32Codec),
      revnat: new TypedMap(fd('nrd_revnat'), u32Codec, revNatCodec),
      ct: new TypedMap(fd('nrd_ct'), ctKeyCodec, ctEntryCodec),
    };
  }

  /** The spare-table pool, found again from the pinned maps on first use (and after a prune). */
  private tablePool(m: OpenMaps): TablePool {
    if (this.pool) return this.pool;
    this.services.clear();
    this.idByKey.clear();
    for (const [key, value] of m.services.entries()) this.remember(key, value);
    const pool = new TablePool(m.tables.fd, this.now);
    pool.adopt(new Set([...this.services.values()].map((s) => s.value.tableId ?? 0)));
    this.pool = pool;
    return pool;
  }

  private remember(key: ServiceKey, value: ServiceValue): void {
    const hex = keyHex(key);
    this.services.set(value.id, { key, hex, value });
    this.idByKey.set(hex, value.id);
  }

  /** Applies the ops in order; returns the number of map syscalls made (writes and deletes). A
   *  failure forgets the open maps and the pool: the retry (a full sync) reads them again. */
  apply(ops: readonly WireServiceOp[]): number {
    for (const o of ops) {
      if (o.op !== 'table-size' || tableSlots(o.slots) === this.tableSize) continue;
      this.tableSize = tableSlots(o.slots);
      this.pool = undefined;
      this.maps.close();
    }
    try {
      return this.applyOps(ops);
    } catch (e) {
      this.pool = undefined;
      this.maps.close();
      throw e;
    }
  }

  private applyOps(ops: readonly WireServiceOp[]): number {
    const m = this.open();
    if (ops.some((o) => o.op === 'prune')) this.pool = undefined; // re-read what the maps hold
    const pool = this.tablePool(m);
    const need = new Map<number, number>();
    /** Service id → index of its last set-service op (a set-slots before it leaves the switch to it). */
    const lastValue = new Map<number, number>();
    // A full write (first apply, resync) keeps the tables that already hold the right slots.
    const sync = ops.some((o) => o.op === 'prune');
    const kept = new Set<number>();
    const size = (): number => {
      if (this.tableSize === undefined) throw new Error('service tables: no table size (M) given before the first set-slots');
      return this.tableSize;
    };
    for (const o of ops) {
      if (o.op === 'set-slots') {
        const cur = this.services.get(o.serviceId)?.value.tableId;
        if (sync && cur && pool.holds(cur, size(), o.slots)) kept.add(o.serviceId);
        else need.set(size(), (need.get(size()) ?? 0) + 1);
      }
    }
    ops.forEach((o, i) => o.op === 'set-service' && lastValue.set(o.value.id, i));
    pool.reserve(need);
    const staged = new Map<number, number>();
    let writes = 0;
    const writeService = (key: ServiceKey, value: ServiceValue, tableId: number): void => {
      const old = this.services.get(value.id)?.value.tableId;
      const v = { ...value, tableId };
      m.services.set(key, v);
      writes++;
      this.remember(key, v);
      if (old && old !== tableId) pool.release(old);
    };
    for (const [i, o] of ops.entries()) {
      switch (o.op) {
        case 'set-backend': m.backends.set(o.id, o.value); writes++; break;
        case 'set-slots': {
          if (kept.has(o.serviceId)) break;
          const id = pool.take(size(), o.slots);
          writes += 5; // syscalls: outer lookup, fd by id, mmap, munmap, close (no map-in-map write)
          const cur = this.services.get(o.serviceId);
          // An existing service whose value does not change: point it at the new table now (the
          // swap); otherwise its set-service below does, with the new backend count at once.
          if (cur && !((lastValue.get(o.serviceId) ?? -1) > i)) writeService(cur.key, cur.value, id);
          else {
            const prev = staged.get(o.serviceId);
            if (prev) pool.release(prev);
            staged.set(o.serviceId, id);
          }
          break;
        }
        case 'set-revnat': m.revnat.set(o.id, o.value); writes++; break;
        case 'set-service': {
          const takes = o.value.backendCount > 0 && !(o.value.flags & SVC_F_NO_BACKEND);
          const tableId = takes ? staged.get(o.value.id) ?? this.services.get(o.value.id)?.value.tableId ?? 0 : 0;
          staged.delete(o.value.id);
          writeService(o.key, o.value, tableId);
          break;
        }
        case 'delete-service': {
          const hex = keyHex(o.key);
          const id = this.idByKey.get(hex);
          m.services.delete(o.key);
          writes++;
          this.idByKey.delete(hex);
          if (id !== undefined && this.services.get(id)?.hex === hex) {
            const t = this.services.get(id)!.value.tableId;
            this.services.delete(id);
            // A service that moved (same id, new frontend) keeps its table: released at the end if not.
            if (t) staged.set(id, staged.get(id) ?? t);
          }
          break;
        }
        case 'delete-revnat': m.revnat.delete(o.id); writes++; break;
        case 'delete-slots': break; // its table goes with the set-service that left it without backends
        case 'delete-backend': m.backends.delete(o.id); writes++; break;
        case 'prune': writes += this.prune(m, o.keep); break;
        case 'table-size': break; // taken before the maps were opened
      }
    }
    // Tables staged for no service (a frontend that went, a table no set-service took): released.
    for (const [id, t] of staged) if (this.services.get(id)?.value.tableId !== t) pool.release(t);
    this.scheduleMaintain();
    return writes;
  }

  /** Spares topped up and trimmed after a change, off its path (the grace periods land here). */
  private scheduleMaintain(): void {
    if (this.maintainTimer || this.opts.maintain === false) return;
    this.maintainTimer = setTimeout(() => {
      this.maintainTimer = undefined;
      try {
        this.pool?.maintain();
      } catch {
        this.pool = undefined; // found again from the maps on the next apply
      }
    }, 0);
  }

  /**
   * Forgets what this writer knows of the maps and reads it again now: for a second writer of the
   * same maps (see the constructor), whose view of the spare tables would otherwise be stale.
   * Production has one writer per pin path.
   */
  resync(): void {
    this.pool = undefined;
    this.tablePool(this.open());
  }

  /** Tables in the pool (in use, spare, quarantined) and grace periods paid, for tests and the bench. */
  poolStats(): PoolStats | undefined {
    return this.pool?.stats();
  }

  /** Deletes what the maps hold beyond `keep`, in the datapath-safe order (services first). */
  private prune(m: OpenMaps, keep: PruneKeep): number {
    // The flat slot hash of older versions: nothing reads it any more.
    rmSync(join(this.pinPath, 'maps', 'nrd_svc_slots'), { force: true });
    const svc = new Set(keep.services.map(keyHex));
    let n = 0;
    for (const k of m.services.keys()) if (!svc.has(keyHex(k)) && m.services.delete(k)) n++;
    const drop = (map: TypedMap<number, unknown>, ids: number[]): void => {
      const set = new Set(ids);
      for (const k of map.keys()) if (!set.has(k) && map.delete(k)) n++;
    };
    drop(m.revnat, keep.revNat);
    drop(m.backends, keep.backends);
    // Tables no remaining service names become spares (the pool is read again from the maps).
    this.pool = undefined;
    this.tablePool(m);
    return n;
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
    if (this.maintainTimer) clearTimeout(this.maintainTimer);
    this.maintainTimer = undefined;
    this.pool = undefined;
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
  /** Applies whose map writes failed (each is retried with backoff, as a full sync). */
  failedApplies: number;
}

/** Backoff of the retry after a failed apply: doubles from RETRY_MIN_MS up to RETRY_MAX_MS. */
export const RETRY_MIN_MS = 100;
export const RETRY_MAX_MS = 30_000;

/** Every entry of `plan` as writes, then a prune of anything else: any map state → `plan`. */
export function syncOps(plan: ServicePlan): WireServiceOp[] {
  const keep: PruneKeep = {
    services: [...plan.services.values()].map((e) => e.key),
    backends: [...plan.backends.values()].map((e) => e.key),
    revNat: [...plan.revNat.values()].map((e) => e.key),
    tables: [...plan.slots.keys()],
  };
  return [...diffPlan(emptyPlan(), plan), { op: 'prune', keep }];
}

export class ServicesDatapath {
  private readonly planner = new IncrementalPlanner();
  private records: readonly ServiceRecord[] = [];
  /** Backend key text → when its drain ends, with its reference. */
  private readonly draining = new Map<string, { ref: BackendRef; until: number; services: string[] }>();
  /** The maps may hold anything (first apply, or a write failed): write all and prune. */
  private needsSync = true;
  private failures = 0;
  private running: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  readonly metrics: ServicesMetrics = { applies: 0, writes: 0, lastApplyWrites: 0, lastApplyMs: 0, errors: 0, failedApplies: 0 };
  lastError: string | undefined;

  constructor(private readonly applier: ServicesApplier, private opts: ServicesOptions, private readonly now: () => number = Date.now) {}

  /** A config change (algorithm, table size, drain time): replans every service with it. */
  setOptions(opts: ServicesOptions): Promise<void> {
    this.opts = opts;
    return this.enqueue();
  }

  /** The plan the maps hold (or are being brought to). */
  get plan(): ServicePlan {
    return this.planner.plan;
  }

  /** Services and backends (by state) in the maps, for the metrics. */
  counts(): { services: number; active: number; draining: number } {
    const p = this.planner.plan;
    let draining = 0;
    for (const text of this.draining.keys()) if (p.backendIds.has(text)) draining++;
    return { services: p.services.size, active: p.backendIds.size - draining, draining };
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
    for (const [k, d] of this.draining) if (d.until <= now) this.draining.delete(k);
    // Backends active before and gone now: draining for drainMs (they keep their nrd_backends
    // entry, with no slot). A drain ends when its time is up, or at once when the backend is back
    // in a record: a backend re-added within the drain must take new flows again.
    const drain = (gone: GoneBackend[]): GoneBackend[] => {
      for (const g of gone) this.draining.set(g.text, { ref: g.ref, until: now + this.opts.drainMs, services: g.services });
      return gone;
    };
    const planOps = this.planner.update({
      services: this.records, lbAlgorithm: this.opts.lbAlgorithm, maglevTableSize: this.opts.maglevTableSize,
      draining: [...this.draining.values()].map((d) => d.ref), undrainListed: true,
    }, drain);
    for (const t of this.planner.undrained) this.draining.delete(t);
    const body: WireServiceOp[] = this.needsSync ? syncOps(this.planner.plan) : planOps;
    const ops: WireServiceOp[] = body.length ? [{ op: 'table-size', slots: this.opts.maglevTableSize }, ...body] : [];
    let writes = 0;
    try {
      writes = ops.length ? await this.applier.applyServiceOps(ops) : 0;
    } catch (e) {
      // The maps are somewhere between the old plan and the new one: the retry writes the whole
      // plan and prunes the rest, which reaches the plan from any state.
      this.needsSync = true;
      this.metrics.failedApplies++;
      this.scheduleRetry();
      throw e;
    }
    this.needsSync = false;
    this.failures = 0;
    this.metrics.applies++;
    this.metrics.writes += writes;
    this.metrics.lastApplyWrites = writes;
    this.metrics.lastApplyMs = performance.now() - t0;
    this.lastError = undefined;
    this.armDrainTimer();
  }

  private scheduleRetry(): void {
    if (this.retryTimer) clearTimeout(this.retryTimer);
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** this.failures);
    this.failures++;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      if (this.needsSync) void this.enqueue();
    }, delay);
    this.retryTimer.unref();
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
    const p = this.planner.plan;
    const drainedOf = new Map<string, string[]>();
    for (const [text, d] of this.draining) for (const name of d.services) (drainedOf.get(name) ?? drainedOf.set(name, []).get(name)!).push(text);
    for (const e of p.services.values()) {
      const backends: BackendStatus[] = [];
      const rec = this.planner.record(e.name);
      const listed = new Set<string>();
      for (const b of rec?.backends ?? []) {
        const text = backendKeyText({ ...b, protocol: rec!.protocol });
        listed.add(text);
        const id = p.backendIds.get(text);
        if (id !== undefined) backends.push({ ip: b.ip, port: b.port, id, state: this.draining.has(text) ? 'draining' : 'active' });
      }
      for (const text of drainedOf.get(e.name) ?? []) {
        const d = this.draining.get(text)!;
        const id = p.backendIds.get(text);
        if (!listed.has(text) && id !== undefined) backends.push({ ip: d.ref.ip, port: d.ref.port, id, state: 'draining' });
      }
      out.set(e.name, { id: e.value.id, backends });
    }
    return out;
  }

  close(): void {
    if (this.timer) clearTimeout(this.timer);
    if (this.retryTimer) clearTimeout(this.retryTimer);
    this.timer = undefined;
    this.retryTimer = undefined;
  }
}
