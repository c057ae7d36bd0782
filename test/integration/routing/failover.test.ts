// Three node namespaces behind a switch/ToR namespace, each with an endpoint namespace; the routing
// layer (real netlink port, fed plain data) programs native routes via the ToR, direct routes inside
// a subnet, and VXLAN across subnets. Endpoints ping each other natively; when the native input and
// the ToR's pod routes disappear, traffic moves to VXLAN (VXLAN device counters prove it) and comes
// back to native after the hold-down. Then ownership: a route deleted by hand is restored, a stale
// protocol-220 route is removed at start, foreign routes are untouched, and a restart (SIGTERM and
// kill -9) emits no route event for nrd's routes.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { useTopology, type Host } from '../../lib/netns.js';
import { waitFor, sleep } from '../../lib/wait.js';
import { Agent } from '../kernel/agent-client.js';
import type { RemoteNode, RouteView, RoutingOptions, BgpRoute } from '../../../daemon/routing/types.js';
import type { KernelEvent } from '../../../daemon/kernel/types.js';

const topo = useTopology(after, 'rfail');
const HOLD_MS = 1500;

interface Node {
  i: number;
  host: Host;
  ep: Host;
  underlay: string;
  gw: string;
  cidr: string;
  mac: string;
  agent?: Agent;
}

const nodes: Node[] = [];
let tor: Host;

const remote = (n: Node): RemoteNode => ({ name: `n${n.i}`, underlay: n.underlay, vtepMac: n.mac, cidrs: [n.cidr] });
const opts = (n: Node): RoutingOptions => ({
  mode: 'auto',
  vxlan: { vni: 100, port: 4789, device: 'nrd-vx', mac: n.mac },
  underlayInterface: 'eth0',
  ownCidrs: [n.cidr],
  holdDownMs: HOLD_MS,
});
/** The BGP view of node n: every other node's CIDR via n's ToR address. */
const bgpFor = (n: Node, except: number[] = []): BgpRoute[] =>
  nodes.filter((m) => m !== n && !except.includes(m.i)).map((m) => ({ prefix: m.cidr, nextHops: [n.gw] }));

async function vxlanTx(n: Node): Promise<number> {
  const [l] = JSON.parse((await n.host.ip(['-s', '-j', 'link', 'show', 'nrd-vx'])).stdout) as Array<{ stats64: { tx: { packets: number } } }>;
  return l!.stats64.tx.packets;
}

async function startAgent(n: Node, bgpExcept: number[] = []): Promise<Agent> {
  const a = new Agent(n.host);
  await a.call('router.start', [opts(n), 2000]);
  await a.call('router.setNodes', [nodes.filter((m) => m !== n).map(remote), true]);
  await a.call('router.setBgp', [bgpFor(n, bgpExcept), true]);
  await a.call('router.settle');
  n.agent = a;
  return a;
}

const view = async (n: Node, prefix: string): Promise<RouteView | undefined> => (await n.agent!.call<RouteView[]>('router.routes')).find((r) => r.prefix === prefix);

test('topology: ToR/switch, three nodes (two subnets), one endpoint each', async () => {
  tor = await topo.host('tor');
  await tor.sysctl('net.ipv4.ip_forward', 1);
  const subnets = [
    { underlay: '192.0.2.1', gw: '192.0.2.254', len: 24 },
    { underlay: '198.51.100.2', gw: '198.51.100.254', len: 24 },
    { underlay: '192.0.2.3', gw: '192.0.2.254', len: 24 },
  ];
  const ports: string[] = [];
  for (let i = 1; i <= 3; i++) {
    const s = subnets[i - 1]!;
    const host = await topo.host(`n${i}`);
    const ep = await topo.host(`ep${i}`);
    await topo.link(host, tor, { nameA: 'eth0', nameB: `p${i}`, addrA: `${s.underlay}/${s.len}` });
    ports.push(`p${i}`);
    const other = s.gw.startsWith('192.') ? '198.51.100.0/24' : '192.0.2.0/24';
    await host.addRoute(other, { via: s.gw });
    await host.sysctl('net.ipv4.ip_forward', 1);
    // The endpoint: 10.244.i.10 behind a veth; the /32 towards it is what the datapath will install.
    const cidr = `10.244.${i}.0/24`;
    await topo.link(host, ep, { nameA: 've0', nameB: 'eth0', addrA: `10.244.${i}.1/32`, addrB: `10.244.${i}.10/24` });
    await host.addRoute(`10.244.${i}.10/32`, { dev: 've0' });
    await ep.addRoute('default', { via: `10.244.${i}.1` });
    nodes.push({ i, host, ep, underlay: s.underlay, gw: s.gw, cidr, mac: `02:00:00:00:00:0${i}` });
  }
  await topo.bridge(tor, 'br0', ports, { addr: ['192.0.2.254/24', '198.51.100.254/24'] });
  // The ToR's pod routes, as the fabric would have learned them over BGP.
  for (const n of nodes) await tor.addRoute(n.cidr, { via: n.underlay });
});

test('native: ECMP-capable routes via the ToR from BGP input; endpoints ping across nodes', async () => {
  for (const n of nodes) await startAgent(n);
  const [n1, n2, n3] = nodes as [Node, Node, Node];
  const r = await n1.host.routes(['proto', '220']);
  assert.deepEqual(
    r.map((x) => [x.dst, x.gateway ?? x.type]).sort(),
    [
      ['10.244.1.0/24', 'blackhole'],
      ['10.244.2.0/24', '192.0.2.254'],
      ['10.244.3.0/24', '192.0.2.254'],
    ],
  );
  assert.equal((await view(n1, n2.cidr))?.mode, 'native');
  const tx0 = await vxlanTx(n1);
  assert.ok(await n1.ep.ping('10.244.2.10', { count: 2, timeoutS: 2 }), 'ep1 -> ep2 native');
  assert.ok(await n1.ep.ping('10.244.3.10', { count: 1, timeoutS: 2 }), 'ep1 -> ep3 native');
  assert.ok(await n2.ep.ping('10.244.3.10', { count: 1, timeoutS: 2 }), 'ep2 -> ep3 native');
  assert.equal(await vxlanTx(n1), tx0, 'no VXLAN traffic while native');
  // An unallocated address of the own CIDR is dropped locally (blackhole), not sent to the fabric.
  const g = await n1.host.exec(['ip', '-j', 'route', 'get', '10.244.1.77'], { allowFailure: true });
  assert.match(g.stdout + g.stderr, /blackhole|Invalid argument/);
  void n3;
});

test('failover: native input gone and ToR pod routes gone → VXLAN carries the traffic; back after the hold-down', async () => {
  const [n1, n2, n3] = nodes as [Node, Node, Node];
  // The BGP path between n1 and n2 disappears on both sides, and so does the fabric's.
  await tor.ip(['route', 'del', n1.cidr]);
  await tor.ip(['route', 'del', n2.cidr]);
  await n1.agent!.call('router.bgpChange', [{ prefix: n2.cidr, nextHops: [] }]);
  await n2.agent!.call('router.bgpChange', [{ prefix: n1.cidr, nextHops: [] }]);
  await n1.agent!.call('router.settle');
  await n2.agent!.call('router.settle');
  assert.equal((await view(n1, n2.cidr))?.mode, 'vxlan');
  assert.equal((await view(n2, n1.cidr))?.mode, 'vxlan');
  const [r] = await n1.host.routes([n2.cidr]);
  assert.equal(r?.dev, 'nrd-vx');
  assert.deepEqual(r?.flags, ['onlink']);
  const fdb = JSON.parse((await n1.host.exec(['bridge', '-j', 'fdb', 'show', 'dev', 'nrd-vx'])).stdout) as Array<{ mac: string; dst?: string }>;
  assert.ok(fdb.some((e) => e.mac === n2.mac && e.dst === n2.underlay));
  const tx0 = await vxlanTx(n1);
  assert.ok(await n1.ep.ping('10.244.2.10', { count: 3, timeoutS: 2 }), 'ep1 -> ep2 over VXLAN');
  assert.ok((await vxlanTx(n1)) >= tx0 + 3, 'VXLAN device carried the echo requests');
  // n3 lost its BGP path to n1 too? No: still native. In the same subnet as n1, auto would go direct.
  await n3.agent!.call('router.bgpChange', [{ prefix: n1.cidr, nextHops: [] }]);
  await n3.agent!.call('router.settle');
  assert.equal((await view(n3, n1.cidr))?.mode, 'direct');
  assert.equal((await n3.host.routes([n1.cidr]))[0]?.gateway, n1.underlay);
  assert.ok(await n3.ep.ping('10.244.1.10', { count: 1, timeoutS: 2 }), 'ep3 -> ep1 direct');

  // Paths return: the fabric first, then BGP. The switch back waits for the hold-down.
  await tor.addRoute(n1.cidr, { via: n1.underlay });
  await tor.addRoute(n2.cidr, { via: n2.underlay });
  const back = Date.now();
  await n1.agent!.call('router.bgpChange', [{ prefix: n2.cidr, nextHops: [n1.gw] }]);
  await n2.agent!.call('router.bgpChange', [{ prefix: n1.cidr, nextHops: [n2.gw] }]);
  await n3.agent!.call('router.bgpChange', [{ prefix: n1.cidr, nextHops: [n3.gw] }]);
  await n1.agent!.call('router.settle');
  assert.equal((await view(n1, n2.cidr))?.mode, 'vxlan', 'held down');
  await waitFor(async () => (await view(n1, n2.cidr))?.mode === 'native' && (await view(n2, n1.cidr))?.mode === 'native', { timeoutMs: 10_000, what: 'back to native' });
  assert.ok(Date.now() - back >= HOLD_MS - 50, 'not before the hold-down');
  await waitFor(async () => (await n1.host.routes([n2.cidr]))[0]?.gateway === n1.gw, { what: 'native route in the FIB' });
  const tx1 = await vxlanTx(n1);
  assert.ok(await n1.ep.ping('10.244.2.10', { count: 2, timeoutS: 2 }), 'ep1 -> ep2 native again');
  assert.equal(await vxlanTx(n1), tx1, 'VXLAN idle again');
  const sw = await n1.agent!.call<Record<string, number>>('router.switches');
  assert.deepEqual(sw, { 'native->vxlan': 1, 'vxlan->native': 1 });
});

test('a route deleted by hand is put back', async () => {
  const [n1, n2] = nodes as [Node, Node];
  await n1.host.ip(['route', 'del', n2.cidr, 'proto', '220']);
  await waitFor(async () => (await n1.host.routes([n2.cidr]))[0]?.gateway === n1.gw, { timeoutMs: 5000, what: 'route restored' });
});

async function restartNoRouteEvents(signal: NodeJS.Signals): Promise<void> {
  const [n1] = nodes as [Node];
  const before = await n1.host.routes(['proto', '220']);
  // A running nrd would remove a stale route at once (it watches route events): stop it first.
  // Then a stale nrd route (a node that vanished while nrd was down) and a foreign one appear.
  await n1.agent!.stop(signal);
  await n1.host.ip(['route', 'add', '10.244.99.0/24', 'via', n1.gw, 'proto', '220']);
  await n1.host.ip(['route', 'replace', '10.98.0.0/16', 'via', n1.gw, 'proto', 'static']);
  // A second netlink listener in the namespace records every route notification during the restart.
  const mon = new Agent(n1.host);
  await mon.call('events.start');
  await startAgent(n1);
  await n1.agent!.call('router.settle');
  await sleep(300);
  const events = (await mon.call<KernelEvent[]>('events.take')).filter((e) => e.kind === 'route');
  await mon.call('exit');
  const lines = events.map((e) => (e.kind === 'route' ? `${e.op} ${e.route.dst} proto ${e.route.protocol}` : ''));
  // The only route event is the deletion of the stale route.
  assert.deepEqual(lines, ['del 10.244.99.0/24 proto 220'], `route events on restart (${signal}): ${(await n1.host.ip(['route'])).stdout}`);
  assert.deepEqual(await n1.host.routes(['proto', '220']), before);
  assert.equal((await n1.host.routes(['10.98.0.0/16'])).length, 1, 'foreign route untouched');
}

test('restart (SIGTERM): stale protocol-220 route removed, foreign untouched, no event for nrd routes', async () => {
  await restartNoRouteEvents('SIGTERM');
});

test('restart (kill -9): same', async () => {
  await restartNoRouteEvents('SIGKILL');
});

test('stop agents', async () => {
  for (const n of nodes) await n.agent?.call('exit').catch(() => undefined);
});
