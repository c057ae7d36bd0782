// The 'state' subsystem: runs the cluster state (ClusterState over etcd, or over an embedded etcd
// when etcd.endpoints is empty) inside the daemon without ever blocking on etcd, reports readiness
// that names what is missing, publishes metrics, answers typed queries (daemon/api/state-routes.ts
// serves them), and hands other subsystems this node's pod CIDRs and the other nodes as full sets
// (hooks wired in daemon/main.ts; a listener registered late gets the current set at once).
import type { Registry } from 'prom-client';
import type { ConfigChange, NrdConfig } from '../config/index.js';
import type { Subsystem, SubsystemContext } from '../lib/subsystem.js';
import type { ReadinessReporter } from '../lib/health.js';
import type { Logger } from '../lib/log.js';
import { type PoolConfig } from './cidr-alloc.js';
import { ClusterState, type ClusterStateOptions } from './cluster-state.js';
import { parseCidr } from './ipnet.js';
import { createStateMetrics, type StateMetrics } from './metrics.js';
import type { RemoteNodeView } from './node-view.js';
import { stateQueries, type StateQueries } from './queries.js';
import { type ServiceSet, ServiceSetTracker } from './service-set.js';
import type { Store } from './store.js';
import type { EndpointRecord, IdentityRecord, NodeRecord, PolicyRecord } from './records.js';

export type { RemoteNodeView } from './node-view.js';

/** This node's pod CIDRs by family. */
export interface OwnCidrs {
  ipv4?: string;
  ipv6?: string;
}

export type OwnCidrsListener = (cidrs: OwnCidrs) => void;
/** Everything identity policy depends on, as full sets (policy.ts in the datapath consumes it). */
export interface PolicyInputSet {
  localNode: string;
  policies: PolicyRecord[];
  /** Every endpoint of every node. */
  endpoints: EndpointRecord[];
  identities: IdentityRecord[];
  nodes: NodeRecord[];
  /** All four collections listed: a consumer may delete what is absent. */
  synced: boolean;
}
export type PolicyInputsListener = (inputs: PolicyInputSet) => void;
/** `synced` false: the list may still be partial; never delete kernel state on it. */
export type NodesListener = (nodes: RemoteNodeView[], synced: boolean) => void;
/**
 * The whole set of services once the collection is listed: a frozen array, in no particular order,
 * of frozen records that stay the same objects while their etcd value does (service-set.ts).
 */
export type ServicesListener = (services: ServiceSet) => void;

export interface StateSubsystemDeps {
  metrics: Registry;
  /** Written into this node's record. */
  version?: string;
  /** Tests: a Store instead of etcd (endpoints, TLS and auth are then ignored). */
  store?: Store;
  /** Tests: ClusterState options laid over those derived from the config. */
  overrides?: Partial<ClusterStateOptions>;
  /**
   * Upper bound (ms) on how long start() waits for the state to become ready when etcd answers,
   * so that READY=1 usually already says "ready". It returns at once when etcd is found
   * unreachable: the daemon never waits for etcd. Default 3000.
   */
  startGraceMs?: number;
  /** Readiness re-evaluation period (ms), default 500. */
  readinessIntervalMs?: number;
}

/** Keys whose change needs the state layer rebuilt (new connection, pools or node identity). */
const REBUILD_KEYS = /^(etcd\.|cluster\.|node\.(name|address|podCIDRs|stateDir)\b|bgp\.asn$)/;

/** Cluster pools from the config: one pool per family, named "ipv4" / "ipv6". */
export function poolsOf(config: NrdConfig): PoolConfig[] {
  const pools: PoolConfig[] = [];
  for (const text of config.cluster.podCIDRs) {
    const c = parseCidr(text);
    const name = c.family === 4 ? 'ipv4' : 'ipv6';
    if (pools.some((p) => p.name === name)) continue; // semantics allow one pool per family
    pools.push({ name, cidr: text, maskSize: c.family === 4 ? config.cluster.nodeCIDRMaskSize : config.cluster.nodeCIDRMaskSizeIPv6 });
  }
  return pools;
}

/** ClusterState options from the site config (etcd.*, cluster.*, node.*). */
export function clusterStateOptions(config: NrdConfig, extra: { version?: string; log?: Logger } = {}): ClusterStateOptions {
  const staticCidrs: Record<string, string> = {};
  for (const text of config.node.podCIDRs) staticCidrs[parseCidr(text).family === 4 ? 'ipv4' : 'ipv6'] = text;
  const tls = config.etcd.tls;
  const opts: ClusterStateOptions = {
    endpoints: [...config.etcd.endpoints],
    prefix: `${config.etcd.prefix.replace(/\/+$/, '')}/v1`,
    stateDir: config.node.stateDir,
    // Host names are case-insensitive; keys are lower case.
    node: { name: config.node.name.toLowerCase(), address: config.node.address, asn: config.bgp.asn, ...(extra.version ? { version: extra.version } : {}) },
    pools: poolsOf(config),
    staticCidrs,
    leaseTtlSeconds: config.etcd.leaseTTL,
    reclaimGraceMs: config.cluster.cidrReclaimGracePeriod * 1000,
    ...(extra.log ? { log: extra.log } : {}),
  };
  if (tls.ca || tls.cert || tls.key) opts.tls = { ...(tls.ca ? { ca: tls.ca } : {}), ...(tls.cert ? { cert: tls.cert } : {}), ...(tls.key ? { key: tls.key } : {}) };
  if (config.etcd.username) opts.auth = { username: config.etcd.username, password: config.etcd.password };
  return opts;
}

function sameCidrs(a: OwnCidrs | undefined, b: OwnCidrs): boolean {
  return a !== undefined && a.ipv4 === b.ipv4 && a.ipv6 === b.ipv6;
}

export class StateSubsystem implements Subsystem {
  readonly name = 'state';
  private cs: ClusterState | undefined;
  private config: NrdConfig | undefined;
  private log: Logger | undefined;
  private ready: ReadinessReporter | undefined;
  private timer: NodeJS.Timeout | undefined;
  private unsubscribe: (() => void)[] = [];
  private readonly metrics: StateMetrics;
  private readonly cidrListeners = new Set<OwnCidrsListener>();
  private readonly nodeListeners = new Set<NodesListener>();
  private readonly policyListeners = new Set<PolicyInputsListener>();
  private lastPolicyInputs: string | undefined;
  private policyScheduled = false;
  private policyEverSynced = false;
  private readonly serviceListeners = new Set<ServicesListener>();
  /** The service set: the changed keys from the watch, not a comparison of every record. */
  private readonly serviceSet = new ServiceSetTracker();
  private servicesScheduled = false;
  private ownCidrs: OwnCidrs | undefined;
  private lastNodes: { json: string; synced: boolean } | undefined;
  private everSynced = false;
  private nodesScheduled = false;
  private vtepMac: string | undefined;
  private lastReadiness = '';
  /** Nodes, endpoints, services, policies, decommission: what the control API serves. */
  readonly queries: StateQueries;

  constructor(private readonly deps: StateSubsystemDeps) {
    this.metrics = createStateMetrics(deps.metrics);
    this.queries = stateQueries(
      () => this.cs,
      () => this.cs?.status().node ?? this.config?.node.name ?? '',
    );
  }

  // ---- hooks for other subsystems (wired in main.ts; callable before start) ---------------------

  /**
   * `cb` gets this node's pod CIDRs whenever they change (first when claimed; at once on
   * subscription if already known). Returns an unsubscribe function.
   */
  onOwnCidrs(cb: OwnCidrsListener): () => void {
    this.cidrListeners.add(cb);
    if (this.ownCidrs) cb({ ...this.ownCidrs });
    return () => this.cidrListeners.delete(cb);
  }

  /**
   * `cb` gets the full list of the other nodes (see node-view.ts for who is listed and why a
   * node's CIDRs stay until reclaimed) whenever it changes, and `synced` once nodes, liveness and
   * claims have all been listed. Called at once on subscription when a list is known.
   * Returns an unsubscribe function.
   */
  onNodes(cb: NodesListener): () => void {
    this.nodeListeners.add(cb);
    if (this.lastNodes) cb(JSON.parse(this.lastNodes.json) as RemoteNodeView[], this.lastNodes.synced);
    return () => this.nodeListeners.delete(cb);
  }

  /**
   * `cb` gets the whole set of services whenever it changes, level-triggered like onNodes; only
   * once the collection is listed (a partial list would withdraw services that exist). Called at
   * once on subscription when a set is known. Returns an unsubscribe function.
   */
  onServices(cb: ServicesListener): () => void {
    this.serviceListeners.add(cb);
    const current = this.serviceSet.current;
    if (current) cb(current);
    return () => this.serviceListeners.delete(cb);
  }

  /**
   * `cb` gets the policy inputs (policies, all endpoints, identities, nodes) whenever any of them
   * changes, level-triggered like onNodes, coalesced per tick; at once on subscription when known.
   * After a first synced set, partial views of a restarted state layer are held back.
   */
  onPolicyInputs(cb: PolicyInputsListener): () => void {
    this.policyListeners.add(cb);
    if (this.lastPolicyInputs !== undefined) cb(JSON.parse(this.lastPolicyInputs) as PolicyInputSet);
    return () => this.policyListeners.delete(cb);
  }

  /** Records this node's VXLAN device MAC in its node record (kept across state-layer restarts). */
  setVtepMac(mac: string): void {
    this.vtepMac = mac.toLowerCase();
    this.cs?.setVtepMac(mac);
  }

  /** The running ClusterState (endpoints, identities, …); undefined before start. */
  get cluster(): ClusterState | undefined {
    return this.cs;
  }

  /** This node's pod CIDRs as last claimed. */
  currentCidrs(): OwnCidrs | undefined {
    return this.ownCidrs ? { ...this.ownCidrs } : undefined;
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  async start(ctx: SubsystemContext): Promise<void> {
    this.log = ctx.log;
    this.ready = ctx.ready;
    this.config = ctx.config;
    await this.launch(ctx.config);
    this.timer = setInterval(() => this.report(), this.deps.readinessIntervalMs ?? 500);
    this.timer.unref();
    await this.settle(this.deps.startGraceMs ?? 3000);
    this.report();
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.teardown();
  }

  async reload(changes: readonly ConfigChange[], next: NrdConfig): Promise<void> {
    const relevant = changes.filter((c) => REBUILD_KEYS.test(c.key));
    if (relevant.length === 0) {
      this.config = next;
      return;
    }
    // A state-layer restart is harmless by design: consumers keep what they have, the new
    // instance re-lists and reports only real differences (and holds nodes until synced).
    this.log?.info({ keys: relevant.map((c) => c.key) }, 'cluster-state config changed: reconnecting');
    await this.teardown();
    this.config = next;
    await this.launch(next);
    this.report();
  }

  status(): unknown {
    const cs = this.cs;
    if (!cs) return { running: false };
    const st = cs.status();
    return {
      ...st,
      etcd: st.embedded ? { embedded: st.embedded } : { endpoints: this.config?.etcd.endpoints ?? [] },
      remoteNodes: this.lastNodes ? (JSON.parse(this.lastNodes.json) as unknown[]).length : 0,
    };
  }

  // ---- internals -------------------------------------------------------------------------------

  private async launch(config: NrdConfig): Promise<void> {
    const opts: ClusterStateOptions = {
      ...clusterStateOptions(config, { ...(this.deps.version ? { version: this.deps.version } : {}), ...(this.log ? { log: this.log } : {}) }),
      onRequest: (op, result) => this.metrics.request(op, result),
      onReject: (kind, reason) => this.metrics.rejected(kind, reason),
      ...(this.deps.store ? { store: this.deps.store } : {}),
      ...this.deps.overrides,
    };
    if (this.vtepMac) opts.node = { ...opts.node, vtepMac: this.vtepMac };
    const cs = new ClusterState(opts);
    this.unsubscribe.push(
      cs.onOwnCidrs((c) => this.emitCidrs(c)),
      ...[cs.nodes, cs.alive, cs.cidrs].map((r) => r.onChange(() => this.scheduleNodes())),
      ...[cs.policies, cs.endpoints, cs.identities, cs.nodes].map((r) => r.onChange(() => this.schedulePolicyInputs())),
      cs.services.onChange((changes) => {
        this.serviceSet.touch(changes.map((c) => c.key));
        this.scheduleServices();
      }),
    );
    // A new instance lists everything again: its first set is compared whole with the last one.
    this.serviceSet.reset();
    this.cs = cs;
    this.metrics.attach(cs, opts.pools);
    await cs.start();
  }

  private async teardown(): Promise<void> {
    for (const u of this.unsubscribe.splice(0)) u();
    const cs = this.cs;
    this.cs = undefined;
    this.metrics.attach(undefined, []);
    // Liveness is not revoked: a restart must not look like a node death to the others.
    await cs?.stop();
  }

  /** Wait until ready, until etcd trouble shows, or for `ms` at most. */
  private async settle(ms: number): Promise<void> {
    const deadline = Date.now() + ms;
    while (Date.now() < deadline) {
      const cs = this.cs;
      if (!cs) return;
      const st = cs.status();
      if (st.ready) return;
      if (st.collections.some((c) => c.retries > 0) || st.errors.length > 0) return;
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  private emitCidrs(byPool: Record<string, string>): void {
    const c: OwnCidrs = {};
    if (byPool.ipv4) c.ipv4 = byPool.ipv4;
    if (byPool.ipv6) c.ipv6 = byPool.ipv6;
    if (sameCidrs(this.ownCidrs, c)) return;
    this.ownCidrs = c;
    for (const cb of this.cidrListeners) {
      try {
        cb({ ...c });
      } catch (err) {
        this.log?.error({ err }, 'own-CIDR consumer threw');
      }
    }
    this.report();
  }

  /** Reflector batches arrive per collection: coalesce them into one computation. */
  private scheduleNodes(): void {
    if (this.nodesScheduled) return;
    this.nodesScheduled = true;
    setImmediate(() => {
      this.nodesScheduled = false;
      this.emitNodes();
    });
  }

  private scheduleServices(): void {
    if (this.servicesScheduled) return;
    this.servicesScheduled = true;
    setImmediate(() => {
      this.servicesScheduled = false;
      this.emitServices();
    });
  }

  private emitServices(): void {
    const cs = this.cs;
    // Until listed (also after a state-layer restart) the consumers keep the last full set.
    if (!cs || !cs.services.synced) return;
    const set = this.serviceSet.next(cs.services);
    if (!set) return;
    for (const cb of this.serviceListeners) {
      try {
        cb(set);
      } catch (err) {
        this.log?.error({ err }, 'services consumer threw');
      }
    }
  }

  private schedulePolicyInputs(): void {
    if (this.policyScheduled) return;
    this.policyScheduled = true;
    setImmediate(() => {
      this.policyScheduled = false;
      this.emitPolicyInputs();
    });
  }

  private emitPolicyInputs(): void {
    const cs = this.cs;
    if (!cs) return;
    const synced = [cs.policies, cs.endpoints, cs.identities, cs.nodes].every((r) => r.synced);
    if (!synced && this.policyEverSynced) return;
    const byKey = <T>(r: { entries(): [string, T][] }): T[] => r.entries().sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([, v]) => v);
    const set: PolicyInputSet = {
      localNode: cs.status().node,
      policies: byKey(cs.policies),
      endpoints: byKey(cs.endpoints),
      identities: byKey(cs.identities),
      nodes: byKey(cs.nodes),
      synced,
    };
    const text = JSON.stringify(set);
    if (text === this.lastPolicyInputs) return;
    this.lastPolicyInputs = text;
    if (synced) this.policyEverSynced = true;
    for (const cb of this.policyListeners) {
      try {
        cb(JSON.parse(text) as PolicyInputSet);
      } catch (err) {
        this.log?.error({ err }, 'policy-inputs consumer threw');
      }
    }
  }

  private emitNodes(): void {
    const cs = this.cs;
    if (!cs) return;
    const synced = cs.nodesSynced;
    // After a first synced list, a restarted state layer's partial views are held back: the
    // consumers keep the last complete picture until the new one is complete.
    if (!synced && this.everSynced) return;
    const nodes = cs.remoteNodes();
    const text = JSON.stringify(nodes);
    if (this.lastNodes && this.lastNodes.json === text && this.lastNodes.synced === synced) return;
    this.lastNodes = { json: text, synced };
    if (synced) this.everSynced = true;
    for (const cb of this.nodeListeners) {
      try {
        cb(JSON.parse(text) as RemoteNodeView[], synced);
      } catch (err) {
        this.log?.error({ err }, 'nodes consumer threw');
      }
    }
  }

  private report(): void {
    const cs = this.cs;
    if (!this.ready) return;
    if (!cs) {
      this.ready({ ready: false, reason: 'cluster state not running' });
      return;
    }
    // A sync that emitted nothing (an empty cluster) still has to announce "synced".
    if (cs.nodesSynced && !this.everSynced) this.scheduleNodes();
    // Likewise an empty service collection: the datapath must hear "none" once listed.
    if (cs.services.synced && this.serviceSet.current === undefined) this.scheduleServices();
    const st = cs.status();
    const reason = st.ready ? undefined : st.degraded ? `degraded, working from cached state: ${st.reason}` : st.reason;
    const key = `${st.ready}|${reason}`;
    if (key !== this.lastReadiness) {
      this.lastReadiness = key;
      if (st.ready) this.log?.info({ podCidrs: st.podCidrs }, 'cluster state ready');
      else this.log?.warn({ reason }, 'cluster state not ready');
    }
    this.ready({
      ready: st.ready,
      ...(reason ? { reason } : {}),
      detail: {
        degraded: st.degraded,
        podCidrs: st.podCidrs,
        lease: st.lease.state,
        collections: st.collections.map((c) => ({ name: c.name, synced: c.synced, connected: c.connected, retries: c.retries, ...(c.lastError ? { lastError: c.lastError } : {}) })),
      },
    });
  }
}
