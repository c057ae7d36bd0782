// Self-test of the e2e fabric (test/lib/fabric.ts) without nrd: BIRD stands in for the node
// speaker (static pod CIDR, eBGP to both ToRs, kernel export), so a failing nrd e2e test can be
// told apart from a broken fabric. Checks the addressing, the ToRs' sessions and FIBs, etcd
// reachable from a node through ToR1, the pods' link-local gateway, and pod-to-pod pings.
import { test, before } from 'node:test';
import { after } from 'node:test';
import assert from 'node:assert/strict';
import { Fabric, routeGateways } from '../../lib/fabric.js';
import { waitFor } from '../../lib/wait.js';

const fabric = Fabric.use(after, {
  tag: 'e2efab',
  tors: 2,
  nodes: [
    { speaker: 'bird', podCIDR: '10.244.1.0/24' },
    { speaker: 'bird', podCIDR: '10.244.2.0/24' },
    { speaker: 'bird', podCIDR: '10.244.3.0/24', dualHomed: false },
  ],
});

before(async () => {
  await fabric.build();
  await fabric.waitSessions();
  await fabric.addPods();
});

test('addressing: p2p /29 links, default via ToR1, etcd reachable from the nodes', async () => {
  const [n1, , n3] = fabric.nodes;
  assert.equal(n1!.address, '192.0.2.10');
  assert.equal(n1!.tor1Address, '192.0.2.9');
  assert.deepEqual(n1!.tor2, { address: '198.51.100.10', torAddress: '198.51.100.9' });
  assert.equal(n3!.tor2, null);
  const def = (await n1!.kernelRoutes(['exact', 'default']))[0];
  assert.equal(def?.gateway, '192.0.2.9');
  assert.ok(await n3!.host.ping('192.0.2.2'), 'n3 reaches etcd through ToR1');
  const r = await n3!.host.exec(['etcdctl', '--endpoints=http://192.0.2.2:2379', '--command-timeout=3s', 'endpoint', 'health']);
  assert.match(r.stdout + r.stderr, /is healthy/);
});

test('ToRs learn every BGP node CIDR into their FIB; nodes learn the others', async () => {
  const [tor1, tor2] = fabric.tors;
  await waitFor(
    async () => {
      const rs = await tor1!.host.routes();
      return ['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24'].every((p) => rs.some((r) => r.dst === p));
    },
    { timeoutMs: 20_000, what: 'ToR1 FIB with three pod CIDRs' },
  );
  const t2 = await tor2!.host.routes();
  assert.ok(t2.some((r) => r.dst === '10.244.1.0/24'));
  const n1 = fabric.node('n1');
  const r3 = await waitFor(() => n1.kernelRoute('10.244.3.0/24'), { timeoutMs: 20_000, what: 'n1 route to n3' });
  // n3 is single-homed: only ToR1 has its CIDR.
  assert.deepEqual(routeGateways(r3), ['192.0.2.9']);
});

test('pods ping each other across nodes over native routes', async () => {
  const pods = fabric.nodes.map((n) => n.pod!);
  for (const a of pods) {
    for (const b of pods) {
      if (a === b) continue;
      await waitFor(() => a.host.ping(b.ip), { timeoutMs: 15_000, intervalMs: 200, what: `${a.ip} → ${b.ip}` });
    }
  }
});
