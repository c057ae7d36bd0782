// The RIB: per-peer Adj-RIB-In, per-family Loc-RIB, per-peer Adj-RIB-Out (RFC 4271 §3.2, §9),
// route reflection (RFC 4456), graceful-restart helper side (RFC 4724, RFC 8538), route
// refresh (RFC 2918, RFC 7313) and soft policy changes. Pure data in, data out: the session
// shell feeds decoded UPDATEs and executes what comes back; the routing layer subscribes to
// best-path changes. No sockets, timers or logs here; time comes in as `now` (ms).
import {
  AFI_IPV4,
  SAFI_UNICAST,
  familyKey,
  type FamilyKey,
  type Nlri,
  type PathAttributes,
  type UpdateMessage,
} from '../types.js';
import type { ExportPolicy, OutRoute } from '../policy/export.js';
import { checkMaxPrefix, type ImportPolicy, type LocalIdentity, type MaxPrefixDecision } from '../policy/import.js';
import { attributesInterner, attributesKey, freezeAttributes, Interner, nextHopsInterner } from './intern.js';
import { ChangeStream, type RouteSubscriber } from './changes.js';
import { NO_ROUTE, type DecisionOptions, type Selection } from './decision.js';
import { LocRib } from './loc-rib.js';
import { Path, nlriKey } from './path.js';
import { AdjRibOut, type OutBatch } from './adj-rib-out.js';
import { decisionFieldsDiffer, localSource, type LocalSource, type PeerInfo } from './peer.js';

const IPV4_UNICAST = familyKey(AFI_IPV4, SAFI_UNICAST);
const EXPORT_CACHE_LIMIT = 4096;

export interface RibOptions {
  localAsn: number;
  routerId: string;
  /** Set to act as a route reflector (RFC 4456) with this CLUSTER_ID (often the router id). */
  clusterId?: string;
  /** Largest ECMP set; default 8 (nrd installs multipath routes). 1 disables multipath. */
  maxPaths?: number;
  /** ECMP across different neighbour ASes; default false. */
  asPathRelax?: boolean;
  /**
   * Keep routes rejected by import policy (RFC 4271's "soft reconfiguration inbound"), so an
   * import policy change needs no route refresh. Default true: a rejected route costs the same
   * as an accepted one, and nrd's peers send few that import policy rejects.
   */
  keepRejected?: boolean;
  importPolicy: ImportPolicy;
  exportPolicy: ExportPolicy;
  /** The first Loc-RIB change since the last flush is pending: schedule flushChanges(). */
  onChangesPending?: () => void;
  /** A peer's Adj-RIB-Out has new pending differences: schedule takeOutgoing(peer). */
  onOutgoing?: (peerId: string) => void;
}

export interface UpdateResult {
  /** Paths accepted into the Adj-RIB-In (and offered to the Loc-RIB). */
  accepted: number;
  /** Paths rejected by import policy. */
  rejected: number;
  withdrawn: number;
  /** The UPDATE was an End-of-RIB marker (RFC 4724 §2) for this family; stale paths were swept. */
  endOfRib: FamilyKey | null;
  /** Max-prefix exceeded: the session logs (warn) or sends the NOTIFICATION and closes (teardown). */
  maxPrefix: MaxPrefixDecision | null;
}

export interface PeerDownOptions {
  /** RFC 4724 / RFC 8538: keep the peer's routes as stale instead of withdrawing them. */
  graceful: boolean;
  /** Seconds from the peer's Graceful Restart capability. */
  restartTime?: number;
  /** Families whose forwarding state the peer preserves; others are withdrawn now. Default: all. */
  families?: readonly FamilyKey[];
}

export interface PeerUpOptions {
  /**
   * RFC 4724 §4.2: families the peer again lists with forwarding state preserved. Stale paths of
   * other families are deleted at once. Default: keep all stale paths until End-of-RIB.
   */
  preservedFamilies?: readonly FamilyKey[];
  /** Upper bound (s) on waiting for End-of-RIB after the session is back; default 360. */
  staleTime?: number;
}

export interface FamilyCounts {
  accepted: number;
  rejected: number;
  stale: number;
  advertised: number;
}

interface FamilyIn {
  readonly accepted: Map<string, Path>;
  readonly rejected: Map<string, Path> | null;
  stale: number;
}

interface PeerState {
  info: PeerInfo;
  up: boolean;
  readonly families: Map<FamilyKey, FamilyIn>;
  out: AdjRibOut | null;
  staleDeadline: number | null;
  readonly warned: Set<FamilyKey>;
  readonly exportCache: Map<string, OutRoute | null>;
}

function familyOfUnicast(afi: number, safi: number): FamilyKey {
  return familyKey(afi, safi);
}

/** RFC 4724 §2: an UPDATE with nothing in it (IPv4) or only an empty MP_UNREACH. */
function endOfRibFamily(u: UpdateMessage): FamilyKey | null {
  if (u.attrs !== null || u.nlri.length > 0 || u.withdrawn.length > 0 || u.mpReach) return null;
  if (!u.mpUnreach) return IPV4_UNICAST;
  return u.mpUnreach.withdrawn.length === 0 ? familyOfUnicast(u.mpUnreach.afi, u.mpUnreach.safi) : null;
}

export class Rib {
  readonly attrs = attributesInterner();
  readonly nextHops = nextHopsInterner();
  readonly outRoutes = new Interner<OutRoute>(
    (r) => `${attributesKey(r.attrs)}#${r.nextHops.join(',')}`,
    (r) => Object.freeze({ attrs: freezeAttributes(r.attrs), nextHops: Object.freeze([...r.nextHops]) }),
  );
  readonly changes: ChangeStream;

  private readonly peers = new Map<string, PeerState>();
  private readonly locRibs = new Map<FamilyKey, LocRib>();
  private readonly local = new Map<FamilyKey, Map<string, Path>>();
  private readonly localSrc: LocalSource;
  private readonly identity: LocalIdentity;
  private decision: DecisionOptions;
  private importPolicy: ImportPolicy;
  private exportPolicy: ExportPolicy;
  private readonly keepRejected: boolean;

  constructor(private readonly opts: RibOptions) {
    this.identity = { localAsn: opts.localAsn, routerId: opts.routerId, clusterId: opts.clusterId };
    this.localSrc = localSource(opts.localAsn, opts.routerId);
    this.decision = { maxPaths: opts.maxPaths ?? 8, asPathRelax: opts.asPathRelax ?? false, localAsn: opts.localAsn };
    this.importPolicy = opts.importPolicy;
    this.exportPolicy = opts.exportPolicy;
    this.keepRejected = opts.keepRejected ?? true;
    this.changes = new ChangeStream(
      (family, prefix) => this.locRibs.get(family)?.selection(prefix) ?? NO_ROUTE,
      () => this.allSelections(),
      opts.onChangesPending,
    );
    this.syncOriginated(0);
  }

  // ---- sessions ---------------------------------------------------------------------------

  /**
   * The session with `info` reached Established. Returns nothing: the initial advertisement is
   * pending in the peer's Adj-RIB-Out (takeOutgoing), after which the session sends End-of-RIB.
   */
  peerUp(info: PeerInfo, now: number, opts: PeerUpOptions = {}): void {
    let st = this.peers.get(info.id);
    if (st?.up) this.peerDown(info.id, { graceful: false }, now);
    st = this.peers.get(info.id);
    let reexport = false;
    if (!st) {
      st = {
        info,
        up: false,
        families: new Map(),
        out: null,
        staleDeadline: null,
        warned: new Set(),
        exportCache: new Map(),
      };
      this.peers.set(info.id, st);
    } else {
      // Back after a graceful restart: the stale paths now belong to the new session.
      const redecide = decisionFieldsDiffer(st.info, info);
      reexport = redecide || st.info.rrClient !== info.rrClient;
      st.info = info;
      for (const [family, fam] of st.families) {
        const loc = this.locRib(family);
        for (const p of fam.accepted.values()) {
          p.peer = info;
          if (redecide) loc.recompute(p.prefix);
        }
        if (fam.rejected) for (const p of fam.rejected.values()) p.peer = info;
      }
      if (opts.preservedFamilies) {
        for (const family of [...st.families.keys()]) {
          if (!opts.preservedFamilies.includes(family)) this.sweepFamily(st, family);
        }
      }
      st.staleDeadline = this.staleCount(st) > 0 ? now + (opts.staleTime ?? 360) * 1000 : null;
    }
    st.up = true;
    this.clearExportCaches();
    st.out = new AdjRibOut(info.id, (r) => this.outRoutes.release(r));
    if (reexport) this.reexportAll();
    else this.fillAdjRibOut(st);
  }

  /**
   * The session left Established. Graceful (RFC 4724 §4.2, or RFC 8538 §4 on a NOTIFICATION
   * other than Hard Reset): the peer's paths stay, marked stale, in the Loc-RIB and in the
   * kernel until End-of-RIB or the restart time. Otherwise they are withdrawn at once.
   */
  peerDown(peerId: string, opts: PeerDownOptions, now: number): void {
    const st = this.peers.get(peerId);
    if (!st) return;
    st.up = false;
    st.out?.clear();
    st.out = null;
    st.warned.clear();
    this.clearExportCaches();
    if (!opts.graceful) {
      for (const family of [...st.families.keys()]) this.removeFamily(st, family);
      this.peers.delete(peerId);
      return;
    }
    for (const [family, fam] of [...st.families]) {
      if (opts.families && !opts.families.includes(family)) {
        this.removeFamily(st, family);
        continue;
      }
      for (const p of fam.accepted.values()) this.markStale(fam, p);
      if (fam.rejected) for (const p of fam.rejected.values()) this.markStale(fam, p);
    }
    st.staleDeadline = now + (opts.restartTime ?? 0) * 1000;
    this.forgetIfEmpty(st);
  }

  /** RFC 4724 §4.2: End-of-RIB from the peer for `family` removes its paths still stale. */
  endOfRib(peerId: string, family: FamilyKey): number {
    const st = this.peers.get(peerId);
    if (!st) return 0;
    const swept = this.sweepFamily(st, family);
    if (this.staleCount(st) === 0) st.staleDeadline = null;
    this.forgetIfEmpty(st);
    return swept;
  }

  /**
   * RFC 7313 §4: the peer sent a Beginning-of-RIB-Refresh (BoRR) for `family`: its current paths
   * become stale; what it re-sends replaces them; endRouteRefresh (EoRR) removes the rest.
   */
  beginRouteRefresh(peerId: string, family: FamilyKey): void {
    const fam = this.peers.get(peerId)?.families.get(family);
    if (!fam) return;
    for (const p of fam.accepted.values()) this.markStale(fam, p);
    if (fam.rejected) for (const p of fam.rejected.values()) this.markStale(fam, p);
  }

  /** RFC 7313 §4: End-of-RIB-Refresh: paths not re-sent since BoRR are removed. */
  endRouteRefresh(peerId: string, family: FamilyKey): number {
    return this.endOfRib(peerId, family);
  }

  /** Restart (or stale) timer: sweeps every peer whose deadline has passed. Returns paths removed. */
  sweepExpired(now: number): number {
    let swept = 0;
    for (const st of [...this.peers.values()]) {
      if (st.staleDeadline === null || st.staleDeadline > now) continue;
      for (const family of [...st.families.keys()]) swept += this.sweepFamily(st, family);
      st.staleDeadline = null;
      this.forgetIfEmpty(st);
    }
    return swept;
  }

  /** When the shell's restart timer should fire next (ms clock value), or null. */
  nextStaleDeadline(): number | null {
    let next: number | null = null;
    for (const st of this.peers.values()) {
      if (st.staleDeadline !== null && (next === null || st.staleDeadline < next)) next = st.staleDeadline;
    }
    return next;
  }

  // ---- UPDATE in --------------------------------------------------------------------------

  /** Applies one decoded UPDATE (after RFC 7606 treat-as-withdraw conversion by the session). */
  applyUpdate(peerId: string, u: UpdateMessage, now: number): UpdateResult {
    const st = this.peers.get(peerId);
    if (!st?.up) throw new Error(`RIB: UPDATE from peer ${peerId} that is not Established`);
    const result: UpdateResult = { accepted: 0, rejected: 0, withdrawn: 0, endOfRib: null, maxPrefix: null };
    const eor = endOfRibFamily(u);
    if (eor) {
      this.endOfRib(peerId, eor);
      result.endOfRib = eor;
      return result;
    }
    if (u.withdrawn.length > 0) result.withdrawn += this.withdraw(st, IPV4_UNICAST, u.withdrawn);
    if (u.mpUnreach && u.mpUnreach.withdrawn.length > 0) {
      result.withdrawn += this.withdraw(st, familyOfUnicast(u.mpUnreach.afi, u.mpUnreach.safi), u.mpUnreach.withdrawn);
    }
    if (u.attrs) {
      if (u.nlri.length > 0) {
        const nh = u.attrs.nextHop !== undefined ? [u.attrs.nextHop] : [];
        this.announce(st, IPV4_UNICAST, u.attrs, nh, u.nlri, now, result);
        result.maxPrefix = this.checkMaxPrefix(st, IPV4_UNICAST);
      }
      if (u.mpReach && u.mpReach.nlri.length > 0) {
        const family = familyOfUnicast(u.mpReach.afi, u.mpReach.safi);
        this.announce(st, family, u.attrs, u.mpReach.nextHops, u.mpReach.nlri, now, result);
        result.maxPrefix ??= this.checkMaxPrefix(st, family);
      }
    }
    return result;
  }

  private announce(
    st: PeerState,
    family: FamilyKey,
    raw: PathAttributes,
    rawNextHops: readonly string[],
    nlri: readonly Nlri[],
    now: number,
    result: UpdateResult,
  ): void {
    const fam = this.familyIn(st, family);
    const loc = this.locRib(family);
    const reason = this.importPolicy.checkAttributes(st.info, raw, this.identity);
    const attrs = this.attrs.intern(raw);
    const nextHops = this.nextHops.intern(rawNextHops);
    for (const n of nlri) {
      const key = nlriKey(n.prefix, n.pathId);
      const path = new Path(n.prefix, n.pathId ?? 0, st.info, attrs, nextHops, now, false);
      const old = fam.accepted.get(key);
      if (reason === null && this.importPolicy.acceptsPrefix(n.prefix)) {
        this.retainPath(path);
        fam.accepted.set(key, path);
        if (fam.rejected) {
          const r = fam.rejected.get(key);
          if (r) {
            fam.rejected.delete(key);
            this.dropPath(fam, r);
          }
        }
        loc.replace(n.prefix, old, path);
        if (old) this.dropPath(fam, old);
        result.accepted++;
      } else {
        if (old) {
          fam.accepted.delete(key);
          loc.replace(n.prefix, old, undefined);
          this.dropPath(fam, old);
        }
        if (fam.rejected) {
          this.retainPath(path);
          const r = fam.rejected.get(key);
          fam.rejected.set(key, path);
          if (r) this.dropPath(fam, r);
        }
        result.rejected++;
      }
    }
    // The references taken by intern() above were only to keep the sets alive during the loop.
    this.attrs.release(attrs);
    this.nextHops.release(nextHops);
  }

  private withdraw(st: PeerState, family: FamilyKey, nlri: readonly Nlri[]): number {
    const fam = st.families.get(family);
    if (!fam) return 0;
    const loc = this.locRib(family);
    let n = 0;
    for (const w of nlri) {
      const key = nlriKey(w.prefix, w.pathId);
      const old = fam.accepted.get(key);
      if (old) {
        fam.accepted.delete(key);
        loc.replace(w.prefix, old, undefined);
        this.dropPath(fam, old);
        n++;
      } else if (fam.rejected) {
        const r = fam.rejected.get(key);
        if (r) {
          fam.rejected.delete(key);
          this.dropPath(fam, r);
          n++;
        }
      }
    }
    return n;
  }

  private checkMaxPrefix(st: PeerState, family: FamilyKey): MaxPrefixDecision | null {
    const opts = this.importPolicy.maxPrefixFor(st.info.id);
    if (!opts) return null;
    const count = st.families.get(family)?.accepted.size ?? 0;
    if (count <= opts.limit) {
      st.warned.delete(family);
      return null;
    }
    const [afi, safi] = family.split('/').map(Number) as [number, number];
    const d = checkMaxPrefix(opts, afi, safi, count, st.warned.has(family));
    if (d?.action === 'warn') st.warned.add(family);
    return d;
  }

  // ---- UPDATE out -------------------------------------------------------------------------

  /** Pending announcements and withdrawals for a peer, grouped by attributes; clears them. */
  takeOutgoing(peerId: string): OutBatch {
    const out = this.peers.get(peerId)?.out;
    return out ? out.take() : { announce: [], withdraw: [] };
  }

  /** Route refresh received (RFC 2918): the whole Adj-RIB-Out of the family, to resend. */
  routeRefresh(peerId: string, family: FamilyKey): OutBatch {
    const out = this.peers.get(peerId)?.out;
    return out ? out.full(family) : { announce: [], withdraw: [] };
  }

  // ---- policy and options -----------------------------------------------------------------

  /**
   * New import policy: re-evaluates every kept path (accepted and rejected). Without kept
   * rejected paths, returns the peers to ask for a route refresh. Never resets a session.
   */
  setImportPolicy(policy: ImportPolicy): { refreshNeeded: string[]; maxPrefix: { peerId: string; decision: MaxPrefixDecision }[] } {
    this.importPolicy = policy;
    const refreshNeeded: string[] = [];
    const maxPrefix: { peerId: string; decision: MaxPrefixDecision }[] = [];
    for (const st of this.peers.values()) {
      if (!this.keepRejected && st.up) refreshNeeded.push(st.info.id);
      const reasons = new Map<PathAttributes, string | null>();
      const ok = (p: Path): boolean => {
        let r = reasons.get(p.attrs);
        if (r === undefined) reasons.set(p.attrs, (r = policy.checkAttributes(st.info, p.attrs, this.identity)));
        return r === null && policy.acceptsPrefix(p.prefix);
      };
      for (const [family, fam] of st.families) {
        const loc = this.locRib(family);
        const drop = [...fam.accepted].filter(([, p]) => !ok(p));
        const take = fam.rejected ? [...fam.rejected].filter(([, p]) => ok(p)) : [];
        for (const [key, p] of drop) {
          fam.accepted.delete(key);
          loc.replace(p.prefix, p, undefined);
          if (fam.rejected) fam.rejected.set(key, p);
          else this.dropPath(fam, p);
        }
        for (const [key, p] of take) {
          fam.rejected!.delete(key);
          fam.accepted.set(key, p);
          loc.replace(p.prefix, undefined, p);
        }
        if (st.up) {
          const d = this.checkMaxPrefix(st, family);
          if (d) maxPrefix.push({ peerId: st.info.id, decision: d });
        }
      }
    }
    return { refreshNeeded, maxPrefix };
  }

  /**
   * New export policy: re-originates the local routes and recomputes every Adj-RIB-Out; only
   * real differences become pending. Never resets a session.
   */
  setExportPolicy(policy: ExportPolicy, now: number): void {
    this.exportPolicy = policy;
    this.clearExportCaches();
    this.syncOriginated(now);
    this.reexportAll();
  }

  setDecisionOptions(opts: { maxPaths?: number; asPathRelax?: boolean }): void {
    this.decision = {
      ...this.decision,
      maxPaths: opts.maxPaths ?? this.decision.maxPaths,
      asPathRelax: opts.asPathRelax ?? this.decision.asPathRelax,
    };
    for (const loc of this.locRibs.values()) loc.recomputeAll();
  }

  // ---- Loc-RIB output ---------------------------------------------------------------------

  subscribe(sub: RouteSubscriber, opts: { replay?: boolean; batchSize?: number } = {}): () => void {
    return this.changes.subscribe(sub, opts);
  }

  /** Delivers the coalesced Loc-RIB changes to subscribers; returns how many. */
  flushChanges(batchSize?: number): number {
    return this.changes.flush(batchSize);
  }

  // ---- inspection (nrdctl, tests) ---------------------------------------------------------

  selection(family: FamilyKey, prefix: string): Selection {
    return this.locRibs.get(family)?.selection(prefix) ?? NO_ROUTE;
  }

  candidates(family: FamilyKey, prefix: string): readonly Path[] {
    return this.locRibs.get(family)?.candidates(prefix) ?? [];
  }

  *bestRoutes(family: FamilyKey): IterableIterator<[string, Selection]> {
    const loc = this.locRibs.get(family);
    if (loc) yield* loc.selections();
  }

  locRibSize(family: FamilyKey): number {
    return this.locRibs.get(family)?.size ?? 0;
  }

  adjRibIn(peerId: string, family: FamilyKey, which: 'accepted' | 'rejected' = 'accepted'): Path[] {
    const fam = this.peers.get(peerId)?.families.get(family);
    const m = which === 'accepted' ? fam?.accepted : fam?.rejected;
    return m ? [...m.values()] : [];
  }

  adjRibOut(peerId: string, family: FamilyKey): [string, OutRoute][] {
    const out = this.peers.get(peerId)?.out;
    return out ? [...out.entries(family)] : [];
  }

  peerCounts(peerId: string, family: FamilyKey): FamilyCounts {
    const st = this.peers.get(peerId);
    const fam = st?.families.get(family);
    return {
      accepted: fam?.accepted.size ?? 0,
      rejected: fam?.rejected?.size ?? 0,
      stale: fam?.stale ?? 0,
      advertised: st?.out?.size(family) ?? 0,
    };
  }

  isPeerUp(peerId: string): boolean {
    return this.peers.get(peerId)?.up ?? false;
  }

  /** Peers the RIB still holds paths for or has a session with. */
  knownPeers(): string[] {
    return [...this.peers.keys()];
  }

  // ---- internals --------------------------------------------------------------------------

  private locRib(family: FamilyKey): LocRib {
    let loc = this.locRibs.get(family);
    if (!loc) {
      loc = new LocRib(family, () => this.decision, (f, prefix, before, after) => this.selectionChanged(f, prefix, before, after));
      this.locRibs.set(family, loc);
    }
    return loc;
  }

  private *allSelections(): IterableIterator<[FamilyKey, string, Selection]> {
    for (const [family, loc] of this.locRibs) for (const [prefix, sel] of loc.selections()) yield [family, prefix, sel];
  }

  private familyIn(st: PeerState, family: FamilyKey): FamilyIn {
    let fam = st.families.get(family);
    if (!fam) {
      fam = { accepted: new Map(), rejected: this.keepRejected ? new Map() : null, stale: 0 };
      st.families.set(family, fam);
    }
    return fam;
  }

  private retainPath(p: Path): void {
    this.attrs.retain(p.attrs);
    this.nextHops.retain(p.nextHops);
  }

  private dropPath(fam: FamilyIn | null, p: Path): void {
    if (p.stale && fam) fam.stale--;
    this.attrs.release(p.attrs);
    this.nextHops.release(p.nextHops);
  }

  private markStale(fam: FamilyIn, p: Path): void {
    if (p.stale) return;
    p.stale = true;
    fam.stale++;
  }

  private staleCount(st: PeerState): number {
    let n = 0;
    for (const fam of st.families.values()) n += fam.stale;
    return n;
  }

  /** Removes the peer's stale paths of one family; returns how many. */
  private sweepFamily(st: PeerState, family: FamilyKey): number {
    const fam = st.families.get(family);
    if (!fam || fam.stale === 0) return 0;
    const loc = this.locRib(family);
    let n = 0;
    for (const [key, p] of fam.accepted) {
      if (!p.stale) continue;
      fam.accepted.delete(key);
      loc.replace(p.prefix, p, undefined);
      this.dropPath(fam, p);
      n++;
    }
    if (fam.rejected) {
      for (const [key, p] of fam.rejected) {
        if (!p.stale) continue;
        fam.rejected.delete(key);
        this.dropPath(fam, p);
      }
    }
    if (fam.accepted.size === 0 && (fam.rejected?.size ?? 0) === 0) st.families.delete(family);
    return n;
  }

  private removeFamily(st: PeerState, family: FamilyKey): void {
    const fam = st.families.get(family);
    if (!fam) return;
    const loc = this.locRib(family);
    for (const p of fam.accepted.values()) {
      loc.replace(p.prefix, p, undefined);
      this.dropPath(fam, p);
    }
    if (fam.rejected) for (const p of fam.rejected.values()) this.dropPath(fam, p);
    st.families.delete(family);
  }

  private forgetIfEmpty(st: PeerState): void {
    if (!st.up && st.families.size === 0) this.peers.delete(st.info.id);
  }

  private selectionChanged(family: FamilyKey, prefix: string, before: Selection, best: Path | null): void {
    this.changes.mark(family, prefix, before);
    if (before.best === best) return;
    for (const st of this.peers.values()) {
      if (!st.out) continue;
      const route = best ? this.exportFor(st, family, best) : null;
      if (st.out.set(family, prefix, route)) this.opts.onOutgoing?.(st.info.id);
    }
  }

  /** The interned route to advertise to `st` for best path `best` (one reference for the caller). */
  private exportFor(st: PeerState, family: FamilyKey, best: Path): OutRoute | null {
    const policy = this.exportPolicy;
    if (best.peer.type !== 'local' && !policy.exportsLearned) return null;
    if (!policy.cacheable(best)) {
      const draft = policy.exportRoute(st.info, family, best, this.identity);
      return draft ? this.outRoutes.intern(draft) : null;
    }
    const key = `${family}|${this.attrs.idOf(best.attrs)}|${this.nextHops.idOf(best.nextHops)}|${best.peer.id}`;
    const cached = st.exportCache.get(key);
    if (cached !== undefined) {
      if (cached) this.outRoutes.retain(cached);
      return cached;
    }
    const draft = policy.exportRoute(st.info, family, best, this.identity);
    const route = draft ? this.outRoutes.intern(draft) : null;
    if (st.exportCache.size >= EXPORT_CACHE_LIMIT) this.clearExportCache(st);
    st.exportCache.set(key, route);
    // The cache's own reference keeps the interned route (and its id) alive while cached.
    if (route) this.outRoutes.retain(route);
    return route;
  }

  private clearExportCache(st: PeerState): void {
    for (const r of st.exportCache.values()) if (r) this.outRoutes.release(r);
    st.exportCache.clear();
  }

  private clearExportCaches(): void {
    for (const st of this.peers.values()) this.clearExportCache(st);
  }

  private fillAdjRibOut(st: PeerState): void {
    const out = st.out;
    if (!out) return;
    let pending = false;
    for (const family of st.info.families) {
      const loc = this.locRibs.get(family);
      if (!loc) continue;
      if (!this.exportPolicy.exportsLearned) {
        // Node mode: only our own routes can be advertised (and they always win the Loc-RIB),
        // so a session coming up does not walk a full table of learned routes. Anything else
        // still in the Adj-RIB-Out (a previous policy exported learned routes) is withdrawn.
        const own = this.local.get(family);
        const stale = [...out.entries(family)].filter(([prefix]) => !own?.has(prefix));
        for (const [prefix] of stale) if (out.set(family, prefix, null)) pending = true;
        if (own) {
          for (const [prefix, p] of own) {
            if (out.set(family, prefix, this.exportFor(st, family, p))) pending = true;
          }
        }
        continue;
      }
      for (const [prefix, sel] of loc.selections()) {
        const route = sel.best ? this.exportFor(st, family, sel.best) : null;
        if (out.set(family, prefix, route)) pending = true;
      }
    }
    if (pending) this.opts.onOutgoing?.(st.info.id);
  }

  private reexportAll(): void {
    for (const st of this.peers.values()) this.fillAdjRibOut(st);
  }

  /** Makes the local source's routes in the Loc-RIB match the export policy's originated list. */
  private syncOriginated(now: number): void {
    const want = new Map<string, { family: FamilyKey; attrs: PathAttributes }>();
    for (const r of this.exportPolicy.originated()) want.set(`${r.family} ${r.prefix}`, r);
    for (const [family, routes] of this.local) {
      const loc = this.locRib(family);
      for (const [prefix, p] of routes) {
        if (want.has(`${family} ${prefix}`)) continue;
        routes.delete(prefix);
        loc.replace(prefix, p, undefined);
        this.dropPath(null, p);
      }
    }
    for (const [k, r] of want) {
      const prefix = k.slice(k.indexOf(' ') + 1);
      let routes = this.local.get(r.family);
      if (!routes) this.local.set(r.family, (routes = new Map()));
      const attrs = this.attrs.intern(r.attrs);
      const old = routes.get(prefix);
      if (old?.attrs === attrs) {
        this.attrs.release(attrs);
        continue;
      }
      const p = new Path(prefix, 0, this.localSrc, attrs, this.nextHops.intern([]), now, false);
      routes.set(prefix, p);
      this.locRib(r.family).replace(prefix, old, p);
      if (old) this.dropPath(null, old);
    }
  }
}
