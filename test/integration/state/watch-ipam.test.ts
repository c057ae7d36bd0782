// Integration on a real etcd 3.4: compaction past a watcher's revision ends in the exact state
// without events for unchanged keys; endpoint create/delete cycles with the allocator aborted at
// random points (lost replies, abandoned operations, restarts) leak and duplicate no address.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startEtcd } from '../../lib/etcd.js';
import { EtcdStore } from '../../../daemon/state/etcd-store.js';
import { Reflector, type Change } from '../../../daemon/state/reflector.js';
import { EndpointIpam } from '../../../daemon/state/ipam.js';
import { Keys } from '../../../daemon/state/keys.js';
import { StoreError, type Store } from '../../../daemon/state/store.js';
import { until } from './helpers.js';

const CYCLES = 250;

test('compaction past a watcher: re-list, exact state, only real changes', async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  const store = new EtcdStore({ endpoints: etcd.endpoints });
  const writer = new EtcdStore({ endpoints: etcd.endpoints });
  t.after(() => Promise.all([store.close(), writer.close()]));
  for (let i = 0; i < 300; i++) await writer.put(`/cmp/k${i}`, `v${i}`);
  // Between the re-list and its watch: changes, then a compaction past the listing's revision.
  let race = false;
  const racy: Store = Object.create(store) as Store;
  racy.list = async (p: string) => {
    const res = await store.list(p);
    if (race) {
      race = false;
      await writer.put('/cmp/k1', 'changed');
      await writer.delete('/cmp/k2');
      await writer.put('/cmp/k3', 'v3'); // same value
      const rev = await writer.put('/cmp/new', 'x');
      etcd.etcdctl(['compact', String(rev)]);
    }
    return res;
  };
  const r = new Reflector<string>(racy, { name: 'cmp', prefix: '/cmp/', decode: (_k, v) => ({ ok: true, value: v }), backoff: { baseMs: 50, maxMs: 500 } });
  t.after(() => r.stop());
  const changes: Change<string>[] = [];
  r.onChange((c) => changes.push(...c));
  r.start();
  await r.whenSynced();
  assert.equal(changes.length, 300);
  changes.length = 0;
  race = true;
  r.kick();
  await until(() => r.get('/cmp/new') === 'x' && r.health().connected && r.health().lists >= 3, 15_000, 'resync after compaction');
  assert.match(r.health().lastError ?? '', /COMPACTED|compact/i);
  assert.deepEqual(changes.map((c) => `${c.type}:${c.key}`).sort(), ['delete:/cmp/k2', 'upsert:/cmp/k1', 'upsert:/cmp/new']);
  const listed = await writer.list('/cmp/');
  assert.deepEqual(new Map(r.entries()), new Map(listed.kvs.map((kv) => [kv.key, kv.value])));
});

/** A store that fails at random points: before sending, or after etcd applied (reply lost). */
function chaos(inner: Store, rnd: () => number): Store {
  const s: Store = Object.create(inner) as Store;
  s.txn = async (c, ok, ko) => {
    const x = rnd();
    if (x < 0.1) throw new StoreError('UNAVAILABLE', 'chaos: not sent', { maybeApplied: true });
    const res = await inner.txn(c, ok, ko);
    if (x > 0.9) throw new StoreError('UNAVAILABLE', 'chaos: reply lost', { maybeApplied: true });
    return res;
  };
  return s;
}

test(`${CYCLES} endpoint create/delete cycles with aborts: no leaked and no duplicate address`, async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  const inner = new EtcdStore({ endpoints: etcd.endpoints });
  t.after(() => inner.close());
  const keys = new Keys('/ipam');
  let seed = 42;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const netns = new Set<string>();
  const cidrs = ['10.244.9.0/28', 'fd00:244:0:9::/64']; // 13 IPv4 addresses: reuse is constant
  const mk = () => new EndpointIpam(chaos(inner, rnd), keys, 'n1', cidrs, { netnsExists: (p) => netns.has(p) });
  let ipam = mk();
  const live = new Map<string, string[]>();
  let restarts = 0;
  for (let i = 0; i < CYCLES; i++) {
    if (process.env.NRDT_DEBUG) console.error("cycle", i, live.size, restarts);
    const id = `ep${i}`;
    netns.add(`/ns/${id}`);
    const op = ipam.create({ id, netns: `/ns/${id}` });
    if (rnd() < 0.15) {
      // The "daemon" dies mid-create: the operation is abandoned, the workload goes away, and a
      // new allocator starts from etcd and garbage-collects.
      op.catch(() => undefined);
      netns.delete(`/ns/${id}`);
      await new Promise((r) => setTimeout(r, Math.floor(rnd() * 5)));
      ipam = mk();
      restarts++;
      for (;;) {
        try {
          await ipam.gc();
          break;
        } catch {
          /* chaos: retry */
        }
      }
      continue;
    }
    let rec;
    try {
      rec = await op;
    } catch {
      netns.delete(`/ns/${id}`);
      continue;
    }
    for (const [other, ips] of live) for (const ip of rec.ips) assert.ok(!ips.includes(ip), `${ip} given to ${id} while ${other} holds it`);
    live.set(id, rec.ips);
    // Keep a few around, delete the rest (sometimes the oldest).
    if (live.size > 6 || rnd() < 0.5) {
      const victim = rnd() < 0.5 ? id : [...live.keys()][0]!;
      for (;;) {
        try {
          await ipam.delete(victim);
          break;
        } catch {
          /* chaos: retry the delete (it re-reads first) */
        }
      }
      live.delete(victim);
      netns.delete(`/ns/${victim}`);
    }
  }
  for (;;) {
    try {
      await ipam.gc();
      break;
    } catch {
      /* chaos */
    }
  }
  // Count from etcd: every reservation names a live endpoint that lists it, and vice versa.
  const eps = (await inner.list(keys.nodeEndpoints('n1'))).kvs.map((kv) => JSON.parse(kv.value) as { id: string; ips: string[] });
  const res = (await inner.list(keys.nodeIps('n1'))).kvs.map((kv) => ({ ip: kv.key.slice(keys.nodeIps('n1').length), ep: JSON.parse(kv.value).endpoint as string }));
  assert.deepEqual(eps.map((e) => e.id).sort(), [...live.keys()].sort());
  const fromEps = eps.flatMap((e) => e.ips.map((ip) => `${ip}=${e.id}`)).sort();
  assert.deepEqual(res.map((r) => `${r.ip}=${r.ep}`).sort(), fromEps);
  assert.equal(new Set(eps.flatMap((e) => e.ips)).size, eps.length * 2);
  assert.ok(restarts > 10, `only ${restarts} restarts`);
});
