// Direct-path liveness (routing.bfd) in the routing subsystem, against the fake kernel with a
// manual clock: the nodes a direct path reaches are reported (for their BFD sessions), a direct
// path reported down moves that node to VXLAN at once and leaves the others alone, reported up it
// comes back only after routing.failoverHoldDown, and a node that stops being direct is forgotten.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { loadConfigObject, type NrdConfig } from '../../../daemon/config/index.js';
import { silentLogger } from '../../../daemon/lib/log.js';
import { RoutingSubsystem } from '../../../daemon/routing/subsystem.js';
import { DIRECT_DOWN, choosePath } from '../../../daemon/routing/path.js';
import type { RemoteNode } from '../../../daemon/routing/types.js';
import type { DirectNode } from '../../../daemon/routing/direct-nodes.js';
import { NRD_PROTOCOL } from '../../../daemon/kernel/types.js';
import { FakeKernel, ManualClock } from '../../lib/fake-kernel.js';

const N2: RemoteNode = { name: 'n2', underlay: '192.0.2.2', vtepMac: '02:00:00:00:00:02', cidrs: ['10.244.2.0/24'] };
const N3: RemoteNode = { name: 'n3', underlay: '192.0.2.3', vtepMac: '02:00:00:00:00:03', cidrs: ['10.244.3.0/24'] };
const N4: RemoteNode = { name: 'n4', underlay: '203.0.113.4', vtepMac: '02:00:00:00:00:04', cidrs: ['10.244.4.0/24'] };

function config(): NrdConfig {
  const r = loadConfigObject(
    {
      node: { name: 'n1', address: '192.0.2.1', interface: 'eth0', podCIDRs: ['10.244.1.0/24'], stateDir: '/tmp/nrdt-unused' },
      cluster: { podCIDRs: ['10.244.0.0/16'] },
      routing: { mode: 'cross-subnet', failoverHoldDown: 2, bfd: { enabled: true } },
    },
    { env: {} },
  );
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

test('choosePath: a direct path reported down is no path; VXLAN takes over', () => {
  const i = { mode: 'cross-subnet' as const, underlay: '192.0.2.2', vxlanCapable: true, connected: ['192.0.2.0/24'] };
  assert.equal(choosePath(i).mode, 'direct');
  assert.deepEqual(choosePath({ ...i, directDown: true }), { mode: 'vxlan', nextHops: ['192.0.2.2'] });
  assert.equal(choosePath({ ...i, mode: 'auto', bgpNextHops: ['192.0.2.254'], directDown: true }).mode, 'native', 'BGP is not a direct path');
  DIRECT_DOWN.add('192.0.2.2');
  try {
    assert.equal(choosePath(i).mode, 'vxlan');
    assert.equal(choosePath({ ...i, directDown: false }).mode, 'direct', 'the explicit input wins');
  } finally {
    DIRECT_DOWN.delete('192.0.2.2');
  }
});

test('routing subsystem: direct nodes reported; down → VXLAN at once, up → direct after the hold-down; a node no longer direct is forgotten', async () => {
  const k = new FakeKernel();
  k.addLink({ name: 'eth0', mtu: 1500, up: true, mac: '02:00:00:00:01:01' });
  k.addAddress('eth0', '192.0.2.1/24');
  k.sysctls.set('net/ipv4/conf/nrd.vxlan/rp_filter', '0');
  const clock = new ManualClock(5_000);
  const sub = new RoutingSubsystem({ metrics: new Registry(), port: k, clock, reconciler: { resyncIntervalMs: 0 }, retryMs: 20 });
  const settle = async (): Promise<void> => {
    for (let i = 0; i < 3; i++) await Promise.resolve();
    clock.advance(20);
    await sub.router!.reconciler.runNow();
  };
  const via = (prefix: string): string => {
    const r = k.dumpRoutes(NRD_PROTOCOL).find((x) => x.dst === prefix);
    return r ? r.nextHops.map((h) => `${h.gateway} ${h.onlink ? 'onlink' : ''}`.trim()).join(',') : 'none';
  };
  const seen: DirectNode[][] = [];
  sub.onDirectNodes((n) => seen.push([...n]));
  sub.setOwnCidrs(['10.244.1.0/24']);
  sub.setNodes([N2, N3, N4], true);
  await sub.start({ config: config(), log: silentLogger(), ready: () => undefined });
  await settle();
  try {
    assert.deepEqual(seen.at(-1), [
      { name: 'n2', address: '192.0.2.2' },
      { name: 'n3', address: '192.0.2.3' },
    ]);
    assert.equal(via('10.244.2.0/24'), '192.0.2.2');
    clock.advance(10_000);
    const batches = k.batches.length;
    const evaluations = sub.router!.evaluations;
    sub.setDirectDown('192.0.2.2', true);
    await settle();
    assert.equal(via('10.244.2.0/24'), '10.244.2.0 onlink', 'n2 on VXLAN at once');
    // Only n2's CIDR was evaluated again, and nothing was withdrawn on the way.
    assert.equal(sub.router!.evaluations - evaluations, 1);
    assert.deepEqual(k.batches.slice(batches).filter((b) => b.call === 'deleteRoutes'), []);
    assert.equal(via('10.244.3.0/24'), '192.0.2.3', 'n3 untouched');
    assert.deepEqual((sub.status() as { directDown: string[] }).directDown, ['192.0.2.2']);
    sub.setDirectDown('192.0.2.2', false);
    await settle();
    assert.equal(via('10.244.2.0/24'), '10.244.2.0 onlink', 'failback waits for the hold-down');
    clock.advance(2_000);
    await settle();
    assert.equal(via('10.244.2.0/24'), '192.0.2.2', 'direct again after routing.failoverHoldDown');
    sub.setDirectDown('192.0.2.3', true);
    await settle();
    assert.equal(via('10.244.3.0/24'), '10.244.3.0 onlink');
    // n3 moves off the subnet: it is no longer a direct node, and nothing is down any more.
    sub.setNodes([N2, { ...N3, underlay: '203.0.113.3' }, N4], true);
    assert.deepEqual(seen.at(-1), [{ name: 'n2', address: '192.0.2.2' }]);
    assert.deepEqual((sub.status() as { directDown: string[] }).directDown, []);
    assert.equal(DIRECT_DOWN.size, 0);
  } finally {
    sub.stop();
  }
  assert.equal(DIRECT_DOWN.size, 0, 'stop forgets what this subsystem reported');
});
