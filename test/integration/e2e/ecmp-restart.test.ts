// nrd end to end on two dual-homed nodes behind two BIRD ToRs (AS 65000 and 65001): equal paths
// through both ToRs become one multipath kernel route; restarting nrd (SIGTERM, kill -9) changes
// no route and emits no route event; a stale protocol-220 route is removed once synced while
// foreign routes are left alone and a route of nrd's deleted by hand comes back; and etcd going
// away for a while changes nothing in the kernel while readiness says degraded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Fabric, RouteMonitor, isNrdRouteEvent, startPing, type FabricNode } from '../../lib/fabric.js';
import { sleep, waitFor } from '../../lib/wait.js';
import { pingMesh, waitAllReady, waitPath } from './helpers.js';

/** How long etcd stays away in the steady-state test (issue 4 asks for 30 s). */
const ETCD_OUTAGE_MS = 30_000;

const fabric = Fabric.use(after, {
  tag: 'e2eecmp',
  tors: 2,
  mode: 'auto',
  holdDown: 2,
  // The ToRs are in different ASes: ECMP across them is BGP multipath relax, an operator's choice.
  nodes: [{ site: { bgp: { multipathRelax: true } } }, { site: { bgp: { multipathRelax: true } } }],
});
let n1: FabricNode;
let n2: FabricNode;

before(async () => {
  await fabric.build();
  await fabric.addPods();
  await fabric.waitSessions();
  [n1, n2] = fabric.nodes as [FabricNode, FabricNode];
});

/** Every node's protocol-220 routes, one text per node. */
const snapshot = async (): Promise<string[]> => Promise.all(fabric.nodes.map((n) => n.nrdRoutesText()));
const allCidrs = (): string[] => fabric.nodes.map((n) => n.cidr!);

test('two ToRs advertising equal paths: the route is multipath with both next hops', async () => {
  // ToR1 is AS 65000 and ToR2 AS 65001: the two paths differ only in their neighbour AS, so
  // multipath across them needs bgp.multipathRelax (set on both nodes above).
  await waitPath(n1, n2, 'native', { gateways: [n1.tor1Address, n1.tor2!.torAddress] });
  const seen = await waitPath(n2, n1, 'native', { gateways: [n2.tor1Address, n2.tor2!.torAddress] });
  assert.equal(seen.kernel.nexthops?.length, 2, `multipath route: ${JSON.stringify(seen.kernel)}`);
  await pingMesh(fabric.nodes);
});

for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
  test(`restart of nrd (${signal}): route table identical, no route event for nrd's routes, no ping lost`, async () => {
    await waitAllReady(fabric.nodes);
    await waitPath(n1, n2, 'native');
    const before = await n1.nrdRoutesText();
    const beforePeer = await n2.nrdRoutesText();
    const mon = new RouteMonitor(n1.host);
    const monPeer = new RouteMonitor(n2.host);
    await mon.ready();
    await monPeer.ready();
    // A canary the monitors must report: proves they listened for the whole window.
    const canary = '203.0.113.99/32';
    for (const n of [n1, n2]) await n.host.ip(['route', 'add', canary, 'via', n.tor1Address, 'proto', 'static']);
    for (const n of [n1, n2]) await n.host.ip(['route', 'del', canary]);
    const ping = startPing(n2.pod!.host, n1.pod!.ip, { intervalS: 0.01 });
    let events: string[] = [];
    let peerEvents: string[] = [];
    try {
      const oldPid = n1.nrd!.pid;
      await n1.stop(signal);
      assert.equal(await n1.nrdRoutesText(), before, `routes changed while nrd was stopped (${signal})`);
      await n1.start();
      assert.notEqual(n1.nrd!.pid, oldPid);
      await n1.waitReady();
      // Deletions of leftovers happen once synced; give a late one the chance to show.
      await waitFor(async () => (await fabric.tors[0]!.bird.protocols()).find((p) => p.name === n1.protocol)?.info.startsWith('Established'), {
        timeoutMs: 20_000,
        what: 'ToR1 session with n1 back',
      });
      await sleep(1500);
    } finally {
      events = await mon.stop();
      peerEvents = await monPeer.stop();
    }
    const counts = await ping.stop();
    for (const ev of [events, peerEvents]) assert.ok(ev.some((l) => l.includes('203.0.113.99')), `route monitor saw the canary: ${ev.join('\n')}`);
    assert.equal(await n1.nrdRoutesText(), before, 'ip route show proto 220 on n1 before vs after the restart');
    const nrdEvents = events.filter((l) => isNrdRouteEvent(l, allCidrs()));
    assert.deepEqual(nrdEvents, [], `route events for nrd's routes on n1 during the restart:\n${events.join('\n')}`);
    // Graceful restart: the ToRs kept n1's routes, so n2 saw nothing either.
    assert.equal(await n2.nrdRoutesText(), beforePeer, 'n2 routes unchanged');
    assert.deepEqual(peerEvents.filter((l) => isNrdRouteEvent(l, allCidrs())), [], `route events on n2:\n${peerEvents.join('\n')}`);
    assert.equal(counts.lost, 0, `ping n2 pod → n1 pod across the restart: ${JSON.stringify(counts)}`);
  });
}

test('stale protocol-220 route removed once synced; foreign routes untouched; a route deleted by hand is restored', async () => {
  const gw = n1.tor1Address;
  await n1.stop('SIGTERM');
  const stale = '10.244.250.0/24';
  const foreignInPool = '10.244.251.0/24';
  const foreignOutside = '203.0.113.0/24';
  const foreignSame196Table = '10.244.252.0/24';
  await n1.host.ip(['route', 'add', stale, 'via', gw, 'proto', '220']);
  await n1.host.ip(['route', 'add', foreignInPool, 'via', gw, 'proto', 'static']);
  await n1.host.ip(['route', 'add', foreignOutside, 'via', gw, 'proto', 'static']);
  // nrd owns protocol 220 in the main table only: the same protocol in another table is not its.
  await n1.host.ip(['route', 'add', foreignSame196Table, 'via', gw, 'proto', '220', 'table', '100']);
  try {
    await n1.start();
    await waitFor(async () => !(await n1.kernelRoute(stale)), { timeoutMs: 30_000, intervalMs: 100, what: `stale ${stale} removed` }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${n1.describe()}`);
    });
    await n1.waitReady();
    await sleep(1000);
    assert.equal((await n1.kernelRoute(foreignInPool))?.protocol, 'static', 'foreign route in the pod pool kept');
    assert.equal((await n1.kernelRoute(foreignOutside))?.protocol, 'static', 'foreign route outside the pool kept');
    assert.ok((await n1.kernelRoutes(['table', '100'])).some((r) => r.dst === foreignSame196Table), 'protocol 220 in table 100 kept');

    // nrd's route to n2 and its own blackhole, deleted by hand, come back.
    const before = await n1.nrdRoutesText();
    await n1.host.ip(['route', 'del', n2.cidr!]);
    await waitFor(async () => (await n1.nrdRoutesText()) === before, { timeoutMs: 15_000, intervalMs: 100, what: `${n2.cidr} restored on n1` });
    await n1.host.ip(['route', 'del', 'blackhole', n1.cidr!]);
    await waitFor(async () => (await n1.nrdRoutesText()) === before, { timeoutMs: 15_000, intervalMs: 100, what: `blackhole ${n1.cidr} restored on n1` });
    await pingMesh(fabric.nodes);
  } finally {
    for (const p of [foreignInPool, foreignOutside]) await n1.host.ip(['route', 'del', p], { allowFailure: true });
    await n1.host.ip(['route', 'del', foreignSame196Table, 'table', '100'], { allowFailure: true });
  }
});

test('etcd stopped during steady state: no kernel change, readiness degraded, ready again after', async () => {
  await waitAllReady(fabric.nodes);
  const before = await snapshot();
  const mons = fabric.nodes.map((n) => new RouteMonitor(n.host));
  await mons[0]!.ready();
  for (const n of fabric.nodes) {
    await n.host.ip(['route', 'add', '203.0.113.98/32', 'via', n.tor1Address, 'proto', 'static']);
    await n.host.ip(['route', 'del', '203.0.113.98/32']);
  }
  const ping = startPing(n1.pod!.host, n2.pod!.ip, { intervalS: 0.05 });
  const outageMs = ETCD_OUTAGE_MS;
  let events: string[][] = [];
  try {
    await fabric.etcd.kill();
    const downAt = Date.now();
    // Readiness says why: the state subsystem is not ready, naming etcd (degraded, not down).
    for (const n of fabric.nodes) {
      await waitFor(
        async () => {
          const r = await n.readyz();
          const reasons = JSON.stringify(r.body.notReady ?? []);
          return r.status === 503 && !r.body.ready && /degraded/i.test(reasons) && /etcd/i.test(reasons) ? reasons : undefined;
        },
        { timeoutMs: outageMs, intervalMs: 200, what: `${n.name}: /readyz degraded while etcd is down` },
      );
    }
    // During: compare every second while etcd stays down.
    while (Date.now() - downAt < outageMs) {
      assert.deepEqual(await snapshot(), before, `routes changed ${Date.now() - downAt} ms into the etcd outage`);
      for (const n of fabric.nodes) assert.ok(n.nrd!.running(), `${n.name}: nrd still runs`);
      await sleep(1000);
    }
    await fabric.etcd.restart();
    await waitAllReady(fabric.nodes, 45_000);
    await sleep(1000);
  } finally {
    events = await Promise.all(mons.map((m) => m.stop()));
    if (!fabric.etcd.running) await fabric.etcd.restart().catch(() => undefined);
  }
  const counts = await ping.stop();
  assert.deepEqual(await snapshot(), before, 'routes after etcd came back');
  for (const [i, ev] of events.entries()) {
    assert.ok(ev.some((l) => l.includes('203.0.113.98')), `route monitor of ${fabric.nodes[i]!.name} saw the canary`);
    assert.deepEqual(ev.filter((l) => isNrdRouteEvent(l, allCidrs())), [], `route events on ${fabric.nodes[i]!.name} during the etcd outage:\n${ev.join('\n')}`);
  }
  assert.equal(counts.lost, 0, `pods kept talking during the etcd outage: ${JSON.stringify(counts)}`);
  await pingMesh(fabric.nodes);
});
