// Workload endpoints end to end with real traffic across a fabric: one BIRD ToR, etcd, three nodes
// running nrd (routing.mode auto) with IPv4 and IPv6 pools. The ToR links are dual stack: n1 and n2
// hold two sessions with the ToR, IPv4 (family ipv4) and IPv6 (family ipv6, next hop their global
// IPv6 address), so both families are routed natively between them; n3 has no BGP peer and is
// reached only over VXLAN (an IPv4 underlay: IPv6 pod traffic goes inside it).
// Endpoints are made as users make them: `ip netns add`, `nrdctl endpoint add NAME --netns PATH`.
// Checked: the gateway answers ARP (BPF, not the kernel's proxy_arp), same-node, native and VXLAN
// ping and TCP in both families, full-size TCP segments across VXLAN without a fragment on the
// underlay (the endpoint MTU), SNAT to the node's address (IPv4 and IPv6) towards an external host
// that has no route back to the pods (BPF on n1 and n3, nftables on n2), and `nrdctl endpoint del`
// leaving nothing behind (also after the GC collected an endpoint whose namespace went first).
// Then one nrd run the way the README runs it: default pin path, socket, state dir, and plain
// `nrdctl endpoint add`.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import type { EndpointView } from '../../../daemon/endpoints/api-types.js';
import { ETCD_ADDRESS, Fabric, VXLAN_DEVICE, underlay6Address, NRDCTL, NRD_MAIN, POD_GATEWAY, POD_POOL, POD_POOL_V6, ROOT, type FabricNode } from '../../lib/fabric.js';
import type { Host } from '../../lib/netns.js';
import { run, spawnProcess, type ManagedProcess } from '../../lib/proc.js';
import { waitFor } from '../../lib/wait.js';
import { waitAllReady, waitPath } from './helpers.js';
import {
  EchoServer,
  addWorkload,
  arping,
  epRouteLines,
  etcdKeysFor,
  fragCreates,
  iperf3,
  linkMtu,
  mapEntriesFor,
  nrdvLinks,
  tcpEcho,
  waitPing,
  type Workload,
} from './endpoint-helpers.js';

/** The external host behind the ToR: TEST-NET-3, outside the pools, inside our namespaces only. */
const EXT_IP = '203.0.113.2';
const EXT_TOR_IP = '203.0.113.1';
/** Its IPv6 address, on the underlay's documentation range (no route to the IPv6 pool). */
const EXT_IP6 = '2001:db8:ff::2';
const EXT_TOR_IP6 = '2001:db8:ff::1';
const UPLINK_MTU = 1500;
const VXLAN_MTU = UPLINK_MTU - 50;

const fabric = Fabric.use(after, {
  tag: 'e2eept',
  tors: 1,
  mode: 'auto',
  pools: [POD_POOL, POD_POOL_V6],
  // A global IPv6 address on each uplink: the source of IPv6 masquerade (BGP and VXLAN stay IPv4).
  underlay6: true,
  nodes: [{}, { site: { datapath: { masqueradeBackend: 'nftables' } } }, { bgp: false }],
});

let n1: FabricNode;
let n2: FabricNode;
let n3: FabricNode;
let ext: Host;
/** a, b on n1; c on n2; d on n3. */
let a: Workload;
let b: Workload;
let c: Workload;
let d: Workload;
const servers: EchoServer[] = [];

before(async () => {
  await fabric.build();
  [n1, n2, n3] = fabric.nodes as [FabricNode, FabricNode, FabricNode];
  await Promise.all(fabric.nodes.map((n) => n.waitCidr()));
  await fabric.waitSessions();
  await waitAllReady(fabric.nodes);
  // The external host: on its own link to the ToR, with a route to the underlay only — never to
  // the pod CIDRs, so a reply reaches a pod only when the node rewrote the source.
  ext = await fabric.topo.host('ext');
  await fabric.topo.link(ext, fabric.tors[0]!.host, { nameA: 'eth0', nameB: 'ext', addrA: [`${EXT_IP}/29`, `${EXT_IP6}/64`], addrB: [`${EXT_TOR_IP}/29`, `${EXT_TOR_IP6}/64`] });
  await ext.addRoute('192.0.2.0/24', { via: EXT_TOR_IP });
  await ext.addRoute('2001:db8::/48', { via: EXT_TOR_IP6 });
  a = await addWorkload(fabric, n1, 'epa');
  b = await addWorkload(fabric, n1, 'epb');
  c = await addWorkload(fabric, n2, 'epc');
  d = await addWorkload(fabric, n3, 'epd');
  for (const w of [a, b, c, d]) servers.push(await EchoServer.start(w.host));
  servers.push(await EchoServer.start(ext));
});

after(async () => {
  for (const s of servers) await s.stop().catch(() => undefined);
});

const serverOf = (w: Workload | Host): EchoServer => servers[[a, b, c, d].indexOf(w as Workload)] ?? servers[4]!;

/** Ping and a TCP round trip of `bytes` from `from` to `to` (address `addr`). */
async function traffic(from: Workload, to: Workload, addr: string, what: string, bytes = 64 * 1024): Promise<void> {
  try {
    await waitPing(from, addr, what);
    await tcpEcho(from.host, addr, serverOf(to).port, bytes);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n${from.node.name}:\n${await from.node.nrdRoutesText()}\n${fabric.describe()}`);
  }
}

test('endpoints: dual stack, MTU of both veth ends, the gateway answers ARP from BPF with proxy_arp off', async () => {
  const arps = await Promise.all([a, b, c, d].map((w) => arping(w, POD_GATEWAY)));
  for (const [i, w] of [a, b, c, d].entries()) {
    assert.equal(w.ep.state, 'ready', JSON.stringify(w.ep));
    assert.ok(w.v6, `${w.ep.name}: an IPv6 address from ${POD_POOL_V6}: ${JSON.stringify(w.ep.ips)}`);
    assert.match(w.v6!, /^fd00:244:/);
    // routing.mode auto may redirect into VXLAN: both ends get the VXLAN MTU (uplink - 50).
    assert.equal(w.ep.mtu, VXLAN_MTU, JSON.stringify(w.ep));
    assert.equal(await linkMtu(w.host, 'eth0'), VXLAN_MTU, `${w.ep.name}: workload side`);
    assert.equal(await linkMtu(w.node.host, w.ep.hostIfname), VXLAN_MTU, `${w.ep.name}: host side`);
    const proxyArp = await w.node.host.exec(['cat', `/proc/sys/net/ipv4/conf/${w.ep.hostIfname}/proxy_arp`]);
    assert.equal(proxyArp.stdout.trim(), '0', `${w.ep.hostIfname}: proxy_arp`);
    const r = arps[i]!;
    assert.ok(r.received >= 1, `${w.ep.name}: arping ${POD_GATEWAY} unanswered:\n${r.out}`);
    assert.match(r.out, new RegExp(w.ep.gatewayMac, 'i'), 'answered with the gateway MAC');
  }
});

test('same node: ping and TCP between two endpoints, IPv4 and IPv6', async () => {
  await traffic(a, b, b.v4, 'n1 a → n1 b (v4)');
  await traffic(b, a, a.v4, 'n1 b → n1 a (v4)');
  await traffic(a, b, b.v6!, 'n1 a → n1 b (v6)');
  await traffic(b, a, a.v6!, 'n1 b → n1 a (v6)');
});

/** The node's own IPv6 pod CIDR (its route of mode local). */
async function ownCidr6(n: FabricNode): Promise<string> {
  return waitFor(async () => (await n.apiRoutes()).find((r) => r.mode === 'local' && r.prefix.includes(':'))?.prefix, { timeoutMs: 10_000, what: `${n.name}: its IPv6 CIDR` });
}

/** Wait until `n` routes `prefix` natively (BGP next hop `via`, not the VXLAN device) in the kernel and the API. */
async function waitNative6(n: FabricNode, prefix: string, via: string): Promise<void> {
  let last = '';
  await waitFor(
    async () => {
      const k = (await n.host.ip(['-6', 'route', 'show', 'exact', prefix])).stdout.trim();
      const api = (await n.apiRoutes()).find((r) => r.prefix === prefix);
      last = `kernel: ${k}\napi: ${JSON.stringify(api)}`;
      return k.includes(`via ${via}`) && !k.includes(VXLAN_DEVICE) && /proto (220|nrd)\b/.test(k) && api?.mode === 'native';
    },
    { timeoutMs: 20_000, intervalMs: 200, what: `${n.name}: ${prefix} native via ${via}` },
  ).catch(async (err: unknown) => {
    throw new Error(`${(err as Error).message}\n${last}\n${await fabric.tors[0]!.bird.birdc('show route all').catch((e: unknown) => String(e))}\n${n.describe()}`);
  });
}

test('cross node over native routes (BGP through the ToR): ping and TCP, IPv4 and IPv6', async () => {
  await waitPath(n1, n2, 'native', { gateways: [n1.tor1Address] });
  await waitPath(n2, n1, 'native', { gateways: [n2.tor1Address] });
  await waitNative6(n1, await ownCidr6(n2), underlay6Address(n1.index, 1));
  await waitNative6(n2, await ownCidr6(n1), underlay6Address(n2.index, 1));
  const tx0 = await Promise.all([n1.vxlanTxPackets(), n2.vxlanTxPackets()]);
  await traffic(a, c, c.v4, 'n1 a → n2 c (v4 native)', 1024 * 1024);
  await traffic(c, a, a.v4, 'n2 c → n1 a (v4 native)', 1024 * 1024);
  await traffic(a, c, c.v6!, 'n1 a → n2 c (v6 native)', 1024 * 1024);
  await traffic(c, a, a.v6!, 'n2 c → n1 a (v6 native)', 1024 * 1024);
  const tx = await Promise.all([n1.vxlanTxPackets(), n2.vxlanTxPackets()]);
  // 4 MB each way: hundreds of packets per transfer, none of them through VXLAN.
  assert.ok(tx[0]! - tx0[0]! < 10 && tx[1]! - tx0[1]! < 10, `VXLAN TX during native transfers: n1 ${tx[0]! - tx0[0]!}, n2 ${tx[1]! - tx0[1]!}`);
});

test('cross node over VXLAN (node in another subnet, no BGP): ping, TCP with full-size segments (1 MB, iperf3) and no fragment on the underlay, IPv4 and IPv6', async () => {
  await waitPath(n1, n3, 'vxlan');
  await waitPath(n3, n1, 'vxlan');
  const tx0 = await n3.vxlanTxPackets();
  // With the endpoint at the kernel's default MTU (1500) the transfers below still complete, but
  // every full-size segment is 1550 bytes once encapsulated: the node fragments it on the uplink
  // (thousands of FragCreates per MB). With the VXLAN MTU on the veth, nothing is fragmented.
  const frags0 = await Promise.all(fabric.nodes.map(fragCreates));
  for (const [from, to] of [[a, d], [d, a], [c, d]] as const) {
    await traffic(from, to, to.v4, `${from.ep.name} → ${to.ep.name} (v4 VXLAN)`, 1024 * 1024);
    await traffic(from, to, to.v6!, `${from.ep.name} → ${to.ep.name} (v6 VXLAN)`, 1024 * 1024);
  }
  assert.ok((await n3.vxlanTxPackets()) > tx0, 'n3 sent over VXLAN');
  // A bulk transfer: every data segment is full-size (MSS = endpoint MTU - 40/60).
  const v4 = await iperf3(d, a, d.v4, 1);
  assert.ok(v4 > 1024 * 1024, `iperf3 a → d (v4): ${v4} bytes`);
  const v6 = await iperf3(a, d, a.v6!, 1);
  assert.ok(v6 > 1024 * 1024, `iperf3 d → a (v6): ${v6} bytes`);
  const frags = (await Promise.all(fabric.nodes.map(fragCreates))).map((f, i) => f - frags0[i]!);
  assert.deepEqual(frags, [0, 0, 0], 'IP fragments made by n1, n2, n3 during the transfers');
});

test('masquerade: an external host without a route to the pods sees the node address, and replies arrive, IPv4 and IPv6 (BPF on n1 and n3, nftables on n2)', async () => {
  for (const pod of [a.v4, a.v6!]) {
    const noRoute = await ext.ip(['route', 'get', pod], { allowFailure: true });
    assert.notEqual(noRoute.code, 0, `the external host must have no route to the pods: ${noRoute.stdout}`);
  }
  const srv = serverOf(ext);
  for (const w of [a, c, d]) {
    for (const [dst, source] of [[EXT_IP, w.node.address], [EXT_IP6, underlay6Address(w.node.index)]] as const) {
      const before = srv.peers().length;
      await waitPing(w, dst, `${w.ep.name} → external host`).catch(async (err: unknown) => {
        const nft = await w.node.host.exec(['nft', 'list', 'ruleset'], { allowFailure: true });
        const dp = await w.node.api('/v1/datapath').catch((e: unknown) => String(e));
        throw new Error(`${(err as Error).message}\n${w.node.name} nft:\n${nft.stdout}\n/v1/datapath: ${JSON.stringify(dp).slice(0, 3000)}\n${w.node.describe()}`);
      });
      await tcpEcho(w.host, dst, srv.port, 256 * 1024);
      const peers = srv.peers().slice(before);
      assert.deepEqual(peers, [source], `${w.ep.name} on ${w.node.name} → ${dst}: the external host saw ${peers.join(',')}`);
    }
  }
  // Where each node masquerades: BPF on the uplink (n1, n3), nftables as configured (n2).
  for (const [n, mode] of [[n1, 'bpf'], [n2, 'nftables'], [n3, 'bpf']] as const) {
    const v = await n.api<{ masquerade: { mode: string; reason: string }; endpoints: { wanted: number; attached: number } }>('/v1/datapath');
    assert.equal(v.masquerade.mode, mode, `${n.name}: ${JSON.stringify(v.masquerade)}`);
  }
  const table = await n2.host.exec(['nft', 'list', 'table', 'inet', 'nrd'], { allowFailure: true });
  assert.equal(table.code, 0, 'n2 has the nftables table inet nrd');
});

test('nrdctl endpoint del leaves nothing on the node: link, nrd-ep routes, map entries, etcd record and reservations', async () => {
  // Present before: what the checks below look for is really there while the endpoint lives.
  assert.ok((await nrdvLinks(n1)).includes(b.ep.hostIfname));
  assert.ok((await epRouteLines(n1)).some((l) => l.startsWith(`${b.v4} `)), (await epRouteLines(n1)).join('\n'));
  assert.ok((await mapEntriesFor(n1, b.ep.ips)).length > 0, 'nrd_endpoints holds b');
  assert.ok(etcdKeysFor(fabric, 'epb', b.ep.ips).length >= 2, 'etcd holds b');
  const assertGone = async (w: Workload): Promise<void> => {
    const n = w.node;
    assert.ok(!(await nrdvLinks(n)).includes(w.ep.hostIfname), `${n.name}: ${w.ep.hostIfname} left`);
    const routes = (await epRouteLines(n)).filter((l) => w.ep.ips.some((ip) => l.startsWith(`${ip} `)));
    assert.deepEqual(routes, [], `${n.name}: nrd-ep routes left`);
    assert.deepEqual(etcdKeysFor(fabric, w.ep.name, w.ep.ips), [], `${n.name}: etcd keys left`);
    await waitFor(async () => (await mapEntriesFor(n, w.ep.ips)).length === 0, { timeoutMs: 10_000, intervalMs: 200, what: `${n.name}: nrd_endpoints entries of ${w.ep.name} gone` });
    const shown = await run([process.execPath, NRDCTL, '--socket', n.socket, 'endpoint', 'show', w.ep.name], { allowFailure: true });
    assert.notEqual(shown.code, 0, `${w.ep.name} still shown`);
  };
  for (const w of [b, c]) {
    await w.node.nrdctl(['endpoint', 'del', w.ep.name]);
    await assertGone(w);
  }
  // d: the workload goes first (`ip netns del` once nothing runs in it), nrd's resync collects the
  // endpoint, and only then does the operator (or a CNI DEL) delete it: that still succeeds.
  await serverOf(d).stop();
  await run(['ip', 'netns', 'del', d.host.ns]);
  await waitFor(() => etcdKeysFor(fabric, d.ep.name, d.ep.ips).length === 0, { timeoutMs: 15_000, intervalMs: 200, what: `${n3.name}: GC of ${d.ep.name}` });
  const del = await run([process.execPath, NRDCTL, '--socket', n3.socket, 'endpoint', 'del', d.ep.name], { allowFailure: true });
  assert.equal(del.code, 0, `nrdctl endpoint del ${d.ep.name} after the GC: ${del.stdout}${del.stderr}`);
  await assertGone(d);
  // n2 and n3 have no endpoint left at all; n1 keeps only a.
  for (const n of [n2, n3]) {
    assert.deepEqual(await nrdvLinks(n), []);
    assert.deepEqual(await epRouteLines(n), []);
  }
  assert.deepEqual(await nrdvLinks(n1), [a.ep.hostIfname]);
  // a still works after its neighbours went.
  await waitPing(a, EXT_IP, 'a → external host after the deletes');
});

describe('nrd run the way users run it (README defaults)', () => {
  // Its own node on the ToR, with a site of node name/address, the pools and etcd only: default
  // datapath.pinPath (/sys/fs/bpf/nrd: under `ip netns exec` nrd mounts a bpffs there itself),
  // api.socket /run/nrd/nrd.sock and node.stateDir /var/lib/nrd. A private mount namespace
  // (slave: namespaces added later still appear in it) holds tmpfs on /run/nrd and /var/lib/nrd so
  // nothing collides with the host's; nrdctl runs in that mount namespace with no --socket.
  let proc: ManagedProcess | undefined;
  let node: Host;
  const made: string[] = [];
  after(async () => {
    await proc?.stop(5000);
    // The mount points this test had to create in the root namespace (empty; only ours).
    for (const d of made.reverse()) await run(['rmdir', d], { allowFailure: true });
  });

  test('default pin path, socket and state dir; plain `nrdctl endpoint add`; two endpoints ping each other', async () => {
    node = await fabric.topo.host('dflt');
    const address = '192.0.2.82';
    await fabric.topo.link(node, fabric.tors[0]!.host, { nameA: 'eth0', nameB: 'dflt', addrA: `${address}/29`, addrB: '192.0.2.81/29' });
    await node.addRoute('default', { via: '192.0.2.81' });
    await node.sysctl('net.ipv4.ip_forward', 1);
    const w1 = await fabric.topo.host('dfltw1');
    const w2 = await fabric.topo.host('dfltw2');
    const site = join(fabric.dir, 'dflt-site.yaml');
    writeFileSync(site, stringify({ node: { name: 'dflt', address }, cluster: { podCIDRs: [POD_POOL, POD_POOL_V6] }, etcd: { endpoints: [`http://${ETCD_ADDRESS}:2379`] } }));
    const script = 'mount -t tmpfs nrdt-run /run/nrd && mount -t tmpfs nrdt-state /var/lib/nrd && exec "$@"';
    // The tmpfs mounts need their mount points; those missing are made here and removed after.
    for (const d of ['/run/nrd', '/var/lib/nrd']) {
      if (existsSync(d)) continue;
      mkdirSync(d);
      made.push(d);
    }
    proc = fabric.topo.track(
      spawnProcess(
        ['unshare', '-m', '--propagation', 'slave', 'sh', '-c', script, 'sh', ...node.wrap([process.execPath, NRD_MAIN, '--config', site])],
        { name: 'dflt:nrd', cwd: ROOT, captureBytes: 64 * 1024 },
      ),
    );
    // nrd's pid: ip netns exec execs in place, so the process tree is unshare → sh (exec) → ip → node.
    const inNrdMounts = async (argv: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> =>
      run(['nsenter', '-m', '-t', String(proc!.pid), ...argv], { allowFailure: true, timeoutMs: 15_000 });
    await waitFor(
      async () => {
        if (!proc!.running()) throw new Error(`nrd exited: ${proc!.output().slice(-3000)}`);
        const r = await inNrdMounts([process.execPath, NRDCTL, 'status', '-o', 'json']);
        if (r.code !== 0) return false;
        const s = JSON.parse(r.stdout) as { ready?: boolean };
        return s.ready === true;
      },
      { timeoutMs: 45_000, intervalMs: 300, what: 'the default-config nrd ready (nrdctl status)' },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${proc!.output().slice(-3000)}`);
    });
    const eps: EndpointView[] = [];
    for (const [name, w] of [['dflt-1', w1], ['dflt-2', w2]] as const) {
      const r = await inNrdMounts([process.execPath, NRDCTL, 'endpoint', 'add', name, '--netns', `/run/netns/${w.ns}`, '-o', 'json']);
      assert.equal(r.code, 0, `plain nrdctl endpoint add ${name}: ${r.stdout}${r.stderr}\n${proc.output().slice(-3000)}`);
      eps.push(JSON.parse(r.stdout) as EndpointView);
    }
    const pins = await inNrdMounts(['ls', '/sys/fs/bpf/nrd/maps']);
    assert.match(pins.stdout, /nrd_endpoints/, `maps pinned under the default pin path: ${pins.stdout}${pins.stderr}`);
    const v4 = (e: EndpointView): string => e.ips.find((ip) => !ip.includes(':'))!;
    const v6 = (e: EndpointView): string => e.ips.find((ip) => ip.includes(':'))!;
    await waitFor(() => w1.ping(v4(eps[1]!)), { timeoutMs: 15_000, intervalMs: 200, what: `ping ${v4(eps[1]!)}` }).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${proc!.output().slice(-3000)}`);
    });
    await waitFor(() => w2.ping(v6(eps[0]!)), { timeoutMs: 15_000, intervalMs: 200, what: `ping ${v6(eps[0]!)}` });
    // The default socket is nrd's, in its own mount namespace only: the host's /run/nrd is untouched.
    const hostSide = await run(['ls', '-A', '/run/nrd']);
    assert.doesNotMatch(hostSide.stdout, /nrd\.sock/);

    // `nrdctl monitor -o json` on the default socket: a connection to a service is a translation
    // event (VIP:port => the backend; nothing listens there, the backend's kernel refuses it), a
    // connection to a service without backends a no_backend drop.
    const monitor = fabric.topo.track(spawnProcess(['nsenter', '-m', '-t', String(proc.pid), process.execPath, NRDCTL, 'monitor', '-o', 'json'], {
      name: 'dflt:monitor', cwd: ROOT, captureBytes: 256 * 1024,
    }));
    const vip = '10.96.82.1';
    for (const [name, port, backends] of [['dflt-svc', 80, ['--backend', `${v4(eps[1]!)}:9`]], ['dflt-empty', 81, []]] as const) {
      const r = await inNrdMounts([process.execPath, NRDCTL, 'service', 'set', '--name', name, '--vip', vip, '--port', String(port), '--protocol', 'tcp', ...backends]);
      assert.equal(r.code, 0, r.stdout + r.stderr);
    }
    const connect = `require('net').connect(Number(process.argv[1]), '${vip}').on('error', (e) => { console.log(e.code); process.exit(0); }).on('connect', () => { console.log('CONNECTED'); process.exit(0); })`;
    const events = (): Array<{ type: string; reason: string; dst: string; dport: number; translated: { addr: string } | null }> =>
      monitor.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as never);
    const seen = await waitFor(
      async () => {
        for (const port of [80, 81]) await w1.exec([process.execPath, '-e', connect, String(port)], { timeoutMs: 5000 });
        const ev = events();
        const xl = ev.find((e) => e.type === 'translated' && e.reason === 'service' && e.dst === vip && e.dport === 80);
        const nb = ev.find((e) => e.type === 'dropped' && e.reason === 'no_backend' && e.dst === vip && e.dport === 81);
        return xl && nb ? { xl, nb } : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 500, what: 'nrdctl monitor: a service translation and a no_backend drop' },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${monitor.describe()}`);
    });
    assert.equal(seen.xl.translated?.addr, v4(eps[1]!));
    for (const name of ['dflt-svc', 'dflt-empty']) await inNrdMounts([process.execPath, NRDCTL, 'service', 'del', name]);
    monitor.signal('SIGINT');
  });
});
