// Kernel reconciler: desired state vs read-back state per object kind (the VXLAN link, FDB entries,
// permanent neighbours, routes), minimal delta applied with replace semantics through the
// KernelPort. One Reconciler per owner (routing, endpoints) over the one shared port, each with its
// own mark (owners.ts): routes by rtm_protocol in its table, links by interface name prefix and kind,
// neighbour and FDB entries by living on an owned link. Nothing without the mark is ever touched.
// Kernel interfaces: rtnetlink via KernelPort (RTM_*ROUTE, RTM_*LINK, RTM_*NEIGH incl. AF_BRIDGE).
//
// Rules (docs/design.md, invariants):
// - Until the sources report synced, a run only adds what is missing: it neither replaces nor deletes
//   what a previous nrd left in the kernel, which keeps forwarding meanwhile. A restart with the same
//   desired state therefore writes nothing, and a half-known desired state cannot disturb traffic.
// - FDB entries, then neighbours, go in before the routes that need them; routes come out before
//   their neighbours and FDB entries.
// - A foreign route with the same table/prefix/metric as a desired one is never replaced (an IPv4
//   NLM_F_REPLACE would take it over whatever its protocol): it is reported as a conflict.
import type { Logger } from '../lib/log.js';
import { canonicalMac, canonicalPrefix, familyOf, parsePrefix, type Family } from './addr.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { ROUTING_MARK, ownsLink, type OwnerMark } from './owners.js';
import { keyFamily, prefixKey, prefixText, shortKeyText, type PrefixKey } from '../lib/prefix-key.js';
import {
  RT_TABLE_MAIN,
  defaultMetric,
  isKernelError,
  type FdbEntry,
  type KernelEvent,
  type KernelPort,
  type LinkInfo,
  type Neighbour,
  type NextHop,
  type Route,
  type RouteSelector,
  type Subscription,
  type BatchFailure,
} from './types.js';

export interface DesiredNextHop {
  gateway?: string;
  /** Output device by name (resolved to an ifindex at each run). */
  dev?: string;
  onlink?: boolean;
  weight?: number;
}

export interface DesiredRoute {
  dst: string;
  type: 'unicast' | 'blackhole' | 'unreachable';
  nextHops: DesiredNextHop[];
  mtu?: number;
}

export interface DesiredVxlan {
  name: string;
  vni: number;
  port: number;
  local: string;
  mtu: number;
  /** Underlay device name (IFLA_VXLAN_LINK). */
  underlay?: string;
  mac?: string;
}

export interface DesiredNeighbour {
  dev: string;
  ip: string;
  mac: string;
}

export interface DesiredFdb {
  dev: string;
  mac: string;
  dst: string;
}

/** A link the owner keeps (it exists already: the owner brings it up and sets its MTU). */
export interface DesiredLink {
  name: string;
  mtu?: number;
}

export interface DesiredState {
  vxlan?: DesiredVxlan;
  /** Owned links kept besides the VXLAN device; every other owned link goes once in sync. */
  links?: DesiredLink[];
  fdb: DesiredFdb[];
  neighbours: DesiredNeighbour[];
  routes: DesiredRoute[];
}

export const emptyDesired = (): DesiredState => ({ fdb: [], neighbours: [], routes: [] });

export interface ReconcilerOptions {
  /** Whose objects this reconciler manages (default: routing's, daemon/kernel/owners.ts). */
  mark?: OwnerMark;
  /** rtm_protocol, when the site overrides the mark's (routing.routeProtocol). */
  protocol?: number;
  table?: number;
  families?: Family[];
  /** Periodic full resync (default 60 s; 0 = off). */
  resyncIntervalMs?: number;
  /** Coalesce bursts of triggers (default 10 ms). */
  debounceMs?: number;
  /** Retry after a failed run (default 1000 ms). */
  retryMs?: number;
  log: Logger;
  clock?: Clock;
  /** Route writes in one run from which on notifications may have been lost (default 10000). */
  bulkThreshold?: number;
  /** Quiet time after the last bulk run before the full resync it calls for (default 2000 ms). */
  bulkQuietMs?: number;
  /** Called after every run with its report (metrics, readiness). */
  onReport?(r: ReconcileReport): void;
}

export interface KindCounts {
  added: number;
  replaced: number;
  deleted: number;
}

export interface ReconcileReport {
  links: KindCounts;
  fdb: KindCounts;
  neighbours: KindCounts;
  routes: KindCounts;
  unchanged: number;
  /** Replacements and deletions held back because the sources are not in sync yet. */
  deferred: number;
  conflicts: string[];
  errors: string[];
}

const counts = (): KindCounts => ({ added: 0, replaced: 0, deleted: 0 });

/** Writes of a report (0 means the kernel was already as desired). */
export function reportWrites(r: ReconcileReport): number {
  let n = 0;
  for (const k of [r.links, r.fdb, r.neighbours, r.routes]) n += k.added + k.replaced + k.deleted;
  return n;
}

interface NormalHop {
  gateway: string;
  ifindex: number | undefined;
  onlink: boolean;
  weight: number;
}

const normHop = (h: NextHop): NormalHop => ({ gateway: h.gateway ?? '', ifindex: h.ifindex, onlink: !!h.onlink, weight: h.weight ?? 1 });

/** Does the read-back route `actual` implement `want` (ifindex absent in `want` = any)? */
export function routeMatches(want: Route, actual: Route): boolean {
  if (want.type !== actual.type || want.protocol !== actual.protocol) return false;
  if ((want.mtu ?? 0) !== (actual.mtu ?? 0)) return false;
  if (want.type !== 'unicast') return true;
  if (want.nextHops.length !== actual.nextHops.length) return false;
  if (want.nextHops.length === 1) {
    // The common case, compared without the normalised copies below (a million echoes after a bulk write).
    const w = want.nextHops[0]!;
    const a = actual.nextHops[0]!;
    return (w.gateway ?? '') === (a.gateway ?? '') && !!w.onlink === !!a.onlink && (w.weight ?? 1) === (a.weight ?? 1) && (w.ifindex === undefined || a.ifindex === w.ifindex);
  }
  const left = actual.nextHops.map(normHop);
  for (const w of want.nextHops.map(normHop)) {
    const i = left.findIndex(
      (a) => a.gateway === w.gateway && a.onlink === w.onlink && a.weight === w.weight && (w.ifindex === undefined || a.ifindex === w.ifindex),
    );
    if (i < 0) return false;
    left.splice(i, 1);
  }
  return true;
}

/** A desired route without its prefix: what the delta API takes (one object may serve many prefixes). */
export type DesiredRouteBody = Omit<DesiredRoute, 'dst'>;

/**
 * What the kernel holds at a key of ours: the signature of the desired route it implements (the
 * common case, one interned string shared by many routes), or the kernel's route itself when it
 * implements no desired route known at the time (a later desired route may match it).
 */
type Installed = string | Route;

/** A key's desired route body and what the kernel holds there (either may be absent, not both). */
interface RouteSlot {
  readonly want: DesiredRouteBody | undefined;
  readonly have: Installed | undefined;
}

/** Signature of a resolved desired route: equal signatures, same kernel route (routeMatches). */
function routeSig(r: Route): string {
  let s = `${r.type}|${r.mtu ?? 0}`;
  for (const h of r.nextHops) s += `|${h.gateway ?? ''}/${h.ifindex ?? ''}/${h.onlink ? 1 : 0}/${h.weight ?? 1}`;
  return s;
}

const sameHopsBody = (a: DesiredNextHop, b: DesiredNextHop): boolean =>
  a.gateway === b.gateway && a.dev === b.dev && !!a.onlink === !!b.onlink && (a.weight ?? 1) === (b.weight ?? 1);

function sameBody(a: DesiredRouteBody, b: DesiredRouteBody): boolean {
  if (a === b) return true;
  if (a.type !== b.type || (a.mtu ?? 0) !== (b.mtu ?? 0) || a.nextHops.length !== b.nextHops.length) return false;
  return a.nextHops.every((h, i) => sameHopsBody(h, b.nextHops[i]!));
}

/** The non-route parts (VXLAN device, FDB, neighbours) as one comparable string; they are few. */
const othersOf = (d: DesiredState): string => JSON.stringify([d.vxlan ?? null, d.links ?? [], d.fdb, d.neighbours]);

/** What one pass works on: its claim, its report, and the objects read back for the later steps. */
interface PassState {
  full: boolean;
  /** Links, FDB and neighbours are looked at this pass (else routes only). */
  doOthers: boolean;
  synced: boolean;
  d: DesiredState;
  rep: ReconcileReport;
  dirtyNow: Set<PrefixKey>;
  vx: LinkInfo | undefined;
  links: LinkInfo[];
  staleLinks: LinkInfo[];
  staleFdb: FdbEntry[];
  staleNeigh: Neighbour[];
  fail(what: string, e: unknown): void;
  ifindexOf(dev: string): number;
}

/** The route writes and deletions a pass decided on (parallel arrays: a 100k batch stays flat). */
interface RoutePlan {
  write: Route[];
  writeKeys: PrefixKey[];
  /** Signature of each write (what the key's slot holds as installed once it is in). */
  sigs: string[];
  isReplace: boolean[];
  stale: RouteSelector[];
  staleKeys: PrefixKey[];
}

const newPlan = (): RoutePlan => ({ write: [], writeKeys: [], sigs: [], isReplace: [], stale: [], staleKeys: [] });

/** A desired body resolved against one listing of the links (see Reconciler.resolveBody). */
interface ResolvedBody {
  links: Map<string, LinkInfo>;
  /** The route without its prefix (family, dst and metric are the key's). */
  route: Route;
  sig: string;
}

/**
 * Route keys diffed (and their writes sent as one batch) between two turns of the event loop.
 * During a 1M-route ingest each chunk shares the main thread with a turn of BGP: 8192 (~10 ms of
 * diff and encoding) took the FIB from 5.4 to 4.7 s in fib-e2e while the RIB stayed within 10 %
 * and the event-loop delay p99 rose from ~60 to ~100 ms (keepalives every 3 s; BFD has its own
 * thread).
 */
const ROUTE_CHUNK = 8192;

/** Chunks written concurrently (bounds what waits in the kernel's and the writer's hands). */
const ROUTE_CHUNKS_IN_FLIGHT = 2;

const yieldToLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A deletion of something already gone (by hand, or with its link) is an outcome, not a failure. */
const gone = (x: unknown): boolean => isKernelError(x, 'ESRCH') || isKernelError(x, 'ENOENT');

export class Reconciler {
  private readonly mark: OwnerMark;
  private readonly protocol: number;
  private readonly table: number;
  private readonly families: Family[];
  private readonly clock: Clock;
  private readonly log: Logger;
  /** Desired VXLAN device, FDB and neighbours (routes live in `routes`). */
  private desired: DesiredState = emptyDesired();
  private synced = false;
  private running: Promise<ReconcileReport> | null = null;
  private rerun = false;
  private timer: unknown = null;
  private periodic: unknown = null;
  private bulkTimer: unknown = null;
  /** The bulk read-back came due while a pass ran: armed again when that pass ends. */
  private bulkDue = false;
  private sub: Subscription | null = null;
  private stopped = true;
  // Route state as a delta tracker (Felix's deltatracker): the desired routes by kernel key, the
  // kernel's routes of ours as last known (a full read-back, then our own writes and the kernel's
  // notifications), and the keys where the two may differ. A routine run looks at dirty keys only;
  // a full run (start, periodic resync, overflow, after bulk writes) reads everything back.
  /**
   * Per key (the canonical prefix's PrefixKey, see keyOf): the desired route body (bodies may be
   * shared between prefixes) and what the kernel holds there of ours. One map, not two: the slot
   * is interned per (body, signature), so the million routes on one path share one slot object.
   */
  private routes = new Map<PrefixKey, RouteSlot>();
  /** Interned slots: by desired body (weakly: bodies are replaced on a full evaluation), then by signature. */
  private slots = new WeakMap<DesiredRouteBody, Map<string | undefined, RouteSlot>>();
  private slotsUnwanted = new Map<string | undefined, RouteSlot>();
  private lastSlot: RouteSlot | undefined;
  /** While a full read-back runs: the keys kernel events told about meanwhile (see readBackRoutes). */
  private readBackTouched: Set<PrefixKey> | undefined;
  /** Keys held by another protocol's route (never replaced: a conflict). */
  private foreign = new Set<PrefixKey>();
  private dirty = new Set<PrefixKey>();
  /** Keys whose replacement or deletion waits for the sources to be in sync. */
  private deferredKeys = new Set<PrefixKey>();
  /** Desired routes that could not be keyed (bad prefix): reported by the next run. */
  private badRoutes: string[] = [];
  private fullPending = true;
  private othersPending = true;
  private othersKey = othersOf(emptyDesired());
  /** Links by name as last listed (device names in desired hops resolve through it). */
  private byName = new Map<string, LinkInfo>();
  /** Desired bodies resolved against the current links (see resolveBody). */
  private resolved = new WeakMap<DesiredRouteBody, ResolvedBody>();
  /** Interned route signatures (a few next-hop sets serve most routes). */
  private sigs = new Map<string, string>();
  private vxlanName: string | undefined;
  /** Names of the owned links wanted at the last run (VXLAN device and kept links). */
  private keptLinks = new Set<string>();
  /** The VXLAN device's index and the FDB/neighbour entries wanted on it at the last run. */
  private vxlanIndex: number | undefined;
  private wantedNeigh = new Map<string, string>();
  private wantedFdb = new Set<string>();
  readonly totals = { runs: 0, writes: 0, errors: 0, conflicts: 0, fullRuns: 0 };
  lastReport: ReconcileReport | null = null;
  /** The VXLAN device as the last run left it (undefined: none wanted, or it could not be made). */
  vxlanLink: LinkInfo | undefined;

  constructor(
    private readonly port: KernelPort,
    private readonly opts: ReconcilerOptions,
  ) {
    this.mark = opts.mark ?? ROUTING_MARK;
    this.protocol = opts.protocol ?? this.mark.protocol;
    this.table = opts.table ?? RT_TABLE_MAIN;
    this.families = opts.families ?? [4, 6];
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log;
  }

  /**
   * Kernel key of a canonical prefix, or null for a family this reconciler does not manage. The
   * table and the metric are the reconciler's own, so the key is the prefix's PrefixKey: the key
   * the owner keys its own state by, a small integer for an IPv4 prefix up to /24 (no string per
   * route, let alone a second "table|dst|metric" one).
   */
  private keyOf(dst: PrefixKey): PrefixKey | null {
    const k = typeof dst === 'number' ? dst : prefixKey(dst);
    if (!this.families.includes(keyFamily(k))) return null;
    return k;
  }

  /**
   * Key of a route read back from the kernel (table already checked): its prefix, or prefix|metric
   * for a route of ours at another metric — a key no desired route has, so it is deleted as stale.
   */
  private keyOfRoute(r: Route): PrefixKey {
    const metric = r.metric ?? defaultMetric(r.family);
    return metric === defaultMetric(r.family) ? prefixKey(r.dst) : `${r.dst}|${metric}`;
  }

  /** The key's slot becomes (want, have); no slot when both are absent. */
  private setSlot(k: PrefixKey, want: DesiredRouteBody | undefined, have: Installed | undefined): void {
    if (!want && have === undefined) {
      this.routes.delete(k);
      return;
    }
    // A kernel route that implements no desired route is the key's own (rare): not interned.
    if (typeof have === 'object') {
      this.routes.set(k, { want, have });
      return;
    }
    // Consecutive keys mostly take the same slot (a batch of routes on one path): no lookup then.
    let slot = this.lastSlot;
    if (slot === undefined || slot.want !== want || slot.have !== have) {
      let bySig = want ? this.slots.get(want) : this.slotsUnwanted;
      if (!bySig) this.slots.set(want!, (bySig = new Map()));
      slot = bySig.get(have);
      if (!slot) bySig.set(have, (slot = Object.freeze({ want, have })));
      this.lastSlot = slot;
    }
    this.routes.set(k, slot);
  }

  private setWant(k: PrefixKey, want: DesiredRouteBody | undefined): void {
    this.setSlot(k, want, this.routes.get(k)?.have);
  }

  private setHave(k: PrefixKey, have: Installed | undefined): void {
    this.setSlot(k, this.routes.get(k)?.want, have);
  }

  private markDirty(k: PrefixKey): void {
    this.dirty.add(k);
    this.schedule();
  }

  /** Replace the whole desired state and schedule a run (only what differs is looked at). */
  setDesired(d: DesiredState): void {
    this.setOthers(d);
    const next = new Map<PrefixKey, DesiredRouteBody>();
    const bad: string[] = [];
    for (const r of d.routes) {
      let k: PrefixKey | null;
      try {
        k = this.keyOf(canonicalPrefix(r.dst));
      } catch (e) {
        bad.push(`route ${r.dst}: ${e instanceof Error ? e.message : String(e)}`);
        continue;
      }
      if (k !== null) next.set(k, r);
    }
    for (const [k, b] of next) {
      const old = this.routes.get(k)?.want;
      if (!old || !sameBody(old, b)) this.dirty.add(k);
      this.setWant(k, b);
    }
    for (const [k, slot] of this.routes) {
      if (slot.want && !next.has(k)) {
        this.dirty.add(k);
        this.setWant(k, undefined);
      }
    }
    this.badRoutes = bad;
    this.schedule();
  }

  /**
   * Replace the desired links, FDB and neighbours only (the routes stay as they are): what a node
   * change needs, without handing over (and comparing) every route again.
   */
  setOthers(d: Omit<DesiredState, 'routes'>): void {
    if (d.vxlan && !ownsLink(this.mark, { name: d.vxlan.name, kind: 'vxlan' })) {
      throw new Error(`vxlan device ${d.vxlan.name} is not a link ${this.mark.owner} owns (prefix ${this.mark.linkPrefix}, kind ${this.mark.linkKind})`);
    }
    for (const l of d.links ?? []) {
      if (!ownsLink(this.mark, { name: l.name, kind: this.mark.linkKind })) throw new Error(`link ${l.name} is not a link ${this.mark.owner} owns (prefix ${this.mark.linkPrefix})`);
    }
    const others = othersOf({ ...d, routes: [] });
    if (others !== this.othersKey) {
      this.othersKey = others;
      this.othersPending = true;
      this.schedule();
    }
    this.desired = { ...(d.vxlan ? { vxlan: d.vxlan } : {}), ...(d.links ? { links: d.links } : {}), fdb: d.fdb, neighbours: d.neighbours, routes: [] };
  }

  /**
   * One route's desired state (undefined: no longer wanted), the routine path of a routing change:
   * only that key is looked at by the next run. `dst` must be canonical (addr.ts canonicalPrefix),
   * or its PrefixKey (what the routing layer holds).
   */
  setRoute(dst: PrefixKey, body: DesiredRouteBody | undefined): void {
    const k = this.keyOf(dst);
    if (k === null) return;
    const slot = this.routes.get(k);
    const old = slot?.want;
    if (body) {
      if (old && sameBody(old, body)) return;
    } else if (!old) {
      return;
    }
    this.setSlot(k, body, slot?.have);
    this.markDirty(k);
  }

  /** The desired state as last set (routes rebuilt from the maintained map). */
  desiredState(): DesiredState {
    const routes: DesiredRoute[] = [];
    for (const [k, { want }] of this.routes) if (want) routes.push({ ...want, dst: prefixText(k) });
    return { ...this.desired, routes };
  }

  /** The sources (etcd, BGP) report whether they are in sync; deletions wait for it. */
  setSynced(synced: boolean): void {
    const was = this.synced;
    this.synced = synced;
    if (synced && !was) {
      // Everything held back is due now; the rest is as it was.
      for (const k of this.deferredKeys) this.dirty.add(k);
      this.deferredKeys.clear();
      this.othersPending = true;
      this.schedule();
    }
  }

  /** Read everything back at the next run (periodic resync, lost notifications). */
  resync(delayMs = 0): void {
    this.fullPending = true;
    this.schedule(delayMs);
  }

  /** Subscribe to kernel changes, run a full resync, and keep resyncing periodically. */
  async start(): Promise<ReconcileReport> {
    this.stopped = false;
    this.sub = this.port.subscribe((e) => this.onEvent(e));
    const iv = this.opts.resyncIntervalMs ?? 60_000;
    if (iv > 0) {
      const tick = (): void => {
        if (this.stopped) return;
        this.resync();
        this.periodic = this.clock.setTimer(tick, iv);
      };
      this.periodic = this.clock.setTimer(tick, iv);
    }
    return this.runNow();
  }

  stop(): void {
    this.stopped = true;
    this.sub?.close();
    this.sub = null;
    for (const t of [this.timer, this.periodic, this.bulkTimer]) if (t !== null) this.clock.clearTimer(t);
    this.timer = this.periodic = this.bulkTimer = null;
  }

  /** Run soon (coalescing bursts): a delta run unless a full one is due. */
  schedule(delayMs = this.opts.debounceMs ?? 10): void {
    if (this.stopped) return;
    if (this.running) {
      this.rerun = true;
      return;
    }
    if (this.timer !== null) return;
    this.timer = this.clock.setTimer(() => {
      this.timer = null;
      void this.run(this.fullPending).catch((e: unknown) => this.log.error({ err: e }, 'reconcile run failed'));
    }, delayMs);
  }

  /** Wait for any in-flight run, then run a full pass; resolves with that run's report. */
  runNow(): Promise<ReconcileReport> {
    return this.run(true);
  }

  private async run(full: boolean): Promise<ReconcileReport> {
    while (this.running) await this.running.catch(() => undefined);
    this.running = this.pass(full || this.fullPending);
    try {
      const r = await this.running;
      return r;
    } finally {
      this.running = null;
      if (this.rerun) {
        this.rerun = false;
        this.schedule();
      }
    }
  }

  /** Is anything about this kernel event ours and different from what we want? */
  private onEvent(e: KernelEvent): void {
    if (e.kind === 'overflow') {
      this.resync();
      return;
    }
    if (e.kind === 'link') {
      if (this.vxlanName && e.link.name === this.vxlanName) {
        const v = this.desired.vxlan;
        if (e.op === 'del' || !v || !e.link.up || e.link.mtu !== v.mtu) {
          this.othersPending = true;
          this.schedule();
        }
      } else if (this.keptLinks.has(e.link.name)) {
        // A kept link went down, changed or came (back): its routes and neighbours depend on it.
        const want = this.desired.links?.find((l) => l.name === e.link.name);
        if (e.op === 'del' || !e.link.up || (want?.mtu !== undefined && e.link.mtu !== want.mtu) || this.byName.get(e.link.name)?.index !== e.link.index) {
          this.othersPending = true;
          this.schedule();
        }
      }
      return;
    }
    if (e.kind === 'neigh') {
      // A wanted permanent neighbour on an owned link removed or changed by hand: put it back now
      // rather than at the next periodic resync (traffic to that node or endpoint depends on it).
      const n = e.neighbour;
      const mac = this.wantedNeigh.get(`${n.ifindex}|${n.ip}`);
      if (mac === undefined) return;
      if (e.op === 'del' || !n.permanent || n.mac !== mac) {
        this.othersPending = true;
        this.schedule();
      }
      return;
    }
    if (e.kind === 'fdb') {
      const f = e.fdb;
      if (f.ifindex !== this.vxlanIndex || e.op !== 'del' || !f.dst) return;
      if (this.wantedFdb.has(`${f.ifindex}|${f.mac}|${f.dst}`)) {
        this.othersPending = true;
        this.schedule();
      }
      return;
    }
    // Addresses are not reconciled objects; their owners (routing's guards) watch them directly.
    if (e.kind === 'address') return;
    const r = e.route;
    if (r.table !== this.table) return;
    const k = this.keyOfRoute(r);
    this.readBackTouched?.add(k);
    if (r.protocol !== this.protocol) {
      // A foreign route took the key (a conflict now) or freed it (ours may go in).
      if (e.op === 'new') this.foreign.add(k);
      else this.foreign.delete(k);
      if (this.routes.get(k)?.want) this.markDirty(k);
      return;
    }
    if (e.op === 'del') {
      // Ours deleted (by us, or by hand: then put back what we want).
      this.setHave(k, undefined);
      if (this.routes.get(k)?.want) this.markDirty(k);
      return;
    }
    const body = this.routes.get(k)?.want;
    let want: ResolvedBody | undefined;
    if (body) {
      try {
        want = this.resolveBody(body);
      } catch {
        want = undefined;
      }
    }
    // The echo of our own write: nothing to do (the common case, 100k of them after a bulk write).
    if (want && routeMatches(want.route, r)) {
      this.setHave(k, want.sig);
      return;
    }
    this.setHave(k, r);
    this.markDirty(k);
  }

  private cachedIfindex(dev: string): number {
    const l = this.byName.get(dev);
    if (!l) throw new Error(`device ${dev} does not exist`);
    return l.index;
  }

  private intern(s: string): string {
    const have = this.sigs.get(s);
    if (have !== undefined) return have;
    this.sigs.set(s, s);
    return s;
  }

  /**
   * A desired body resolved against the links as last listed: the kernel route minus its prefix
   * and its signature. Cached per body object — the owner shares one body between every prefix on
   * the same path, so a million routes resolve a handful of bodies, not a million — and made again
   * once the links are listed again (a device's index may have changed). Throws if a device is missing.
   */
  private resolveBody(b: DesiredRouteBody): ResolvedBody {
    const have = this.resolved.get(b);
    if (have && have.links === this.byName) return have;
    const route: Route = {
      family: 4,
      dst: '',
      table: this.table,
      protocol: this.protocol,
      type: b.type,
      nextHops: b.type === 'unicast' ? b.nextHops.map((h) => this.resolveHop(h, (dev) => this.cachedIfindex(dev))) : [],
    };
    if (b.mtu !== undefined) route.mtu = b.mtu;
    if (b.type === 'unicast' && route.nextHops.length === 0) throw new Error('unicast route without next hop');
    const r: ResolvedBody = { links: this.byName, route, sig: this.intern(routeSig(route)) };
    this.resolved.set(b, r);
    return r;
  }

  /** The kernel route for a desired body at key k (its next hops shared with the resolved body). */
  private buildRoute(k: PrefixKey, b: DesiredRouteBody): Route {
    const { route: t } = this.resolveBody(b);
    const family: Family = keyFamily(k);
    const route: Route = { family, dst: prefixText(k), table: this.table, protocol: this.protocol, type: t.type, metric: defaultMetric(family), nextHops: t.nextHops };
    if (t.mtu !== undefined) route.mtu = t.mtu;
    return route;
  }

  /** A selector that deletes our route at key k (RTM_DELROUTE matches the type too). */
  private selectorOf(k: PrefixKey, have: Installed): RouteSelector {
    const type = typeof have === 'string' ? (have.slice(0, have.indexOf('|')) as Route['type']) : have.type;
    if (typeof k === 'number') return { family: 4, dst: shortKeyText(k), table: this.table, metric: defaultMetric(4), protocol: this.protocol, type };
    const bar = k.indexOf('|');
    const dst = bar < 0 ? k : k.slice(0, bar);
    const family: Family = dst.includes(':') ? 6 : 4;
    const metric = bar < 0 ? defaultMetric(family) : Number(k.slice(bar + 1));
    return { family, dst, table: this.table, metric, protocol: this.protocol, type };
  }

  /** A full run: read back, diff, write. Never throws for a single object's failure. */
  runOnce(): Promise<ReconcileReport> {
    return this.pass(true);
  }

  /**
   * One reconcile pass, in the order a reader (and the kernel) needs:
   *   1. claim the work (dirty keys, pending link/neighbour/FDB work, a full read-back due);
   *   2. links: read back, create/adopt the VXLAN device, bring kept links up;
   *   3. FDB, then neighbours: read back on owned links, diff, add or replace;
   *   4. routes: read back (full pass) or the dirty keys, diff, write as one batch;
   *   5. deletions last, in reverse dependency order (routes, neighbours, FDB, links), and only
   *      once the sources are in sync;
   *   6. account, log, schedule what is left.
   */
  private async pass(full: boolean): Promise<ReconcileReport> {
    const p = this.claim(full);
    try {
      if (p.doOthers) {
        await this.syncLinks(p);
        await this.syncFdb(p);
        await this.syncNeighbours(p);
      }
      if (full) await this.readBackRoutes(p);
      await this.applyRoutes(p, full ? this.allRouteKeys() : p.dirtyNow);
      if (p.synced) await this.deleteStale(p);
      else p.rep.deferred += p.staleNeigh.length + p.staleFdb.length + p.staleLinks.length;
    } catch (e) {
      // A failed read-back (a dump interrupted too often, ENOBUFS): report it and retry, keeping
      // the work this pass had claimed.
      p.fail('kernel', e);
      for (const k of p.dirtyNow) this.dirty.add(k);
      if (p.doOthers) this.othersPending = true;
      if (full) this.fullPending = true;
    }
    return this.finish(p);
  }

  /** Step 1: take the pending work; anything marked while the pass runs goes to the next one. */
  private claim(full: boolean): PassState {
    const rep: ReconcileReport = { links: counts(), fdb: counts(), neighbours: counts(), routes: counts(), unchanged: 0, deferred: 0, conflicts: [], errors: [] };
    const doOthers = full || this.othersPending || this.byName.size === 0;
    this.othersPending = false;
    if (full) this.fullPending = false;
    const dirtyNow = this.dirty;
    this.dirty = new Set();
    for (const b of this.badRoutes) rep.errors.push(b);
    const p: PassState = {
      full,
      doOthers,
      synced: this.synced,
      d: this.desired,
      rep,
      dirtyNow,
      vx: this.vxlanLink,
      links: [],
      staleLinks: [],
      staleFdb: [],
      staleNeigh: [],
      fail: (what, e) => void rep.errors.push(`${what}: ${e instanceof Error ? e.message : String(e)}`),
      // A missing device makes the object unprogrammable this run (reported, retried).
      ifindexOf: (dev) => {
        const l = this.byName.get(dev);
        if (!l) throw new Error(`device ${dev} does not exist`);
        return l.index;
      },
    };
    return p;
  }

  /** Step 2: read the links back; make the VXLAN device as desired; bring kept links up. */
  private async syncLinks(p: PassState): Promise<void> {
    const d = p.d;
    p.links = await this.port.listLinks();
    const byName = new Map<string, LinkInfo>(p.links.map((l) => [l.name, l]));
    p.vx = undefined;
    if (d.vxlan) {
      this.vxlanName = d.vxlan.name;
      p.vx = await this.ensureVxlan(d.vxlan, byName, p.rep, p.synced).catch((e: unknown) => {
        p.fail(`vxlan ${d.vxlan!.name}`, e);
        return undefined;
      });
      if (p.vx) byName.set(p.vx.name, p.vx);
    }
    for (const want of d.links ?? []) {
      const l = byName.get(want.name);
      if (!l) {
        p.fail(`link ${want.name}`, new Error('does not exist'));
        continue;
      }
      try {
        byName.set(l.name, await this.ensureLinkUp(l, want.mtu, p.rep));
      } catch (e) {
        p.fail(`link ${want.name}`, e);
      }
    }
    this.byName = byName;
    this.keptLinks = new Set([...(d.vxlan ? [d.vxlan.name] : []), ...(d.links ?? []).map((l) => l.name)]);
    p.staleLinks = p.links.filter((l) => ownsLink(this.mark, l) && !this.keptLinks.has(l.name));
  }

  /** Step 3a: FDB entries on owned VXLAN links (one dst per MAC: replaced in place, else appended). */
  private async syncFdb(p: PassState): Promise<void> {
    const fdbKey = (ifindex: number, mac: string, dst: string): string => `${ifindex}|${mac}|${dst}`;
    const vxlans = new Set([...this.byName.values()].filter((l) => l.kind === 'vxlan' && ownsLink(this.mark, l)).map((l) => l.index));
    const now = vxlans.size ? (await this.port.listFdb()).filter((e) => vxlans.has(e.ifindex) && e.self && e.dst && e.permanent) : [];
    const have = new Map(now.map((e) => [fdbKey(e.ifindex, e.mac, e.dst!), e]));
    const want = new Map<string, { ifindex: number; mac: string; dst: string }>();
    for (const f of p.d.fdb) {
      try {
        const e = { ifindex: p.ifindexOf(f.dev), mac: canonicalMac(f.mac), dst: f.dst };
        want.set(fdbKey(e.ifindex, e.mac, e.dst), e);
      } catch (e) {
        p.fail(`fdb ${f.mac} dst ${f.dst}`, e);
      }
    }
    this.vxlanIndex = p.vx?.index;
    this.wantedFdb = new Set(want.keys());
    const writes: Array<Promise<void>> = [];
    for (const [k, e] of want) {
      if (have.has(k)) {
        p.rep.unchanged++;
        continue;
      }
      const sameMac = now.filter((x) => x.ifindex === e.ifindex && x.mac === e.mac);
      const wantForMac = [...want.values()].filter((x) => x.ifindex === e.ifindex && x.mac === e.mac).length;
      if (sameMac.length === 1 && wantForMac === 1) {
        if (!p.synced) {
          p.rep.deferred++;
          continue;
        }
        writes.push(this.port.replaceFdb(e).then(() => void p.rep.fdb.replaced++, (x: unknown) => p.fail(`fdb replace ${e.mac}`, x)));
        have.delete(fdbKey(sameMac[0]!.ifindex, sameMac[0]!.mac, sameMac[0]!.dst!));
      } else {
        writes.push(this.port.appendFdb(e).then(() => void p.rep.fdb.added++, (x: unknown) => p.fail(`fdb append ${e.mac}`, x)));
      }
    }
    await Promise.all(writes);
    p.staleFdb = [...have].filter(([k]) => !want.has(k)).map(([, v]) => v);
  }

  /** Step 3b: permanent neighbours on every owned link (VXLAN device, endpoint veths). */
  private async syncNeighbours(p: PassState): Promise<void> {
    const neighKey = (ifindex: number, ip: string): string => `${ifindex}|${ip}`;
    const owned = new Set([...this.byName.values()].filter((l) => ownsLink(this.mark, l)).map((l) => l.index));
    const now: Neighbour[] = [];
    if (owned.size) {
      for (const f of this.families) for (const n of await this.port.listNeighbours(f)) if (owned.has(n.ifindex) && n.permanent) now.push(n);
    }
    const have = new Map(now.map((n) => [neighKey(n.ifindex, n.ip), n]));
    const want = new Map<string, { ifindex: number; ip: string; mac: string }>();
    for (const n of p.d.neighbours) {
      try {
        const ip = canonicalPrefix(n.ip).split('/')[0]!;
        const e = { ifindex: p.ifindexOf(n.dev), ip, mac: canonicalMac(n.mac) };
        want.set(neighKey(e.ifindex, e.ip), e);
      } catch (e) {
        p.fail(`neighbour ${n.ip}`, e);
      }
    }
    this.wantedNeigh = new Map([...want].map(([k, n]) => [k, n.mac]));
    const writes: Array<Promise<void>> = [];
    for (const [k, n] of want) {
      const had = have.get(k);
      if (had && had.mac === n.mac) {
        p.rep.unchanged++;
        continue;
      }
      if (had && !p.synced) {
        p.rep.deferred++;
        continue;
      }
      writes.push(
        this.port.replaceNeighbour(n).then(
          () => void (had ? p.rep.neighbours.replaced++ : p.rep.neighbours.added++),
          (x: unknown) => p.fail(`neighbour ${n.ip}`, x),
        ),
      );
    }
    await Promise.all(writes);
    p.staleNeigh = [...have].filter(([k]) => !want.has(k)).map(([, v]) => v);
  }

  /** Step 4 (full pass): read back every route of the table (every key is diffed after it). */
  private async readBackRoutes(p: PassState): Promise<void> {
    const installed = new Map<PrefixKey, Installed>();
    const foreign = new Set<PrefixKey>();
    const dumped: Route[][] = [];
    // Keys a kernel event told about while the dumps ran or were being read: the event is at
    // least as new as the dump for them, so it wins (their events marked them dirty if wanted).
    const touched = new Set<PrefixKey>();
    this.readBackTouched = touched;
    try {
      for (const f of this.families) dumped.push(await this.port.listRoutes(f, this.table));
      await this.readDumps(dumped, installed, foreign);
    } finally {
      this.readBackTouched = undefined;
    }
    for (const k of touched) {
      installed.delete(k);
      if (this.foreign.has(k)) foreign.add(k);
      else foreign.delete(k);
    }
    for (const [k, slot] of this.routes) if (!installed.has(k) && !touched.has(k)) this.setSlot(k, slot.want, undefined);
    for (const [k, have] of installed) this.setHave(k, have);
    this.foreign = foreign;
    this.deferredKeys.clear();
    this.sigs.clear();
    for (const v of installed.values()) if (typeof v === 'string') this.sigs.set(v, v);
  }

  /** The dumped routes into `installed` (ours) and `foreign`, a chunk per turn of the event loop. */
  private async readDumps(dumped: Route[][], installed: Map<PrefixKey, Installed>, foreign: Set<PrefixKey>): Promise<void> {
    let n = 0;
    for (const rs of dumped) {
      for (const r of rs) {
        if (++n % ROUTE_CHUNK === 0) await yieldToLoop();
        const k = this.keyOfRoute(r);
        // Ownership by protocol only: another owner's routes (and everyone else's) are foreign.
        if (r.protocol !== this.protocol) {
          foreign.add(k);
          continue;
        }
        const body = this.routes.get(k)?.want;
        let sig: Installed = r;
        if (body) {
          try {
            const want = this.resolveBody(body);
            if (routeMatches(want.route, r)) sig = want.sig;
          } catch {
            // reported when the key is considered below
          }
        }
        installed.set(k, sig);
      }
    }
  }

  /** Every key a full pass diffs: the desired ones, then ours in the kernel that are not desired. */
  private *allRouteKeys(): Generator<PrefixKey> {
    for (const [k, slot] of this.routes) if (slot.want) yield k;
    for (const [k, slot] of this.routes) if (!slot.want) yield k;
  }

  /**
   * Step 4: diff the keys (all of them, or the dirty ones) and apply the writes and deletions in
   * chunks of ROUTE_CHUNK keys, each awaited and followed by a turn of the event loop. A million
   * routes in one synchronous diff and one batch would hold the loop for seconds (BGP keepalives
   * and UPDATEs wait) and keep a million kernel Route objects alive at once; a chunk keeps both
   * small, and at most one chunk's datagrams are in the kernel's hands at a time. Keys changed while
   * a chunk is out are marked dirty and taken by the next pass.
   */
  private async applyRoutes(p: PassState, keys: Iterable<PrefixKey>): Promise<void> {
    let plan = newPlan();
    let n = 0;
    // Up to ROUTE_CHUNKS_IN_FLIGHT chunks out at once: the next one is diffed and encoded while the
    // kernel (on the writer thread) applies the previous one. Chunks hold distinct keys.
    const flights: Array<Promise<void>> = [];
    // A bulk write (more than a chunk of writes) mutes the echoes of our own routes and is followed
    // by a full read-back instead: the same knowledge for one dump rather than a million decoded
    // notifications on the event loop while BGP is busiest.
    let writes = 0;
    let muted = false;
    try {
      for (const k of keys) {
        const slot = this.routes.get(k);
        this.diffRoute(p, plan, k, slot?.want, slot?.have);
        if (++n % ROUTE_CHUNK !== 0) continue;
        writes += plan.write.length + plan.stale.length;
        if (!muted && writes >= ROUTE_CHUNK && this.port.muteRouteEvents) {
          this.port.muteRouteEvents(this.protocol, true);
          muted = true;
        }
        const flight = this.flushRoutes(p, plan);
        // Awaited below; marked handled now so that a failure before then is not an unhandled rejection.
        flight.catch(() => undefined);
        flights.push(flight);
        plan = newPlan();
        if (flights.length >= ROUTE_CHUNKS_IN_FLIGHT) await flights.shift();
        await yieldToLoop();
      }
      flights.push(this.flushRoutes(p, plan));
      await Promise.all(flights);
    } finally {
      if (muted) {
        this.port.muteRouteEvents?.(this.protocol, false);
        if (!this.stopped) this.armBulkResync();
      }
    }
  }

  /** One chunk: writes, then deletions (there are deletions only when the sources are in sync). */
  private async flushRoutes(p: PassState, plan: RoutePlan): Promise<void> {
    await this.writeRoutes(p, plan);
    await this.deleteRoutes(p, plan);
  }

  /** One key: unchanged, to write (add/replace), to delete, deferred, or a conflict. */
  private diffRoute(p: PassState, plan: RoutePlan, k: PrefixKey, body: DesiredRouteBody | undefined, have: Installed | undefined): void {
    const rep = p.rep;
    if (!body) {
      if (have === undefined) return;
      if (!p.synced) {
        rep.deferred++;
        this.deferredKeys.add(k);
        return;
      }
      plan.stale.push(this.selectorOf(k, have));
      plan.staleKeys.push(k);
      return;
    }
    let want: ResolvedBody;
    try {
      want = this.resolveBody(body);
    } catch (e) {
      p.fail(`route ${prefixText(k)}`, e);
      this.dirty.add(k);
      this.othersPending = true;
      return;
    }
    const sig = want.sig;
    if (have === sig || (typeof have === 'object' && routeMatches(want.route, have))) {
      if (have !== sig) this.setHave(k, sig);
      rep.unchanged++;
      return;
    }
    if (have === undefined && this.foreign.has(k)) {
      rep.conflicts.push(`route ${prefixText(k)} (table ${this.table}) is held by another protocol; not touched`);
      return;
    }
    if (have !== undefined && !p.synced) {
      rep.deferred++;
      this.deferredKeys.add(k);
      return;
    }
    plan.write.push(this.buildRoute(k, body));
    plan.writeKeys.push(k);
    plan.sigs.push(sig);
    plan.isReplace.push(have !== undefined);
  }

  /** Step 4 (apply): the routes go out as one batch (datagrams of ~140 routes, one ACK each). */
  private async writeRoutes(p: PassState, plan: RoutePlan): Promise<void> {
    const n = plan.write.length;
    if (!n) return;
    const failed = new Set<number>();
    for (const f of await this.sendWrites(plan)) {
      failed.add(f.index);
      p.fail(`route ${prefixText(plan.writeKeys[f.index]!)}`, f.error);
      this.dirty.add(plan.writeKeys[f.index]!);
    }
    for (let i = 0; i < n; i++) {
      if (failed.has(i)) continue;
      this.setHave(plan.writeKeys[i]!, plan.sigs[i]!);
      if (plan.isReplace[i]) p.rep.routes.replaced++;
      else p.rep.routes.added++;
    }
  }

  /**
   * The chunk's routes to the port, which encodes them into datagrams at once; the plan lets go
   * of the Route objects then. Held until the kernel's ACK, a million of them (with their prefix
   * text) would outlive two scavenges and end as old-space garbage — a few hundred MB of heap
   * growth at 1M routes for objects no longer needed.
   */
  private sendWrites(plan: RoutePlan): Promise<BatchFailure[]> {
    const routes = plan.write;
    plan.write = [];
    return this.port.replaceRoutes(routes);
  }

  /** Step 4 (deletions): our routes no longer desired (before any neighbour, FDB entry or link goes). */
  private async deleteRoutes(p: PassState, plan: RoutePlan): Promise<void> {
    const rep = p.rep;
    if (plan.stale.length) {
      const failed = new Set<number>();
      for (const f of await this.port.deleteRoutes(plan.stale)) {
        failed.add(f.index);
        if (gone(f.error)) {
          this.setHave(plan.staleKeys[f.index]!, undefined);
          continue;
        }
        p.fail(`delete route ${plan.stale[f.index]!.dst}`, f.error);
        this.dirty.add(plan.staleKeys[f.index]!);
      }
      for (let i = 0; i < plan.staleKeys.length; i++) if (!failed.has(i)) this.setHave(plan.staleKeys[i]!, undefined);
      rep.routes.deleted += plan.stale.length - failed.size;
    }
  }

  /** Step 5: the other deletions in reverse dependency order — neighbours, FDB entries, links. */
  private async deleteStale(p: PassState): Promise<void> {
    const rep = p.rep;
    const ignoreGone = (what: string) => (x: unknown) => {
      if (!gone(x)) p.fail(what, x);
    };
    await Promise.all(p.staleNeigh.map((n) => this.port.deleteNeighbour(n).then(() => void rep.neighbours.deleted++, ignoreGone(`delete neighbour ${n.ip}`))));
    await Promise.all(p.staleFdb.map((e) => this.port.deleteFdb(e).then(() => void rep.fdb.deleted++, ignoreGone(`delete fdb ${e.mac}`))));
    await Promise.all(p.staleLinks.map((l) => this.port.deleteLink(l.index).then(() => void rep.links.deleted++, ignoreGone(`delete link ${l.name}`))));
  }

  /** Step 6: totals, the log line, the bulk resync, retries, the report hook. */
  private finish(p: PassState): ReconcileReport {
    const rep = p.rep;
    this.totals.runs++;
    if (p.full) this.totals.fullRuns++;
    this.totals.writes += reportWrites(rep);
    this.totals.errors += rep.errors.length;
    this.totals.conflicts += rep.conflicts.length;
    this.lastReport = rep;
    this.vxlanLink = p.vx;
    const w = reportWrites(rep);
    if (w || rep.errors.length || rep.conflicts.length) {
      this.log.info({ owner: this.mark.owner, writes: w, ...rep, errors: rep.errors.slice(0, 10), conflicts: rep.conflicts.slice(0, 10) }, 'kernel reconciled');
    }
    // Bulk writes come back as as many notifications; some may have been dropped (the event socket
    // is overflow-safe, so silently): read everything back once the writing has calmed down.
    const routeWrites = rep.routes.added + rep.routes.replaced + rep.routes.deleted;
    if ((routeWrites >= (this.opts.bulkThreshold ?? 10_000) || this.bulkDue) && !this.stopped) {
      this.bulkDue = false;
      this.armBulkResync();
    }
    if (this.dirty.size && !this.stopped) this.schedule(rep.errors.length ? this.opts.retryMs ?? 1000 : undefined);
    else if (rep.errors.length && !this.stopped) this.schedule(this.opts.retryMs ?? 1000);
    try {
      this.opts.onReport?.(rep);
    } catch (e) {
      this.log.warn({ err: e }, 'reconcile report hook failed');
    }
    return rep;
  }

  /** A full pass `bulkQuietMs` after the last bulk write (each bulk write pushes it back). */
  private armBulkResync(): void {
    if (this.bulkTimer !== null) this.clock.clearTimer(this.bulkTimer);
    this.bulkTimer = this.clock.setTimer(() => {
      this.bulkTimer = null;
      // Still writing (a long chunked pass): not quiet yet. A full pass now would dump and diff
      // every route in the middle of the bulk; the pass re-arms this when it ends.
      if (this.running) {
        this.bulkDue = true;
        return;
      }
      this.resync();
    }, this.opts.bulkQuietMs ?? 2000);
  }

  private resolveHop(h: DesiredNextHop, ifindexOf: (dev: string) => number): NextHop {
    const nh: NextHop = {};
    if (h.gateway) {
      familyOf(h.gateway);
      nh.gateway = h.gateway;
    }
    if (h.dev) nh.ifindex = ifindexOf(h.dev);
    if (h.onlink) nh.onlink = true;
    if (h.weight !== undefined && h.weight !== 1) nh.weight = h.weight;
    return nh;
  }

  /** A kept link up, with the wanted MTU (the owner does not create it: its creator did). */
  private async ensureLinkUp(l: LinkInfo, mtu: number | undefined, rep: ReconcileReport): Promise<LinkInfo> {
    let link = l;
    if (mtu !== undefined && link.mtu !== mtu) {
      await this.port.setLinkMtu(link.index, mtu);
      link = { ...link, mtu };
      rep.links.replaced++;
    }
    if (!link.up) {
      await this.port.setLinkUp(link.index);
      link = { ...link, up: true };
      rep.links.replaced++;
    }
    return link;
  }

  private async ensureVxlan(v: DesiredVxlan, byName: Map<string, LinkInfo>, rep: ReconcileReport, synced: boolean): Promise<LinkInfo> {
    const underlayIndex = v.underlay ? byName.get(v.underlay)?.index : undefined;
    if (v.underlay && underlayIndex === undefined) throw new Error(`underlay device ${v.underlay} does not exist`);
    const spec = { name: v.name, vni: v.vni, port: v.port, local: v.local, mtu: v.mtu, ...(underlayIndex ? { underlayIndex } : {}), ...(v.mac ? { mac: canonicalMac(v.mac) } : {}) };
    let link = byName.get(v.name);
    const compatible = (l: LinkInfo): boolean =>
      l.kind === 'vxlan' &&
      !!l.vxlan &&
      l.vxlan.vni === v.vni &&
      l.vxlan.port === v.port &&
      l.vxlan.local === v.local &&
      !l.vxlan.learning &&
      (underlayIndex === undefined || l.vxlan.link === underlayIndex) &&
      (!spec.mac || l.mac === spec.mac);
    if (link && !compatible(link)) {
      if (!synced) {
        rep.deferred++;
        return link;
      }
      // VNI, port, local address and learning cannot all be changed in place: recreate.
      await this.port.deleteLink(link.index);
      link = undefined;
      rep.links.replaced++;
    }
    if (!link) {
      link = await this.port.createVxlan(spec);
      if (rep.links.replaced === 0) rep.links.added++;
    }
    return this.ensureLinkUp(link, v.mtu, rep);
  }
}
