// The cluster-state facade the daemon owns: connects to etcd (or supervises an embedded one),
// registers this node, claims its pod CIDRs, keeps its liveness lease, reflects every collection
// to consumers with a synced signal, reclaims dead nodes, and explains its readiness.
import type { Logger } from '../lib/log.js';
import { backoffDelay, sleep, TokenBucket } from './backoff.js';
import { allocateNodeCidr, StateError, validatePool, type PoolConfig } from './cidr-alloc.js';
import { EmbeddedEtcd, type EmbeddedHealth } from './embedded-etcd.js';
import { EtcdStore, type EtcdStoreOptions } from './etcd-store.js';
import { InstrumentedStore, type RequestObserver } from './instrumented-store.js';
import { remoteNodes, type AliveValue, type RemoteNodeView } from './node-view.js';
import { IdentityAllocator } from './identities.js';
import { EndpointIpam, type EndpointSpec } from './ipam.js';
import { Keys, leaf } from './keys.js';
import { LeaseKeeper } from './lease-keeper.js';
import { ReclaimTracker, reclaimNode } from './nodes.js';
import { admitAlive, admitCidrClaim, admitEndpoint, admitIdentity, admitNode, admitPolicy, admitService, nodeNameIssue, type AdmissionRules } from './admission.js';
import {
  decodeEndpoint,
  decodePolicy,
  isValidName,
  validatePolicy,
  validateService,
  type CidrClaim,
  type EndpointRecord,
  type IdentityRecord,
  type NodeRecord,
  type PolicyRecord,
  type Result,
  type ServiceRecord,
} from './records.js';
import { Reflector, type CollectionHealth, type Decoded, type Rejection } from './reflector.js';
import { isStoreError, type Store } from './store.js';

export interface ClusterStateOptions {
  /** etcd client URLs; empty or absent = start and supervise a local etcd in `stateDir`. */
  endpoints?: string[];
  /** Key prefix, default /nrd/v1. */
  prefix?: string;
  tls?: EtcdStoreOptions['tls'];
  auth?: EtcdStoreOptions['auth'];
  /** nrd's state directory: the embedded etcd's data and sockets (required when no endpoints). */
  stateDir?: string;
  /** Binary of the embedded etcd (default `etcd` on PATH); it listens on unix sockets only. */
  embedded?: { binary?: string };
  /** Sees every etcd request and its outcome (metrics). */
  onRequest?: RequestObserver;
  /** Sees every record refused on admission, by collection and reason (metrics). */
  onReject?: (collection: string, reason: string) => void;
  node: {
    name: string;
    address: string;
    vtepMac?: string;
    asn?: number;
    version?: string;
    capabilities?: string[];
  };
  /** Cluster pools, at most one per family, e.g. {name:'ipv4', cidr:'10.244.0.0/16', maskSize:24}. */
  pools: PoolConfig[];
  /** Static CIDR per pool name, from the node's config: honoured and reserved. */
  staticCidrs?: Record<string, string>;
  /** Liveness lease TTL (s), default 10. */
  leaseTtlSeconds?: number;
  /** How long a node's liveness must be gone before its CIDRs are reclaimed (ms), default 10 min. */
  reclaimGraceMs?: number;
  /** Interval of reclaim checks (ms), default grace / 4 bounded to [500 ms, 60 s]. */
  reclaimCheckMs?: number;
  /** Per-request deadline (ms), default 5000. */
  requestTimeoutMs?: number;
  /** Maximum backoff between reconnection attempts (ms), default 5000. */
  maxBackoffMs?: number;
  log?: Logger;
  /** Injected store (tests); when set, endpoints/tls/auth are ignored. */
  store?: Store;
  /** Whether an endpoint netns path exists (tests). */
  netnsExists?: (path: string) => boolean;
}

export interface Readiness {
  ready: boolean;
  /** Why not ready, or why degraded; "ok" otherwise. */
  reason: string;
  /** Working from cached state because etcd is unreachable (the kernel keeps what it has). */
  degraded: boolean;
}

export interface ClusterStatus extends Readiness {
  node: string;
  podCidrs: Record<string, string>;
  collections: CollectionHealth[];
  lease: ReturnType<LeaseKeeper['health']>;
  errors: string[];
  embedded?: EmbeddedHealth;
}

export class ClusterState {
  readonly keys: Keys;
  readonly nodes: Reflector<NodeRecord>;
  readonly alive: Reflector<AliveValue>;
  readonly cidrs: Reflector<CidrClaim & { pool: string; cidr: string }>;
  readonly endpoints: Reflector<EndpointRecord>;
  readonly identities: Reflector<IdentityRecord>;
  readonly services: Reflector<ServiceRecord>;
  readonly policies: Reflector<PolicyRecord>;
  private readonly collections: Reflector<unknown>[];
  private store!: Store;
  private embedded: EmbeddedEtcd | null = null;
  private lease!: LeaseKeeper;
  private ipam: EndpointIpam | null = null;
  private idAlloc!: IdentityAllocator;
  private readonly opts: ClusterStateOptions;
  private readonly podCidrs: Record<string, string> = {};
  private errors = new Map<string, string>();
  private abort = new AbortController();
  private wakeSupervisor: (() => void) | null = null;
  private supervisorKicked = false;
  private loops: Promise<void>[] = [];
  private registered = false;
  private readonly tracker: ReclaimTracker;
  private readonly ownedStore: boolean;
  /** This node's record fields; mutable (the VTEP MAC is learnt after start). */
  private readonly node: ClusterStateOptions['node'];
  private readonly cidrListeners = new Set<(cidrs: Record<string, string>) => void>();

  constructor(opts: ClusterStateOptions) {
    const nameIssue = nodeNameIssue(opts.node.name);
    if (nameIssue) throw new StateError('BAD_CONFIG', `node name: ${nameIssue}`);
    for (const p of opts.pools) validatePool(p);
    this.opts = opts;
    this.node = { ...opts.node };
    this.keys = new Keys(opts.prefix);
    this.tracker = new ReclaimTracker(opts.reclaimGraceMs ?? 600_000);
    this.ownedStore = !opts.store;
    if (opts.store) this.store = opts.onRequest ? new InstrumentedStore(opts.store, opts.onRequest) : opts.store;
    const k = this.keys;
    const limiter = new TokenBucket(8, 4);
    const backoff = { baseMs: 200, maxMs: opts.maxBackoffMs ?? 5000 };
    const mk = <T>(name: string, prefix: string, decode: (key: string, raw: string) => Decoded<T>): Reflector<T> =>
      new Reflector<T>(
        () => this.store,
        { name, prefix, decode, limiter, backoff, ...(opts.onReject ? { onReject: opts.onReject } : {}), ...(opts.log ? { log: opts.log } : {}) },
      );
    // Every record is admitted against the cluster's pools before anything uses it (admission.ts).
    const rules: AdmissionRules = { pools: opts.pools };
    this.nodes = mk('nodes', k.nodes, (key, raw) => admitNode(key, raw, rules));
    this.alive = mk('alive', k.alive, (key, raw): Decoded<AliveValue> => {
      const a = admitAlive(key, raw, rules);
      return a.rejected ? { ok: true, value: a.value, note: a.rejected } : { ok: true, value: a.value };
    });
    this.cidrs = mk('cidrs', k.cidrs, (key, raw) => admitCidrClaim(k, key, raw, rules));
    this.endpoints = mk('endpoints', k.endpoints, (key, raw) => admitEndpoint(key, raw, rules));
    this.identities = mk('identities', k.identities, (_k, raw) => admitIdentity(raw));
    this.services = mk('services', k.services, (key, raw) => admitService(key, raw));
    this.policies = mk('policies', k.policies, (_k, raw) => admitPolicy(raw));
    this.collections = [this.nodes, this.alive, this.cidrs, this.endpoints, this.identities, this.services, this.policies] as Reflector<unknown>[];
  }

  private get name(): string {
    return this.opts.node.name;
  }

  /** Starts everything; returns at once (etcd may be unreachable: the daemon keeps serving). */
  async start(): Promise<void> {
    if (!this.opts.store) {
      let endpoints = this.opts.endpoints ?? [];
      if (endpoints.length === 0) {
        if (!this.opts.stateDir) throw new StateError('BAD_CONFIG', 'no etcd endpoints and no state directory for an embedded etcd');
        const e = this.opts.embedded ?? {};
        this.embedded = new EmbeddedEtcd({
          stateDir: this.opts.stateDir,
          name: this.name,
          ...(e.binary !== undefined ? { binary: e.binary } : {}),
          ...(this.opts.log ? { log: this.opts.log } : {}),
        });
        // Not awaited: the reflectors and the lease retry until etcd answers (start never blocks).
        endpoints = this.embedded.launch();
      }
      const raw = new EtcdStore({
        endpoints,
        ...(this.opts.tls ? { tls: this.opts.tls } : {}),
        ...(this.opts.auth ? { auth: this.opts.auth } : {}),
        requestTimeoutMs: this.opts.requestTimeoutMs ?? 5000,
      });
      this.store = this.opts.onRequest ? new InstrumentedStore(raw, this.opts.onRequest) : raw;
    }
    this.abort = new AbortController();
    this.lease = new LeaseKeeper(this.store, this.opts.leaseTtlSeconds ?? 10, {
      backoff: { baseMs: 200, maxMs: this.opts.maxBackoffMs ?? 5000 },
      ...(this.opts.log ? { log: this.opts.log } : {}),
    });
    this.idAlloc = new IdentityAllocator(this.store, this.keys, this.name);
    // After a lease is re-granted, re-assert everything else this node owns too.
    this.lease.onAsserted(() => this.kick());
    for (const c of this.collections) c.start();
    this.lease.start();
    this.loops.push(this.supervise(), this.reclaimLoop());
  }

  async stop(opts: { revokeLiveness?: boolean } = {}): Promise<void> {
    this.abort.abort();
    this.wakeSupervisor?.();
    await Promise.all(this.loops);
    this.loops = [];
    await Promise.all(this.collections.map((c) => c.stop()));
    await this.lease?.stop(opts.revokeLiveness ?? false);
    if (this.ownedStore) await this.store?.close();
    await this.embedded?.stop();
  }

  /** Resolves once every collection has its first listing and this node is registered. */
  async whenReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.readiness().ready) return;
      await sleep(50);
    }
    throw new Error(`cluster state not ready after ${timeoutMs} ms: ${this.readiness().reason}`);
  }

  /** Re-run registration (node record, CIDR claims) soon. */
  kick(): void {
    this.supervisorKicked = true;
    this.wakeSupervisor?.();
  }

  readiness(): Readiness {
    // Not connected and failed at least once: a collection still on its first attempt is
    // "waiting for the first listing", not "unreachable".
    const down = this.collections.map((c) => c.health()).filter((h) => !h.connected && h.troubleSince !== undefined);
    const notSynced = this.collections.filter((c) => !c.synced).map((c) => c.name);
    const errs = [...this.errors.values()];
    if (down.length) {
      const since = Math.min(...down.map((h) => h.troubleSince ?? Date.now()));
      // The error that started the trouble, not the latest retry's: the text must not change
      // while the situation does not.
      const last = down.find((h) => h.troubleError !== undefined)?.troubleError ?? down.find((h) => h.lastError)?.lastError ?? 'no answer yet';
      // The reason stays the same while the trouble lasts (retry counts live in status()), so
      // systemd's STATUS= and the logs change only when the situation does.
      const what = /^(AUTH|PERMISSION):/.test(last) ? 'etcd refuses nrd\'s credentials' : 'etcd unreachable';
      const reason = `${what} since ${new Date(since).toISOString()} (${shortError(last)})${this.embedded ? ` [embedded etcd, log ${this.embedded.logFile}]` : ''}`;
      // With a first listing done, the node keeps working from cached state: degraded, not down.
      return { ready: false, degraded: notSynced.length === 0, reason };
    }
    if (notSynced.length) return { ready: false, degraded: false, reason: `waiting for the first listing of ${notSynced.join(', ')}` };
    if (errs.length) return { ready: false, degraded: false, reason: errs.join('; ') };
    if (!this.registered) return { ready: false, degraded: false, reason: 'registering node and claiming pod CIDRs' };
    const l = this.lease.health();
    if (l.state !== 'ok') return { ready: false, degraded: true, reason: `liveness lease ${l.state}${l.lastError ? ` (${l.lastError})` : ''}` };
    return { ready: true, degraded: false, reason: 'ok' };
  }

  status(): ClusterStatus {
    return {
      ...this.readiness(),
      node: this.name,
      podCidrs: { ...this.podCidrs },
      collections: this.collections.map((c) => c.health()),
      lease: this.lease.health(),
      errors: [...this.errors.values()],
      ...(this.embedded ? { embedded: this.embedded.health() } : {}),
    };
  }

  /** Endpoint addresses reserved by this node since start (nrd_ipam_allocations_total). */
  ipamAllocations(): number {
    return this.ipam?.allocations ?? 0;
  }

  /** Called with this node's pod CIDRs (by pool name) whenever they change; returns unsubscribe. */
  onOwnCidrs(fn: (cidrs: Record<string, string>) => void): () => void {
    this.cidrListeners.add(fn);
    return () => this.cidrListeners.delete(fn);
  }

  /** The other nodes as routing sees them (rule in node-view.ts). */
  remoteNodes(): RemoteNodeView[] {
    const alive = new Map(this.alive.entries().map(([k, v]) => [leaf(k), v] as const));
    return remoteNodes(this.name, this.nodes.values(), alive, this.cidrs.values());
  }

  /** Records of nodes, liveness and CIDR claims refused on admission (nrdctl nodes shows them). */
  nodeRejections(): ({ collection: string; key: string } & Rejection)[] {
    return [this.nodes, this.alive, this.cidrs].flatMap((r) => r.rejections().map((x) => ({ collection: r.name, ...x })));
  }

  /** Whether nodes, liveness and CIDR claims all have their first listing. */
  get nodesSynced(): boolean {
    return this.nodes.synced && this.alive.synced && this.cidrs.synced;
  }

  /** Record this node's VXLAN device MAC in its node record (written at the next registration). */
  setVtepMac(mac: string): void {
    const m = mac.toLowerCase();
    if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/.test(m)) throw new StateError('INVALID', `VTEP MAC "${mac}" is not a MAC address`);
    if (this.node.vtepMac === m) return;
    this.node.vtepMac = m;
    this.kick();
  }

  /** This node's pod CIDRs by pool name (empty until claimed). */
  ownCidrs(): Record<string, string> {
    return { ...this.podCidrs };
  }

  // ---- registration and re-assertion -----------------------------------------------------------

  private async supervise(): Promise<void> {
    const signal = this.abort.signal;
    let attempt = 0;
    while (!signal.aborted) {
      this.supervisorKicked = false;
      let ok = true;
      try {
        await this.ensureRegistered();
      } catch (e) {
        ok = false;
        if (!isStoreError(e)) this.opts.log?.error({ err: e }, 'node registration failed');
      }
      if (signal.aborted) break;
      attempt = ok ? 0 : attempt + 1;
      const wait = ok ? 60_000 : backoffDelay(attempt, { baseMs: 200, maxMs: this.opts.maxBackoffMs ?? 5000 });
      if (!this.supervisorKicked) {
        await new Promise<void>((r) => {
          const t = setTimeout(done, wait);
          function done(): void {
            clearTimeout(t);
            r();
          }
          this.wakeSupervisor = done;
        });
        this.wakeSupervisor = null;
      }
    }
  }

  /** Claim CIDRs (or re-find them), write the node record if it differs, own the liveness key. */
  private async ensureRegistered(): Promise<void> {
    let changed = false;
    try {
      await this.claimCidrs(() => (changed = true));
    } finally {
      // One event for all families (and still one when a later pool failed: the others stand).
      if (changed) this.emitCidrs();
    }
    await this.finishRegistration(this.opts.pools.map((p) => this.podCidrs[p.name]!));
  }

  /** Claim (or re-find) one CIDR per pool; `changed` is called when one differs from before. */
  private async claimCidrs(changed: () => void): Promise<void> {
    for (const pool of this.opts.pools) {
      const staticCidr = this.opts.staticCidrs?.[pool.name];
      try {
        const r = await allocateNodeCidr(this.store, this.keys, pool, this.name, {
          ...(staticCidr ? { staticCidr } : {}),
          ...(this.opts.log ? { log: this.opts.log } : {}),
        });
        if (this.podCidrs[pool.name] !== r.cidr) {
          this.opts.log?.info({ pool: pool.name, cidr: r.cidr, reused: r.reused }, 'pod CIDR');
          this.podCidrs[pool.name] = r.cidr;
          changed();
        }
        this.errors.delete(`pool:${pool.name}`);
      } catch (e) {
        if (e instanceof StateError) this.errors.set(`pool:${pool.name}`, e.message);
        throw e;
      }
    }
  }

  private async finishRegistration(cidrs: string[]): Promise<void> {
    if (this.ipam) this.ipam.setCidrs(cidrs);
    else this.ipam = new EndpointIpam(this.store, this.keys, this.name, cidrs, { ...(this.opts.log ? { log: this.opts.log } : {}), ...(this.opts.netnsExists ? { netnsExists: this.opts.netnsExists } : {}) });
    const n = this.node;
    const rec: NodeRecord = {
      name: n.name,
      address: n.address,
      ...(n.vtepMac ? { vtepMac: n.vtepMac } : {}),
      ...(n.asn !== undefined ? { asn: n.asn } : {}),
      podCidrs: cidrs,
      version: n.version ?? '0.1.0',
      capabilities: n.capabilities ?? [],
    };
    const value = JSON.stringify(rec);
    const { kv } = await this.store.get(this.keys.node(this.name));
    if (kv?.value !== value) await this.store.put(this.keys.node(this.name), value);
    this.lease.own(this.keys.aliveKey(this.name), JSON.stringify({ address: n.address }));
    this.registered = true;
  }

  private emitCidrs(): void {
    const c = { ...this.podCidrs };
    for (const fn of this.cidrListeners) {
      try {
        fn(c);
      } catch (e) {
        this.opts.log?.error({ err: e }, 'own-CIDR consumer threw');
      }
    }
  }

  // ---- reclaim ---------------------------------------------------------------------------------

  private async reclaimLoop(): Promise<void> {
    const signal = this.abort.signal;
    const grace = this.opts.reclaimGraceMs ?? 600_000;
    const every = this.opts.reclaimCheckMs ?? Math.min(60_000, Math.max(500, grace / 4));
    while (!signal.aborted) {
      await sleep(every, signal);
      if (signal.aborted) break;
      // Only judge from a complete, connected view: a node that looks dead because our watch
      // is behind must not lose its CIDR.
      if (![this.cidrs, this.alive].every((c) => c.synced && c.health().connected)) continue;
      const owners = this.cidrs.values().map((c) => c.node).filter((n) => n !== this.name);
      const alive = new Set(this.alive.entries().map(([k]) => leaf(k)));
      for (const node of this.tracker.observe(Date.now(), owners, alive)) {
        try {
          await reclaimNode(this.store, this.keys, node, { ...(this.opts.log ? { log: this.opts.log } : {}) });
          this.tracker.forget(node);
        } catch (e) {
          this.opts.log?.info({ node, err: (e as Error).message }, 'reclaim skipped');
        }
      }
    }
  }

  /**
   * A node name from outside (the API) as nrd keys it: node.name's rule (a host name), lower case.
   * Anything else (a "/" above all) would turn into other keys and prefixes.
   */
  checkNodeName(name: string): string {
    const issue = nodeNameIssue(name.toLowerCase());
    if (issue) throw new StateError('INVALID', `node name: ${issue}`);
    return name.toLowerCase();
  }

  /** Free a node's CIDRs, endpoints and addresses now (`nrdctl node decommission NAME`). */
  async decommission(name: string, opts: { force?: boolean } = {}): Promise<string[]> {
    const node = this.checkNodeName(name);
    if (node === this.name && !opts.force) throw new StateError('INVALID', 'refusing to decommission this node itself');
    const freed = await reclaimNode(this.store, this.keys, node, { ...opts, ...(this.opts.log ? { log: this.opts.log } : {}) });
    this.tracker.forget(node);
    return freed;
  }

  // ---- endpoints -------------------------------------------------------------------------------

  private requireIpam(): EndpointIpam {
    if (!this.ipam) throw new StateError('UNAVAILABLE', 'node has no pod CIDR yet');
    return this.ipam;
  }

  /** Create an endpoint: identity for its labels, addresses from this node's CIDRs. Idempotent. */
  async createEndpoint(spec: Omit<EndpointSpec, 'identity'>): Promise<EndpointRecord> {
    const ipam = this.requireIpam();
    const identity = await this.idAlloc.acquire(spec.labels ?? {}, spec.id);
    return ipam.create({ ...spec, identity });
  }

  async deleteEndpoint(id: string): Promise<boolean> {
    const ipam = this.requireIpam();
    const { kv } = await this.store.get(this.keys.endpoint(this.name, id));
    const rec = kv ? decodeEndpoint(kv.value) : null;
    const gone = await ipam.delete(id);
    if (rec?.identity !== undefined) await this.idAlloc.release(rec.identity, id);
    return gone;
  }

  /** GC endpoints whose netns vanished, and identity references of gone nodes/endpoints. */
  async gcEndpoints(): Promise<{ endpoints: string[]; identities: number[] }> {
    const ipam = this.requireIpam();
    const r = await ipam.gc();
    const mine = await this.store.list(this.keys.nodeEndpoints(this.name));
    const myIds = new Set(mine.kvs.map((kv) => leaf(kv.key)));
    const nodes = new Set((await this.store.list(this.keys.nodes)).kvs.map((kv) => leaf(kv.key)));
    nodes.add(this.name);
    const ids = await this.idAlloc.gc(nodes, myIds);
    return { endpoints: r.endpoints, identities: ids };
  }

  // ---- services and policies (validated on write; nothing written when invalid) ----------------

  async setService(input: unknown): Promise<Result<ServiceRecord>> {
    const r = validateService(input);
    if (r.ok) await this.store.put(this.keys.service(r.value.name), JSON.stringify(r.value));
    return r;
  }

  async deleteService(name: string): Promise<boolean> {
    if (!isValidName(name)) return false;
    const { kv } = await this.store.get(this.keys.service(name));
    if (!kv) return false;
    await this.store.delete(this.keys.service(name));
    return true;
  }

  async listServices(): Promise<ServiceRecord[]> {
    const l = await this.store.list(this.keys.services);
    // As the datapath sees them: a record refused by admission (see rejections) is not listed.
    return l.kvs.flatMap((kv) => {
      const a = admitService(kv.key, kv.value);
      return a.ok ? [a.value] : [];
    });
  }

  async setPolicy(input: unknown): Promise<Result<PolicyRecord>> {
    const r = validatePolicy(input);
    if (r.ok) await this.store.put(this.keys.policy(r.value.name), JSON.stringify(r.value));
    return r;
  }

  async deletePolicy(name: string): Promise<boolean> {
    if (!isValidName(name)) return false;
    const { kv } = await this.store.get(this.keys.policy(name));
    if (!kv) return false;
    await this.store.delete(this.keys.policy(name));
    return true;
  }

  async listPolicies(): Promise<PolicyRecord[]> {
    const l = await this.store.list(this.keys.policies);
    return l.kvs.map((kv) => decodePolicy(kv.value)).filter((s): s is PolicyRecord => s !== null);
  }
}

/** The gist of an etcd/grpc error for a one-line reason: the errno or gRPC status, not the noise. */
export function shortError(text: string): string {
  const errno = /\b(ECONNREFUSED|ECONNRESET|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|ENOTFOUND)\b/.exec(text);
  if (errno) return errno[1]!;
  if (/deadline/i.test(text)) return 'request timed out';
  if (/^AUTH:/.test(text)) return `authentication failed: ${text.slice(5).trim().slice(0, 80)}`;
  if (/^PERMISSION:/.test(text)) return `permission denied: ${text.slice(11).trim().slice(0, 80)}`;
  if (/certificate|handshake|SSL|TLS/i.test(text)) return `TLS: ${text.replace(/^[A-Z_]+:\s*/, '').slice(0, 100)}`;
  return text.replace(/\s*\(\d{4}-\d\d-\d\dT[^)]*\)/g, '').slice(0, 100);
}
