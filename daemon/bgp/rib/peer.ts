// Route sources as the RIB sees them: BGP peers (RFC 4271 internal/external, RFC 4456 client
// flag) and the local node itself, whose originated routes (own pod CIDR, extra prefixes) always win.
import type { FamilyKey } from '../types.js';

/** One configured BGP neighbour, as known once its session is Established. */
export interface PeerInfo {
  /** Peer address text; unique key of the peer everywhere in the RIB. */
  readonly id: string;
  readonly address: string;
  readonly asn: number;
  /** The AS we present to this peer (usually the node's AS). */
  readonly localAsn: number;
  /** The peer's BGP identifier from its OPEN. */
  readonly routerId: string;
  readonly type: 'ebgp' | 'ibgp';
  /** RFC 4456: this iBGP peer is a client of ours (meaningful only when we reflect). */
  readonly rrClient: boolean;
  /** Families negotiated on the session. */
  readonly families: readonly FamilyKey[];
  /**
   * Our own addresses on this session, used when a route is sent with next-hop self. Without one
   * for a family, routes that need next-hop self are not exported to this peer for that family.
   * Optional field added by the RIB (the session fills it from the socket's local address).
   */
  readonly nextHopSelf?: { readonly ipv4?: string; readonly ipv6?: readonly string[] };
}

/** The node itself as the source of locally originated routes. */
export interface LocalSource {
  readonly id: 'local';
  readonly type: 'local';
  readonly address: '';
  readonly asn: number;
  readonly routerId: string;
  readonly rrClient: false;
}

export type PathSource = PeerInfo | LocalSource;

export const LOCAL_ID = 'local';

export function localSource(asn: number, routerId: string): LocalSource {
  return Object.freeze({ id: LOCAL_ID, type: 'local', address: '', asn, routerId, rrClient: false });
}

/** Fields whose change alters the decision process for paths already learned from the peer. */
export function decisionFieldsDiffer(a: PeerInfo, b: PeerInfo): boolean {
  return a.address !== b.address || a.routerId !== b.routerId || a.type !== b.type || a.asn !== b.asn;
}
