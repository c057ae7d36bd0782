// The routing subsystem of the daemon: builds the Router over the shared KernelPort (made once in
// main.ts; routing's objects carry its own mark, kernel/owners.ts) from the site config (routing.*,
// node.interface/address/podCIDRs), takes remote nodes, own CIDRs and the BGP change set as
// level-triggered typed inputs, answers the typed routes query (served as GET /v1/routes by
// daemon/api/routing-routes.ts) and nrd_route…/nrd_kernel… metrics,
// reports readiness naming the failing kernel objects, and applies routing.* reloads in place (the
// reconciler writes only routes whose path really changes). Kernel interfaces: rtnetlink through
// KernelPort (routes, VXLAN link RFC 7348, neighbours, FDB), /proc/sys.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ConfigChange, NrdConfig } from '../config/index.js';
import type { Subsystem, SubsystemContext } from '../lib/subsystem.js';
import type { Logger } from '../lib/log.js';
import type { ReadinessReporter } from '../lib/health.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { InstrumentedPort } from '../kernel/instrumented-port.js';
import type { ReconcileReport, ReconcilerOptions } from '../kernel/reconciler.js';
import type { KernelPort } from '../kernel/types.js';
import { Router, type NodeRejectReason, type RefuseReason } from './router.js';
import type { RouteEntryView, RoutesApiResponse } from './api-types.js';
import { DIRECT_DOWN } from './path.js';
import { DirectNodes, type DirectNode } from './direct-nodes.js';
import { PATH_MODES, bgpRouteOf, type BgpChange, type BgpRoute, type PathMode, type PathSwitch, type RemoteNode, type RoutingOptions } from './types.js';

const RETRY_MS = 5_000;
const DEFAULT_LIMIT = 10_000;
const MODES = PATH_MODES;

/** What the routes query selects: prefixes of one mode (or all), at most `limit` of them. */
export interface RoutesQuery {
  mode?: PathMode;
  limit?: number;
}

/** Router options from the (resolved, frozen) site config; `ownCidrs` from node.podCIDRs. */
export function routingOptionsFromConfig(c: NrdConfig): RoutingOptions {
  const o: RoutingOptions = {
    mode: c.routing.mode,
    vxlan: { vni: c.routing.vxlan.vni, port: c.routing.vxlan.port, device: c.routing.vxlan.device, mtu: c.routing.vxlan.mtu },
    underlayInterface: c.node.interface,
    ownCidrs: [...c.node.podCIDRs],
    holdDownMs: c.routing.failoverHoldDown * 1000,
  };
  if (c.node.address) o.underlayAddress = c.node.address;
  return o;
}

/** Config keys whose change concerns routing and can be applied in place. */
const LIVE_KEYS = /^(routing\.(mode|failoverHoldDown|vxlan\.)|node\.(interface|address|podCIDRs))/;

export interface RoutingSubsystemDeps {
  metrics: Registry;
  /** The one kernel port of the daemon (main.ts makes it; tests pass the fake). */
  port: KernelPort;
  clock?: Clock;
  /** Reconciler knobs not in the site file (resync interval, debounce; tests shorten them). */
  reconciler?: Partial<Omit<ReconcilerOptions, 'log' | 'clock' | 'protocol' | 'onReport'>>;
  /** Retry of a failed start (underlay missing), ms. */
  retryMs?: number;
}

interface Metrics {
  switches: Counter<'from' | 'to'>;
  writes: Counter<'op' | 'result'>;
  runs: Counter<string>;
  rejectedNodes: Counter<'reason'>;
  refusedPrefixes: Counter<'reason'>;
}

export class RoutingSubsystem implements Subsystem {
  readonly name = 'routing';
  private log: Logger | undefined;
  private ready: ReadinessReporter | undefined;
  private config: NrdConfig | undefined;
  private port: KernelPort | undefined;
  private core: Router | undefined;
  private started = false;
  private startError: string | undefined;
  private retry: ReturnType<typeof setTimeout> | undefined;
  private readonly clock: Clock;
  private readonly metrics: Metrics;
  // Inputs that may arrive before start (kept, then handed to the Router when it exists).
  private nodes: { list: readonly RemoteNode[]; synced: boolean } | undefined;
  private bgp = new Map<string, string[]>();
  private bgpSynced: boolean | undefined;
  private ownCidrs: readonly string[] | undefined;
  private mac: string | undefined;
  private readonly macListeners = new Set<(mac: string) => void>();
  // Direct-path liveness (routing.bfd): the nodes a direct path reaches, and the underlay
  // addresses whose direct path BFD reports failed (DIRECT_DOWN of path.ts holds them).
  private lastNodes: readonly RemoteNode[] = [];
  private lastNodesSynced = false;
  private direct: DirectNodes | undefined;
  private readonly directListeners = new Set<(nodes: readonly DirectNode[]) => void>();
  private readonly directDown = new Set<string>();

  constructor(private readonly deps: RoutingSubsystemDeps) {
    this.clock = deps.clock ?? systemClock;
    this.metrics = this.createMetrics(deps.metrics);
  }

  // ---- hooks for daemon/main.ts

  /** This node's own CIDRs (the state store's claims); overrides node.podCIDRs of the config. */
  setOwnCidrs(cidrs: readonly string[]): void {
    this.ownCidrs = [...cidrs];
    this.core?.setOwnCidrs(cidrs);
  }

  /** Full snapshot of the remote nodes; `synced` once the store's initial list is complete. */
  setNodes(nodes: readonly RemoteNode[], synced: boolean): void {
    this.lastNodes = nodes;
    this.lastNodesSynced ||= synced;
    this.direct?.setNodes(nodes);
    if (this.core) this.core.setNodes(nodes, synced);
    else this.nodes = { list: nodes, synced: synced || !!this.nodes?.synced };
  }

  /** Full snapshot of the Loc-RIB best paths (replaces every earlier BGP input). */
  setBgpRoutes(routes: readonly BgpRoute[], synced: boolean): void {
    if (this.core) {
      this.core.setBgpRoutes(routes, synced);
      return;
    }
    this.bgp = new Map(routes.filter((r) => r.nextHops.length).map((r) => [r.prefix, [...r.nextHops]]));
    if (synced) this.bgpSynced = true;
  }

  /** One Loc-RIB change: the prefix's next hops now (empty: withdrawn). */
  applyBgpChange(r: BgpRoute): void {
    if (this.core) {
      this.core.applyBgpChange(r);
      return;
    }
    if (r.nextHops.length) this.bgp.set(r.prefix, [...r.nextHops]);
    else this.bgp.delete(r.prefix);
  }

  /** One batch of the BGP speaker's change set (best path and ECMP set per prefix). */
  applyBgpChanges(changes: readonly BgpChange[]): void {
    for (const c of changes) this.applyBgpChange(bgpRouteOf(c));
  }

  /** BGP reports its initial table transfer complete (End-of-RIB from every peer) or lost. */
  setBgpSynced(synced: boolean): void {
    this.bgpSynced = synced;
    this.core?.setBgpSynced(synced);
  }

  /** This node's VTEP MAC as the kernel has it, once the VXLAN device exists. */
  vtepMac(): string | undefined {
    return this.mac;
  }

  /** Called with the VTEP MAC when it becomes known or changes (at once if already known). */
  onVtepMac(cb: (mac: string) => void): () => void {
    this.macListeners.add(cb);
    if (this.mac) cb(this.mac);
    return () => this.macListeners.delete(cb);
  }

  /** Called with the nodes a direct path reaches whenever that set changes (at once if known). */
  onDirectNodes(cb: (nodes: readonly DirectNode[]) => void): () => void {
    this.directListeners.add(cb);
    if (this.direct) cb(this.direct.list());
    return () => this.directListeners.delete(cb);
  }

  /**
   * A liveness check (BFD) reports the direct path to the node at `underlay` failed (`down`) or
   * working again. Failed: its CIDRs leave the direct path at once (VXLAN); working: they come
   * back after routing.failoverHoldDown, as after any failover.
   */
  setDirectDown(underlay: string, down: boolean): void {
    if (down === this.directDown.has(underlay)) return;
    if (down) {
      this.directDown.add(underlay);
      DIRECT_DOWN.add(underlay);
    } else {
      this.directDown.delete(underlay);
      DIRECT_DOWN.delete(underlay);
    }
    this.log?.warn({ underlay, directPath: down ? 'down' : 'up' }, down ? 'direct path reported down: moving to VXLAN' : 'direct path reported up again');
    // Only that node's CIDRs are evaluated again, by the usual rules (a worse path at once, a
    // better one after the hold-down): the Router re-evaluates the CIDRs whose node record changed,
    // so it gets the node list without the node and with it again in the same tick, which it
    // coalesces into one evaluation of those CIDRs (with the node present: no route is withdrawn).
    // A full re-evaluation would cost every prefix (7 s at 1M BGP routes on a loaded machine).
    const core = this.core;
    if (!core || !this.lastNodes.some((n) => n.underlay === underlay)) return;
    core.setNodes(
      this.lastNodes.filter((n) => n.underlay !== underlay),
      this.lastNodesSynced,
    );
    core.setNodes(this.lastNodes, this.lastNodesSynced);
  }

  /** The Router (tests and the API). */
  get router(): Router | undefined {
    return this.core;
  }

  // ---- lifecycle

  async start(ctx: SubsystemContext): Promise<void> {
    this.log = ctx.log;
    this.ready = ctx.ready;
    this.config = ctx.config;
    this.port = new InstrumentedPort(this.deps.port, (op, result, n) => this.metrics.writes.inc({ op, result }, n));
    const opts = routingOptionsFromConfig(ctx.config);
    if (this.ownCidrs) opts.ownCidrs = [...this.ownCidrs];
    const core = new Router(this.port, opts, {
      log: ctx.log,
      clock: this.clock,
      reconciler: { ...this.deps.reconciler, protocol: ctx.config.routing.routeProtocol, onReport: (r) => this.onReport(r) },
      onSwitch: (s) => this.onSwitch(s),
      onRejectedNode: (reason: NodeRejectReason) => this.metrics.rejectedNodes.inc({ reason }),
      onRefusedPrefix: (reason: RefuseReason) => this.metrics.refusedPrefixes.inc({ reason }),
    });
    this.core = core;
    if (this.nodes) core.setNodes(this.nodes.list, this.nodes.synced);
    if (this.bgp.size || this.bgpSynced !== undefined) {
      core.setBgpRoutes(
        [...this.bgp].map(([prefix, nextHops]) => ({ prefix, nextHops })),
        this.bgpSynced ?? false,
      );
    }
    this.nodes = undefined;
    this.bgp = new Map();
    await this.attempt();
  }

  /** Start the Router; an underlay that is not there yet is retried, it does not stop nrd. */
  private async attempt(): Promise<void> {
    this.retry = undefined;
    const core = this.core;
    if (!core || this.started) return;
    try {
      await core.start();
      this.started = true;
      this.startError = undefined;
      if (!this.direct) {
        const d = new DirectNodes(this.port!, () => core.underlayInfo()?.interface ?? null, (nodes) => {
          // A node no longer reached directly has no direct path to be down.
          const still = new Set(nodes.map((n) => n.address));
          for (const a of [...this.directDown]) if (!still.has(a)) this.setDirectDown(a, false);
          for (const cb of [...this.directListeners]) cb(nodes);
        }, this.log!);
        this.direct = d;
        d.setNodes(this.lastNodes);
        await d.start();
      }
      this.log?.info({ mode: core.options.mode, underlay: core.underlayInfo() }, 'routing started');
    } catch (err) {
      this.startError = (err as Error).message;
      this.log?.warn({ err }, 'routing not started; retrying');
      this.ready?.({ ready: false, reason: `routing: ${this.startError}` });
      this.retry = setTimeout(() => void this.attempt(), this.deps.retryMs ?? RETRY_MS);
      this.retry.unref?.();
      return;
    }
    this.report();
  }

  async reload(changes: readonly ConfigChange[], next: NrdConfig): Promise<void> {
    const keys = changes.map((c) => c.key);
    if (keys.includes('routing.routeProtocol') && next.routing.routeProtocol !== this.config?.routing.routeProtocol) {
      // The protocol is how nrd recognises its routes: changing it live would orphan every route.
      throw new Error('routing.routeProtocol cannot change while nrd runs (its routes are recognised by it); restart nrd to apply it');
    }
    this.config = next;
    // Without routing.bfd nothing reports a direct path up again: forget what it reported down.
    if (!next.routing.bfd.enabled) for (const a of [...this.directDown]) this.setDirectDown(a, false);
    if (!keys.some((k) => LIVE_KEYS.test(k))) return;
    const core = this.core;
    if (!core) return;
    const o = routingOptionsFromConfig(next);
    const upd: Partial<Omit<RoutingOptions, 'ownCidrs'>> = { mode: o.mode, holdDownMs: o.holdDownMs, vxlan: o.vxlan, underlayInterface: o.underlayInterface };
    upd.underlayAddress = o.underlayAddress;
    await core.updateOptions(upd);
    // node.podCIDRs applies only while the state store has not told us our CIDRs.
    if (!this.ownCidrs && keys.some((k) => k.startsWith('node.podCIDRs'))) core.setOwnCidrs(next.node.podCIDRs);
    await this.direct?.refresh();
    if (!this.started) {
      if (this.retry) clearTimeout(this.retry);
      await this.attempt();
    }
    this.log?.info({ changes: keys.filter((k) => LIVE_KEYS.test(k)) }, 'routing options applied');
  }

  stop(): void {
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    // Routes, the VXLAN device, neighbours and FDB entries stay: the next start reconciles from them.
    this.direct?.close();
    this.direct = undefined;
    for (const a of this.directDown) DIRECT_DOWN.delete(a);
    this.directDown.clear();
    this.core?.stop();
    this.started = false;
    // The port is main.ts's: other owners use it too.
  }

  status(): unknown {
    const core = this.core;
    const rep = core?.reconciler.lastReport;
    return {
      started: this.started,
      lastError: this.startError ?? null,
      mode: core?.options.mode ?? this.config?.routing.mode ?? null,
      underlay: core?.underlayInfo() ?? null,
      vxlan: { device: core?.options.vxlan.device ?? null, mac: this.mac ?? null },
      routes: this.counts(),
      switches: core ? Object.fromEntries(core.switches) : {},
      rejectedNodes: core?.rejectedNodes() ?? {},
      refusedPrefixes: core?.refused.size ?? 0,
      directNodes: this.direct?.list() ?? [],
      directDown: [...this.directDown],
      reconcile: core
        ? {
            ...core.reconciler.totals,
            last: rep ? { unchanged: rep.unchanged, deferred: rep.deferred, errors: rep.errors.slice(0, 10), conflicts: rep.conflicts.slice(0, 10) } : null,
          }
        : null,
    };
  }

  // ---- internals

  private onReport(r: ReconcileReport): void {
    this.metrics.runs.inc();
    const link = this.core?.reconciler.vxlanLink;
    if (link?.mac && link.mac !== this.mac) {
      this.mac = link.mac;
      for (const cb of [...this.macListeners]) {
        try {
          cb(link.mac);
        } catch (err) {
          this.log?.warn({ err }, 'VTEP MAC listener failed');
        }
      }
    }
    if (this.started) this.report(r);
  }

  private onSwitch(s: PathSwitch): void {
    this.metrics.switches.inc({ from: s.from, to: s.to });
  }

  /** Readiness: the VXLAN device exists and the last reconcile left no object failing. */
  private report(r: ReconcileReport | null | undefined = this.core?.reconciler.lastReport): void {
    const core = this.core;
    if (!core || !this.ready) return;
    const dev = core.options.vxlan.device;
    if (!r) {
      this.ready({ ready: false, reason: 'first kernel reconcile has not run yet' });
      return;
    }
    const link = core.reconciler.vxlanLink;
    const detail = { routes: this.counts(), ...(r.conflicts.length ? { conflicts: r.conflicts.slice(0, 20) } : {}) };
    if (!link) {
      const why = r.errors.find((e) => e.startsWith(`vxlan ${dev}`)) ?? r.errors[0] ?? 'not created';
      this.ready({ ready: false, reason: `VXLAN device ${dev} missing: ${why}`, detail: { ...detail, errors: r.errors.slice(0, 20) } });
      return;
    }
    if (r.errors.length) {
      const more = r.errors.length > 1 ? ` (and ${r.errors.length - 1} more)` : '';
      this.ready({ ready: false, reason: `kernel objects failing: ${r.errors[0]}${more}`, detail: { ...detail, errors: r.errors.slice(0, 20) } });
      return;
    }
    this.ready({ ready: true, detail: { ...detail, vxlan: { device: dev, mac: link.mac ?? null, mtu: link.mtu } } });
  }

  private counts(): Partial<Record<PathMode, number>> {
    return { ...(this.core?.modeCounts() ?? {}) };
  }

  /**
   * The routed prefixes (what GET /v1/routes answers). `since` is kept on the monotonic clock and
   * shown as wall-clock time: now (wall) minus the age (monotonic).
   */
  routes(q: RoutesQuery = {}): RoutesApiResponse {
    const core = this.core;
    const modeFilter = q.mode;
    const limit = q.limit ?? DEFAULT_LIMIT;
    const now = this.clock.now();
    const wallNow = Date.now();
    const all = core?.routes() ?? [];
    const counts: Partial<Record<PathMode, number>> = {};
    for (const r of all) counts[r.mode] = (counts[r.mode] ?? 0) + 1;
    const matching = modeFilter ? all.filter((r) => r.mode === modeFilter) : all;
    const routes: RouteEntryView[] = matching.slice(0, limit).map((r) => ({
      prefix: r.prefix,
      ...(r.node ? { node: r.node } : {}),
      mode: r.mode,
      nextHops: r.nextHops,
      since: new Date(wallNow - Math.max(0, now - r.since)).toISOString(),
      sinceSeconds: Math.max(0, Math.floor((now - r.since) / 1000)),
    }));
    const link = core?.reconciler.vxlanLink;
    return {
      mode: core?.options.mode ?? this.config?.routing.mode ?? 'auto',
      vxlan: { device: core?.options.vxlan.device ?? this.config?.routing.vxlan.device ?? '', mac: link?.mac ?? null, mtu: link?.mtu ?? null },
      counts,
      switches: core ? Object.fromEntries(core.switches) : {},
      total: matching.length,
      truncated: matching.length > routes.length,
      routes,
    };
  }

  private createMetrics(registry: Registry): Metrics {
    const switches = new Counter({
      name: 'nrd_route_switches_total',
      help: 'Path switches of remote prefixes by from and to mode (native, direct, vxlan, none): failovers and failbacks.',
      labelNames: ['from', 'to'],
      registers: [registry],
    });
    // The failover series exist from the start so that rate() and alerts work before the first one.
    for (const [from, to] of [
      ['native', 'vxlan'],
      ['vxlan', 'native'],
    ] as const) {
      switches.inc({ from, to }, 0);
    }
    const sub = (): RoutingSubsystem => this;
    new Gauge({
      name: 'nrd_routes',
      help: 'Prefixes routed by this node by path mode (local: own CIDR; native: BGP; direct: host-gw; vxlan).',
      labelNames: ['mode'],
      registers: [registry],
      collect() {
        const c = sub().counts();
        for (const m of MODES) this.set({ mode: m }, c[m] ?? 0);
      },
    });
    const writes = new Counter({
      name: 'nrd_kernel_writes_total',
      help: 'Kernel writes by operation (route_replace, route_delete, neigh_replace, fdb_append, link_create, …) and result (ok, or the errno name).',
      labelNames: ['op', 'result'],
      registers: [registry],
    });
    const runs = new Counter({
      name: 'nrd_reconcile_runs_total',
      help: 'Kernel reconcile runs (start, input changes, kernel events, periodic resync).',
      registers: [registry],
    });
    const rejectedNodes = new Counter({
      name: 'nrd_routing_rejected_nodes_total',
      help: 'Node records routing refused (bad underlay address, VTEP MAC, CIDR or name), once per change of the record, by reason; every other node is still routed.',
      labelNames: ['reason'],
      registers: [registry],
    });
    const refusedPrefixes = new Counter({
      name: 'nrd_routing_refused_prefixes_total',
      help: 'Remote prefixes never installed because they fall inside an own CIDR or a subnet connected to this node (a hijack), by reason (own_cidr, connected).',
      labelNames: ['reason'],
      registers: [registry],
    });
    return { switches, writes, runs, rejectedNodes, refusedPrefixes };
  }
}
