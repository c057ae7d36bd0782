// Kernel reconciler: desired state vs read-back state per object kind (the VXLAN link, FDB entries,
// permanent neighbours, routes), minimal delta applied with replace semantics through the
// KernelPort. Ownership is marked, never guessed: routes by rtm_protocol in nrd's table, links by
// interface name prefix, neighbour and FDB entries by living on an owned link.
// Kernel interfaces: rtnetlink via KernelPort (RTM_*ROUTE, RTM_*LINK, RTM_*NEIGH incl. AF_BRIDGE).
//
// Rules (DESIGN.md invariants 1, 2, 6):
// - Until the sources report synced, a run only adds what is missing: it neither replaces nor deletes
//   what a previous nrd left in the kernel, which keeps forwarding meanwhile. A restart with the same
//   desired state therefore writes nothing, and a half-known desired state cannot disturb traffic.
// - FDB entries, then neighbours, go in before the routes that need them; routes come out before
//   their neighbours and FDB entries.
// - A foreign route with the same table/prefix/metric as a desired one is never replaced (an IPv4
//   NLM_F_REPLACE would take it over whatever its protocol): it is reported as a conflict.
import type { Logger } from '../lib/log.js';
import { canonicalMac, canonicalPrefix, familyOf, parsePrefix, type Family } from './addr.js';
import {
  NRD_PROTOCOL,
  RT_TABLE_MAIN,
  defaultMetric,
  isKernelError,
  routeKey,
  type FdbEntry,
  type KernelEvent,
  type KernelPort,
  type LinkInfo,
  type NextHop,
  type Route,
  type Subscription,
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

export interface DesiredState {
  vxlan?: DesiredVxlan;
  fdb: DesiredFdb[];
  neighbours: DesiredNeighbour[];
  routes: DesiredRoute[];
}

export const emptyDesired = (): DesiredState => ({ fdb: [], neighbours: [], routes: [] });

export interface Clock {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => {
    const t = setTimeout(fn, ms);
    t.unref?.();
    return t;
  },
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface ReconcilerOptions {
  protocol?: number;
  table?: number;
  /** Every link nrd owns starts with this (default 'nrd'). */
  linkPrefix?: string;
  families?: Family[];
  /** Periodic full resync (default 60 s; 0 = off). */
  resyncIntervalMs?: number;
  /** Coalesce bursts of triggers (default 10 ms). */
  debounceMs?: number;
  /** Retry after a failed run (default 1000 ms). */
  retryMs?: number;
  log: Logger;
  clock?: Clock;
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

export class Reconciler {
  private readonly protocol: number;
  private readonly table: number;
  private readonly linkPrefix: string;
  private readonly families: Family[];
  private readonly clock: Clock;
  private readonly log: Logger;
  private desired: DesiredState = emptyDesired();
  private synced = false;
  private running: Promise<ReconcileReport> | null = null;
  private rerun = false;
  private timer: unknown = null;
  private periodic: unknown = null;
  private sub: Subscription | null = null;
  private stopped = true;
  /** Desired routes by key, with devices resolved at the last run: lets events be judged cheaply. */
  private wanted = new Map<string, Route>();
  private vxlanName: string | undefined;
  /** The VXLAN device's index and the FDB/neighbour entries wanted on it at the last run. */
  private vxlanIndex: number | undefined;
  private wantedNeigh = new Map<string, string>();
  private wantedFdb = new Set<string>();
  readonly totals = { runs: 0, writes: 0, errors: 0, conflicts: 0 };
  lastReport: ReconcileReport | null = null;
  /** The VXLAN device as the last run left it (undefined: none wanted, or it could not be made). */
  vxlanLink: LinkInfo | undefined;

  constructor(
    private readonly port: KernelPort,
    private readonly opts: ReconcilerOptions,
  ) {
    this.protocol = opts.protocol ?? NRD_PROTOCOL;
    this.table = opts.table ?? RT_TABLE_MAIN;
    this.linkPrefix = opts.linkPrefix ?? 'nrd';
    this.families = opts.families ?? [4, 6];
    this.clock = opts.clock ?? systemClock;
    this.log = opts.log;
  }

  /** Replace the desired state and schedule a run. */
  setDesired(d: DesiredState): void {
    if (d.vxlan && !d.vxlan.name.startsWith(this.linkPrefix)) {
      throw new Error(`vxlan device ${d.vxlan.name} does not start with the owned prefix ${this.linkPrefix}`);
    }
    this.desired = d;
    this.schedule();
  }

  /** The sources (etcd, BGP) report whether they are in sync; deletions wait for it. */
  setSynced(synced: boolean): void {
    const was = this.synced;
    this.synced = synced;
    if (synced && !was) this.schedule();
  }

  /** Subscribe to kernel changes, run a full resync, and keep resyncing periodically. */
  async start(): Promise<ReconcileReport> {
    this.stopped = false;
    this.sub = this.port.subscribe((e) => this.onEvent(e));
    const iv = this.opts.resyncIntervalMs ?? 60_000;
    if (iv > 0) {
      const tick = (): void => {
        if (this.stopped) return;
        this.schedule(0);
        this.periodic = this.clock.setTimeout(tick, iv);
      };
      this.periodic = this.clock.setTimeout(tick, iv);
    }
    return this.runNow();
  }

  stop(): void {
    this.stopped = true;
    this.sub?.close();
    this.sub = null;
    if (this.timer !== null) this.clock.clearTimeout(this.timer);
    if (this.periodic !== null) this.clock.clearTimeout(this.periodic);
    this.timer = this.periodic = null;
  }

  /** Run soon (coalescing bursts). */
  schedule(delayMs = this.opts.debounceMs ?? 10): void {
    if (this.stopped) return;
    if (this.running) {
      this.rerun = true;
      return;
    }
    if (this.timer !== null) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      void this.runNow().catch((e: unknown) => this.log.error({ err: e }, 'reconcile run failed'));
    }, delayMs);
  }

  /** Wait for any in-flight run, then run once more; resolves with that run's report. */
  async runNow(): Promise<ReconcileReport> {
    while (this.running) await this.running.catch(() => undefined);
    this.running = this.runOnce();
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
      this.schedule();
      return;
    }
    if (e.kind === 'link') {
      if (this.vxlanName && e.link.name === this.vxlanName) {
        const v = this.desired.vxlan;
        if (e.op === 'del' || !v || !e.link.up || e.link.mtu !== v.mtu) this.schedule();
      }
      return;
    }
    if (e.kind === 'neigh') {
      // A wanted permanent neighbour on our VXLAN device removed or changed by hand: put it back
      // now rather than at the next periodic resync (traffic over VXLAN to that node depends on it).
      const n = e.neighbour;
      if (n.ifindex !== this.vxlanIndex) return;
      const mac = this.wantedNeigh.get(`${n.ifindex}|${n.ip}`);
      if (mac === undefined) return;
      if (e.op === 'del' || !n.permanent || n.mac !== mac) this.schedule();
      return;
    }
    if (e.kind === 'fdb') {
      const f = e.fdb;
      if (f.ifindex !== this.vxlanIndex || e.op !== 'del' || !f.dst) return;
      if (this.wantedFdb.has(`${f.ifindex}|${f.mac}|${f.dst}`)) this.schedule();
      return;
    }
    const r = e.route;
    if (r.table !== this.table) return;
    const key = routeKey(r);
    const want = this.wanted.get(key);
    if (e.op === 'del') {
      // Ours deleted by someone else (or a foreign route freed the key): put back what we want.
      if (want && r.protocol === this.protocol) this.schedule();
      return;
    }
    if (r.protocol === this.protocol ? !want || !routeMatches(want, r) : want !== undefined) this.schedule();
  }

  /** One full pass: read back, diff, write. Never throws for a single object's failure. */
  async runOnce(): Promise<ReconcileReport> {
    const rep: ReconcileReport = {
      links: counts(),
      fdb: counts(),
      neighbours: counts(),
      routes: counts(),
      unchanged: 0,
      deferred: 0,
      conflicts: [],
      errors: [],
    };
    const d = this.desired;
    const synced = this.synced;
    const fail = (what: string, e: unknown): void => {
      rep.errors.push(`${what}: ${e instanceof Error ? e.message : String(e)}`);
    };

    let vx: LinkInfo | undefined;
    try {
      // ---- links
      const links = await this.port.listLinks();
      const byName = new Map<string, LinkInfo>(links.map((l) => [l.name, l]));
      if (d.vxlan) {
        this.vxlanName = d.vxlan.name;
        vx = await this.ensureVxlan(d.vxlan, byName, rep, synced).catch((e: unknown) => {
          fail(`vxlan ${d.vxlan!.name}`, e);
          return undefined;
        });
        if (vx) byName.set(vx.name, vx);
      }
      const owned = (name: string): boolean => name.startsWith(this.linkPrefix);

      // Resolve a desired device name; a missing device makes the object unprogrammable this run.
      const ifindexOf = (dev: string): number => {
        const l = byName.get(dev);
        if (!l) throw new Error(`device ${dev} does not exist`);
        return l.index;
      };

      // ---- FDB and neighbours on owned links
      const ownedVxlans = [...byName.values()].filter((l) => owned(l.name) && l.kind === 'vxlan');
      const fdbNow: FdbEntry[] = [];
      const neighNow: Array<{ ifindex: number; ip: string; mac?: string; family: Family }> = [];
      if (ownedVxlans.length) {
        const allFdb = await this.port.listFdb();
        const idx = new Set(ownedVxlans.map((l) => l.index));
        for (const e of allFdb) if (idx.has(e.ifindex) && e.self && e.dst && e.permanent) fdbNow.push(e);
        for (const f of this.families) {
          for (const n of await this.port.listNeighbours(f)) if (idx.has(n.ifindex) && n.permanent) neighNow.push(n);
        }
      }

      const fdbKey = (ifindex: number, mac: string, dst: string): string => `${ifindex}|${mac}|${dst}`;
      const fdbHave = new Map(fdbNow.map((e) => [fdbKey(e.ifindex, e.mac, e.dst!), e]));
      const fdbWant = new Map<string, { ifindex: number; mac: string; dst: string }>();
      for (const f of d.fdb) {
        try {
          const e = { ifindex: ifindexOf(f.dev), mac: canonicalMac(f.mac), dst: f.dst };
          fdbWant.set(fdbKey(e.ifindex, e.mac, e.dst), e);
        } catch (e) {
          fail(`fdb ${f.mac} dst ${f.dst}`, e);
        }
      }
      this.vxlanIndex = vx?.index;
      this.wantedFdb = new Set(fdbWant.keys());
      const writes: Array<Promise<void>> = [];
      for (const [k, e] of fdbWant) {
        if (fdbHave.has(k)) {
          rep.unchanged++;
          continue;
        }
        // One dst per MAC is what nrd wants: a MAC present with another dst is replaced in place,
        // a new MAC is appended (append also works when other MACs share the device).
        const sameMac = fdbNow.filter((x) => x.ifindex === e.ifindex && x.mac === e.mac);
        const wantForMac = [...fdbWant.values()].filter((x) => x.ifindex === e.ifindex && x.mac === e.mac).length;
        if (sameMac.length === 1 && wantForMac === 1) {
          if (!synced) {
            rep.deferred++;
            continue;
          }
          writes.push(this.port.replaceFdb(e).then(() => void rep.fdb.replaced++, (x: unknown) => fail(`fdb replace ${e.mac}`, x)));
          fdbHave.delete(fdbKey(sameMac[0]!.ifindex, sameMac[0]!.mac, sameMac[0]!.dst!));
        } else {
          writes.push(this.port.appendFdb(e).then(() => void rep.fdb.added++, (x: unknown) => fail(`fdb append ${e.mac}`, x)));
        }
      }
      await Promise.all(writes.splice(0));

      const neighKey = (ifindex: number, ip: string): string => `${ifindex}|${ip}`;
      const neighHave = new Map(neighNow.map((n) => [neighKey(n.ifindex, n.ip), n]));
      const neighWant = new Map<string, { ifindex: number; ip: string; mac: string }>();
      for (const n of d.neighbours) {
        try {
          const ip = canonicalPrefix(n.ip).split('/')[0]!;
          const e = { ifindex: ifindexOf(n.dev), ip, mac: canonicalMac(n.mac) };
          neighWant.set(neighKey(e.ifindex, e.ip), e);
        } catch (e) {
          fail(`neighbour ${n.ip}`, e);
        }
      }
      this.wantedNeigh = new Map([...neighWant].map(([k, n]) => [k, n.mac]));
      for (const [k, n] of neighWant) {
        const have = neighHave.get(k);
        if (have && have.mac === n.mac) {
          rep.unchanged++;
          continue;
        }
        if (have && !synced) {
          rep.deferred++;
          continue;
        }
        writes.push(
          this.port.replaceNeighbour(n).then(
            () => void (have ? rep.neighbours.replaced++ : rep.neighbours.added++),
            (x: unknown) => fail(`neighbour ${n.ip}`, x),
          ),
        );
      }
      await Promise.all(writes.splice(0));

      // ---- routes
      const wanted = new Map<string, Route>();
      for (const r of d.routes) {
        try {
          const dst = canonicalPrefix(r.dst);
          const family = parsePrefix(dst).family;
          if (!this.families.includes(family)) continue;
          const route: Route = {
            family,
            dst,
            table: this.table,
            protocol: this.protocol,
            type: r.type,
            metric: defaultMetric(family),
            nextHops: r.type === 'unicast' ? r.nextHops.map((h) => this.resolveHop(h, ifindexOf)) : [],
          };
          if (r.mtu !== undefined) route.mtu = r.mtu;
          if (r.type === 'unicast' && route.nextHops.length === 0) throw new Error('unicast route without next hop');
          wanted.set(routeKey(route), route);
        } catch (e) {
          fail(`route ${r.dst}`, e);
        }
      }
      this.wanted = wanted;
      const ownedRoutes = new Map<string, Route>();
      const foreignKeys = new Set<string>();
      for (const f of this.families) {
        for (const r of await this.port.listRoutes(f, this.table)) {
          if (r.protocol === this.protocol) ownedRoutes.set(routeKey(r), r);
          else foreignKeys.add(routeKey(r));
        }
      }
      // Routes go out as one batch (large datagrams, one ACK each): a 100k-route table is one call.
      const toWrite: Route[] = [];
      const isReplace: boolean[] = [];
      for (const [k, r] of wanted) {
        const have = ownedRoutes.get(k);
        if (have && routeMatches(r, have)) {
          rep.unchanged++;
          continue;
        }
        if (!have && foreignKeys.has(k)) {
          rep.conflicts.push(`route ${r.dst} (table ${r.table}) is held by another protocol; not touched`);
          continue;
        }
        if (have && !synced) {
          rep.deferred++;
          continue;
        }
        toWrite.push(r);
        isReplace.push(have !== undefined);
      }
      if (toWrite.length) {
        const failed = new Set<number>();
        for (const f of await this.port.replaceRoutes(toWrite)) {
          failed.add(f.index);
          fail(`route ${toWrite[f.index]!.dst}`, f.error);
        }
        for (let i = 0; i < toWrite.length; i++) {
          if (failed.has(i)) continue;
          if (isReplace[i]) rep.routes.replaced++;
          else rep.routes.added++;
        }
      }

      // ---- deletions, in reverse dependency order; only once the sources are in sync
      const stale = <T>(items: Iterable<[string, T]>, want: Map<string, unknown>): T[] => [...items].filter(([k]) => !want.has(k)).map(([, v]) => v);
      const staleRoutes = stale(ownedRoutes, wanted);
      const staleNeigh = stale(neighHave, neighWant);
      const staleFdb = stale(fdbHave, fdbWant);
      const staleLinks = links.filter((l) => owned(l.name) && l.kind === 'vxlan' && l.name !== d.vxlan?.name);
      if (!synced) {
        rep.deferred += staleRoutes.length + staleNeigh.length + staleFdb.length + staleLinks.length;
      } else {
        const ignoreGone = (what: string) => (x: unknown) => {
          if (!isKernelError(x, 'ESRCH') && !isKernelError(x, 'ENOENT')) fail(what, x);
        };
        if (staleRoutes.length) {
          const failed = new Set<number>();
          for (const f of await this.port.deleteRoutes(staleRoutes)) {
            failed.add(f.index);
            ignoreGone(`delete route ${staleRoutes[f.index]!.dst}`)(f.error);
          }
          rep.routes.deleted += staleRoutes.length - failed.size;
        }
        for (const n of staleNeigh) {
          writes.push(this.port.deleteNeighbour(n).then(() => void rep.neighbours.deleted++, ignoreGone(`delete neighbour ${n.ip}`)));
        }
        await Promise.all(writes.splice(0));
        for (const e of staleFdb) {
          writes.push(this.port.deleteFdb(e).then(() => void rep.fdb.deleted++, ignoreGone(`delete fdb ${e.mac}`)));
        }
        await Promise.all(writes.splice(0));
        for (const l of staleLinks) {
          writes.push(this.port.deleteLink(l.index).then(() => void rep.links.deleted++, ignoreGone(`delete link ${l.name}`)));
        }
        await Promise.all(writes.splice(0));
      }
    } catch (e) {
      // A failed read-back (a dump interrupted too often, ENOBUFS): report it and retry.
      fail('kernel', e);
    }

    this.totals.runs++;
    this.totals.writes += reportWrites(rep);
    this.totals.errors += rep.errors.length;
    this.totals.conflicts += rep.conflicts.length;
    this.lastReport = rep;
    this.vxlanLink = vx;
    const w = reportWrites(rep);
    if (w || rep.errors.length || rep.conflicts.length) {
      this.log.info({ writes: w, ...rep, errors: rep.errors.slice(0, 10), conflicts: rep.conflicts.slice(0, 10) }, 'kernel reconciled');
    }
    if (rep.errors.length && !this.stopped) this.schedule(this.opts.retryMs ?? 1000);
    try {
      this.opts.onReport?.(rep);
    } catch (e) {
      this.log.warn({ err: e }, 'reconcile report hook failed');
    }
    return rep;
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
    if (link.mtu !== v.mtu) {
      await this.port.setLinkMtu(link.index, v.mtu);
      link = { ...link, mtu: v.mtu };
      rep.links.replaced++;
    }
    if (!link.up) {
      await this.port.setLinkUp(link.index);
      link = { ...link, up: true };
      rep.links.replaced++;
    }
    return link;
  }
}
