// Path choice per mode, the hold-down state machine, and the router end to end against the fake
// kernel with a manual clock: native ECMP, direct, VXLAN objects, failover at once, failback after
// the hold-down, switch counting, the own-CIDR blackhole, and no writes on a restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { silentLogger } from '../../../daemon/lib/log.js';
import { choosePath, step, RANK, type Candidate, type PathState } from '../../../daemon/routing/path.js';
import { Router } from '../../../daemon/routing/router.js';
import { bgpRouteOf } from '../../../daemon/routing/types.js';
import type { PathSwitch, RemoteNode, RoutingMode, RoutingOptions } from '../../../daemon/routing/types.js';
import { NRD_PROTOCOL } from '../../../daemon/kernel/types.js';
import { canonicalPrefix, parsePrefix } from '../../../daemon/kernel/addr.js';
import { FakeKernel, ManualClock } from '../../lib/fake-kernel.js';

const connected = ['192.0.2.0/24'];

test('choosePath: each mode picks what it allows', () => {
  const base = { vxlanCapable: true, connected };
  const bgp = ['198.51.100.1', '192.0.2.254'];
  const same = { ...base, underlay: '192.0.2.7' };
  const other = { ...base, underlay: '203.0.113.7' };
  const t = (mode: RoutingMode, i: object, hops?: string[]): Candidate => choosePath({ mode, ...base, ...i, ...(hops ? { bgpNextHops: hops } : {}) });
  assert.deepEqual(t('native', same, bgp), { mode: 'native', nextHops: ['192.0.2.254', '198.51.100.1'] });
  assert.deepEqual(t('native', same), { mode: 'none', nextHops: [] });
  assert.deepEqual(t('vxlan', same, bgp), { mode: 'vxlan', nextHops: ['192.0.2.7'] });
  assert.deepEqual(t('auto', same, bgp).mode, 'native');
  assert.deepEqual(t('auto', same).mode, 'direct');
  assert.deepEqual(t('auto', other), { mode: 'vxlan', nextHops: ['203.0.113.7'] });
  assert.deepEqual(t('cross-subnet', same, bgp), { mode: 'direct', nextHops: ['192.0.2.7'] });
  assert.deepEqual(t('cross-subnet', other, bgp).mode, 'vxlan');
  assert.deepEqual(choosePath({ mode: 'auto', vxlanCapable: false, connected, underlay: '203.0.113.7' }).mode, 'none');
});

test('step: worse path at once, better path only after the hold-down', () => {
  const native: Candidate = { mode: 'native', nextHops: ['192.0.2.254'] };
  const vxlan: Candidate = { mode: 'vxlan', nextHops: ['203.0.113.7'] };
  let s = step(undefined, native, 0, 1000);
  assert.deepEqual(s.switched, { from: 'none', to: 'native' });
  s = step(s.state, vxlan, 10, 1000);
  assert.deepEqual(s.switched, { from: 'native', to: 'vxlan' });
  s = step(s.state, native, 20, 1000);
  assert.equal(s.switched, undefined);
  assert.equal(s.state.current.mode, 'vxlan');
  assert.equal(s.recheckAt, 1020);
  // The path flaps: the hold-down restarts.
  s = step(s.state, vxlan, 500, 1000);
  s = step(s.state, native, 600, 1000);
  s = step(s.state, native, 1020, 1000);
  assert.equal(s.state.current.mode, 'vxlan');
  s = step(s.state, native, 1600, 1000);
  assert.deepEqual(s.switched, { from: 'vxlan', to: 'native' });
  assert.equal(s.state.since, 1600);
});

test('step: from nothing, and from direct to native, a better path is taken at once (no hold-down)', () => {
  const native: Candidate = { mode: 'native', nextHops: ['192.0.2.12'] };
  const direct: Candidate = { mode: 'direct', nextHops: ['192.0.2.12'] };
  const none: Candidate = { mode: 'none', nextHops: [] };
  let s = step(undefined, none, 0, 1000);
  s = step(s.state, direct, 10, 1000);
  assert.deepEqual(s.switched, { from: 'none', to: 'direct' });
  s = step(s.state, native, 20, 1000);
  assert.deepEqual(s.switched, { from: 'direct', to: 'native' });
  assert.equal(s.recheckAt, undefined);
});

test('property: the path in use is never better than what is available, and VXLAN is left only after the hold-down', () => {
  const cand = fc.constantFrom<Candidate>(
    { mode: 'native', nextHops: ['a'] },
    { mode: 'direct', nextHops: ['b'] },
    { mode: 'vxlan', nextHops: ['c'] },
    { mode: 'none', nextHops: [] },
  );
  fc.assert(
    fc.property(fc.array(fc.tuple(cand, fc.integer({ min: 0, max: 400 })), { minLength: 1, maxLength: 40 }), (seq) => {
      const hold = 1000;
      let st: PathState | undefined;
      let now = 0;
      // Start of the current run of evaluations whose candidate is better than VXLAN.
      let betterRunStart: number | undefined;
      for (const [c, dt] of seq) {
        now += dt;
        if (RANK[c.mode] > RANK.vxlan) betterRunStart ??= now;
        else betterRunStart = undefined;
        const r = step(st, c, now, hold);
        // Never better than the candidate, except while holding on to VXLAN... which is worse.
        assert.ok(RANK[r.state.current.mode] <= RANK[c.mode], `${r.state.current.mode} used while only ${c.mode} is available`);
        if (st && r.switched && r.switched.from === 'vxlan' && RANK[r.switched.to] > RANK.vxlan) {
          assert.ok(betterRunStart !== undefined && now - betterRunStart >= hold, `left VXLAN at ${now}, better path only since ${betterRunStart}`);
        }
        // Worse paths are taken at once.
        if (st && RANK[c.mode] < RANK[st.current.mode]) assert.equal(r.state.current.mode, c.mode);
        st = r.state;
      }
    }),
  );
});

// ---- router against the fake kernel

const NODE2: RemoteNode = { name: 'n2', underlay: '192.0.2.2', vtepMac: '02:00:00:00:00:02', cidrs: ['10.244.2.0/24'] };
const NODE3: RemoteNode = { name: 'n3', underlay: '192.0.2.3', vtepMac: '02:00:00:00:00:03', cidrs: ['10.244.3.0/24'] };
const NODE4: RemoteNode = { name: 'n4', underlay: '203.0.113.4', vtepMac: '02:00:00:00:00:04', cidrs: ['10.244.4.0/24'] };

function setup(mode: RoutingMode, holdDownMs = 5000): { k: FakeKernel; clock: ManualClock; router: Router; switches: PathSwitch[]; opts: RoutingOptions } {
  const k = new FakeKernel();
  k.addLink({ name: 'eth0', mtu: 1500, up: true, mac: '02:00:00:00:01:01' });
  k.addAddress('eth0', '192.0.2.1/24');
  k.addLink({ name: 'eth1', mtu: 1500, up: true, mac: '02:00:00:00:01:02' });
  k.addAddress('eth1', '198.51.100.1/24');
  const clock = new ManualClock();
  const switches: PathSwitch[] = [];
  const opts: RoutingOptions = {
    mode,
    vxlan: { vni: 1, port: 4789, device: 'nrd-vx', mac: '02:00:00:00:00:01' },
    underlayInterface: 'eth0',
    ownCidrs: ['10.244.1.0/24'],
    holdDownMs,
  };
  const router = new Router(k, opts, { log: silentLogger(), clock, reconciler: { resyncIntervalMs: 0 }, onSwitch: (s) => switches.push(s) });
  return { k, clock, router, switches, opts };
}

/** Let microtasks (recompute) run, fire the reconciler debounce, wait for the run. */
async function settle(clock: ManualClock, router: Router): Promise<void> {
  await Promise.resolve();
  await Promise.resolve();
  clock.advance(20);
  await router.reconciler.runNow();
}

const routeOf = (k: FakeKernel, dst: string) => k.dumpRoutes(NRD_PROTOCOL).find((r) => r.dst === dst);

test('auto: ECMP native route from BGP, VXLAN for a node in another subnet, blackhole for the own CIDR', async () => {
  const { k, clock, router } = setup('auto');
  await router.start();
  router.setNodes([NODE2, NODE4], true);
  router.setBgpRoutes([{ prefix: '10.244.2.0/24', nextHops: ['192.0.2.254', '198.51.100.254'] }], true);
  await settle(clock, router);
  const r2 = routeOf(k, '10.244.2.0/24')!;
  assert.deepEqual(r2.nextHops.map((h) => h.gateway).sort(), ['192.0.2.254', '198.51.100.254']);
  const r4 = routeOf(k, '10.244.4.0/24')!;
  const vx = k.byName('nrd-vx')!;
  assert.deepEqual(r4.nextHops, [{ gateway: '10.244.4.0', ifindex: vx.index, onlink: true }]);
  assert.equal(vx.mtu, 1450);
  assert.equal(vx.mac, '02:00:00:00:00:01');
  assert.ok(k.fdb.some((e) => e.mac === '02:00:00:00:00:04' && e.dst === '203.0.113.4'));
  assert.equal(k.neighbours.get(`${vx.index}|10.244.4.0`)?.mac, '02:00:00:00:00:04');
  assert.equal(routeOf(k, '10.244.1.0/24')!.type, 'blackhole');
  assert.equal(k.sysctls.get('net.ipv4.ip_forward'), '1');
  const view = router.routes();
  assert.deepEqual(
    view.map((v) => [v.prefix, v.node, v.mode]),
    [
      ['10.244.1.0/24', undefined, 'local'],
      ['10.244.2.0/24', 'n2', 'native'],
      ['10.244.4.0/24', 'n4', 'vxlan'],
    ],
  );
  router.stop();
});

test('failover to VXLAN at once when BGP withdraws, back to native after the hold-down, every switch counted', async () => {
  const { k, clock, router, switches } = setup('auto', 3000);
  // Node 3 is in the connected subnet: in auto it would go direct; use a remote-subnet node to see VXLAN.
  const n = { ...NODE4 };
  await router.start();
  router.setNodes([n], true);
  router.setBgpRoutes([{ prefix: '10.244.4.0/24', nextHops: ['192.0.2.254'] }], true);
  await settle(clock, router);
  assert.equal(routeOf(k, '10.244.4.0/24')!.nextHops[0]!.gateway, '192.0.2.254');
  router.applyBgpChange({ prefix: '10.244.4.0/24', nextHops: [] });
  await settle(clock, router);
  assert.equal(routeOf(k, '10.244.4.0/24')!.nextHops[0]!.gateway, '10.244.4.0', 'moved to VXLAN');
  assert.deepEqual(switches.map((s) => `${s.from}->${s.to}`), ['native->vxlan']);
  router.applyBgpChange({ prefix: '10.244.4.0/24', nextHops: ['192.0.2.254'] });
  const returned = clock.now();
  await settle(clock, router);
  assert.equal(routeOf(k, '10.244.4.0/24')!.nextHops[0]!.gateway, '10.244.4.0', 'held down');
  clock.advance(1500);
  await settle(clock, router);
  assert.equal(routeOf(k, '10.244.4.0/24')!.nextHops[0]!.gateway, '10.244.4.0', 'still held down');
  clock.advance(1500);
  await settle(clock, router);
  assert.equal(routeOf(k, '10.244.4.0/24')!.nextHops[0]!.gateway, '192.0.2.254', 'back to native');
  assert.deepEqual(switches.map((s) => `${s.from}->${s.to}`), ['native->vxlan', 'vxlan->native']);
  assert.equal(router.switches.get('vxlan->native'), 1);
  assert.equal(router.routes().find((r) => r.prefix === '10.244.4.0/24')!.since, returned + 3000);
  router.stop();
});

test('cross-subnet: direct inside the subnet, VXLAN across; native mode: no fallback', async () => {
  const cs = setup('cross-subnet');
  await cs.router.start();
  cs.router.setNodes([NODE3, NODE4], true);
  cs.router.setBgpRoutes([{ prefix: '10.244.4.0/24', nextHops: ['192.0.2.254'] }], true);
  await settle(cs.clock, cs.router);
  const eth0 = cs.k.byName('eth0')!.index;
  assert.deepEqual(routeOf(cs.k, '10.244.3.0/24')!.nextHops, [{ gateway: '192.0.2.3', ifindex: eth0 }]);
  assert.equal(routeOf(cs.k, '10.244.4.0/24')!.nextHops[0]!.gateway, '10.244.4.0');
  cs.router.stop();

  const nat = setup('native');
  await nat.router.start();
  nat.router.setNodes([NODE3, NODE4], true);
  nat.router.setBgpRoutes([{ prefix: '10.244.4.0/24', nextHops: ['192.0.2.254'] }], true);
  await settle(nat.clock, nat.router);
  assert.equal(routeOf(nat.k, '10.244.3.0/24'), undefined);
  assert.equal(routeOf(nat.k, '10.244.4.0/24')!.nextHops[0]!.gateway, '192.0.2.254');
  assert.equal(nat.k.fdb.length, 0, 'native mode programs no FDB entries');
  assert.ok(nat.k.byName('nrd-vx'), 'the VXLAN device exists in every mode (receive side)');
  nat.router.stop();
});

test('a removed node loses its route, FDB and neighbour once synced', async () => {
  const { k, clock, router } = setup('vxlan');
  await router.start();
  router.setNodes([NODE2, NODE4], true);
  await settle(clock, router);
  assert.ok(routeOf(k, '10.244.2.0/24'));
  router.setNodes([NODE4], true);
  await settle(clock, router);
  assert.equal(routeOf(k, '10.244.2.0/24'), undefined);
  assert.ok(!k.fdb.some((e) => e.mac === NODE2.vtepMac));
  assert.ok(![...k.neighbours.values()].some((n) => n.ip === '10.244.2.0'));
  router.stop();
});

test('restart: same inputs, BGP arriving after the nodes, writes nothing', async () => {
  const a = setup('auto', 3000);
  await a.router.start();
  a.router.setNodes([NODE2, NODE4], true);
  a.router.setBgpRoutes([{ prefix: '10.244.4.0/24', nextHops: ['192.0.2.254', '198.51.100.254'] }], true);
  await settle(a.clock, a.router);
  a.router.stop();
  const before = a.k.writes.length;
  const events: string[] = [];
  a.k.subscribe((e) => events.push(e.kind));
  // A new router on the same kernel: nodes first (synced), BGP not yet in sync.
  const router2 = new Router(a.k, a.opts, { log: silentLogger(), clock: a.clock, reconciler: { resyncIntervalMs: 0 } });
  await router2.start();
  router2.setNodes([NODE2, NODE4], true);
  router2.setBgpRoutes([], false);
  await settle(a.clock, router2);
  router2.setBgpRoutes([{ prefix: '10.244.4.0/24', nextHops: ['192.0.2.254', '198.51.100.254'] }], true);
  await settle(a.clock, router2);
  assert.deepEqual(a.k.writes.slice(before), []);
  assert.deepEqual(events, []);
  assert.equal(router2.routes().find((r) => r.prefix === '10.244.4.0/24')!.mode, 'native');
  router2.stop();
});

// ---- bad input, hijacks, and work that costs what changed

test('bgpRouteOf: ECMP first next hops deduplicated; withdrawn and locally originated prefixes install nothing', () => {
  const path = (nh: string, type = 'ebgp') => ({ peer: { type }, nextHops: [nh] });
  assert.deepEqual(bgpRouteOf({ prefix: '10.9.0.0/16', best: path('192.0.2.254'), ecmp: [path('192.0.2.254'), path('198.51.100.254'), path('192.0.2.254'), path('')] }), {
    prefix: '10.9.0.0/16',
    nextHops: ['192.0.2.254', '198.51.100.254'],
  });
  assert.deepEqual(bgpRouteOf({ prefix: '10.9.0.0/16', best: null, ecmp: [] }).nextHops, []);
  assert.deepEqual(bgpRouteOf({ prefix: '10.244.1.0/24', best: path('0.0.0.0', 'local'), ecmp: [path('0.0.0.0', 'local')] }).nextHops, []);
});

test('a bad node record (address, VTEP MAC, CIDR) is skipped and counted once; every other node is routed', async () => {
  const { k, clock, router } = setup('auto');
  const rejected: string[] = [];
  (router as unknown as { deps: { onRejectedNode: (r: string) => void } }).deps.onRejectedNode = (r) => rejected.push(r);
  await router.start();
  const bad: RemoteNode[] = [
    { name: 'bad-addr', underlay: 'node-7.example', vtepMac: '02:00:00:00:00:07', cidrs: ['10.244.7.0/24'] },
    { name: 'bad-mac', underlay: '192.0.2.8', vtepMac: 'zz:00', cidrs: ['10.244.8.0/24'] },
    { name: 'bad-cidr', underlay: '192.0.2.9', cidrs: ['10.244.9.0/99'] },
  ];
  router.setNodes([NODE2, ...bad, NODE4], true);
  await settle(clock, router);
  assert.equal(routeOf(k, '10.244.2.0/24')?.nextHops[0]?.gateway, '192.0.2.2', 'good node in the subnet: direct');
  assert.equal(routeOf(k, '10.244.4.0/24')?.nextHops[0]?.gateway, '10.244.4.0', 'good node across: VXLAN');
  for (const c of ['10.244.7.0/24', '10.244.8.0/24']) assert.equal(routeOf(k, c), undefined);
  assert.deepEqual(rejected.sort(), ['address', 'cidr', 'vtep_mac']);
  assert.deepEqual(Object.keys(router.rejectedNodes()).sort(), ['bad-addr', 'bad-cidr', 'bad-mac']);
  // The same snapshot again: not counted (nor logged) again; a fixed record is routed.
  router.setNodes([NODE2, ...bad, NODE4], true);
  router.setNodes([NODE2, { ...bad[0]!, underlay: '203.0.113.7' }, bad[1]!, bad[2]!, NODE4], true);
  await settle(clock, router);
  assert.equal(rejected.length, 3);
  assert.equal(routeOf(k, '10.244.7.0/24')?.nextHops[0]?.gateway, '10.244.7.0');
  assert.deepEqual(Object.keys(router.rejectedNodes()).sort(), ['bad-cidr', 'bad-mac']);
  router.stop();
});

test('a prefix inside the own CIDR or a connected subnet never becomes a kernel route (full and incremental)', async () => {
  const { k, clock, router } = setup('auto');
  const refused: string[] = [];
  (router as unknown as { deps: { onRefusedPrefix: (r: string) => void } }).deps.onRefusedPrefix = (r) => refused.push(r);
  await router.start();
  router.setNodes([NODE4], true);
  const hop = ['192.0.2.254'];
  router.setBgpRoutes(
    [
      { prefix: '10.244.1.7/32', nextHops: hop }, // inside the own CIDR
      { prefix: '192.0.2.9/32', nextHops: hop }, // a neighbour inside the underlay subnet
      { prefix: '198.51.100.0/25', nextHops: hop }, // inside eth1's subnet
      { prefix: '10.50.0.0/16', nextHops: hop },
      { prefix: '0.0.0.0/0', nextHops: hop }, // contains the connected subnets: fine
    ],
    true,
  );
  await settle(clock, router);
  for (const p of ['10.244.1.7/32', '192.0.2.9/32', '198.51.100.0/25']) assert.equal(routeOf(k, p), undefined, p);
  assert.ok(routeOf(k, '10.50.0.0/16'));
  assert.ok(routeOf(k, '0.0.0.0/0'));
  assert.equal(routeOf(k, '10.244.1.0/24')?.type, 'blackhole');
  assert.deepEqual(refused.sort(), ['connected', 'connected', 'own_cidr']);
  // Incremental: announced later, refused too; the ones already refused are not counted again.
  router.applyBgpChange({ prefix: '10.244.1.128/25', nextHops: hop });
  router.applyBgpChange({ prefix: '192.0.2.9/32', nextHops: ['198.51.100.254'] });
  await settle(clock, router);
  assert.equal(routeOf(k, '10.244.1.128/25'), undefined);
  assert.equal(routeOf(k, '192.0.2.9/32'), undefined);
  assert.equal(refused.length, 4);
  assert.equal(router.refused.size, 4);
  assert.ok(!router.routes().some((r) => r.prefix === '192.0.2.9/32'));
  router.stop();
});

test('an address added later extends the hijack guard: the prefix it covers is withdrawn from the kernel, and returns when the address goes', async () => {
  const { k, clock, router } = setup('auto');
  await router.start();
  router.setNodes([NODE4], true); // synced inputs: deletions are allowed
  const hop = ['192.0.2.254'];
  router.setBgpRoutes([{ prefix: '203.0.113.0/25', nextHops: hop }, { prefix: '10.50.0.0/16', nextHops: hop }], true);
  await settle(clock, router);
  assert.ok(routeOf(k, '203.0.113.0/25'), 'no local subnet covers it yet');
  k.addLink({ name: 'eth2', mtu: 1500, up: true, mac: '02:00:00:00:01:03' });
  k.addAddress('eth2', '203.0.113.1/24');
  clock.advance(250); // the address debounce
  await new Promise((r) => setImmediate(r));
  await settle(clock, router);
  assert.equal(routeOf(k, '203.0.113.0/25'), undefined, 'now inside a connected subnet: refused');
  assert.ok(routeOf(k, '10.50.0.0/16'));
  k.removeAddress('eth2', '203.0.113.1/24');
  clock.advance(250);
  await new Promise((r) => setImmediate(r));
  await settle(clock, router);
  assert.ok(routeOf(k, '203.0.113.0/25'), 'the subnet is gone: installed again');
  router.stop();
});

test('an address event that changes no connected subnet and not the underlay evaluates no prefix again', async () => {
  const { k, clock, router } = setup('auto');
  await router.start();
  router.setNodes([NODE4], true);
  router.setBgpRoutes(
    Array.from({ length: 1000 }, (_, i) => ({ prefix: `10.${50 + (i >> 8)}.${i & 255}.0/24`, nextHops: ['192.0.2.254'] })),
    true,
  );
  await settle(clock, router);
  const evals = router.evaluations;
  // A second address in the underlay's subnet, and one on another link in eth1's subnet.
  k.addAddress('eth0', '192.0.2.77/24');
  k.addAddress('eth1', '198.51.100.9/24');
  clock.advance(250); // the address debounce
  await new Promise((r) => setImmediate(r));
  await settle(clock, router);
  assert.equal(router.evaluations, evals, 'nothing re-evaluated');
  // A new subnet does re-evaluate (the hijack guard and direct paths depend on it).
  k.addAddress('eth1', '203.0.113.1/24');
  clock.advance(250);
  await new Promise((r) => setImmediate(r));
  await settle(clock, router);
  assert.ok(router.evaluations > evals, 'a new connected subnet re-evaluates');
  router.stop();
});

test('a hold-down expiry and a node change with 100k routes evaluate and write only the changed node’s prefixes', async () => {
  const { k, clock, router } = setup('auto', 3000);
  const NODE5: RemoteNode = { name: 'n5', underlay: '203.0.113.5', vtepMac: '02:00:00:00:00:05', cidrs: ['10.244.5.0/24', '10.245.5.0/24'] };
  await router.start();
  router.setNodes([NODE4, NODE5], true);
  const bgp = [{ prefix: '10.244.4.0/24', nextHops: ['192.0.2.254'] }];
  for (let i = 0; i < 100_000; i++) bgp.push({ prefix: `172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`, nextHops: ['192.0.2.254'] });
  router.setBgpRoutes(bgp, true);
  await settle(clock, router);
  assert.equal(k.dumpRoutes(NRD_PROTOCOL).length, 100_004);
  router.applyBgpChange({ prefix: '10.244.4.0/24', nextHops: [] });
  await settle(clock, router);
  router.applyBgpChange({ prefix: '10.244.4.0/24', nextHops: ['192.0.2.254'] });
  await settle(clock, router);
  assert.equal(routeOf(k, '10.244.4.0/24')!.nextHops[0]!.gateway, '10.244.4.0', 'held down on VXLAN');

  let evals = router.evaluations;
  let writes = k.writes.length;
  clock.advance(3000);
  await settle(clock, router);
  assert.equal(routeOf(k, '10.244.4.0/24')!.nextHops[0]!.gateway, '192.0.2.254', 'native after the hold-down');
  assert.equal(router.evaluations - evals, 1, 'the expiry evaluated only the prefix whose hold-down ended');
  assert.deepEqual(k.writes.slice(writes).map((w) => w.call), ['newRoute']);

  // A node changes its underlay: only its two CIDRs are evaluated, its route and FDB rewritten.
  evals = router.evaluations;
  writes = k.writes.length;
  router.setNodes([NODE4, { ...NODE5, underlay: '203.0.113.55' }], true);
  await settle(clock, router);
  assert.equal(router.evaluations - evals, 2);
  const calls = k.writes.slice(writes).map((w) => w.call);
  assert.equal(calls.filter((c) => c === 'newRoute').length, 0, 'VXLAN routes point at the CIDR, not the underlay: unchanged');
  assert.ok(calls.includes('replaceFdb'), `FDB follows the new underlay: ${calls.join(',')}`);
  assert.ok(calls.length <= 3, calls.join(','));
  router.stop();
});

test('End-of-RIB after many BGP routes evaluates no prefix again; deletions are allowed from then on', async () => {
  const { k, clock, router } = setup('native');
  await router.start();
  router.setNodes([], true);
  for (let i = 0; i < 5000; i++) router.applyBgpChange({ prefix: `172.16.${i >> 8}.${i & 255}/32`, nextHops: ['192.0.2.254'] });
  await settle(clock, router);
  assert.equal(k.dumpRoutes(NRD_PROTOCOL).length, 5001);
  const evals = router.evaluations;
  const writes = k.writes.length;
  router.setBgpSynced(true);
  await settle(clock, router);
  assert.equal(router.evaluations, evals, 'no prefix re-evaluated at End-of-RIB');
  assert.equal(k.writes.length, writes, 'nothing written at End-of-RIB');
  router.applyBgpChange({ prefix: '172.16.0.0/32', nextHops: [] });
  await settle(clock, router);
  assert.equal(routeOf(k, '172.16.0.0/32'), undefined, 'a withdrawal after End-of-RIB deletes the route');
  assert.equal(k.dumpRoutes(NRD_PROTOCOL).length, 5000);
  router.stop();
});

test('property: prefixes evaluated together share state objects, yet each shows its own path (against a plain Map model)', async () => {
  const hopSets = [['192.0.2.254'], ['192.0.2.253', '192.0.2.254'], ['198.51.100.254'], []];
  const prefixes = ['172.16.0.0/24', '172.16.1.0/24', '172.16.2.0/28', '172.16.2.16/28', '10.244.2.0/24'];
  const op = fc.record({ p: fc.constantFrom(...prefixes), h: fc.integer({ min: 0, max: hopSets.length - 1 }), settle: fc.boolean(), advance: fc.integer({ min: 0, max: 3000 }) });
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 30 }), fc.boolean(), async (ops, syncedEarly) => {
      const { k, clock, router } = setup('native', 1000);
      await router.start();
      router.setNodes([NODE2], true);
      if (syncedEarly) router.setBgpSynced(true);
      const model = new Map<string, string[]>();
      for (const o of ops) {
        const hops = hopSets[o.h]!;
        router.applyBgpChange({ prefix: o.p, nextHops: hops });
        if (hops.length) model.set(o.p, [...hops].sort());
        else model.delete(o.p);
        if (o.settle) {
          clock.advance(o.advance);
          await settle(clock, router);
        }
      }
      router.setBgpSynced(true);
      await settle(clock, router);
      // Native mode: every change applies at once (no hold-down between native and none).
      const view = router.routes().filter((v) => v.mode !== 'local');
      assert.deepEqual(
        view.map((v) => [v.prefix, v.nextHops]),
        [...model].sort(([a], [b]) => (a < b ? -1 : 1)),
      );
      const kern = k
        .dumpRoutes(NRD_PROTOCOL)
        .filter((r) => r.type === 'unicast')
        .map((r) => [r.dst, r.nextHops.map((h) => h.gateway!).sort()]);
      assert.deepEqual(kern.sort(([a], [b]) => ((a as string) < (b as string) ? -1 : 1)), [...model].sort(([a], [b]) => (a < b ? -1 : 1)));
      router.stop();
    }),
    { numRuns: 40 },
  );
});

test('property: the hijack guard (compared as numbers for IPv4) refuses exactly the prefixes inside the own CIDR or a connected subnet', async () => {
  // Guards: own 10.244.1.0/24, connected 192.0.2.0/24 and 198.51.100.0/24 (see setup()).
  const guards = ['10.244.1.0/24', '192.0.2.0/24', '198.51.100.0/24'].map(parsePrefix);
  const inside = (c: string): boolean => {
    const p = parsePrefix(c);
    return guards.some((g) => p.len >= g.len && (g.len === 0 || p.bytes.readUInt32BE(0) >>> (32 - g.len) === g.bytes.readUInt32BE(0) >>> (32 - g.len)));
  };
  const near = fc.constantFrom(0x0af40100, 0xc0000200, 0xc6336400, 0x0a000000, 0xc0000000, 0);
  const prefix = fc
    .tuple(near, fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 32 }))
    .map(([base, low, len]) => canonicalPrefix(`${((base ^ (low << 4)) >>> 24) & 255}.${((base ^ (low << 4)) >>> 16) & 255}.${((base ^ (low << 4)) >>> 8) & 255}.${(base ^ (low << 4)) & 255}/${len}`));
  await fc.assert(
    // The own CIDR itself is the local blackhole, neither a route towards the fabric nor refused.
    fc.asyncProperty(fc.uniqueArray(prefix.filter((p) => p !== '10.244.1.0/24'), { maxLength: 25 }), fc.boolean(), async (ps, incremental) => {
      const { k, clock, router } = setup('native');
      await router.start();
      router.setNodes([], true);
      const hop = ['192.0.2.254'];
      if (incremental) {
        router.setBgpSynced(true);
        for (const p of ps) router.applyBgpChange({ prefix: p, nextHops: hop });
      } else {
        router.setBgpRoutes(ps.map((p) => ({ prefix: p, nextHops: hop })), true);
      }
      await settle(clock, router);
      const installed = k
        .dumpRoutes(NRD_PROTOCOL)
        .filter((r) => r.type === 'unicast')
        .map((r) => r.dst)
        .sort();
      assert.deepEqual(installed, ps.filter((p) => !inside(p)).sort());
      assert.deepEqual([...router.refused.keys()].sort(), ps.filter(inside).sort());
      router.stop();
    }),
    { numRuns: 60 },
  );
});

test('a mass withdrawal logs a bounded number of path switch lines and one summary, yet counts every switch', async () => {
  const lines: Array<{ msg: string; obj: Record<string, unknown> }> = [];
  const log = silentLogger();
  const { k, clock, router } = setup('native');
  (router as unknown as { log: typeof log }).log = Object.assign(Object.create(log) as typeof log, {
    info: (obj: Record<string, unknown>, msg: string) => void lines.push({ obj, msg }),
  });
  await router.start();
  router.setNodes([], true);
  const n = 1000;
  const prefixes = Array.from({ length: n }, (_, i) => `10.${50 + (i >> 8)}.${i & 255}.0/24`);
  router.setBgpRoutes(prefixes.map((prefix) => ({ prefix, nextHops: ['192.0.2.254'] })), true);
  await settle(clock, router);
  lines.length = 0;
  for (const prefix of prefixes) router.applyBgpChange({ prefix, nextHops: [] });
  await settle(clock, router);
  assert.equal(k.dumpRoutes(NRD_PROTOCOL).filter((r) => r.type === 'unicast').length, 0);
  assert.equal(router.switches.get('native->none'), n, 'every switch counted');
  const one = lines.filter((l) => l.msg === 'path switch').length;
  assert.ok(one > 0 && one <= 100, `${one} single lines`);
  const summary = lines.filter((l) => l.msg.startsWith('more path switches'));
  assert.equal(summary.length, 1);
  assert.deepEqual(summary[0]!.obj.switches, { 'native->none': n - one });
});
