// The route-event subscription survives a flood: 100k route writes multicast more notifications
// than any receive buffer holds. Before NETLINK_NO_ENOBUFS the npm `netlink` package turned the
// resulting ENOBUFS into an uncaught C++ exception (SIGABRT). Checks, in one namespace through the
// test agent: the process survives a 100k-route batch with a subscription open, the subscription
// still reports a later hand deletion, and a Router fed 100k BGP changes one by one (the incremental
// path) installs them all and puts back a route deleted by hand afterwards.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { useTopology, type Host } from '../../lib/netns.js';
import { waitFor } from '../../lib/wait.js';
import { Agent } from './agent-client.js';
import type { KernelEvent } from '../../../daemon/kernel/types.js';
import type { RoutingOptions } from '../../../daemon/routing/types.js';

const topo = useTopology(after, 'kovf');
const N = 100_000;

async function countProto196(h: Host): Promise<number> {
  const r = await h.ip(['-4', 'route', 'show', 'proto', '220']);
  return r.stdout.split('\n').filter((l) => l.trim()).length;
}

test('a 100k-route batch with a subscription open: the process survives, events keep coming', async () => {
  const h = await topo.host('a');
  const peer = await topo.host('b');
  await topo.link(h, peer, { nameA: 'eth0', addrA: '192.0.2.1/24', addrB: '192.0.2.2/24' });
  const agent = new Agent(h);
  try {
    await agent.call('events.start');
    assert.equal(await agent.call<number>('bulk.routes', [N, '192.0.2.2']), 0, 'every route applied');
    assert.equal(await countProto196(h), N);
    // Still alive and still subscribed: a hand deletion is reported.
    await agent.call('events.count');
    await h.ip(['route', 'del', '10.0.0.0/25', 'proto', '220']);
    const seen = await waitFor(
      async () => {
        const r = await agent.call<{ total: number; matching: KernelEvent[] }>('events.count', ['10.0.0.0/25']);
        return r.matching.find((e) => e.kind === 'route' && e.op === 'del');
      },
      { what: 'RTM_DELROUTE for the hand-deleted route', timeoutMs: 10_000 },
    );
    assert.ok(seen);
  } finally {
    await agent.stop();
  }
});

test('Router: 100k BGP changes one by one are all installed; a route deleted by hand afterwards is put back', async () => {
  const h = await topo.host('r');
  const peer = await topo.host('s');
  await topo.link(h, peer, { nameA: 'eth0', addrA: '192.0.2.1/24', addrB: '192.0.2.2/24' });
  const agent = new Agent(h);
  const opts: RoutingOptions = {
    mode: 'native',
    vxlan: { vni: 100, port: 4789, device: 'nrd-vx' },
    underlayInterface: 'eth0',
    ownCidrs: ['10.244.1.0/24'],
    holdDownMs: 1000,
  };
  try {
    // Periodic resync off: only notifications and the post-bulk resync can repair.
    await agent.call('router.start', [opts, 0]);
    await agent.call('router.setNodes', [[], true]);
    await agent.call('router.setBgp', [[], true]);
    await agent.call('router.bgpBulk', [N, '192.0.2.2']);
    await waitFor(async () => (await countProto196(h)) === N + 1, { what: `${N} BGP routes + the own CIDR in the FIB`, timeoutMs: 60_000, intervalMs: 500 });
    await h.ip(['route', 'del', '10.0.0.128/25', 'proto', '220']);
    await waitFor(async () => (await h.ip(['route', 'show', '10.0.0.128/25', 'proto', '220'])).stdout.includes('192.0.2.2'), {
      what: 'hand-deleted route put back',
      timeoutMs: 10_000,
    });
    await agent.call('router.stop');
  } finally {
    await agent.stop();
  }
});
