// Pure path choice and failover for one remote prefix: which path a mode allows (native BGP,
// direct host-gw, VXLAN), and a hold-down state machine so a path that comes back is used only
// once it has stayed up for a while. No I/O, no timers: the caller passes `now`.
import { prefixContains } from '../kernel/addr.js';
import type { PathMode, RoutingMode } from './types.js';

export interface Candidate {
  mode: PathMode | 'none';
  /** native: BGP next hops; direct: the remote underlay; vxlan: the remote underlay. */
  nextHops: string[];
}

export interface PathInput {
  mode: RoutingMode;
  /** BGP next hops for the prefix (empty or absent = no BGP path). */
  bgpNextHops?: readonly string[];
  /** The remote node's underlay address, when the prefix belongs to a known node. */
  underlay?: string;
  /** Whether the remote node can be reached over VXLAN (it has a VTEP MAC). */
  vxlanCapable: boolean;
  /** Subnets directly connected on the underlay interface. */
  connected: readonly string[];
  /**
   * A liveness check (BFD, routing.bfd) reports the direct path to this node failed: no direct
   * path. Absent: as DIRECT_DOWN says for the underlay address.
   */
  directDown?: boolean;
}

/**
 * Underlay addresses of the nodes whose direct path BFD (routing.bfd) reports failed: choosePath
 * offers no direct path to them. Set by the routing subsystem (RoutingSubsystem.setDirectDown), one
 * per process; a caller may instead pass PathInput.directDown.
 */
export const DIRECT_DOWN = new Set<string>();

/** Preference of a path; higher is better. */
export const RANK: Record<PathMode | 'none', number> = { none: 0, vxlan: 1, direct: 2, native: 3, local: 4 };

export function isDirect(underlay: string | undefined, connected: readonly string[]): boolean {
  return !!underlay && connected.some((s) => prefixContains(s, underlay));
}

/**
 * The best path the mode allows right now.
 *   native       BGP only (no fallback).
 *   vxlan        always VXLAN.
 *   auto         BGP, else direct (remote underlay on a connected subnet), else VXLAN.
 *   cross-subnet direct inside a subnet, VXLAN across (BGP is not consulted).
 */
export function choosePath(i: PathInput): Candidate {
  const bgp = i.bgpNextHops && i.bgpNextHops.length ? [...i.bgpNextHops].sort() : undefined;
  const down = i.directDown ?? (i.underlay !== undefined && DIRECT_DOWN.has(i.underlay));
  const direct = !down && isDirect(i.underlay, i.connected) ? [i.underlay!] : undefined;
  const vxlan = i.underlay && i.vxlanCapable ? [i.underlay] : undefined;
  switch (i.mode) {
    case 'native':
      return bgp ? { mode: 'native', nextHops: bgp } : { mode: 'none', nextHops: [] };
    case 'vxlan':
      return vxlan ? { mode: 'vxlan', nextHops: vxlan } : { mode: 'none', nextHops: [] };
    case 'cross-subnet':
      if (direct) return { mode: 'direct', nextHops: direct };
      return vxlan ? { mode: 'vxlan', nextHops: vxlan } : { mode: 'none', nextHops: [] };
    case 'auto':
      if (bgp) return { mode: 'native', nextHops: bgp };
      if (direct) return { mode: 'direct', nextHops: direct };
      return vxlan ? { mode: 'vxlan', nextHops: vxlan } : { mode: 'none', nextHops: [] };
  }
}

export interface PathState {
  /** The path in use. */
  current: Candidate;
  since: number;
  /** A better path than `current` has been available continuously since then. */
  betterSince?: number;
}

export interface StepResult {
  state: PathState;
  /** Set when the path's mode changed (not for next-hop changes within a mode). */
  switched?: { from: PathMode | 'none'; to: PathMode | 'none' };
  /** Evaluate again at this time (a hold-down is running). */
  recheckAt?: number;
}

const sameHops = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((x, i) => x === b[i]);

/**
 * One evaluation of a prefix. A worse or equal path is taken at once (failover must be fast);
 * leaving VXLAN for a better path happens only after that path has been available for
 * `holdDownMs` without interruption (no flapping back and forth while a BGP session bounces). The first evaluation takes the best path
 * at once, so a restart programs the same routes as before.
 */
export function step(prev: PathState | undefined, cand: Candidate, now: number, holdDownMs: number): StepResult {
  if (!prev) return { state: { current: cand, since: now }, ...(cand.mode !== 'none' ? { switched: { from: 'none', to: cand.mode } } : {}) };
  const cur = prev.current;
  if (cand.mode === cur.mode) {
    // Same mode: next-hop changes (ECMP members, a node's new underlay) apply at once.
    const state: PathState = { current: sameHops(cand.nextHops, cur.nextHops) ? cur : cand, since: prev.since };
    return { state };
  }
  // A worse path is taken at once (failover must be fast); so is a better one when the path in
  // use is not VXLAN: from nothing, or from direct to native (both reach the node over the
  // underlay, often through the very same next hop), there is nothing to flap back from.
  if (RANK[cand.mode] < RANK[cur.mode] || cur.mode !== 'vxlan') {
    return { state: { current: cand, since: now }, switched: { from: cur.mode, to: cand.mode } };
  }
  // Leaving VXLAN for a better path: hold down.
  const betterSince = prev.betterSince ?? now;
  if (now - betterSince >= holdDownMs) {
    return { state: { current: cand, since: now }, switched: { from: cur.mode, to: cand.mode } };
  }
  return { state: { current: cur, since: prev.since, betterSince }, recheckAt: betterSince + holdDownMs };
}
