// The routing subsystem against the fake kernel with a manual clock: inputs given before start are
// applied at start, readiness (VXLAN device + first reconcile; failing objects named; a missing
// underlay retried), the VTEP MAC hook, failover counted in nrd_route_switches_total, GET /v1/routes
// and nrdctl's table, nrd_kernel_writes_total/nrd_reconcile_runs_total/nrd_routes, and reloads:
// a mode change rewrites only the routes whose path changes, routeProtocol is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { loadConfigObject, type ConfigChange, type NrdConfig } from '../../../daemon/config/index.js';
import type { SubsystemContext } from '../../../daemon/daemon.js';
import type { Readiness } from '../../../daemon/lib/health.js';
import { silentLogger } from '../../../daemon/lib/log.js';
import { Router as ApiRouter } from '../../../daemon/api/router.js';
import { RoutingSubsystem } from '../../../daemon/routing/subsystem.js';
import { registerRoutingRoutes } from '../../../daemon/api/routing-routes.js';
import type { RoutesApiResponse } from '../../../daemon/routing/api-types.js';
import type { RemoteNode } from '../../../daemon/routing/types.js';
import { formatRouting, parseRoutingArgs, routingPath } from '../../../daemon/cli/commands/routing.js';
import { NRD_PROTOCOL } from '../../../daemon/kernel/types.js';
import { FakeKernel, ManualClock } from '../../lib/fake-kernel.js';

function config(extra: Record<string, unknown> = {}): NrdConfig {
  const r = loadConfigObject(
    {
      node: { name: 'n1', address: '192.0.2.1', interface: 'eth0', podCIDRs: ['10.244.1.0/24'], stateDir: '/tmp/nrdt-unused' },
      cluster: { podCIDRs: ['10.244.0.0/16'] },
      ...extra,
    },
    { env: {} },
  );
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

const N2: RemoteNode = { name: 'n2', underlay: '192.0.2.2', vtepMac: '02:00:00:00:00:02', cidrs: ['10.244.2.0/24'] };
const N4: RemoteNode = { name: 'n4', underlay: '203.0.113.4', vtepMac: '02:00:00:00:00:04', cidrs: ['10.244.4.0/24'] };

function kernel(withUplink = true): FakeKernel {
  const k = new FakeKernel();
  if (withUplink) {
    k.addLink({ name: 'eth0', mtu: 1500, up: true, mac: '02:00:00:00:01:01' });
    k.addAddress('eth0', '192.0.2.1/24');
  }
  k.sysctls.set('net/ipv4/conf/nrd.vxlan/rp_filter', '0');
  return k;
}

interface Rig {
  k: FakeKernel;
  clock: ManualClock;
  sub: RoutingSubsystem;
  api: ApiRouter;
  registry: Registry;
  readiness: Readiness[];
  ctx: SubsystemContext;
}

function rig(k = kernel(), cfg = config()): Rig {
  const clock = new ManualClock(5_000);
  const api = new ApiRouter();
  const registry = new Registry();
  const readiness: Readiness[] = [];
  const sub = new RoutingSubsystem({ metrics: registry, port: k, clock, reconciler: { resyncIntervalMs: 0 }, retryMs: 20 });
  registerRoutingRoutes(api, sub);
  const ctx: SubsystemContext = { config: cfg, log: silentLogger(), ready: (r) => readiness.push(r) };
  return { k, clock, sub, api, registry, readiness, ctx };
}

/** Let the coalesced recompute run, fire the reconciler's debounce, and wait for the run. */
async function settle(r: Rig): Promise<void> {
  for (let i = 0; i < 3; i++) await Promise.resolve();
  r.clock.advance(20);
  await r.sub.router!.reconciler.runNow();
}

async function metric(reg: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const m = (await reg.getMetricsAsJSON()).find((x) => x.name === name);
  const v = (m?.values ?? []).find((x) => Object.entries(labels).every(([k, val]) => (x.labels as Record<string, unknown>)[k] === val));
  return v?.value ?? 0;
}

async function routesApi(api: ApiRouter, q = ''): Promise<{ status: number; body: RoutesApiResponse }> {
  const r = await api.handle({ method: 'GET', url: `/v1/routes${q}`, body: '' });
  return r as { status: number; body: RoutesApiResponse };
}

test('inputs before start are applied; ready once the VXLAN device exists and the first reconcile ran; VTEP MAC hook', async () => {
  const r = rig();
  r.sub.setOwnCidrs(['10.244.1.0/24']);
  r.sub.setNodes([N2, N4], true);
  r.sub.applyBgpChange({ prefix: '10.244.2.0/24', nextHops: ['192.0.2.254'] });
  r.sub.setBgpSynced(true);
  const macs: string[] = [];
  r.sub.onVtepMac((m) => macs.push(m));
  assert.equal(r.sub.vtepMac(), undefined);
  await r.sub.start(r.ctx);
  await settle(r);
  const vx = r.k.byName('nrd.vxlan');
  assert.ok(vx, 'VXLAN device created');
  assert.equal(vx.mtu, 1450, 'underlay MTU minus 50');
  assert.equal(r.sub.vtepMac(), vx.mac);
  assert.deepEqual(macs, [vx.mac]);
  const last = r.readiness.at(-1)!;
  assert.equal(last.ready, true, JSON.stringify(last));
  const routes = r.k.dumpRoutes(NRD_PROTOCOL).map((x) => `${x.dst} ${x.type} ${x.nextHops.map((h) => h.gateway).join(',')}`);
  assert.deepEqual(routes, ['10.244.1.0/24 blackhole ', '10.244.2.0/24 unicast 192.0.2.254', '10.244.4.0/24 unicast 10.244.4.0']);
  assert.ok(r.k.batches.some((b) => b.call === 'replaceRoutes' && b.size === 3), 'routes go out as one batch');
  assert.equal(await metric(r.registry, 'nrd_kernel_writes_total', { op: 'link_create', result: 'ok' }), 1);
  assert.equal(await metric(r.registry, 'nrd_kernel_writes_total', { op: 'route_replace', result: 'ok' }), 3);
  assert.ok((await metric(r.registry, 'nrd_reconcile_runs_total')) >= 1);
  assert.equal(await metric(r.registry, 'nrd_routes', { mode: 'native' }), 1);
  assert.equal(await metric(r.registry, 'nrd_routes', { mode: 'vxlan' }), 1);
  assert.equal(await metric(r.registry, 'nrd_routes', { mode: 'local' }), 1);
  r.sub.stop();
});

test('failover is counted, shown by GET /v1/routes and nrdctl routes; bad queries get 400', async () => {
  const r = rig();
  r.sub.setNodes([N2, N4], true);
  r.sub.setBgpRoutes([{ prefix: '10.244.2.0/24', nextHops: ['192.0.2.254'] }], true);
  await r.sub.start(r.ctx);
  await settle(r);
  r.clock.advance(5000);
  r.sub.applyBgpChange({ prefix: '10.244.2.0/24', nextHops: [] });
  await settle(r);
  assert.equal(await metric(r.registry, 'nrd_route_switches_total', { from: 'native', to: 'direct' }), 1);
  assert.equal(await metric(r.registry, 'nrd_route_switches_total', { from: 'native', to: 'vxlan' }), 0);
  r.clock.advance(3000);
  const { status, body } = await routesApi(r.api);
  assert.equal(status, 200);
  assert.equal(body.mode, 'auto');
  assert.deepEqual(body.counts, { local: 1, direct: 1, vxlan: 1 });
  const n2 = body.routes.find((x) => x.prefix === '10.244.2.0/24')!;
  // n2 is on the connected subnet: without BGP, auto takes the direct (host-gw) path.
  assert.equal(n2.mode, 'direct');
  assert.equal(n2.node, 'n2');
  assert.deepEqual(n2.nextHops, ['192.0.2.2']);
  assert.equal(n2.sinceSeconds, 3);
  // `since` is wall-clock time even though the clock is monotonic: 3 s before now.
  const ago = Date.now() - Date.parse(n2.since);
  assert.ok(ago >= 2900 && ago < 60_000, `since ${n2.since} is ${ago} ms ago`);
  assert.equal(body.switches['native->direct'], 1);
  const vx = (await routesApi(r.api, '?mode=vxlan&limit=1')).body;
  assert.equal(vx.total, 1);
  assert.equal(vx.routes[0]!.prefix, '10.244.4.0/24');
  const table = formatRouting(body);
  assert.match(table, /^PREFIX\s+NODE\s+MODE\s+NEXT HOPS\s+SINCE$/m);
  assert.match(table, /^10\.244\.2\.0\/24\s+n2\s+direct\s+192\.0\.2\.2\s+3s ago$/m);
  assert.match(table, /^10\.244\.4\.0\/24\s+n4\s+vxlan\s+203\.0\.113\.4\s+/m);
  assert.equal((await routesApi(r.api, '?mode=bogus')).status, 400);
  assert.equal((await routesApi(r.api, '?limit=-1')).status, 400);
  assert.deepEqual(parseRoutingArgs(['--mode', 'vxlan', '--limit=5']), { mode: 'vxlan', limit: '5' });
  assert.equal(routingPath({ mode: 'vxlan' }), '/v1/routes?mode=vxlan');
  assert.match(String(parseRoutingArgs(['x'])), /unexpected argument/);
  r.sub.stop();
});

test('reload: a mode change rewrites only the routes whose path changes; routeProtocol is refused', async () => {
  const cfg = config();
  const r = rig(kernel(), cfg);
  r.sub.setNodes([N2, N4], true);
  r.sub.setBgpRoutes([{ prefix: '10.244.2.0/24', nextHops: ['192.0.2.254'] }], true);
  await r.sub.start(r.ctx);
  await settle(r);
  r.k.writes.length = 0;
  const next = config({ routing: { mode: 'vxlan' } });
  const changes: ConfigChange[] = [{ key: 'routing.mode', from: 'auto', to: 'vxlan' }];
  await r.sub.reload(changes, next);
  await settle(r);
  // Only n2's route moved (native → vxlan); the own blackhole and n4's VXLAN route were not touched,
  // nor the device, FDB or neighbours.
  assert.deepEqual(
    r.k.writes.map((w) => `${w.call} ${w.key}`),
    ['newRoute 4|254|10.244.2.0/24|0'],
  );
  const n2 = r.k.dumpRoutes(NRD_PROTOCOL).find((x) => x.dst === '10.244.2.0/24')!;
  assert.equal(n2.nextHops[0]!.gateway, '10.244.2.0');
  assert.equal(n2.nextHops[0]!.onlink, true);
  assert.equal(r.sub.router!.options.mode, 'vxlan');
  await assert.rejects(
    r.sub.reload([{ key: 'routing.routeProtocol', from: 220, to: 230 }], config({ routing: { routeProtocol: 230 } })),
    /routeProtocol cannot change while nrd runs/,
  );
  // Hold-down reload: applies without any kernel write.
  r.k.writes.length = 0;
  await r.sub.reload([{ key: 'routing.failoverHoldDown', from: 30, to: 5 }], config({ routing: { mode: 'vxlan', failoverHoldDown: 5 } }));
  await settle(r);
  assert.equal(r.sub.router!.options.holdDownMs, 5000);
  assert.deepEqual(r.k.writes, []);
  r.sub.stop();
});

test('readiness names what fails: a missing underlay (retried until it appears), a VXLAN device the kernel refuses', async () => {
  const k = kernel(false);
  const r = rig(k);
  await r.sub.start(r.ctx);
  assert.equal(r.readiness.at(-1)!.ready, false);
  assert.match(r.readiness.at(-1)!.reason!, /underlay interface eth0 does not exist/);
  k.addLink({ name: 'eth0', mtu: 9000, up: true });
  k.addAddress('eth0', '192.0.2.1/24');
  const end = Date.now() + 3000;
  while (!r.sub.router?.underlayInfo() && Date.now() < end) await new Promise((res) => setTimeout(res, 10));
  await settle(r);
  assert.equal(r.readiness.at(-1)!.ready, true, JSON.stringify(r.readiness.at(-1)));
  assert.equal(k.byName('nrd.vxlan')!.mtu, 8950);
  r.sub.stop();

  const k2 = kernel();
  k2.failNext.set('newLink', 'EPERM');
  const r2 = rig(k2);
  await r2.sub.start(r2.ctx);
  const st = r2.readiness.at(-1)!;
  assert.equal(st.ready, false);
  assert.match(st.reason!, /^VXLAN device nrd\.vxlan missing: vxlan nrd\.vxlan: .*EPERM/);
  // The reconciler retries after a failed run; the device comes and readiness follows.
  r2.clock.advance(1000);
  await r2.sub.router!.reconciler.runNow();
  assert.equal(r2.readiness.at(-1)!.ready, true);
  r2.sub.stop();
});

test('a neighbour or FDB entry deleted by hand triggers a reconcile that puts it back', async () => {
  const r = rig();
  r.sub.setNodes([N4], true);
  await r.sub.start(r.ctx);
  await settle(r);
  const vx = r.k.byName('nrd.vxlan')!;
  assert.ok(r.k.neighbours.has(`${vx.index}|10.244.4.0`));
  const runs = r.sub.router!.reconciler.totals.runs;
  assert.ok(r.k.removeNeighbourByHand(vx.index, '10.244.4.0'));
  assert.ok(r.k.removeFdbByHand(vx.index, '02:00:00:00:00:04'));
  // Only the notification can trigger this run: periodic resync is off in this rig.
  await settle(r);
  assert.ok(r.sub.router!.reconciler.totals.runs > runs);
  assert.ok(r.k.neighbours.has(`${vx.index}|10.244.4.0`), 'neighbour restored');
  assert.ok(r.k.fdb.some((e) => e.ifindex === vx.index && e.mac === '02:00:00:00:00:04' && e.dst === '203.0.113.4'), 'FDB entry restored');
  // A foreign neighbour event on another device schedules nothing.
  const before = r.sub.router!.reconciler.totals.runs;
  await r.k.replaceNeighbour({ ifindex: r.k.byName('eth0')!.index, ip: '192.0.2.77', mac: '02:00:00:00:00:77' });
  r.clock.advance(50);
  await Promise.resolve();
  assert.equal(r.sub.router!.reconciler.totals.runs, before);
  r.sub.stop();
});
