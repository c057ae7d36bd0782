// Connection collision detection, RFC 4271 §6.8 with the RFC 6286 §2.3 tie-break for equal ids.
// Pure: the shell asks which of two connections to the same peer survives once it knows the
// peer's BGP identifier (from an OPEN on either connection).

import { ipv4Number } from '../../lib/ip.js';

/** Who initiated a connection: `outgoing` = we connected, `incoming` = the peer connected. */
export type Direction = 'outgoing' | 'incoming';

/** A BGP identifier as an unsigned 32-bit number (the session layer checked its form). */
function idToUint(id: string): number {
  return Math.max(0, ipv4Number(id));
}

/**
 * The connection to keep. RFC 4271 §6.8: if our BGP id is higher, keep the connection we initiated,
 * otherwise the one the peer initiated. RFC 6286 §2.3: with equal ids (possible for eBGP), the side
 * with the larger AS number keeps the connection it initiated.
 */
export function resolveCollision(localId: string, remoteId: string, localAs: number, remoteAs: number): Direction {
  const l = idToUint(localId);
  const r = idToUint(remoteId);
  if (l !== r) return l > r ? 'outgoing' : 'incoming';
  return localAs > remoteAs ? 'outgoing' : 'incoming';
}
