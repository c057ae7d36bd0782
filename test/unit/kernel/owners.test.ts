// Two owners of kernel objects over one port (the fake kernel): routing's Reconciler (protocol 220,
// nrd* VXLAN links) and the endpoints' EndpointKernelOwner (protocol 221, nrdv* veths). Each owner's
// objects survive every reconcile of the other, with an empty and with a full desired set; foreign
// (unmarked) objects are never touched; an owner deletes only its own stale objects once synced.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { silentLogger } from '../../../daemon/lib/log.js';
import { Reconciler, emptyDesired, type DesiredState } from '../../../daemon/kernel/reconciler.js';
import { EndpointKernelOwner, endpointDesired } from '../../../daemon/kernel/endpoint-owner.js';
import { ENDPOINT_MARK, ROUTING_MARK, linkOwnerByName, ownsLink } from '../../../daemon/kernel/owners.js';
import type { Route } from '../../../daemon/kernel/types.js';
import { FakeKernel, ManualClock } from '../../lib/fake-kernel.js';

function kernel(): FakeKernel {
  const k = new FakeKernel();
  k.addLink({ name: 'eth0', mtu: 1500, up: true, mac: '02:00:00:00:01:01' });
  k.addAddress('eth0', '192.0.2.1/24');
  // Host sides of two endpoints' veth pairs (the CNI plugin made them), and a foreign veth.
  k.addLink({ name: 'nrdv0a1', mtu: 1500, up: false, mac: '02:00:00:00:0a:01', kind: 'veth' });
  k.addLink({ name: 'nrdv0a2', mtu: 1500, up: true, mac: '02:00:00:00:0a:02', kind: 'veth' });
  k.addLink({ name: 'cali123', mtu: 1500, up: true, mac: '02:00:00:00:0c:01', kind: 'veth' });
  return k;
}

const ROUTING_FULL: DesiredState = {
  vxlan: { name: 'nrd.vxlan', vni: 1, port: 4789, local: '192.0.2.1', mtu: 1450, underlay: 'eth0' },
  fdb: [{ dev: 'nrd.vxlan', mac: '02:00:00:00:00:02', dst: '192.0.2.2' }],
  neighbours: [{ dev: 'nrd.vxlan', ip: '10.244.2.0', mac: '02:00:00:00:00:02' }],
  routes: [
    { dst: '10.244.2.0/24', type: 'unicast', nextHops: [{ gateway: '10.244.2.0', dev: 'nrd.vxlan', onlink: true }] },
    { dst: '10.244.1.0/24', type: 'blackhole', nextHops: [] },
  ],
};

const EPS = [
  { hostIf: 'nrdv0a1', addresses: ['10.244.1.5'], neighbours: [{ ip: '10.244.1.5', mac: '02:00:00:00:0e:05' }] },
  { hostIf: 'nrdv0a2', addresses: ['10.244.1.6/32', 'fd00:244:1::6'] },
];

const FOREIGN: Route = { family: 4, dst: '10.99.0.0/16', table: 254, protocol: 4, type: 'unicast', metric: 0, nextHops: [{ gateway: '192.0.2.254', ifindex: 2 }] };

function owners(k: FakeKernel) {
  const clock = new ManualClock();
  const routing = new Reconciler(k, { mark: ROUTING_MARK, log: silentLogger(), clock, resyncIntervalMs: 0 });
  const endpoints = new EndpointKernelOwner(k, { log: silentLogger(), clock, reconciler: { resyncIntervalMs: 0 } });
  routing.setSynced(true);
  return { routing, endpoints };
}

const snapshot = (k: FakeKernel, protocol: number) => ({
  routes: k.dumpRoutes(protocol).map((r) => `${r.dst} ${r.type} ${r.nextHops.map((h) => `${h.gateway ?? ''}@${h.ifindex ?? ''}`).join(',')}`),
});
const endpointObjects = (k: FakeKernel) => ({
  ...snapshot(k, ENDPOINT_MARK.protocol),
  links: ['nrdv0a1', 'nrdv0a2'].map((n) => `${n} ${k.byName(n)?.up}`),
  neigh: [...k.neighbours.values()].filter((n) => n.ifindex === k.byName('nrdv0a1')?.index).map((n) => `${n.ip} ${n.mac}`),
});
const routingObjects = (k: FakeKernel) => ({
  ...snapshot(k, ROUTING_MARK.protocol),
  vxlan: k.byName('nrd.vxlan')?.index,
  fdb: k.fdb.map((e) => `${e.mac} ${e.dst}`),
  neigh: [...k.neighbours.values()].filter((n) => n.ifindex === k.byName('nrd.vxlan')?.index).map((n) => `${n.ip} ${n.mac}`),
});

test('marks: protocols differ, the longest link prefix decides, each owner owns its own kind', () => {
  assert.notEqual(ROUTING_MARK.protocol, ENDPOINT_MARK.protocol);
  assert.equal(ROUTING_MARK.protocol, 220, 'routing keeps the protocol every earlier nrd wrote (upgrade adopts)');
  assert.equal(linkOwnerByName('nrdv0a1')?.owner, 'endpoints');
  assert.equal(linkOwnerByName('nrd.vxlan')?.owner, 'routing');
  assert.equal(linkOwnerByName('cali123'), null);
  assert.ok(!ownsLink(ROUTING_MARK, { name: 'nrdv0a1', kind: 'vxlan' }), 'an endpoint-prefixed name is never routing’s');
  assert.ok(!ownsLink(ROUTING_MARK, { name: 'nrd.vxlan', kind: 'veth' }));
  assert.ok(ownsLink(ENDPOINT_MARK, { name: 'nrdv0a1', kind: 'veth' }));
});

test('endpointDesired: host routes onto the veth, neighbours, bad specs refused without stopping the others', () => {
  const { desired, rejected } = endpointDesired([...EPS, { hostIf: 'eth0', addresses: ['10.244.1.9'] }, { hostIf: 'nrdv0a3', addresses: ['not-an-ip'] }]);
  assert.deepEqual(
    desired.routes.map((r) => `${r.dst} ${r.nextHops[0]!.dev}`),
    ['10.244.1.5/32 nrdv0a1', '10.244.1.6/32 nrdv0a2', 'fd00:244:1::6/128 nrdv0a2'],
  );
  assert.deepEqual(desired.links, [{ name: 'nrdv0a1' }, { name: 'nrdv0a2' }]);
  assert.deepEqual(desired.neighbours, [{ dev: 'nrdv0a1', ip: '10.244.1.5', mac: '02:00:00:00:0e:05' }]);
  assert.deepEqual(rejected.map((r) => r.hostIf), ['eth0', 'nrdv0a3']);
});

test('endpoint objects survive every routing reconcile (empty and full desired set), and routing’s survive the endpoints’', async () => {
  const k = kernel();
  k.injectRoute(FOREIGN);
  const { routing, endpoints } = owners(k);
  endpoints.setEndpoints(EPS, true);
  let rep = await endpoints.runNow();
  assert.deepEqual(rep.errors, []);
  const ep = endpointObjects(k);
  assert.deepEqual(ep.routes, ['10.244.1.5/32 unicast @3', '10.244.1.6/32 unicast @4', 'fd00:244:1::6/128 unicast @4']);
  assert.deepEqual(ep.links, ['nrdv0a1 true', 'nrdv0a2 true'], 'a kept veth is brought up');
  assert.deepEqual(ep.neigh, ['10.244.1.5 02:00:00:00:0e:05']);

  // Routing with a full desired set, then with an empty one (synced: it deletes everything of its own).
  routing.setDesired(ROUTING_FULL);
  rep = await routing.runOnce();
  assert.deepEqual(rep.errors, []);
  assert.deepEqual(endpointObjects(k), ep, 'full routing set: endpoint objects untouched');
  const rt = routingObjects(k);
  assert.equal(rt.routes.length, 2);
  routing.setDesired(emptyDesired());
  rep = await routing.runOnce();
  assert.equal(rep.routes.deleted, 2);
  assert.equal(rep.links.deleted, 1, 'routing deleted its own VXLAN device, nothing else');
  assert.deepEqual(endpointObjects(k), ep, 'empty routing set: endpoint objects untouched');
  assert.deepEqual(routingObjects(k).routes, []);

  // And the other way round: routing's objects survive the endpoints' reconciles.
  routing.setDesired(ROUTING_FULL);
  await routing.runOnce();
  const rt2 = routingObjects(k);
  await endpoints.runNow();
  assert.deepEqual(routingObjects(k), rt2, 'full endpoint set: routing objects untouched');
  endpoints.setEndpoints([], true);
  rep = await endpoints.runNow();
  assert.equal(rep.routes.deleted, 3);
  assert.equal(rep.links.deleted, 2, 'stale endpoint veths go once synced');
  assert.equal(rep.neighbours.deleted, 1, 'its neighbour goes before its veth');
  assert.deepEqual(endpointObjects(k).routes, []);
  assert.deepEqual(routingObjects(k), rt2, 'empty endpoint set: routing objects untouched');

  // Foreign objects were never touched by either owner.
  assert.ok(k.byName('cali123'), 'foreign veth kept');
  assert.ok(k.dumpRoutes(4).some((r) => r.dst === '10.99.0.0/16'), 'foreign route kept');
  assert.ok(!k.writes.some((w) => w.key.includes('10.99.0.0') || w.key === 'cali123'));
  routing.stop();
  endpoints.stop();
});

test('endpoint owner: nothing replaced or deleted before its inputs are synced; a route deleted by hand comes back', async () => {
  const k = kernel();
  const { endpoints } = owners(k);
  endpoints.setEndpoints(EPS, true);
  await endpoints.start();
  const before = k.writes.length;
  // A restart with a half-known set (not synced): the unknown endpoint's objects stay.
  endpoints.setEndpoints([EPS[0]!], false);
  let rep = await endpoints.runNow();
  assert.equal(k.writes.length, before, 'nothing written');
  assert.ok(rep.deferred > 0);
  endpoints.setEndpoints(EPS, true);
  await endpoints.runNow();
  k.removeRouteByHand('10.244.1.5/32');
  rep = await endpoints.runNow();
  assert.equal(rep.routes.added, 1);
  assert.ok(k.dumpRoutes(ENDPOINT_MARK.protocol).some((r) => r.dst === '10.244.1.5/32'));
  endpoints.stop();
});
