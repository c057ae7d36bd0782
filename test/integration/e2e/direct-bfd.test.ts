// nrd end to end with routing.bfd: four nodes on one L2 segment of ToR1 in routing.mode
// cross-subnet, each pair reaching the other directly (host-gw, no BGP). n1 and n2 run
// routing.bfd (100 ms × 3), n3 and n4 do not. The test breaks the direct path of both pairs at once
// and silently: ToR1's bridge drops every IPv4 frame between the pair's ports except VXLAN (UDP
// 4789) — BFD, pod traffic and all, with no carrier change and ARP intact — so VXLAN still has a
// path over the same segment. n1 and n2 move to VXLAN within a second (BFD Down); n3 and n4 keep
// their dead direct route (nothing tells them). After the cut is lifted n1 and n2 come back to
// the direct path once BFD is Up and the failback hold-down (2 s) has passed.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Fabric, NRDCTL, VXLAN_DEVICE, routeDevs, type FabricNode } from '../../lib/fabric.js';
import { run } from '../../lib/proc.js';
import { sleep, waitFor } from '../../lib/wait.js';
import { waitPath } from './helpers.js';
import type { BfdSessionView } from '../../../daemon/bfd/types.js';

const BFD = { enabled: true, minTx: 100, minRx: 100, multiplier: 3 };
const HOLD_DOWN_S = 2;

const fabric = Fabric.use(after, {
  tag: 'e2edbfd',
  tors: 1,
  mode: 'cross-subnet',
  holdDown: HOLD_DOWN_S,
  nodes: [
    { segment: true, bgp: false, site: { routing: { bfd: BFD } } },
    { segment: true, bgp: false, site: { routing: { bfd: BFD } } },
    { segment: true, bgp: false },
    { segment: true, bgp: false },
  ],
});

const table = (a: FabricNode, b: FabricNode): string => `nrdtdirect_${a.name}${b.name}`;

/** ToR1's bridge drops IPv4 between a's and b's segment ports unless it is VXLAN (ARP passes). */
async function cutDirect(a: FabricNode, b: FabricNode): Promise<void> {
  const t = table(a, b);
  const ports = `{ "seg${a.index}", "seg${b.index}" }`;
  await fabric.tors[0]!.host.exec([
    'nft',
    [
      `add table bridge ${t}`,
      `add chain bridge ${t} cutfw { type filter hook forward priority -500 ; }`,
      `add rule bridge ${t} cutfw iifname ${ports} oifname ${ports} ether type ip udp dport 4789 accept`,
      `add rule bridge ${t} cutfw iifname ${ports} oifname ${ports} ether type ip drop`,
    ].join('; '),
  ]);
}

async function healDirect(a: FabricNode, b: FabricNode): Promise<void> {
  await fabric.tors[0]!.host.exec(['nft', 'delete', 'table', 'bridge', table(a, b)], { allowFailure: true });
}

async function onVxlan(n: FabricNode, remote: FabricNode): Promise<boolean> {
  const r = await n.kernelRoute(remote.cidr!);
  return !!r && routeDevs(r).includes(VXLAN_DEVICE);
}

async function pings(from: FabricNode, to: FabricNode): Promise<boolean> {
  const r = await from.pod!.host.exec(['ping', '-c', '1', '-W', '1', to.pod!.ip], { allowFailure: true });
  return r.code === 0;
}

before(async () => {
  await fabric.build();
  await fabric.addPods();
});

test('routing.bfd: a silent cut of the direct path moves the node to VXLAN in < 1 s, and back after the hold-down; without it the cut goes unnoticed', async () => {
  const [n1, n2, n3, n4] = fabric.nodes as [FabricNode, FabricNode, FabricNode, FabricNode];
  for (const [a, b] of [[n1, n2], [n2, n1], [n3, n4], [n4, n3]] as const) await waitPath(a, b, 'direct', { gateways: [b.address] });
  // n1's sessions to n2 come Up (both run routing.bfd); those to n3 and n4 never do (they do not).
  const session = async (n: FabricNode, peer: FabricNode): Promise<BfdSessionView | undefined> =>
    (await n.api<{ sessions: BfdSessionView[] }>('/v1/bfd')).sessions.find((s) => s.peer === peer.address);
  await waitFor(async () => (await session(n1, n2))?.state === 'Up' && (await session(n2, n1))?.state === 'Up', { timeoutMs: 20_000, what: 'n1 ↔ n2 BFD Up' });
  const s12 = (await session(n1, n2))!;
  assert.deepEqual(s12.purposes, ['node']);
  assert.equal(s12.node, n2.name);
  assert.equal(s12.multihop, false);
  assert.equal(s12.detectionTimeMs, 300);
  assert.notEqual((await session(n1, n3))?.state, 'Up', 'n3 runs no BFD');
  const shown = await run([process.execPath, NRDCTL, '--socket', n1.socket, 'bfd']);
  assert.match(shown.stdout, new RegExp(`${n2.address.replace(/\./g, '\\.')}\\s+node\\s+${n2.name}\\s+single\\s+Up`));
  assert.ok(await pings(n1, n2));

  const t0 = performance.now();
  await Promise.all([cutDirect(n1, n2), cutDirect(n3, n4)]);
  let failover: number[] = [];
  try {
    await waitFor(async () => (await onVxlan(n1, n2)) && (await onVxlan(n2, n1)), { timeoutMs: 10_000, intervalMs: 10, what: 'n1 and n2 on VXLAN after the cut' });
    const both = performance.now() - t0;
    failover = [both];
    console.log(`# direct path cut → both ends on VXLAN after ${both.toFixed(0)} ms (BFD ${BFD.minTx} ms × ${BFD.multiplier})`);
    assert.ok(both < 1000, `VXLAN after ${both.toFixed(0)} ms`);
    assert.equal((await session(n1, n2))?.state, 'Down');
    assert.ok(await pings(n1, n2), 'n1 → n2 over VXLAN while the direct path is cut');
    // Without routing.bfd nothing notices: n3 keeps its dead direct route to n4.
    await sleep(1500);
    for (const [a, b] of [[n3, n4], [n4, n3]] as const) {
      const r = await a.kernelRoute(b.cidr!);
      assert.ok(r && !routeDevs(r).includes(VXLAN_DEVICE), `${a.name} still routes ${b.name} directly: ${JSON.stringify(r)}`);
    }
    assert.equal(await pings(n3, n4), false, 'the cut really breaks the direct path');
    const routes = await n1.api<{ switches: Record<string, number> }>('/v1/routes');
    assert.ok((routes.switches['direct->vxlan'] ?? 0) >= 1, JSON.stringify(routes.switches));
  } finally {
    await Promise.all([healDirect(n1, n2), healDirect(n3, n4)]);
  }
  const healed = performance.now();
  await waitFor(async () => (await session(n1, n2))?.state === 'Up', { timeoutMs: 20_000, what: 'n1 → n2 BFD Up again' });
  const up = performance.now();
  await waitPath(n1, n2, 'direct', { gateways: [n2.address], timeoutMs: 20_000 });
  await waitPath(n2, n1, 'direct', { gateways: [n1.address], timeoutMs: 20_000 });
  const back = performance.now();
  console.log(`# healed → BFD Up ${(up - healed).toFixed(0)} ms → direct again ${(back - up).toFixed(0)} ms later (hold-down ${HOLD_DOWN_S} s); failover ${failover.map((x) => x.toFixed(0)).join()} ms`);
  assert.ok(back - up >= HOLD_DOWN_S * 1000 - 300, `back to direct ${(back - up).toFixed(0)} ms after BFD Up: the hold-down is ${HOLD_DOWN_S} s`);
  assert.ok(await pings(n1, n2));
});
