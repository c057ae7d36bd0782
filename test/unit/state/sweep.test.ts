// Unit tests of mark-and-sweep (daemon/state/sweep.ts): after applying its result the held map
// equals the listing, and only keys whose value really changed are reported.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { sweep } from '../../../daemon/state/sweep.js';
import type { KV } from '../../../daemon/state/store.js';

const kv = (key: string, value: string, rev = 1): KV => ({ key, value, createRevision: rev, modRevision: rev, version: 1, lease: '0' });

test('sweep: unchanged values are silent even with new revisions', () => {
  const held = new Map([['a', '1'], ['b', '2'], ['c', '3']]);
  const r = sweep(held, [kv('a', '1', 99), kv('b', 'changed'), kv('d', 'new')]);
  assert.deepEqual(r.upserts.map((x) => x.key), ['b', 'd']);
  assert.deepEqual(r.deletes, ['c']);
});

test('sweep: applying the result reproduces the listing exactly (property)', () => {
  const entries = fc.dictionary(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g'), fc.constantFrom('1', '2', '3'));
  fc.assert(
    fc.property(entries, entries, (before, after) => {
      const held = new Map<string, string>(Object.entries(before));
      const fresh = Object.entries(after).map(([k, v]) => kv(k, v));
      const { upserts, deletes } = sweep(held, fresh);
      const next = new Map(held);
      for (const u of upserts) next.set(u.key, u.value);
      for (const d of deletes) next.delete(d);
      assert.deepEqual(Object.fromEntries([...next].sort()), Object.fromEntries(Object.entries(after).sort()));
      // Minimal: every reported key really differs.
      for (const u of upserts) assert.notEqual(held.get(u.key), u.value);
      for (const d of deletes) assert.ok(!(d in after));
    }),
  );
});
