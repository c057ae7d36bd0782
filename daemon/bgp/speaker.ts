// The BGP speaker: one listener, one session per peer, received UPDATEs into the RIB through
// import policy (fair bulk ingest), Adj-RIB-Out differences packed into UPDATEs per peer with
// End-of-RIB after the initial sync, locally originated prefixes, graceful restart in both roles
// (RFC 4724 + RFC 8538 N-bit), route refresh in and out (RFC 2918), max-prefix (RFC 4486), node
// mesh peers, and the Loc-RIB change stream the routing layer installs into the kernel.
import type net from 'node:net';
import { silentLogger, type Logger } from '../lib/log.js';
import { systemClock, type Clock } from '../lib/clock.js';
import { familyKey, type FamilyKey, type UpdateMessage } from './types.js';
import { Rib } from './rib/rib.js';
import type { PeerInfo } from './rib/peer.js';
import type { MaxPrefixDecision } from './policy/import.js';
import { BgpSession, bulkWireCodec, defaultConnector, type Connector } from './session/shell.js';
import { BgpListener } from './session/listener.js';
import type { DownReason, StateName } from './session/fsm.js';
import type { NegotiatedSession } from './session/negotiate.js';
import { CEASE_HARD_RESET, CEASE_MAX_PREFIXES, CEASE_PEER_DECONFIGURED } from './wire/index.js';
import {
  buildExportPolicy,
  buildImportPolicy,
  buildSessionConfig,
  checkPrefixes,
  familyFromName,
  familyName,
  IPV4,
  IPV6,
  peerFamilies,
  peerKey,
  sessionKey,
  splitFamily,
  familyOfPrefix,
  type SpeakerOptions,
  type SpeakerPeer,
} from './speaker/options.js';
import { IngestScheduler } from './speaker/ingest.js';
import { batchToUpdates, endOfRibMessage } from './speaker/outbound.js';
import { gracefulOnDown, preservedOnUp } from './speaker/graceful.js';
import { errorLine, errorView, routeView } from './speaker/views.js';
import type { FamilyCountsView, PeerErrorView, PeersResponse, PeerView, RoutesResponse, RouteView } from './speaker/api-types.js';

export type { RouteChange, RouteSubscriber } from './rib/changes.js';
export { RecordingSink } from './rib/changes.js';
export type { SpeakerOptions, SpeakerPeer } from './speaker/options.js';
export type * from './speaker/api-types.js';
import type { RouteChange, RouteSubscriber } from './rib/changes.js';

/** Counters the subsystem turns into metrics. */
export interface SpeakerHooks {
  updateReceived?(peer: string): void;
  /** RFC 7606 errors handled without a reset (treat-as-withdraw, attribute discard), per UPDATE. */
  updateErrors?(peer: string, n: number): void;
  updatesSent?(peer: string, n: number): void;
  decisionRuns?(n: number): void;
  /** A session changed state (readiness). */
  peerStateChanged?(peer: string, from: StateName, to: StateName): void;
}

export interface SpeakerDeps {
  logger?: Logger;
  hooks?: SpeakerHooks;
  /** Outgoing connections (tests); default plain/MD5 TCP. */
  connector?: Connector;
  /** Monotonic time and timers (sessions, graceful-restart deadlines); tests inject a fake one. */
  clock?: Clock;
}

/** A node of the cluster as etcd lists it, for the iBGP full mesh. */
export interface MeshNode {
  name: string;
  address: string;
  /** Default: our own AS (iBGP). */
  asn?: number;
}

export type StopMode = 'restart' | 'shutdown';

interface PeerRuntime {
  readonly key: string;
  peer: SpeakerPeer;
  session: BgpSession;
  sessionKey: string;
  readonly sockets: Set<net.Socket>;
  localAddress: string | null;
  /** Bumped on every up and down: work queued for an older session is dropped. */
  generation: number;
  up: boolean;
  negotiated: NegotiatedSession | null;
  establishedAt: number | null;
  pumping: boolean;
  pumpAgain: boolean;
  pumpScheduled: boolean;
  eorPending: boolean;
  readonly refresh: Set<FamilyKey>;
  readonly eorReceived: Set<FamilyKey>;
  updatesReceived: number;
  updatesSent: number;
  lastError: PeerErrorView | null;
  /** Set when nrd stopped the session for good (max-prefix teardown). */
  stopped: string | null;
  readonly log: Logger;
  /** Rate limit of RFC 7606 error logs (a remote peer can trigger them). */
  lastErrorLog: number;
  suppressedErrors: number;
  /** Rate limit of "family not negotiated" logs. */
  lastFamilyLog: number;
}

const ERROR_LOG_INTERVAL_MS = 10_000;

export class BgpSpeaker {
  private opts: SpeakerOptions;
  private readonly log: Logger;
  private readonly hooks: SpeakerHooks;
  private readonly clock: Clock;
  private rib!: Rib;
  private ingest!: IngestScheduler;
  private listener: BgpListener | null = null;
  private boundPort: number | null = null;
  private readonly peers = new Map<string, PeerRuntime>();
  private meshNodes: MeshNode[] = [];
  private readonly localPrefixes = new Map<FamilyKey, string[]>();
  private staleTimer: unknown = null;
  private flushScheduled = false;
  private started = false;
  private closed = false;
  private importSig = '';
  private rangesSig = '';
  private exportSig = '';
  private readonly changeListeners = new Set<(changes: readonly RouteChange[]) => void>();
  decisionRuns = 0;

  constructor(
    options: SpeakerOptions,
    private readonly deps: SpeakerDeps = {},
  ) {
    this.opts = options;
    this.log = deps.logger ?? silentLogger();
    this.hooks = deps.hooks ?? {};
    this.clock = deps.clock ?? systemClock;
    for (const p of options.localPrefixes ?? []) {
      const f = familyOfPrefix(p);
      if (!f) throw new Error(`invalid local prefix "${p}"`);
      this.localPrefixes.set(f, [...(this.localPrefixes.get(f) ?? []), ...checkPrefixes(f, [p])]);
    }
    this.init();
  }

  private now(): number {
    return this.clock.now();
  }

  private init(): void {
    const o = this.opts;
    const ribOpts: ConstructorParameters<typeof Rib>[0] = {
      localAsn: o.asn,
      routerId: o.routerId,
      maxPaths: o.ecmpMax,
      asPathRelax: o.multipathRelax === true,
      keepRejected: o.keepRejected === true,
      importPolicy: buildImportPolicy(o, this.desiredPeers().values(), this.localPrefixes),
      exportPolicy: buildExportPolicy(o, this.localPrefixes),
      onChangesPending: () => this.scheduleFlush(),
      onOutgoing: (peerId) => {
        const rt = this.peers.get(peerId);
        if (rt) this.schedulePump(rt);
      },
    };
    if (o.clusterId !== undefined) ribOpts.clusterId = o.clusterId;
    this.rib = new Rib(ribOpts);
    this.importSig = this.importSignature();
    this.rangesSig = this.rangesSignature();
    this.exportSig = this.exportSignature();
    this.ingest = new IngestScheduler({
      apply: (peer, u) => this.applyUpdate(peer, u),
      afterTurn: () => this.flush(),
      onError: (peer, err) => this.log.error({ peer, err }, 'applying an UPDATE failed'),
      prefixesPerTurn: o.ingest?.prefixesPerTurn ?? 8192,
      highWater: o.ingest?.highWater ?? 64,
    });
  }

  // ---- lifecycle ----------------------------------------------------------------------------

  /** Opens the listener and starts a session per peer. */
  async start(): Promise<void> {
    if (this.started) throw new Error('BGP speaker already started');
    this.started = true;
    this.closed = false;
    const listen = this.opts.listen;
    if (listen) {
      this.listener = new BgpListener({ address: listen.address, port: listen.port, logger: this.log });
    }
    this.applyPeers();
    if (this.listener) this.boundPort = await this.listener.listen();
    this.log.info({ asn: this.opts.asn, routerId: this.opts.routerId, listen: listen ? `${listen.address}:${this.boundPort}` : null, peers: this.peers.size }, 'BGP speaker started');
  }

  /**
   * restart (the default, also for SIGTERM): sockets are closed without a NOTIFICATION, so peers
   * that negotiated graceful restart keep our routes (RFC 4724; RFC 8538 would allow a Cease, but
   * not every peer has the N-bit); the Loc-RIB is not withdrawn, so the kernel keeps its routes.
   * shutdown: Cease to every peer (they withdraw our routes).
   */
  async stop(mode: StopMode = 'restart'): Promise<void> {
    if (!this.started) return;
    this.closed = true;
    for (const rt of [...this.peers.values()]) this.closePeer(rt, mode, 'nrd stopping');
    this.peers.clear();
    if (this.staleTimer !== null) this.clock.clearTimer(this.staleTimer);
    this.staleTimer = null;
    const l = this.listener;
    this.listener = null;
    if (l) await l.close();
    this.started = false;
    this.log.info({ mode }, 'BGP speaker stopped');
  }

  get listenPort(): number | null {
    return this.boundPort;
  }

  get options(): SpeakerOptions {
    return this.opts;
  }

  // ---- runtime inputs -------------------------------------------------------------------------

  /** This node's own prefixes of one family (its pod CIDRs, learned from etcd at runtime). */
  setLocalPrefixes(family: FamilyKey | 'ipv4' | 'ipv6', prefixes: readonly string[]): void {
    const f = familyFromName(family);
    if (!f) throw new Error(`unknown address family "${family}"`);
    const list = checkPrefixes(f, prefixes);
    const cur = this.localPrefixes.get(f) ?? [];
    if (cur.length === list.length && cur.every((p, i) => p === list[i])) return;
    this.localPrefixes.set(f, list);
    this.log.info({ family: familyName(f), prefixes: list }, 'local prefixes changed');
    // Our own prefixes are refused on import (no hijack of our CIDR): the import policy changes too.
    this.applyImportPolicy();
    this.applyExportPolicy(true);
  }

  localPrefixesOf(family: FamilyKey): readonly string[] {
    return this.localPrefixes.get(family) ?? [];
  }

  /** The iBGP full mesh (bgp.nodeMesh): every other node listed in etcd. */
  setMeshPeers(nodes: readonly MeshNode[]): void {
    this.meshNodes = [...nodes];
    if (this.started) this.applyPeers();
  }

  /** Applies new options (config reload): only the sessions a change concerns are reset. */
  async reconfigure(next: SpeakerOptions): Promise<void> {
    const prev = this.opts;
    if (next.asn !== prev.asn || next.routerId !== prev.routerId || next.clusterId !== prev.clusterId) {
      // The RIB and every OPEN carry these: nothing survives such a change.
      this.log.warn({ asn: next.asn, routerId: next.routerId }, 'AS number or router id changed: restarting every session');
      const wasStarted = this.started;
      await this.stop('shutdown');
      this.opts = next;
      this.init();
      if (wasStarted) await this.start();
      return;
    }
    this.opts = next;
    if (this.started && JSON.stringify(prev.listen) !== JSON.stringify(next.listen)) await this.moveListener();
    if (this.started) this.applyPeers();
    if (prev.ecmpMax !== next.ecmpMax || prev.multipathRelax !== next.multipathRelax) {
      this.rib.setDecisionOptions({ maxPaths: next.ecmpMax, asPathRelax: next.multipathRelax === true });
    }
    this.applyImportPolicy();
    this.applyExportPolicy(false);
  }

  /** Ask `peer` to resend its routes (RFC 2918); all negotiated families when none is given. */
  refresh(peer: string, family?: FamilyKey | 'ipv4' | 'ipv6'): boolean {
    const rt = this.peers.get(peerKey(peer));
    if (!rt?.up || !rt.negotiated) return false;
    const f = family === undefined ? undefined : familyFromName(family);
    if (family !== undefined && !f) throw new Error(`unknown address family "${family}"`);
    let sent = false;
    for (const fam of f ? [f] : rt.negotiated.families) {
      if (!rt.negotiated.families.includes(fam)) continue;
      const { afi, safi } = splitFamily(fam);
      if (rt.session.sendRouteRefresh(afi, safi)) sent = true;
    }
    if (sent) rt.log.info({ family: f ?? 'all' }, 'route refresh requested');
    return sent;
  }

  /**
   * Starts again a peer nrd stopped (max-prefix teardown) without waiting for a reload; also the
   * BFD hook (RFC 5882 §3.2): the session is closed at once and its routes withdrawn.
   */
  resetPeer(peer: string, why = 'reset by operator'): boolean {
    const rt = this.peers.get(peerKey(peer));
    if (!rt) return false;
    this.replacePeer(rt, rt.peer, why);
    return true;
  }

  // ---- Loc-RIB output ---------------------------------------------------------------------------

  /** The routing layer's feed: coalesced best-path/ECMP changes; replay gives the current table. */
  subscribe(sub: RouteSubscriber, opts: { replay?: boolean; batchSize?: number } = {}): () => void {
    return this.rib.subscribe(sub, opts);
  }

  /** Function form of subscribe(). */
  onRouteChange(fn: (changes: readonly RouteChange[]) => void, opts: { replay?: boolean } = {}): () => void {
    return this.subscribe({ onRouteChanges: fn }, opts);
  }

  locRibSize(family: FamilyKey | 'ipv4' | 'ipv6'): number {
    const f = familyFromName(family);
    return f ? this.rib.locRibSize(f) : 0;
  }

  /** The RIB itself, read-only use (tests, inspection). */
  get ribForInspection(): Rib {
    return this.rib;
  }

  /** UPDATEs received but not yet applied. */
  get ingestBacklog(): number {
    return this.ingest.pending();
  }

  // ---- views ------------------------------------------------------------------------------------

  peerViews(): PeersResponse {
    const nowMs = this.now();
    const peers: PeerView[] = [];
    for (const rt of this.peers.values()) peers.push(this.peerView(rt, nowMs));
    peers.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
    return { asn: this.opts.asn, routerId: this.opts.routerId, peers };
  }

  /**
   * Peers whose initial routes are not all in yet: not Established, or Established without an
   * End-of-RIB for every negotiated family. The routing layer defers deletions of kernel routes
   * until this is empty (or its own grace ran out), so a restart never removes a route that a
   * slow peer is about to send again.
   */
  peersAwaitingEndOfRib(): string[] {
    const waiting: string[] = [];
    for (const [key, rt] of this.peers) {
      const fams = rt.negotiated?.families ?? [];
      if (fams.length === 0 || !fams.every((f) => rt.eorReceived.has(f))) waiting.push(key);
    }
    return waiting;
  }

  hasPeer(peer: string): boolean {
    return this.peers.has(peerKey(peer)) || this.rib.knownPeers().includes(peerKey(peer));
  }

  routes(filter: { peer?: string; family?: FamilyKey; prefix?: string; limit?: number } = {}): RoutesResponse {
    const nowMs = this.now();
    const limit = filter.limit ?? 10_000;
    const peer = filter.peer === undefined ? undefined : filter.peer === 'local' ? 'local' : peerKey(filter.peer);
    const routes: RouteView[] = [];
    let total = 0;
    for (const family of filter.family ? [filter.family] : [IPV4, IPV6]) {
      const consider = (prefix: string): void => {
        const cands = this.rib.candidates(family, prefix);
        if (peer !== undefined && !cands.some((p) => p.peer.id === peer)) return;
        total++;
        if (routes.length < limit) routes.push(routeView(family, prefix, cands, this.rib.selection(family, prefix), nowMs, peer));
      };
      if (filter.prefix !== undefined) {
        if (this.rib.candidates(family, filter.prefix).length > 0) consider(filter.prefix);
        continue;
      }
      for (const [prefix] of this.rib.bestRoutes(family)) consider(prefix);
    }
    return { total, truncated: total > routes.length, routes };
  }

  /** Ready when every peer is Established; otherwise says which are not, in which state, and why. */
  readiness(): { ready: boolean; reason?: string; detail: unknown } {
    const views = this.peerViews().peers;
    const down = views.filter((p) => p.state !== 'Established');
    const detail = {
      peers: views.length,
      established: views.length - down.length,
      notEstablished: down.map((p) => ({ peer: p.address, asn: p.asn, state: p.state, lastError: p.lastError, stopped: p.stopped })),
    };
    if (!this.started) return { ready: false, reason: 'BGP speaker not started', detail };
    if (views.length === 0) return { ready: true, reason: 'no BGP peers configured', detail };
    if (down.length === 0) return { ready: true, detail };
    const parts = down.map((p) => `peer ${p.address} (AS ${p.asn}) ${p.state}: ${p.stopped ?? errorLine(p.lastError)}`);
    return { ready: false, reason: `${down.length} of ${views.length} BGP peers not Established: ${parts.join('; ')}`, detail };
  }

  // ---- peers --------------------------------------------------------------------------------

  /** Static peers plus mesh peers not shadowed by a static one, by key. */
  private desiredPeers(): Map<string, SpeakerPeer> {
    const out = new Map<string, SpeakerPeer>();
    for (const p of this.opts.peers) out.set(peerKey(p.address), { ...p, source: p.source ?? 'static' });
    const own = new Set([peerKey(this.opts.routerId), ...(this.opts.nextHopSelf?.ipv4 ? [peerKey(this.opts.nextHopSelf.ipv4)] : []), ...(this.opts.nextHopSelf?.ipv6 ? [peerKey(this.opts.nextHopSelf.ipv6)] : [])]);
    for (const n of this.meshNodes) {
      const key = peerKey(n.address);
      if (out.has(key) || own.has(key)) continue;
      const mesh: SpeakerPeer = { address: n.address, asn: n.asn ?? this.opts.asn, source: 'mesh', description: n.name };
      if (this.opts.meshMaxPrefix) mesh.maxPrefix = { ...this.opts.meshMaxPrefix };
      out.set(key, mesh);
    }
    return out;
  }

  private applyPeers(): void {
    const want = this.desiredPeers();
    for (const [key, rt] of [...this.peers]) {
      if (!want.has(key)) this.removePeer(rt, 'peer removed from configuration');
    }
    for (const [key, p] of want) {
      const rt = this.peers.get(key);
      if (!rt) this.addPeer(p);
      else if (rt.sessionKey !== sessionKey(this.opts, p)) this.replacePeer(rt, p, 'peer configuration changed');
      // A peer stopped for max-prefix starts again when its configuration changes (a new limit).
      else if (rt.stopped && JSON.stringify(rt.peer) !== JSON.stringify(p)) this.replacePeer(rt, p, 'configuration of a stopped peer changed');
      else rt.peer = p; // description, max-prefix: no session change
    }
    this.applyImportPolicy();
  }

  private addPeer(p: SpeakerPeer): PeerRuntime {
    const key = peerKey(p.address);
    const log = this.log.child({ peer: key, localAs: this.opts.asn, peerAs: p.asn });
    const rt: PeerRuntime = {
      key,
      peer: p,
      session: null as unknown as BgpSession,
      sessionKey: sessionKey(this.opts, p),
      sockets: new Set(),
      localAddress: null,
      generation: 0,
      up: false,
      negotiated: null,
      establishedAt: null,
      pumping: false,
      pumpAgain: false,
      pumpScheduled: false,
      eorPending: false,
      refresh: new Set(),
      eorReceived: new Set(),
      updatesReceived: 0,
      updatesSent: 0,
      lastError: null,
      stopped: null,
      log,
      lastErrorLog: -Infinity,
      suppressedErrors: 0,
      lastFamilyLog: -Infinity,
    };
    rt.session = this.newSession(rt);
    this.peers.set(key, rt);
    this.listener?.addPeer(key, { acceptIncoming: (s) => this.accepted(rt, s) }, p.password ? { md5Key: p.password } : {});
    rt.session.start();
    log.info({ passive: p.passive === true, source: p.source ?? 'static' }, 'peer added');
    return rt;
  }

  private newSession(rt: PeerRuntime): BgpSession {
    const p = rt.peer;
    const base = this.deps.connector ?? defaultConnector;
    const connector: Connector = (o) => {
      const s = base(o);
      this.track(rt, s);
      s.once('connect', () => {
        if (s.localAddress) rt.localAddress = peerKey(s.localAddress);
      });
      return s;
    };
    const opts: ConstructorParameters<typeof BgpSession>[0] = {
      config: buildSessionConfig(this.opts, p),
      peerAddress: p.address,
      consumer: {
        onUpdate: (m, errors) => this.onUpdate(rt, session, m, errors.length),
        onRouteRefresh: (m) => {
          if (rt.session !== session || m.subtype !== 0) return;
          rt.refresh.add(familyKey(m.afi, m.safi));
          rt.log.info({ afi: m.afi, safi: m.safi }, 'route refresh received');
          this.schedulePump(rt);
        },
        onUp: (n) => {
          if (rt.session === session) this.onUp(rt, n);
        },
        onDown: (reason) => {
          if (rt.session === session) this.onDown(rt, reason);
        },
        onStateChange: (from, to) => {
          if (rt.session === session) this.hooks.peerStateChanged?.(rt.key, from, to);
        },
      },
      logger: rt.log,
      connector,
      codec: bulkWireCodec,
      clock: this.clock,
    };
    if (p.port !== undefined) opts.peerPort = p.port;
    if (p.localAddress !== undefined) opts.localAddress = p.localAddress;
    if (p.password) opts.md5Key = p.password;
    if (p.gtsmHops !== undefined) opts.gtsmHops = p.gtsmHops;
    const session = new BgpSession(opts);
    return session;
  }

  private track(rt: PeerRuntime, s: net.Socket): void {
    rt.sockets.add(s);
    s.once('close', () => rt.sockets.delete(s));
  }

  private accepted(rt: PeerRuntime, s: net.Socket): void {
    this.track(rt, s);
    if (s.localAddress) rt.localAddress = peerKey(s.localAddress);
    rt.session.acceptIncoming(s);
  }

  private removePeer(rt: PeerRuntime, why: string): void {
    this.closePeer(rt, 'shutdown', why);
    this.peers.delete(rt.key);
    this.listener?.removePeer(rt.key);
    rt.log.info({ why }, 'peer removed');
  }

  /** New session for a changed peer: its routes are withdrawn and learned again. */
  private replacePeer(rt: PeerRuntime, p: SpeakerPeer, why: string): void {
    this.removePeer(rt, why);
    this.addPeer(p);
  }

  /**
   * Ends a peer's session. shutdown: a Cease (Hard Reset when both sides have the RFC 8538 N-bit,
   * so the peer does not keep our routes), routes withdrawn here. restart: the sockets are
   * destroyed first so that no NOTIFICATION goes out, and nothing is withdrawn anywhere.
   */
  private closePeer(rt: PeerRuntime, mode: StopMode, why: string): void {
    this.ingest.drop(rt.key);
    if (mode === 'restart') {
      for (const s of rt.sockets) s.destroy();
      rt.up = false;
      rt.generation++;
      rt.session.destroy(why);
      return;
    }
    const n = rt.negotiated;
    if (rt.up && n?.peerGracefulRestart?.notification && n.localGracefulRestart?.notification) rt.session.stop(why, CEASE_HARD_RESET);
    rt.session.destroy(why);
    // destroy() normally reports session-down (withdrawing the routes); make sure they go.
    if (rt.up) this.onDown(rt, { kind: 'manual-stop', text: why, notification: { code: 6, subcode: CEASE_PEER_DECONFIGURED } });
    else if (this.rib.knownPeers().includes(rt.key)) {
      this.rib.peerDown(rt.key, { graceful: false }, this.now());
      this.flush();
    }
  }

  // ---- session events ------------------------------------------------------------------------

  private onUp(rt: PeerRuntime, n: NegotiatedSession): void {
    if (this.closed) return;
    rt.up = true;
    rt.generation++;
    rt.negotiated = n;
    rt.establishedAt = this.now();
    rt.stopped = null;
    rt.eorReceived.clear();
    rt.refresh.clear();
    const nh: { ipv4?: string; ipv6?: readonly string[] } = {};
    const la = rt.localAddress;
    const v4 = rt.peer.nextHopSelf?.ipv4 ?? (la && !la.includes(':') ? la : undefined) ?? this.opts.nextHopSelf?.ipv4;
    const v6 = rt.peer.nextHopSelf?.ipv6 ?? (la && la.includes(':') ? la : undefined) ?? this.opts.nextHopSelf?.ipv6;
    if (v4) nh.ipv4 = v4;
    if (v6) nh.ipv6 = [v6];
    const info: PeerInfo = {
      id: rt.key,
      address: rt.key,
      asn: n.peerAs,
      localAsn: this.opts.asn,
      routerId: n.peerId,
      type: n.context.peerType,
      rrClient: rt.peer.rrClient === true,
      families: n.families,
      nextHopSelf: nh,
    };
    this.rib.peerUp(info, this.now(), { preservedFamilies: preservedOnUp(n), staleTime: this.opts.gracefulRestart.stalePathTime });
    rt.eorPending = true;
    this.schedulePump(rt);
    this.armStaleTimer();
    this.scheduleFlush();
  }

  private onDown(rt: PeerRuntime, reason: DownReason): void {
    // The error's time is shown to operators: wall-clock, unlike the monotonic clock.
    rt.lastError = errorView(reason, new Date());
    const wasUp = rt.up;
    rt.up = false;
    rt.generation++;
    rt.establishedAt = null;
    this.ingest.drop(rt.key);
    if (this.closed || !wasUp) return;
    const gr = gracefulOnDown(reason, rt.negotiated);
    if (gr.graceful) {
      rt.log.info({ restartTime: gr.restartTime, families: gr.families, why: gr.why }, 'peer down: keeping its routes as stale (graceful restart helper)');
      this.rib.peerDown(rt.key, { graceful: true, restartTime: gr.restartTime, families: gr.families }, this.now());
    } else {
      rt.log.info({ why: gr.why }, 'peer down: withdrawing its routes');
      this.rib.peerDown(rt.key, { graceful: false }, this.now());
    }
    this.armStaleTimer();
    this.flush();
  }

  private onUpdate(rt: PeerRuntime, session: BgpSession, m: UpdateMessage, errors: number): void | Promise<void> {
    if (rt.session !== session || !rt.up) return;
    rt.updatesReceived++;
    this.hooks.updateReceived?.(rt.key);
    if (errors > 0) {
      this.hooks.updateErrors?.(rt.key, errors);
      this.logPeerError(rt, errors);
    }
    return this.ingest.push(rt.key, m);
  }

  private logPeerError(rt: PeerRuntime, n: number): void {
    const t = this.now();
    if (t - rt.lastErrorLog < ERROR_LOG_INTERVAL_MS) {
      rt.suppressedErrors += n;
      return;
    }
    rt.log.warn({ errors: n, suppressed: rt.suppressedErrors }, 'malformed UPDATE handled by RFC 7606 (treat-as-withdraw or attribute discard)');
    rt.lastErrorLog = t;
    rt.suppressedErrors = 0;
  }

  private applyUpdate(key: string, received: UpdateMessage): void {
    const rt = this.peers.get(key);
    if (!rt?.up || !this.rib.isPeerUp(key)) return;
    const u = this.ignoreOwnNextHop(rt, received);
    const r = this.rib.applyUpdate(key, u, this.now());
    const runs = r.accepted + r.withdrawn;
    if (runs > 0) {
      this.decisionRuns += runs;
      this.hooks.decisionRuns?.(runs);
    }
    if (r.endOfRib) {
      rt.eorReceived.add(r.endOfRib);
      rt.log.info({ family: familyName(r.endOfRib) }, 'End-of-RIB received');
      this.armStaleTimer();
    }
    if (r.maxPrefix) this.onMaxPrefix(rt, r.maxPrefix);
    if (r.unnegotiated.length > 0) {
      // RFC 4760 §7: ignored, the session stays up. A remote peer triggers this: rate-limited.
      const t = this.now();
      if (t - rt.lastFamilyLog >= ERROR_LOG_INTERVAL_MS) {
        rt.lastFamilyLog = t;
        rt.log.warn({ families: r.unnegotiated }, 'UPDATE for an address family not negotiated on the session: ignored (RFC 4760 §7)');
      }
    }
  }

  /**
   * RFC 4271 §6.3: a NEXT_HOP that is one of our own addresses is semantically incorrect; the
   * routes are ignored (as withdrawn: an earlier valid path from this peer must not linger) and
   * the session stays up. A kernel route through ourselves would loop.
   */
  private ignoreOwnNextHop(rt: PeerRuntime, u: UpdateMessage): UpdateMessage {
    const own = new Set<string>();
    for (const a of [this.opts.nextHopSelf?.ipv4, this.opts.nextHopSelf?.ipv6, this.opts.listen?.address, rt.localAddress]) {
      if (a) own.add(peerKey(a));
    }
    const classicBad = u.attrs?.nextHop !== undefined && own.has(peerKey(u.attrs.nextHop));
    const mpHop = u.mpReach?.nextHops[0];
    const mpBad = mpHop !== undefined && own.has(peerKey(mpHop));
    if (!classicBad && !mpBad) return u;
    const classic = classicBad ? u.nlri : [];
    const mp = mpBad ? u.mpReach!.nlri : [];
    if (classic.length + mp.length === 0) return u;
    rt.log.warn({ nextHop: classicBad ? u.attrs!.nextHop : mpHop, prefixes: classic.length + mp.length }, 'UPDATE with our own address as NEXT_HOP: routes ignored (RFC 4271 §6.3)');
    if (mpBad && u.mpUnreach && (u.mpUnreach.afi !== u.mpReach!.afi || u.mpUnreach.safi !== u.mpReach!.safi)) {
      // Two families' withdrawals in one UPDATE: withdraw the ignored MP routes on their own first.
      this.rib.applyUpdate(rt.key, { type: 'update', withdrawn: [], attrs: null, nlri: [], mpUnreach: { afi: u.mpReach!.afi, safi: u.mpReach!.safi, withdrawn: mp } }, this.now());
      return { type: 'update', withdrawn: [...u.withdrawn, ...classic], attrs: u.attrs, nlri: classicBad ? [] : u.nlri, mpUnreach: u.mpUnreach };
    }
    const out: UpdateMessage = { type: 'update', withdrawn: [...u.withdrawn, ...classic], attrs: u.attrs, nlri: classicBad ? [] : u.nlri };
    if (mpBad) {
      out.mpUnreach = { afi: u.mpReach!.afi, safi: u.mpReach!.safi, withdrawn: [...(u.mpUnreach?.withdrawn ?? []), ...mp] };
    } else {
      if (u.mpReach) out.mpReach = u.mpReach;
      if (u.mpUnreach) out.mpUnreach = u.mpUnreach;
    }
    return out;
  }

  private onMaxPrefix(rt: PeerRuntime, d: MaxPrefixDecision): void {
    const family = familyName(familyKey(d.afi, d.safi));
    if (d.action === 'warn') {
      rt.log.warn({ family, count: d.count, limit: d.limit }, 'peer exceeds its maximum prefix count (warning only)');
      return;
    }
    const text = `maximum prefix count ${d.limit} exceeded (${d.count} ${family} prefixes)`;
    rt.log.error({ family, count: d.count, limit: d.limit }, 'peer exceeds its maximum prefix count: closing the session (RFC 4486)');
    this.ingest.drop(rt.key);
    rt.session.stop(undefined, CEASE_MAX_PREFIXES);
    // RFC 4486 gives no automatic restart; nrd waits for a reload or resetPeer().
    rt.stopped = text;
    if (rt.lastError) rt.lastError = { ...rt.lastError, text };
  }

  // ---- Adj-RIB-Out ------------------------------------------------------------------------------

  private schedulePump(rt: PeerRuntime): void {
    if (rt.pumpScheduled || !rt.up) return;
    rt.pumpScheduled = true;
    setImmediate(() => {
      rt.pumpScheduled = false;
      void this.pump(rt);
    });
  }

  /** Sends pending Adj-RIB-Out differences (and refresh answers, End-of-RIB) to one peer. */
  private async pump(rt: PeerRuntime): Promise<void> {
    if (rt.pumping) {
      rt.pumpAgain = true;
      return;
    }
    rt.pumping = true;
    const gen = rt.generation;
    let sent = 0;
    try {
      do {
        rt.pumpAgain = false;
        if (!rt.up || rt.generation !== gen || !rt.negotiated) return;
        const ctx = rt.negotiated.context;
        const msgs: UpdateMessage[] = [];
        for (const f of rt.refresh) msgs.push(...batchToUpdates(this.rib.routeRefresh(rt.key, f), ctx));
        rt.refresh.clear();
        msgs.push(...batchToUpdates(this.rib.takeOutgoing(rt.key), ctx));
        if (rt.eorPending) {
          // RFC 4724 §4.1: End-of-RIB once the initial update is out, for every family.
          rt.eorPending = false;
          for (const f of rt.negotiated.families) msgs.push(endOfRibMessage(f));
        }
        for (const m of msgs) {
          if (!rt.up || rt.generation !== gen) return;
          const ok = rt.session.sendUpdate(m);
          if (rt.session.state !== 'Established') return;
          sent++;
          if (!ok) await rt.session.writable();
        }
      } while (rt.pumpAgain);
    } catch (err) {
      rt.log.error({ err }, 'sending UPDATEs failed');
    } finally {
      rt.pumping = false;
      if (sent > 0) {
        rt.updatesSent += sent;
        this.hooks.updatesSent?.(rt.key, sent);
      }
    }
  }

  // ---- policy -------------------------------------------------------------------------------

  private importSignature(): string {
    const mp = [...this.desiredPeers().values()].map((p) => [peerKey(p.address), p.maxPrefix ?? null]);
    return JSON.stringify({ i: this.opts.import, mp, own: [...this.localPrefixes] });
  }

  /** What decides which prefixes are accepted: a change asks peers for their routes again. */
  private rangesSignature(): string {
    return JSON.stringify({ i: this.opts.import, own: [...this.localPrefixes] });
  }

  private exportSignature(): string {
    return JSON.stringify({ e: this.opts.export, l: this.opts.exportLearned === true, p: [...this.localPrefixes] });
  }

  /** New import policy; when the ranges changed, ask peers for their routes again (RFC 2918). */
  private applyImportPolicy(): void {
    const sig = this.importSignature();
    if (sig === this.importSig) return;
    this.importSig = sig;
    const ranges = this.rangesSignature();
    const rangesChanged = ranges !== this.rangesSig;
    this.rangesSig = ranges;
    const r = this.rib.setImportPolicy(buildImportPolicy(this.opts, this.desiredPeers().values(), this.localPrefixes));
    if (rangesChanged) {
      for (const peer of r.refreshNeeded) this.refresh(peer);
    }
    for (const m of r.maxPrefix) {
      const rt = this.peers.get(m.peerId);
      if (rt) this.onMaxPrefix(rt, m.decision);
    }
    this.flush();
  }

  /** New export policy: the RIB re-evaluates every Adj-RIB-Out and only differences are sent. */
  private applyExportPolicy(force: boolean): void {
    const sig = this.exportSignature();
    if (!force && sig === this.exportSig) return;
    this.exportSig = sig;
    this.rib.setExportPolicy(buildExportPolicy(this.opts, this.localPrefixes), this.now());
    this.flush();
  }

  private async moveListener(): Promise<void> {
    const old = this.listener;
    const listen = this.opts.listen;
    this.listener = null;
    if (old) await old.close();
    if (!listen) return;
    const l = new BgpListener({ address: listen.address, port: listen.port, logger: this.log });
    for (const rt of this.peers.values()) l.addPeer(rt.key, { acceptIncoming: (s) => this.accepted(rt, s) }, rt.peer.password ? { md5Key: rt.peer.password } : {});
    this.boundPort = await l.listen();
    this.listener = l;
    this.log.info({ listen: `${listen.address}:${this.boundPort}` }, 'BGP listener moved');
  }

  // ---- timers and flushing ---------------------------------------------------------------------

  /** One timer for the earliest graceful-restart deadline (restart time, stale path time). */
  private armStaleTimer(): void {
    if (this.staleTimer !== null) this.clock.clearTimer(this.staleTimer);
    this.staleTimer = null;
    if (this.closed) return;
    const next = this.rib.nextStaleDeadline();
    if (next === null) return;
    this.staleTimer = this.clock.setTimer(() => {
      this.staleTimer = null;
      const swept = this.rib.sweepExpired(this.now());
      if (swept > 0) this.log.info({ swept }, 'graceful restart timer expired: stale routes removed');
      this.flush();
      this.armStaleTimer();
    }, Math.max(0, next - this.now()) + 5);
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private flush(): void {
    if (this.closed) return;
    this.rib.flushChanges();
  }

  private peerView(rt: PeerRuntime, nowMs: number): PeerView {
    const n = rt.up ? rt.negotiated : null;
    const perFamily: Record<string, FamilyCountsView> = {};
    const totals = { received: 0, accepted: 0, stale: 0, advertised: 0 };
    for (const f of peerFamilies(rt.peer)) {
      const c = this.rib.peerCounts(rt.key, f);
      const v = { received: c.accepted + c.rejected, accepted: c.accepted, stale: c.stale, advertised: c.advertised };
      perFamily[familyName(f)] = v;
      totals.received += v.received;
      totals.accepted += v.accepted;
      totals.stale += v.stale;
      totals.advertised += v.advertised;
    }
    const state = rt.session.state;
    const v: PeerView = {
      address: rt.key,
      asn: rt.peer.asn,
      localAsn: this.opts.asn,
      type: rt.peer.asn === this.opts.asn ? 'ibgp' : 'ebgp',
      source: rt.peer.source ?? 'static',
      state,
      uptimeSeconds: state === 'Established' && rt.establishedAt !== null ? Math.floor((nowMs - rt.establishedAt) / 1000) : null,
      families: n ? n.families.map(familyName) : [],
      prefixes: totals,
      perFamily,
      updates: { received: rt.updatesReceived, sent: rt.updatesSent },
      lastError: rt.lastError,
      gracefulRestart: { local: buildSessionConfig(this.opts, rt.peer).gracefulRestart !== undefined, helping: totals.stale > 0 },
    };
    if (rt.peer.description) v.description = rt.peer.description;
    if (n) {
      v.routerId = n.peerId;
      v.holdTime = n.holdTime;
      v.keepaliveTime = n.keepaliveTime;
      if (n.peerGracefulRestart) {
        v.gracefulRestart.peerRestartTime = n.peerGracefulRestart.restartTime;
        v.gracefulRestart.peerNotification = n.peerGracefulRestart.notification;
      }
    }
    if (rt.peer.maxPrefix && rt.peer.maxPrefix.limit > 0) v.maxPrefix = { limit: rt.peer.maxPrefix.limit, action: rt.peer.maxPrefix.action };
    if (rt.stopped) v.stopped = rt.stopped;
    return v;
  }
}
