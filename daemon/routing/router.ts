// Routing manager: turns remote nodes (state store), BGP best paths (Loc-RIB) and the node's own
// CIDRs into desired kernel state — per remote CIDR a native (ECMP), direct (host-gw) or VXLAN
// route, the VXLAN device with its FDB and neighbour entries, a blackhole for the own CIDRs — and
// hands it to the kernel reconciler. Failover to VXLAN is immediate, failback waits a hold-down.
// Kernel interfaces (through KernelPort): routes, vxlan link (RFC 7348), FDB, neighbours, sysctls.
//
// VTEP addressing (flannel's scheme): the VTEP IP of a remote node for one of its CIDRs is the
// CIDR's first (network) address, e.g. 10.244.2.0 for 10.244.2.0/24 — never given to an endpoint,
// needs no extra allocation, and is known to every node from the CIDR alone. Per remote node:
//   FDB        <remote VTEP MAC> dst <remote underlay>   (dev nrd vxlan, self permanent)
//   neighbour  <CIDR first address> lladdr <remote VTEP MAC> permanent
//   route      <CIDR> via <CIDR first address> dev <vxlan> onlink      (only while on VXLAN)
// FDB and neighbour entries exist for every remote node whenever VXLAN may be used, so a failover
// is one route replace. The VXLAN device exists in every mode: every node accepts VXLAN traffic
// at all times, so a switch on one side needs no coordination.
//
// Scale: work costs what changed. A BGP change re-evaluates only its prefix; a node change only
// that node's CIDRs (plus the per-node FDB/neighbour set); a hold-down expiry only the prefixes whose
// hold-down ends then. Option, own-CIDR and sync changes re-evaluate everything (rare).
// Per prefix the router keeps one entry whose path Candidate and route body are shared objects.
//
// Bad input never stops routing: a node record with a bad address, VTEP MAC or CIDR is skipped
// (logged once per change, counted) and every other node is routed. A prefix inside this node's own
// CIDRs or inside a subnet connected to one of its links is never installed, whoever announces it:
// it would hijack traffic that must stay local (the BGP import policy refuses such prefixes too;
// this is the last line of defence before the kernel).
import type { Logger } from '../lib/log.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { canonicalMac, canonicalPrefix, familyOf, firstAddress, parsePrefix, bytesToIp, type Prefix } from '../kernel/addr.js';
import { Reconciler, type DesiredRouteBody, type DesiredState, type ReconcileReport, type ReconcilerOptions } from '../kernel/reconciler.js';
import { ROUTING_MARK } from '../kernel/owners.js';
import type { KernelPort, Subscription } from '../kernel/types.js';
import { keyV4, prefixKey, prefixText, shortKeyV4, type PrefixKey } from '../lib/prefix-key.js';
import { PrefixTable } from './prefix-table.js';
import { choosePath, step, type Candidate, type PathState } from './path.js';
import type { BgpRoute, PathMode, PathSwitch, RemoteNode, RouteView, RoutingOptions } from './types.js';

/** The key of "no BGP path" in the external path cache. */
const NO_HOPS: readonly string[] = [];

/** Path switches logged one by one per evaluation (the rest are counted in one line). */
const SWITCH_LOG_BUDGET = 100;

/** Quiet time after an address event before the connected subnets are re-read. */
const ADDRESS_DEBOUNCE_MS = 200;

/** VXLAN header overhead over an IPv4 underlay: outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14. */
export const VXLAN_OVERHEAD_V4 = 50;
export const VXLAN_OVERHEAD_V6 = 70;

export interface RouterDeps {
  log: Logger;
  clock?: Clock;
  /** Extra reconciler options (resync interval, table, protocol). */
  reconciler?: Partial<Omit<ReconcilerOptions, 'log' | 'clock'>>;
  /** Called on every path switch (the lead wires a prom-client counter here). */
  onSwitch?(s: PathSwitch): void;
  /** Called once per rejected node record (per change of it), with the reason. */
  onRejectedNode?(reason: NodeRejectReason): void;
  /** Called once per prefix refused as a hijack of a local subnet (each time it starts being refused). */
  onRefusedPrefix?(reason: RefuseReason): void;
}

export type NodeRejectReason = 'name' | 'address' | 'vtep_mac' | 'cidr';
export type RefuseReason = 'own_cidr' | 'connected';

/** A node record checked for use: canonical MAC and CIDRs, or why it cannot be routed. */
export function validateNode(n: RemoteNode): { ok: true; node: RemoteNode } | { ok: false; reason: NodeRejectReason; message: string } {
  const bad = (reason: NodeRejectReason, message: string) => ({ ok: false as const, reason, message });
  if (typeof n.name !== 'string' || n.name === '') return bad('name', 'node without a name');
  try {
    familyOf(n.underlay);
  } catch {
    return bad('address', `underlay address ${JSON.stringify(n.underlay)} is not an IP address`);
  }
  let vtepMac: string | undefined;
  if (n.vtepMac !== undefined && n.vtepMac !== '') {
    try {
      vtepMac = canonicalMac(n.vtepMac);
    } catch {
      return bad('vtep_mac', `VTEP MAC ${JSON.stringify(n.vtepMac)} is not a MAC address`);
    }
  }
  const cidrs: string[] = [];
  for (const c of Array.isArray(n.cidrs) ? n.cidrs : [null]) {
    try {
      if (typeof c !== 'string' || !c.includes('/')) throw new Error('no prefix length');
      cidrs.push(canonicalPrefix(c));
    } catch {
      return bad('cidr', `CIDR ${JSON.stringify(c)} is not a prefix`);
    }
  }
  return { ok: true, node: { name: n.name, underlay: n.underlay, ...(vtepMac ? { vtepMac } : {}), cidrs } };
}

const sameNode = (a: RemoteNode, b: RemoteNode): boolean =>
  a.name === b.name && a.underlay === b.underlay && a.vtepMac === b.vtepMac && a.cidrs.length === b.cidrs.length && a.cidrs.every((c, i) => c === b.cidrs[i]);

/** Is `p` equal to or inside `guard`? (both parsed; host bits of guard are zero) */
function within(p: Prefix, guard: Prefix): boolean {
  if (p.family !== guard.family || p.len < guard.len) return false;
  const full = guard.len >> 3;
  for (let i = 0; i < full; i++) if (p.bytes[i] !== guard.bytes[i]) return false;
  const rest = guard.len & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (p.bytes[full]! & mask) === guard.bytes[full];
}

/** A subnet no remote prefix may fall into; `v4`: its network address as a number (IPv4). */
interface Guard {
  prefix: Prefix;
  text: string;
  reason: RefuseReason;
  v4?: number;
}

/** The key of a prefix as the speaker gives it (canonical text already, as a rule). */
function keyOfText(text: string): PrefixKey {
  const k = shortKeyV4(text);
  return k >= 0 ? k : prefixKey(canonicalPrefix(text));
}

interface PrefixEntry {
  node?: RemoteNode;
  state: PathState;
}

export class Router {
  private readonly log: Logger;
  private readonly clock: Clock;
  readonly reconciler: Reconciler;
  private nodes = new Map<string, RemoteNode>();
  private nodesSynced = false;
  private bgpSynced = false;
  /**
   * Per prefix, by PrefixKey (a small integer for an IPv4 prefix up to /24: no string per route),
   * its BGP next hops (only prefixes BGP has a path for) and its path entry, in one interned slot
   * (prefix-table.ts); the reconciler keys its routes the same way.
   */
  private readonly table = new PrefixTable<PrefixEntry>();
  private connected: string[] = [];
  private underlay: { index: number; mtu: number; address: string } | null = null;
  private recheckTimer: unknown = null;
  private recheckAt = Infinity;
  private started = false;
  /** Switches by "from->to". */
  readonly switches = new Map<string, number>();
  private ownCidrs: string[];
  /** The own CIDRs' keys (never a route towards the fabric). */
  private ownKeys: Set<PrefixKey>;
  private ownSince: number;
  private opts: RoutingOptions;
  /** The underlay interface name in use (resolved from the address when the option is ""). */
  private underlayName = '';
  /** Prefixes whose BGP input changed since the last evaluation (the incremental path). */
  private dirtyPrefixes = new Set<PrefixKey>();
  /** Something other than BGP prefixes changed: the next evaluation covers every prefix. */
  private fullPending = true;
  /** Node CIDR → its node (the first node listing it wins, as in a full evaluation). */
  private cidrOwner = new Map<PrefixKey, RemoteNode>();
  /** Interned path candidates and BGP next-hop sets: a few objects serve every prefix. */
  private cands = new Map<string, Candidate>();
  /** Path of a prefix of no known node by its interned next-hop set (see externalCand). */
  private externalCands = new Map<readonly string[], Candidate>();
  private hopSets = new Map<string, string[]>();
  /** Route bodies of native/direct candidates, shared by every prefix on that path. */
  private bodies = new WeakMap<Candidate, DesiredRouteBody>();
  /** Prefix evaluations since start (tests check that work costs what changed). */
  evaluations = 0;
  /** Rejected node records by name: the message last logged (logged again only when it changes). */
  private readonly rejected = new Map<string, string>();
  /** Subnets connected to any link of this node (not only the underlay): hijack guards. */
  private hostConnected: string[] = [];
  private addressWatch: Subscription | undefined;
  private addressTimer: unknown = null;
  private guards: Guard[] = [];
  /** Prefixes refused now as hijacks, with the reason; newly refused ones wait to be logged. */
  readonly refused = new Map<string, RefuseReason>();
  private newlyRefused: string[] = [];
  /** Path switches still logged one by one in this evaluation; those beyond it, by "from->to". */
  private switchLogBudget = SWITCH_LOG_BUDGET;
  private readonly unloggedSwitches = new Map<string, number>();
  /** Hold-down expiries: time → prefixes to re-evaluate then (only those). */
  private readonly holdDue = new Map<number, Set<PrefixKey>>();
  /** The VXLAN device, FDB and neighbour set must be recomputed (a node changed). */
  private othersDirty = false;

  constructor(
    private readonly port: KernelPort,
    opts: RoutingOptions,
    private readonly deps: RouterDeps,
  ) {
    this.log = deps.log;
    this.clock = deps.clock ?? systemClock;
    this.opts = { ...opts, vxlan: { ...opts.vxlan } };
    this.ownCidrs = opts.ownCidrs.map(canonicalPrefix);
    this.ownKeys = new Set(this.ownCidrs.map(prefixKey));
    this.ownSince = this.clock.now();
    this.reconciler = new Reconciler(port, { mark: ROUTING_MARK, ...deps.reconciler, log: deps.log, clock: this.clock });
    this.rebuildGuards();
  }

  /** The options in use. */
  get options(): Readonly<RoutingOptions> {
    return this.opts;
  }

  /** This node's own CIDRs (from the state store): routed locally, never towards the fabric. */
  setOwnCidrs(cidrs: readonly string[]): void {
    const next = [...new Set(cidrs.map(canonicalPrefix))].sort();
    const cur = [...this.ownCidrs].sort();
    if (next.length === cur.length && next.every((c, i) => c === cur[i])) return;
    this.ownCidrs = next;
    this.ownKeys = new Set(next.map(prefixKey));
    this.ownSince = this.clock.now();
    this.rebuildGuards();
    this.scheduleRecompute();
  }

  /**
   * Apply changed options (a config reload): mode, hold-down, VXLAN parameters, underlay. Paths are
   * re-evaluated with the same rules as any input change — a worse path at once, a better one after
   * the hold-down — and the reconciler writes only the routes that really change.
   */
  async updateOptions(next: Partial<Omit<RoutingOptions, 'ownCidrs'>>): Promise<void> {
    const underlayChanged =
      (next.underlayInterface !== undefined && next.underlayInterface !== this.opts.underlayInterface) ||
      ('underlayAddress' in next && next.underlayAddress !== this.opts.underlayAddress);
    this.opts = { ...this.opts, ...next, vxlan: { ...this.opts.vxlan, ...(next.vxlan ?? {}) }, ownCidrs: this.opts.ownCidrs };
    if (underlayChanged && this.started) await this.refreshUnderlay();
    this.scheduleRecompute();
  }

  /** Learn the underlay, start the reconciler (full resync) and program the current view. */
  async start(): Promise<ReconcileReport> {
    await this.refreshUnderlay();
    this.started = true;
    this.watchAddresses();
    await this.ensureSysctls();
    this.recompute();
    const rep = await this.reconciler.start();
    // Loose reverse-path filtering on the VXLAN device: a peer may send to us over VXLAN while we
    // route back natively (each side switches on its own). The effective value is max(all, dev).
    const key = `net/ipv4/conf/${this.opts.vxlan.device}/rp_filter`;
    try {
      if ((await this.port.readSysctl(key)) !== '2') await this.port.writeSysctl(key, 2);
    } catch (e) {
      this.log.warn({ err: e, key }, 'cannot set sysctl');
    }
    return rep;
  }

  stop(): void {
    this.started = false;
    this.addressWatch?.close();
    this.addressWatch = undefined;
    if (this.addressTimer !== null) this.clock.clearTimer(this.addressTimer);
    this.addressTimer = null;
    this.reconciler.stop();
    if (this.recheckTimer !== null) this.clock.clearTimer(this.recheckTimer);
    this.recheckTimer = null;
    this.recheckAt = Infinity;
  }

  /**
   * An address added to or removed from any link changes the connected subnets: the direct paths
   * and the hijack guards. Re-read them (debounced: an interface coming up brings several
   * addresses at once) and re-evaluate every prefix — addresses change rarely.
   */
  private watchAddresses(): void {
    if (this.addressWatch) return;
    this.addressWatch = this.port.subscribe((e) => {
      if (e.kind !== 'address' || !this.started || this.addressTimer !== null) return;
      this.addressTimer = this.clock.setTimer(() => {
        this.addressTimer = null;
        if (!this.started) return;
        // Only a change of what paths depend on re-evaluates every prefix: an address event that
        // leaves the underlay and the connected subnets as they were (an IPv6 address finishing
        // DAD, an address on an unrelated link's same subnet) would cost a million evaluations.
        this.refreshUnderlay().then(
          (changed) => {
            if (changed) this.scheduleRecompute();
          },
          (err: unknown) => this.log.warn({ err }, 'cannot re-read the underlay after an address change; keeping the last view'),
        );
      }, ADDRESS_DEBOUNCE_MS);
    });
  }

  /** Re-read the underlay interface (address, MTU, connected subnets); true when any of it changed. */
  async refreshUnderlay(): Promise<boolean> {
    const before = this.underlayView();
    let name = this.opts.underlayInterface;
    const all = await this.port.listAddresses();
    if (!name) {
      const want = this.opts.underlayAddress;
      const holder = want ? all.find((a) => a.address === want) : undefined;
      if (!holder) throw new Error(`no interface holds the underlay address ${want ?? '(none configured)'}`);
      const l = await this.port.getLink(holder.ifindex);
      if (!l) throw new Error(`interface ${holder.ifindex} holding ${want} vanished`);
      name = l.name;
    }
    const link = await this.port.getLink(name);
    if (!link) throw new Error(`underlay interface ${name} does not exist`);
    const addrs = all.filter((a) => a.ifindex === link.index);
    const address = this.opts.underlayAddress ?? addrs.find((a) => a.family === 4)?.address ?? addrs.find((a) => a.family === 6 && !a.address.startsWith('fe80:'))?.address;
    if (!address) throw new Error(`underlay interface ${name} has no address`);
    this.underlayName = name;
    this.connected = [
      ...new Set(
        addrs.map((a) => {
          const p = parsePrefix(`${a.address}/${a.prefixLen}`);
          return `${bytesToIp(p.bytes)}/${p.len}`;
        }),
      ),
    ];
    this.underlay = { index: link.index, mtu: link.mtu, address };
    this.hostConnected = [...new Set(all.map((a) => canonicalPrefix(`${a.address}/${a.prefixLen}`)))];
    this.rebuildGuards();
    return this.underlayView() !== before;
  }

  /** What path choice and the hijack guard read of the underlay, as one comparable string. */
  private underlayView(): string {
    return JSON.stringify([this.underlayName, this.underlay, this.connected, this.hostConnected]);
  }

  /** The subnets no remote prefix may fall into: the own CIDRs and every connected subnet. */
  private rebuildGuards(): void {
    const g: Guard[] = [];
    const guard = (c: string, reason: RefuseReason): Guard => {
      const prefix = parsePrefix(c);
      return { prefix, text: c, reason, ...(prefix.family === 4 ? { v4: prefix.bytes.readUInt32BE(0) } : {}) };
    };
    for (const c of this.ownCidrs) g.push(guard(c, 'own_cidr'));
    for (const c of this.hostConnected) g.push(guard(c, 'connected'));
    this.guards = g;
  }

  /** Why a remote prefix must not be installed (inside a local subnet), or undefined. */
  private refusal(k: PrefixKey): { reason: RefuseReason; inside: string } | undefined {
    if (!this.guards.length) return undefined;
    // IPv4 (every short key): compared as numbers, no text parsed.
    const v4 = typeof k === 'number' ? undefined : keyV4(k);
    if (typeof k === 'number' || v4) {
      const addr = v4 ? v4.addr : ((k as number) & 0xffffff) << 8;
      const len = v4 ? v4.len : (k as number) >>> 24;
      for (const g of this.guards) {
        if (g.v4 === undefined || len < g.prefix.len) continue;
        if (g.prefix.len === 0 || (addr ^ g.v4) >>> (32 - g.prefix.len) === 0) return { reason: g.reason, inside: g.text };
      }
      return undefined;
    }
    const p = parsePrefix(prefixText(k));
    for (const g of this.guards) if (within(p, g.prefix)) return { reason: g.reason, inside: g.text };
    return undefined;
  }

  /** Record a refused prefix (counted and logged once while it stays refused). */
  private refuse(k: PrefixKey, why: { reason: RefuseReason; inside: string }): void {
    const prefix = prefixText(k);
    if (this.refused.get(prefix) === why.reason) return;
    this.refused.set(prefix, why.reason);
    this.newlyRefused.push(`${prefix} (inside ${why.inside}, ${why.reason})`);
    this.deps.onRefusedPrefix?.(why.reason);
  }

  /** End of an evaluation: the summary of the path switches over the log budget, the newly refused prefixes. */
  private flushLogs(): void {
    this.switchLogBudget = SWITCH_LOG_BUDGET;
    if (this.unloggedSwitches.size) {
      const counts = Object.fromEntries(this.unloggedSwitches);
      this.unloggedSwitches.clear();
      this.log.info({ switches: counts }, 'more path switches in this evaluation (not logged one by one)');
    }
    if (!this.newlyRefused.length) return;
    const n = this.newlyRefused.length;
    this.log.warn({ count: n, prefixes: this.newlyRefused.slice(0, 20) }, 'remote prefixes inside a local subnet refused (never installed)');
    this.newlyRefused = [];
  }

  private async ensureSysctls(): Promise<void> {
    // Forwarding is what a router node is for; loose reverse-path filtering on the VXLAN device
    // because a peer may send over VXLAN while we route back natively (asymmetric during a switch).
    const want: Array<[string, string]> = [['net.ipv4.ip_forward', '1']];
    if (this.ownCidrs.some((c) => c.includes(':'))) want.push(['net.ipv6.conf.all.forwarding', '1']);
    for (const [k, v] of want) {
      try {
        if ((await this.port.readSysctl(k)) !== v) await this.port.writeSysctl(k, v);
      } catch (e) {
        this.log.warn({ err: e, key: k }, 'cannot set sysctl');
      }
    }
  }

  /** Full snapshot of remote nodes; `synced` once the store's initial list is complete. */
  setNodes(nodes: readonly RemoteNode[], synced = true): void {
    const next = new Map<string, RemoteNode>();
    const seenBad = new Set<string>();
    for (const raw of nodes) {
      const v = validateNode(raw);
      if (!v.ok) {
        const name = typeof raw?.name === 'string' ? raw.name : '';
        seenBad.add(name);
        if (this.rejected.get(name) !== v.message) {
          this.rejected.set(name, v.message);
          this.log.warn({ node: name, reason: v.reason, error: v.message }, 'node record rejected; routing every other node');
          this.deps.onRejectedNode?.(v.reason);
        }
        continue;
      }
      // An unchanged node keeps its object: prefixes compare nodes by identity.
      const old = this.nodes.get(v.node.name);
      next.set(v.node.name, old && sameNode(old, v.node) ? old : v.node);
    }
    for (const name of [...this.rejected.keys()]) if (!seenBad.has(name)) this.rejected.delete(name);
    const owner = new Map<PrefixKey, RemoteNode>();
    for (const n of next.values()) {
      for (const c of n.cidrs) {
        const k = prefixKey(c);
        if (!owner.has(k)) owner.set(k, n);
      }
    }
    // Only the CIDRs whose owning node changed (appeared, went, or changed) are looked at again.
    const changed: PrefixKey[] = [];
    for (const [c, n] of owner) if (this.cidrOwner.get(c) !== n) changed.push(c);
    for (const c of this.cidrOwner.keys()) if (!owner.has(c)) changed.push(c);
    const nodesChanged = next.size !== this.nodes.size || [...next].some(([k, n]) => this.nodes.get(k) !== n);
    this.nodes = next;
    this.cidrOwner = owner;
    const becameSynced = synced && !this.nodesSynced;
    this.nodesSynced = this.nodesSynced || synced;
    if (becameSynced) {
      this.scheduleRecompute();
      return;
    }
    if (!nodesChanged) return;
    this.othersDirty = true;
    if (!this.fullPending) for (const c of changed) this.dirtyPrefixes.add(c);
    this.scheduleRecompute(false);
  }

  /** Node records rejected now, by name, with the reason (status). */
  rejectedNodes(): Record<string, string> {
    return Object.fromEntries(this.rejected);
  }

  /** Full snapshot of BGP best paths; `synced` after the initial table transfer (End-of-RIB). */
  setBgpRoutes(routes: readonly BgpRoute[], synced = true): void {
    this.table.clearHops();
    for (const r of routes) if (r.nextHops.length) this.table.setHops(keyOfText(r.prefix), this.internHops(r.nextHops));
    this.bgpSynced = this.bgpSynced || synced;
    this.scheduleRecompute();
  }

  /** One Loc-RIB change: new best path (next hops), or withdrawn (no next hops). */
  applyBgpChange(r: BgpRoute): void {
    const p = keyOfText(r.prefix);
    this.table.setHops(p, r.nextHops.length ? this.internHops(r.nextHops) : undefined);
    if (!this.fullPending) this.dirtyPrefixes.add(p);
    this.scheduleRecompute(false);
  }

  private internHops(hops: readonly string[]): string[] {
    const k = hops.length === 1 ? hops[0]! : hops.join(',');
    let h = this.hopSets.get(k);
    if (!h) {
      h = [...hops];
      this.hopSets.set(k, h);
    }
    return h;
  }

  /**
   * The path of a prefix of no known node: a function of its (interned) BGP next-hop set alone, so
   * computed once per set — a million external routes over a few next-hop sets cost a few path
   * choices, not a million filtered, sorted and joined copies.
   */
  private externalCand(hops: readonly string[] | undefined): Candidate {
    const key = hops ?? NO_HOPS;
    let c = this.externalCands.get(key);
    if (!c) {
      c = this.internCand(
        choosePath({ mode: this.opts.mode, bgpNextHops: hops?.filter((h) => h !== this.underlay!.address), vxlanCapable: false, connected: this.connected }),
      );
      this.externalCands.set(key, c);
    }
    return c;
  }

  private internCand(c: Candidate): Candidate {
    const k = `${c.mode}|${c.nextHops.join(',')}`;
    const have = this.cands.get(k);
    if (have) return have;
    this.cands.set(k, c);
    return c;
  }

  setBgpSynced(synced: boolean): void {
    if (synced === this.bgpSynced) return;
    this.bgpSynced = synced;
    // End-of-RIB after a million routes must not cost a million evaluations (see applySync).
    this.syncPending = true;
    this.scheduleRecompute(false);
  }

  private inputsSynced(): boolean {
    return this.nodesSynced && (this.bgpSynced || !this.usesBgp());
  }

  private pending = false;
  private wasSynced = false;
  /** Input sync changed since the last evaluation (see applySync). */
  private syncPending = false;
  /** Own CIDRs handed to the reconciler by the last full evaluation. */
  private ownRouted: string[] = [];
  /** The latest path state made per candidate, and the node-less entry of each state (see share()). */
  private lastStates = new Map<Candidate, PathState>();
  private entries = new WeakMap<PathState, PrefixEntry>();
  /** The entry the last evaluate() left for its prefix (undefined: the prefix has no path). */
  private evaluated: PrefixEntry | undefined;

  /** Coalesce a burst of input changes in one tick into one recomputation (full unless only BGP prefixes changed). */
  private scheduleRecompute(full = true): void {
    if (full) this.fullPending = true;
    if (this.pending) return;
    this.pending = true;
    queueMicrotask(() => {
      this.pending = false;
      if (this.fullPending) this.recompute();
      else {
        this.recomputeDirty();
        if (this.syncPending) this.applySync();
      }
      this.syncPending = false;
    });
  }

  private usesBgp(): boolean {
    return this.opts.mode === 'native' || this.opts.mode === 'auto';
  }

  private usesVxlan(): boolean {
    return this.opts.mode !== 'native';
  }

  private get vxlanMtu(): number {
    if (this.opts.vxlan.mtu) return this.opts.vxlan.mtu;
    const u = this.underlay!;
    return u.mtu - (familyOf(u.address) === 6 ? VXLAN_OVERHEAD_V6 : VXLAN_OVERHEAD_V4);
  }

  /** Recompute every prefix's path and hand the desired kernel state to the reconciler. */
  recompute(): void {
    if (!this.started || !this.underlay) return;
    this.fullPending = false;
    this.dirtyPrefixes.clear();
    this.bodies = new WeakMap();
    // Mode, underlay address and hop sets may have changed: choose the external paths again.
    this.externalCands.clear();
    if (this.cands.size > 10_000) this.cands.clear();
    this.lastStates.clear();
    if (this.hopSets.size > 10_000) this.rebuildHopSets();
    const now = this.clock.now();
    const synced = this.inputsSynced();
    // The evaluation that first sees synced inputs is still a first one (no hold-down from a
    // choice made on half-known inputs).
    const steady = synced && this.wasSynced;
    this.wasSynced = synced;
    const seen = new Set<PrefixKey>();
    this.holdDue.clear();
    this.othersDirty = false;
    const own = this.ownKeys;
    const stillRefused = new Set<string>();
    const consider = (prefix: PrefixKey, node: RemoteNode | undefined): void => {
      if (own.has(prefix) || seen.has(prefix)) return;
      const why = this.refusal(prefix);
      if (why) {
        stillRefused.add(prefixText(prefix));
        this.refuse(prefix, why);
        return;
      }
      seen.add(prefix);
      const slot = this.table.slot(prefix);
      this.holdUntil(prefix, this.evaluate(prefix, node, steady, now, this.usesBgp() ? slot?.hops : undefined, slot?.entry));
    };
    for (const n of this.nodes.values()) for (const c of n.cidrs) consider(prefixKey(c), n);
    // BGP prefixes of no known node (external routes) are installed natively too.
    if (this.usesBgp()) for (const p of this.table.hopsKeys()) consider(p, undefined);
    for (const [p, e] of this.table.entries()) {
      if (seen.has(p)) continue;
      // Gone from every source: drop it (a switch to none when it had a path).
      this.table.setEntry(p, undefined);
      this.reconciler.setRoute(p, undefined);
      if (e.state.current.mode !== 'none') this.recordSwitch(p, e.node, e.state.current.mode, 'none', now, []);
    }
    for (const p of [...this.refused.keys()]) if (!stillRefused.has(p)) this.refused.delete(p);
    this.flushLogs();
    this.armRecheck();
    this.reconciler.setSynced(synced);
    // Route by route rather than setDesired(desired()): the reconciler compares each body with the
    // one it has (shared objects compare by identity) and marks only what differs, without a
    // million-entry DesiredState and a second map of it being built on every full evaluation.
    this.reconciler.setOthers(this.othersDesired());
    const ownText = new Set(this.ownCidrs);
    for (const c of this.ownRouted) if (!ownText.has(c)) this.reconciler.setRoute(c, undefined);
    const ownBody: DesiredRouteBody = { type: this.opts.ownCidrRoute ?? 'blackhole', nextHops: [] };
    for (const c of this.ownCidrs) this.reconciler.setRoute(c, ownBody);
    this.ownRouted = [...this.ownCidrs];
    for (const [prefix, e] of this.table.entries()) this.reconciler.setRoute(prefix, this.bodyOf(prefix, e.state.current));
  }

  /**
   * Input sync changed and nothing else: no path changes. Until the sources are in sync every
   * evaluation is a first one (the best path, no hold-down), and the first evaluation that sees
   * them synced is a first one too, so a full evaluation here would choose what each prefix has
   * already; only the next evaluations become steady, and the reconciler may now replace and delete.
   */
  private applySync(): void {
    if (!this.started || !this.underlay) return;
    const synced = this.inputsSynced();
    this.wasSynced = synced;
    this.reconciler.setSynced(synced);
  }

  /**
   * One prefix's path (see step()) given its BGP next hops (undefined: none, or BGP not used) and
   * its entry now; returns when to evaluate it again (a hold-down runs). The prefix's entry is left
   * in `evaluated`.
   */
  private evaluate(
    prefix: PrefixKey,
    node: RemoteNode | undefined,
    steady: boolean,
    now: number,
    hops: readonly string[] | undefined,
    prev: PrefixEntry | undefined,
  ): number | undefined {
    this.evaluations++;
    const cand = node
      ? this.internCand(
          choosePath({
            mode: this.opts.mode,
            bgpNextHops: hops?.filter((h) => h !== this.underlay!.address),
            underlay: node.underlay,
            vxlanCapable: !!node.vtepMac,
            connected: this.connected,
          }),
        )
      : this.externalCand(hops);
    // Until the sources are in sync every evaluation is a first one: the best path known is taken
    // at once and no hold-down starts, so a restart converges on the routes it had before.
    const r = step(steady ? prev?.state : undefined, cand, now, this.opts.holdDownMs);
    if (r.state.current.mode === 'none' && !prev) {
      this.evaluated = undefined;
      return r.recheckAt;
    }
    let entry = prev;
    if (!prev || prev.state !== r.state || prev.node !== node) this.table.setEntry(prefix, (entry = this.share(r.state, node)));
    this.evaluated = entry;
    if (r.switched && prev && steady && prev.state.current.mode !== r.state.current.mode) this.recordSwitch(prefix, node, r.switched.from, r.switched.to, now, r.state.current.nextHops);
    return r.recheckAt;
  }

  /**
   * The entry for a new path state. Path states and entries are immutable, and a burst of BGP
   * changes evaluates many prefixes at the same instant onto a few interned candidates: those on
   * one candidate share one state object and, without a node, one entry — in whatever order the
   * prefixes come (ECMP sets interleaved) — so a prefix costs its map slot, not two objects of its
   * own (a million prefixes, a few hundred objects).
   */
  private share(state: PathState, node: RemoteNode | undefined): PrefixEntry {
    let st = state;
    const last = this.lastStates.get(st.current);
    if (last && last !== st && last.since === st.since && last.betterSince === st.betterSince) st = last;
    else this.lastStates.set(st.current, st);
    if (node) return { node, state: st };
    let e = this.entries.get(st);
    if (!e) this.entries.set(st, (e = { state: st }));
    return e;
  }

  /** Re-evaluate only the prefixes whose BGP input changed and hand the reconciler their routes. */
  private recomputeDirty(): void {
    if (!this.started || !this.underlay) return;
    const dirty = this.dirtyPrefixes;
    this.dirtyPrefixes = new Set();
    const now = this.clock.now();
    // Sync changes go through a full evaluation, so wasSynced is current here.
    const steady = this.inputsSynced() && this.wasSynced;
    if (this.othersDirty) {
      this.othersDirty = false;
      this.reconciler.setOthers(this.othersDesired());
    }
    const bgp = this.usesBgp();
    for (const p of dirty) {
      if (this.ownKeys.has(p)) continue;
      const node = this.cidrOwner.get(p);
      // The BGP map holds only prefixes with next hops: a lookup is also the "announced?" test.
      const slot = this.table.slot(p);
      const hops = bgp ? slot?.hops : undefined;
      const why = node || hops ? this.refusal(p) : undefined;
      if (why) this.refuse(p, why);
      else if (this.refused.size) this.refused.delete(prefixText(p));
      if (why || (!node && !hops)) {
        // Gone from every source: drop it (a switch to none when it had a path).
        const e = slot?.entry;
        if (e) {
          this.table.setEntry(p, undefined);
          if (e.state.current.mode !== 'none') this.recordSwitch(p, e.node, e.state.current.mode, 'none', now, []);
        }
        this.reconciler.setRoute(p, undefined);
        continue;
      }
      this.holdUntil(p, this.evaluate(p, node, steady, now, hops, slot?.entry));
      const e = this.evaluated;
      this.reconciler.setRoute(p, e ? this.bodyOf(p, e.state.current) : undefined);
    }
    this.flushLogs();
    this.armRecheck();
  }

  /** Remember that `prefix` is to be evaluated again at `at` (its hold-down ends then). */
  private holdUntil(prefix: PrefixKey, at: number | undefined): void {
    if (at === undefined) return;
    let set = this.holdDue.get(at);
    if (!set) this.holdDue.set(at, (set = new Set()));
    set.add(prefix);
  }

  private rebuildHopSets(): void {
    this.hopSets.clear();
    this.table.mapHops((h) => this.internHops(h));
  }

  /** The kernel route for a prefix on a path; native and direct bodies are shared per path. */
  private bodyOf(prefix: PrefixKey, cur: Candidate): DesiredRouteBody | undefined {
    if (cur.mode === 'vxlan') return { type: 'unicast', nextHops: [{ gateway: firstAddress(prefixText(prefix)), dev: this.opts.vxlan.device, onlink: true }] };
    if (cur.mode !== 'native' && cur.mode !== 'direct') return undefined;
    let b = this.bodies.get(cur);
    if (!b) {
      b =
        cur.mode === 'native'
          ? { type: 'unicast', nextHops: cur.nextHops.map((gateway) => ({ gateway })) }
          : { type: 'unicast', nextHops: [{ gateway: cur.nextHops[0]!, dev: this.underlayName }] };
      this.bodies.set(cur, b);
    }
    return b;
  }

  private recordSwitch(k: PrefixKey, node: RemoteNode | undefined, from: PathMode | 'none', to: PathMode | 'none', at: number, nextHops: string[]): void {
    const prefix = prefixText(k);
    const sk = `${from}->${to}`;
    this.switches.set(sk, (this.switches.get(sk) ?? 0) + 1);
    // One line per switch up to a budget per evaluation, then one summary (flushLogs): a
    // session carrying a million routes going down must not write a million log lines.
    if (this.switchLogBudget > 0) {
      this.switchLogBudget--;
      this.log.info({ prefix, node: node?.name, from, to, nextHops }, 'path switch');
    } else {
      this.unloggedSwitches.set(sk, (this.unloggedSwitches.get(sk) ?? 0) + 1);
    }
    this.deps.onSwitch?.({ prefix, ...(node ? { node: node.name } : {}), from, to, at });
  }

  /** One timer for the earliest hold-down expiry; at expiry only the due prefixes are evaluated. */
  private armRecheck(): void {
    let at = Infinity;
    for (const t of this.holdDue.keys()) if (t < at) at = t;
    if (at === this.recheckAt) return;
    if (this.recheckTimer !== null) this.clock.clearTimer(this.recheckTimer);
    this.recheckTimer = null;
    this.recheckAt = at;
    if (at === Infinity) return;
    this.recheckTimer = this.clock.setTimer(() => {
      this.recheckTimer = null;
      this.recheckAt = Infinity;
      const now = this.clock.now();
      for (const [t, ps] of this.holdDue) {
        if (t > now) continue;
        this.holdDue.delete(t);
        if (!this.fullPending) for (const p of ps) this.dirtyPrefixes.add(p);
      }
      if (this.fullPending) this.recompute();
      else this.recomputeDirty();
    }, Math.max(0, at - this.clock.now()));
  }

  /** The desired kernel state for the current path choices. */
  desired(): DesiredState {
    const d = this.othersDesired();
    for (const c of this.ownCidrs) d.routes.push({ dst: c, type: this.opts.ownCidrRoute ?? 'blackhole', nextHops: [] });
    for (const [prefix, e] of this.table.entries()) {
      const b = this.bodyOf(prefix, e.state.current);
      if (b) d.routes.push({ dst: prefixText(prefix), ...b });
    }
    return d;
  }

  /** The VXLAN device with its FDB and neighbour entries (per node: O(nodes), no route). */
  private othersDesired(): DesiredState {
    const dev = this.opts.vxlan.device;
    const d: DesiredState = {
      vxlan: {
        name: dev,
        vni: this.opts.vxlan.vni,
        port: this.opts.vxlan.port,
        local: this.underlay!.address,
        mtu: this.vxlanMtu,
        underlay: this.underlayName,
        ...(this.opts.vxlan.mac ? { mac: this.opts.vxlan.mac } : {}),
      },
      fdb: [],
      neighbours: [],
      routes: [],
    };
    if (this.usesVxlan()) {
      for (const n of this.nodes.values()) {
        if (!n.vtepMac || n.underlay === this.underlay!.address) continue;
        d.fdb.push({ dev, mac: n.vtepMac, dst: n.underlay });
        for (const c of n.cidrs) if (!this.ownCidrs.includes(c)) d.neighbours.push({ dev, ip: firstAddress(c), mac: n.vtepMac });
      }
    }
    return d;
  }

  private countsCache: { at: number; counts: Partial<Record<PathMode, number>> } | null = null;

  /**
   * Routes per mode (readiness detail, after every reconcile run): counted without building the
   * route views, and at most once a second — at 1M prefixes a sorted view per run was what stalled.
   */
  modeCounts(): Partial<Record<PathMode, number>> {
    const now = this.clock.now();
    if (this.countsCache && now - this.countsCache.at < 1000) return this.countsCache.counts;
    const counts: Partial<Record<PathMode, number>> = {};
    if (this.ownCidrs.length) counts.local = this.ownCidrs.length;
    for (const [, e] of this.table.entries()) {
      const m = e.state.current.mode;
      if (m !== 'none') counts[m] = (counts[m] ?? 0) + 1;
    }
    this.countsCache = { at: now, counts };
    return counts;
  }

  /** What `nrdctl routes` shows. */
  routes(): RouteView[] {
    const out: RouteView[] = this.ownCidrs.map((c) => ({ prefix: c, mode: 'local' as const, nextHops: [], since: this.ownSince }));
    for (const [prefix, e] of this.table.entries()) {
      if (e.state.current.mode === 'none') continue;
      out.push({
        prefix: prefixText(prefix),
        ...(e.node ? { node: e.node.name } : {}),
        mode: e.state.current.mode,
        nextHops: [...e.state.current.nextHops],
        since: e.state.since,
      });
    }
    return out.sort((a, b) => (a.prefix < b.prefix ? -1 : a.prefix > b.prefix ? 1 : 0));
  }

  /** Local VTEP MAC as the kernel has it (publish it in this node's record). */
  async vtepMac(): Promise<string | undefined> {
    return (await this.port.getLink(this.opts.vxlan.device))?.mac;
  }

  /** Underlay in use: interface name, address, MTU (null before start). */
  underlayInfo(): { interface: string; address: string; mtu: number } | null {
    return this.underlay ? { interface: this.underlayName, address: this.underlay.address, mtu: this.underlay.mtu } : null;
  }
}
