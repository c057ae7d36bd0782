// Identity policy of the endpoint datapath (bpf/include/nrd_policy.h): turns the cluster's policies,
// endpoints, identities and nodes into the policy maps (nrd_policy, nrd_ep_policy, nrd_pol_cidr4/6),
// the ipcache (nrd_ipcache4/6) and the policy revision (nrd_pol_rev), writing only what changed.
//
//  - planPolicy(): pure; compiles with daemon/policy/compile.ts and builds the ipcache with
//    daemon/policy/ipcache.ts, diffs both against what was applied, and orders the writes so that
//    no intermediate state denies a flow both the old and the new policy admit: ipcache entries
//    first (a new endpoint's identity must be known before entries naming it matter), then the
//    policy ops in diffPolicy's order, then ipcache deletes; any write bumps the revision last, so
//    flows allowed under the old maps are checked again on their next packet.
//  - PolicyMapWriter runs in the datapath worker: opens the maps the endpoint datapath pinned under
//    <pinPath>/maps and applies the ops. A full apply (the first after start) also deletes every key
//    it did not write, so a restarted daemon drops what a previous run left behind.
//  - PolicyDatapath runs on the main thread: setInputs() is level-triggered (the whole set,
//    latest wins); it plans against the last applied state and explains an endpoint's effective
//    rules for GET /v1/policy/:endpoint.
import { PinnedMaps } from './pinned-maps.js';
import { Gauge, Histogram, type Registry } from 'prom-client';
import { type CompiledPolicy, type PolicyKey, POLICY_ALLOW, POLICY_F_EGRESS, POLICY_F_INGRESS, compilePolicy, diffPolicy, selects } from '../policy/compile.js';
import { type Ipcache, type IpcacheValue, type LpmKey, ReservedIdentity, buildIpcache, diffIpcache } from '../policy/ipcache.js';
import { MIN_IDENTITY } from '../state/identities.js';
import type { EndpointRecord, IdentityRecord, Labels, NodeRecord, PolicyPeer, PolicyPort, PolicyRecord } from '../state/records.js';
import { TypedMap, lpm4KeyCodec, lpm6KeyCodec, u32Codec } from './maps.js';
import { POLICY_MAP_NAMES, bpfPolicyKeyCodec, bpfPolicyValueCodec, ipcacheValueCodec } from './policy-layout.js';
import { endpointNumericId } from './endpoints.js';

// ---- inputs and plan (pure) -----------------------------------------------------------------------

/** Everything the policy of this node depends on; the state subsystem hands the whole set over. */
export interface PolicyInputs {
  localNode: string;
  policies: readonly PolicyRecord[];
  /** Every endpoint of every node (the ipcache covers them all; the local ones get policy). */
  endpoints: readonly EndpointRecord[];
  identities: readonly IdentityRecord[];
  nodes: readonly NodeRecord[];
  /** false while the collections are still being listed: nothing is deleted on a partial view. */
  synced: boolean;
}

/** One map write as it crosses to the worker; endpoints by numeric id (nrd_ep_value.id). */
export type WirePolicyOp =
  | { op: 'set-ipcache'; key: LpmKey; value: IpcacheValue }
  | { op: 'delete-ipcache'; key: LpmKey }
  | { op: 'set-cidr'; key: LpmKey; identity: number }
  | { op: 'delete-cidr'; key: LpmKey }
  | { op: 'set-entry'; endpoint: number; key: PolicyKey }
  | { op: 'delete-entry'; endpoint: number; key: PolicyKey }
  | { op: 'set-flags'; endpoint: number; flags: number }
  | { op: 'delete-flags'; endpoint: number };

export interface PolicyApplyArgs {
  pinPath: string;
  ops: WirePolicyOp[];
  /** Increment nrd_pol_rev after the ops (any policy or ipcache change). */
  bumpRevision: boolean;
  /** Delete every key of the policy maps and the ipcache that no set op of this batch wrote. */
  full: boolean;
}

export interface PolicyState {
  compiled: CompiledPolicy;
  ipcache: Ipcache;
}

export function emptyPolicyState(): PolicyState {
  return { compiled: { endpoints: new Map(), cidrs: new Map() }, ipcache: { entries: new Map(), conflicts: [] } };
}

export function localPolicyEndpoints(inputs: PolicyInputs): EndpointRecord[] {
  return inputs.endpoints.filter((e) => e.node === inputs.localNode);
}

/** The desired state of the inputs and the ordered writes from `prev` to it. */
export function planPolicy(prev: PolicyState, inputs: PolicyInputs): { next: PolicyState; ops: WirePolicyOp[] } {
  const identities = new Map(inputs.identities.map((r) => [r.id, r.labels]));
  const local = localPolicyEndpoints(inputs).map((e) => ({ id: e.id, labels: e.labels, identity: e.identity ?? ReservedIdentity.INIT, ips: e.ips }));
  const compiled = compilePolicy({ policies: inputs.policies, endpoints: local, identities }, prev.compiled);
  const ipcache = buildIpcache({ endpoints: inputs.endpoints, nodes: inputs.nodes, localNode: inputs.localNode });
  const next = { compiled, ipcache };
  const ops: WirePolicyOp[] = [];
  const ic = diffIpcache(prev.ipcache, ipcache);
  for (const e of ic.set) ops.push({ op: 'set-ipcache', key: e.key, value: e.value });
  for (const o of diffPolicy(prev.compiled, compiled)) {
    switch (o.op) {
      case 'set-cidr': ops.push({ op: 'set-cidr', key: o.key, identity: o.identity }); break;
      case 'delete-cidr': ops.push({ op: 'delete-cidr', key: o.key }); break;
      case 'set-entry': ops.push({ op: 'set-entry', endpoint: endpointNumericId(o.endpoint), key: o.key }); break;
      case 'delete-entry': ops.push({ op: 'delete-entry', endpoint: endpointNumericId(o.endpoint), key: o.key }); break;
      case 'set-flags': ops.push({ op: 'set-flags', endpoint: endpointNumericId(o.endpoint), flags: o.flags }); break;
      case 'delete-endpoint': {
        // Enforcement off first (the endpoint is going), then its entries: diffPolicy names only the endpoint.
        const n = endpointNumericId(o.endpoint);
        ops.push({ op: 'delete-flags', endpoint: n });
        for (const e of prev.compiled.endpoints.get(o.endpoint)?.entries.values() ?? []) ops.push({ op: 'delete-entry', endpoint: n, key: e.key });
        break;
      }
    }
  }
  // delete-cidr ops come last from diffPolicy; ipcache deletes go after them, as late as possible.
  for (const k of ic.del) ops.push({ op: 'delete-ipcache', key: k });
  return { next, ops };
}

/** The maps the writer opens (nrd_pol_ct is the datapath's own: the revision bump retires its verdicts). */
const WRITTEN_MAPS = POLICY_MAP_NAMES.filter((m) => m !== 'nrd_pol_ct');

// ---- worker side -----------------------------------------------------------------------------------

/** Structured clone turns Buffers into plain Uint8Arrays: the codecs want Buffers. */
const lpm = (k: LpmKey): LpmKey => ({ family: k.family, prefixlen: k.prefixlen, addr: Buffer.from(k.addr.buffer, k.addr.byteOffset, k.addr.byteLength) });

export class PolicyMapWriter {
  private readonly maps: PinnedMaps<(typeof WRITTEN_MAPS)[number]>;

  constructor(pinPath: string) {
    this.maps = new PinnedMaps(pinPath, WRITTEN_MAPS);
  }

  private open() {
    const fd = (m: (typeof WRITTEN_MAPS)[number]): number => this.maps.fd(m);
    return {
      policy: new TypedMap(fd('nrd_policy'), bpfPolicyKeyCodec, bpfPolicyValueCodec),
      epPolicy: new TypedMap(fd('nrd_ep_policy'), u32Codec, u32Codec),
      cidr4: new TypedMap(fd('nrd_pol_cidr4'), lpm4KeyCodec, u32Codec),
      cidr6: new TypedMap(fd('nrd_pol_cidr6'), lpm6KeyCodec, u32Codec),
      ipcache4: new TypedMap(fd('nrd_ipcache4'), lpm4KeyCodec, ipcacheValueCodec),
      ipcache6: new TypedMap(fd('nrd_ipcache6'), lpm6KeyCodec, ipcacheValueCodec),
      rev: new TypedMap(fd('nrd_pol_rev'), u32Codec, u32Codec),
    };
  }

  /** Applies the ops in order; returns the number of map writes and deletes made (revision and prune included). */
  apply(args: Omit<PolicyApplyArgs, 'pinPath'>): number {
    const m = this.open();
    // Per map fd, the encoded keys this batch wrote (for the prune of a full apply).
    const written = new Map<number, Set<string>>();
    const mark = <K, V>(t: TypedMap<K, V>, k: K): void => {
      let s = written.get(t.fd);
      if (!s) written.set(t.fd, (s = new Set()));
      s.add(t.key.encode(k).toString('hex'));
    };
    let writes = 0;
    for (const o of args.ops) {
      switch (o.op) {
        case 'set-ipcache': {
          const k = lpm(o.key);
          const t = k.family === 4 ? m.ipcache4 : m.ipcache6;
          t.set(k, o.value);
          mark(t, k);
          break;
        }
        case 'delete-ipcache': {
          const k = lpm(o.key);
          (k.family === 4 ? m.ipcache4 : m.ipcache6).delete(k);
          break;
        }
        case 'set-cidr': {
          const k = lpm(o.key);
          const t = k.family === 4 ? m.cidr4 : m.cidr6;
          t.set(k, o.identity);
          mark(t, k);
          break;
        }
        case 'delete-cidr': {
          const k = lpm(o.key);
          (k.family === 4 ? m.cidr4 : m.cidr6).delete(k);
          break;
        }
        case 'set-entry':
          m.policy.set({ endpoint: o.endpoint, key: o.key }, { flags: POLICY_ALLOW });
          mark(m.policy, { endpoint: o.endpoint, key: o.key });
          break;
        case 'delete-entry': m.policy.delete({ endpoint: o.endpoint, key: o.key }); break;
        case 'set-flags':
          m.epPolicy.set(o.endpoint, o.flags);
          mark(m.epPolicy, o.endpoint);
          break;
        case 'delete-flags': m.epPolicy.delete(o.endpoint); break;
      }
      writes++;
    }
    if (args.full) {
      // Flags first (enforcement off), entries after: the same order a diff would use.
      const prune = <K, V>(t: TypedMap<K, V>): void => {
        const keep = written.get(t.fd) ?? new Set<string>();
        for (const k of t.keys()) {
          if (keep.has(t.key.encode(k).toString('hex'))) continue;
          t.delete(k);
          writes++;
        }
      };
      prune(m.epPolicy);
      prune(m.policy);
      prune(m.cidr4);
      prune(m.cidr6);
      prune(m.ipcache4);
      prune(m.ipcache6);
    }
    if (args.bumpRevision) {
      m.rev.set(0, ((m.rev.get(0) ?? 0) + 1) >>> 0);
      writes++;
    }
    return writes;
  }

  revision(): number {
    return this.open().rev.get(0) ?? 0;
  }

  close(): void {
    this.maps.close();
  }
}

// ---- main thread -------------------------------------------------------------------------------------

export interface PolicyApplier {
  applyPolicyOps(args: Omit<PolicyApplyArgs, 'pinPath'>): Promise<number>;
}

/** One rule of a policy, in words. */
export interface RuleView {
  policy: string;
  /** "any", "labels app=db", "cidr 10.0.0.0/8". */
  peers: string[];
  /** The cluster identities the label peers match now (CIDR peers match by address). */
  identities: number[];
  /** "any", "tcp/80", "tcp/8000-8080", "udp (all ports)". */
  ports: string[];
}

/** GET /v1/policy/:endpoint: the effective rules of one endpoint. */
export interface EndpointPolicyView {
  endpoint: string;
  node: string;
  identity: number | null;
  labels: Labels;
  /** Policies whose selector matches the endpoint's labels. */
  policies: string[];
  enforcement: { ingress: boolean; egress: boolean };
  ingress: RuleView[];
  egress: RuleView[];
  /** Entries of nrd_policy for it (local endpoints; null on other nodes). */
  mapEntries: number | null;
  /** Whether the maps hold the current policy (false while an apply failed or waits for the datapath). */
  applied: boolean;
}

function peerText(p: PolicyPeer): string {
  if ('cidr' in p) return `cidr ${p.cidr}`;
  const l = Object.entries(p.labels).map(([k, v]) => `${k}=${v}`).join(',');
  return l === '' ? 'labels (all endpoints)' : `labels ${l}`;
}

function portText(p: PolicyPort): string {
  if (p.port === undefined) return `${p.protocol} (all ports)`;
  return p.endPort !== undefined && p.endPort !== p.port ? `${p.protocol}/${p.port}-${p.endPort}` : `${p.protocol}/${p.port}`;
}

/** The readable effective policy of an endpoint, from the inputs (K8s semantics as compile.ts). */
export function explainEndpoint(inputs: PolicyInputs, id: string, compiled?: CompiledPolicy): EndpointPolicyView | undefined {
  const ep = inputs.endpoints.find((e) => e.id === id);
  if (!ep) return undefined;
  const selecting = inputs.policies.filter((p) => selects(p.selector, ep.labels));
  const cluster = inputs.identities.filter((r) => r.id >= MIN_IDENTITY);
  const rules = (dir: 'ingress' | 'egress'): RuleView[] =>
    selecting.flatMap((p) => p[dir].map((r) => {
      const ids = new Set<number>();
      for (const peer of r.peers) if ('labels' in peer) for (const c of cluster) if (selects(peer.labels, c.labels)) ids.add(c.id);
      return {
        policy: p.name,
        peers: r.peers.length === 0 ? ['any'] : r.peers.map(peerText),
        identities: [...ids].sort((a, b) => a - b),
        ports: r.ports.length === 0 ? ['any'] : r.ports.map(portText),
      };
    }));
  const local = ep.node === inputs.localNode ? compiled?.endpoints.get(id) : undefined;
  return {
    endpoint: id,
    node: ep.node,
    identity: ep.identity ?? null,
    labels: ep.labels,
    policies: selecting.map((p) => p.name),
    enforcement: { ingress: selecting.length > 0, egress: selecting.some((p) => p.egress.length > 0) },
    ingress: rules('ingress'),
    egress: rules('egress'),
    mapEntries: local ? local.entries.size : null,
    applied: local !== undefined,
  };
}

export interface PolicyMetrics {
  applies: number;
  errors: number;
  lastApplyWrites: number;
}

/**
 * Main-thread side: level-triggered inputs, one apply at a time, only the diff. Until the inputs
 * are synced nothing is applied (a partial endpoint list would delete ipcache entries that exist).
 */
export class PolicyDatapath {
  private inputs: PolicyInputs | undefined;
  private applied: PolicyState = emptyPolicyState();
  /** False until a full apply succeeded (first after start, and after any failure). */
  private inSync = false;
  private running: Promise<void> = Promise.resolve();
  lastError: string | undefined;
  readonly metrics: PolicyMetrics = { applies: 0, errors: 0, lastApplyWrites: 0 };
  private readonly writesHist: Histogram | undefined;

  /** `canApply`: whether the maps exist (the endpoint datapath is loaded); until then inputs are only kept. */
  constructor(private readonly applier: PolicyApplier, registry?: Registry, private readonly canApply: () => boolean = () => true) {
    if (!registry) return;
    const self = this;
    const registers = [registry];
    new Gauge({
      name: 'nrd_policy_policies', help: 'Network policies known to this node.', registers,
      collect() { this.set(self.inputs?.policies.length ?? 0); },
    });
    new Gauge({
      name: 'nrd_policy_enforced_endpoints', help: 'Local endpoints whose ingress or egress is default-deny, per direction (as applied).', labelNames: ['direction'], registers,
      collect() {
        let ing = 0;
        let eg = 0;
        for (const e of self.applied.compiled.endpoints.values()) {
          if (e.flags & POLICY_F_INGRESS) ing++;
          if (e.flags & POLICY_F_EGRESS) eg++;
        }
        this.set({ direction: 'ingress' }, ing);
        this.set({ direction: 'egress' }, eg);
      },
    });
    new Gauge({
      name: 'nrd_policy_apply_errors', help: 'Policy applies that failed since start (retried with a full apply).', registers,
      collect() { this.set(self.metrics.errors); },
    });
    this.writesHist = new Histogram({
      name: 'nrd_policy_map_writes_per_change', help: 'BPF map writes and deletes per policy/ipcache change applied.', registers,
      buckets: [1, 4, 16, 64, 256, 1024, 4096, 16384, 65536],
    });
  }

  /** Level-triggered: the whole input set; resolves once the maps hold it (or the apply failed). */
  setInputs(inputs: PolicyInputs): Promise<void> {
    this.inputs = inputs;
    return this.sync();
  }

  /** Applies the current inputs (after a datapath (re)start: pass full to rewrite and prune everything). */
  sync(opts: { full?: boolean } = {}): Promise<void> {
    if (opts.full) this.inSync = false;
    this.running = this.running.then(() => this.reconcile()).catch((e: unknown) => {
      this.metrics.errors++;
      this.lastError = (e as Error).message;
      this.inSync = false;
    });
    return this.running;
  }

  private async reconcile(): Promise<void> {
    const inputs = this.inputs;
    if (!inputs || !inputs.synced || !this.canApply()) return;
    const full = !this.inSync;
    const base = full ? emptyPolicyState() : this.applied;
    const { next, ops } = planPolicy(base, inputs);
    if (!full && ops.length === 0) return;
    const writes = await this.applier.applyPolicyOps({ ops, bumpRevision: true, full });
    this.applied = next;
    this.inSync = true;
    this.lastError = undefined;
    this.metrics.applies++;
    this.metrics.lastApplyWrites = writes;
    this.writesHist?.observe(writes);
  }

  /** The effective rules of an endpoint (any node), undefined when unknown. */
  explain(id: string): EndpointPolicyView | undefined {
    if (!this.inputs) return undefined;
    const v = explainEndpoint(this.inputs, id, this.inSync ? this.applied.compiled : undefined);
    return v;
  }

  /** Numeric endpoint id → string id of the local endpoints (flow events name endpoints by number). */
  endpointNames(): Map<number, string> {
    const m = new Map<number, string>();
    if (this.inputs) for (const e of localPolicyEndpoints(this.inputs)) m.set(endpointNumericId(e.id), e.id);
    return m;
  }
}
