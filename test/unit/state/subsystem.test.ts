// The 'state' subsystem over the fake store: config → ClusterState mapping, readiness (ready,
// etcd unreachable at start without blocking, degraded), the hooks for other subsystems (own
// CIDRs, remote nodes with the "routes stay until reclaimed" rule, VTEP MAC), metrics, the /v1
// routes (invalid input refused with the reason and nothing written), and nrdctl's state commands
// against a real unix-socket API server.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { Router } from '../../../daemon/api/router.js';
import { registerStateRoutes } from '../../../daemon/api/state-routes.js';
import { closeUnix, createApiServer, listenUnix } from '../../../daemon/api/server.js';
import { runNrdctl } from '../../../daemon/cli/run.js';
import { parseBackend, parseFlags, serviceFromFlags } from '../../../daemon/cli/commands/state.js';
import { commands } from '../../../daemon/cli/commands.js';
import { loadConfigObject, type NrdConfig } from '../../../daemon/config/index.js';
import type { SubsystemContext } from '../../../daemon/daemon.js';
import type { Readiness } from '../../../daemon/lib/health.js';
import { silentLogger } from '../../../daemon/lib/log.js';
import { Keys } from '../../../daemon/state/keys.js';
import type { ServiceRecord } from '../../../daemon/state/records.js';
import { clusterStateOptions, StateSubsystem, type OwnCidrs, type RemoteNodeView } from '../../../daemon/state/subsystem.js';
import { FakeStore } from '../../lib/fake-store.js';

function config(extra: Record<string, unknown> = {}): NrdConfig {
  const r = loadConfigObject({ node: { name: 'n1', address: '192.0.2.1', stateDir: '/tmp/nrdt-unused' }, cluster: { podCIDRs: ['10.244.0.0/16', 'fd00:244::/48'] }, ...extra }, { env: {} });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

interface Rig {
  sub: StateSubsystem;
  store: FakeStore;
  router: Router;
  registry: Registry;
  readiness: () => Readiness;
  start: () => Promise<void>;
}

function rig(t: { after: (fn: () => Promise<void> | void) => void }, store = new FakeStore()): Rig {
  const router = new Router();
  const registry = new Registry();
  const sub = new StateSubsystem({
    metrics: registry,
    store,
    overrides: { maxBackoffMs: 100, reclaimCheckMs: 20, reclaimGraceMs: 50, log: silentLogger() },
    readinessIntervalMs: 20,
    startGraceMs: 2000,
  });
  let last: Readiness = { ready: false, reason: 'not started' };
  const ctx: SubsystemContext = { config: config(), log: silentLogger(), ready: (r) => (last = r) };
  registerStateRoutes(router, sub.queries);
  t.after(() => sub.stop());
  return { sub, store, router, registry, readiness: () => last, start: () => Promise.resolve(sub.start(ctx)) };
}

const K = new Keys('/nrd/v1');

test('config mapping: prefix/v1, one pool per family with its mask, static CIDRs by family, TLS and auth only when set', () => {
  const o = clusterStateOptions(config({ node: { name: 'Node-A', address: '192.0.2.1', podCIDRs: ['10.244.7.0/24'] }, etcd: { prefix: '/site', username: 'u', password: 'p' } }));
  assert.equal(o.prefix, '/site/v1');
  assert.equal(o.node.name, 'node-a');
  assert.deepEqual(o.pools, [
    { name: 'ipv4', cidr: '10.244.0.0/16', maskSize: 24 },
    { name: 'ipv6', cidr: 'fd00:244::/48', maskSize: 64 },
  ]);
  assert.deepEqual(o.staticCidrs, { ipv4: '10.244.7.0/24' });
  assert.deepEqual(o.auth, { username: 'u', password: 'p' });
  assert.equal(o.tls, undefined);
  assert.equal(o.reclaimGraceMs, 900_000);
});

test('start: ready with both CIDRs claimed; onOwnCidrs fires (and replays to late subscribers); metrics', async (t) => {
  const r = rig(t);
  const seen: OwnCidrs[] = [];
  r.sub.onOwnCidrs((c) => seen.push(c));
  await r.start();
  await until(() => r.readiness().ready, 5000, 'ready');
  assert.equal(seen.length, 1);
  assert.match(seen[0]!.ipv4 ?? '', /^10\.244\.\d+\.0\/24$/);
  assert.match(seen[0]!.ipv6 ?? '', /^fd00:244:0:[0-9a-f]+::\/64$/);
  const late: OwnCidrs[] = [];
  r.sub.onOwnCidrs((c) => late.push(c));
  assert.deepEqual(late, seen);
  // The claims are in etcd under the configured prefix.
  assert.equal(r.store.peekPrefix(K.cidrPool('ipv4')).length, 1);
  await r.sub.cluster!.createEndpoint({ id: 'e1', netns: '/x' });
  const text = await r.registry.metrics();
  assert.match(text, /^nrd_etcd_up 1$/m);
  assert.match(text, /^nrd_etcd_requests_total\{op="txn",result="ok"\} \d+$/m);
  assert.match(text, /^nrd_etcd_requests_total\{op="list",result="ok"\} \d+$/m);
  assert.match(text, /^nrd_cidr_allocated\{family="ipv4"\} 1$/m);
  assert.match(text, /^nrd_cidr_allocated\{family="ipv6"\} 1$/m);
  assert.match(text, /^nrd_cidr_pool_size\{family="ipv4"\} 256$/m);
  assert.match(text, /^nrd_ipam_allocations_total 1$/m);
  assert.match(text, /^nrd_etcd_lease_regrants_total 0$/m);
  assert.match(text, /^nrd_etcd_relists_total\{collection="nodes"\} 0$/m);
});

test('etcd down at start: start returns at once, readiness names it; ready once etcd answers; later outage is "degraded"', async (t) => {
  const store = new FakeStore();
  store.setDown(true);
  const r = rig(t, store);
  const t0 = Date.now();
  await r.start();
  assert.ok(Date.now() - t0 < 1500, `start took ${Date.now() - t0} ms`);
  await until(() => /etcd unreachable since \d{4}-/.test(r.readiness().reason ?? ''), 3000, 'unreachable reason');
  assert.equal(r.readiness().ready, false);
  assert.match(await r.registry.metrics(), /^nrd_etcd_up 0$/m);
  assert.match(await r.registry.metrics(), /^nrd_etcd_requests_total\{op="list",result="unavailable"\} \d+$/m);
  store.setDown(false);
  await until(() => r.readiness().ready, 5000, 'ready after etcd returns');
  store.setDown(true);
  await until(() => /^degraded, working from cached state: etcd unreachable/.test(r.readiness().reason ?? ''), 3000, 'degraded');
  // The reason does not change with every retry (STATUS= and logs stay quiet).
  const reason = r.readiness().reason;
  await new Promise((res) => setTimeout(res, 300));
  assert.equal(r.readiness().reason, reason);
  store.setDown(false);
  await until(() => r.readiness().ready, 5000, 'ready again');
  assert.match(await r.registry.metrics(), /^nrd_etcd_relists_total\{collection="nodes"\} [1-9]\d*$/m);
});

test('onNodes: others with liveness or a claim; routes stay while liveness blips, go when the claim goes; synced flag', async (t) => {
  const store = new FakeStore();
  store.seed(K.node('n2'), JSON.stringify({ name: 'n2', address: '192.0.2.2', vtepMac: '02:00:00:00:00:02', asn: 64512, podCidrs: ['10.244.2.0/24'], version: 'x', capabilities: [] }));
  store.seed(K.cidr('ipv4', '10.244.2.0/24'), JSON.stringify({ node: 'n2', at: 'x' }));
  store.seed(K.aliveKey('n2'), JSON.stringify({ address: '192.0.2.2' }));
  store.seed(K.aliveKey('n3'), JSON.stringify({ address: '192.0.2.3' })); // alive, no CIDR yet
  const r = rig(t, store);
  const calls: { nodes: RemoteNodeView[]; synced: boolean }[] = [];
  r.sub.onNodes((nodes, synced) => calls.push({ nodes, synced }));
  await r.start();
  await until(() => calls.some((c) => c.synced), 3000, 'synced nodes');
  const last = () => calls[calls.length - 1]!;
  assert.deepEqual(last().nodes, [
    { name: 'n2', address: '192.0.2.2', cidrs: ['10.244.2.0/24'], alive: true, vtepMac: '02:00:00:00:00:02', asn: 64512 },
    { name: 'n3', address: '192.0.2.3', cidrs: [], alive: true },
  ]);
  assert.ok(!last().nodes.some((n) => n.name === 'n1'), 'ourselves excluded');
  // Liveness of n2 gone: still listed, CIDR kept (routes stay).
  const n = calls.length;
  await store.delete(K.aliveKey('n2'));
  await until(() => calls.length > n, 2000, 'nodes after liveness loss');
  assert.deepEqual(last().nodes.find((x) => x.name === 'n2')?.cidrs, ['10.244.2.0/24']);
  assert.equal(last().nodes.find((x) => x.name === 'n2')?.alive, false);
  // The claim goes (reclaim or decommission): n2 keeps its record but has no CIDR, so no routes.
  const m = calls.length;
  await store.delete(K.cidr('ipv4', '10.244.2.0/24'));
  await until(() => calls.length > m, 2000, 'nodes after reclaim');
  assert.equal(last().nodes.find((x) => x.name === 'n2'), undefined, 'no liveness and no claim: not listed');
  // A late subscriber gets the current list at once.
  let replay: RemoteNodeView[] | undefined;
  r.sub.onNodes((nodes) => (replay = nodes));
  assert.deepEqual(replay, last().nodes);
});

test('onServices: the same frozen objects for unchanged records, one set per tick, only once listed, only on a change; a throwing consumer stops no other; a restart holds its partial view and keeps identities', async (t) => {
  const store = new FakeStore();
  const svc = (i: number, backends = 2): string => JSON.stringify({ name: `s${i}`, vip: `10.96.0.${i}`, port: 80, backends: Array.from({ length: backends }, (_, b) => ({ ip: `10.244.${b}.${i}`, port: 8080 })) });
  for (let i = 1; i <= 50; i++) store.seed(K.service(`s${i}`), svc(i));
  store.setDown(true);
  const r = rig(t, store);
  const sets: (readonly ServiceRecord[])[] = [];
  let thrown = 0;
  r.sub.onServices(() => {
    thrown++;
    throw new Error('consumer bug');
  });
  r.sub.onServices((s) => sets.push(s));
  await r.start();
  await new Promise((res) => setTimeout(res, 100));
  assert.equal(sets.length, 0, 'nothing before the collection is listed');
  store.setDown(false);
  await until(() => sets.length > 0, 3000, 'first service set');
  const first = sets[0]!;
  assert.equal(first.length, 50);
  assert.ok(Object.isFrozen(first) && first.every((x) => Object.isFrozen(x) && Object.isFrozen(x.backends)));
  const named = (set: readonly ServiceRecord[], n: string) => set.find((x) => x.name === n);

  // Three changes in one tick: one set; every record not written is the same object as before.
  store.seed(K.service('s51'), svc(51));
  store.seed(K.service('s2'), svc(2, 3));
  await store.delete(K.service('s3'));
  await until(() => sets.length > 1, 2000, 'second set');
  await new Promise((res) => setImmediate(res));
  assert.equal(sets.length, 2, 'coalesced per tick');
  const second = sets[1]!;
  assert.equal(second.length, 50);
  assert.equal(named(second, 's2')!.backends.length, 3);
  assert.equal(named(second, 's3'), undefined);
  for (const x of second) if (x.name !== 's2' && x.name !== 's51') assert.equal(x, named(first, x.name), `${x.name} keeps its object`);
  assert.equal(thrown, 2, 'the throwing consumer is called each time and stops nobody');

  // A value rewritten equal (other field order): no set.
  store.seed(K.service('s4'), JSON.stringify({ port: 80, vip: '10.96.0.4', name: 's4', backends: JSON.parse(svc(4)).backends }));
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(sets.length, 2, 'nothing changed: nothing handed out');

  // A late subscriber gets the current set itself.
  let replay: readonly ServiceRecord[] | undefined;
  r.sub.onServices((s) => (replay = s));
  assert.equal(replay, second);

  // State-layer restart while etcd is down: no partial (empty) view reaches the consumers; the
  // changes made meanwhile arrive as one set once listed, the untouched records the same objects.
  store.setDown(true);
  await r.sub.reload([{ key: 'etcd.leaseTTL', from: 10, to: 11 }], config());
  store.seed(K.service('s5'), svc(5, 1));
  store.seed(K.service('s6'), JSON.stringify({ name: 'other', vip: '10.96.0.6', port: 80 })); // refused: name is not the key's
  await new Promise((res) => setTimeout(res, 100));
  assert.equal(sets.length, 2, 'held back until the new instance has listed');
  store.setDown(false);
  await until(() => sets.length > 2, 3000, 'set after restart');
  const third = sets[2]!;
  assert.equal(third.length, 49);
  assert.equal(named(third, 's5')!.backends.length, 1);
  assert.equal(named(third, 's6'), undefined);
  for (const x of third) if (x.name !== 's5') assert.equal(x, named(second, x.name), `${x.name} keeps its object across the restart`);
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(sets.length, 3);
});

test('records refused on admission: bad claims (0.0.0.0/0, outside the pool, wrong mask) and a bad node are skipped, the good ones still flow, counted and listed', async (t) => {
  const store = new FakeStore();
  const node = (name: string, address: string, extra: Record<string, unknown> = {}): string =>
    JSON.stringify({ name, address, podCidrs: [], version: 'x', capabilities: [], ...extra });
  // Good: n2 and n5 with a claim each.
  store.seed(K.node('n2'), node('n2', '192.0.2.2', { vtepMac: '02:00:00:00:00:02' }));
  store.seed(K.cidr('ipv4', '10.244.2.0/24'), JSON.stringify({ node: 'n2', at: 'x' }));
  store.seed(K.node('n5'), node('n5', '192.0.2.5'));
  store.seed(K.cidr('ipv4', '10.244.5.0/24'), JSON.stringify({ node: 'n5', at: 'x' }));
  // The attack: a default route via n2, and blocks outside the pool or of the wrong size.
  store.seed(K.cidr('ipv4', '0.0.0.0/0'), JSON.stringify({ node: 'n2', at: 'x' }));
  store.seed(K.cidr('ipv4', '192.168.0.0/24'), JSON.stringify({ node: 'n2', at: 'x' }));
  store.seed(K.cidr('ipv4', '10.244.6.0/23'), JSON.stringify({ node: 'n5', at: 'x' }));
  store.seed(K.cidr('ipv4', 'not-a-cidr'), JSON.stringify({ node: 'n5', at: 'x' }));
  store.seed(K.cidr('ipv6', '10.244.7.0/24'), JSON.stringify({ node: 'n5', at: 'x' }));
  // Bad nodes next to the good ones: an address that is no IP, a multicast VTEP MAC, loopback.
  store.seed(K.node('n3'), node('n3', 'not-an-ip'));
  store.seed(K.cidr('ipv4', '10.244.3.0/24'), JSON.stringify({ node: 'n3', at: 'x' }));
  store.seed(K.node('n4'), node('n4', '192.0.2.4', { vtepMac: '01:00:5e:00:00:01' }));
  store.seed(K.cidr('ipv4', '10.244.4.0/24'), JSON.stringify({ node: 'n4', at: 'x' }));
  store.seed(K.aliveKey('n6'), JSON.stringify({ address: '127.0.0.1' }));
  const r = rig(t, store);
  const calls: { nodes: RemoteNodeView[]; synced: boolean }[] = [];
  r.sub.onNodes((nodes, synced) => calls.push({ nodes, synced }));
  await r.start();
  await until(() => calls.some((c) => c.synced), 3000, 'synced nodes');
  const last = () => calls[calls.length - 1]!.nodes;
  assert.deepEqual(last(), [
    { name: 'n2', address: '192.0.2.2', cidrs: ['10.244.2.0/24'], alive: false, vtepMac: '02:00:00:00:00:02' },
    { name: 'n5', address: '192.0.2.5', cidrs: ['10.244.5.0/24'], alive: false },
  ]);
  const text = await r.registry.metrics();
  const count = (kind: string, reason: string): number => Number(new RegExp(`^nrd_state_rejected_records_total\\{kind="${kind}",reason="${reason}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? 0);
  assert.equal(count('cidrs', 'outside_pool'), 3, text);
  assert.equal(count('cidrs', 'wrong_mask'), 1);
  assert.equal(count('cidrs', 'bad_cidr'), 1);
  assert.equal(count('nodes', 'bad_address'), 1);
  assert.equal(count('nodes', 'bad_mac'), 1);
  assert.equal(count('alive', 'bad_address'), 1);
  // nrdctl nodes shows what was refused and why.
  const res = await r.router.handle({ method: 'GET', url: '/v1/nodes', body: '' });
  const rejected = (res.body as { rejected?: { kind: string; key: string; reason: string }[] }).rejected ?? [];
  assert.ok(rejected.some((x) => x.kind === 'cidrs' && x.key === K.cidr('ipv4', '0.0.0.0/0') && x.reason === 'outside_pool'), JSON.stringify(rejected));
  assert.ok(rejected.some((x) => x.kind === 'nodes' && x.key === K.node('n3') && x.reason === 'bad_address'));
  // Fixing a record lets it in; the refusal is forgotten.
  await store.put(K.node('n3'), node('n3', '192.0.2.3'));
  await until(() => last().some((n) => n.name === 'n3'), 2000, 'n3 after its address is fixed');
  assert.deepEqual(last().find((n) => n.name === 'n3')?.cidrs, ['10.244.3.0/24']);
  assert.ok(!r.sub.cluster!.nodeRejections().some((x) => x.key === K.node('n3')));
});

test('setVtepMac is written to the node record (before and after start)', async (t) => {
  const r = rig(t);
  r.sub.setVtepMac('02:AA:00:00:00:01');
  await r.start();
  await until(() => r.readiness().ready);
  assert.equal(JSON.parse(r.store.peek(K.node('n1'))!.value).vtepMac, '02:aa:00:00:00:01');
  r.sub.setVtepMac('02:aa:00:00:00:02');
  await until(() => JSON.parse(r.store.peek(K.node('n1'))!.value).vtepMac === '02:aa:00:00:00:02', 3000, 'new MAC written');
  assert.throws(() => r.sub.setVtepMac('nope'), /not a MAC address/);
});

async function call(router: Router, method: string, url: string, body?: unknown): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await router.handle({ method, url, body: body === undefined ? '' : JSON.stringify(body) });
  return { status: res.status, body: res.body as Record<string, unknown> };
}

test('API: services and policies validated (400 with the reason, nothing written), CRUD, nodes, endpoints, decommission', async (t) => {
  const r = rig(t);
  await r.start();
  await until(() => r.readiness().ready);
  const svc = { vip: '10.96.0.10', port: 80, backends: [{ ip: '10.244.1.2', port: 8080 }] };
  const ok = await call(r.router, 'PUT', '/v1/services/web', svc);
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.equal(ok.body.name, 'web');
  assert.equal(ok.body.protocol, 'tcp');
  const rev = r.store.revision;
  const bad = await call(r.router, 'PUT', '/v1/services/web', { ...svc, vip: 'not-an-ip' });
  assert.equal(bad.status, 400);
  assert.deepEqual(bad.body, { error: { code: 'invalid', message: 'service.vip: "not-an-ip" is not an IP address' } });
  const mismatch = await call(r.router, 'PUT', '/v1/services/web', { ...svc, name: 'other' });
  assert.equal(mismatch.status, 400);
  assert.match(String((mismatch.body.error as { message: string }).message), /differs from the name in the path/);
  const empty = await call(r.router, 'PUT', '/v1/services/web');
  assert.equal(empty.status, 400);
  const badPolicy = await call(r.router, 'PUT', '/v1/policies', { name: 'p', selector: { app: 'db' }, ingress: [{ from: [{ cidr: '10.0.0.0/33' }] }] });
  assert.equal(badPolicy.status, 400);
  assert.match(String((badPolicy.body.error as { message: string }).message), /^policy\.ingress\[0\]\.from\[0\]\.cidr: /);
  assert.equal(r.store.revision, rev, 'nothing written by refused requests');
  assert.deepEqual((await call(r.router, 'GET', '/v1/services')).body.services, [{ name: 'web', ...svc, protocol: 'tcp' }]);
  assert.equal((await call(r.router, 'GET', '/v1/services/web')).body.vip, '10.96.0.10');
  assert.equal((await call(r.router, 'GET', '/v1/services/nope')).status, 404);
  const pol = await call(r.router, 'PUT', '/v1/policies/db', { selector: { app: 'db' }, ingress: [{ from: [{ labels: { app: 'web' } }], ports: [{ port: 5432 }] }] });
  assert.equal(pol.status, 200, JSON.stringify(pol.body));
  assert.equal(((await call(r.router, 'GET', '/v1/policies')).body.policies as unknown[]).length, 1);
  assert.equal((await call(r.router, 'DELETE', '/v1/policies/db')).status, 200);
  assert.equal((await call(r.router, 'DELETE', '/v1/policies/db')).status, 404);
  assert.equal((await call(r.router, 'DELETE', '/v1/services/web')).status, 200);
  assert.deepEqual((await call(r.router, 'GET', '/v1/services')).body.services, []);

  await r.sub.cluster!.createEndpoint({ id: 'e1', netns: '/x', labels: { app: 'web' } });
  await until(() => r.sub.cluster!.endpoints.size === 1);
  const eps = await call(r.router, 'GET', '/v1/endpoints');
  assert.equal((eps.body.endpoints as { id: string }[])[0]!.id, 'e1');
  assert.equal(((await call(r.router, 'GET', '/v1/endpoints?node=other')).body.endpoints as unknown[]).length, 0);

  // Another node, dead (no liveness), holding a CIDR: decommission frees it; self and unknown refused.
  r.store.seed(K.node('n9'), JSON.stringify({ name: 'n9', address: '192.0.2.9', podCidrs: ['10.244.9.0/24'], version: 'x', capabilities: [] }));
  r.store.seed(K.cidr('ipv4', '10.244.9.0/24'), JSON.stringify({ node: 'n9', at: 'x' }));
  await until(() => r.sub.cluster!.cidrs.size === 3);
  const nodes = await call(r.router, 'GET', '/v1/nodes');
  assert.deepEqual((nodes.body.nodes as { name: string; self: boolean; alive: boolean }[]).map((n) => [n.name, n.self, n.alive]), [
    ['n1', true, true],
    ['n9', false, false],
  ]);
  assert.equal((await call(r.router, 'POST', '/v1/nodes/n1/decommission')).status, 400);
  assert.equal((await call(r.router, 'POST', '/v1/nodes/ghost/decommission')).status, 404);
  r.store.seed(K.aliveKey('n8'), '{}');
  r.store.seed(K.cidr('ipv4', '10.244.8.0/24'), JSON.stringify({ node: 'n8', at: 'x' }));
  await until(() => r.sub.cluster!.cidrs.size === 4);
  const live = await call(r.router, 'POST', '/v1/nodes/n8/decommission');
  assert.equal(live.status, 409, JSON.stringify(live.body));
  const dec = await call(r.router, 'POST', '/v1/nodes/n9/decommission');
  assert.equal(dec.status, 200, JSON.stringify(dec.body));
  assert.deepEqual(dec.body, { node: 'n9', freedCidrs: ['10.244.9.0/24'] });
  assert.equal(r.store.peek(K.cidr('ipv4', '10.244.9.0/24')), undefined);
  assert.equal(r.store.peek(K.node('n9')), undefined);
});

test('decommission of a name that is no node name (a "/" in it, even with force): 400 invalid, nothing changed', async (t) => {
  const r = rig(t);
  await r.start();
  await until(() => r.readiness().ready, 5000, 'ready');
  // Keys a crafted name would reach: n2's endpoints live under /endpoints/n2/, its node record at /nodes/n2.
  r.store.seed(K.node('n2'), JSON.stringify({ name: 'n2', address: '192.0.2.2', podCidrs: [], version: 'x', capabilities: [] }));
  r.store.seed(K.endpoint('n2', 'e1'), JSON.stringify({ id: 'e1', node: 'n2', ips: ['10.244.2.5'], netns: '/x', labels: {} }));
  const rev = r.store.revision;
  for (const name of ['n2%2Fe1', 'n2%2F', 'a..b', 'a_b', '-x', '%20']) {
    const res = await call(r.router, 'POST', `/v1/nodes/${name}/decommission?force=true`);
    assert.equal(res.status, 400, `${name}: ${JSON.stringify(res.body)}`);
    assert.equal((res.body.error as { code: string }).code, 'invalid');
  }
  assert.equal(r.store.revision, rev, 'nothing written');
  assert.ok(r.store.peek(K.endpoint('n2', 'e1')));
  // A valid name in upper case is the same node (host names are case-insensitive; keys are lower case).
  const ok = await call(r.router, 'POST', '/v1/nodes/N2/decommission');
  assert.equal(ok.status, 200, JSON.stringify(ok.body));
  assert.deepEqual(ok.body, { node: 'n2', freedCidrs: [] });
  assert.equal(r.store.peek(K.endpoint('n2', 'e1')), undefined);
});

test('API before start answers 503, not a crash', async () => {
  const router = new Router();
  registerStateRoutes(router, new StateSubsystem({ metrics: new Registry() }).queries);
  const r = await call(router, 'GET', '/v1/nodes');
  assert.equal(r.status, 503);
  assert.equal((r.body.error as { code: string }).code, 'unavailable');
});

test('nrdctl flag parsing: backends, repeated flags, -o inside the command args, unknown options', () => {
  assert.deepEqual(parseBackend('10.0.0.1:8080'), { ip: '10.0.0.1', port: 8080 });
  assert.deepEqual(parseBackend('10.0.0.1'), { ip: '10.0.0.1' });
  assert.deepEqual(parseBackend('[fd00::1]:80'), { ip: 'fd00::1', port: 80 });
  assert.deepEqual(parseBackend('fd00::1'), { ip: 'fd00::1' });
  const p = parseFlags(['--', '--name', 'web', '--backend=10.0.0.1:80', '--backend', '10.0.0.2', '-o', 'json'], {
    name: { value: true },
    backend: { value: true, multi: true },
  });
  assert.ok(typeof p !== 'string');
  assert.deepEqual(p.flags, { name: ['web'], backend: ['10.0.0.1:80', '10.0.0.2'] });
  assert.equal(p.output, 'json');
  assert.equal(parseFlags(['--bogus'], {}), 'unknown option --bogus');
  assert.equal(parseFlags(['--name'], { name: { value: true } }), 'option --name needs a value');
  assert.deepEqual(serviceFromFlags({ name: ['web'], vip: ['10.96.0.1'], port: ['80'], backend: ['10.0.0.1:81'] }), {
    name: 'web',
    vip: '10.96.0.1',
    port: 80,
    backends: [{ ip: '10.0.0.1', port: 81 }],
  });
});

test('nrdctl service/policy/nodes over a real socket: bad input refused with the reason, exit 1, nothing written', async (t) => {
  const r = rig(t);
  await r.start();
  await until(() => r.readiness().ready);
  const dir = mkdtempSync(join(tmpdir(), 'nrdt-statecli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const server = createApiServer(r.router, silentLogger());
  const listener = await listenUnix(server, join(dir, 'nrd.sock'));
  t.after(() => closeUnix(server, listener));
  const ctl = async (...argv: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const code = await runNrdctl(['--socket', listener.path, ...argv], { stdout: (s) => (out += s), stderr: (s) => (err += s) }, {}, commands);
    return { code, out, err };
  };
  const good = join(dir, 'svc.yaml');
  writeFileSync(good, 'name: web\nvip: 10.96.0.10\nport: 80\nbackends:\n  - ip: 10.244.1.2\n    port: 8080\n');
  const set = await ctl('service', 'set', '--', '-f', good);
  assert.equal(set.code, 0, set.err);
  assert.match(set.out, /service web set: 10\.96\.0\.10:80\/tcp, 1 backend/);
  const rev = r.store.revision;
  const badFile = join(dir, 'bad.yaml');
  writeFileSync(badFile, 'name: web\nvip: 10.96.0.10\nport: 99999\n');
  const bad = await ctl('service', 'set', '--', '-f', badFile);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /400 invalid: service\.port: port must be an integer 1-65535, got 99999/);
  const badFlags = await ctl('service', 'set', '--', '--name', 'web2', '--vip', '10.96.0.11', '--port', '80', '--protocol', 'icmp');
  assert.equal(badFlags.code, 1);
  assert.match(badFlags.err, /service\.protocol: protocol must be one of tcp, udp, sctp, got "icmp"/);
  const polFile = join(dir, 'pol.yaml');
  writeFileSync(polFile, 'name: db\nselector: {app: db}\ningress:\n  - from: [{labels: {app: web}, cidr: 10.0.0.0/8}]\n');
  const badPol = await ctl('policy', 'set', '--', '-f', polFile);
  assert.equal(badPol.code, 1);
  assert.match(badPol.err, /policy\.ingress\[0\]\.from\[0\]: exactly one of labels or cidr is required/);
  const notYaml = join(dir, 'broken.yaml');
  writeFileSync(notYaml, 'name: [unclosed\n');
  const broken = await ctl('policy', 'set', '--', '-f', notYaml);
  assert.equal(broken.code, 1);
  assert.match(broken.err, /cannot read .*broken\.yaml/);
  assert.equal(r.store.revision, rev, 'no write for refused input');
  const list = await ctl('-o', 'json', 'service', 'list');
  assert.equal(list.code, 0, list.err);
  assert.deepEqual(JSON.parse(list.out).services.map((s: { name: string }) => s.name), ['web']);
  const table = await ctl('service', 'list');
  assert.match(table.out, /^NAME\s+VIP\s+PORT\s+PROTOCOL\s+BACKENDS\nweb\s+10\.96\.0\.10\s+80\s+tcp\s+10\.244\.1\.2:8080$/m);
  const nodes = await ctl('nodes');
  assert.match(nodes.out, /^n1 \(this node\)\s+192\.0\.2\.1\s+yes\s+10\.244\.\d+\.0\/24,fd00:244:/m);
  const del = await ctl('service', 'del', 'web');
  assert.equal(del.code, 0, del.err);
  const again = await ctl('service', 'del', 'web');
  assert.equal(again.code, 1);
  assert.match(again.err, /404 not_found: no service web/);
  const usage = await ctl('node', 'decommission');
  assert.equal(usage.code, 2);
});
