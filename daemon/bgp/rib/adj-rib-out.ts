// Adj-RIB-Out of one peer (RFC 4271 §3.2): the routes we advertise to it after export policy,
// plus the not-yet-sent differences, grouped by identical attributes so the session can pack
// many prefixes into one UPDATE (RFC 4271 §9.2).
import type { FamilyKey, PathAttributes } from '../types.js';
import type { OutRoute } from '../policy/export.js';

export interface OutAnnounce {
  readonly family: FamilyKey;
  /** Interned: equal attributes and next hops share one object across peers and prefixes. */
  readonly attrs: PathAttributes;
  readonly nextHops: readonly string[];
  readonly prefixes: string[];
}

export interface OutWithdraw {
  readonly family: FamilyKey;
  readonly prefixes: string[];
}

export interface OutBatch {
  readonly announce: OutAnnounce[];
  readonly withdraw: OutWithdraw[];
}

export class AdjRibOut {
  private readonly routes = new Map<FamilyKey, Map<string, OutRoute>>();
  /** Prefixes changed since the last take, with the route the peer had then (null: none). */
  private pending = new Map<FamilyKey, Map<string, OutRoute | null>>();

  constructor(
    readonly peerId: string,
    /** Gives back the reference the Adj-RIB-Out held on a route. */
    private readonly release: (route: OutRoute) => void,
  ) {}

  /**
   * Sets what the peer should have for a prefix. `route` carries one reference that this
   * Adj-RIB-Out now owns. Returns true when the prefix became pending.
   */
  set(family: FamilyKey, prefix: string, route: OutRoute | null): boolean {
    let fam = this.routes.get(family);
    const cur = fam?.get(prefix) ?? null;
    if (cur === route) {
      if (route) this.release(route);
      return false;
    }
    if (!fam) this.routes.set(family, (fam = new Map()));
    if (route) fam.set(prefix, route);
    else fam.delete(prefix);
    let pend = this.pending.get(family);
    if (!pend) this.pending.set(family, (pend = new Map()));
    let added = false;
    if (!pend.has(prefix)) {
      pend.set(prefix, cur);
      added = true;
    }
    if (cur) this.release(cur);
    return added;
  }

  get(family: FamilyKey, prefix: string): OutRoute | undefined {
    return this.routes.get(family)?.get(prefix);
  }

  *entries(family: FamilyKey): IterableIterator<[string, OutRoute]> {
    const fam = this.routes.get(family);
    if (fam) yield* fam;
  }

  size(family: FamilyKey): number {
    return this.routes.get(family)?.size ?? 0;
  }

  get hasPending(): boolean {
    for (const p of this.pending.values()) if (p.size > 0) return true;
    return false;
  }

  /** The differences since the last take, grouped by attributes; clears them. */
  take(): OutBatch {
    const batch: OutBatch = { announce: [], withdraw: [] };
    const pending = this.pending;
    this.pending = new Map();
    for (const [family, prefixes] of pending) {
      const fam = this.routes.get(family);
      const groups = new Map<OutRoute, string[]>();
      const withdrawn: string[] = [];
      for (const [prefix, had] of prefixes) {
        const now = fam?.get(prefix) ?? null;
        if (now === had) continue;
        if (now === null) withdrawn.push(prefix);
        else {
          const g = groups.get(now);
          if (g) g.push(prefix);
          else groups.set(now, [prefix]);
        }
      }
      for (const [r, list] of groups) batch.announce.push({ family, attrs: r.attrs, nextHops: r.nextHops, prefixes: list });
      if (withdrawn.length > 0) batch.withdraw.push({ family, prefixes: withdrawn });
    }
    return batch;
  }

  /** Everything we advertise for a family (route refresh, RFC 2918/7313); clears its pending. */
  full(family: FamilyKey): OutBatch {
    this.pending.delete(family);
    const groups = new Map<OutRoute, string[]>();
    for (const [prefix, r] of this.entries(family)) {
      const g = groups.get(r);
      if (g) g.push(prefix);
      else groups.set(r, [prefix]);
    }
    const announce: OutAnnounce[] = [];
    for (const [r, list] of groups) announce.push({ family, attrs: r.attrs, nextHops: r.nextHops, prefixes: list });
    return { announce, withdraw: [] };
  }

  /** Drops everything (session down), giving back every reference. */
  clear(): void {
    for (const fam of this.routes.values()) for (const r of fam.values()) this.release(r);
    this.routes.clear();
    this.pending.clear();
  }
}
