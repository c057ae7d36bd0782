// The routing layer's per-prefix table: for each prefix (by PrefixKey, lib/prefix-key.ts) its BGP
// next hops (an interned list; absent when BGP has no path for it) and its path entry (absent
// until the prefix has a path). One Map slot per prefix, and the slot itself is interned per
// (next hops, entry): a million prefixes announced over a few next-hop sets onto a few shared
// path entries cost their Map slots and a handful of slot objects — two maps (next hops, path
// entries) cost a slot each.

import type { PrefixKey } from '../lib/prefix-key.js';

/** What the table holds for one prefix: at least one of the two is present. */
export interface PrefixSlot<E extends object> {
  readonly hops: readonly string[] | undefined;
  readonly entry: E | undefined;
}

export class PrefixTable<E extends object> {
  private readonly map = new Map<PrefixKey, PrefixSlot<E>>();
  /** Interned slots, weakly by entry (entries are replaced as paths change), then by next-hop list. */
  private readonly byEntry = new WeakMap<E, Map<readonly string[] | undefined, PrefixSlot<E>>>();
  /** Interned slots of prefixes without an entry, weakly by next-hop list (lists are re-interned at times). */
  private readonly byHops = new WeakMap<readonly string[], PrefixSlot<E>>();
  /** The slot made or found last: consecutive prefixes mostly share it (no lookup then). */
  private last: PrefixSlot<E> | undefined;
  private withHops = 0;
  private withEntry = 0;

  hops(k: PrefixKey): readonly string[] | undefined {
    return this.map.get(k)?.hops;
  }

  entry(k: PrefixKey): E | undefined {
    return this.map.get(k)?.entry;
  }

  slot(k: PrefixKey): PrefixSlot<E> | undefined {
    return this.map.get(k);
  }

  /** Prefixes with BGP next hops. */
  get hopsSize(): number {
    return this.withHops;
  }

  /** Prefixes with a path entry. */
  get entrySize(): number {
    return this.withEntry;
  }

  setHops(k: PrefixKey, hops: readonly string[] | undefined): void {
    this.put(k, hops, this.map.get(k)?.entry);
  }

  setEntry(k: PrefixKey, entry: E | undefined): void {
    this.put(k, this.map.get(k)?.hops, entry);
  }

  /** Every prefix with BGP next hops (the caller may change the entries meanwhile, not the next hops). */
  *hopsKeys(): Generator<PrefixKey> {
    for (const [k, s] of this.map) if (s.hops) yield k;
  }

  /** Every prefix with a path entry, with it. */
  *entries(): Generator<[PrefixKey, E]> {
    for (const [k, s] of this.map) if (s.entry) yield [k, s.entry];
  }

  /** Drop every prefix's next hops (a full BGP snapshot replaces them). */
  clearHops(): void {
    for (const [k, s] of this.map) if (s.hops) this.put(k, undefined, s.entry);
  }

  /** Re-map every next-hop list through `f` (re-interning). */
  mapHops(f: (h: readonly string[]) => readonly string[]): void {
    for (const [k, s] of this.map) if (s.hops) this.put(k, f(s.hops), s.entry);
  }

  private put(k: PrefixKey, hops: readonly string[] | undefined, entry: E | undefined): void {
    const old = this.map.get(k);
    if (old) {
      if (old.hops) this.withHops--;
      if (old.entry) this.withEntry--;
    }
    if (!hops && !entry) {
      this.map.delete(k);
      return;
    }
    if (hops) this.withHops++;
    if (entry) this.withEntry++;
    let s = this.last;
    if (s === undefined || s.hops !== hops || s.entry !== entry) {
      s = entry ? this.internWithEntry(hops, entry) : this.internHops(hops!);
      this.last = s;
    }
    this.map.set(k, s);
  }

  private internWithEntry(hops: readonly string[] | undefined, entry: E): PrefixSlot<E> {
    let m = this.byEntry.get(entry);
    if (!m) this.byEntry.set(entry, (m = new Map()));
    let s = m.get(hops);
    if (!s) m.set(hops, (s = Object.freeze({ hops, entry })));
    return s;
  }

  private internHops(hops: readonly string[]): PrefixSlot<E> {
    let s = this.byHops.get(hops);
    if (!s) this.byHops.set(hops, (s = Object.freeze({ hops, entry: undefined })));
    return s;
  }
}
