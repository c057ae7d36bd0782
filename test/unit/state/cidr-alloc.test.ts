// Unit tests of pod-CIDR allocation (daemon/state/cidr-alloc.ts) on the fake store: seeded
// candidate order, concurrency, restart reuse, static CIDRs, exhaustion, lost replies.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { allocateNodeCidr, candidateOrder, StateError } from '../../../daemon/state/cidr-alloc.js';
import { Keys } from '../../../daemon/state/keys.js';
import { FakeStore } from '../../lib/fake-store.js';

const keys = new Keys('/t');
const v4 = { name: 'ipv4', cidr: '10.244.0.0/16', maskSize: 24 };

test('candidateOrder is a permutation seeded by the name (property)', () => {
  fc.assert(
    fc.property(fc.string({ minLength: 1, maxLength: 20 }), fc.integer({ min: 0, max: 10 }), (name, log2) => {
      const n = 1n << BigInt(log2);
      const seq = [...candidateOrder(name, n)];
      assert.equal(seq.length, Number(n));
      assert.equal(new Set(seq).size, Number(n));
      for (const i of seq) assert.ok(i >= 0n && i < n);
    }),
  );
  // Different nodes start in different places (almost always): 50 names, 256 slots.
  const starts = new Set(Array.from({ length: 50 }, (_, i) => candidateOrder(`node-${i}`, 256n).next().value));
  assert.ok(starts.size > 35, `starts collide too much: ${starts.size}`);
});

test('concurrent allocators get distinct CIDRs with bounded attempts', async () => {
  const store = new FakeStore();
  const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => allocateNodeCidr(store, keys, v4, `n${i}`)));
  assert.equal(new Set(rs.map((r) => r.cidr)).size, 50);
  for (const r of rs) assert.ok(r.attempts <= 16);
  assert.equal(store.peekPrefix(keys.cidrPool('ipv4')).length, 50);
});

test('restart reuses the CIDR only while the key names the node', async () => {
  const store = new FakeStore();
  const a = await allocateNodeCidr(store, keys, v4, 'a');
  const again = await allocateNodeCidr(store, keys, v4, 'a');
  assert.equal(again.cidr, a.cidr);
  assert.equal(again.reused, true);
  // Someone else now holds the key: a must not take it back.
  store.seed(keys.cidr('ipv4', a.cidr), JSON.stringify({ node: 'b', at: 'x' }));
  const third = await allocateNodeCidr(store, keys, v4, 'a');
  assert.notEqual(third.cidr, a.cidr);
  assert.equal(third.reused, false);
});

test('static CIDR is honoured, reserved, and a conflict is a clear error', async () => {
  const store = new FakeStore();
  const r = await allocateNodeCidr(store, keys, v4, 'a', { staticCidr: '10.244.7.0/24' });
  assert.equal(r.cidr, '10.244.7.0/24');
  assert.equal(JSON.parse(store.peek(keys.cidr('ipv4', '10.244.7.0/24'))!.value).static, true);
  await assert.rejects(allocateNodeCidr(store, keys, v4, 'b', { staticCidr: '10.244.7.0/24' }), (e: unknown) => e instanceof StateError && e.code === 'CIDR_CONFLICT' && /held by node a/.test(e.message));
  await assert.rejects(allocateNodeCidr(store, keys, v4, 'c', { staticCidr: '10.245.0.0/24' }), /not a \/24 inside pool/);
});

test('an exhausted pool is a clear error', async () => {
  const store = new FakeStore();
  const tiny = { name: 'ipv4', cidr: '10.0.0.0/30', maskSize: 31 };
  await allocateNodeCidr(store, keys, tiny, 'a');
  await allocateNodeCidr(store, keys, tiny, 'b');
  await assert.rejects(allocateNodeCidr(store, keys, tiny, 'c'), (e: unknown) => e instanceof StateError && e.code === 'POOL_EXHAUSTED' && /exhausted: all 2 \/31/.test(e.message));
});

test('a claim whose reply was lost is found by re-reading, not claimed twice', async () => {
  const store = new FakeStore();
  store.injectFault('applied');
  const r = await allocateNodeCidr(store, keys, v4, 'a');
  const mine = store.peekPrefix(keys.cidrPool('ipv4')).filter((kv) => JSON.parse(kv.value).node === 'a');
  assert.equal(mine.length, 1);
  assert.equal(keys.parseCidrKey(mine[0]!.key)!.cidr, r.cidr);
  store.injectFault('notApplied');
  const b = await allocateNodeCidr(store, keys, { name: 'ipv6', cidr: 'fd00:244::/48', maskSize: 64 }, 'a');
  assert.match(b.cidr, /^fd00:244:.*\/64$/);
  assert.equal(store.peekPrefix(keys.cidrPool('ipv6')).length, 1);
});
