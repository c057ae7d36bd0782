// Two owners of kernel objects over one real netlink port in a namespace: routing (protocol 220,
// the nrd.vxlan device with its FDB and neighbour) and the endpoints (protocol 221, /32 and /128 host
// routes on nrdv* veths, a permanent neighbour). Each owner's objects survive every reconcile of the
// other, with an empty and with a full desired set; foreign objects (a static route, a foreign veth
// with a neighbour) are never touched — checked with iproute2's own view.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { useTopology, type Host } from '../../lib/netns.js';
import { Agent } from './agent-client.js';
import type { DesiredState, ReconcileReport } from '../../../daemon/kernel/reconciler.js';

const topo = useTopology(after, 'owners');
let h: Host;
let agent: Agent;

async function ipj(args: string[]): Promise<Array<Record<string, unknown>>> {
  const r = await h.ip(['-j', ...args]);
  return r.stdout.trim() ? (JSON.parse(r.stdout) as Array<Record<string, unknown>>) : [];
}

const ROUTING_FULL: DesiredState = {
  vxlan: { name: 'nrd.vxlan', vni: 7, port: 4789, local: '192.0.2.1', mtu: 1450, underlay: 'eth0' },
  fdb: [{ dev: 'nrd.vxlan', mac: '02:00:00:00:00:02', dst: '192.0.2.2' }],
  neighbours: [{ dev: 'nrd.vxlan', ip: '10.244.2.0', mac: '02:00:00:00:00:02' }],
  routes: [
    { dst: '10.244.2.0/24', type: 'unicast', nextHops: [{ gateway: '10.244.2.0', dev: 'nrd.vxlan', onlink: true }] },
    { dst: '10.244.1.0/24', type: 'blackhole', nextHops: [] },
  ],
};
const ROUTING_EMPTY: DesiredState = { fdb: [], neighbours: [], routes: [] };
const EPS = [
  { hostIf: 'nrdv0a1', addresses: ['10.244.1.5', 'fd00:244:1::5'], neighbours: [{ ip: '10.244.1.5', mac: '02:00:00:00:0e:05' }] },
  { hostIf: 'nrdv0a2', addresses: ['10.244.1.6'] },
];

/** What the endpoints own, as iproute2 sees it. */
async function endpointView(): Promise<string[]> {
  const r4 = await ipj(['route', 'show', 'proto', '221']);
  const r6 = await ipj(['-6', 'route', 'show', 'proto', '221']);
  const n = (await ipj(['neigh', 'show', 'nud', 'permanent'])).filter((x) => String(x.dev).startsWith('nrdv'));
  const links = await ipj(['link', 'show', 'type', 'veth']);
  return [
    ...[...r4, ...r6].map((r) => `route ${r.dst} dev ${r.dev}`),
    ...n.map((x) => `neigh ${x.dst} ${x.lladdr}`),
    ...links.map((l) => `link ${l.ifname} ${(l.flags as string[]).includes('UP') ? 'up' : 'down'}`),
  ].sort();
}

async function routingView(): Promise<string[]> {
  const r = await ipj(['route', 'show', 'proto', '220']);
  const vx = await ipj(['-d', 'link', 'show', 'type', 'vxlan']);
  const bridgeFdb = vx.length ? (JSON.parse((await h.exec(['bridge', '-j', 'fdb', 'show', 'dev', 'nrd.vxlan'])).stdout || '[]') as Array<Record<string, unknown>>) : [];
  const n = vx.length ? await ipj(['neigh', 'show', 'dev', 'nrd.vxlan', 'nud', 'permanent']) : [];
  return [
    ...r.map((x) => `route ${x.dst} ${x.type ?? 'unicast'}`),
    ...vx.map((l) => `link ${l.ifname}`),
    ...bridgeFdb.filter((e) => e.dst).map((e) => `fdb ${e.mac} ${e.dst}`),
    ...n.map((x) => `neigh ${x.dst} ${x.lladdr}`),
  ].sort();
}

async function foreignView(): Promise<string[]> {
  const r = await ipj(['route', 'show', 'proto', 'static']);
  const n = await ipj(['neigh', 'show', 'dev', 'cali1', 'nud', 'permanent']);
  return [...r.map((x) => `route ${x.dst}`), ...n.map((x) => `neigh ${x.dst}`), ...((await ipj(['link', 'show', 'cali1'])).map((l) => `link ${l.ifname}`))].sort();
}

test('set up: underlay, two endpoint veths, a foreign veth with a neighbour and a static route', async () => {
  h = await topo.host('n');
  const peer = await topo.host('p');
  await topo.link(h, peer, { nameA: 'eth0', addrA: '192.0.2.1/24', addrB: '192.0.2.2/24' });
  // The endpoint side of each pair would live in the endpoint's namespace; here it stays, unowned.
  for (const [a, b] of [['nrdv0a1', 'pod0a1'], ['nrdv0a2', 'pod0a2'], ['cali1', 'cali1p']]) await h.ip(['link', 'add', a!, 'type', 'veth', 'peer', 'name', b!]);
  await h.ip(['link', 'set', 'nrdv0a2', 'up']);
  await h.ip(['link', 'set', 'cali1', 'up']);
  await h.ip(['neigh', 'replace', '10.99.0.9', 'lladdr', '02:00:00:00:0c:09', 'dev', 'cali1', 'nud', 'permanent']);
  await h.ip(['route', 'add', '10.99.0.0/16', 'via', '192.0.2.2', 'proto', 'static']);
  agent = new Agent(h);
});

test('each owner’s objects survive every reconcile of the other; foreign objects are never touched', async () => {
  const foreign = await foreignView();
  assert.deepEqual(foreign, ['link cali1', 'neigh 10.99.0.9', 'route 10.99.0.0/16']);

  let rep = await agent.call<ReconcileReport>('owners.endpoints', [EPS, true]);
  assert.deepEqual(rep.errors, []);
  const ep = await endpointView();
  assert.deepEqual(ep, [
    'link cali1 up',
    'link cali1p down',
    'link eth0 up',
    'link nrdv0a1 up',
    'link nrdv0a2 up',
    'link pod0a1 down',
    'link pod0a2 down',
    'neigh 10.244.1.5 02:00:00:00:0e:05',
    'route 10.244.1.5 dev nrdv0a1',
    'route 10.244.1.6 dev nrdv0a2',
    'route fd00:244:1::5 dev nrdv0a1',
  ]);

  for (const desired of [ROUTING_FULL, ROUTING_EMPTY, ROUTING_FULL]) {
    rep = await agent.call<ReconcileReport>('owners.routing', [desired, true]);
    assert.deepEqual(rep.errors, []);
    assert.deepEqual(await endpointView(), ep, `endpoint objects after a routing reconcile with ${desired.routes.length} routes`);
    assert.deepEqual(await foreignView(), foreign);
  }
  const rt = await routingView();
  assert.deepEqual(rt, ['fdb 02:00:00:00:00:02 192.0.2.2', 'link nrd.vxlan', 'neigh 10.244.2.0 02:00:00:00:00:02', 'route 10.244.1.0/24 blackhole', 'route 10.244.2.0/24 unicast']);

  rep = await agent.call<ReconcileReport>('owners.endpoints', [EPS, true]);
  assert.equal(rep.routes.added + rep.routes.replaced + rep.routes.deleted, 0, 'a second endpoint pass writes nothing');
  assert.deepEqual(await routingView(), rt, 'routing objects after a full endpoint reconcile');
  rep = await agent.call<ReconcileReport>('owners.endpoints', [[], true]);
  assert.equal(rep.routes.deleted, 3);
  assert.equal(rep.links.deleted, 2, 'the two stale endpoint veths (never cali1)');
  assert.deepEqual(await routingView(), rt, 'routing objects after an empty endpoint reconcile');
  assert.deepEqual(await foreignView(), foreign);
  assert.deepEqual(await endpointView(), ['link cali1 up', 'link cali1p down', 'link eth0 up'], 'only the endpoint veths went');
});
