// One route as stored in Adj-RIB-In and offered to the Loc-RIB decision (RFC 4271 §3.2): who it
// came from, its interned attributes and next hops, and the RFC 4724 stale mark.
import type { PathAttributes } from '../types.js';
import type { PathSource } from './peer.js';

/**
 * Kept small on purpose: a full table is a million of these. attrs and nextHops are interned
 * (shared, frozen) objects; `peer` is re-pointed when a restarted peer comes back with new data.
 */
export class Path {
  constructor(
    readonly prefix: string,
    /** RFC 7911 path identifier; 0 when add-path is not in use. */
    readonly pathId: number,
    public peer: PathSource,
    readonly attrs: PathAttributes,
    /** Next hop(s) as received: [NEXT_HOP] or the MP_REACH list (global, then link-local). */
    readonly nextHops: readonly string[],
    /** Clock value (ms) when the path was learned. */
    readonly learnedAt: number,
    /** RFC 4724: the peer restarted and has not re-announced this path yet. */
    public stale: boolean,
  ) {}

  get peerId(): string {
    return this.peer.id;
  }
}

/** Adj-RIB-In key of an NLRI: the prefix, plus the path identifier under add-path. */
export function nlriKey(prefix: string, pathId: number | undefined): string {
  return pathId === undefined ? prefix : `${prefix}#${pathId}`;
}

/** Same route for a consumer: same source, same attributes, same next hops (all interned). */
export function samePath(a: Path | null, b: Path | null): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  return a.peer.id === b.peer.id && a.pathId === b.pathId && a.attrs === b.attrs && a.nextHops === b.nextHops;
}

export function samePaths(a: readonly Path[], b: readonly Path[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!samePath(a[i]!, b[i]!)) return false;
  return true;
}
