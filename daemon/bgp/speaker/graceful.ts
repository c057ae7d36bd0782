// Graceful restart, receiving-speaker ("helper") side decisions: RFC 4724 §4.2 (keep a restarting
// peer's routes as stale when its session drops), RFC 8538 §4 (with the N-bit on both sides, a
// NOTIFICATION other than Cease/Hard Reset is graceful too). Pure functions of the session's data.
import { familyKey, ERR_CEASE, type FamilyKey } from '../types.js';
import type { DownReason } from '../session/fsm.js';
import type { NegotiatedSession } from '../session/negotiate.js';
import { CEASE_HARD_RESET } from '../wire/index.js';

export interface GracefulDown {
  graceful: boolean;
  /** Seconds the peer asked us to wait for it (its capability's restart time). */
  restartTime: number;
  /** Families whose routes stay (forwarding state preserved by the peer). */
  families: FamilyKey[];
  why: string;
}

const NOT: (why: string) => GracefulDown = (why) => ({ graceful: false, restartTime: 0, families: [], why });

/** How to treat the routes of a session that just left Established. */
export function gracefulOnDown(reason: DownReason, n: NegotiatedSession | null): GracefulDown {
  const peer = n?.peerGracefulRestart;
  const local = n?.localGracefulRestart;
  if (!n || !peer || !local) return NOT('graceful restart not negotiated');
  if (reason.kind === 'manual-stop' || reason.kind === 'automatic-stop') return NOT('session stopped by nrd');
  if (peer.restartTime === 0) return NOT('peer restart time is 0');
  if (reason.kind !== 'tcp-failed') {
    // RFC 4724 alone: any NOTIFICATION ends the session for good. RFC 8538: not when both sides
    // sent the N-bit, unless the NOTIFICATION is a Hard Reset.
    if (!peer.notification || !local.notification) return NOT(`${reason.kind} without the RFC 8538 N-bit`);
    const nt = reason.notification;
    if (nt && nt.code === ERR_CEASE && nt.subcode === CEASE_HARD_RESET) return NOT('Cease/Hard Reset');
  }
  const negotiated = new Set(n.families);
  // RFC 4724 §4.2: routes of every family listed in the peer's capability are retained as
  // stale (the F bit matters only once the session is back); unlisted families are withdrawn.
  const families = peer.families.map((f) => familyKey(f.afi, f.safi)).filter((f) => negotiated.has(f));
  return { graceful: true, restartTime: peer.restartTime, families, why: reason.kind };
}

/**
 * RFC 4724 §4.2 on the session's return: stale routes of families the peer lists again with
 * forwarding state preserved stay until its End-of-RIB; all others go at once.
 */
export function preservedOnUp(n: NegotiatedSession): FamilyKey[] {
  const gr = n.peerGracefulRestart;
  if (!gr) return [];
  return gr.families.filter((f) => f.forwardingPreserved).map((f) => familyKey(f.afi, f.safi));
}
