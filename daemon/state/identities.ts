// Cluster-wide numeric security identities, one per distinct label set: allocated with etcd CAS
// (an index key per label-set hash makes two nodes racing for one set agree on one id),
// reference-counted per node and endpoint, deleted when the last reference goes.
import { createHash } from 'node:crypto';
import { StateError } from './cidr-alloc.js';
import type { Keys } from './keys.js';
import { canonicalLabels, decodeIdentity, type IdentityRecord, type Labels } from './records.js';
import { absent, isStoreError, modIs, type KV, type Store } from './store.js';

/** Ids below this are reserved for well-known identities (host, world, …) as in Cilium. */
export const MIN_IDENTITY = 256;
export const MAX_IDENTITY = 0xffffff;

export function labelHash(l: Labels): string {
  return createHash('sha256').update(canonicalLabels(l)).digest('hex').slice(0, 32);
}

/** Smallest free id ≥ MIN_IDENTITY given the ids in use (pure). */
export function firstFreeId(used: Iterable<number>): number | null {
  const set = new Set(used);
  for (let id = MIN_IDENTITY; id <= MAX_IDENTITY; id++) if (!set.has(id)) return id;
  return null;
}

export function refCount(rec: IdentityRecord): number {
  return Object.values(rec.refs).reduce((a, ids) => a + ids.length, 0);
}

const MAX_ATTEMPTS = 16;

export class IdentityAllocator {
  constructor(
    private readonly store: Store,
    private readonly keys: Keys,
    private readonly node: string,
  ) {}

  private decode(kv: KV | null): IdentityRecord | null {
    return kv ? decodeIdentity(kv.value) : null;
  }

  /** Identity for `labels`, referenced by `endpoint` on this node. Idempotent. */
  async acquire(labels: Labels, endpoint: string): Promise<number> {
    const idxKey = this.keys.identityIndexKey(labelHash(labels));
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      try {
        const { kv: idx } = await this.store.get(idxKey);
        if (idx) {
          const id = Number(idx.value);
          const idKey = this.keys.identity(id);
          const { kv } = await this.store.get(idKey);
          const rec = this.decode(kv);
          if (!kv || !rec) {
            // Index without identity (a reclaim raced us): recreate it under the same guard.
            const fresh: IdentityRecord = { id, labels, refs: { [this.node]: [endpoint] } };
            const r = await this.store.txn([modIs(idxKey, idx.modRevision), absent(idKey)], [{ type: 'put', key: idKey, value: JSON.stringify(fresh) }]);
            if (r.succeeded) return id;
            continue;
          }
          const mine = rec.refs[this.node] ?? [];
          if (mine.includes(endpoint)) return id;
          rec.refs[this.node] = [...mine, endpoint].sort();
          const r = await this.store.txn([modIs(idKey, kv.modRevision)], [{ type: 'put', key: idKey, value: JSON.stringify(rec) }]);
          if (r.succeeded) return id;
          continue;
        }
        const listed = await this.store.list(this.keys.identities);
        const used = listed.kvs.map((k) => Number(k.key.slice(this.keys.identities.length))).filter(Number.isInteger);
        const id = firstFreeId(used);
        if (id === null) throw new StateError('POOL_EXHAUSTED', 'no numeric identity left');
        const idKey = this.keys.identity(id);
        const rec: IdentityRecord = { id, labels, refs: { [this.node]: [endpoint] } };
        const r = await this.store.txn(
          [absent(idxKey), absent(idKey)],
          [
            { type: 'put', key: idxKey, value: String(id) },
            { type: 'put', key: idKey, value: JSON.stringify(rec) },
          ],
        );
        if (r.succeeded) return id;
      } catch (e) {
        // Every step above is idempotent: after a lost reply simply go round again.
        if (!isStoreError(e) || !(e.maybeApplied || e.code === 'UNAVAILABLE') || attempt >= MAX_ATTEMPTS) throw e;
      }
    }
    throw new StateError('CIDR_CONTENTION', `identity for {${canonicalLabels(labels)}}: no agreement after ${MAX_ATTEMPTS} attempts`);
  }

  /** Drop `endpoint`'s reference (of this node, or of `node`); delete the identity at zero. */
  async release(id: number, endpoint: string, node = this.node): Promise<void> {
    const idKey = this.keys.identity(id);
    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      try {
        const { kv } = await this.store.get(idKey);
        const rec = this.decode(kv);
        if (!kv || !rec) return;
        const mine = rec.refs[node] ?? [];
        if (!mine.includes(endpoint)) return;
        const left = mine.filter((e) => e !== endpoint);
        if (left.length) rec.refs[node] = left;
        else delete rec.refs[node];
        const ops =
          refCount(rec) === 0
            ? [
                { type: 'delete' as const, key: idKey },
                { type: 'delete' as const, key: this.keys.identityIndexKey(labelHash(rec.labels)) },
              ]
            : [{ type: 'put' as const, key: idKey, value: JSON.stringify(rec) }];
        const r = await this.store.txn([modIs(idKey, kv.modRevision)], ops);
        if (r.succeeded) return;
      } catch (e) {
        if (!isStoreError(e) || !(e.maybeApplied || e.code === 'UNAVAILABLE') || attempt >= MAX_ATTEMPTS) throw e;
      }
    }
    throw new StateError('CIDR_CONTENTION', `identity ${id}: release did not settle after ${MAX_ATTEMPTS} attempts`);
  }

  /**
   * Drop references held by nodes that no longer exist (reclaimed or decommissioned) and by this
   * node's endpoints that no longer exist; delete identities left with none. Returns ids deleted.
   */
  async gc(liveNodes: ReadonlySet<string>, myEndpoints?: ReadonlySet<string>): Promise<number[]> {
    const listed = await this.store.list(this.keys.identities);
    const deleted: number[] = [];
    for (const kv of listed.kvs) {
      const rec = this.decode(kv);
      if (!rec) continue;
      let changed = false;
      for (const n of Object.keys(rec.refs)) {
        if (!liveNodes.has(n)) {
          delete rec.refs[n];
          changed = true;
        } else if (n === this.node && myEndpoints) {
          const keep = rec.refs[n]!.filter((e) => myEndpoints.has(e));
          if (keep.length !== rec.refs[n]!.length) {
            changed = true;
            if (keep.length) rec.refs[n] = keep;
            else delete rec.refs[n];
          }
        }
      }
      if (!changed && refCount(rec) > 0) continue;
      const zero = refCount(rec) === 0;
      const r = await this.store.txn(
        [modIs(kv.key, kv.modRevision)],
        zero
          ? [
              { type: 'delete', key: kv.key },
              { type: 'delete', key: this.keys.identityIndexKey(labelHash(rec.labels)) },
            ]
          : [{ type: 'put', key: kv.key, value: JSON.stringify(rec) }],
      );
      if (r.succeeded && zero) deleted.push(rec.id);
    }
    return deleted;
  }
}
