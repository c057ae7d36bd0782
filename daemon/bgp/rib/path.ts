// One route as stored in the RIB (RFC 4271 §3.2 Adj-RIB-In entry and Loc-RIB candidate): who it
// came from, its interned attributes and next hops, and the RFC 4724 stale mark.
import type { PathAttributes } from '../types.js';
import type { PathSource } from './peer.js';
import { shortKeyText } from '../../lib/prefix-key.js';

/** Whoever holds a set of paths: a peer's RIB state, or the node itself. `info` may be re-pointed. */
export interface PathOwner {
  info: PathSource;
}

/**
 * What all prefixes of one UPDATE share: the source, the interned attributes and next hops, the
 * time. One object per UPDATE instead of four fields per prefix: a full table is a million paths
 * but only about a thousand UPDATEs. `owner.info` is read at use, so re-pointing a restarted
 * peer's paths to its new session is one assignment, not a walk over its table.
 */
export class PathGroup {
  constructor(
    readonly owner: PathOwner,
    readonly attrs: PathAttributes,
    readonly nextHops: readonly string[],
    /** Clock value (ms) when the UPDATE was applied (a double: kept here, once, not per path). */
    readonly learnedAt: number,
  ) {}
}

/** Path.flags bits. */
export const STALE = 1;
/** As a table entry: the change stream has a pending record for the prefix. */
export const DIRTY = 2;
/** No longer the table entry of its prefix (a pending change record must look the prefix up). */
export const GONE = 4;
/** The path identifier did not fit in `flags` and is kept in BIG_IDS. */
const BIG_ID = 8;
const ID_SHIFT = 4;
/** Largest path identifier kept in `flags` (which must stay a small integer, see Path). */
const MAX_SMALL_ID = 2 ** (31 - ID_SHIFT) - 1;
/** RFC 7911 allows 32-bit identifiers; the rare one above MAX_SMALL_ID lives here. */
const BIG_IDS = new WeakMap<Path, number>();

/**
 * Kept small on purpose: a full table is a million of these (3 fields, 48 bytes). attrs and
 * nextHops are interned (shared, frozen) objects reached through the UPDATE's PathGroup; the
 * path identifier shares one small integer with the flags (a field that ever held a non-Smi
 * number would make V8 box it in every Path).
 */
export class Path {
  /**
   * @internal The prefix: its text, or for an IPv4 prefix of length ≤ 24 the Loc-RIB's short key
   * (see shortKeyV4), which costs no string per path; the text is built when someone asks.
   */
  readonly key: string | number;
  /** @internal shared per-UPDATE part */
  group: PathGroup;
  /** @internal (pathId << ID_SHIFT) | STALE | DIRTY | GONE | BIG_ID */
  flags: number;

  constructor(
    prefix: string,
    pathId: number,
    peer: PathSource,
    attrs: PathAttributes,
    /** Next hop(s) as received: [NEXT_HOP] or the MP_REACH list (global, then link-local). */
    nextHops: readonly string[],
    /** Clock value (ms) when the path was learned. */
    learnedAt: number,
    /** RFC 4724: the peer restarted and has not re-announced this path yet. */
    stale: boolean,
  );
  /** @internal the RIB's constructor: the per-UPDATE part is shared; a number is a short key. */
  constructor(prefix: string | number, pathId: number, group: PathGroup);
  constructor(
    prefix: string | number,
    pathId: number,
    peerOrGroup: PathSource | PathGroup,
    attrs?: PathAttributes,
    nextHops?: readonly string[],
    learnedAt?: number,
    stale?: boolean,
  ) {
    this.key = prefix;
    let flags: number;
    if (pathId <= MAX_SMALL_ID) {
      flags = pathId << ID_SHIFT;
    } else {
      flags = BIG_ID;
      BIG_IDS.set(this, pathId);
    }
    if (attrs === undefined) {
      this.group = peerOrGroup as PathGroup;
      this.flags = flags;
    } else {
      this.group = new PathGroup({ info: peerOrGroup as PathSource }, attrs, nextHops!, learnedAt!);
      this.flags = stale ? flags | STALE : flags;
    }
  }

  /** Canonical prefix text. */
  get prefix(): string {
    const k = this.key;
    return typeof k === 'number' ? shortKeyText(k) : k;
  }

  /** RFC 7911 path identifier; 0 when add-path is not in use. */
  get pathId(): number {
    const f = this.flags;
    return (f & BIG_ID) === 0 ? f >>> ID_SHIFT : BIG_IDS.get(this)!;
  }

  get peer(): PathSource {
    return this.group.owner.info;
  }

  /** Re-points this one path (the RIB re-points whole owners instead). */
  set peer(info: PathSource) {
    const g = this.group;
    this.group = new PathGroup({ info }, g.attrs, g.nextHops, g.learnedAt);
  }

  get peerId(): string {
    return this.group.owner.info.id;
  }

  get attrs(): PathAttributes {
    return this.group.attrs;
  }

  get nextHops(): readonly string[] {
    return this.group.nextHops;
  }

  get learnedAt(): number {
    return this.group.learnedAt;
  }

  get stale(): boolean {
    return (this.flags & STALE) !== 0;
  }

  set stale(v: boolean) {
    this.flags = v ? this.flags | STALE : this.flags & ~STALE;
  }
}

const DOTTED: string[] = [];
for (let i = 0; i < 256; i++) DOTTED.push(`${i}.`);

export { shortKeyText };

/** Canonical text of an IPv4 prefix: unsigned 32-bit address (host bits zero) and length. */
export function ipv4PrefixText(v: number, len: number): string {
  return `${DOTTED[v >>> 24]!}${DOTTED[(v >>> 16) & 0xff]!}${DOTTED[(v >>> 8) & 0xff]!}${v & 0xff}/${len}`;
}

/** Adj-RIB-In key of an NLRI: the prefix, plus the path identifier under add-path. */
export function nlriKey(prefix: string, pathId: number | undefined): string {
  return pathId === undefined ? prefix : `${prefix}#${pathId}`;
}

/** Same route for a consumer: same source, same attributes, same next hops (all interned). */
export function samePath(a: Path | null, b: Path | null): boolean {
  if (a === b) return true;
  if (!a || !b) return false;
  const ga = a.group;
  const gb = b.group;
  if (ga === gb) return a.pathId === b.pathId;
  return a.pathId === b.pathId && ga.attrs === gb.attrs && ga.nextHops === gb.nextHops && ga.owner.info.id === gb.owner.info.id;
}

export function samePaths(a: readonly Path[], b: readonly Path[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!samePath(a[i]!, b[i]!)) return false;
  return true;
}
