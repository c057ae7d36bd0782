// nrd end to end behind one BIRD top-of-rack router (routing.mode auto): three nodes with eBGP to
// the ToR reach each other's pods over native routes learned over BGP; a fourth node with no BGP
// peer, in its own subnet, is reached over VXLAN; when the ToR cuts one node's session, traffic to
// and from it moves to VXLAN (route table, /v1/routes, UDP 4789 on the underlay, ping continues)
// and returns to native after the hold-down once the session is back.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Fabric, VXLAN_DEVICE, startPing } from '../../lib/fabric.js';
import { waitFor } from '../../lib/wait.js';
import { assertOwnBlackhole, pingMesh, waitAllReady, waitPath } from './helpers.js';

const HOLD_DOWN_S = 2;
const fabric = Fabric.use(after, {
  tag: 'e2enat',
  tors: 1,
  mode: 'auto',
  holdDown: HOLD_DOWN_S,
  nodes: [{}, {}, {}, { bgp: false }],
});

before(async () => {
  await fabric.build();
  await fabric.addPods();
  await fabric.waitSessions();
});

test('three nodes behind one ToR: pods ping each other over native routes learned over BGP', async () => {
  const bgpNodes = fabric.nodes.filter((n) => n.spec.bgp);
  const cidrs = new Set(fabric.nodes.map((n) => n.cidr));
  assert.equal(cidrs.size, fabric.nodes.length, `distinct CIDRs: ${[...cidrs].join(', ')}`);
  for (const n of bgpNodes) {
    for (const m of bgpNodes) {
      if (n === m) continue;
      const seen = await waitPath(n, m, 'native', { gateways: [n.tor1Address] });
      assert.equal(seen.api.node, m.name, `/v1/routes names the node of ${m.cidr}`);
    }
    await assertOwnBlackhole(n);
  }
  await pingMesh(bgpNodes);
  // nrdctl shows the same view as the API.
  const n1 = fabric.node('n1');
  const viaCli = await n1.nrdctl<unknown>(['routes']);
  const list = (Array.isArray(viaCli) ? viaCli : (viaCli as { routes: Array<{ prefix: string; mode: string }> }).routes) as Array<{ prefix: string; mode: string }>;
  assert.equal(list.find((r) => r.prefix === fabric.node('n2').cidr)?.mode, 'native');
});

test('a node in another subnet with no BGP peer is reached over VXLAN (auto)', async () => {
  const n4 = fabric.node('n4');
  const others = fabric.nodes.filter((n) => n !== n4);
  for (const n of others) {
    await waitPath(n, n4, 'vxlan');
    await waitPath(n4, n, 'vxlan');
  }
  await waitAllReady([n4]);
  const tx0 = await n4.vxlanTxPackets();
  await pingMesh([n4, fabric.node('n1')]);
  assert.ok((await n4.vxlanTxPackets()) > tx0, `${VXLAN_DEVICE} on n4 sent the ping replies/requests`);
});

test('BGP session cut at the ToR: traffic moves to VXLAN, ping keeps working, back to native after the hold-down', async () => {
  const [n1, n2, n3] = fabric.nodes as [typeof fabric.nodes[0], typeof fabric.nodes[0], typeof fabric.nodes[0]];
  const tor = fabric.tors[0]!;
  await waitPath(n1, n3, 'native');
  await n1.pod!.host.ping(n3.pod!.ip);

  const ping = startPing(n1.pod!.host, n3.pod!.ip, { intervalS: 0.01 });
  let pingStopped = false;
  try {
    const tx0 = await n1.vxlanTxPackets();
    const cutAt = Date.now();
    await tor.bird.birdc(`disable ${n3.protocol}`);

    // Both ends of the path leave the fabric's native route: n1 and n2 towards n3, n3 towards all.
    await waitPath(n1, n3, 'vxlan');
    const failoverMs = Date.now() - cutAt;
    await waitPath(n2, n3, 'vxlan');
    await waitPath(n3, n1, 'vxlan');
    await waitPath(n3, n2, 'vxlan');

    // The underlay carries VXLAN (UDP 4789) while the ping runs.
    const dump = await n1.host.exec(['timeout', '10', 'tcpdump', '-n', '-p', '-i', 'eth0', '-c', '1', 'udp', 'port', '4789'], { allowFailure: true });
    assert.match(dump.stdout, /UDP|VXLAN|4789/, `tcpdump on n1 eth0 saw no VXLAN packet: ${dump.stdout} ${dump.stderr}`);
    assert.ok((await n1.vxlanTxPackets()) > tx0, `${VXLAN_DEVICE} tx counter of n1 rose`);
    await waitFor(() => n1.pod!.host.ping(n3.pod!.ip), { timeoutMs: 5000, intervalMs: 100, what: 'ping over VXLAN' });

    const failover = await ping.stop();
    pingStopped = true;
    // Loss bounded by the failover (a generous bound: this is a test, the bench measures it).
    const lostMs = failover.lost * 10;
    assert.ok(failover.received > 0, `ping during failover: ${JSON.stringify(failover)}`);
    assert.ok(lostMs < 3000, `ping lost ${failover.lost} of ${failover.sent} (≈${lostMs} ms) during failover; route moved after ${failoverMs} ms`);

    // Session restored: native again, but not before the hold-down.
    const back = startPing(n1.pod!.host, n3.pod!.ip, { intervalS: 0.01 });
    try {
      const enableAt = Date.now();
      await tor.bird.birdc(`enable ${n3.protocol}`);
      await tor.bird.waitEstablished(n3.protocol, 30_000);
      const establishedAt = Date.now();
      const seen = await waitPath(n1, n3, 'native', { gateways: [n1.tor1Address], timeoutMs: 30_000 });
      await waitPath(n3, n1, 'native', { gateways: [n3.tor1Address], timeoutMs: 30_000 });
      await waitPath(n2, n3, 'native', { timeoutMs: 30_000 });
      const since = typeof seen.api.since === 'number' ? seen.api.since : Date.parse(seen.api.since);
      // The hold-down runs from when the path came back (after Established), so native cannot be
      // older than the enable plus most of the hold-down.
      assert.ok(
        Number.isFinite(since) && since >= enableAt + HOLD_DOWN_S * 1000 - 500,
        `native again since ${new Date(since).toISOString()}, enable at ${new Date(enableAt).toISOString()}, Established seen ${establishedAt - enableAt} ms later; hold-down ${HOLD_DOWN_S} s`,
      );
    } finally {
      const failback = await back.stop();
      assert.ok(failback.lost * 10 < 3000, `ping lost ${failback.lost} of ${failback.sent} during failback`);
    }
    await pingMesh([n1, n2, n3]);
  } finally {
    if (!pingStopped) await ping.stop().catch(() => undefined);
  }
});
