// nrd end to end with BFD (RFC 5880, 300 ms × 3) on its sessions with a BIRD top-of-rack router,
// routing.mode auto, BGP hold time 9 s. n1 and n2 also share an underlay router (link-cut.ts), so
// VXLAN between them survives a cut of n2's ToR link.
//   - A silent cut of n2's link (nftables drops every frame at the ToR: no reset, no NOTIFICATION)
//     takes both ends to VXLAN within 2 s, far below the hold time, and back to native after the
//     cut heals and the hold-down has run.
//   - kill -9 of nrd sends no BFD AdminDown: the ToR's BFD goes Down and BIRD with `bfd on` closes
//     the session despite graceful restart, withdrawing the node's CIDR (its peers move to VXLAN);
//     with `bfd graceful` (n3) BIRD keeps the routes as stale and nothing moves, no ping lost.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Fabric, RouteMonitor, isNrdRouteEvent, startPing, type FabricNode } from '../../lib/fabric.js';
import { addUnderlayRouter, cutTorLink, healTorLink, underlaySite } from '../../lib/link-cut.js';
import { sleep, waitFor } from '../../lib/wait.js';
import { pingMesh, waitPath } from './helpers.js';
import type { BfdSessionView } from '../../../daemon/bfd/types.js';

const HOLD_DOWN_S = 2;
const fabric = Fabric.use(after, {
  tag: 'e2ebfd',
  tors: 1,
  mode: 'auto',
  holdDown: HOLD_DOWN_S,
  holdTime: 9,
  bfd: true,
  start: false,
  nodes: [{ site: underlaySite(1) }, { site: underlaySite(2) }, { bfd: { graceful: true } }],
});
let n1: FabricNode;
let n2: FabricNode;
let n3: FabricNode;

before(async () => {
  await fabric.build();
  [n1, n2, n3] = fabric.nodes as [FabricNode, FabricNode, FabricNode];
  await addUnderlayRouter(fabric, [n1, n2]);
  for (const n of fabric.nodes) await n.start();
  await fabric.addPods();
  await fabric.waitSessions();
});

async function waitBfdUp(n: FabricNode): Promise<void> {
  await waitFor(
    async () => {
      const { sessions } = await n.api<{ sessions: BfdSessionView[] }>('/v1/bfd');
      return sessions.find((s) => s.peer === n.tor1Address)?.state === 'Up';
    },
    { timeoutMs: 20_000, intervalMs: 100, what: `${n.name}: BFD with ToR1 Up` },
  );
}

/** Restart n's nrd with SIGKILL and wait for its session to come back; returns n1's route events. */
async function killRestart(n: FabricNode, watcher: FabricNode): Promise<{ events: string[]; lost: number; sent: number }> {
  await waitBfdUp(n);
  await waitPath(watcher, n, 'native');
  const mon = new RouteMonitor(watcher.host);
  await mon.ready();
  const ping = startPing(watcher.pod!.host, n.pod!.ip, { intervalS: 0.01 });
  let events: string[] = [];
  try {
    await n.stop('SIGKILL');
    // Past the ToR's BFD detection time (900 ms) with a margin, before nrd is back.
    await sleep(2500);
    await n.start();
    await n.waitReady();
    await fabric.tors[0]!.bird.waitEstablished(n.protocol, 30_000);
    await waitPath(watcher, n, 'native', { timeoutMs: 30_000 });
    await sleep(1000);
  } finally {
    events = await mon.stop();
  }
  const counts = await ping.stop();
  return { events: events.filter((l) => isNrdRouteEvent(l, [n.cidr!])), lost: counts.lost, sent: counts.sent };
}

test('silent cut of a node\'s ToR link: BFD takes both ends to VXLAN within 2 s, back to native after the heal and hold-down', async () => {
  await waitBfdUp(n1);
  await waitBfdUp(n2);
  await waitPath(n1, n2, 'native', { gateways: [n1.tor1Address] });
  await waitPath(n2, n1, 'native', { gateways: [n2.tor1Address] });
  await pingMesh([n1, n2]);

  const ping = startPing(n1.pod!.host, n2.pod!.ip, { intervalS: 0.1 });
  let pingStopped = false;
  try {
    const cutAt = Date.now();
    await cutTorLink(fabric, n2);
    // The cut node (its own BFD Down) and the remote node (the ToR's BFD Down, then withdraw).
    await Promise.all([waitPath(n2, n1, 'vxlan', { timeoutMs: 10_000 }), waitPath(n1, n2, 'vxlan', { timeoutMs: 10_000 })]);
    const failoverMs = Date.now() - cutAt;
    assert.ok(failoverMs < 2000, `both ends on VXLAN ${failoverMs} ms after the cut (BGP hold time 9 s)`);
    const bgp = await n2.api<{ peers: Array<{ address: string; state: string }> }>('/v1/peers');
    assert.notEqual(bgp.peers.find((p) => p.address === n2.tor1Address)?.state, 'Established', 'n2 closed its session with ToR1');
    // Pods talk over the underlay router while the link stays cut.
    await waitFor(() => n1.pod!.host.ping(n2.pod!.ip), { timeoutMs: 5000, intervalMs: 100, what: 'ping over VXLAN' });
    await sleep(1000);
    const counts = await ping.stop();
    pingStopped = true;
    assert.ok(counts.received > 0, `ping during the cut: ${JSON.stringify(counts)}`);
    assert.ok(counts.lost <= 20, `ping every 100 ms lost ${counts.lost} of ${counts.sent}; failover after ${failoverMs} ms`);

    const healAt = Date.now();
    await healTorLink(fabric, n2);
    await fabric.tors[0]!.bird.waitEstablished(n2.protocol, 30_000);
    await waitBfdUp(n2);
    const seen = await waitPath(n1, n2, 'native', { gateways: [n1.tor1Address], timeoutMs: 30_000 });
    await waitPath(n2, n1, 'native', { gateways: [n2.tor1Address], timeoutMs: 30_000 });
    const since = typeof seen.api.since === 'number' ? seen.api.since : Date.parse(seen.api.since);
    assert.ok(since >= healAt + HOLD_DOWN_S * 1000 - 500, `native again ${since - healAt} ms after the heal, hold-down ${HOLD_DOWN_S} s`);
    await pingMesh([n1, n2]);
  } finally {
    await healTorLink(fabric, n2);
    if (!pingStopped) await ping.stop().catch(() => undefined);
  }
});

test('kill -9 with BIRD `bfd on`: the ToR\'s BFD goes Down and BIRD drops the session despite graceful restart (peers move to VXLAN)', async () => {
  const r = await killRestart(n2, n1);
  // The withdraw reaches n1: its route to n2 leaves native (to VXLAN over the underlay router).
  assert.ok(
    r.events.some((l) => l.includes('nrd.vxlan')),
    `n1 saw no move of ${n2.cidr} to VXLAN while n2's nrd was down:\n${r.events.join('\n')}`,
  );
});

test('kill -9 with BIRD `bfd graceful`: the routes stay (graceful restart), no route event on the peer, no ping lost', async () => {
  const r = await killRestart(n3, n1);
  assert.deepEqual(r.events, [], `route events for ${n3.cidr} on n1`);
  assert.equal(r.lost, 0, `ping n1 pod → n3 pod across the kill -9 and restart: lost ${r.lost} of ${r.sent}`);
});
