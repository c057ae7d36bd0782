// Loc-RIB of one address family (RFC 4271 §3.2, §9.1): all accepted candidate paths per prefix
// and the selected best/ECMP set. Incremental: a path change recomputes only its own prefix.
import type { FamilyKey } from '../types.js';
import { decide, NO_ROUTE, type DecisionOptions, type Selection } from './decision.js';
import type { Path } from './path.js';

/**
 * A prefix with two or more candidates. A single candidate is stored as the bare Path, and a
 * Multi keeps only the candidates, reordered so that the ECMP set (best first) leads, and the
 * set's size: a full table learned from two peers holds a million of these.
 */
class Multi {
  constructor(
    public paths: Path[],
    public ecmpCount: number,
  ) {}

  selection(): Selection {
    return { best: this.paths[0]!, ecmp: this.paths.slice(0, this.ecmpCount) };
  }

  /**
   * Stores a decision: ECMP members first in their order, then the others. The array is built
   * at its exact size: push/filter/spread leave V8 arrays with spare capacity (≈200 bytes for
   * two elements instead of 64), which a million prefixes would pay for.
   */
  apply(sel: Selection): void {
    const out = new Array<Path>(this.paths.length);
    let k = 0;
    for (const p of sel.ecmp) out[k++] = p;
    for (const p of this.paths) if (!sel.ecmp.includes(p)) out[k++] = p;
    this.paths = out;
    this.ecmpCount = sel.ecmp.length;
  }
}
type Slot = Path | Multi;

/** `before` is the previous selection; the new one is read back on demand (saves allocations). */
export type SelectionChanged = (family: FamilyKey, prefix: string, before: Selection, afterBest: Path | null) => void;

function selectionOf(slot: Slot | undefined): Selection {
  if (slot === undefined) return NO_ROUTE;
  if (slot instanceof Multi) return slot.selection();
  return { best: slot, ecmp: [slot] };
}

function sameSelection(a: Selection, b: Selection): boolean {
  if (a.best !== b.best || a.ecmp.length !== b.ecmp.length) return false;
  for (let i = 0; i < a.ecmp.length; i++) if (a.ecmp[i] !== b.ecmp[i]) return false;
  return true;
}

export class LocRib {
  private readonly table = new Map<string, Slot>();

  constructor(
    readonly family: FamilyKey,
    private readonly options: () => DecisionOptions,
    private readonly changed: SelectionChanged,
  ) {}

  /** Replaces candidate `old` by `next` at `prefix` (either may be absent) and re-decides. */
  replace(prefix: string, old: Path | undefined, next: Path | undefined): void {
    const slot = this.table.get(prefix);
    if (slot === undefined) {
      if (!next) return;
      this.table.set(prefix, next);
      this.changed(this.family, prefix, NO_ROUTE, next);
      return;
    }
    if (!(slot instanceof Multi)) {
      if (slot !== old) {
        if (!next) return;
        const multi = new Multi([slot, next], 0);
        const sel = decide(multi.paths, this.options());
        multi.apply(sel);
        this.table.set(prefix, multi);
        this.report(prefix, selectionOf(slot), sel);
        return;
      }
      if (next) this.table.set(prefix, next);
      else this.table.delete(prefix);
      this.changed(this.family, prefix, selectionOf(slot), next ?? null);
      return;
    }
    const before = slot.selection();
    const i = old ? slot.paths.indexOf(old) : -1;
    if (i >= 0) {
      if (next) slot.paths[i] = next;
      else slot.paths.splice(i, 1);
    } else if (next) {
      slot.paths.push(next);
    } else {
      return;
    }
    if (slot.paths.length === 1) {
      const only = slot.paths[0]!;
      this.table.set(prefix, only);
      this.report(prefix, before, selectionOf(only));
      return;
    }
    const sel = decide(slot.paths, this.options());
    slot.apply(sel);
    this.report(prefix, before, sel);
  }

  /** Re-runs the decision (decision options or a peer's identity changed). */
  recompute(prefix: string): void {
    const slot = this.table.get(prefix);
    if (!(slot instanceof Multi)) return;
    const before = slot.selection();
    const sel = decide(slot.paths, this.options());
    slot.apply(sel);
    this.report(prefix, before, sel);
  }

  recomputeAll(): void {
    for (const prefix of this.table.keys()) this.recompute(prefix);
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

  get size(): number {
    return this.table.size;
  }

  private report(prefix: string, before: Selection, after: Selection): void {
    if (!sameSelection(before, after)) this.changed(this.family, prefix, before, after.best);
  }
}
