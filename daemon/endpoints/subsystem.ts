// The endpoints subsystem: workload endpoints on this node. Add is one transaction (validate, check
// the namespace, addresses + record + reservation in one etcd txn through the state layer, veth
// pair and workload configuration, host routes through the endpoint owner) that leaves nothing
// behind when any step fails; delete removes all of it, also when the namespace is gone. The set of
// local endpoints is level-triggered: on start and every few seconds it is recomputed from this
// node's etcd records and the "nrdv…" links (adopt what exists, re-plumb a record whose link is
// missing, garbage-collect one whose namespace is gone), handed to the endpoint owner (host routes,
// neighbours, stale links) and to the datapath (onEndpoints).
// Kernel interfaces: through EndpointPlumber (plumbing.ts) and EndpointKernelOwner.
import type { EndpointKernelSpec, RejectedEndpoint } from '../kernel/endpoint-owner.js';
import type { ReconcileReport } from '../kernel/reconciler.js';
import { ENDPOINT_GATEWAY_MAC, ENDPOINT_GATEWAY_V4, ENDPOINT_GATEWAY_V6, type LocalEndpoint } from '../lib/endpoint-types.js';
import { NrdError } from '../lib/errors.js';
import type { ReadinessReporter } from '../lib/health.js';
import type { Logger } from '../lib/log.js';
import type { Subsystem, SubsystemContext } from '../lib/subsystem.js';
import type { ConfigChange, NrdConfig } from '../config/types.js';
import { familyOf } from '../kernel/addr.js';
import type { EndpointRecord, Labels } from '../state/records.js';
import type { EndpointView, LocalEndpointsResponse } from './api-types.js';
import { DEFAULT_IFNAME, endpointMtu, hostIfName, kernelSpecs, localEndpoints, randomMac, validateAddRequest, type KnownEndpoint } from './model.js';
import type { EndpointPlumber } from './plumbing.js';

/** The state layer as the endpoints need it (main.ts adapts the state module's typed queries). */
export interface EndpointRecordStore {
  /** This node's name and endpoint records as the watch cache holds them; throws NrdError
   * ('unavailable') while the state layer is not running. */
  local(): { node: string; synced: boolean; endpoints: EndpointRecord[] };
  /** Identity, addresses, reservation and record in etcd (one transaction for the last three). */
  create(spec: { id: string; netns: string; ifname: string; mac: string; labels: Labels }): Promise<EndpointRecord>;
  /** Record, reservations and identity reference; false when there was no record. */
  delete(id: string): Promise<boolean>;
}

/** The endpoint owner (kernel/endpoint-owner.ts) as this subsystem drives it. */
export interface EndpointOwnerPort {
  setEndpoints(specs: readonly EndpointKernelSpec[], synced: boolean): RejectedEndpoint[];
  start(): Promise<ReconcileReport>;
  stop(): void;
  runNow(): Promise<ReconcileReport>;
}

export interface EndpointsDeps {
  store: EndpointRecordStore;
  owner: EndpointOwnerPort;
  /** Built lazily at start (a netlink socket in nrd's namespace); tests pass a fake. */
  plumber: () => EndpointPlumber;
  /** How often the local set is recomputed from etcd and the links (default 2 s). */
  resyncMs?: number;
}

interface Entry extends KnownEndpoint {
  /** Seen in the etcd watch cache at least once (before that, its absence there means nothing). */
  seen: boolean;
  error?: string;
  /** MTU of the veth pair. */
  mtu?: number;
}

const DEFAULT_RESYNC_MS = 2000;
/** How long a delete of a garbage-collected endpoint still succeeds (then: not_found). */
const COLLECTED_TTL_MS = 10 * 60_000;
const COLLECTED_MAX = 4096;

export class EndpointsSubsystem implements Subsystem {
  readonly name = 'endpoints';
  private readonly known = new Map<string, Entry>();
  /** Deleted here, still in the watch cache: not to be adopted again. */
  private readonly deleting = new Set<string>();
  /** Garbage-collected (namespace gone) and not yet deleted by the operator, with when: the
   * workload's own delete (`ip netns del X; nrdctl endpoint del X`, a CNI DEL after the runtime
   * removed the namespace) races the resync and must not answer "no endpoint" for the GC's work. */
  private readonly collected = new Map<string, number>();
  private readonly listeners = new Set<(eps: LocalEndpoint[]) => void>();
  private lastEmitted: string | undefined;
  private lastLocal: LocalEndpoint[] = [];
  private chain: Promise<unknown> = Promise.resolve();
  private plumber: EndpointPlumber | undefined;
  private timer: NodeJS.Timeout | undefined;
  private log: Logger | undefined;
  private ready: ReadinessReporter | undefined;
  private synced = false;
  private lastReason = '';
  private config: NrdConfig | undefined;

  constructor(private readonly deps: EndpointsDeps) {}

  /** `fn` gets the whole set of this node's endpoints whenever it changes (at once if known). */
  onEndpoints(fn: (eps: LocalEndpoint[]) => void): () => void {
    this.listeners.add(fn);
    if (this.lastEmitted !== undefined) fn(this.lastLocal);
    return () => this.listeners.delete(fn);
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  /** The device endpoints are plumbed with, and whether the kernel offers netkit. */
  private device: { kind: 'veth'; netkit: string } = { kind: 'veth', netkit: 'not probed yet' };

  async start(ctx: SubsystemContext): Promise<void> {
    this.log = ctx.log;
    this.ready = ctx.ready;
    this.config = ctx.config;
    this.plumber = this.deps.plumber();
    // netkit (kernel 6.7+, a veth replacement whose BPF runs inside the device) is probed and
    // reported; nrd plumbs veth pairs, the device its datapath is built and tested on.
    const netkit = await this.plumber.probeNetkit().catch((e: unknown) => (e instanceof Error ? e.message : String(e)));
    this.device = { kind: 'veth', netkit: netkit === null ? 'present (not used: nrd plumbs veth pairs)' : `absent (${netkit})` };
    ctx.log.info(this.device, 'endpoint device');
    // Nothing of ours is deleted before the first synced pass: the owner starts with an empty,
    // unsynced desired set and only adopts.
    this.deps.owner.setEndpoints([], false);
    await this.deps.owner.start();
    this.report('waiting for this node\'s endpoint list from etcd');
    await this.resync();
    this.timer = setInterval(() => void this.resync(), this.deps.resyncMs ?? DEFAULT_RESYNC_MS);
    this.timer.unref();
  }

  /** endpoints.mtu and the routing keys it depends on apply to endpoints plumbed from now on. */
  reload(_changes: readonly ConfigChange[], next: NrdConfig): void {
    this.config = next;
  }

  /** The MTU for a new veth pair (endpointMtu over the running config and the uplink). */
  private async mtu(plumber: EndpointPlumber): Promise<number | undefined> {
    const c = this.config;
    if (!c?.endpoints || !c.routing || !c.node) return undefined;
    let fam: 4 | 6 = 4;
    try {
      fam = familyOf(c.node.address);
    } catch {
      // node.address unset: the router falls back to the uplink's IPv4 address first.
    }
    const needUplink = !(c.endpoints.mtu > 0) && (c.routing.mode === 'native' || !(c.routing.vxlan.mtu > 0));
    const uplinkMtu = needUplink ? await plumber.uplinkMtu(c.node.interface, c.node.address).catch(() => undefined) : undefined;
    const mtu = endpointMtu({ configured: c.endpoints.mtu, mode: c.routing.mode, vxlanMtu: c.routing.vxlan.mtu, uplinkMtu, underlayFamily: fam });
    if (mtu === undefined) this.log?.warn({ interface: c.node.interface, address: c.node.address }, 'uplink not found: endpoint veth keeps the kernel default MTU (set endpoints.mtu)');
    return mtu;
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.chain.catch(() => undefined);
    this.deps.owner.stop();
    this.plumber?.close();
    this.plumber = undefined;
  }

  status(): unknown {
    return { device: this.device, synced: this.synced, endpoints: this.known.size, notReady: [...this.known.values()].filter((e) => e.hostIfindex === 0).map((e) => e.record.id) };
  }

  // ---- commands and queries (the control API's) --------------------------------------------------

  /** Creates an endpoint; on any failure nothing is left behind. */
  async add(body: unknown): Promise<EndpointView> {
    const req = validateAddRequest(body); // before queueing: bad input answers at once
    return this.exclusive(async () => {
      const plumber = this.requirePlumber();
      const local = this.deps.store.local();
      if (this.known.has(req.name) || local.endpoints.some((e) => e.id === req.name)) throw new NrdError('conflict', 'conflict', `endpoint ${req.name} exists already on node ${local.node}`);
      if (this.deleting.has(req.name)) throw new NrdError('conflict', 'conflict', `endpoint ${req.name} is being deleted; retry in a moment`);
      const hostIf = hostIfName(req.name);
      const clash = [...this.known.values()].find((e) => e.hostIf === hostIf);
      if (clash) throw new NrdError('conflict', 'conflict', `host interface ${hostIf} of ${req.name} is taken by endpoint ${clash.record.id} (hash collision: choose another name)`);
      await plumber.check(req.netns, req.ifname);
      if ((await plumber.hostLinks()).has(hostIf)) {
        // A leftover of ours that no record names (a crash between the kernel work and the
        // rollback): it is not a workload's, so it goes.
        this.log?.warn({ endpoint: req.name, hostIf }, 'deleting a leftover host veth before reuse');
        await plumber.remove(hostIf);
      }
      const mac = randomMac();
      const record = await this.deps.store.create({ id: req.name, netns: req.netns, ifname: req.ifname, mac, labels: req.labels });
      // Listed before the link exists, so that no owner pass in between takes it for stale.
      const entry: Entry = { record, hostIf, hostIfindex: 0, seen: false };
      this.known.set(req.name, entry);
      this.publish();
      try {
        const mtu = await this.mtu(plumber);
        if (mtu !== undefined) entry.mtu = mtu;
        entry.hostIfindex = await plumber.plumb({ hostIf, netns: req.netns, ifname: req.ifname, mac: record.mac ?? mac, ips: record.ips, ...(mtu !== undefined ? { mtu } : {}) });
      } catch (e) {
        this.known.delete(req.name);
        this.publish();
        await this.deps.store.delete(req.name).catch((err: unknown) => this.log?.error({ err, endpoint: req.name }, 'rollback: deleting the endpoint record failed (GC will free it)'));
        throw e instanceof NrdError ? e : new NrdError('unavailable', 'kernel', `endpoint ${req.name}: ${e instanceof Error ? e.message : String(e)}`);
      }
      this.publish();
      await this.deps.owner.runNow();
      this.log?.info({ endpoint: req.name, hostIf, ips: record.ips, netns: req.netns }, 'endpoint added');
      return this.view(entry, local.node);
    });
  }

  /** Removes an endpoint (veth, routes, record, reservations). An unknown name is not_found. */
  delete(name: string): Promise<void> {
    return this.exclusive(async () => {
      const plumber = this.requirePlumber();
      const local = this.deps.store.local();
      const entry = this.known.get(name);
      // Deleted here before, still in the lagging watch cache: that is not an endpoint any more.
      const inCache = local.endpoints.some((e) => e.id === name) && !this.deleting.has(name);
      const hostIf = hostIfName(name);
      const hadLink = await plumber.remove(hostIf);
      if (entry || inCache) this.deleting.add(name);
      this.known.delete(name);
      this.publish();
      const hadRecord = await this.deps.store.delete(name);
      const wasCollected = this.collected.delete(name);
      if (!entry && !inCache && !hadRecord && !hadLink) {
        if (!wasCollected) throw new NrdError('not_found', 'not_found', `no endpoint ${name} on node ${local.node}`);
        this.log?.info({ endpoint: name, hostIf }, 'endpoint deleted (garbage-collected already: its network namespace was gone)');
        return;
      }
      await this.deps.owner.runNow();
      this.log?.info({ endpoint: name, hostIf }, 'endpoint deleted');
    });
  }

  get(name: string): EndpointView {
    const node = this.deps.store.local().node;
    const e = this.known.get(name);
    if (!e) throw new NrdError('not_found', 'not_found', `no endpoint ${name} on node ${node}`);
    return this.view(e, node);
  }

  list(): LocalEndpointsResponse {
    const node = this.deps.store.local().node;
    const endpoints = [...this.known.values()].sort((a, b) => a.record.id.localeCompare(b.record.id)).map((e) => this.view(e, node));
    return { node, synced: this.synced, endpoints };
  }

  // ---- internals -------------------------------------------------------------------------------

  private view(e: Entry, node: string): EndpointView {
    const r = e.record;
    return {
      name: r.id,
      node,
      netns: r.netns,
      ifname: r.ifname ?? DEFAULT_IFNAME,
      ips: [...r.ips],
      gateways: r.ips.map((ip) => (ip.includes(':') ? ENDPOINT_GATEWAY_V6 : ENDPOINT_GATEWAY_V4)),
      ...(r.mac ? { mac: r.mac } : {}),
      gatewayMac: ENDPOINT_GATEWAY_MAC,
      ...(e.mtu !== undefined ? { mtu: e.mtu } : {}),
      hostIfname: e.hostIf,
      hostIfindex: e.hostIfindex,
      identity: r.identity ?? 0,
      labels: { ...r.labels },
      state: e.hostIfindex !== 0 ? 'ready' : e.seen ? 'no-link' : 'pending',
      ...(e.error ? { error: e.error } : {}),
    };
  }

  private requirePlumber(): EndpointPlumber {
    if (!this.plumber) throw new NrdError('unavailable', 'unavailable', 'the endpoints subsystem is not running');
    return this.plumber;
  }

  /** One operation at a time: add, delete and resync each see the others' results. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private report(reason: string | undefined): void {
    const key = reason ?? '';
    if (key === this.lastReason) return;
    this.lastReason = key;
    this.ready?.(reason === undefined ? { ready: true } : { ready: false, reason });
  }

  /** Hands the current set to the owner and the datapath (the latter only when it changed). */
  private publish(): void {
    const all = [...this.known.values()];
    // A pending endpoint's link is kept (no routes yet) so that no pass deletes it while plumbed.
    const specs = kernelSpecs(all);
    for (const e of all) if (e.hostIfindex === 0) specs.push({ hostIf: e.hostIf, addresses: [] });
    this.deps.owner.setEndpoints(specs, this.synced);
    const eps = localEndpoints(all);
    const text = JSON.stringify(eps);
    if (text === this.lastEmitted) return;
    this.lastEmitted = text;
    this.lastLocal = eps;
    for (const fn of this.listeners) {
      try {
        fn(eps);
      } catch (err) {
        this.log?.error({ err }, 'endpoints consumer threw');
      }
    }
  }

  /** Names the GC removed, kept for COLLECTED_TTL_MS (and at most COLLECTED_MAX of them). */
  private rememberCollected(id: string): void {
    const now = Date.now();
    for (const [k, at] of this.collected) if (now - at > COLLECTED_TTL_MS) this.collected.delete(k);
    this.collected.delete(id);
    this.collected.set(id, now);
    while (this.collected.size > COLLECTED_MAX) this.collected.delete(this.collected.keys().next().value!);
  }

  /** Recomputes the local set from etcd and the links (never throws). */
  resync(): Promise<void> {
    return this.exclusive(() => this.resyncLocked()).catch((err: unknown) => {
      this.log?.warn({ err }, 'endpoint resync failed');
      this.report(`resync failed: ${err instanceof Error ? err.message : String(err)}`);
    });
  }

  private async resyncLocked(): Promise<void> {
    const plumber = this.plumber;
    if (!plumber) return;
    let local;
    try {
      local = this.deps.store.local();
    } catch (e) {
      this.report(`cluster state unavailable: ${e instanceof Error ? e.message : String(e)}`);
      return;
    }
    if (!local.synced) {
      this.report('waiting for this node\'s endpoint list from etcd');
      return;
    }
    const links = await plumber.hostLinks();
    const records = new Map(local.endpoints.map((r) => [r.id, r] as const));
    for (const id of [...this.deleting]) if (!records.has(id)) this.deleting.delete(id);
    for (const rec of records.values()) {
      if (this.deleting.has(rec.id)) continue;
      const hostIf = hostIfName(rec.id);
      const link = links.get(hostIf);
      const prev = this.known.get(rec.id);
      if (link) {
        this.known.set(rec.id, { record: rec, hostIf, hostIfindex: link.index, seen: true, mtu: link.mtu });
        continue;
      }
      if (!plumber.netnsExists(rec.netns)) {
        // The workload is gone (its namespace with it, and so the veth): free its addresses.
        this.log?.info({ endpoint: rec.id, netns: rec.netns }, 'endpoint GC: its network namespace is gone');
        this.known.delete(rec.id);
        this.deleting.add(rec.id);
        this.rememberCollected(rec.id);
        await this.deps.store.delete(rec.id).catch((err: unknown) => this.log?.warn({ err, endpoint: rec.id }, 'endpoint GC: delete failed (retried)'));
        continue;
      }
      // A record without its link (nrd died between the etcd write and the kernel work, or the
      // link was deleted by hand): plumb it again with the recorded addresses and MAC.
      const entry: Entry = { record: rec, hostIf, hostIfindex: 0, seen: true };
      this.known.set(rec.id, entry);
      this.publish();
      try {
        const mtu = await this.mtu(plumber);
        if (mtu !== undefined) entry.mtu = mtu;
        entry.hostIfindex = await plumber.plumb({ hostIf, netns: rec.netns, ifname: rec.ifname ?? DEFAULT_IFNAME, mac: rec.mac ?? randomMac(), ips: rec.ips, ...(mtu !== undefined ? { mtu } : {}) });
        this.log?.info({ endpoint: rec.id, hostIf }, 'endpoint re-plumbed');
      } catch (e) {
        entry.error = e instanceof Error ? e.message : String(e);
        if (prev?.error !== entry.error) this.log?.warn({ endpoint: rec.id, err: entry.error }, 'endpoint has no host link and could not be plumbed again');
      }
    }
    for (const [id, e] of [...this.known]) {
      if (records.has(id)) continue;
      if (!e.seen) continue; // created here, not yet back from the watch
      // Its record went away elsewhere (decommission, another GC): so does its link.
      this.log?.info({ endpoint: id, hostIf: e.hostIf }, 'endpoint record gone: removing its link');
      this.known.delete(id);
      await plumber.remove(e.hostIf).catch((err: unknown) => this.log?.warn({ err, hostIf: e.hostIf }, 'removing link failed (the owner retries)'));
    }
    this.synced = true;
    this.publish();
    const broken = [...this.known.values()].filter((e) => e.hostIfindex === 0 && e.seen);
    this.report(broken.length ? `${broken.length} endpoint(s) without host link: ${broken.map((e) => `${e.record.id}: ${e.error ?? 'pending'}`).join('; ')}` : undefined);
  }
}
