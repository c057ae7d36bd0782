// Kernel reconciler against the fake kernel: ownership (protocol, link prefix), ordering (FDB and
// neighbour before route; route out before them), deferral until synced, restart writes nothing,
// repair of a route deleted by hand, and a property: any sequence of desired states ends with
// kernel == desired.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { silentLogger } from '../../../daemon/lib/log.js';
import { Reconciler, reportWrites, type DesiredState } from '../../../daemon/kernel/reconciler.js';
import { NRD_PROTOCOL, type Route } from '../../../daemon/kernel/types.js';
import { FakeKernel, ManualClock } from '../../lib/fake-kernel.js';

function kernel(): FakeKernel {
  const k = new FakeKernel();
  k.addLink({ name: 'eth0', mtu: 1500, up: true, mac: '02:00:00:00:01:01' });
  k.addAddress('eth0', '192.0.2.1/24');
  k.addLink({ name: 'eth1', mtu: 1500, up: true, mac: '02:00:00:00:01:02' });
  k.addAddress('eth1', '198.51.100.1/24');
  return k;
}

function reconciler(k: FakeKernel, clock = new ManualClock()): Reconciler {
  return new Reconciler(k, { log: silentLogger(), clock, resyncIntervalMs: 0 });
}

const VX = { name: 'nrd-vx', vni: 1, port: 4789, local: '192.0.2.1', mtu: 1450, underlay: 'eth0' };

function vxlanDesired(): DesiredState {
  return {
    vxlan: VX,
    fdb: [{ dev: 'nrd-vx', mac: '02:00:00:00:00:02', dst: '192.0.2.2' }],
    neighbours: [{ dev: 'nrd-vx', ip: '10.244.2.0', mac: '02:00:00:00:00:02' }],
    routes: [
      { dst: '10.244.2.0/24', type: 'unicast', nextHops: [{ gateway: '10.244.2.0', dev: 'nrd-vx', onlink: true }] },
      { dst: '10.244.3.0/24', type: 'unicast', nextHops: [{ gateway: '192.0.2.3' }, { gateway: '198.51.100.3' }] },
      { dst: '10.244.1.0/24', type: 'blackhole', nextHops: [] },
    ],
  };
}

test('programs link, FDB and neighbour before the route that needs them', async () => {
  const k = kernel();
  const r = reconciler(k);
  r.setSynced(true);
  r.setDesired(vxlanDesired());
  const rep = await r.runOnce();
  assert.deepEqual(rep.errors, []);
  const calls = k.writes.map((w) => w.call);
  const firstRoute = calls.indexOf('newRoute');
  assert.ok(calls.indexOf('newLink') < calls.indexOf('appendFdb'));
  assert.ok(calls.indexOf('appendFdb') < calls.indexOf('newNeighbor'));
  assert.ok(calls.indexOf('newNeighbor') < firstRoute);
  const vx = k.byName('nrd-vx')!;
  assert.equal(vx.up, true);
  assert.equal(vx.mtu, 1450);
  assert.deepEqual(vx.vxlan, { vni: 1, port: 4789, local: '192.0.2.1', learning: false, link: k.byName('eth0')!.index });
  const routes = k.dumpRoutes(NRD_PROTOCOL);
  assert.equal(routes.length, 3);
  const mp = routes.find((x) => x.dst === '10.244.3.0/24')!;
  assert.deepEqual(mp.nextHops.map((h) => h.gateway).sort(), ['192.0.2.3', '198.51.100.3']);
  // A second run with the same desired state writes nothing.
  const before = k.writes.length;
  const again = await r.runOnce();
  assert.equal(reportWrites(again), 0);
  assert.equal(k.writes.length, before);
});

test('restart with identical desired state writes nothing and emits no route event', async () => {
  const k = kernel();
  const r1 = reconciler(k);
  r1.setSynced(true);
  r1.setDesired(vxlanDesired());
  await r1.runOnce();
  r1.stop();
  const events: string[] = [];
  const sub = k.subscribe((e) => events.push(e.kind));
  const before = k.writes.length;
  const r2 = reconciler(k);
  r2.setDesired(vxlanDesired()); // not yet synced: a restart
  await r2.runOnce();
  r2.setSynced(true);
  await r2.runOnce();
  assert.equal(k.writes.length, before);
  assert.deepEqual(events, []);
  sub.close();
});

test('stale nrd route removed only once synced; foreign routes never touched, conflicts reported', async () => {
  const k = kernel();
  const foreign: Route = { family: 4, dst: '10.99.0.0/16', table: 254, protocol: 4, type: 'unicast', metric: 0, nextHops: [{ gateway: '192.0.2.254', ifindex: 2 }] };
  const foreignSame: Route = { family: 4, dst: '10.244.3.0/24', table: 254, protocol: 3, type: 'unicast', metric: 0, nextHops: [{ gateway: '192.0.2.254', ifindex: 2 }] };
  const stale: Route = { family: 4, dst: '10.244.9.0/24', table: 254, protocol: NRD_PROTOCOL, type: 'blackhole', metric: 0, nextHops: [] };
  k.injectRoute(foreign);
  k.injectRoute(foreignSame);
  k.injectRoute(stale);
  const r = reconciler(k);
  r.setDesired(vxlanDesired());
  const early = await r.runOnce();
  assert.ok(early.deferred >= 1);
  assert.ok(k.dumpRoutes().some((x) => x.dst === '10.244.9.0/24'), 'stale route kept until synced');
  r.setSynced(true);
  const rep = await r.runOnce();
  assert.equal(rep.routes.deleted, 1);
  const all = k.dumpRoutes();
  assert.ok(!all.some((x) => x.dst === '10.244.9.0/24'));
  assert.deepEqual(all.find((x) => x.dst === '10.99.0.0/16'), foreign);
  // The desired 10.244.3.0/24 collides with a foreign route (same table/prefix/metric): untouched.
  assert.deepEqual(all.find((x) => x.dst === '10.244.3.0/24'), foreignSame);
  assert.equal(rep.conflicts.length, 1);
});

test('a route deleted by hand is put back by the event subscription', async () => {
  const k = kernel();
  const clock = new ManualClock();
  const r = reconciler(k, clock);
  r.setSynced(true);
  r.setDesired(vxlanDesired());
  await r.start();
  assert.ok(k.removeRouteByHand('10.244.2.0/24'));
  assert.ok(!k.dumpRoutes().some((x) => x.dst === '10.244.2.0/24'));
  clock.advance(20); // debounce
  await r.runNow();
  assert.ok(k.dumpRoutes().some((x) => x.dst === '10.244.2.0/24'));
  r.stop();
});

test('changed VNI recreates the device; errors are collected, not thrown, and retried', async () => {
  const k = kernel();
  const r = reconciler(k);
  r.setSynced(true);
  r.setDesired(vxlanDesired());
  await r.runOnce();
  const oldIndex = k.byName('nrd-vx')!.index;
  r.setDesired({ ...vxlanDesired(), vxlan: { ...VX, vni: 2 } });
  k.failNext.set('newNeighbor', 'EIO');
  const rep = await r.runOnce();
  assert.equal(k.byName('nrd-vx')!.vxlan!.vni, 2);
  assert.notEqual(k.byName('nrd-vx')!.index, oldIndex);
  assert.equal(rep.errors.length, 1);
  assert.match(rep.errors[0]!, /EIO/);
  const rep2 = await r.runOnce();
  assert.deepEqual(rep2.errors, []);
  assert.equal(k.neighbours.size, 1);
});

test('vxlan device outside the owned prefix is refused', () => {
  const r = reconciler(kernel());
  assert.throws(() => r.setDesired({ ...vxlanDesired(), vxlan: { ...VX, name: 'flannel.1' } }), /is not a link routing owns/);
});

// ---- property: any sequence of desired states converges

const nodeArb = fc.record({
  n: fc.integer({ min: 1, max: 12 }),
  kind: fc.constantFrom('vxlan', 'native', 'ecmp', 'blackhole', 'direct'),
  mac: fc.integer({ min: 1, max: 250 }),
});

function desiredFrom(items: Array<{ n: number; kind: string; mac: number }>): DesiredState {
  const d: DesiredState = { vxlan: VX, fdb: [], neighbours: [], routes: [] };
  const seen = new Set<number>();
  for (const it of items) {
    if (seen.has(it.n)) continue;
    seen.add(it.n);
    const dst = `10.244.${it.n}.0/24`;
    const mac = `02:00:00:00:00:${it.mac.toString(16).padStart(2, '0')}`;
    switch (it.kind) {
      case 'vxlan':
        d.fdb.push({ dev: 'nrd-vx', mac, dst: `192.0.2.${it.n + 100}` });
        d.neighbours.push({ dev: 'nrd-vx', ip: `10.244.${it.n}.0`, mac });
        d.routes.push({ dst, type: 'unicast', nextHops: [{ gateway: `10.244.${it.n}.0`, dev: 'nrd-vx', onlink: true }] });
        break;
      case 'native':
        d.routes.push({ dst, type: 'unicast', nextHops: [{ gateway: `192.0.2.${it.n + 10}` }] });
        break;
      case 'ecmp':
        d.routes.push({ dst, type: 'unicast', nextHops: [{ gateway: `192.0.2.${it.n + 10}` }, { gateway: `198.51.100.${it.n + 10}` }] });
        break;
      case 'direct':
        d.routes.push({ dst, type: 'unicast', nextHops: [{ gateway: `192.0.2.${it.n + 100}`, dev: 'eth0' }] });
        break;
      default:
        d.routes.push({ dst, type: 'blackhole', nextHops: [] });
    }
  }
  // Two nodes may share a VTEP MAC in the random input; keep one FDB dst per MAC like the router.
  const byMac = new Map(d.fdb.map((f) => [f.mac, f]));
  d.fdb = [...byMac.values()];
  return d;
}

function assertKernelEquals(k: FakeKernel, d: DesiredState): void {
  const vx = k.byName('nrd-vx')!;
  const routes = k.dumpRoutes(NRD_PROTOCOL);
  assert.deepEqual(routes.map((r) => r.dst).sort(), d.routes.map((r) => r.dst).sort());
  for (const want of d.routes) {
    const have = routes.find((r) => r.dst === want.dst)!;
    assert.equal(have.type, want.type);
    assert.deepEqual(have.nextHops.map((h) => h.gateway).sort(), want.nextHops.map((h) => h.gateway).sort());
  }
  assert.deepEqual(
    k.fdb.filter((e) => e.ifindex === vx.index).map((e) => `${e.mac}|${e.dst}`).sort(),
    d.fdb.map((e) => `${e.mac}|${e.dst}`).sort(),
  );
  assert.deepEqual(
    [...k.neighbours.values()].filter((n) => n.ifindex === vx.index).map((n) => `${n.ip}|${n.mac}`).sort(),
    d.neighbours.map((n) => `${n.ip}|${n.mac}`).sort(),
  );
}

test('property: any sequence of desired states (with hand deletions in between) ends with kernel == desired', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ items: fc.array(nodeArb, { maxLength: 8 }), vandal: fc.option(fc.integer({ min: 1, max: 12 }), { nil: undefined }) }), { minLength: 1, maxLength: 6 }),
      async (steps) => {
        const k = kernel();
        k.injectRoute({ family: 4, dst: '10.50.0.0/16', table: 254, protocol: 2, type: 'blackhole', metric: 0, nextHops: [] });
        const r = reconciler(k);
        r.setSynced(true);
        let d: DesiredState = desiredFrom([]);
        for (const s of steps) {
          d = desiredFrom(s.items);
          r.setDesired(d);
          const rep = await r.runOnce();
          assert.deepEqual(rep.errors, []);
          if (s.vandal !== undefined) k.removeRouteByHand(`10.244.${s.vandal}.0/24`);
        }
        await r.runOnce();
        assertKernelEquals(k, d);
        assert.ok(k.dumpRoutes().some((x) => x.dst === '10.50.0.0/16'), 'foreign route survives');
        const again = await r.runOnce();
        assert.equal(reportWrites(again), 0);
        r.stop();
      },
    ),
    { numRuns: 60 },
  );
});

// ---- route keys and chunked writes

/** The real kernel reports an IPv4 route at metric 0 without RTA_PRIORITY: no metric at all. */
class NoMetricKernel extends FakeKernel {
  override async listRoutes(family: 4 | 6, table: number): Promise<Route[]> {
    return (await super.listRoutes(family, table)).map((r) => {
      if (r.metric === 0) delete r.metric;
      return r;
    });
  }
}

test('IPv4 routes read back without a metric are ours: a full resync after writing them writes nothing', async () => {
  const k = new NoMetricKernel();
  k.addLink({ name: 'eth0', mtu: 1500, up: true, mac: '02:00:00:00:01:01' });
  k.addAddress('eth0', '192.0.2.1/24');
  const r = reconciler(k);
  r.setSynced(true);
  for (let i = 0; i < 50; i++) r.setRoute(`10.0.${i}.0/24`, { type: 'unicast', nextHops: [{ gateway: '192.0.2.9' }] });
  await r.runOnce();
  assert.equal(k.dumpRoutes(NRD_PROTOCOL).length, 50);
  const writes = k.writes.length;
  const rep = await r.runOnce();
  assert.equal(reportWrites(rep), 0, JSON.stringify(rep.routes));
  assert.equal(k.writes.length, writes);
  assert.equal(rep.unchanged, 50);
});

test('a stale route of ours at another metric is deleted; the wanted one at the default metric stays', async () => {
  const k = kernel();
  await k.replaceRoute({ family: 4, dst: '10.9.0.0/24', table: 254, protocol: NRD_PROTOCOL, type: 'blackhole', metric: 7, nextHops: [] });
  const r = reconciler(k);
  r.setSynced(true);
  r.setRoute('10.9.0.0/24', { type: 'blackhole', nextHops: [] });
  const rep = await r.runOnce();
  assert.deepEqual(rep.errors, []);
  assert.deepEqual(
    k.dumpRoutes(NRD_PROTOCOL).map((x) => [x.dst, x.metric]),
    [['10.9.0.0/24', 0]],
  );
});

test('many routes go out in bounded batches, with the event loop turning between them', async () => {
  const k = kernel();
  const r = reconciler(k);
  r.setSynced(true);
  const n = 20_000;
  const body = { type: 'unicast' as const, nextHops: [{ gateway: '192.0.2.9' }] };
  for (let i = 0; i < n; i++) r.setRoute(`10.${i >> 8}.${i & 255}.0/24`, body);
  let turned = false;
  setImmediate(() => (turned = true));
  const batchesBefore = k.batches.length;
  const run = r.runOnce();
  const rep = await run;
  assert.ok(turned, 'another callback ran while the routes were being written');
  assert.equal(rep.routes.added, n);
  const sizes = k.batches.slice(batchesBefore).filter((b) => b.call === 'replaceRoutes').map((b) => b.size);
  assert.ok(sizes.length >= 3, `batches: ${sizes.join(',')}`);
  assert.ok(Math.max(...sizes) <= 8192, `batches: ${sizes.join(',')}`);
  assert.equal(k.dumpRoutes(NRD_PROTOCOL).length, n);
});

test('property: setRoute sequences against a plain Map model — kernel and desiredState() equal the model', async () => {
  const bodies = [
    { type: 'unicast' as const, nextHops: [{ gateway: '192.0.2.9' }] },
    { type: 'unicast' as const, nextHops: [{ gateway: '192.0.2.9' }, { gateway: '198.51.100.9' }] },
    { type: 'blackhole' as const, nextHops: [] },
  ];
  const prefixes = ['10.0.0.0/24', '10.0.1.0/28', '10.0.1.16/28', '2001:db8::/64', '2001:db8:1::/48', '0.0.0.0/0'];
  const op = fc.record({ p: fc.constantFrom(...prefixes), b: fc.integer({ min: -1, max: bodies.length - 1 }), run: fc.boolean() });
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
      const k = kernel();
      const r = reconciler(k);
      r.setSynced(true);
      const model = new Map<string, (typeof bodies)[number]>();
      for (const o of ops) {
        const b = o.b < 0 ? undefined : bodies[o.b]!;
        r.setRoute(o.p, b);
        if (b) model.set(o.p, b);
        else model.delete(o.p);
        if (o.run) await r.runOnce();
      }
      await r.runOnce();
      const want = [...model].map(([p, b]) => `${p} ${b.type} ${b.nextHops.map((h) => h.gateway).join(',')}`).sort();
      const kern = k.dumpRoutes(NRD_PROTOCOL).map((x) => `${x.dst} ${x.type} ${x.nextHops.map((h) => h.gateway).sort().join(',')}`).sort();
      const desired = r.desiredState().routes.map((x) => `${x.dst} ${x.type} ${x.nextHops.map((h) => h.gateway).join(',')}`).sort();
      assert.deepEqual(kern, want);
      assert.deepEqual(desired, want);
      assert.equal(reportWrites(await r.runOnce()), 0, 'a second full pass finds nothing to do');
    }),
    { numRuns: 60 },
  );
});

test('property: routes sharing slots (one per body and kernel state) — hand deletions, full replacements and restarts against a Map model', async () => {
  const bodies = [
    { type: 'unicast' as const, nextHops: [{ gateway: '192.0.2.9' }] },
    { type: 'unicast' as const, nextHops: [{ gateway: '192.0.2.9' }, { gateway: '198.51.100.9' }] },
    { type: 'blackhole' as const, nextHops: [] },
  ];
  const prefixes = ['10.0.0.0/24', '10.0.2.0/24', '10.0.3.0/24', '10.0.1.0/28', '10.0.0.0/8', '2001:db8::/64', '0.0.0.0/0'];
  const op = fc.oneof(
    fc.record({ kind: fc.constant('set' as const), p: fc.constantFrom(...prefixes), b: fc.integer({ min: -1, max: bodies.length - 1 }) }),
    fc.record({ kind: fc.constant('hand' as const), p: fc.constantFrom(...prefixes) }),
    fc.record({ kind: fc.constant('all' as const), b: fc.integer({ min: 0, max: bodies.length - 1 }), n: fc.integer({ min: 0, max: prefixes.length }) }),
    fc.record({ kind: fc.constant('run' as const) }),
    fc.record({ kind: fc.constant('restart' as const) }),
  );
  await fc.assert(
    fc.asyncProperty(fc.array(op, { maxLength: 40 }), async (ops) => {
      const k = kernel();
      // Started (kernel events mark keys dirty); 'run' is a delta pass over the dirty keys only.
      const delta = (x: Reconciler): Promise<unknown> => (x as unknown as { run(full: boolean): Promise<unknown> }).run(false);
      let r = reconciler(k);
      r.setSynced(true);
      await r.start();
      const model = new Map<string, (typeof bodies)[number]>();
      for (const o of ops) {
        if (o.kind === 'set') {
          const b = o.b < 0 ? undefined : bodies[o.b]!;
          r.setRoute(o.p, b);
          if (b) model.set(o.p, b);
          else model.delete(o.p);
        } else if (o.kind === 'hand') {
          k.removeRouteByHand(o.p);
        } else if (o.kind === 'all') {
          // One shared body for the first n prefixes: the full-state API.
          model.clear();
          for (const p of prefixes.slice(0, o.n)) model.set(p, bodies[o.b]!);
          r.setDesired({ fdb: [], neighbours: [], routes: [...model].map(([dst, b]) => ({ dst, ...b })) });
        } else if (o.kind === 'run') {
          await delta(r);
        } else {
          // A new reconciler over the same kernel adopts what the last one left.
          r.stop();
          r = reconciler(k);
          r.setSynced(true);
          for (const [p, b] of model) r.setRoute(p, b);
          await r.start();
        }
      }
      await delta(r);
      const want = [...model].map(([p, b]) => `${p} ${b.type} ${b.nextHops.map((h) => h.gateway).join(',')}`).sort();
      const kern = k.dumpRoutes(NRD_PROTOCOL).map((x) => `${x.dst} ${x.type} ${x.nextHops.map((h) => h.gateway).sort().join(',')}`).sort();
      assert.deepEqual(kern, want);
      assert.equal(reportWrites(await r.runOnce()), 0, 'a second full pass finds nothing to do');
      r.stop();
    }),
    { numRuns: 80 },
  );
});

test('a bulk write mutes the echoes of its own protocol while it runs, then reads everything back', async () => {
  const calls: Array<[number, boolean]> = [];
  class MutingKernel extends FakeKernel {
    muteRouteEvents(protocol: number, muted: boolean): void {
      calls.push([protocol, muted]);
    }
  }
  const k = new MutingKernel();
  k.addLink({ name: 'eth0', mtu: 1500, up: true, mac: '02:00:00:00:01:01' });
  k.addAddress('eth0', '192.0.2.1/24');
  const clock = new ManualClock();
  const r = new Reconciler(k, { log: silentLogger(), clock, resyncIntervalMs: 0, bulkQuietMs: 2000 });
  await r.start();
  r.setSynced(true);
  const body = { type: 'unicast' as const, nextHops: [{ gateway: '192.0.2.9' }] };
  // A small write does not mute.
  for (let i = 0; i < 100; i++) r.setRoute(`10.1.0.${i}/32`, body);
  await r.runNow();
  assert.deepEqual(calls, []);
  for (let i = 0; i < 20_000; i++) r.setRoute(`10.${2 + (i >> 8)}.${i & 255}.0/24`, body);
  await r.runNow();
  assert.deepEqual(calls, [
    [NRD_PROTOCOL, true],
    [NRD_PROTOCOL, false],
  ]);
  const full = r.totals.fullRuns;
  clock.advance(2000);
  // The debounce of the runs queued meanwhile: keep time moving until the read-back has run.
  for (let i = 0; i < 500 && r.totals.fullRuns === full; i++) {
    clock.advance(20);
    await new Promise((res) => setImmediate(res));
  }
  assert.ok(r.totals.fullRuns > full, 'a full read-back follows the bulk write (its own timer)');
  assert.equal(k.dumpRoutes(NRD_PROTOCOL).length, 20_100);
  r.stop();
});

test('a route deleted by hand while a full read-back runs is put back by the next pass (the event wins over the older dump)', async () => {
  class DumpHookKernel extends FakeKernel {
    onDump: (() => void) | undefined;
    override async listRoutes(family: 4 | 6, table: number) {
      const rs = await super.listRoutes(family, table);
      // The kernel's answer is taken; then the route goes (its notification follows the dump).
      const hook = this.onDump;
      this.onDump = undefined;
      hook?.();
      return rs;
    }
  }
  const k = new DumpHookKernel();
  k.addLink({ name: 'eth0', mtu: 1500, up: true, mac: '02:00:00:00:01:01' });
  k.addAddress('eth0', '192.0.2.1/24');
  const clock = new ManualClock();
  const r = reconciler(k, clock);
  r.setSynced(true);
  const body = { type: 'unicast' as const, nextHops: [{ gateway: '192.0.2.9' }] };
  for (let i = 0; i < 10_000; i++) r.setRoute(`10.${i >> 8}.${i & 255}.0/24`, body);
  await r.start();
  assert.equal(k.dumpRoutes(NRD_PROTOCOL).length, 10_000);
  k.onDump = () => assert.ok(k.removeRouteByHand('10.0.7.0/24'));
  await r.runNow();
  // The deletion's event marked the key dirty; a delta pass (no read-back) puts the route back.
  await (r as unknown as { run(full: boolean): Promise<unknown> }).run(false);
  assert.ok(k.dumpRoutes(NRD_PROTOCOL).some((x) => x.dst === '10.0.7.0/24'), 'route put back');
  r.stop();
});
