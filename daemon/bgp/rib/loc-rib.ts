// Loc-RIB of one address family (RFC 4271 §3.2, §9.1) merged with the Adj-RIBs-In: one table
// entry per prefix holding every peer's accepted path for it, with the selected best/ECMP set in
// front. Incremental: a path change recomputes only its own prefix, and a prefix with a single
// candidate (most of a full table) needs no decision run at all.
import type { FamilyKey } from '../types.js';
import { decide, NO_ROUTE, type DecisionOptions, type Selection } from './decision.js';
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

/** The best path changed from `before` to `after` (Adj-RIB-Out work); called synchronously. */
export type BestChanged = (family: FamilyKey, prefix: string, before: Path | null, after: Path | null) => void;

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

export class LocRib {
  readonly table = new Map<string, Slot>();
  /** Paths rejected by import policy, kept for soft reconfiguration: prefix → path(s). */
  readonly rejected = new Map<string, Path | Path[]>();
  /**
   * Change records since the last flush, in order: the table entry after the prefix's first
   * change and what subscribers saw before it. The entry's DIRTY mark keeps one record per prefix
   * (see ChangeStream.flush); GONE on a recorded entry means "look the prefix up again".
   */
  dirtySlots: Slot[] = [];
  dirtySeen: Seen[] = [];

  constructor(
    readonly family: FamilyKey,
    private readonly options: () => DecisionOptions,
    private readonly bestChanged: BestChanged,
    /** A record was added to an empty change list (the first change since a flush). */
    private readonly marked: () => void,
  ) {}

  get size(): number {
    return this.table.size;
  }

  /**
   * Replaces candidate `old` by `next` at `prefix` (either may be absent) and re-decides. `slot`
   * is the table's current entry for the prefix (the caller has looked it up already).
   */
  update(prefix: string, slot: Slot | undefined, old: Path | undefined, next: Path | undefined): void {
    if (slot === undefined) {
      if (!next) return;
      // A new prefix: the commonest case in a table load. No decision, one Map write.
      enter(next, true);
      this.table.set(prefix, next);
      this.record(next, null);
      this.bestChanged(this.family, prefix, null, next);
      return;
    }
    if (!(slot instanceof Multi)) {
      if (slot !== old) {
        if (!next) return;
        this.decideInto(prefix, slot, [slot, next], [slot], 1);
        return;
      }
      const dirty = (slot.flags & DIRTY) !== 0;
      leave(slot);
      if (next) {
        enter(next, true);
        this.table.set(prefix, next);
      } else {
        this.table.delete(prefix);
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
    this.decideInto(prefix, slot, list, paths, slot.ecmpCount);
  }

  /** Re-runs the decision (decision options or a peer's identity changed). */
  recompute(prefix: string): void {
    const slot = this.table.get(prefix);
    if (slot instanceof Multi) this.decideInto(prefix, slot, slot.paths.slice(), slot.paths, slot.ecmpCount);
  }

  recomputeAll(): void {
    for (const [prefix, slot] of this.table) {
      if (slot instanceof Multi) this.decideInto(prefix, slot, slot.paths.slice(), slot.paths, slot.ecmpCount);
    }
  }

  selection(prefix: string): Selection {
    return selectionOf(this.table.get(prefix));
  }

  candidates(prefix: string): readonly Path[] {
    const slot = this.table.get(prefix);
    if (slot === undefined) return [];
    return slot instanceof Multi ? slot.paths : [slot];
  }

  *selections(): IterableIterator<[string, Selection]> {
    for (const [prefix, slot] of this.table) yield [prefix, selectionOf(slot)];
  }

  /** Takes the change records (ChangeStream.flush). */
  takeRecords(): { slots: Slot[]; seen: Seen[] } {
    const out = { slots: this.dirtySlots, seen: this.dirtySeen };
    this.dirtySlots = [];
    this.dirtySeen = [];
    return out;
  }

  get pendingRecords(): number {
    return this.dirtySlots.length;
  }

  /**
   * Decides among `list` (the new candidates) for a prefix whose entry was `slot`, whose ECMP
   * set was `prev[0..prevCount)`; stores the result and records a change if the set differs.
   */
  private decideInto(prefix: string, slot: Slot, list: Path[], prev: readonly Path[], prevCount: number): void {
    const dirty = (slot.flags & DIRTY) !== 0;
    let next: Slot;
    if (list.length === 1) {
      next = list[0]!;
    } else {
      const sel = decide(list, this.options());
      next = slot instanceof Multi ? slot : new Multi(list, 0, 0);
      (next as Multi).paths = ordered(list, sel);
      (next as Multi).ecmpCount = sel.ecmp.length;
    }
    if (next !== slot) {
      leave(slot);
      enter(next, dirty);
      this.table.set(prefix, next);
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
    this.dirtySlots.push(slot);
    this.dirtySeen.push(seen);
    if (this.dirtySlots.length === 1) this.marked();
  }
}
