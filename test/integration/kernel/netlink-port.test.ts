// The real netlink KernelPort inside a network namespace: routes (replace, multipath, onlink, MTU,
// IPv6, blackhole) all with protocol 220, delete that never matches a foreign route, a VXLAN device
// with FDB and neighbour entries, errno names on failures, and change notifications — checked
// against iproute2's own view (`ip -j route`, `bridge -j fdb`, `ip -j neigh`, `ip -d -j link`).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { useTopology, type Host } from '../../lib/netns.js';
import { waitFor } from '../../lib/wait.js';
import { Agent, AgentError } from './agent-client.js';
import type { KernelEvent, LinkInfo, Route } from '../../../daemon/kernel/types.js';

const topo = useTopology(after, 'kport');
let h: Host;
let agent: Agent;

async function ipj(args: string[]): Promise<Array<Record<string, unknown>>> {
  const r = await h.ip(['-j', ...args]);
  return r.stdout.trim() ? (JSON.parse(r.stdout) as Array<Record<string, unknown>>) : [];
}

const R = (dst: string, rest: Partial<Route> = {}): Route => ({
  family: dst.includes(':') ? 6 : 4,
  dst,
  table: 254,
  protocol: 220,
  type: 'unicast',
  nextHops: [],
  ...rest,
});

test('set up one namespace with two underlay links', async () => {
  h = await topo.host('n');
  const peer = await topo.host('p');
  await topo.link(h, peer, { nameA: 'eth0', addrA: ['192.0.2.1/24', 'fd00:2::1/64'], addrB: '192.0.2.2/24' });
  await topo.link(h, peer, { nameA: 'eth1', addrA: '198.51.100.1/24', addrB: '198.51.100.2/24' });
  agent = new Agent(h);
  await agent.call('events.start');
});

test('routes: plain, multipath, onlink, MTU, blackhole, IPv6 — all protocol 220, replace in place', async () => {
  await agent.port('replaceRoute', R('10.244.1.0/24', { nextHops: [{ gateway: '192.0.2.2' }], mtu: 1400 }));
  await agent.port('replaceRoute', R('10.244.2.0/24', { nextHops: [{ gateway: '192.0.2.2' }, { gateway: '198.51.100.2', weight: 3 }] }));
  await agent.port('replaceRoute', R('10.244.3.0/24', { type: 'blackhole' }));
  await agent.port('replaceRoute', R('10.244.4.0/24', { nextHops: [{ gateway: '10.244.4.0', ifindex: (await agent.port<LinkInfo>('getLink', 'eth1')).index, onlink: true }] }));
  await agent.port('replaceRoute', R('fd00:244:5::/64', { nextHops: [{ gateway: 'fd00:2::2' }] }));
  const v4 = await ipj(['route', 'show', 'proto', '220']);
  const byDst = new Map(v4.map((r) => [r.dst as string, r]));
  assert.equal(byDst.get('10.244.1.0/24')?.gateway, '192.0.2.2');
  assert.deepEqual((byDst.get('10.244.1.0/24')?.metrics as Array<Record<string, unknown>>)[0], { mtu: 1400 });
  const mp = byDst.get('10.244.2.0/24')?.nexthops as Array<Record<string, unknown>>;
  assert.deepEqual(
    mp.map((n) => [n.gateway, n.dev, n.weight]),
    [
      ['192.0.2.2', 'eth0', 1],
      ['198.51.100.2', 'eth1', 3],
    ],
  );
  assert.equal(byDst.get('10.244.3.0/24')?.type, 'blackhole');
  assert.deepEqual(byDst.get('10.244.4.0/24')?.flags, ['onlink']);
  const v6 = await ipj(['-6', 'route', 'show', 'proto', '220']);
  assert.equal(v6[0]?.dst, 'fd00:244:5::/64');
  // Replace: same key, new next hop, still one route.
  await agent.port('replaceRoute', R('10.244.1.0/24', { nextHops: [{ gateway: '198.51.100.2' }] }));
  const again = (await ipj(['route', 'show', '10.244.1.0/24'])).map((r) => r.gateway);
  assert.deepEqual(again, ['198.51.100.2']);
  // Read back through the port matches what iproute2 shows.
  const mine = (await agent.port<Route[]>('listRoutes', 4, 254)).filter((r) => r.protocol === 220);
  assert.deepEqual(mine.map((r) => r.dst).sort(), ['10.244.1.0/24', '10.244.2.0/24', '10.244.3.0/24', '10.244.4.0/24']);
  // Every route we wrote carries protocol 220; nothing else appeared outside the connected routes.
  const all = await ipj(['route', 'show', 'table', 'main']);
  for (const r of all) assert.ok(r.protocol === 'kernel' || r.protocol === '220' || r.protocol === 'nrd', JSON.stringify(r));
});

test('delete honours the protocol: a foreign route with the same prefix is never removed', async () => {
  await h.ip(['route', 'add', '10.99.0.0/16', 'via', '192.0.2.2', 'proto', 'static']);
  await assert.rejects(agent.port('deleteRoute', R('10.99.0.0/16')), (e: AgentError) => e.code === 'ESRCH' && e.errno === 3 && e.call === 'delRoute');
  assert.equal((await ipj(['route', 'show', '10.99.0.0/16'])).length, 1);
  await agent.port('deleteRoute', R('10.244.3.0/24', { type: 'blackhole' }));
  assert.equal((await ipj(['route', 'show', '10.244.3.0/24'])).length, 0);
});

test('errors keep the errno name', async () => {
  await assert.rejects(agent.port('replaceRoute', R('10.244.8.0/24', { nextHops: [{ gateway: '203.0.113.9' }] })), (e: AgentError) => e.code === 'ENETUNREACH' && e.errno === 101 && e.call === 'newRoute');
  await assert.rejects(agent.port('setLinkUp', 9999), (e: AgentError) => e.code === 'ENODEV' && e.call === 'setLink');
});

test('VXLAN device (VNI, port, local, learning off, MTU), FDB append/replace/delete, permanent neighbour', async () => {
  const eth0 = await agent.port<LinkInfo>('getLink', 'eth0');
  const vx = await agent.port<LinkInfo>('createVxlan', { name: 'nrd-vx', vni: 4242, port: 4789, local: '192.0.2.1', mtu: eth0.mtu - 50, underlayIndex: eth0.index, mac: '02:aa:00:00:00:01' });
  await assert.rejects(agent.port('createVxlan', { name: 'nrd-vx', vni: 1, port: 4789, local: '192.0.2.1', mtu: 1450 }), (e: AgentError) => e.code === 'EEXIST' && e.errno === 17);
  await agent.port('setLinkUp', vx.index);
  const [d] = await ipj(['-d', 'link', 'show', 'nrd-vx']);
  const info = (d!.linkinfo as { info_kind: string; info_data: Record<string, unknown> });
  assert.equal(info.info_kind, 'vxlan');
  assert.equal(info.info_data.id, 4242);
  assert.equal(info.info_data.port, 4789);
  assert.equal(info.info_data.local, '192.0.2.1');
  assert.equal(info.info_data.learning, false);
  assert.equal(d!.mtu, 1450);
  assert.equal(d!.address, '02:aa:00:00:00:01');
  assert.ok((d!.flags as string[]).includes('UP'));

  await agent.port('appendFdb', { ifindex: vx.index, mac: '02:aa:00:00:00:02', dst: '192.0.2.2' });
  await agent.port('appendFdb', { ifindex: vx.index, mac: '00:00:00:00:00:00', dst: '192.0.2.2' });
  await agent.port('appendFdb', { ifindex: vx.index, mac: '00:00:00:00:00:00', dst: '198.51.100.2' });
  await agent.port('replaceFdb', { ifindex: vx.index, mac: '02:aa:00:00:00:02', dst: '198.51.100.2' });
  await agent.port('replaceNeighbour', { ifindex: vx.index, ip: '10.244.9.0', mac: '02:aa:00:00:00:02' });
  const fdb = (JSON.parse((await h.exec(['bridge', '-j', 'fdb', 'show', 'dev', 'nrd-vx'])).stdout) as Array<Record<string, unknown>>)
    .filter((e) => e.dst)
    .map((e) => `${e.mac}>${e.dst}:${(e.flags as string[]).join(',')}:${e.state}`)
    .sort();
  assert.deepEqual(fdb, ['00:00:00:00:00:00>192.0.2.2:self:permanent', '00:00:00:00:00:00>198.51.100.2:self:permanent', '02:aa:00:00:00:02>198.51.100.2:self:permanent']);
  const portFdb = await agent.port<Array<{ mac: string; dst?: string }>>('listFdb', vx.index);
  assert.equal(portFdb.filter((e) => e.dst).length, 3);
  const neigh = await ipj(['neigh', 'show', 'dev', 'nrd-vx']);
  assert.deepEqual(neigh.map((n) => [n.dst, n.lladdr, (n.state as string[])[0]]), [['10.244.9.0', '02:aa:00:00:00:02', 'PERMANENT']]);
  await agent.port('deleteFdb', { ifindex: vx.index, mac: '00:00:00:00:00:00', dst: '192.0.2.2' });
  await agent.port('deleteNeighbour', { ifindex: vx.index, ip: '10.244.9.0' });
  assert.equal((await agent.port<unknown[]>('listNeighbours', 4, vx.index)).length, 0);
  assert.equal((await agent.port<Array<{ dst?: string }>>('listFdb', vx.index)).filter((e) => e.dst).length, 2);
});

test('sysctl read/write in the namespace', async () => {
  await agent.port('writeSysctl', 'net.ipv4.ip_forward', 1);
  assert.equal(await agent.port('readSysctl', 'net.ipv4.ip_forward'), '1');
  assert.equal((await h.exec(['sysctl', '-n', 'net.ipv4.ip_forward'])).stdout.trim(), '1');
});

test('a route deleted by hand shows up as an RTM_DELROUTE notification with protocol 220', async () => {
  await agent.call('events.take');
  await h.ip(['route', 'del', '10.244.2.0/24', 'proto', '220']);
  const ev = await waitFor(async () => {
    const e = await agent.call<KernelEvent[]>('events.take');
    return e.find((x) => x.kind === 'route' && x.op === 'del' && x.route.dst === '10.244.2.0/24');
  }, { what: 'DELROUTE event' });
  assert.equal(ev.kind === 'route' && ev.route.protocol, 220);
});


test('an address added and removed by hand shows up as address events (the hijack guard and direct paths follow them)', async () => {
  await agent.call('events.take');
  const dev = (await h.exec(['ip', '-o', 'link', 'show', 'type', 'veth'])).stdout.split('\n')[0]!.split(': ')[1]!.split('@')[0]!;
  await h.ip(['addr', 'add', '203.0.113.9/24', 'dev', dev]);
  await h.ip(['addr', 'del', '203.0.113.9/24', 'dev', dev]);
  const seen = await waitFor(async () => {
    const e = (await agent.call<KernelEvent[]>('events.take')).filter((x) => x.kind === 'address' && x.address.address === '203.0.113.9');
    return e.length >= 2 ? e : undefined;
  }, { what: 'NEWADDR and DELADDR events' });
  assert.deepEqual(seen.map((e) => e.kind === 'address' && [e.op, e.address.prefixLen]), [['new', 24], ['del', 24]]);
});

test('batch writes: 6000 routes across several datagrams, failures reported by index (also on an ACK-carrying last message), batch delete', async () => {
  const routes: Route[] = [];
  for (let i = 0; i < 6000; i++) routes.push(R(`10.${100 + (i >> 8)}.${i & 255}.0/24`, { nextHops: [{ gateway: '192.0.2.2' }] }));
  // Unreachable gateways: one in the middle, and the very last route (its message carries the ACK).
  routes[2500] = R('10.250.0.0/24', { nextHops: [{ gateway: '203.0.113.9' }] });
  routes[5999] = R('10.250.1.0/24', { nextHops: [{ gateway: '203.0.113.9' }] });
  // Refused before it reaches the kernel: a malformed prefix.
  routes[10] = R('10.999.0.0/24', { nextHops: [{ gateway: '192.0.2.2' }] });
  const failed = await agent.port<Array<{ index: number; error: { code: string; call: string } }>>('replaceRoutes', routes);
  assert.deepEqual(
    failed.map((f) => [f.index, f.error.code, f.error.call]).sort((a, b) => Number(a[0]) - Number(b[0])),
    [
      [10, 'EINVAL', 'newRoute'],
      [2500, 'ENETUNREACH', 'newRoute'],
      [5999, 'ENETUNREACH', 'newRoute'],
    ],
  );
  const mine = (await agent.port<Route[]>('listRoutes', 4, 254)).filter((r) => r.protocol === 220 && r.dst.startsWith('10.1'));
  assert.equal(mine.filter((r) => /^10\.(1\d\d)\./.test(r.dst)).length, 5997);
  const del = routes.filter((_, i) => i !== 2500 && i !== 5999 && i !== 10);
  const delFailed = await agent.port<unknown[]>('deleteRoutes', [...del, R('10.251.0.0/24')]);
  assert.deepEqual((delFailed as Array<{ index: number; error: { code: string } }>).map((f) => [f.index, f.error.code]), [[del.length, 'ESRCH']]);
  const left = (await agent.port<Route[]>('listRoutes', 4, 254)).filter((r) => r.protocol === 220 && /^10\.(1\d\d)\./.test(r.dst));
  assert.equal(left.length, 0);
});
