// Unit tests on the fake store of endpoint IPAM (atomic reserve, lost replies, GC), identities
// (CAS allocation, refcounts), the reclaim tracker (grace observed twice) and the lease keeper.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EndpointIpam, nextFree } from '../../../daemon/state/ipam.js';
import { IdentityAllocator } from '../../../daemon/state/identities.js';
import { ReclaimTracker, reclaimNode } from '../../../daemon/state/nodes.js';
import { LeaseKeeper } from '../../../daemon/state/lease-keeper.js';
import { Keys } from '../../../daemon/state/keys.js';
import { parseCidr } from '../../../daemon/state/ipnet.js';
import { FakeStore } from '../../lib/fake-store.js';

const keys = new Keys('/t');

test('nextFree is next-fit and skips used addresses', () => {
  const c = parseCidr('10.0.0.0/29');
  const used = new Set([c.addr + 1n, c.addr + 2n]);
  assert.equal(nextFree(c, used, -1n), 3n);
  assert.equal(nextFree(c, used, 6n), 3n); // wraps past the broadcast
  for (let i = 1n; i <= 6n; i++) used.add(c.addr + i);
  assert.equal(nextFree(c, used, 0n), null);
});

test('IPAM: distinct addresses, lost replies, idempotent create, atomic delete, GC', async () => {
  const store = new FakeStore();
  const netns = new Set<string>();
  const ipam = new EndpointIpam(store, keys, 'n1', ['10.244.1.0/24', 'fd00:244:0:1::/64'], { netnsExists: (p) => netns.has(p) });
  const recs = [];
  for (let i = 0; i < 30; i++) {
    netns.add(`/ns/${i}`);
    if (i % 7 === 3) store.injectFault('applied');
    if (i % 7 === 5) store.injectFault('notApplied');
    recs.push(await ipam.create({ id: `ep${i}`, netns: `/ns/${i}`, labels: { app: 'x' } }));
  }
  const all = recs.flatMap((r) => r.ips);
  assert.equal(new Set(all).size, 60);
  assert.equal(store.peekPrefix(keys.nodeIps('n1')).length, 60);
  assert.deepEqual(await ipam.create({ id: 'ep0', netns: '/ns/0' }), recs[0]);
  assert.equal(await ipam.delete('ep1'), true);
  assert.equal(await ipam.delete('ep1'), false);
  assert.equal(store.peekPrefix(keys.nodeIps('n1')).length, 58);
  // Workloads 2..9 vanish: GC removes their endpoints and addresses.
  for (let i = 2; i < 10; i++) netns.delete(`/ns/${i}`);
  const g = await ipam.gc();
  assert.equal(g.endpoints.length, 8);
  assert.equal(store.peekPrefix(keys.nodeEndpoints('n1')).length, 21);
  assert.equal(store.peekPrefix(keys.nodeIps('n1')).length, 42);
  // An orphan reservation (manual edit) is collected too.
  store.seed(keys.ip('n1', '10.244.1.250'), JSON.stringify({ node: 'n1', endpoint: 'ghost' }));
  assert.equal((await ipam.gc()).reservations.length, 1);
});

test('IPAM: a small CIDR runs out with a clear error', async () => {
  const store = new FakeStore();
  const ipam = new EndpointIpam(store, keys, 'n1', ['10.0.0.0/30'], { netnsExists: () => true });
  await ipam.create({ id: 'a', netns: '/x' });
  await ipam.create({ id: 'b', netns: '/x' });
  await assert.rejects(ipam.create({ id: 'c', netns: '/x' }), /no free address left in 10\.0\.0\.0\/30/);
});

test('identities: one id per label set across nodes, refcounted, reclaimed', async () => {
  const store = new FakeStore();
  const a = new IdentityAllocator(store, keys, 'na');
  const b = new IdentityAllocator(store, keys, 'nb');
  const [i1, i2] = await Promise.all([a.acquire({ app: 'web', env: 'p' }, 'e1'), b.acquire({ env: 'p', app: 'web' }, 'e2')]);
  assert.equal(i1, i2);
  assert.ok(i1 >= 256);
  const other = await a.acquire({ app: 'db' }, 'e3');
  assert.notEqual(other, i1);
  store.injectFault('applied');
  assert.equal(await a.acquire({ app: 'web', env: 'p' }, 'e4'), i1);
  await a.release(i1, 'e1');
  await a.release(i1, 'e4');
  assert.ok(store.peek(keys.identity(i1)), 'still referenced by nb');
  await b.release(i1, 'e2');
  assert.equal(store.peek(keys.identity(i1)), undefined);
  assert.equal(store.peekPrefix(keys.identityIndex).length, 1);
  // References of a node that no longer exists are collected.
  assert.deepEqual(await b.gc(new Set(['nb'])), [other]);
});

test('reclaim tracker: grace measured locally and observed twice', () => {
  const t = new ReclaimTracker(1000);
  const alive = new Set(['b']);
  assert.deepEqual(t.observe(0, ['a', 'b'], alive), []);
  assert.deepEqual(t.observe(999, ['a', 'b'], alive), []);
  assert.deepEqual(t.observe(1000, ['a', 'b'], alive), []); // past grace once
  assert.deepEqual(t.observe(1001, ['a', 'b'], alive), ['a']); // twice
  // Coming back resets the clock.
  assert.deepEqual(t.observe(1002, ['a'], new Set(['a'])), []);
  assert.deepEqual(t.observe(2500, ['a'], new Set()), []);
  assert.deepEqual(t.observe(3500, ['a'], new Set()), []);
  assert.deepEqual(t.observe(3600, ['a'], new Set()), ['a']);
});

test('reclaimNode refuses a live node and frees a dead one atomically', async () => {
  const store = new FakeStore();
  store.seed(keys.cidr('ipv4', '10.244.3.0/24'), JSON.stringify({ node: 'x', at: '' }));
  store.seed(keys.node('x'), '{}');
  store.seed(keys.endpoint('x', 'e'), '{}');
  store.seed(keys.ip('x', '10.244.3.1'), '{}');
  store.seed(keys.aliveKey('x'), '{}');
  await assert.rejects(reclaimNode(store, keys, 'x'), /is alive/);
  await store.delete(keys.aliveKey('x'));
  assert.deepEqual(await reclaimNode(store, keys, 'x'), ['10.244.3.0/24']);
  assert.equal(store.peekPrefix('/t/').length, 0);
});

test('lease keeper: lost lease is re-granted and keys re-asserted', async (t) => {
  const store = new FakeStore();
  const lk = new LeaseKeeper(store, 5, { backoff: { baseMs: 5, maxMs: 20 } });
  t.after(() => lk.stop());
  lk.own('/t/alive/n1', 'v');
  lk.start();
  const until = async (c: () => boolean): Promise<void> => {
    for (let i = 0; i < 400 && !c(); i++) await new Promise((r) => setTimeout(r, 5));
    assert.ok(c());
  };
  await until(() => lk.health().state === 'ok');
  const first = lk.leaseId!;
  assert.equal(store.peek('/t/alive/n1')!.lease, first);
  store.setDown(true);
  store.expireLease(first); // etcd forgot it while we could not reach it
  assert.equal(store.peek('/t/alive/n1'), undefined);
  await until(() => lk.health().retries >= 2);
  store.setDown(false);
  await until(() => lk.health().state === 'ok' && lk.leaseId !== first);
  assert.equal(store.peek('/t/alive/n1')!.lease, lk.leaseId);
  assert.equal(lk.health().grants, 2);
});
