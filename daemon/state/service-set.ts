// The service collection as consumers get it (StateSubsystem.onServices), built so that one service
// change costs what that service costs, whatever the number of services:
//  - each record is one deeply frozen object (admission freezes it), replaced only when the value
//    at its etcd key changes; a new value equal to the old one keeps the old object;
//  - the tracker learns which keys changed from the reflector's change batches (no comparison of
//    the whole set), and builds a new frozen array of the same objects only when one did;
//  - each set it hands out records what changed since the set before it (serviceSetChanges): a
//    consumer that applied that previous set (the incremental planner) looks at those records only,
//    any other consumer still gets the whole set, level-triggered.
// Names are unique in a set: admission refuses a record whose name is not its key's.
import type { ServiceRecord } from './records.js';

/** A whole service set: frozen, in no particular order, names unique. */
export type ServiceSet = readonly ServiceRecord[];

/** Name → the record in the new set, or undefined for a service the new set no longer has. */
export type ServiceChanges = ReadonlyMap<string, ServiceRecord | undefined>;

/** Set → the set it was derived from and what changed between them (only the latest link is kept). */
const deltas = new WeakMap<ServiceSet, { base: ServiceSet; changes: ServiceChanges }>();

/**
 * What changed from `base` to `set`, when `set` was built by a tracker directly from `base`;
 * undefined otherwise (compare everything then).
 */
export function serviceSetChanges(set: ServiceSet, base: ServiceSet): ServiceChanges | undefined {
  const d = deltas.get(set);
  return d && d.base === base ? d.changes : undefined;
}

/** Records with the same frontend and backends, in the same order (identity short-circuits). */
export function sameService(a: ServiceRecord, b: ServiceRecord): boolean {
  if (a === b) return true;
  if (a.name !== b.name || a.vip !== b.vip || a.port !== b.port || a.protocol !== b.protocol || a.backends.length !== b.backends.length) return false;
  for (let i = 0; i < a.backends.length; i++) {
    const x = a.backends[i]!;
    const y = b.backends[i]!;
    if (x.ip !== y.ip || x.port !== y.port) return false;
  }
  return true;
}

/** Freezes the record, its backend list and each backend; returns it. */
export function freezeService(r: ServiceRecord): ServiceRecord {
  for (const b of r.backends) Object.freeze(b);
  Object.freeze(r.backends);
  return Object.freeze(r);
}

/** Where the tracker reads records: the services collection, keyed by etcd key. */
export interface ServiceSource {
  get(key: string): ServiceRecord | undefined;
  entries(): [string, ServiceRecord][];
}

export class ServiceSetTracker {
  /** The records of the last set handed out, by etcd key. */
  private readonly byKey = new Map<string, ServiceRecord>();
  /** Keys the source changed since then. */
  private readonly dirty = new Set<string>();
  /** The source is new (a restarted state layer): compare all of it once. */
  private resync = true;
  private last: ServiceSet | undefined;
  /** Records compared by the last next() (for tests and the bench: O(changed) unless resyncing). */
  lastExamined = 0;

  /** The last set handed out. */
  get current(): ServiceSet | undefined {
    return this.last;
  }

  /** Keys whose value changed in the source (from the reflector's change batches). */
  touch(keys: Iterable<string>): void {
    if (this.resync) return;
    for (const k of keys) this.dirty.add(k);
  }

  /** A new source (the state layer restarted): the next set compares all of it with the last. */
  reset(): void {
    this.resync = true;
    this.dirty.clear();
  }

  /**
   * The set the source holds now, when it differs from the last one handed out (undefined when it
   * does not). Records equal to those of the last set are the same objects.
   */
  next(source: ServiceSource): ServiceSet | undefined {
    const changes = new Map<string, ServiceRecord | undefined>();
    let examined = 0;
    const consider = (key: string, now: ServiceRecord | undefined): void => {
      examined++;
      const old = this.byKey.get(key);
      if (old === now || (old && now && sameService(old, now))) return;
      if (old) changes.set(old.name, undefined);
      if (now) {
        this.byKey.set(key, now);
        changes.set(now.name, now);
      } else this.byKey.delete(key);
    };
    if (this.resync || this.last === undefined) {
      const seen = new Set<string>();
      for (const [k, rec] of source.entries()) {
        seen.add(k);
        consider(k, rec);
      }
      for (const k of [...this.byKey.keys()]) if (!seen.has(k)) consider(k, undefined);
      this.resync = false;
    } else {
      for (const k of this.dirty) consider(k, source.get(k));
    }
    this.dirty.clear();
    this.lastExamined = examined;
    const first = this.last === undefined;
    if (!first && changes.size === 0) return undefined;
    const set: ServiceSet = Object.freeze([...this.byKey.values()]);
    if (this.last) {
      deltas.delete(this.last);
      deltas.set(set, { base: this.last, changes });
    }
    this.last = set;
    return set;
  }
}
