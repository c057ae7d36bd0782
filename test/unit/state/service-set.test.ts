// The service set the state layer hands out (service-set.ts): records stay the same frozen objects
// while their etcd value does, a new set is built only when a key changed and from those keys only,
// and the incremental planner fed those sets looks at the changed records alone — while staying
// equal to a planner fed plain copies of every set (the level-triggered contract), also when it
// skips sets (coalesced applies) or gets a set from elsewhere.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { admitService } from '../../../daemon/state/admission.js';
import { Keys } from '../../../daemon/state/keys.js';
import type { ServiceRecord } from '../../../daemon/state/records.js';
import { type ServiceSet, ServiceSetTracker, serviceSetChanges } from '../../../daemon/state/service-set.js';
import { IncrementalPlanner } from '../../../daemon/services/incremental.js';
import { planContents, rng } from '../services/service-model.js';

const K = new Keys('/nrd/v1');
const json = (i: number, backends = 2, port = 8080): string => JSON.stringify({
  name: `svc-${i}`, vip: `10.96.${i >> 8}.${i & 255}`, port: 80,
  backends: Array.from({ length: backends }, (_, b) => ({ ip: `10.244.${b}.${i & 255}`, port })),
});

/** A services collection as the reflector keeps it: key → admitted (frozen) record. */
class Source {
  readonly view = new Map<string, ServiceRecord>();
  put(i: number, text = json(i)): string {
    const key = K.service(`svc-${i}`);
    const a = admitService(key, text);
    if (!a.ok) throw new Error(a.message);
    this.view.set(key, a.value);
    return key;
  }
  del(i: number): string {
    const key = K.service(`svc-${i}`);
    this.view.delete(key);
    return key;
  }
  get(key: string): ServiceRecord | undefined {
    return this.view.get(key);
  }
  entries(): [string, ServiceRecord][] {
    return [...this.view.entries()];
  }
}

const byName = (set: ServiceSet): Map<string, ServiceRecord> => new Map(set.map((r) => [r.name, r]));
const opts = { lbAlgorithm: 'maglev' as const, maglevTableSize: 31 };

describe('service set', () => {
  it('admission freezes a record deeply and refuses one whose name is not its key', () => {
    const a = admitService(K.service('svc-1'), json(1));
    assert.ok(a.ok);
    assert.ok(Object.isFrozen(a.value) && Object.isFrozen(a.value.backends) && Object.isFrozen(a.value.backends[0]));
    assert.throws(() => (a.value.backends as { ip: string; port: number }[]).push({ ip: '10.244.9.9', port: 1 }), TypeError);
    const other = admitService(K.service('svc-2'), json(1));
    assert.deepEqual(other.ok ? 'ok' : other.reason, 'bad_name');
  });

  it('an unchanged record keeps its identity; a set is built from the changed keys only, and only when one changed', () => {
    const src = new Source();
    for (let i = 0; i < 1000; i++) src.put(i);
    const t = new ServiceSetTracker();
    const s1 = t.next(src)!;
    assert.equal(s1.length, 1000);
    assert.ok(Object.isFrozen(s1));
    assert.equal(t.lastExamined, 1000, 'the first set compares the listing');
    const before = byName(s1);

    // One service changes: one record compared, one new object, the 999 others the same objects.
    t.touch([src.put(7, json(7, 3))]);
    const s2 = t.next(src)!;
    assert.equal(t.lastExamined, 1);
    const after = byName(s2);
    assert.equal(after.size, 1000);
    let same = 0;
    for (const [n, r] of after) if (before.get(n) === r) same++;
    assert.equal(same, 999);
    assert.equal(after.get('svc-7')!.backends.length, 3);
    assert.deepEqual([...serviceSetChanges(s2, s1)!.keys()], ['svc-7']);
    assert.equal(serviceSetChanges(s2, s2), undefined, 'a delta is only from the set it was built on');

    // A new value equal to the old one (other field order), or no change at all: no new set.
    const reordered = JSON.stringify({ backends: JSON.parse(json(9)).backends, port: 80, vip: '10.96.0.9', name: 'svc-9' });
    t.touch([src.put(9, reordered)]);
    assert.equal(t.next(src), undefined);
    assert.equal(t.next(src), undefined);

    // Add and remove: the delta names both, the removed one as undefined.
    t.touch([src.put(1000), src.del(3)]);
    const s3 = t.next(src)!;
    assert.equal(s3.length, 1000);
    const d = serviceSetChanges(s3, s2)!;
    assert.deepEqual([...d.entries()].map(([n, r]) => [n, r?.name]), [['svc-1000', 'svc-1000'], ['svc-3', undefined]]);
    assert.equal(serviceSetChanges(s2, s1), undefined, 'older links are dropped (no chain of old sets kept alive)');

    // A new source (restarted state layer) with new objects of equal content: compared whole once,
    // identity kept, nothing to hand out.
    const fresh = new Source();
    for (const r of s3) fresh.put(Number(r.name.slice(4)), r.name === 'svc-7' ? json(7, 3) : json(Number(r.name.slice(4))));
    t.reset();
    assert.equal(t.next(fresh), undefined);
    assert.equal(t.lastExamined, 1000);
    fresh.put(5, json(5, 1));
    fresh.del(6);
    t.reset();
    const s4 = t.next(fresh)!;
    assert.deepEqual([...serviceSetChanges(s4, s3)!.keys()].sort(), ['svc-5', 'svc-6']);
    const prev = byName(s3);
    for (const r of s4) if (r.name !== 'svc-5') assert.equal(r, prev.get(r.name), `${r.name} keeps its object`);
  });

  it('a change to one service among 2000 makes the planner look at and replan exactly that one', () => {
    const src = new Source();
    for (let i = 0; i < 2000; i++) src.put(i);
    const t = new ServiceSetTracker();
    const p = new IncrementalPlanner();
    p.update({ services: t.next(src)!, ...opts });
    assert.deepEqual(p.lastUpdate, { examined: 2000, replanned: 2000 });
    t.touch([src.put(42, json(42, 4))]);
    const ops = p.update({ services: t.next(src)!, ...opts });
    assert.deepEqual(p.lastUpdate, { examined: 1, replanned: 1 });
    assert.ok(ops.length > 0 && ops.length <= 8, `${ops.length} ops`);
    t.touch([src.del(43)]);
    p.update({ services: t.next(src)!, ...opts });
    assert.deepEqual(p.lastUpdate, { examined: 1, replanned: 1 });
    // The same set again (a retry, an option change): nothing looked at.
    p.update({ services: t.current!, ...opts, maglevTableSize: 37 });
    assert.deepEqual(p.lastUpdate, { examined: 0, replanned: 0 });
    // A plain (mutable) copy gets the whole comparison: its content could have changed in place.
    p.update({ services: [...t.current!], ...opts });
    assert.deepEqual(p.lastUpdate, { examined: 1999, replanned: 0 });
  });

  for (const seed of [1, 2, 3, 4]) {
    it(`a planner fed the sets equals one fed plain copies, skipped sets and foreign sets included (seed ${seed})`, () => {
      const r = rng(seed);
      const src = new Source();
      const t = new ServiceSetTracker();
      const fast = new IncrementalPlanner();
      const full = new IncrementalPlanner();
      let last: ServiceSet | undefined;
      for (let step = 0; step < 300; step++) {
        const keys: string[] = [];
        for (let n = 1 + Math.floor(r() * 3); n > 0; n--) {
          const i = Math.floor(r() * 40);
          // Same VIPs for some: conflicts (first by name wins) move with the changes.
          const text = r() < 0.3 ? JSON.stringify({ ...JSON.parse(json(i, 1 + Math.floor(r() * 3))), vip: '10.96.9.9' }) : json(i, 1 + Math.floor(r() * 4), 8080 + Math.floor(r() * 2));
          keys.push(r() < 0.25 ? src.del(i) : src.put(i, text));
        }
        t.touch(keys);
        if (r() < 0.1) t.reset();
        const set = t.next(src) ?? t.current!;
        last = set;
        // Sometimes the consumer misses sets (coalesced), sometimes it gets a copy from elsewhere.
        const roll = r();
        if (roll < 0.2) continue;
        const input = roll < 0.3 ? Object.freeze([...set]) : set;
        fast.update({ services: input, ...opts });
        full.update({ services: [...set], ...opts });
        assert.deepEqual(planContents(fast.plan), planContents(full.plan), `step ${step}`);
        assert.deepEqual(fast.plan.conflicts, full.plan.conflicts, `step ${step}: conflicts`);
      }
      fast.update({ services: last!, ...opts });
      full.update({ services: [...last!], ...opts });
      assert.deepEqual(planContents(fast.plan), planContents(full.plan));
    });
  }
});
