// The BGP subsystem of the daemon: builds the speaker from the site config, answers typed queries
// and commands (peers, routes, refresh, reset; failures are NrdError, mapped to HTTP by
// daemon/api/bgp-routes.ts), publishes nrd_bgp_… metrics, reports readiness naming every peer that
// is not Established (state, last error or NOTIFICATION), and applies config reloads through the
// speaker so that only the sessions a change concerns are reset. Inputs from other subsystems (own
// prefixes, mesh nodes) are level-triggered: the latest set is kept and applied at start.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ConfigChange, NrdConfig } from '../config/index.js';
import type { Subsystem, SubsystemContext } from '../lib/subsystem.js';
import type { Logger } from '../lib/log.js';
import type { ReadinessReporter } from '../lib/health.js';
import { NrdError } from '../lib/errors.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { BgpSpeaker, type MeshNode, type PeersResponse, type RoutesResponse, type SpeakerHooks } from './speaker.js';
import type { RouteChange, RouteSubscriber } from './rib/index.js';
import type { Connector } from './session/shell.js';
import { IPV4, IPV6, type SpeakerOptions, type SpeakerPeer } from './speaker/options.js';
import type { FamilyKey } from './types.js';
import type { StateName } from './session/fsm.js';

/** RFC 4273 bgpPeerState numbering, as BGP MIBs and most exporters use it. */
export const STATE_NUMBER: Record<StateName, number> = { Idle: 1, Connect: 2, Active: 3, OpenSent: 4, OpenConfirm: 5, Established: 6 };

const familyOfAddress = (a: string): 'ipv4' | 'ipv6' => (a.includes(':') ? 'ipv6' : 'ipv4');

/** The max-prefix limit of node-mesh peers: bgp.peers[].maxPrefix.limit's default. */
export const MESH_MAX_PREFIX = 50_000;

/** Speaker options from the (resolved, frozen) site config. */
export function speakerOptionsFromConfig(c: NrdConfig, extra: { restarting?: boolean } = {}): SpeakerOptions {
  const b = c.bgp;
  const reflect = b.peers.some((p) => p.rrClient);
  const peers: SpeakerPeer[] = b.peers.map((p) => {
    const sp: SpeakerPeer = {
      address: p.address,
      asn: p.asn,
      port: p.port,
      passive: p.passive,
      gracefulRestart: p.gracefulRestart,
      holdTime: p.holdTime,
      families: p.families.map((f) => (f === 'ipv4' ? IPV4 : IPV6)),
      rrClient: p.rrClient,
      source: 'static',
    };
    if (p.password) sp.password = p.password;
    if (p.description) sp.description = p.description;
    if (p.ttlSecurity) sp.gtsmHops = p.multihop;
    if (p.maxPrefix.limit > 0) sp.maxPrefix = { limit: p.maxPrefix.limit, action: p.maxPrefix.action };
    return sp;
  });
  const nextHopSelf: { ipv4?: string; ipv6?: string } = {};
  if (c.node.address) nextHopSelf[familyOfAddress(c.node.address)] = c.node.address;
  const o: SpeakerOptions = {
    asn: b.asn,
    routerId: b.routerId,
    listen: { address: b.listen.address, port: b.listen.port },
    holdTime: b.holdTime,
    connectRetryTime: b.connectRetryTime,
    // The config is deeply frozen; the speaker gets its own copies of the lists it keeps.
    gracefulRestart: { ...b.gracefulRestart, restarting: extra.restarting === true },
    ecmpMax: b.ecmpMax,
    multipathRelax: b.multipathRelax,
    import: { ranges: [...c.cluster.podCIDRs, ...b.import.extraRanges], maxPrefixLength: { ...b.import.maxPrefixLength } },
    export: {
      ...b.export,
      communities: [...b.export.communities],
      largeCommunities: [...b.export.largeCommunities],
      extraPrefixes: [...b.export.extraPrefixes],
    },
    nextHopSelf,
    // Mesh peers are other nrd nodes, each sending its pod CIDRs and extra prefixes: the same
    // default limit as a configured peer stops one that leaks a full table into every node.
    meshMaxPrefix: { limit: MESH_MAX_PREFIX, action: 'teardown' },
    localPrefixes: [...c.node.podCIDRs],
    peers,
  };
  if (reflect) {
    // Reflecting for clients (RFC 4456) with our router id as the CLUSTER_ID.
    o.clusterId = b.routerId;
    o.exportLearned = true;
  }
  return o;
}

/** Config keys whose change concerns BGP. */
const BGP_KEYS = /^(bgp\.|cluster\.podCIDRs|node\.address|node\.podCIDRs)/;

/** Which routes GET /v1/bgp/routes lists. */
export interface RoutesQuery {
  family?: 'ipv4' | 'ipv6';
  /** A peer address, or 'local' for the node's own prefixes. */
  peer?: string;
  prefix?: string;
  limit?: number;
}

/** The queries and commands the control API maps to HTTP (daemon/api/bgp-routes.ts). */
export interface BgpQueries {
  /** Throws NrdError unavailable/bgp_not_running. */
  peers(): PeersResponse;
  /** Throws NrdError unavailable/bgp_not_running, not_found/unknown_peer. */
  routes(q: RoutesQuery): RoutesResponse;
  /** RFC 2918 route refresh. Throws bgp_not_running, unknown_peer, conflict/not_established. */
  refreshPeer(address: string, family?: 'ipv4' | 'ipv6'): void;
  /** Starts a peer's session again (after a max-prefix teardown). Throws bgp_not_running, unknown_peer. */
  resetPeer(address: string): void;
}

const UNICAST = new Set<FamilyKey>([IPV4, IPV6]);

export interface BgpSubsystemDeps {
  metrics: Registry;
  /** Time for the initial-sync deadline and the speaker's timers (tests inject a fake one). */
  clock?: Clock;
  /** R bit of the GR capability; default: a previous run left its marker in node.stateDir. */
  restarting?: boolean;
  /** Outgoing connections (tests). */
  connector?: Connector;
  /** Backoff timers not in the site file (tests shorten them). */
  sessionTimers?: Pick<SpeakerOptions, 'idleHoldTime' | 'idleHoldMax' | 'connectRetryMax'>;
}

export class BgpSubsystem implements Subsystem, BgpQueries {
  readonly name = 'bgp';
  private speakerRef: BgpSpeaker | null = null;
  private log: Logger | undefined;
  private ready: ReadinessReporter | undefined;
  private reportScheduled = false;
  // Inputs from other subsystems (etcd's own CIDRs and mesh nodes, the routing layer's
  // subscription) may arrive before the speaker exists: kept here and applied at start.
  private localPrefixes = new Map<'ipv4' | 'ipv6', readonly string[]>();
  private meshNodes: readonly MeshNode[] | undefined;
  private nodeMesh = false;
  private subscribers: Array<{ sub: RouteSubscriber; unsubscribe?: () => void }> = [];
  private syncListeners = new Set<() => void>();
  private synced = false;
  private syncTimer: unknown;
  private readonly hooks: SpeakerHooks;
  private readonly clock: Clock;

  constructor(private readonly deps: BgpSubsystemDeps) {
    this.clock = deps.clock ?? systemClock;
    this.hooks = this.createMetrics(deps.metrics);
  }

  /** The running speaker (main.ts wires etcd's node CIDRs, mesh nodes and the routing layer to it). */
  get speaker(): BgpSpeaker | null {
    return this.speakerRef;
  }

  async start(ctx: SubsystemContext): Promise<void> {
    this.log = ctx.log;
    this.ready = ctx.ready;
    const restarting = this.deps.restarting ?? this.markRunning(ctx.config.node.stateDir);
    const opts = { ...speakerOptionsFromConfig(ctx.config, { restarting }), ...this.deps.sessionTimers };
    const deps: ConstructorParameters<typeof BgpSpeaker>[1] = { logger: ctx.log, hooks: this.hooks, clock: this.clock };
    if (this.deps.connector) deps.connector = this.deps.connector;
    const speaker = new BgpSpeaker(opts, deps);
    this.speakerRef = speaker;
    for (const [family, prefixes] of this.localPrefixes) speaker.setLocalPrefixes(family, prefixes);
    this.nodeMesh = ctx.config.bgp.nodeMesh;
    if (this.meshNodes && this.nodeMesh) speaker.setMeshPeers(this.meshNodes);
    for (const s of this.subscribers) s.unsubscribe = speaker.subscribe(s.sub, { replay: true });
    await speaker.start();
    this.report();
    this.watchInitialSync(speaker, ctx.config.bgp.holdTime * 1000);
  }

  /**
   * Calls back once the initial routes are in: every peer sent End-of-RIB for each negotiated
   * family, or a hold time passed since start (a peer that is down by then is not coming soon;
   * its routes, if any, are VXLAN's business). Until then the routing layer deletes nothing.
   */
  onSynced(cb: () => void): void {
    if (this.synced) cb();
    else this.syncListeners.add(cb);
  }

  private watchInitialSync(speaker: BgpSpeaker, graceMs: number): void {
    if (this.synced) return;
    const deadline = this.clock.now() + graceMs;
    const check = (): void => {
      this.syncTimer = undefined;
      if (this.speakerRef !== speaker) return;
      const waiting = speaker.peersAwaitingEndOfRib();
      if (waiting.length > 0 && this.clock.now() < deadline) {
        this.syncTimer = this.clock.setTimer(check, 200);
        return;
      }
      if (waiting.length > 0) this.log?.warn({ waiting }, 'initial BGP sync: peers without End-of-RIB after a hold time; going on without them');
      else this.log?.info('initial BGP sync complete: End-of-RIB from every peer');
      this.synced = true;
      for (const cb of this.syncListeners) cb();
      this.syncListeners.clear();
    };
    check();
  }

  /** This node's own prefixes of a family (its pod CIDR from etcd); applied now or at start. */
  setLocalPrefixes(family: 'ipv4' | 'ipv6', prefixes: readonly string[]): void {
    this.localPrefixes.set(family, [...prefixes]);
    this.speakerRef?.setLocalPrefixes(family, prefixes);
  }

  /** The other nodes from etcd, peered with over iBGP when bgp.nodeMesh is on. */
  setMeshPeers(nodes: readonly MeshNode[]): void {
    this.meshNodes = [...nodes];
    const s = this.speakerRef;
    if (s && this.nodeMesh) s.setMeshPeers(this.meshNodes);
  }

  /**
   * Loc-RIB best paths and ECMP sets for the routing layer; replayed in full at every start.
   * Unicast only: a change of any other AFI/SAFI never reaches the kernel (RFC 4760 §7).
   */
  subscribe(subscriber: RouteSubscriber): void {
    const sub: RouteSubscriber = {
      onRouteChanges: (changes: readonly RouteChange[]) => {
        const unicast = changes.every((c) => UNICAST.has(c.family)) ? changes : changes.filter((c) => UNICAST.has(c.family));
        if (unicast.length > 0) subscriber.onRouteChanges(unicast);
      },
    };
    const entry: { sub: RouteSubscriber; unsubscribe?: () => void } = { sub };
    this.subscribers.push(entry);
    if (this.speakerRef) entry.unsubscribe = this.speakerRef.subscribe(sub, { replay: true });
  }

  async stop(): Promise<void> {
    const s = this.speakerRef;
    this.speakerRef = null;
    for (const e of this.subscribers) e.unsubscribe?.();
    if (this.syncTimer !== undefined) this.clock.clearTimer(this.syncTimer);
    // Graceful restart: close without NOTIFICATION, keep the Loc-RIB (and so the kernel routes).
    if (s) await s.stop('restart');
  }

  async reload(changes: readonly ConfigChange[], next: NrdConfig): Promise<void> {
    const s = this.speakerRef;
    if (!s || !changes.some((c) => BGP_KEYS.test(c.key))) return;
    const cur = s.options;
    const opts = { ...speakerOptionsFromConfig(next, { restarting: cur.gracefulRestart.restarting === true }), ...this.deps.sessionTimers };
    // Local prefixes may have come from etcd meanwhile: a reload keeps them unless node.podCIDRs changed.
    if (!changes.some((c) => c.key === 'node.podCIDRs')) {
      await s.reconfigure({ ...opts, localPrefixes: cur.localPrefixes ?? [] });
    } else {
      await s.reconfigure(opts);
      for (const fam of [IPV4, IPV6]) s.setLocalPrefixes(fam, next.node.podCIDRs.filter((p) => p.includes(':') === (fam === IPV6)));
    }
    this.nodeMesh = next.bgp.nodeMesh;
    s.setMeshPeers(this.nodeMesh ? (this.meshNodes ?? []) : []);
    this.report();
  }

  status(): unknown {
    const s = this.speakerRef;
    if (!s) return { running: false };
    const v = s.peerViews();
    return {
      running: true,
      asn: v.asn,
      routerId: v.routerId,
      listenPort: s.listenPort,
      locRib: { ipv4: s.locRibSize(IPV4), ipv6: s.locRibSize(IPV6) },
      peers: v.peers.map((p) => ({ address: p.address, asn: p.asn, state: p.state, prefixes: p.prefixes })),
    };
  }

  /** Readiness after a burst of state changes, once per loop turn. */
  private scheduleReport(): void {
    if (this.reportScheduled) return;
    this.reportScheduled = true;
    setImmediate(() => {
      this.reportScheduled = false;
      this.report();
    });
  }

  private report(): void {
    const s = this.speakerRef;
    if (!s || !this.ready) return;
    const r = s.readiness();
    this.ready(r.reason !== undefined ? { ready: r.ready, reason: r.reason, detail: r.detail } : { ready: r.ready, detail: r.detail });
  }

  /** Marker of a previous run in the state dir: this start is a restart (the GR R bit). */
  private markRunning(stateDir: string): boolean {
    const marker = join(stateDir, 'bgp-speaker.started');
    const restarting = existsSync(marker);
    try {
      mkdirSync(stateDir, { recursive: true });
      writeFileSync(marker, `${new Date().toISOString()}\n`);
    } catch (err) {
      this.log?.warn({ err, marker }, 'cannot write the BGP restart marker; the R bit stays off');
    }
    return restarting;
  }

  private createMetrics(registry: Registry): SpeakerHooks {
    const self = this;
    new Gauge({
      name: 'nrd_bgp_session_state',
      help: 'BGP session state per peer (RFC 4273 numbering): 1 Idle, 2 Connect, 3 Active, 4 OpenSent, 5 OpenConfirm, 6 Established.',
      labelNames: ['peer'],
      registers: [registry],
      collect() {
        this.reset();
        for (const p of self.speakerRef?.peerViews().peers ?? []) this.set({ peer: p.address }, STATE_NUMBER[p.state as StateName] ?? 0);
      },
    });
    const perPeer = (name: string, help: string, pick: (p: { received: number; accepted: number; advertised: number; stale: number }) => number): void => {
      new Gauge({
        name,
        help,
        labelNames: ['peer'],
        registers: [registry],
        collect() {
          this.reset();
          for (const p of self.speakerRef?.peerViews().peers ?? []) this.set({ peer: p.address }, pick(p.prefixes));
        },
      });
    };
    perPeer('nrd_bgp_prefixes_received', 'Prefixes held from the peer (accepted, plus rejected ones when they are kept).', (c) => c.received);
    perPeer('nrd_bgp_prefixes_accepted', 'Prefixes from the peer accepted by import policy (candidates in the Loc-RIB).', (c) => c.accepted);
    perPeer('nrd_bgp_prefixes_advertised', 'Prefixes in the peer\'s Adj-RIB-Out (advertised to it).', (c) => c.advertised);
    perPeer('nrd_bgp_prefixes_stale', 'Prefixes of the peer held as stale during its graceful restart.', (c) => c.stale);
    new Gauge({
      name: 'nrd_bgp_loc_rib_prefixes',
      help: 'Prefixes with a best path in the Loc-RIB, per family.',
      labelNames: ['family'],
      registers: [registry],
      collect() {
        const s = self.speakerRef;
        this.set({ family: 'ipv4' }, s?.locRibSize(IPV4) ?? 0);
        this.set({ family: 'ipv6' }, s?.locRibSize(IPV6) ?? 0);
      },
    });
    const received = new Counter({ name: 'nrd_bgp_updates_received_total', help: 'UPDATE messages received, per peer.', labelNames: ['peer'], registers: [registry] });
    const updateErrors = new Counter({
      name: 'nrd_bgp_update_errors_total',
      help: 'Malformed UPDATE content handled without a session reset (RFC 7606 treat-as-withdraw or attribute discard), per peer.',
      labelNames: ['peer'],
      registers: [registry],
    });
    const sent = new Counter({ name: 'nrd_bgp_updates_sent_total', help: 'UPDATE messages sent, per peer.', labelNames: ['peer'], registers: [registry] });
    const decisions = new Counter({
      name: 'nrd_bgp_decision_runs_total',
      help: 'Per-prefix runs of the decision process caused by received announcements and withdrawals.',
      registers: [registry],
    });
    decisions.inc(0);
    return {
      updateReceived: (peer) => received.inc({ peer }),
      updateErrors: (peer, n) => updateErrors.inc({ peer }, n),
      updatesSent: (peer, n) => sent.inc({ peer }, n),
      decisionRuns: (n) => decisions.inc(n),
      peerStateChanged: () => this.scheduleReport(),
    };
  }

  private running(): BgpSpeaker {
    const s = this.speakerRef;
    if (!s) throw new NrdError('unavailable', 'bgp_not_running', 'the BGP speaker is not running');
    return s;
  }

  private knownPeer(s: BgpSpeaker, address: string): void {
    if (!s.hasPeer(address)) throw new NrdError('not_found', 'unknown_peer', `no BGP peer ${address}`);
  }

  // ---- queries and commands (daemon/api/bgp-routes.ts maps them to HTTP) ----------------------

  peers(): PeersResponse {
    return this.running().peerViews();
  }

  routes(q: RoutesQuery): RoutesResponse {
    const s = this.running();
    const filter: Parameters<BgpSpeaker['routes']>[0] = {};
    if (q.family) filter.family = q.family === 'ipv4' ? IPV4 : IPV6;
    if (q.peer) {
      if (q.peer !== 'local') this.knownPeer(s, q.peer);
      filter.peer = q.peer;
    }
    if (q.prefix) filter.prefix = q.prefix;
    if (q.limit !== undefined) filter.limit = q.limit;
    return s.routes(filter);
  }

  refreshPeer(address: string, family?: 'ipv4' | 'ipv6'): void {
    const s = this.running();
    this.knownPeer(s, address);
    if (!s.refresh(address, family)) {
      throw new NrdError('conflict', 'not_established', `peer ${address} is not Established or did not negotiate route refresh`);
    }
  }

  resetPeer(address: string, why?: string): void {
    if (!this.running().resetPeer(address, why)) throw new NrdError('not_found', 'unknown_peer', `no BGP peer ${address}`);
  }
}
