// The RFC 4271 §9.1.2.2 decision process with RFC 4456 §9 tie-breaks and ECMP selection.
// Elimination over the whole candidate set (not a pairwise comparator): MED is comparable only
// between paths from the same neighbour AS, which makes pairwise comparison non-transitive and
// the result order-dependent; set elimination is what the RFC specifies and is order-independent.
import { AS_CONFED_SEQUENCE, AS_CONFED_SET, AS_SEQUENCE, AS_SET, type AsPathSegment } from '../types.js';
import { compareAddresses, parseIpv4 } from '../policy/prefix.js';
import type { Path } from './path.js';

export interface DecisionOptions {
  /** Largest ECMP set (1 = no multipath). */
  readonly maxPaths: number;
  /**
   * "as-path relax": allow ECMP between paths from different neighbour ASes. Off by default:
   * without it, multipath members share the best path's neighbour AS.
   */
  readonly asPathRelax: boolean;
  /** Our AS: the neighbour AS of a path with an empty AS_PATH (originated inside our AS). */
  readonly localAsn: number;
}

export interface Selection {
  readonly best: Path | null;
  /** Best first, then the other equal paths in tie-break order; [] when there is no best. */
  readonly ecmp: readonly Path[];
}

export const NO_ROUTE: Selection = Object.freeze({ best: null, ecmp: Object.freeze([]) as readonly Path[] });

/** RFC 4271 §9.1.2.2 (a): an AS_SET counts 1, confederation segments count 0 (RFC 5065 §5.3). */
export function asPathLength(asPath: readonly AsPathSegment[]): number {
  let n = 0;
  for (const s of asPath) {
    if (s.type === AS_SEQUENCE) n += s.asns.length;
    else if (s.type === AS_SET) n += 1;
  }
  return n;
}

/**
 * The AS the route was received from: the first AS of the path after confederation segments.
 * Empty path (route from inside our AS) → our AS. A leading AS_SET has no single neighbour:
 * -1 groups all such paths together, deterministically.
 */
export function neighborAs(asPath: readonly AsPathSegment[], localAsn: number): number {
  for (const s of asPath) {
    if (s.type === AS_CONFED_SEQUENCE || s.type === AS_CONFED_SET) continue;
    if (s.type === AS_SEQUENCE && s.asns.length > 0) return s.asns[0]!;
    return -1;
  }
  return localAsn;
}

/**
 * LOCAL_PREF as the decision sees it. RFC 4271 §5.1.5: a LOCAL_PREF received from an external
 * peer MUST be ignored, so eBGP-learned paths get the default 100.
 */
export function effectiveLocalPref(p: Path): number {
  if (p.peer.type === 'ebgp') return 100;
  return p.attrs.localPref ?? 100;
}

/** RFC 4456 §9: ORIGINATOR_ID stands in for the BGP identifier when present. */
function routerIdOf(p: Path): number {
  const v = parseIpv4(p.attrs.originatorId ?? p.peer.routerId);
  return v < 0 ? 0xffffffff + 1 : v;
}

/** Steps after the eBGP/iBGP step: a total order, so sorting by it is well defined. */
export function compareFinalTieBreaks(a: Path, b: Path): number {
  const ra = routerIdOf(a);
  const rb = routerIdOf(b);
  if (ra !== rb) return ra - rb;
  const ca = a.attrs.clusterList?.length ?? 0;
  const cb = b.attrs.clusterList?.length ?? 0;
  if (ca !== cb) return ca - cb;
  const addr = compareAddresses(a.peer.address, b.peer.address);
  if (addr !== 0) return addr;
  // Same peer (add-path) or the local source: the path identifier decides; nothing else is left.
  return a.pathId - b.pathId;
}

function keepMax(set: Path[], score: (p: Path) => number): Path[] {
  let best = -Infinity;
  for (const p of set) best = Math.max(best, score(p));
  return set.length > 1 ? set.filter((p) => score(p) === best) : set;
}

/** Best path and ECMP set of one prefix's candidates. Pure; independent of candidate order. */
export function decide(candidates: readonly Path[], opts: DecisionOptions): Selection {
  if (candidates.length === 0) return NO_ROUTE;
  if (candidates.length === 1) return { best: candidates[0]!, ecmp: [candidates[0]!] };

  // Locally originated routes win outright (the node's own CIDR is never learned over BGP).
  const local = candidates.filter((p) => p.peer.type === 'local');
  if (local.length > 0) {
    const best = local.sort(compareFinalTieBreaks)[0]!;
    return { best, ecmp: [best] };
  }

  let set = keepMax([...candidates], effectiveLocalPref); // (a) highest LOCAL_PREF
  set = keepMax(set, (p) => -asPathLength(p.attrs.asPath)); // (a) shortest AS_PATH
  set = keepMax(set, (p) => -p.attrs.origin); // (b) lowest ORIGIN

  // (c) lowest MED among paths from the same neighbour AS; a missing MED counts as 0.
  if (set.length > 1) {
    const minMed = new Map<number, number>();
    for (const p of set) {
      const nas = neighborAs(p.attrs.asPath, opts.localAsn);
      const med = p.attrs.med ?? 0;
      const cur = minMed.get(nas);
      if (cur === undefined || med < cur) minMed.set(nas, med);
    }
    set = set.filter((p) => (p.attrs.med ?? 0) === minMed.get(neighborAs(p.attrs.asPath, opts.localAsn)));
  }

  // (d) eBGP over iBGP. (e) IGP cost to the next hop: skipped, nrd has no IGP metric.
  if (set.some((p) => p.peer.type === 'ebgp')) set = set.filter((p) => p.peer.type === 'ebgp');

  // (f) lowest router id / ORIGINATOR_ID, shortest CLUSTER_LIST, (g) lowest peer address.
  set.sort(compareFinalTieBreaks);
  const best = set[0]!;
  if (opts.maxPaths <= 1 || set.length === 1) return { best, ecmp: [best] };
  const bestNas = neighborAs(best.attrs.asPath, opts.localAsn);
  const ecmp: Path[] = [];
  for (const p of set) {
    if (ecmp.length >= opts.maxPaths) break;
    if (opts.asPathRelax || neighborAs(p.attrs.asPath, opts.localAsn) === bestNas) ecmp.push(p);
  }
  return { best, ecmp };
}

/** decidePair result bits: the second path is best; both paths form the ECMP set. */
export const PAIR_SECOND_BEST = 1;
export const PAIR_BOTH_ECMP = 2;

/**
 * decide() for exactly two candidates (the common case with two uplinks), without allocating:
 * the same steps in the same order, so the same result (a property test holds them equal).
 * With two candidates, set elimination and pairwise comparison coincide.
 */
export function decidePair(a: Path, b: Path, opts: DecisionOptions): number {
  const la = a.peer.type === 'local';
  const lb = b.peer.type === 'local';
  if (la || lb) {
    if (la && lb) return compareFinalTieBreaks(a, b) <= 0 ? 0 : PAIR_SECOND_BEST;
    return la ? 0 : PAIR_SECOND_BEST;
  }
  const pa = effectiveLocalPref(a);
  const pb = effectiveLocalPref(b);
  if (pa !== pb) return pa > pb ? 0 : PAIR_SECOND_BEST;
  const aa = a.attrs;
  const ab = b.attrs;
  const sa = asPathLength(aa.asPath);
  const sb = asPathLength(ab.asPath);
  if (sa !== sb) return sa < sb ? 0 : PAIR_SECOND_BEST;
  if (aa.origin !== ab.origin) return aa.origin < ab.origin ? 0 : PAIR_SECOND_BEST;
  const na = neighborAs(aa.asPath, opts.localAsn);
  const nb = neighborAs(ab.asPath, opts.localAsn);
  if (na === nb) {
    const ma = aa.med ?? 0;
    const mb = ab.med ?? 0;
    if (ma !== mb) return ma < mb ? 0 : PAIR_SECOND_BEST;
  }
  const ea = a.peer.type === 'ebgp';
  const eb = b.peer.type === 'ebgp';
  if (ea !== eb) return ea ? 0 : PAIR_SECOND_BEST;
  const first = compareFinalTieBreaks(a, b) <= 0 ? 0 : PAIR_SECOND_BEST;
  if (opts.maxPaths <= 1) return first;
  return opts.asPathRelax || na === nb ? first | PAIR_BOTH_ECMP : first;
}
