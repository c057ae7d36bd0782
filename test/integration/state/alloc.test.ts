// Integration: pod-CIDR allocation and record validation against a real etcd 3.4.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startEtcd, type EtcdHandle } from '../../lib/etcd.js';
import { EtcdStore } from '../../../daemon/state/etcd-store.js';
import { allocateNodeCidr, StateError } from '../../../daemon/state/cidr-alloc.js';
import { Keys } from '../../../daemon/state/keys.js';
import { ClusterState } from '../../../daemon/state/cluster-state.js';
import { silentLogger } from '../../../daemon/lib/log.js';

let etcd: EtcdHandle;
before(async () => {
  etcd = await startEtcd();
});
after(async () => {
  await etcd?.stop();
});

test('50 concurrent allocators on one pool: all distinct, retries bounded', async () => {
  const keys = new Keys('/alloc50');
  const stores = Array.from({ length: 10 }, () => new EtcdStore({ endpoints: etcd.endpoints }));
  try {
    const pool = { name: 'ipv4', cidr: '10.244.0.0/16', maskSize: 24 };
    const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => allocateNodeCidr(stores[i % 10]!, keys, pool, `node-${i}`)));
    assert.equal(new Set(rs.map((r) => r.cidr)).size, 50);
    const maxAttempts = Math.max(...rs.map((r) => r.attempts));
    assert.ok(maxAttempts <= 16, `max attempts ${maxAttempts}`);
    const listed = await stores[0]!.list(keys.cidrPool('ipv4'));
    assert.equal(listed.kvs.length, 50);
    const owners = listed.kvs.map((kv) => JSON.parse(kv.value).node as string);
    assert.equal(new Set(owners).size, 50);
    // Same again on a pool with exactly 50 slots (/26 … 64 would be too easy): 64 slots, 50 nodes.
    const tight = { name: 'tight', cidr: '10.250.0.0/18', maskSize: 24 };
    const ts = await Promise.all(Array.from({ length: 50 }, (_, i) => allocateNodeCidr(stores[i % 10]!, keys, tight, `node-${i}`)));
    assert.equal(new Set(ts.map((r) => r.cidr)).size, 50);
    // Exhaustion is a clear error, not a crash.
    const tiny = { name: 'tiny', cidr: '10.251.0.0/23', maskSize: 24 };
    await allocateNodeCidr(stores[0]!, keys, tiny, 'a');
    await allocateNodeCidr(stores[0]!, keys, tiny, 'b');
    await assert.rejects(allocateNodeCidr(stores[0]!, keys, tiny, 'c'), (e: unknown) => e instanceof StateError && e.code === 'POOL_EXHAUSTED');
  } finally {
    await Promise.all(stores.map((s) => s.close()));
  }
});

test('invalid service and policy input is refused with a reason and etcd is unchanged', async (t) => {
  const cs = new ClusterState({
    endpoints: etcd.endpoints,
    prefix: '/valid',
    node: { name: 'v1', address: '192.0.2.1' },
    pools: [{ name: 'ipv4', cidr: '10.244.0.0/16', maskSize: 24 }],
    log: silentLogger(),
  });
  await cs.start();
  t.after(() => cs.stop());
  await cs.whenReady();
  const good = await cs.setService({ name: 'web', vip: '10.96.0.10', port: 80, backends: [{ ip: '10.244.1.2' }] });
  assert.ok(good.ok);
  const before = etcd.etcdctl(['get', '--prefix', '/valid/services/', '-w', 'json']);
  const revBefore = JSON.parse(before).header.revision;
  const bad = await cs.setService({ name: 'web', vip: 'not-an-ip', port: 80 });
  assert.equal(bad.ok, false);
  assert.match(bad.ok ? '' : bad.reason, /service\.vip: "not-an-ip" is not an IP address/);
  const badPolicy = await cs.setPolicy({ name: 'p', selector: { app: 'db' }, ingress: [{ from: [{ cidr: '10.0.0.0/33' }] }] });
  assert.equal(badPolicy.ok, false);
  assert.match(badPolicy.ok ? '' : badPolicy.reason, /policy\.ingress\[0\]\.from\[0\]\.cidr: .*prefix length/);
  const after = JSON.parse(etcd.etcdctl(['get', '--prefix', '/valid/', '-w', 'json']));
  assert.equal(after.header.revision, revBefore, 'no write happened');
  assert.equal((await cs.listServices())[0]!.vip, '10.96.0.10');
  assert.deepEqual(await cs.listPolicies(), []);
});
