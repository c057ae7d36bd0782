// The Loc-RIB's output to the routing layer (which installs routes with netlink): best path and
// ECMP set per prefix, coalesced per prefix and delivered in batches. Level-triggered: a change
// carries the whole current state of its prefix, never a delta to replay.
import type { FamilyKey } from '../types.js';
import { samePath, samePaths, type Path } from './path.js';
import type { Selection } from './decision.js';

export interface RouteChange {
  readonly family: FamilyKey;
  readonly prefix: string;
  /** null: no route any more. A path with peer.type 'local' is this node's own prefix. */
  readonly best: Path | null;
  /** Best first; [] when best is null. */
  readonly ecmp: readonly Path[];
}

export interface RouteSubscriber {
  onRouteChanges(changes: readonly RouteChange[]): void;
}

export type CurrentSelection = (family: FamilyKey, prefix: string) => Selection;
export type AllSelections = () => Iterable<[FamilyKey, string, Selection]>;

/**
 * Collects "this prefix changed" marks between flushes, keeping for each prefix the state the
 * subscribers last saw. A flush reads the current state and delivers only prefixes whose
 * state really differs (A→B→A within one batch is no change).
 */
export class ChangeStream {
  private pending = new Map<FamilyKey, Map<string, Selection>>();
  private count = 0;
  private readonly subscribers = new Set<RouteSubscriber>();

  constructor(
    private readonly current: CurrentSelection,
    private readonly all: AllSelections,
    /** Called when the first change becomes pending: the shell schedules a flush. */
    private readonly onPending?: () => void,
  ) {}

  mark(family: FamilyKey, prefix: string, seen: Selection): void {
    let fam = this.pending.get(family);
    if (!fam) this.pending.set(family, (fam = new Map()));
    if (fam.has(prefix)) return;
    fam.set(prefix, seen);
    if (this.count++ === 0) this.onPending?.();
  }

  get pendingCount(): number {
    return this.count;
  }

  /** Delivers every pending change in batches of at most batchSize; returns how many. */
  flush(batchSize = 1024): number {
    if (this.count === 0) return 0;
    const pending = this.pending;
    this.pending = new Map();
    this.count = 0;
    let batch: RouteChange[] = [];
    let delivered = 0;
    for (const [family, prefixes] of pending) {
      for (const [prefix, seen] of prefixes) {
        const now = this.current(family, prefix);
        if (samePath(seen.best, now.best) && samePaths(seen.ecmp, now.ecmp)) continue;
        batch.push({ family, prefix, best: now.best, ecmp: now.ecmp });
        if (batch.length >= batchSize) {
          this.deliver(batch);
          delivered += batch.length;
          batch = [];
        }
      }
    }
    if (batch.length > 0) {
      this.deliver(batch);
      delivered += batch.length;
    }
    return delivered;
  }

  /**
   * Adds a subscriber. With replay, it first receives the whole current table as changes (a
   * routing layer starting after the RIB filled up, or reconciling after a restart).
   */
  subscribe(sub: RouteSubscriber, opts: { replay?: boolean; batchSize?: number } = {}): () => void {
    if (opts.replay) {
      const size = opts.batchSize ?? 1024;
      let batch: RouteChange[] = [];
      for (const [family, prefix, sel] of this.all()) {
        if (!sel.best) continue;
        batch.push({ family, prefix, best: sel.best, ecmp: sel.ecmp });
        if (batch.length >= size) {
          sub.onRouteChanges(batch);
          batch = [];
        }
      }
      if (batch.length > 0) sub.onRouteChanges(batch);
    }
    this.subscribers.add(sub);
    return () => {
      this.subscribers.delete(sub);
    };
  }

  private deliver(batch: readonly RouteChange[]): void {
    for (const s of this.subscribers) s.onRouteChanges(batch);
  }
}

/** A subscriber that remembers everything it was told (tests, nrdctl debugging). */
export class RecordingSink implements RouteSubscriber {
  readonly batches: RouteChange[][] = [];
  /** Latest state per "family prefix" as the subscriber would have installed it. */
  readonly table = new Map<string, RouteChange>();

  onRouteChanges(changes: readonly RouteChange[]): void {
    this.batches.push([...changes]);
    for (const c of changes) {
      if (c.best) this.table.set(`${c.family} ${c.prefix}`, c);
      else this.table.delete(`${c.family} ${c.prefix}`);
    }
  }

  get changes(): RouteChange[] {
    return this.batches.flat();
  }

  latest(family: FamilyKey, prefix: string): RouteChange | undefined {
    return this.table.get(`${family} ${prefix}`);
  }

  clear(): void {
    this.batches.length = 0;
  }
}
