// Inputs, options and views of the routing layer as plain data: remote nodes (from the state store),
// BGP Loc-RIB best paths (from the RIB), the node's own CIDRs, and the per-prefix route view that
// `nrdctl routes` shows. No import of the state or BGP modules: their records and change sets match
// these shapes structurally.

/** A remote node as the state store publishes it. */
export interface RemoteNode {
  name: string;
  /** Underlay (fabric) address: VXLAN outer destination and host-gw next hop. */
  underlay: string;
  /** MAC of the node's VXLAN device (its VTEP); without it the node cannot be reached over VXLAN. */
  vtepMac?: string;
  /** Pod CIDRs the node owns. */
  cidrs: string[];
}

/** A Loc-RIB entry: the best path's next hops (more than one = ECMP). Empty = withdrawn. */
export interface BgpRoute {
  prefix: string;
  nextHops: readonly string[];
}

/** A path of the BGP speaker's change set, as much of it as routing reads. */
export interface BgpPathInput {
  readonly peer: { readonly type: string };
  readonly nextHops: readonly string[];
}

/**
 * One entry of the BGP speaker's change set (its RouteChange, structurally): the prefix's best path
 * and ECMP set now. Routing reads it itself rather than having the wiring pre-digest it.
 */
export interface BgpChange {
  readonly prefix: string;
  /** null: no route any more. peer.type 'local': this node's own prefix, never a route to install. */
  readonly best: BgpPathInput | null;
  readonly ecmp: readonly BgpPathInput[];
}

/**
 * The routes to install for one change: the ECMP members' first next hops, deduplicated (two
 * paths through the same router are one kernel next hop), in the speaker's order; none for a
 * withdrawn or locally originated prefix.
 */
export function bgpRouteOf(c: BgpChange): BgpRoute {
  if (!c.best || c.best.peer.type === 'local') return { prefix: c.prefix, nextHops: [] };
  // One path with one next hop (most of a full table): its own (interned) next-hop list, no copy.
  if (c.ecmp.length === 1) {
    const hops = c.ecmp[0]!.nextHops;
    if (hops.length === 1 && hops[0] !== '' && c.ecmp[0]!.peer.type !== 'local') return { prefix: c.prefix, nextHops: hops };
  }
  const hops = new Set<string>();
  for (const p of c.ecmp) {
    const h = p.nextHops[0];
    if (h !== undefined && h !== '' && p.peer.type !== 'local') hops.add(h);
  }
  return { prefix: c.prefix, nextHops: [...hops] };
}

export type RoutingMode = 'native' | 'vxlan' | 'auto' | 'cross-subnet';

/** How one prefix is reached. `local` = the node's own CIDR (a blackhole for unallocated addresses). */
export type PathMode = 'native' | 'direct' | 'vxlan' | 'local';

export const PATH_MODES: readonly PathMode[] = ['local', 'native', 'direct', 'vxlan'];

export interface RoutingOptions {
  mode: RoutingMode;
  vxlan: {
    /** VXLAN network identifier shared by all nodes. */
    vni: number;
    /** UDP port (IANA 4789). */
    port: number;
    /** Device name; must start with the owned link prefix ('nrd'). */
    device: string;
    /** This node's VTEP MAC (published in its node record); random when absent. */
    mac?: string;
    /** Device MTU; absent or 0: underlay MTU minus the encapsulation (50 over IPv4, 70 over IPv6). */
    mtu?: number;
  };
  /** Underlay interface name; its first address of the underlay family is the local VTEP address.
   * "" means the interface that holds `underlayAddress`. */
  underlayInterface: string;
  /** Local VTEP address when the interface has several addresses. */
  underlayAddress?: string;
  /** This node's CIDRs: reachable locally, unallocated addresses dropped. */
  ownCidrs: string[];
  /** How long a better path must stay available before traffic moves back to it (ms). */
  holdDownMs: number;
  /** Route type for the own CIDRs (default blackhole). */
  ownCidrRoute?: 'blackhole' | 'unreachable';
}

export interface RouteView {
  prefix: string;
  /** Remote node name; absent for the own CIDR and for BGP prefixes of no known node. */
  node?: string;
  mode: PathMode;
  /** Gateways (native/direct), the remote underlay address (vxlan), none (local). */
  nextHops: string[];
  /** When the prefix took this mode (monotonic ms of the injected clock; the API shows wall time). */
  since: number;
}

export interface PathSwitch {
  prefix: string;
  node?: string;
  from: PathMode | 'none';
  to: PathMode | 'none';
  at: number;
}
