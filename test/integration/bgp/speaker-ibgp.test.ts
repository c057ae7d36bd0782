// nrd's speaker as an iBGP route-reflector client of a real BIRD 2 (RFC 4456), IPv4 and IPv6 (one
// session each), plus node-mesh peers added and removed at runtime (setMeshPeers): BIRD reflects
// another client's routes to nrd with ORIGINATOR_ID/CLUSTER_LIST, and nrd's CIDRs reach BIRD.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Topology, type Host } from '../../lib/netns.js';
import { startBird, type Bird, type BirdPeer } from '../../lib/bird.js';
import { waitFor } from '../../lib/wait.js';
import { SpeakerProc, siteConfig } from './speaker-harness.js';

const NRD4 = '192.0.2.1';
const RR4 = '192.0.2.2';
const CLIENT4 = '192.0.2.3';
const NRD6 = '2001:db8::1';
const RR6 = '2001:db8::2';
const MESH = '192.0.2.20';
const NRD_MESH = '192.0.2.21';

let topo: Topology;
let nrdHost: Host;
let rrHost: Host;
let rr: Bird;
let client: Bird;
let nrd: SpeakerProc;

const ibgp = { asn: 65001, holdTime: 3, keepaliveTime: 1, extra: 'direct;' } satisfies Partial<BirdPeer>;

before(async () => {
  topo = new Topology('nrdt-spk-ibgp');
  nrdHost = await topo.host('nrd');
  rrHost = await topo.host('rr');
  const clientHost = await topo.host('client');
  const br = await topo.host('sw');
  const l1 = await topo.link(br, nrdHost, { addrB: [`${NRD4}/24`, `${NRD6}/64`, `${NRD_MESH}/24`] });
  const l2 = await topo.link(br, rrHost, { addrB: [`${RR4}/24`, `${RR6}/64`, `${MESH}/24`] });
  const l3 = await topo.link(br, clientHost, { addrB: `${CLIENT4}/24` });
  await topo.bridge(br, 'br0', [l1.ifA, l2.ifA, l3.ifA]);
  rr = await startBird(rrHost, {
    routerId: RR4,
    asn: 65001,
    peers: [
      { ...ibgp, name: 'nrd4', address: NRD4, localAddress: RR4, rrClient: true, families: ['ipv4'] },
      { ...ibgp, name: 'nrd6', address: NRD6, localAddress: RR6, rrClient: true, families: ['ipv6'] },
      { ...ibgp, name: 'rrc', address: CLIENT4, localAddress: RR4, rrClient: true, families: ['ipv4'] },
      // A "node" of the mesh: nrd adds it at runtime.
      { ...ibgp, name: 'mesh', address: NRD_MESH, localAddress: MESH, families: ['ipv4'] },
    ],
    staticRoutes: ['fd00:244:0:7::/64'],
  });
  client = await startBird(clientHost, {
    routerId: CLIENT4,
    asn: 65001,
    staticRoutes: ['10.244.7.0/24'],
    peers: [{ ...ibgp, name: 'reflector', address: RR4, localAddress: CLIENT4, families: ['ipv4'] }],
  });
  const site = siteConfig({
    address: NRD4,
    asn: 65001,
    podCIDRs: ['10.244.1.0/24', 'fd00:244:0:1::/64'],
    stateDir: topo.tmpdir('state'),
    peers: [
      { address: RR4, asn: 65001, families: ['ipv4'] },
      { address: RR6, asn: 65001, families: ['ipv6'] },
    ],
    bgp: { nodeMesh: true },
  });
  nrd = await SpeakerProc.start(nrdHost, { site }, topo.tmpdir('sock'));
});

after(async () => {
  await topo?.destroy();
});

test('iBGP to a BIRD route reflector: reflected routes reach nrd, nrd\'s CIDRs reach the reflector (IPv4 and IPv6)', async () => {
  await nrd.waitEstablished(RR4);
  await nrd.waitEstablished(RR6);
  await client.waitEstablished('reflector');
  const r = await waitFor(
    async () => {
      const x = await nrd.routes(`peer=${RR4}&prefix=10.244.7.0/24`);
      return x.routes[0];
    },
    { timeoutMs: 15_000, what: 'reflected route in nrd' },
  );
  const p = r.paths[0]!;
  assert.deepEqual(p.nextHops, [CLIENT4]);
  assert.equal(p.asPath, '');
  assert.equal(p.localPref, 100);
  await waitFor(() => nrd.hasRoute('ipv6', 'fd00:244:0:7::/64', RR6), { timeoutMs: 15_000, what: 'RR IPv6 route in nrd' });
  // nrd's own prefixes at the reflector, with nrd as next hop, and reflected on to the client.
  await waitFor(async () => (await rr.birdc('show route 10.244.1.0/24 protocol nrd4').catch(() => '')).includes(NRD4), { timeoutMs: 10_000, what: 'nrd IPv4 at the RR' });
  await waitFor(async () => (await rr.birdc('show route fd00:244:0:1::/64 protocol nrd6').catch(() => '')).includes(NRD6), { timeoutMs: 10_000, what: 'nrd IPv6 at the RR' });
  const atClient = await waitFor(async () => (await client.routes('10.244.1.0/24').catch(() => []))[0], { timeoutMs: 10_000, what: 'nrd route reflected to the client' });
  assert.equal(atClient.attrs['BGP.originator_id'], NRD4);
  assert.equal(atClient.attrs['BGP.cluster_list'], RR4);
  const peer = await nrd.peer(RR4);
  assert.equal(peer.type, 'ibgp');
});

test('node mesh: a node added at runtime gets an iBGP session, removing it ends the session', async () => {
  await nrd.post('/test/mesh', { nodes: [{ name: 'node-b', address: MESH }, { name: 'self', address: NRD4 }] });
  const p = await nrd.waitEstablished(MESH);
  assert.equal(p.source, 'mesh');
  assert.equal(p.description, 'node-b');
  await rr.waitEstablished('mesh');
  // Our own address is never a mesh peer; static peers stay.
  const all = (await nrd.peers()).peers.map((x) => x.address);
  assert.ok(!all.includes(NRD4));
  assert.ok(all.includes(RR4));
  const since = (await nrd.peer(RR4)).uptimeSeconds!;
  await nrd.post('/test/mesh', { nodes: [] });
  await waitFor(async () => !(await nrd.peers()).peers.some((x) => x.address === MESH), { timeoutMs: 5_000, what: 'mesh peer removed' });
  await waitFor(async () => !(await rr.protocols()).find((x) => x.name === 'mesh')?.info.startsWith('Established'), {
    timeoutMs: 10_000,
    what: 'BIRD mesh session closed',
  });
  const rr4 = await nrd.peer(RR4);
  assert.equal(rr4.state, 'Established');
  assert.ok(rr4.uptimeSeconds! >= since);
});
