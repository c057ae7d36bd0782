// nrd end to end in routing.mode cross-subnet: two nodes share an L2 segment of ToR1 and reach
// each other directly (host-gw: the peer's underlay address as next hop, no encapsulation); a
// third node in another subnet with no BGP peer is reached over VXLAN, and reaches them over VXLAN.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Fabric, type FabricNode } from '../../lib/fabric.js';
import { pingMesh, waitPath } from './helpers.js';

const fabric = Fabric.use(after, {
  tag: 'e2exs',
  tors: 1,
  mode: 'cross-subnet',
  nodes: [{ segment: true }, { segment: true }, { bgp: false }],
});

before(async () => {
  await fabric.build();
  await fabric.addPods();
});

test('cross-subnet: direct inside the segment, VXLAN to and from the node in another subnet without BGP', async () => {
  const [n1, n2, n3] = fabric.nodes as [FabricNode, FabricNode, FabricNode];
  assert.equal(n1.prefixLen, 27);
  await waitPath(n1, n2, 'direct', { gateways: [n2.address] });
  await waitPath(n2, n1, 'direct', { gateways: [n1.address] });
  for (const n of [n1, n2]) {
    await waitPath(n, n3, 'vxlan');
    await waitPath(n3, n, 'vxlan');
  }
  const tx = await Promise.all(fabric.nodes.map((n) => n.vxlanTxPackets()));
  await pingMesh(fabric.nodes);
  const tx2 = await Promise.all(fabric.nodes.map((n) => n.vxlanTxPackets()));
  assert.ok(tx2[2]! > tx[2]!, 'n3 sent over VXLAN');
  assert.ok(tx2[0]! > tx[0]!, 'n1 sent over VXLAN (to n3)');
});
