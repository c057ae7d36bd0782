// Hand-deleted neighbour and FDB entries on nrd's VXLAN device are restored promptly, by the
// RTNLGRP_NEIGH notification (RTM_DELNEIGH, AF_INET and AF_BRIDGE) — not by the periodic resync,
// which this test turns off. One node namespace with a peer on the underlay, routing mode vxlan,
// the real netlink port driven through the test agent; checked with iproute2 (`ip neigh`, `bridge fdb`).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { useTopology, type Host } from '../../lib/netns.js';
import { waitFor } from '../../lib/wait.js';
import { Agent } from '../kernel/agent-client.js';
import type { RemoteNode, RoutingOptions } from '../../../daemon/routing/types.js';
import type { KernelEvent } from '../../../daemon/kernel/types.js';

const topo = useTopology(after, 'rneigh');
let h: Host;
let agent: Agent;

const REMOTE: RemoteNode = { name: 'n2', underlay: '192.0.2.2', vtepMac: '02:00:00:00:00:02', cidrs: ['10.244.2.0/24'] };
const OPTS: RoutingOptions = {
  mode: 'vxlan',
  vxlan: { vni: 100, port: 4789, device: 'nrd-vx', mac: '02:00:00:00:00:01' },
  underlayInterface: 'eth0',
  ownCidrs: ['10.244.1.0/24'],
  holdDownMs: 1000,
};

async function neigh(): Promise<string[]> {
  const r = JSON.parse((await h.ip(['-j', 'neigh', 'show', 'dev', 'nrd-vx'])).stdout || '[]') as Array<Record<string, unknown>>;
  return r.map((n) => `${n.dst} ${n.lladdr} ${(n.state as string[] | undefined)?.join(',')}`);
}

async function fdb(): Promise<string[]> {
  const r = JSON.parse((await h.exec(['bridge', '-j', 'fdb', 'show', 'dev', 'nrd-vx'])).stdout || '[]') as Array<Record<string, unknown>>;
  return r.filter((e) => e.dst).map((e) => `${e.mac} ${e.dst} ${e.state}`);
}

test('set up: a node with the VXLAN device, FDB and neighbour of one remote node; periodic resync off', async () => {
  h = await topo.host('n');
  const peer = await topo.host('p');
  await topo.link(h, peer, { nameA: 'eth0', addrA: '192.0.2.1/24', addrB: '192.0.2.2/24' });
  agent = new Agent(h);
  // resyncIntervalMs 0: only kernel notifications can trigger a repair.
  await agent.call('router.start', [OPTS, 0]);
  await agent.call('router.setNodes', [[REMOTE], true]);
  await agent.call('router.settle');
  await agent.call('events.start');
  assert.deepEqual(await neigh(), ['10.244.2.0 02:00:00:00:00:02 PERMANENT']);
  assert.deepEqual(await fdb(), ['02:00:00:00:00:02 192.0.2.2 permanent']);
});

test('a neighbour deleted by hand is put back at once (RTM_DELNEIGH)', async () => {
  await h.ip(['neigh', 'del', '10.244.2.0', 'dev', 'nrd-vx']);
  const ev = await waitFor(async () => (await agent.call<KernelEvent[]>('events.take')).find((e) => e.kind === 'neigh' && e.op === 'del'), {
    what: 'RTM_DELNEIGH notification',
    timeoutMs: 3000,
  });
  assert.equal(ev.kind === 'neigh' && ev.neighbour.ip, '10.244.2.0');
  const back = await waitFor(async () => ((await neigh()).length ? await neigh() : undefined), { what: 'neighbour restored', timeoutMs: 3000 });
  assert.deepEqual(back, ['10.244.2.0 02:00:00:00:00:02 PERMANENT']);
});

test('an FDB entry deleted by hand is put back at once (RTM_DELNEIGH, AF_BRIDGE)', async () => {
  await agent.call('events.take');
  await h.exec(['bridge', 'fdb', 'del', '02:00:00:00:00:02', 'dev', 'nrd-vx', 'dst', '192.0.2.2', 'self']);
  const ev = await waitFor(async () => (await agent.call<KernelEvent[]>('events.take')).find((e) => e.kind === 'fdb' && e.op === 'del'), {
    what: 'AF_BRIDGE RTM_DELNEIGH notification',
    timeoutMs: 3000,
  });
  assert.equal(ev.kind === 'fdb' && ev.fdb.mac, '02:00:00:00:00:02');
  const back = await waitFor(async () => ((await fdb()).length ? await fdb() : undefined), { what: 'FDB entry restored', timeoutMs: 3000 });
  assert.deepEqual(back, ['02:00:00:00:00:02 192.0.2.2 permanent']);
});

test('a neighbour changed by hand (another MAC) is corrected; foreign neighbours elsewhere are left alone', async () => {
  await h.ip(['neigh', 'add', '192.0.2.99', 'lladdr', '02:00:00:00:00:99', 'dev', 'eth0', 'nud', 'permanent']);
  await h.ip(['neigh', 'replace', '10.244.2.0', 'lladdr', '02:00:00:00:00:77', 'dev', 'nrd-vx', 'nud', 'permanent']);
  await waitFor(async () => ((await neigh())[0]?.includes('02:00:00:00:00:02') ? true : undefined), { what: 'neighbour MAC corrected', timeoutMs: 3000 });
  const other = JSON.parse((await h.ip(['-j', 'neigh', 'show', 'dev', 'eth0'])).stdout) as Array<Record<string, unknown>>;
  assert.ok(other.some((n) => n.dst === '192.0.2.99'), 'a neighbour on another device is not nrd’s and stays');
});

test('stop the agent', async () => {
  await agent.stop();
});
