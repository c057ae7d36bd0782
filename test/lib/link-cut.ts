// Silent link failures in the routed test fabric (fabric.ts): a node's link to its ToR cut with
// nftables netdev ingress/egress hooks in the ToR's namespace (every frame dropped both ways, ARP
// included: no TCP reset, no NOTIFICATION, no carrier change), and a second underlay through a
// plain router namespace so that VXLAN between the nodes survives the cut. Namespaces only.
import type { Fabric, FabricNode, FabricNodeSpec } from './fabric.js';
import type { Host } from './netns.js';

/** Name of the nodes' interface towards the underlay router. */
export const UNDERLAY_DEVICE = 'ul0';

/** Node i's address on the underlay router (203.0.113.(4i+2)/30; the router holds .4i+1). */
export function underlayAddress(i: number, host = 2): string {
  return `203.0.113.${4 * i + host}`;
}

/**
 * Site keys for node i (1-based, its place in FabricOptions.nodes) that move nrd's underlay onto
 * the router: node.address (the VXLAN endpoint other nodes use) and node.interface (nrd binds
 * the VXLAN device to it, so the ToR link could not carry it anyway). Each node is alone in its
 * /30, so the fallback is VXLAN, not a direct route. etcd sits behind ToR1 and the cut takes the
 * node's etcd session with it: a lease of 60 s keeps its record (and so its VXLAN route on the
 * other nodes) through a cut that lasts as long as a BGP hold timer.
 */
export function underlaySite(i: number): NonNullable<FabricNodeSpec['site']> {
  return { node: { address: underlayAddress(i), interface: UNDERLAY_DEVICE }, etcd: { leaseTTL: 60 } };
}

/**
 * The router namespace and one /30 per listed node (build the fabric with `start: false`, call
 * this, then start the nodes: nrd needs its underlay interface at start).
 */
export async function addUnderlayRouter(fabric: Fabric, nodes: readonly FabricNode[]): Promise<Host> {
  const r = await fabric.topo.host('ul');
  await r.sysctl('net.ipv4.ip_forward', 1);
  for (const n of nodes) {
    await fabric.topo.link(n.host, r, {
      nameA: UNDERLAY_DEVICE,
      nameB: n.name,
      addrA: `${underlayAddress(n.index)}/30`,
      addrB: `${underlayAddress(n.index, 1)}/30`,
    });
    await n.host.addRoute('203.0.113.0/24', { via: underlayAddress(n.index, 1) });
  }
  return r;
}

const table = (n: FabricNode): string => `nrdtcut_${n.name}`;

/**
 * Cut node `n`'s link to ToR `tor` (1 or 2): the ToR's interface towards the node drops every
 * frame in and out, from the next packet on.
 */
export async function cutTorLink(fabric: Fabric, n: FabricNode, tor = 1): Promise<void> {
  const h = fabric.tors[tor - 1]!.host;
  const dev = n.spec.segment ? `seg${n.index}` : n.name;
  const t = table(n);
  await h.exec([
    'nft',
    [
      `add table netdev ${t}`,
      `add chain netdev ${t} in { type filter hook ingress device "${dev}" priority -500 ; policy drop ; }`,
      `add chain netdev ${t} out { type filter hook egress device "${dev}" priority -500 ; policy drop ; }`,
    ].join('; '),
  ]);
}

/** Undo cutTorLink (no error when there is no cut). */
export async function healTorLink(fabric: Fabric, n: FabricNode, tor = 1): Promise<void> {
  await fabric.tors[tor - 1]!.host.exec(['nft', 'delete', 'table', 'netdev', table(n)], { allowFailure: true });
}
