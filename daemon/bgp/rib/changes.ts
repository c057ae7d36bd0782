// The Loc-RIB's output to the routing layer (which installs routes with netlink): best path and
// ECMP set per prefix, coalesced per prefix and delivered in batches. Level-triggered: a change
// carries the whole current state of its prefix, never a delta to replay.
import type { FamilyKey } from '../types.js';
import type { Path } from './path.js';
import type { Selection } from './decision.js';
import { bestOf, ecmpOf, prefixOf, sameSeen, type LocRib, type Seen, type Slot } from './loc-rib.js';
import { DIRTY, GONE } from './path.js';

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

export type AllSelections = () => Iterable<[FamilyKey, string, Selection]>;

/**
 * Collects "this prefix changed" records between flushes. Each Loc-RIB keeps its own records
 * (prefix + what subscribers saw before the first change) and marks the prefix's entry dirty so
 * a prefix is recorded once per flush. A flush reads the current state and delivers only
 * prefixes whose state really differs (A→B→A within one batch is no change).
 */
export class ChangeStream {
  private count = 0;
  private readonly subscribers = new Set<RouteSubscriber>();

  constructor(
    private readonly tables: () => Iterable<LocRib>,
    private readonly all: AllSelections,
    /** Called when the first change becomes pending: the shell schedules a flush. */
    private readonly onPending?: () => void,
  ) {}

  /** A Loc-RIB recorded its first change since the last flush. */
  marked(): void {
    if (this.count++ === 0) this.onPending?.();
  }

  /** Prefixes with a pending record (an upper bound on what the next flush delivers). */
  get pendingCount(): number {
    let n = 0;
    for (const t of this.tables()) n += t.pendingRecords;
    return n;
  }

  /** Delivers every pending change in batches of at most batchSize; returns how many. */
  flush(batchSize = 1024): number {
    if (this.count === 0) return 0;
    this.count = 0;
    let batch: RouteChange[] = [];
    let delivered = 0;
    // Nobody listening (a speaker without a routing layer): settle the records, build nothing.
    const quiet = this.subscribers.size === 0;
    const add = (loc: LocRib, recorded: Slot, seen: Seen): void => {
      const slot = settle(loc, recorded, seen);
      if (slot === NOTHING) return;
      if (quiet) {
        delivered++;
        return;
      }
      batch.push(changeOf(loc, recorded, slot));
      if (batch.length >= batchSize) {
        this.deliver(batch);
        delivered += batch.length;
        batch = [];
      }
    };
    for (const loc of this.tables()) {
      if (loc.pendingRecords === 0) continue;
      const { slots, seen, fresh } = loc.takeRecords();
      for (let i = 0; i < slots.length; i++) add(loc, slots[i]!, seen[i]!);
      for (const chunk of fresh) {
        for (let i = 0; i < chunk.length; i++) add(loc, chunk[i]!, null);
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

const NOTHING = null;

/**
 * Settles one record: NOTHING when there is no change to deliver, else the prefix's current entry
 * (undefined: removed). `recorded` is the prefix's entry when the record was made; GONE means it
 * was replaced or removed since, so the prefix is looked up again.
 */
function settle(loc: LocRib, recorded: Slot, seen: Seen): Slot | undefined | typeof NOTHING {
  let slot: Slot | undefined = recorded;
  if ((slot.flags & GONE) !== 0) slot = loc.current(recorded);
  if (slot !== undefined) {
    // Not dirty: an earlier record of this flush already handled the prefix.
    if ((slot.flags & DIRTY) === 0) return NOTHING;
    slot.flags &= ~DIRTY;
  }
  if (sameSeen(seen, slot)) return NOTHING;
  return slot;
}

function changeOf(loc: LocRib, recorded: Slot, slot: Slot | undefined): RouteChange {
  const family = loc.family;
  const prefix = prefixOf(recorded);
  return slot === undefined ? { family, prefix, best: null, ecmp: [] } : { family, prefix, best: bestOf(slot), ecmp: ecmpOf(slot) };
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
