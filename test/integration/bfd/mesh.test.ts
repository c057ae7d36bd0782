// bgp.nodeMeshBfd in namespaces: nrd's BGP and BFD subsystems wired as main.ts wires them (driver.ts)
// with bgp.nodeMesh on and a mesh node added at run time (as etcd's node list would), played by
// BIRD 2 with an iBGP session and `bfd on` (iBGP: a multihop BFD session, RFC 5883). The mesh
// session gets a multihop BFD session tagged mesh with the node's name; a silent cut (nftables
// drops BFD and BGP in BIRD's namespace) takes BFD Down within the detection time and the mesh
// BGP session with it, long before the 9 s hold time; a mesh node removed loses its session.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Topology, type Host } from '../../lib/netns.js';
import { startBird } from '../../lib/bird.js';
import { waitFor } from '../../lib/wait.js';
import { BfdNrd, bfdSite, cutLink, healLink } from './harness.js';

const NRD = '192.0.2.1';
const NODE = '192.0.2.2';
const ASN = 65001;

let topo: Topology;
let birdHost: Host;
let nrd: BfdNrd;

before(async () => {
  topo = new Topology('nrdt-bfd-mesh');
  const nrdHost = await topo.host('nrd');
  birdHost = await topo.host('node');
  await topo.link(nrdHost, birdHost, { addrA: [`${NRD}/24`], addrB: [`${NODE}/24`] });
  await startBird(birdHost, {
    routerId: NODE,
    asn: ASN,
    staticRoutes: ['10.244.2.0/24'],
    peers: [{ name: 'mesh', address: NRD, localAddress: NODE, asn: ASN, holdTime: 9, keepaliveTime: 3, extra: 'bfd on;' }],
    extraConfig: 'protocol bfd {\n  multihop { interval 100 ms; multiplier 3; };\n  interface "*" { interval 100 ms; multiplier 3; };\n}\n',
  });
  const site = bfdSite({ address: NRD, asn: ASN, podCIDRs: ['10.244.1.0/24'], stateDir: topo.tmpdir('state'), peers: [] }) as { bgp: Record<string, unknown> };
  site.bgp.nodeMesh = true;
  site.bgp.nodeMeshBfd = { enabled: true, minTx: 100, minRx: 100, multiplier: 3 };
  nrd = await BfdNrd.start(nrdHost, { site }, topo.tmpdir('sock'));
});

after(async () => {
  await topo?.destroy();
});

test('bgp.nodeMeshBfd: a mesh node gets a multihop BFD session; a silent cut resets its BGP session within the detection time', async () => {
  await nrd.post('/test/mesh', { nodes: [{ name: 'node-b', address: NODE }, { name: 'self', address: NRD }] });
  const s = await nrd.waitBfd(NODE, 'Up');
  assert.equal(s.multihop, true);
  assert.deepEqual(s.purposes, ['mesh']);
  assert.equal(s.node, 'node-b');
  assert.equal((await nrd.get<{ sessions: unknown[] }>('/v1/bfd')).sessions.length, 1, 'no session to self');
  await nrd.waitBgp(NODE, 'Established');
  await waitFor(async () => (await nrd.session(NODE))?.detectionTimeMs === 300, { timeoutMs: 10_000, what: '100 ms × 3 negotiated' });
  const before = (await nrd.events()).bfd.length;
  const cutAt = await nrd.nowMs();
  await cutLink(birdHost);
  try {
    await nrd.waitBfd(NODE, 'Down', 5000);
    const events = await nrd.events();
    const down = events.bfd.slice(before).find((e) => e.peer === NODE && e.to === 'Down');
    assert.ok(down, 'a Down event');
    assert.deepEqual(down.purposes, ['mesh']);
    const took = down.atMs - cutAt;
    process.stdout.write(`# mesh BFD Down ${took.toFixed(0)} ms after the cut\n`);
    assert.ok(took < 300 + 700, `BFD Down ${took.toFixed(0)} ms after the cut (detection 300 ms, margin for load)`);
    assert.ok(events.bgpResets.some((r) => r.peer === NODE && r.atMs >= down.atMs), 'the mesh BGP session reset on BFD Down');
    assert.notEqual(await nrd.bgpState(NODE), 'Established');
  } finally {
    await healLink(birdHost);
  }
  await nrd.waitBfd(NODE, 'Up', 20_000);
  await nrd.waitBgp(NODE, 'Established', 30_000);
  // The node leaves the mesh: its BGP and BFD sessions go.
  await nrd.post('/test/mesh', { nodes: [] });
  await waitFor(async () => (await nrd.session(NODE)) === undefined, { timeoutMs: 5000, what: 'mesh BFD session removed' });
});
