// Mark-and-sweep of a fresh etcd listing against what consumers already hold: after a re-list
// (compaction, disconnect) consumers see only keys that really appeared, changed or vanished.
import type { KV } from './store.js';

export interface SweepResult {
  /** Keys new or with a different value, in listing order. */
  upserts: KV[];
  /** Keys held before and absent from the listing, sorted. */
  deletes: string[];
}

/**
 * `held` maps key → value as consumers last saw it. Equality is on the value, not the revision:
 * a key re-asserted with the same content (a node re-putting its liveness after a lost lease)
 * is not a change anyone must act on.
 */
export function sweep(held: ReadonlyMap<string, string>, fresh: readonly KV[]): SweepResult {
  const upserts: KV[] = [];
  const seen = new Set<string>();
  for (const kv of fresh) {
    seen.add(kv.key);
    if (held.get(kv.key) !== kv.value) upserts.push(kv);
  }
  const deletes = [...held.keys()].filter((k) => !seen.has(k)).sort();
  return { upserts, deletes };
}
