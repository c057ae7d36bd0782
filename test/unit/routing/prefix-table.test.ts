// The routing layer's per-prefix table (daemon/routing/prefix-table.ts) against the model it
// replaces: two plain Maps (BGP next hops by prefix, path entries by prefix).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PrefixTable } from '../../../daemon/routing/prefix-table.js';
import { prefixKey, type PrefixKey } from '../../../daemon/lib/prefix-key.js';

const KEYS: PrefixKey[] = ['10.0.0.0/24', '10.0.1.0/24', '10.0.0.0/8', '10.0.1.16/28', '2001:db8::/64', '0.0.0.0/0'].map(prefixKey);
const HOPS: ReadonlyArray<readonly string[]> = [['192.0.2.1'], ['192.0.2.1', '192.0.2.2'], ['198.51.100.1']];
const ENTRIES = [{ e: 1 }, { e: 2 }, { e: 3 }];

const sorted = <V>(m: Iterable<[PrefixKey, V]>): Array<[string, V]> =>
  [...m].map(([k, v]) => [String(k), v] as [string, V]).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));

test('property: PrefixTable holds what two Maps (next hops, entries) hold, through sets, clears and re-interning', () => {
  const op = fc.oneof(
    fc.record({ kind: fc.constant('hops' as const), k: fc.integer({ min: 0, max: KEYS.length - 1 }), v: fc.integer({ min: -1, max: HOPS.length - 1 }) }),
    fc.record({ kind: fc.constant('entry' as const), k: fc.integer({ min: 0, max: KEYS.length - 1 }), v: fc.integer({ min: -1, max: ENTRIES.length - 1 }) }),
    fc.record({ kind: fc.constant('clearHops' as const) }),
    fc.record({ kind: fc.constant('remap' as const) }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const t = new PrefixTable<{ e: number }>();
      const hops = new Map<PrefixKey, readonly string[]>();
      const entries = new Map<PrefixKey, { e: number }>();
      for (const o of ops) {
        if (o.kind === 'hops') {
          const k = KEYS[o.k]!;
          const h = o.v < 0 ? undefined : HOPS[o.v]!;
          t.setHops(k, h);
          if (h) hops.set(k, h);
          else hops.delete(k);
        } else if (o.kind === 'entry') {
          const k = KEYS[o.k]!;
          const e = o.v < 0 ? undefined : ENTRIES[o.v]!;
          t.setEntry(k, e);
          if (e) entries.set(k, e);
          else entries.delete(k);
        } else if (o.kind === 'clearHops') {
          t.clearHops();
          hops.clear();
        } else {
          // Re-interning gives equal lists that are new objects.
          t.mapHops((h) => [...h]);
          for (const [k, h] of hops) hops.set(k, [...h]);
        }
        for (const k of KEYS) {
          assert.deepEqual(t.hops(k), hops.get(k));
          assert.equal(t.entry(k), entries.get(k));
        }
        assert.equal(t.hopsSize, hops.size);
        assert.equal(t.entrySize, entries.size);
      }
      assert.deepEqual(sorted([...t.hopsKeys()].map((k) => [k, t.hops(k)] as [PrefixKey, readonly string[] | undefined])), sorted(hops));
      assert.deepEqual(sorted(t.entries()), sorted(entries));
    }),
    { numRuns: 500 },
  );
});

test('prefixes on the same next hops and entry share one slot object, in any order', () => {
  const t = new PrefixTable<{ e: number }>();
  const keys = Array.from({ length: 1000 }, (_, i) => prefixKey(`10.${i >> 8}.${i & 255}.0/24`));
  keys.forEach((k, i) => {
    t.setHops(k, HOPS[i % 2]!);
    t.setEntry(k, ENTRIES[i % 3]!);
  });
  const slots = new Set(keys.map((k) => t.slot(k)));
  assert.equal(slots.size, 6, 'one slot per (next hops, entry) pair');
});
