// Workload endpoints end to end: nrd in a test node namespace with a test etcd, workload namespaces
// made by the test (`ip netns add` → /run/netns/NAME), `nrdctl endpoint add/del` through the control
// socket. Checks inside the workload (eth0, /32 and /128, default routes via the link-local gateway
// onlink), on the node (nrdv… veth with the gateway MAC, proto nrd-ep host routes), in etcd (record
// and reservations); bad input changes nothing; delete leaves nothing, also after the workload's
// namespace went first; kill -9 and a restart change no link and no route.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { ENDPOINT_GATEWAY_MAC } from '../../../daemon/lib/endpoint-types.js';
import { hostIfName } from '../../../daemon/endpoints/model.js';
import type { EndpointView, LocalEndpointsResponse } from '../../../daemon/endpoints/api-types.js';
import { run } from '../../lib/proc.js';
import { waitFor } from '../../lib/wait.js';
import { NRDCTL, NrdSandbox, runNode, type NrdProcess } from '../daemon/harness.js';

const sb = NrdSandbox.use(after, 'ep');
let nrd: NrdProcess;
let socket: string;
let site: string;
const workloads: string[] = [];

const POOLS = 'cluster:\n  podCIDRs: [10.244.0.0/16, "fd00:244::/48"]\n';

async function nrdctl(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return runNode(NRDCTL, ['--socket', socket, ...args]);
}

async function localEndpoints(): Promise<LocalEndpointsResponse> {
  const r = await nrdctl('endpoints', '-o', 'json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { local?: EndpointView[]; node: string; synced: boolean };
  return { node: j.node, synced: j.synced, endpoints: j.local ?? [] };
}

/** A workload namespace the test owns: /run/netns/<name>. */
async function workload(tag: string): Promise<{ name: string; path: string }> {
  const name = `${sb.topo.prefix}-${process.pid}-w${tag}`;
  await run(['ip', 'netns', 'add', name]);
  workloads.push(name);
  return { name, path: `/run/netns/${name}` };
}

async function inWorkload(name: string, args: string[]): Promise<string> {
  return (await run(['ip', '-n', name, ...args])).stdout;
}

/** What a network engineer would diff: links, routes of both families, nrd's etcd keys. */
async function snapshot(): Promise<string> {
  // The datapath reloads its XDP program at each start (a new program id): its own tests judge that.
  const links = (await sb.node.ip(['-d', 'link', 'show'])).stdout.replace(/^\s+prog\/xdp .*\n/gm, '');
  // The main tables: the local table's IPv6 link-local entries come and go with DAD on their own.
  const r4 = (await sb.node.ip(['route', 'show'])).stdout;
  const r6 = (await sb.node.ip(['-6', 'route', 'show'])).stdout;
  const keys = sb.etcd!.etcdctl(['get', '--prefix', '/nrd/v1/', '--keys-only']).split('\n').filter((k) => k && !k.includes('/alive/')).sort().join('\n');
  return `${links}\n--\n${r4}\n--\n${r6}\n--\n${keys}`;
}

/** A snapshot once the node stopped changing (link-local addresses after DAD, the VXLAN device). */
async function settledSnapshot(): Promise<string> {
  let prev = await snapshot();
  let same = 0;
  for (let i = 0; i < 60; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const now = await snapshot();
    same = now === prev ? same + 1 : 0;
    if (same >= 3) return now;
    prev = now;
  }
  throw new Error(`the node namespace did not settle: ${prev}`);
}

/** The node's IPv4 routes of the endpoint owner (filtered here: `ip route show proto 197` depends
 * on which rt_protos names this host has for 197). */
async function epRoutes(): Promise<string> {
  const out = (await sb.node.ip(['route', 'show'])).stdout;
  return out
    .split('\n')
    .filter((l) => /proto (nrd-ep|197)\b/.test(l))
    .join('\n');
}

function etcdKeys(prefix: string): string[] {
  return sb.etcd!.etcdctl(['get', '--prefix', prefix, '--keys-only']).split('\n').filter(Boolean);
}

async function startNrd(): Promise<void> {
  nrd = sb.spawnNrd({ site });
  await waitFor(
    async () => {
      const r = await nrdctl('endpoints', '-o', 'json');
      if (r.code !== 0) return undefined;
      const j = JSON.parse(r.stdout) as { local?: unknown[] };
      if (!j.local) return undefined;
      const l = await runNode(NRDCTL, ['--socket', socket, 'status', '-o', 'json']);
      return l.code === 0 && (JSON.parse(l.stdout) as { subsystems?: Array<{ name: string; ready: boolean }> }).subsystems?.find((s) => s.name === 'endpoints')?.ready ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200, what: 'nrd with its endpoints subsystem ready' },
  );
}

before(async () => {
  await sb.build();
  socket = join(sb.dir, 'nrd.sock');
  site = sb.site({ socket, metricsPort: null, extra: POOLS });
  await startNrd();
});

after(async () => {
  await nrd?.kill();
  for (const w of workloads) await run(['ip', 'netns', 'del', w], { allowFailure: true });
});

test('endpoint add: eth0 with /32 and /128, default routes via the gateway, nrdv veth, nrd-ep host routes, etcd record', async () => {
  const w = await workload('a');
  const r = await nrdctl('endpoint', 'add', 'web-1', '--netns', w.path, '--labels', 'app=web,tier=front', '-o', 'json');
  assert.equal(r.code, 0, r.stderr + r.stdout);
  const ep = JSON.parse(r.stdout) as EndpointView;
  assert.equal(ep.hostIfname, hostIfName('web-1'));
  assert.equal(ep.state, 'ready');
  assert.equal(ep.ips.length, 2);
  const [v4, v6] = ep.ips as [string, string];
  assert.match(v4, /^10\.244\./);
  assert.match(v6, /^fd00:244:/);
  assert.deepEqual(ep.gateways, ['169.254.1.1', 'fe80::1']);

  // Inside the workload.
  const addrs = JSON.parse(await inWorkload(w.name, ['-j', 'addr', 'show', 'dev', 'eth0'])) as Array<{ operstate: string; address: string; addr_info: Array<{ local: string; prefixlen: number; scope: string }> }>;
  assert.equal(addrs[0]!.address, ep.mac);
  const locals = addrs[0]!.addr_info.filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`).sort();
  assert.deepEqual(locals, [`${v4}/32`, `${v6}/128`].sort());
  assert.equal(addrs[0]!.operstate, 'UP');
  const def4 = await inWorkload(w.name, ['route', 'show', 'default']);
  assert.match(def4, /default via 169\.254\.1\.1 dev eth0 .*onlink/);
  const def6 = await inWorkload(w.name, ['-6', 'route', 'show', 'default']);
  assert.match(def6, /default via fe80::1 dev eth0/);
  assert.doesNotMatch(await inWorkload(w.name, ['-6', 'addr', 'show', 'dev', 'eth0']), /tentative/);

  // On the node.
  const link = JSON.parse((await sb.node.ip(['-j', '-d', 'link', 'show', ep.hostIfname])).stdout) as Array<{ address: string; operstate: string; linkinfo: { info_kind: string } }>;
  assert.equal(link[0]!.address, ENDPOINT_GATEWAY_MAC);
  assert.equal(link[0]!.linkinfo.info_kind, 'veth');
  await waitFor(
    async () => {
      const r4 = (await sb.node.ip(['route', 'show', `${v4}/32`])).stdout;
      const r6 = (await sb.node.ip(['-6', 'route', 'show', `${v6}/128`])).stdout;
      return r4.includes(`dev ${ep.hostIfname}`) && /proto (nrd-ep|197)/.test(r4) && r6.includes(`dev ${ep.hostIfname}`) && /proto (nrd-ep|197)/.test(r6) ? true : undefined;
    },
    { timeoutMs: 10_000, intervalMs: 100, what: 'proto nrd-ep host routes onto the host veth' },
  );

  // etcd: the record and one reservation per address.
  const rec = JSON.parse(sb.etcd!.etcdctl(['get', '/nrd/v1/endpoints/nrdt-node/web-1', '--print-value-only'])) as { ips: string[]; mac: string; ifname: string; netns: string; labels: Record<string, string>; identity: number };
  assert.deepEqual(rec.ips, ep.ips);
  assert.equal(rec.mac, ep.mac);
  assert.equal(rec.ifname, 'eth0');
  assert.equal(rec.netns, w.path);
  assert.deepEqual(rec.labels, { app: 'web', tier: 'front' });
  assert.ok(rec.identity > 0);
  assert.deepEqual(etcdKeys('/nrd/v1/ips/nrdt-node/').sort(), ep.ips.map((ip) => `/nrd/v1/ips/nrdt-node/${ip}`).sort());

  // nrdctl status says which device endpoints get: veth; this kernel has no netkit, and the probe
  // leaves no link behind.
  const s = await nrdctl('status');
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^Endpoints:\s+veth pairs; netkit (absent \(E[A-Z]+\)|present)/m);
  assert.doesNotMatch((await sb.node.ip(['-o', 'link', 'show'])).stdout, /nrdvprobe0/, 'the netkit probe left its link');

  // nrdctl endpoints shows the host veth and the state.
  const t = await nrdctl('endpoints');
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, new RegExp(`web-1 .*${ep.hostIfname} +ready`));

  // Delete leaves nothing.
  const d = await nrdctl('endpoint', 'del', 'web-1');
  assert.equal(d.code, 0, d.stderr);
  assert.equal((await sb.node.ip(['link', 'show', ep.hostIfname], { allowFailure: true })).code !== 0, true);
  assert.equal((await inWorkload(w.name, ['link', 'show'])).includes('eth0'), false);
  assert.equal((await sb.node.ip(['route', 'show', `${v4}/32`])).stdout.trim(), '');
  assert.equal((await sb.node.ip(['-6', 'route', 'show', `${v6}/128`])).stdout.trim(), '');
  assert.deepEqual(etcdKeys('/nrd/v1/endpoints/nrdt-node/'), []);
  assert.deepEqual(etcdKeys('/nrd/v1/ips/nrdt-node/'), []);
  // A second delete: 404, said plainly.
  const again = await nrdctl('endpoint', 'del', 'web-1');
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /no endpoint web-1/);
});

test('bad input: unknown netns, not a namespace, name taken, ifname present, bad name/labels — a clear error and nothing changed', async (t) => {
  const w = await workload('b');
  const ok = await nrdctl('endpoint', 'add', 'taken', '--netns', w.path);
  assert.equal(ok.code, 0, ok.stderr);
  const w2 = await workload('c');
  await run(['ip', '-n', w2.name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0p']);
  t.after(async () => {
    await nrdctl('endpoint', 'del', 'taken');
  });
  const before = await settledSnapshot();
  const cases: Array<[string[], RegExp]> = [
    [['endpoint', 'add', 'x1', '--netns', '/run/netns/nrdt-no-such-ns'], /does not exist/],
    [['endpoint', 'add', 'x2', '--netns', '/etc/hostname'], /not a network namespace/],
    [['endpoint', 'add', 'taken', '--netns', w2.path, '--ifname', 'eth1'], /exists already/],
    [['endpoint', 'add', 'x3', '--netns', w2.path], /interface eth0 exists already in netns/],
    [['endpoint', 'add', 'bad/name', '--netns', w2.path, '--ifname', 'eth1'], /endpoint\.name/],
    [['endpoint', 'add', 'x4', '--netns', w2.path, '--ifname', 'way-too-long-ifname'], /endpoint\.ifname/],
    [['endpoint', 'add', 'x5', '--netns', w2.path, '--ifname', 'eth1', '--labels', 'bad key=1'], /label/],
    [['endpoint', 'add', 'x6', '--netns', 'relative/path'], /absolute/],
  ];
  for (const [args, re] of cases) {
    const r = await nrdctl(...args);
    assert.notEqual(r.code, 0, `${args.join(' ')} succeeded: ${r.stdout}`);
    assert.match(r.stderr, re, args.join(' '));
  }
  assert.equal(await snapshot(), before);
});

test('delete after the workload namespace is gone leaves nothing', async () => {
  const w = await workload('d');
  const r = await nrdctl('endpoint', 'add', 'gone-1', '--netns', w.path, '-o', 'json');
  assert.equal(r.code, 0, r.stderr);
  const ep = JSON.parse(r.stdout) as EndpointView;
  await run(['ip', 'netns', 'del', w.name]);
  const d = await nrdctl('endpoint', 'del', 'gone-1');
  assert.equal(d.code, 0, d.stderr);
  assert.notEqual((await sb.node.ip(['link', 'show', ep.hostIfname], { allowFailure: true })).code, 0);
  assert.equal(await epRoutes(), '');
  assert.deepEqual(etcdKeys('/nrd/v1/endpoints/nrdt-node/'), []);
  assert.deepEqual(etcdKeys('/nrd/v1/ips/nrdt-node/'), []);
});

test('an endpoint whose namespace vanished is garbage-collected (record, reservations, routes)', async () => {
  const w = await workload('e');
  const r = await nrdctl('endpoint', 'add', 'gc-1', '--netns', w.path);
  assert.equal(r.code, 0, r.stderr);
  await run(['ip', 'netns', 'del', w.name]);
  await waitFor(() => (etcdKeys('/nrd/v1/endpoints/nrdt-node/').length === 0 && etcdKeys('/nrd/v1/ips/nrdt-node/').length === 0 ? true : undefined), {
    timeoutMs: 15_000,
    intervalMs: 200,
    what: 'GC of gc-1',
  });
  await waitFor(async () => (await epRoutes() === '' ? true : undefined), { timeoutMs: 10_000, intervalMs: 200, what: 'host routes gone' });
});

test('kill -9 and restart: no link, route or etcd change; the endpoints are adopted', async () => {
  const a = await workload('f');
  const b = await workload('g');
  assert.equal((await nrdctl('endpoint', 'add', 'keep-a', '--netns', a.path)).code, 0);
  assert.equal((await nrdctl('endpoint', 'add', 'keep-b', '--netns', b.path, '--ifname', 'net0')).code, 0);
  await waitFor(
    async () => {
      const out = await epRoutes();
      if (out.split('\n').length !== 2) throw new Error(`host routes: ${out}`);
      return true;
    },
    { timeoutMs: 10_000, intervalMs: 100, what: 'two host routes' },
  );
  const wantBefore = await settledSnapshot();
  const insideBefore = (await inWorkload(a.name, ['-d', 'addr'])) + (await inWorkload(a.name, ['route'])) + (await inWorkload(b.name, ['-6', 'route']));
  nrd.signal('SIGKILL');
  await nrd.exited;
  await startNrd();
  // Give the resync and the owner's passes a few rounds.
  await new Promise((r) => setTimeout(r, 5000));
  assert.equal(await snapshot(), wantBefore);
  assert.equal((await inWorkload(a.name, ['-d', 'addr'])) + (await inWorkload(a.name, ['route'])) + (await inWorkload(b.name, ['-6', 'route'])), insideBefore);
  const l = await localEndpoints();
  assert.deepEqual(l.endpoints.map((e) => `${e.name}:${e.state}`).sort(), ['keep-a:ready', 'keep-b:ready']);
  for (const n of ['keep-a', 'keep-b']) assert.equal((await nrdctl('endpoint', 'del', n)).code, 0);
});
