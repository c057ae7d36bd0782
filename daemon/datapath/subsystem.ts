// The datapath subsystem: loads nrd's BPF objects through libbpf, attaches the XDP prefilter to the
// node's uplink (node.interface) with the deny list from datapath.xdpPrefilter.deny, and keeps the
// pinned links and maps under datapath.pinPath across restarts. The libbpf work runs in a worker
// thread (host.ts), so loading and verifying never delays the BGP speaker's keepalives.
// A datapath that cannot load (no bpffs at pinPath and none mountable, old kernel, verifier
// refusal) leaves the node routing: the subsystem reports not ready with the failing call and the
// fix, and retries; it does not stop nrd. Its HTTP view is served by api/datapath-routes.ts.
//
// The endpoint datapath: setEndpoints() hands over the workloads' current set (level-triggered,
// latest wins, may come before start); nrd_endpoint goes on each host veth, nrd_netdev on the
// uplink and the VXLAN device. Masquerade runs in nrd_netdev, or, where that cannot load or
// attach (or datapath.masqueradeBackend is nftables), in nftables ("table inet nrd"); which one,
// and why, is in the view. A timer deletes expired masquerade flows from the NAT map and expired
// service connections from nrd_ct.
//
// Services: setServices() hands over the whole service set (level-triggered, may come before
// start); services.ts writes it into the maps nrd_endpoint pinned, once the endpoint datapath has
// loaded, and replans on config changes (services.*, also the knobs lb_maglev_m and lb_flags).
// The socket hooks (sock.ts, for processes on the node) go on services.cgroupPath once those maps
// exist, with the same knobs; a failure to attach them is shown, never fatal, and they stay
// attached (pinned) over a stop like the other links.
import { existsSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { Counter as PromCounter, Gauge, type Registry } from 'prom-client';
import type { ConfigChange, NrdConfig } from '../config/index.js';
import { ENDPOINT_GATEWAY_MAC, type LocalEndpoint } from '../lib/endpoint-types.js';
import { NrdError } from '../lib/errors.js';
import { parseIp } from '../lib/ip.js';
import type { Subsystem, SubsystemContext } from '../lib/subsystem.js';
import type { Logger } from '../lib/log.js';
import type { ReadinessReporter } from '../lib/health.js';
import { type DatapathOptions, type DatapathStats, type DatapathStatus, defaultObjectDir } from './datapath.js';
import { type DatapathHost, type DatapathWhere, createDatapathHost } from './host.js';
import type { EndpointDpOptions } from './endpoint-dp.js';
import { type EndpointPolicyView, type PolicyInputs, PolicyDatapath } from './policy.js';
import { EventHub } from './events.js';
import { endpointNumericId } from './endpoints.js';
import type { ServiceRecord } from '../state/records.js';
import { type BackendStatus, type CtRow, type ServicesOptions, ServicesDatapath } from './services.js';
import { NRD_LB_F_DRAIN_RESET } from './services-layout.js';
import { SockLbControl, type SockLbView } from './sock-control.js';
import type { SockLbOptions } from './sock.js';
import {
  type MasqueradeMode,
  choosePortRange,
  nftDeleteScript,
  nftRuleset,
  nftTableExists,
  readLocalPortRange,
  runNft,
} from './masquerade.js';

const RETRY_MS = 10_000;
const NAT_GC_MS = 30_000;

export interface DatapathSubsystemDeps {
  /** Directory holding the built *.bpf.o objects (default: the package's bpf/). */
  objectDir?: string;
  /** Where libbpf runs (default: a worker thread). */
  where?: DatapathWhere;
  /** Registry for the nrd_datapath_… metrics. */
  metrics?: Registry;
  /** The nft binary (default: "nft" from PATH). */
  nft?: string;
  /** Masquerade source ports; default: chosen clear of ip_local_port_range at start. */
  portRange?: { min: number; max: number };
}

/** Which masquerade is active and why. */
export interface MasqueradeView {
  mode: MasqueradeMode;
  reason: string;
}

/** What GET /v1/datapath shows: the manager's status, the counters once loaded, the last error. */
export interface DatapathView {
  status: DatapathStatus | null;
  stats: DatapathStats | null;
  lastError: string | null;
  masquerade: MasqueradeView;
  /** Endpoints handed over, and how many have their program attached. */
  endpoints: { wanted: number; attached: number };
  /** The socket hooks on services.cgroupPath. */
  sockLb: SockLbView;
}

/** The uplink: node.interface, else the interface holding node.address (in nrd's namespace). */
export function resolveUplink(config: NrdConfig): string | undefined {
  if (config.node.interface) return config.node.interface;
  for (const [name, addrs] of Object.entries(networkInterfaces())) {
    if (addrs?.some((a) => a.address === config.node.address)) return name;
  }
  return undefined;
}

/**
 * The node's IPv6 address for IPv6 masquerade: node.address when it is IPv6, else the first
 * global address (not link-local, as the kernel lists them) of the uplink; undefined when there
 * is none, which leaves IPv6 masquerade off. Read when the datapath reconciles, so an address
 * added later is picked up by the next reconcile (config change or retry).
 */
export function nodeIp6(config: NrdConfig, uplink: string | undefined,
  ifaces: ReturnType<typeof networkInterfaces> = networkInterfaces()): string | undefined {
  if (parseIp(config.node.address)?.family === 6) return config.node.address;
  if (uplink === undefined) return undefined;
  return ifaces[uplink]?.find((a) => a.family === 'IPv6' && !a.internal && a.scopeid === 0 && !/^fe[89ab]/i.test(a.address))?.address;
}

/** The endpoint datapath's options for a config, an endpoint set and a masquerade backend. */
export function endpointDpOptions(config: NrdConfig, endpoints: readonly LocalEndpoint[], masquerade: MasqueradeMode,
  portRange: { min: number; max: number }, uplink: string | undefined): EndpointDpOptions {
  const addr = parseIp(config.node.address);
  const ip6 = nodeIp6(config, uplink);
  return {
    endpoints,
    gwMac: ENDPOINT_GATEWAY_MAC,
    ipv6: config.cluster.podCIDRs.some((c) => c.includes(':')),
    netdevs: [uplink ?? '', config.routing.vxlan.device].filter((n) => n !== ''),
    masquerade,
    ...(addr?.family === 4 ? { nodeIp4: config.node.address } : {}),
    ...(ip6 !== undefined ? { nodeIp6: ip6 } : {}),
    portRange,
    pools: config.cluster.podCIDRs,
    exclude: config.datapath.masqueradeExclude,
    lb: lbKnobs(config),
    forwardedEvents: config.datapath.flowEvents.forwarded,
  };
}

/** nrd_lb.h's knobs (lb_maglev_m, lb_flags): nrd_endpoint and nrd_sock must agree on them. */
export function lbKnobs(config: NrdConfig): { maglevM: number; flags: number } {
  return { maglevM: config.services.maglevTableSize, flags: config.services.drain === 'reset' ? NRD_LB_F_DRAIN_RESET : 0 };
}

/** The socket hooks' options for a config (cgroupPath "": detach). */
export function sockLbOptions(config: NrdConfig, objectDir: string): SockLbOptions {
  return { pinPath: config.datapath.pinPath, objectDir, cgroupPath: config.services.cgroupPath, lb: lbKnobs(config) };
}

/** The service planner's options for a config. */
export function servicesOptions(config: NrdConfig): ServicesOptions {
  const s = config.services;
  return { lbAlgorithm: s.algorithm, maglevTableSize: s.maglevTableSize, drainMs: s.drainSeconds * 1000 };
}

export function datapathOptions(config: NrdConfig, objectDir?: string): DatapathOptions {
  const opts: DatapathOptions = {
    pinPath: config.datapath.pinPath,
    uplink: config.node.interface,
    deny: config.datapath.xdpPrefilter.deny,
    tcMode: config.datapath.attach,
  };
  if (objectDir !== undefined) opts.objectDir = objectDir;
  return opts;
}

export class DatapathSubsystem implements Subsystem {
  readonly name = 'datapath';
  private log: Logger | undefined;
  private ready: ReadinessReporter | undefined;
  private host: DatapathHost | undefined;
  private config: NrdConfig | undefined;
  private started = false;
  private stopping = false;
  private lastError: string | undefined;
  private lastStatus: DatapathStatus | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** Attempts run one after another; stop() waits for the one in flight. */
  private queue: Promise<void> = Promise.resolve();
  private endpoints: readonly LocalEndpoint[] = [];
  private portRange: { min: number; max: number } | undefined;
  /** Masquerade backend in use and why; 'bpf' until BPF proves unable. */
  private masq: MasqueradeView = { mode: 'off', reason: 'not started' };
  /** Set when BPF masquerade failed: the reason, kept until a config change retries BPF. */
  private bpfMasqFailure: string | undefined;
  private nftApplied: string | undefined;
  private gcTimer: NodeJS.Timeout | undefined;
  private readonly gcDeleted: PromCounter<'result'> | undefined;
  /** Identity policy: inputs kept from any time, written once the endpoint datapath pinned its maps. */
  private readonly policy: PolicyDatapath;
  private policyLive = false;
  /** Flow events of the worker's ring-buffer pump, fanned out to GET /v1/monitor. */
  readonly events = new EventHub(() => this.eventNames());
  /** The service set handed over (undefined: none yet) and its writer, once the maps exist. */
  private serviceRecords: readonly ServiceRecord[] | undefined;
  private services: ServicesDatapath | undefined;
  private ctEntries = 0;
  private ctDeleted = 0;
  /** Socket hooks for node processes: when to attach, re-attach or detach them. */
  private readonly sockLb = new SockLbControl();

  constructor(private readonly deps: DatapathSubsystemDeps = {}) {
    this.policy = new PolicyDatapath({
      applyPolicyOps: (a) => {
        const host = this.host;
        if (!host || !this.config) return Promise.reject(new Error('datapath not started'));
        return host.policy('policyApply', { ...a, pinPath: this.config.datapath.pinPath });
      },
    }, deps.metrics, () => this.policyLive);
    if (!deps.metrics) return;
    this.registerEventMetrics(deps.metrics);
    const registers = [deps.metrics];
    this.gcDeleted = new PromCounter({
      name: 'nrd_datapath_nat_gc_deleted_total',
      help: 'Masquerade flows removed from the BPF NAT map by the conntrack GC after their idle timeout.',
      labelNames: ['result'],
      registers,
    });
    this.gcDeleted.inc({ result: 'flows' }, 0);
    this.registerStatsMetrics(deps.metrics);
    this.registerServiceMetrics(deps.metrics);
  }

  /**
   * The workloads' endpoints on this node, level-triggered: the whole set each time, the latest
   * wins. Before start it is only kept; afterwards the datapath reconciles towards it.
   */
  setEndpoints(eps: readonly LocalEndpoint[]): void {
    this.endpoints = [...eps];
    if (this.host && !this.stopping) void this.schedule();
  }

  /**
   * The whole service set, level-triggered like setEndpoints. Written once the endpoint datapath
   * has pinned the service maps; until then only kept. Resolves once the maps hold the set (at
   * once when they do not exist yet); a failed write is counted and retried with the next change.
   */
  setServices(records: readonly ServiceRecord[]): Promise<void> {
    // A frozen set (the state layer's) is kept as is: the planner knows what changed in it.
    this.serviceRecords = Object.isFrozen(records) ? records : [...records];
    if (this.services && !this.stopping) return this.services.setServices(this.serviceRecords);
    return Promise.resolve();
  }

  /** Per service: its id and backends with their state (active, draining); empty before the maps exist. */
  serviceStatus(): Map<string, { id: number; backends: BackendStatus[] }> {
    return this.services?.status() ?? new Map();
  }

  /** The service connection table (both directions of each flow), optionally one service's. */
  async ctList(service?: string): Promise<CtRow[]> {
    const { host, pinPath, id } = this.ctTarget(service);
    const rows = await host.lb('ctList', { pinPath });
    return id === undefined ? rows : rows.filter((r) => r.serviceId === id);
  }

  /** Deletes service connections (all, or one service's); returns how many entries went. */
  async ctFlush(service?: string): Promise<number> {
    const { host, pinPath, id } = this.ctTarget(service);
    return host.lb('ctFlush', { pinPath, ...(id !== undefined ? { serviceId: id } : {}) });
  }

  private ctTarget(service: string | undefined): { host: DatapathHost; pinPath: string; id: number | undefined } {
    const host = this.host;
    if (!host || !this.services || !this.config) throw new NrdError('unavailable', 'datapath_not_loaded', 'the endpoint datapath is not loaded: no service connection table');
    if (service === undefined) return { host, pinPath: this.config.datapath.pinPath, id: undefined };
    const s = this.services.status().get(service);
    if (!s) throw new NrdError('not_found', 'not_found', `no service ${service} in the datapath`);
    return { host, pinPath: this.config.datapath.pinPath, id: s.id };
  }

  /** Policies, all endpoints, identities and nodes: level-triggered, may come before start. */
  setPolicyInputs(inputs: PolicyInputs): Promise<void> {
    return this.policy.setInputs(inputs);
  }

  /** The effective policy of an endpoint (GET /v1/policy/:endpoint). */
  explainPolicy(endpoint: string): EndpointPolicyView | undefined {
    return this.policy.explain(endpoint);
  }

  private eventNames(): Map<number, string> {
    const m = this.policy.endpointNames();
    for (const e of this.endpoints) m.set(endpointNumericId(e.id), e.id);
    return m;
  }

  /** Once the endpoint datapath is loaded: a full policy apply (rewrite and prune) and the event pump. */
  private async startPolicyAndEvents(host: DatapathHost, config: NrdConfig): Promise<void> {
    if (this.policyLive) return;
    this.policyLive = true;
    host.onEvents((batch) => this.events.publishRaw(batch));
    void this.policy.sync({ full: true });
    const r = await host.policy('eventsStart', { pinPath: config.datapath.pinPath });
    if (!r.running) this.log?.info({ reason: r.reason }, 'flow events unavailable');
  }

  /** nrd_ev_stats (events written, lost, rate-limited) read at scrape time, and events received here. */
  private registerEventMetrics(registry: Registry): void {
    const self = this;
    new PromCounter({
      name: 'nrd_datapath_flow_events_total', help: 'Flow events by outcome in BPF: emitted to the ring buffer, lost (ring full), rate_limited (drop-event bucket empty), suppressed (a drop aggregated into its flow\'s event of the last second).',
      labelNames: ['outcome'], registers: [registry],
      async collect() {
        this.reset();
        const host = self.host;
        if (!host || !self.policyLive || !self.config) return;
        const s = await host.policy('eventStats', { pinPath: self.config.datapath.pinPath });
        this.inc({ outcome: 'emitted' }, Number(s.emitted));
        this.inc({ outcome: 'lost' }, Number(s.lost));
        this.inc({ outcome: 'rate_limited' }, Number(s.rateLimited));
        this.inc({ outcome: 'suppressed' }, Number(s.suppressed));
      },
    });
    new PromCounter({
      name: 'nrd_datapath_flow_events_received_total', help: 'Flow events the daemon drained from the ring buffer, by type (undecodable: layout mismatch).',
      labelNames: ['type'], registers: [registry],
      collect() {
        this.reset();
        for (const [type, n] of self.events.counts.byType) this.inc({ type }, n);
        this.inc({ type: 'undecodable' }, self.events.counts.undecodable);
      },
    });
    new Gauge({
      name: 'nrd_datapath_monitor_subscribers', help: 'Clients streaming flow events (GET /v1/monitor).', registers: [registry],
      collect() {
        this.set(self.events.subscribers);
      },
    });
  }

  /**
   * Runs the first attempt and waits for it, so READY=1 reports the datapath as it is; the wait
   * is on the worker, and the event loop (BGP, the API) runs on meanwhile. A failed attempt does
   * not fail the start: the subsystem is not ready with the reason and retries.
   */
  async start(ctx: SubsystemContext): Promise<void> {
    this.log = ctx.log;
    this.ready = ctx.ready;
    this.config = ctx.config;
    this.stopping = false;
    this.host = createDatapathHost(this.deps.where ?? 'worker', ctx.log);
    this.sockLb.log = ctx.log;
    // A (re)start applies again: the pinned links are adopted, or repaired if they were removed.
    this.sockLb.invalidate();
    if (!this.deps.portRange) {
      try {
        this.portRange = choosePortRange(readLocalPortRange());
      } catch (err) {
        ctx.log.warn({ err }, 'masquerade port range: using 61000-65535');
        this.portRange = { min: 61000, max: 65535 };
      }
    }
    await this.schedule();
    this.gcTimer = setInterval(() => void this.natGc(), NAT_GC_MS);
    this.gcTimer.unref();
  }

  private async natGc(): Promise<void> {
    await this.ctGc();
    const host = this.host;
    if (!host || !this.started || this.masq.mode !== 'bpf') return;
    try {
      const r = await host.natGc();
      this.gcDeleted?.inc({ result: 'flows' }, r.deletedFlows);
      if (r.deletedEntries) this.log?.debug({ ...r }, 'masquerade flows expired');
    } catch (err) {
      this.log?.warn({ err }, 'NAT map GC failed');
    }
  }

  /** Expired service connections out of nrd_ct (same timeouts per state as the NAT map's). */
  private async ctGc(): Promise<void> {
    const host = this.host;
    if (!host || !this.services || !this.config) return;
    try {
      const r = await host.lb('ctGc', { pinPath: this.config.datapath.pinPath });
      this.ctEntries = r.entries;
      this.ctDeleted += r.deleted;
      if (r.deleted) this.log?.debug({ ...r }, 'service connections expired');
    } catch (err) {
      this.log?.warn({ err }, 'service conntrack GC failed');
    }
  }

  /** The service writer, made once the endpoint datapath has pinned the maps. */
  private ensureServices(host: DatapathHost, config: NrdConfig): void {
    if (this.services) return;
    const pinPath = config.datapath.pinPath;
    this.services = new ServicesDatapath({ applyServiceOps: (ops) => host.lb('servicesApply', { pinPath, ops }) }, servicesOptions(config));
    if (this.serviceRecords) void this.services.setServices(this.serviceRecords);
  }

  /** Masquerade wanted by the config: off, nftables (forced or after a BPF failure) or bpf. */
  private wantedMasquerade(config: NrdConfig): MasqueradeView {
    if (!config.datapath.masquerade) return { mode: 'off', reason: 'datapath.masquerade is false' };
    if (config.datapath.masqueradeBackend === 'nftables') return { mode: 'nftables', reason: 'datapath.masqueradeBackend is nftables' };
    if (this.bpfMasqFailure !== undefined) return { mode: 'nftables', reason: `BPF masquerade unavailable: ${this.bpfMasqFailure}` };
    return { mode: 'bpf', reason: 'nrd_netdev on the uplink egress' };
  }

  private endpointObjectsPresent(): boolean {
    const dir = this.deps.objectDir ?? defaultObjectDir();
    return existsSync(join(dir, 'nrd_endpoint.bpf.o'));
  }

  private options(config: NrdConfig, masq: MasqueradeView): ReturnType<typeof datapathOptions> {
    const opts = datapathOptions(config, this.deps.objectDir);
    if (this.endpointObjectsPresent()) {
      opts.endpointDp = endpointDpOptions(config, this.endpoints, masq.mode,
        this.deps.portRange ?? this.portRange ?? { min: 61000, max: 65535 }, resolveUplink(config));
    }
    return opts;
  }

  /** Makes nftables match the mode: nrd's table present in nftables mode, absent otherwise. */
  private async applyNft(config: NrdConfig, mode: MasqueradeMode): Promise<void> {
    const nft = this.deps.nft ?? 'nft';
    if (mode === 'nftables') {
      const script = nftRuleset({
        pools4: config.cluster.podCIDRs.filter((c) => !c.includes(':')),
        exclude4: config.datapath.masqueradeExclude.filter((c) => !c.includes(':')),
        pools6: config.cluster.podCIDRs.filter((c) => c.includes(':')),
        exclude6: config.datapath.masqueradeExclude.filter((c) => c.includes(':')),
      });
      if (script === this.nftApplied && (await nftTableExists(nft))) return;
      await runNft(script, nft);
      this.nftApplied = script;
      return;
    }
    if (this.nftApplied !== undefined || (await nftTableExists(nft))) {
      await runNft(nftDeleteScript(), nft);
      this.nftApplied = undefined;
    }
  }

  private schedule(): Promise<void> {
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    this.queue = this.queue.then(() => this.attempt()).catch((err: unknown) => this.log?.error({ err }, 'datapath attempt failed'));
    return this.queue;
  }

  private retryLater(): void {
    if (this.retry || this.stopping) return;
    this.retry = setTimeout(() => void this.schedule(), RETRY_MS);
    this.retry.unref();
  }

  private async attempt(): Promise<void> {
    const host = this.host;
    const config = this.config;
    if (!host || !config || this.stopping) return;
    let status: DatapathStatus;
    try {
      let masq = this.wantedMasquerade(config);
      status = this.started ? await host.reconcile(this.options(config, masq)) : await host.start(this.options(config, masq));
      this.started = true;
      const failure = status.endpointDp?.bpfMasqueradeError;
      if (masq.mode === 'bpf' && failure !== undefined) {
        // Fall back: nrd_endpoint must then hand outgoing traffic to the stack (knob), so the
        // endpoint programs are reconciled again with the new mode before nftables takes over.
        this.bpfMasqFailure = failure;
        this.log?.warn({ reason: failure }, 'BPF masquerade unavailable; using nftables');
        masq = this.wantedMasquerade(config);
        status = await host.reconcile(this.options(config, masq));
      }
      if (status.endpointDp || masq.mode !== 'bpf') await this.applyNft(config, masq.mode);
      if (status.endpointDp) this.ensureServices(host, config);
      if (status.endpointDp) await this.sockLb.sync(host, sockLbOptions(config, this.deps.objectDir ?? defaultObjectDir()));
      if (status.endpointDp) await this.startPolicyAndEvents(host, config);
      this.masq = masq;
      this.lastError = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
      this.log?.warn({ err }, 'datapath not loaded; retrying');
      this.ready?.({ ready: false, reason: `datapath: ${this.lastError}` });
      this.retryLater();
      return;
    }
    this.lastStatus = status;
    // The socket hooks are a detail: a node without cgroup v2 is ready to route all the same.
    if (status.ready) this.ready?.({ ready: true, detail: { attachments: status.attachments.length, sockLb: this.sockLb.view } });
    else {
      this.ready?.({ ready: false, reason: status.reason ?? 'datapath not attached', detail: status.errors });
      this.retryLater();
    }
  }

  async reload(changes: readonly ConfigChange[], next: NrdConfig): Promise<void> {
    this.config = next;
    const keys = ['node.interface', 'node.address', 'cluster.podCIDRs', 'routing.vxlan.device'];
    const mine = changes.some((c) => c.key.startsWith('datapath.') || c.key.startsWith('services.') || keys.includes(c.key));
    if (changes.some((c) => c.key.startsWith('services.'))) {
      void this.services?.setOptions(servicesOptions(next));
      this.sockLb.invalidate();
    }
    // A config change gives BPF masquerade another chance.
    if (mine) this.bpfMasqFailure = undefined;
    if (mine) await this.schedule();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.gcTimer) clearInterval(this.gcTimer);
    this.gcTimer = undefined;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    await this.queue;
    this.services?.close();
    this.services = undefined;
    // Links and maps stay pinned: the next start reuses them, traffic is never interrupted.
    const host = this.host;
    this.host = undefined;
    // The next start rewrites the policy maps in full and restarts the pump (the worker's stop ends it).
    this.policyLive = false;
    if (!host) return;
    if (this.started) await host.stop().catch((err: unknown) => this.log?.warn({ err }, 'datapath stop failed'));
    this.started = false;
    await host.close();
  }

  /** The current view (fresh from the worker): status, counters once loaded, last error. */
  async view(): Promise<DatapathView> {
    const host = this.host;
    const wanted = this.endpoints.length;
    const sockLb = this.sockLb.view;
    if (!host) return { status: null, stats: null, lastError: this.lastError ?? null, masquerade: this.masq, endpoints: { wanted, attached: 0 }, sockLb };
    const status = await host.status();
    const stats = this.started ? await host.stats() : null;
    const attached = status.endpointDp?.endpoints.filter((e) => e.attachment).length ?? 0;
    return { status, stats, lastError: this.lastError ?? null, masquerade: this.masq, endpoints: { wanted, attached }, sockLb };
  }

  /** Per-endpoint packets/bytes (nrd_ep_stats) and drops per reason (nrd_dp_drops), read at scrape time. */
  private registerStatsMetrics(registry: Registry): void {
    const self = this;
    const read = async () => (self.host && self.started ? (await self.host.stats()).endpointDp : undefined);
    const byIfindex = (): Map<number, string> => new Map(self.endpoints.map((e) => [e.hostIfindex, e.id]));
    const epCounter = (name: string, help: string, field: 'packets' | 'bytes') => new PromCounter({
      name, help, labelNames: ['endpoint', 'direction'], registers: [registry],
      async collect() {
        this.reset();
        const s = await read();
        const ids = byIfindex();
        for (const e of s?.endpoints ?? []) {
          const id = ids.get(e.ifindex);
          if (id === undefined) continue;
          this.inc({ endpoint: id, direction: 'from' }, Number(e.counters[`from_${field}`]));
          this.inc({ endpoint: id, direction: 'to' }, Number(e.counters[`to_${field}`]));
        }
      },
    });
    epCounter('nrd_datapath_endpoint_packets_total', 'Packets sent by (from) and delivered by BPF to (to) each local endpoint.', 'packets');
    epCounter('nrd_datapath_endpoint_bytes_total', 'Bytes sent by (from) and delivered by BPF to (to) each local endpoint.', 'bytes');
    new PromCounter({
      name: 'nrd_datapath_drops_total', help: 'Packets the BPF datapath dropped, by reason (prefilter: the XDP prefilter on the uplink).', labelNames: ['reason'], registers: [registry],
      async collect() {
        this.reset();
        const all = self.host && self.started ? await self.host.stats() : undefined;
        if (all?.endpointDp) for (const [reason, c] of Object.entries(all.endpointDp.drops)) this.inc({ reason }, Number(c.packets));
        // The XDP program counts in its own map (nrd_xdp_stats), by family.
        if (all) this.inc({ reason: 'prefilter' }, Number(all.xdp.dropDeny4.packets + all.xdp.dropDeny6.packets));
      },
    });
    new PromCounter({
      name: 'nrd_datapath_pin_migrations_total',
      help: 'Pinned maps whose definition an upgrade changed: migrated (entries copied into the new map) or replaced (started empty).',
      labelNames: ['map', 'action'], registers: [registry],
      async collect() {
        this.reset();
        const s = self.host && self.started ? await self.host.stats() : undefined;
        for (const m of s?.pinMigrations ?? []) this.inc({ map: m.map, action: m.action }, m.count);
      },
    });
    new Gauge({
      name: 'nrd_datapath_nat_entries', help: 'Entries in the BPF masquerade NAT map (two per flow).', registers: [registry],
      async collect() {
        const s = await read();
        this.set(s?.natEntries ?? 0);
      },
    });
    new Gauge({
      name: 'nrd_datapath_masquerade_mode', help: '1 for the masquerade backend in use (bpf, nftables or off).', labelNames: ['mode'], registers: [registry],
      collect() {
        for (const mode of ['bpf', 'nftables', 'off'] as const) this.set({ mode }, self.masq.mode === mode ? 1 : 0);
      },
    });
  }

  /** Services, backends by state, and the cost of the last change, from the writer (main thread). */
  private registerServiceMetrics(registry: Registry): void {
    const self = this;
    const registers = [registry];
    new Gauge({
      name: 'nrd_datapath_services', help: 'Services in the BPF load-balancing maps.', registers,
      collect() {
        this.set(self.services?.counts().services ?? 0);
      },
    });
    new Gauge({
      name: 'nrd_datapath_service_backends', help: 'Backends in the BPF load-balancing maps, by state (a removed backend drains for services.drainSeconds).', labelNames: ['state'], registers,
      collect() {
        const c = self.services?.counts();
        this.set({ state: 'active' }, c?.active ?? 0);
        this.set({ state: 'draining' }, c?.draining ?? 0);
      },
    });
    new PromCounter({
      name: 'nrd_datapath_service_map_writes_total', help: 'Syscalls made for service changes: map writes and deletes, and the mmap fill of a selection table.', registers,
      collect() {
        this.reset();
        this.inc(self.services?.metrics.writes ?? 0);
      },
    });
    new PromCounter({
      name: 'nrd_datapath_service_changes_total', help: 'Service-set changes applied to the maps; rejected (error: a record that does not plan); map writes that failed (write_failed: retried with backoff as a full sync).', labelNames: ['result'], registers,
      collect() {
        this.reset();
        const m = self.services?.metrics;
        this.inc({ result: 'applied' }, m?.applies ?? 0);
        this.inc({ result: 'error' }, (m?.errors ?? 0) - (m?.failedApplies ?? 0));
        this.inc({ result: 'write_failed' }, m?.failedApplies ?? 0);
      },
    });
    new Gauge({
      name: 'nrd_datapath_service_last_change_writes', help: 'Map writes the last service change took (a one-service change is a few, whatever the number of services).', registers,
      collect() {
        this.set(self.services?.metrics.lastApplyWrites ?? 0);
      },
    });
    new Gauge({
      name: 'nrd_datapath_service_last_change_seconds', help: 'Time the last service change took: incremental plan and map writes.', registers,
      collect() {
        this.set((self.services?.metrics.lastApplyMs ?? 0) / 1000);
      },
    });
    new PromCounter({
      name: 'nrd_datapath_ct_gc_deleted_total', help: 'Service connection entries (two per flow) removed from nrd_ct by the GC after their idle timeout.', registers,
      collect() {
        this.reset();
        this.inc(self.ctDeleted);
      },
    });
    new Gauge({
      name: 'nrd_datapath_ct_entries', help: 'Entries in the service connection table nrd_ct (two per flow) after the last GC.', registers,
      collect() {
        this.set(self.ctEntries);
      },
    });
  }

  status(): unknown {
    const base = this.lastStatus ?? { ready: false, ...(this.lastError !== undefined ? { reason: this.lastError } : {}) };
    return { ...base, masquerade: this.masq, sockLb: this.sockLb.view };
  }
}
