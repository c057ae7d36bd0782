// Text and JSON views of BGP state for the control API, logs and readiness: AS_PATH and community
// text forms (RFC 4271, RFC 1997, RFC 8092), NOTIFICATION names (RFC 4271 §4.5, RFC 4486,
// RFC 8538), and the route view of Loc-RIB candidates.
import { AS_CONFED_SEQUENCE, AS_CONFED_SET, AS_SET, type AsPathSegment, type FamilyKey } from '../types.js';
import type { Path } from '../rib/path.js';
import type { Selection } from '../rib/decision.js';
import type { DownReason } from '../session/fsm.js';
import type { PathView, PeerErrorView, RouteView } from './api-types.js';
import { familyName } from './options.js';

export function asPathText(path: readonly AsPathSegment[]): string {
  return path
    .map((s) => {
      const a = s.asns.join(s.type === AS_SET || s.type === AS_CONFED_SET ? ',' : ' ');
      if (s.type === AS_SET) return `{${a}}`;
      if (s.type === AS_CONFED_SEQUENCE) return `(${a})`;
      if (s.type === AS_CONFED_SET) return `[${a}]`;
      return a;
    })
    .join(' ');
}

export const communityText = (c: number): string => `${c >>> 16}:${c & 0xffff}`;

const CODES: Record<number, string> = {
  1: 'Message Header Error',
  2: 'OPEN Message Error',
  3: 'UPDATE Message Error',
  4: 'Hold Timer Expired',
  5: 'Finite State Machine Error',
  6: 'Cease',
  7: 'ROUTE-REFRESH Message Error',
};

const CEASE: Record<number, string> = {
  1: 'Maximum Number of Prefixes Reached',
  2: 'Administrative Shutdown',
  3: 'Peer De-configured',
  4: 'Administrative Reset',
  5: 'Connection Rejected',
  6: 'Other Configuration Change',
  7: 'Connection Collision Resolution',
  8: 'Out of Resources',
  9: 'Hard Reset',
};

const OPEN: Record<number, string> = {
  1: 'Unsupported Version Number',
  2: 'Bad Peer AS',
  3: 'Bad BGP Identifier',
  4: 'Unsupported Optional Parameter',
  6: 'Unacceptable Hold Time',
  7: 'Unsupported Capability',
};

// RFC 4271 §6.1 and §6.3.
const HEADER: Record<number, string> = {
  1: 'Connection Not Synchronized',
  2: 'Bad Message Length',
  3: 'Bad Message Type',
};

const UPDATE: Record<number, string> = {
  1: 'Malformed Attribute List',
  2: 'Unrecognized Well-known Attribute',
  3: 'Missing Well-known Attribute',
  4: 'Attribute Flags Error',
  5: 'Attribute Length Error',
  6: 'Invalid ORIGIN Attribute',
  8: 'Invalid NEXT_HOP Attribute',
  9: 'Optional Attribute Error',
  10: 'Invalid Network Field',
  11: 'Malformed AS_PATH',
};

/** "Cease/Administrative Shutdown", "OPEN Message Error/Bad Peer AS", "Hold Timer Expired". */
export function notificationName(code: number, subcode: number): string {
  const c = CODES[code] ?? `code ${code}`;
  const sub = ({ 1: HEADER, 2: OPEN, 3: UPDATE, 6: CEASE } as Record<number, Record<number, string>>)[code]?.[subcode];
  if (sub) return `${c}/${sub}`;
  return subcode === 0 ? c : `${c}/subcode ${subcode}`;
}

export function errorView(reason: DownReason, at: Date): PeerErrorView {
  const v: PeerErrorView = { kind: reason.kind, text: reason.text, at: at.toISOString() };
  const n = reason.notification;
  if (n) {
    v.notification = { code: n.code, subcode: n.subcode, name: notificationName(n.code, n.subcode) };
    if (n.shutdownMessage !== undefined) v.notification.shutdownMessage = n.shutdownMessage;
  }
  return v;
}

/** One line for readiness and logs: 'NOTIFICATION received: Cease/Administrative Shutdown "maintenance"'. */
export function errorLine(e: PeerErrorView | null): string {
  if (!e) return 'no error recorded';
  const n = e.notification;
  if (!n) return e.text;
  const dir = e.kind === 'notification-received' ? 'received' : 'sent';
  const msg = n.shutdownMessage ? ` "${n.shutdownMessage}"` : '';
  return `NOTIFICATION ${dir}: ${n.name}${msg}${e.kind.startsWith('notification') ? '' : ` (${e.text})`}`;
}

const ORIGINS = ['igp', 'egp', 'incomplete'] as const;

export function pathView(p: Path, sel: Selection, nowMs: number): PathView {
  const a = p.attrs;
  const v: PathView = {
    peer: p.peer.id,
    best: sel.best === p,
    ecmp: sel.ecmp.includes(p),
    stale: p.stale,
    nextHops: [...p.nextHops],
    asPath: asPathText(a.asPath),
    origin: ORIGINS[a.origin] ?? 'incomplete',
    // Local routes created with the RIB carry time 0: report them as new rather than 55 years old.
    ageSeconds: p.learnedAt > 0 ? Math.max(0, Math.floor((nowMs - p.learnedAt) / 1000)) : 0,
  };
  if (a.med !== undefined) v.med = a.med;
  if (a.localPref !== undefined) v.localPref = a.localPref;
  if (a.communities?.length) v.communities = a.communities.map(communityText);
  if (a.largeCommunities?.length) v.largeCommunities = a.largeCommunities.map((c) => `${c.global}:${c.local1}:${c.local2}`);
  return v;
}

export function routeView(family: FamilyKey, prefix: string, candidates: readonly Path[], sel: Selection, nowMs: number, peer?: string): RouteView {
  const paths = candidates.filter((p) => peer === undefined || p.peer.id === peer).map((p) => pathView(p, sel, nowMs));
  // Best first, then the rest of the ECMP set, then the others.
  paths.sort((x, y) => Number(y.best) - Number(x.best) || Number(y.ecmp) - Number(x.ecmp));
  return { family: familyName(family), prefix, paths };
}
