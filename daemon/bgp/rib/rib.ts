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
import { LocRib, Multi, findPath, prefixOf } from './loc-rib.js';
import { Path, PathGroup, STALE, ipv4PrefixText, shortKeyText, type PathOwner } from './path.js';
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
  /** Families in the UPDATE that the session did not negotiate: ignored (RFC 4760 §7). */
  unnegotiated: FamilyKey[];
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

/**
 * A peer's share of one family. Its paths live in the family's LocRib (accepted) and rejected
 * tables, found by owner: the Adj-RIB-In is a view, not a second copy of a full table.
 */
interface FamilyIn {
  accepted: number;
  rejected: number;
  stale: number;
}

interface PeerState extends PathOwner {
  info: PeerInfo;
  up: boolean;
  readonly families: Map<FamilyKey, FamilyIn>;
  out: AdjRibOut | null;
  staleDeadline: number | null;
  readonly warned: Set<FamilyKey>;
  readonly exportCache: Map<string, OutRoute | null>;
}

/**
 * An UPDATE whose classic NLRI the decoder left packed (wire/packed.ts PackedUpdate): addresses
 * and lengths of IPv4 unicast prefixes without path ids. Reading `nlri` would build the objects
 * this form exists to avoid, so the RIB reads the arrays when present.
 */
export interface PackedNlri {
  readonly nlriAddrs: Uint32Array | null;
  readonly nlriLens: Uint8Array | null;
}

function packedOf(u: UpdateMessage): PackedNlri | null {
  const p = u as UpdateMessage & Partial<PackedNlri>;
  return p.nlriAddrs != null && p.nlriLens != null ? (p as PackedNlri) : null;
}

/** RFC 4724 §2: an UPDATE with nothing in it (IPv4) or only an empty MP_UNREACH. */
function endOfRibFamily(u: UpdateMessage): FamilyKey | null {
  if (u.attrs !== null || u.withdrawn.length > 0 || u.mpReach || (packedOf(u)?.nlriAddrs!.length ?? u.nlri.length) > 0) return null;
  if (!u.mpUnreach) return IPV4_UNICAST;
  return u.mpUnreach.withdrawn.length === 0 ? familyKey(u.mpUnreach.afi, u.mpUnreach.safi) : null;
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
  private readonly localOwner: PathOwner;
  /** Interner releases of dropped paths, coalesced per run of equal values (see flushReleases). */
  private relAttrs: PathAttributes | null = null;
  private relAttrsN = 0;
  private relNextHops: readonly string[] | null = null;
  private relNextHopsN = 0;
  private readonly bestChangedFn = (family: FamilyKey, prefix: string | null, before: Path | null, after: Path | null): void =>
    this.bestChanged(family, prefix, before, after);
  private readonly markedFn = (): void => this.changes.marked();
  private readonly decisionFn = (): DecisionOptions => this.decision;
  private readonly identity: LocalIdentity;
  private decision: DecisionOptions;
  private importPolicy: ImportPolicy;
  private exportPolicy: ExportPolicy;
  private readonly keepRejected: boolean;

  constructor(private readonly opts: RibOptions) {
    this.identity = { localAsn: opts.localAsn, routerId: opts.routerId, clusterId: opts.clusterId };
    this.localSrc = localSource(opts.localAsn, opts.routerId);
    this.localOwner = { info: this.localSrc };
    this.decision = { maxPaths: opts.maxPaths ?? 8, asPathRelax: opts.asPathRelax ?? false, localAsn: opts.localAsn };
    this.importPolicy = opts.importPolicy;
    this.exportPolicy = opts.exportPolicy;
    this.keepRejected = opts.keepRejected ?? true;
    this.changes = new ChangeStream(() => this.locRibs.values(), () => this.allSelections(), opts.onChangesPending);
    this.syncOriginated(0);
    this.flushReleases();
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
      // Back after a graceful restart: the stale paths now belong to the new session (they
      // reach the peer's info through st, so one assignment re-points them all).
      const redecide = decisionFieldsDiffer(st.info, info);
      reexport = redecide || st.info.rrClient !== info.rrClient;
      st.info = info;
      if (redecide) {
        for (const family of st.families.keys()) {
          const loc = this.locRib(family);
          for (const [prefix, slot] of loc.entries()) {
            if (slot instanceof Multi && slot.paths.some((p) => p.group.owner === st)) loc.recompute(prefix);
          }
        }
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
    this.flushReleases();
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
      this.flushReleases();
      return;
    }
    for (const family of [...st.families.keys()]) {
      if (opts.families && !opts.families.includes(family)) {
        this.removeFamily(st, family);
        continue;
      }
      this.markFamilyStale(st, family);
    }
    st.staleDeadline = now + (opts.restartTime ?? 0) * 1000;
    this.forgetIfEmpty(st);
    this.flushReleases();
  }

  /** RFC 4724 §4.2: End-of-RIB from the peer for `family` removes its paths still stale. */
  endOfRib(peerId: string, family: FamilyKey): number {
    const st = this.peers.get(peerId);
    if (!st) return 0;
    const swept = this.sweepFamily(st, family);
    if (this.staleCount(st) === 0) st.staleDeadline = null;
    this.forgetIfEmpty(st);
    this.flushReleases();
    return swept;
  }

  /**
   * RFC 7313 §4: the peer sent a Beginning-of-RIB-Refresh (BoRR) for `family`: its current paths
   * become stale; what it re-sends replaces them; endRouteRefresh (EoRR) removes the rest.
   */
  beginRouteRefresh(peerId: string, family: FamilyKey): void {
    const st = this.peers.get(peerId);
    if (st?.families.has(family)) this.markFamilyStale(st, family);
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
    this.flushReleases();
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
    const result: UpdateResult = { accepted: 0, rejected: 0, withdrawn: 0, endOfRib: null, maxPrefix: null, unnegotiated: [] };
    const eor = endOfRibFamily(u);
    if (eor) {
      this.endOfRib(peerId, eor);
      result.endOfRib = eor;
      return result;
    }
    this.applyUpdateTo(st, u, now, result);
    this.flushReleases();
    return result;
  }

  /**
   * RFC 4760 §7 / RFC 7606 §7.3: NLRI of an AFI/SAFI the session did not negotiate are ignored:
   * neither installed nor used to withdraw (a multicast withdrawal must not remove a unicast
   * route). Every path keeps its family from here on: each family has its own Loc-RIB.
   */
  private negotiated(st: PeerState, family: FamilyKey, result: UpdateResult): boolean {
    if (st.info.families.includes(family)) return true;
    if (!result.unnegotiated.includes(family)) result.unnegotiated.push(family);
    return false;
  }

  private applyUpdateTo(st: PeerState, u: UpdateMessage, now: number, result: UpdateResult): void {
    const packed = packedOf(u);
    const classicNlri = packed !== null ? packed.nlriAddrs!.length > 0 : u.nlri.length > 0;
    const classic = (u.withdrawn.length > 0 || (u.attrs !== null && classicNlri)) && this.negotiated(st, IPV4_UNICAST, result);
    const unreach = u.mpUnreach && u.mpUnreach.withdrawn.length > 0 ? familyKey(u.mpUnreach.afi, u.mpUnreach.safi) : null;
    const reach = u.attrs && u.mpReach && u.mpReach.nlri.length > 0 ? familyKey(u.mpReach.afi, u.mpReach.safi) : null;
    if (classic && u.withdrawn.length > 0) result.withdrawn += this.withdraw(st, IPV4_UNICAST, u.withdrawn);
    if (unreach !== null && this.negotiated(st, unreach, result)) {
      result.withdrawn += this.withdraw(st, unreach, u.mpUnreach!.withdrawn);
    }
    if (u.attrs) {
      if (classic && classicNlri) {
        const nh = u.attrs.nextHop !== undefined ? [u.attrs.nextHop] : [];
        this.announce(st, IPV4_UNICAST, u.attrs, nh, packed ?? u.nlri, now, result);
        result.maxPrefix = this.checkMaxPrefix(st, IPV4_UNICAST);
      }
      if (reach !== null && this.negotiated(st, reach, result)) {
        this.announce(st, reach, u.attrs, u.mpReach!.nextHops, u.mpReach!.nlri, now, result);
        result.maxPrefix ??= this.checkMaxPrefix(st, reach);
      }
    }
  }

  /**
   * The hot loop of a table load. Per prefix: one table lookup, one Path (the rest is shared in
   * the UPDATE's PathGroup), and for a new prefix one table write and one change record; the
   * decision process runs only where a prefix has several candidates. Packed IPv4 NLRI (the
   * decoder's bulk form) go by number: no prefix text unless one is rejected or longer than /24.
   */
  private announce(
    st: PeerState,
    family: FamilyKey,
    raw: PathAttributes,
    rawNextHops: readonly string[],
    nlri: readonly Nlri[] | PackedNlri,
    now: number,
    result: UpdateResult,
  ): void {
    const fam = this.familyIn(st, family);
    const loc = this.locRib(family);
    const rejected = loc.rejected;
    const policy = this.importPolicy;
    const keepRejected = this.keepRejected;
    const allowed = policy.checkAttributes(st.info, raw, this.identity) === null;
    const attrs = this.attrs.intern(raw);
    const nextHops = this.nextHops.intern(rawNextHops);
    const group = new PathGroup(st, attrs, nextHops, now);
    const list = Array.isArray(nlri) ? (nlri as readonly Nlri[]) : null;
    const addrs = list === null ? (nlri as PackedNlri).nlriAddrs! : null;
    const lens = list === null ? (nlri as PackedNlri).nlriLens! : null;
    // Packed NLRI are IPv4 unicast only (the classic NLRI field).
    const count = list !== null ? list.length : addrs!.length;
    let kept = 0;
    for (let i = 0; i < count; i++) {
      let prefix: string | null;
      let pathId = 0;
      let key: number;
      let ok: boolean;
      if (list !== null) {
        const n = list[i]!;
        prefix = n.prefix;
        pathId = n.pathId ?? 0;
        key = loc.keyOf(prefix);
        ok = allowed && (key >= 0 ? policy.acceptsIpv4(((key & 0xffffff) << 8) >>> 0, key >>> 24) : policy.acceptsPrefix(prefix));
      } else {
        const addr = addrs![i]!;
        const len = lens![i]!;
        if (len <= 24) {
          key = (len << 24) | (addr >>> 8);
          prefix = null;
        } else {
          key = -1;
          prefix = ipv4PrefixText(addr, len);
        }
        ok = allowed && policy.acceptsIpv4(addr, len);
      }
      const slot = loc.get(prefix!, key);
      const old = slot === undefined ? undefined : findPath(slot, st, pathId);
      if (ok) {
        if (old !== undefined && old.group.attrs === attrs && old.group.nextHops === nextHops) {
          // The same route again (route refresh, re-announcement after a graceful restart):
          // updated in place. Nothing changes for the Loc-RIB, subscribers or Adj-RIBs-Out.
          if ((old.flags & STALE) !== 0) {
            old.flags &= ~STALE;
            fam.stale--;
          }
          old.group = group;
          result.accepted++;
          continue;
        }
        if (rejected.size > 0) {
          const r = takeRejected(rejected, prefix ?? shortKeyText(key), st, pathId);
          if (r) {
            fam.rejected--;
            this.dropPath(fam, r);
          }
        }
        // A short key stands for the prefix (no text); otherwise an existing entry's prefix text
        // is reused: a second peer's copy of a full table would keep a second string alive.
        const id = key >= 0 ? key : slot === undefined ? prefix! : prefixOf(slot);
        loc.update(prefix, slot, old, new Path(id, pathId, group), key);
        if (old) this.dropPath(fam, old);
        else fam.accepted++;
        kept++;
        result.accepted++;
      } else {
        if (old) {
          loc.update(prefix, slot, old, undefined, key);
          fam.accepted--;
          this.dropPath(fam, old);
        }
        if (keepRejected) {
          const text = prefix ?? shortKeyText(key);
          const r = putRejected(rejected, text, new Path(text, pathId, group));
          if (r) this.dropPath(fam, r);
          else fam.rejected++;
          kept++;
        }
        result.rejected++;
      }
    }
    // One interner reference per kept path, taken in one step; the references taken by intern()
    // above were only to keep the sets alive during the loop.
    if (kept > 0) {
      this.attrs.retain(attrs, kept);
      this.nextHops.retain(nextHops, kept);
    }
    this.attrs.release(attrs);
    this.nextHops.release(nextHops);
  }

  private withdraw(st: PeerState, family: FamilyKey, nlri: readonly Nlri[]): number {
    const fam = st.families.get(family);
    if (!fam) return 0;
    const loc = this.locRib(family);
    let n = 0;
    for (const w of nlri) {
      const pathId = w.pathId ?? 0;
      const key = loc.keyOf(w.prefix);
      const slot = loc.get(w.prefix, key);
      const old = findPath(slot, st, pathId);
      if (old) {
        loc.update(w.prefix, slot, old, undefined, key);
        fam.accepted--;
        this.dropPath(fam, old);
        n++;
      } else if (loc.rejected.size > 0) {
        const r = takeRejected(loc.rejected, w.prefix, st, pathId);
        if (r) {
          fam.rejected--;
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
    const count = st.families.get(family)?.accepted ?? 0;
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
    const reasons = new Map<PeerState, Map<PathAttributes, string | null>>();
    const ok = (p: Path): boolean => {
      const st = p.group.owner as PeerState;
      let byAttrs = reasons.get(st);
      if (!byAttrs) reasons.set(st, (byAttrs = new Map()));
      let r = byAttrs.get(p.attrs);
      if (r === undefined) byAttrs.set(p.attrs, (r = policy.checkAttributes(st.info, p.attrs, this.identity)));
      return r === null && policy.acceptsPrefix(p.prefix);
    };
    for (const [family, loc] of this.locRibs) {
      const drop: Path[] = [];
      const take: Path[] = [];
      for (const slot of loc.values()) {
        if (slot instanceof Multi) {
          for (const p of slot.paths) if (p.group.owner !== this.localOwner && !ok(p)) drop.push(p);
        } else if (slot.group.owner !== this.localOwner && !ok(slot)) {
          drop.push(slot);
        }
      }
      for (const v of loc.rejected.values()) {
        if (Array.isArray(v)) {
          for (const p of v) if (ok(p)) take.push(p);
        } else if (ok(v)) {
          take.push(v);
        }
      }
      for (const p of drop) {
        const st = p.group.owner as PeerState;
        const fam = st.families.get(family)!;
        loc.update(p.prefix, loc.get(p.prefix), p, undefined);
        fam.accepted--;
        if (this.keepRejected) {
          putRejected(loc.rejected, p.prefix, p);
          fam.rejected++;
        } else {
          this.dropPath(fam, p);
        }
      }
      for (const p of take) {
        const st = p.group.owner as PeerState;
        const fam = st.families.get(family)!;
        takeRejected(loc.rejected, p.prefix, st, p.pathId);
        fam.rejected--;
        loc.update(p.prefix, loc.get(p.prefix), undefined, p);
        fam.accepted++;
      }
    }
    for (const st of this.peers.values()) {
      if (!this.keepRejected && st.up) refreshNeeded.push(st.info.id);
      for (const family of [...st.families.keys()]) {
        if (st.up) {
          const d = this.checkMaxPrefix(st, family);
          if (d) maxPrefix.push({ peerId: st.info.id, decision: d });
        }
        this.forgetFamilyIfEmpty(st, family);
      }
    }
    this.flushReleases();
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
    this.flushReleases();
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
    const st = this.peers.get(peerId);
    const loc = this.locRibs.get(family);
    if (!st || !loc || !st.families.has(family)) return [];
    const out: Path[] = [];
    if (which === 'accepted') {
      for (const slot of loc.values()) {
        if (slot instanceof Multi) {
          for (const p of slot.paths) if (p.group.owner === st) out.push(p);
        } else if (slot.group.owner === st) {
          out.push(slot);
        }
      }
    } else {
      for (const v of loc.rejected.values()) {
        if (Array.isArray(v)) {
          for (const p of v) if (p.group.owner === st) out.push(p);
        } else if (v.group.owner === st) {
          out.push(v);
        }
      }
    }
    return out;
  }

  adjRibOut(peerId: string, family: FamilyKey): [string, OutRoute][] {
    const out = this.peers.get(peerId)?.out;
    return out ? [...out.entries(family)] : [];
  }

  peerCounts(peerId: string, family: FamilyKey): FamilyCounts {
    const st = this.peers.get(peerId);
    const fam = st?.families.get(family);
    return {
      accepted: fam?.accepted ?? 0,
      rejected: fam?.rejected ?? 0,
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
      loc = new LocRib(family, this.decisionFn, this.bestChangedFn, this.markedFn);
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
      fam = { accepted: 0, rejected: 0, stale: 0 };
      st.families.set(family, fam);
    }
    return fam;
  }

  private forgetFamilyIfEmpty(st: PeerState, family: FamilyKey): void {
    const fam = st.families.get(family);
    if (fam && fam.accepted === 0 && fam.rejected === 0) st.families.delete(family);
  }

  /**
   * Gives back a dropped path's interner references. Consecutive drops mostly share attributes
   * (they came in one UPDATE), so counts are summed and released in one step per run of equal
   * values; every public entry point ends with flushReleases(), so counts are exact between calls.
   */
  private dropPath(fam: FamilyIn | null, p: Path): void {
    if (fam && (p.flags & STALE) !== 0) fam.stale--;
    const g = p.group;
    if (g.attrs !== this.relAttrs) {
      if (this.relAttrs) this.attrs.release(this.relAttrs, this.relAttrsN);
      this.relAttrs = g.attrs;
      this.relAttrsN = 0;
    }
    this.relAttrsN++;
    if (g.nextHops !== this.relNextHops) {
      if (this.relNextHops) this.nextHops.release(this.relNextHops, this.relNextHopsN);
      this.relNextHops = g.nextHops;
      this.relNextHopsN = 0;
    }
    this.relNextHopsN++;
  }

  private flushReleases(): void {
    if (this.relAttrs) this.attrs.release(this.relAttrs, this.relAttrsN);
    if (this.relNextHops) this.nextHops.release(this.relNextHops, this.relNextHopsN);
    this.relAttrs = null;
    this.relNextHops = null;
    this.relAttrsN = 0;
    this.relNextHopsN = 0;
  }

  private markStale(fam: FamilyIn, p: Path): void {
    if ((p.flags & STALE) !== 0) return;
    p.flags |= STALE;
    fam.stale++;
  }

  /** RFC 4724 §4.2 / RFC 7313 §4: every path of the peer in the family becomes stale. */
  private markFamilyStale(st: PeerState, family: FamilyKey): void {
    const fam = st.families.get(family);
    const loc = this.locRibs.get(family);
    if (!fam || !loc) return;
    for (const slot of loc.values()) {
      if (slot instanceof Multi) {
        for (const p of slot.paths) if (p.group.owner === st) this.markStale(fam, p);
      } else if (slot.group.owner === st) {
        this.markStale(fam, slot);
      }
    }
    if (fam.rejected > 0) {
      for (const v of loc.rejected.values()) {
        if (Array.isArray(v)) {
          for (const p of v) if (p.group.owner === st) this.markStale(fam, p);
        } else if (v.group.owner === st) {
          this.markStale(fam, v);
        }
      }
    }
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
    const n = this.removeOwned(st, fam, family, true);
    this.forgetFamilyIfEmpty(st, family);
    return n;
  }

  private removeFamily(st: PeerState, family: FamilyKey): void {
    const fam = st.families.get(family);
    if (!fam) return;
    this.removeOwned(st, fam, family, false);
    st.families.delete(family);
  }

  /** Removes the peer's paths (only the stale ones with `staleOnly`); returns accepted removed. */
  private removeOwned(st: PeerState, fam: FamilyIn, family: FamilyKey, staleOnly: boolean): number {
    const loc = this.locRib(family);
    let n = 0;
    for (const slot of loc.values()) {
      if (slot instanceof Multi) {
        for (const p of slot.paths) {
          if (p.group.owner !== st || (staleOnly && (p.flags & STALE) === 0)) continue;
          loc.update(p.prefix, loc.get(p.prefix), p, undefined);
          fam.accepted--;
          this.dropPath(fam, p);
          n++;
        }
      } else if (slot.group.owner === st && (!staleOnly || (slot.flags & STALE) !== 0)) {
        loc.update(slot.prefix, slot, slot, undefined);
        fam.accepted--;
        this.dropPath(fam, slot);
        n++;
      }
    }
    if (fam.rejected > 0) {
      for (const [prefix, v] of loc.rejected) {
        const list = Array.isArray(v) ? v.slice() : [v];
        for (const p of list) {
          if (p.group.owner !== st || (staleOnly && (p.flags & STALE) === 0)) continue;
          takeRejected(loc.rejected, prefix, st, p.pathId);
          fam.rejected--;
          this.dropPath(fam, p);
        }
      }
    }
    return n;
  }

  private forgetIfEmpty(st: PeerState): void {
    if (!st.up && st.families.size === 0) this.peers.delete(st.info.id);
  }

  /** Adj-RIB-Out work for a best-path change (the change stream was told by the LocRib). */
  private bestChanged(family: FamilyKey, key: string | null, before: Path | null, best: Path | null): void {
    if (before === best) return;
    // Node mode: only our own routes are advertised, so a change between learned routes (all of
    // a table load) concerns no Adj-RIB-Out.
    if (!this.exportPolicy.exportsLearned && before?.peer.type !== 'local' && best?.peer.type !== 'local') return;
    const prefix = key ?? (best ?? before)!.prefix;
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
        loc.update(prefix, loc.get(prefix), p, undefined);
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
      const p = new Path(prefix, 0, new PathGroup(this.localOwner, attrs, this.nextHops.intern([]), now));
      routes.set(prefix, p);
      const loc = this.locRib(r.family);
      loc.update(prefix, loc.get(prefix), old, p);
      if (old) this.dropPath(null, old);
    }
  }
}

/** Removes and returns `owner`'s rejected path with `pathId` at `prefix`. */
function takeRejected(map: Map<string, Path | Path[]>, prefix: string, owner: PathOwner, pathId: number): Path | undefined {
  const v = map.get(prefix);
  if (v === undefined) return undefined;
  if (!Array.isArray(v)) {
    if (v.group.owner !== owner || v.pathId !== pathId) return undefined;
    map.delete(prefix);
    return v;
  }
  const i = v.findIndex((p) => p.group.owner === owner && p.pathId === pathId);
  if (i < 0) return undefined;
  const p = v[i]!;
  const rest = v.filter((_, j) => j !== i);
  map.set(prefix, rest.length === 1 ? rest[0]! : rest);
  return p;
}

/** Stores a rejected path, replacing the same owner's path with the same id; returns that one. */
function putRejected(map: Map<string, Path | Path[]>, prefix: string, path: Path): Path | undefined {
  const v = map.get(prefix);
  if (v === undefined) {
    map.set(prefix, path);
    return undefined;
  }
  const owner = path.group.owner;
  const list = Array.isArray(v) ? v : [v];
  const i = list.findIndex((p) => p.group.owner === owner && p.pathId === path.pathId);
  if (i < 0) {
    map.set(prefix, [...list, path]);
    return undefined;
  }
  const old = list[i]!;
  if (Array.isArray(v)) {
    const next = v.slice();
    next[i] = path;
    map.set(prefix, next);
  } else {
    map.set(prefix, path);
  }
  return old;
}
