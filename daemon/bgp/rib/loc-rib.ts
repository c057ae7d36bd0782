// Loc-RIB of one address family (RFC 4271 §3.2, §9.1) merged with the Adj-RIBs-In: one table
// entry per prefix holding every peer's accepted path for it, with the selected best/ECMP set in
// front. Incremental: a path change recomputes only its own prefix, and a prefix with a single
// candidate (most of a full table) needs no decision run at all.
import type { FamilyKey } from '../types.js';
import { shortKeyV4 } from '../../lib/prefix-key.js';
import { decide, decidePair, NO_ROUTE, PAIR_BOTH_ECMP, PAIR_SECOND_BEST, type DecisionOptions, type Selection } from './decision.js';
import { DIRTY, GONE, samePath, type Path, type PathOwner } from './path.js';

/**
 * A prefix with two or more candidates: the candidates with the ECMP set (best first) leading,
 * and the set's size. `paths` is never mutated in place (copy on write), so the previous array
 * is still the previous selection when a change has to be recorded.
 */
export class Multi {
  constructor(
    public paths: readonly Path[],
    public ecmpCount: number,
    /** DIRTY | GONE, as for a Path that is a table entry. */
    public flags: number,
  ) {}
}

/**
 * One prefix: the bare Path when it has one candidate (no wrapper: a million of these), or a
 * Multi. Rejected paths (kept for soft reconfiguration) live in a separate, usually empty table.
 */
export type Slot = Path | Multi;

/** What the subscribers last saw for a prefix: nothing, one path, or the ECMP list (best first). */
export type Seen = Path | readonly Path[] | null;

/**
 * The best path changed from `before` to `after` (Adj-RIB-Out work); called synchronously.
 * `prefix` null: a short IPv4 key, whose text the paths give (built only if needed).
 */
export type BestChanged = (family: FamilyKey, prefix: string | null, before: Path | null, after: Path | null) => void;

export function bestOf(slot: Slot | undefined): Path | null {
  if (slot === undefined) return null;
  return slot instanceof Multi ? slot.paths[0]! : slot;
}

export function selectionOf(slot: Slot | undefined): Selection {
  if (slot === undefined) return NO_ROUTE;
  if (slot instanceof Multi) return { best: slot.paths[0]!, ecmp: slot.paths.slice(0, slot.ecmpCount) };
  return { best: slot, ecmp: [slot] };
}

/** The ECMP set of a slot as delivered to subscribers (a fresh array: subscribers may keep it). */
export function ecmpOf(slot: Slot): Path[] {
  return slot instanceof Multi ? slot.paths.slice(0, slot.ecmpCount) : [slot];
}

/** The path of `owner` with `pathId` among a slot's candidates. */
export function findPath(slot: Slot | undefined, owner: PathOwner, pathId: number): Path | undefined {
  if (slot === undefined) return undefined;
  if (!(slot instanceof Multi)) return slot.group.owner === owner && slot.pathId === pathId ? slot : undefined;
  for (const p of slot.paths) if (p.group.owner === owner && p.pathId === pathId) return p;
  return undefined;
}

/** True when the subscribers' view `seen` equals the slot's current selection (value equality). */
export function sameSeen(seen: Seen, slot: Slot | undefined): boolean {
  if (slot === undefined) return seen === null;
  if (seen === null) return false;
  if (!(slot instanceof Multi)) {
    if (!Array.isArray(seen)) return samePath(seen as Path, slot);
    return seen.length === 1 && samePath(seen[0]!, slot);
  }
  const n = slot.ecmpCount;
  if (!Array.isArray(seen)) return n === 1 && samePath(seen as Path, slot.paths[0]!);
  if (seen.length !== n) return false;
  for (let i = 0; i < n; i++) if (!samePath(seen[i]!, slot.paths[i]!)) return false;
  return true;
}

export function prefixOf(slot: Slot): string {
  return slot instanceof Multi ? slot.paths[0]!.prefix : slot.prefix;
}

/** `slot` becomes the table entry; `dirty` says whether a change record is pending for it. */
function enter(slot: Slot, dirty: boolean): void {
  slot.flags = (slot.flags & ~(GONE | DIRTY)) | (dirty ? DIRTY : 0);
}

/** `slot` stops being the table entry. */
function leave(slot: Slot): void {
  slot.flags |= GONE;
}

/** ECMP set first in the decision's order, then the others; an array of exact size. */
function ordered(paths: readonly Path[], sel: Selection): Path[] {
  const out = new Array<Path>(paths.length);
  let k = 0;
  for (const p of sel.ecmp) out[k++] = p;
  for (const p of paths) if (!sel.ecmp.includes(p)) out[k++] = p;
  return out;
}

/** Short IPv4 keys (shared with routing and the kernel reconciler: daemon/lib/prefix-key.ts). */
export { shortKeyV4 };

const FRESH_CHUNK = 8192;

export class LocRib {
  /** IPv4 prefixes up to /24, by shortKeyV4 (only in the IPv4 unicast table). */
  private readonly short = new Map<number, Slot>();
  /** Every other prefix, by its text. */
  private readonly long = new Map<string, Slot>();
  private readonly v4: boolean;
  /** Paths rejected by import policy, kept for soft reconfiguration: prefix → path(s). */
  readonly rejected = new Map<string, Path | Path[]>();
  /**
   * Change records since the last flush, in order: the table entry after the prefix's first
   * change and what subscribers saw before it. The entry's DIRTY mark keeps one record per prefix
   * (see ChangeStream.flush); GONE on a recorded entry means "look the prefix up again".
   */
  dirtySlots: Slot[] = [];
  dirtySeen: Seen[] = [];
  /**
   * Records of prefixes that were new (subscribers saw nothing): the bulk of a table load, kept
   * apart without a `seen` and in fixed-size chunks, since one growing million-element array
   * costs a copy per growth step and scavenger work for every slot.
   */
  private freshChunks: Slot[][] = [];
  private fresh: Slot[] = [];
  private freshCount = 0;
  private recordCount = 0;

  constructor(
    readonly family: FamilyKey,
    private readonly options: () => DecisionOptions,
    private readonly bestChanged: BestChanged,
    /** A record was added to an empty change list (the first change since a flush). */
    private readonly marked: () => void,
  ) {
    this.v4 = family === '1/1';
  }

  get size(): number {
    return this.short.size + this.long.size;
  }

  /** The short key of a prefix of this table, or -1 (text key). */
  keyOf(prefix: string): number {
    return this.v4 ? shortKeyV4(prefix) : -1;
  }

  get(prefix: string, key = this.keyOf(prefix)): Slot | undefined {
    return key >= 0 ? this.short.get(key) : this.long.get(prefix);
  }

  /** The current entry of the prefix `recorded` (a former or current entry) belongs to. */
  current(recorded: Slot): Slot | undefined {
    const k = (recorded instanceof Multi ? recorded.paths[0]! : recorded).key;
    return typeof k === 'number' ? this.short.get(k) : this.get(k);
  }

  // `prefix` may be null only with a short key (key >= 0).
  private put(prefix: string | null, key: number, slot: Slot): void {
    if (key >= 0) this.short.set(key, slot);
    else this.long.set(prefix!, slot);
  }

  private remove(prefix: string | null, key: number): void {
    if (key >= 0) this.short.delete(key);
    else this.long.delete(prefix!);
  }

  /** Every entry; entries may be replaced or deleted while iterating. */
  *entries(): IterableIterator<[string, Slot]> {
    for (const slot of this.short.values()) yield [prefixOf(slot), slot];
    yield* this.long;
  }

  *values(): IterableIterator<Slot> {
    yield* this.short.values();
    yield* this.long.values();
  }

  /**
   * Replaces candidate `old` by `next` at `prefix` (either may be absent) and re-decides. `slot`
   * is the table's current entry for the prefix (the caller has looked it up already). `prefix`
   * may be null when `key` is the prefix's short key (no text needed).
   */
  update(prefix: string | null, slot: Slot | undefined, old: Path | undefined, next: Path | undefined, key = this.keyOf(prefix!)): void {
    if (slot === undefined) {
      if (!next) return;
      // A new prefix: the commonest case in a table load. No decision, one Map write.
      enter(next, true);
      this.put(prefix, key, next);
      this.record(next, null);
      this.bestChanged(this.family, prefix, null, next);
      return;
    }
    if (!(slot instanceof Multi)) {
      if (slot !== old) {
        if (!next) return;
        this.decideInto(prefix, key, slot, [slot, next], [slot], 1);
        return;
      }
      const dirty = (slot.flags & DIRTY) !== 0;
      leave(slot);
      if (next) {
        enter(next, true);
        this.put(prefix, key, next);
      } else {
        this.remove(prefix, key);
      }
      if (!dirty) this.record(next ?? slot, slot);
      this.bestChanged(this.family, prefix, slot, next ?? null);
      return;
    }
    const paths = slot.paths;
    const i = old ? paths.indexOf(old) : -1;
    let list: Path[];
    if (i >= 0) {
      if (next) {
        list = paths.slice();
        list[i] = next;
      } else {
        list = new Array<Path>(paths.length - 1);
        for (let j = 0, k = 0; j < paths.length; j++) if (j !== i) list[k++] = paths[j]!;
      }
    } else if (next) {
      list = new Array<Path>(paths.length + 1);
      for (let j = 0; j < paths.length; j++) list[j] = paths[j]!;
      list[paths.length] = next;
    } else {
      return;
    }
    this.decideInto(prefix, key, slot, list, paths, slot.ecmpCount);
  }

  /** Re-runs the decision (decision options or a peer's identity changed). */
  recompute(prefix: string): void {
    const key = this.keyOf(prefix);
    const slot = this.get(prefix, key);
    if (slot instanceof Multi) this.decideInto(prefix, key, slot, slot.paths.slice(), slot.paths, slot.ecmpCount);
  }

  recomputeAll(): void {
    for (const [prefix, slot] of this.entries()) {
      if (slot instanceof Multi) this.decideInto(prefix, this.keyOf(prefix), slot, slot.paths.slice(), slot.paths, slot.ecmpCount);
    }
  }

  selection(prefix: string): Selection {
    return selectionOf(this.get(prefix));
  }

  candidates(prefix: string): readonly Path[] {
    const slot = this.get(prefix);
    if (slot === undefined) return [];
    return slot instanceof Multi ? slot.paths : [slot];
  }

  *selections(): IterableIterator<[string, Selection]> {
    for (const [prefix, slot] of this.entries()) yield [prefix, selectionOf(slot)];
  }

  /**
   * Takes the change records (ChangeStream.flush). Records of prefixes that existed come first:
   * a prefix can have one of those and then fresh ones (removed and re-added), never the other
   * way round, and the earliest record of a prefix carries what subscribers really saw.
   */
  takeRecords(): { slots: Slot[]; seen: Seen[]; fresh: Slot[][] } {
    if (this.freshCount > 0) {
      this.fresh.length = this.freshCount;
      this.freshChunks.push(this.fresh);
    }
    const out = { slots: this.dirtySlots, seen: this.dirtySeen, fresh: this.freshChunks };
    this.dirtySlots = [];
    this.dirtySeen = [];
    this.freshChunks = [];
    this.fresh = [];
    this.freshCount = 0;
    this.recordCount = 0;
    return out;
  }

  get pendingRecords(): number {
    return this.recordCount;
  }

  /**
   * Decides among `list` (the new candidates) for a prefix whose entry was `slot`, whose ECMP
   * set was `prev[0..prevCount)`; stores the result and records a change if the set differs.
   */
  private decideInto(prefix: string | null, key: number, slot: Slot, list: Path[], prev: readonly Path[], prevCount: number): void {
    const dirty = (slot.flags & DIRTY) !== 0;
    let next: Slot;
    if (list.length === 1) {
      next = list[0]!;
    } else if (list.length === 2) {
      // Two candidates: no Selection, no reordering copy; `list` (fresh) becomes the entry's array.
      const r = decidePair(list[0]!, list[1]!, this.options());
      if ((r & PAIR_SECOND_BEST) !== 0) {
        const t = list[0]!;
        list[0] = list[1]!;
        list[1] = t;
      }
      const count = (r & PAIR_BOTH_ECMP) !== 0 ? 2 : 1;
      if (slot instanceof Multi) {
        next = slot;
        slot.paths = list;
        slot.ecmpCount = count;
      } else {
        next = new Multi(list, count, 0);
      }
    } else {
      const sel = decide(list, this.options());
      next = slot instanceof Multi ? slot : new Multi(list, 0, 0);
      (next as Multi).paths = ordered(list, sel);
      (next as Multi).ecmpCount = sel.ecmp.length;
    }
    if (next !== slot) {
      leave(slot);
      enter(next, dirty);
      this.put(prefix, key, next);
    }
    // Unchanged ECMP set (by identity): nothing for the subscribers or the Adj-RIBs-Out.
    const nowPaths = next instanceof Multi ? next.paths : list;
    const nowCount = next instanceof Multi ? next.ecmpCount : 1;
    let same = nowCount === prevCount;
    for (let j = 0; same && j < nowCount; j++) same = nowPaths[j] === prev[j];
    if (same) return;
    if (!dirty) {
      this.record(next, prevCount === 1 ? prev[0]! : prev.slice(0, prevCount));
      next.flags |= DIRTY;
    }
    if (prev[0] !== nowPaths[0]) this.bestChanged(this.family, prefix, prev[0]!, nowPaths[0]!);
  }

  private record(slot: Slot, seen: Seen): void {
    if (this.recordCount++ === 0) this.marked();
    if (seen === null) {
      if (this.freshCount === FRESH_CHUNK) {
        this.freshChunks.push(this.fresh);
        this.freshCount = 0;
      }
      if (this.freshCount === 0) this.fresh = new Array<Slot>(FRESH_CHUNK);
      this.fresh[this.freshCount++] = slot;
      return;
    }
    this.dirtySlots.push(slot);
    this.dirtySeen.push(seen);
  }
}
