// What the other nodes look like to this node's routing and BGP layers: a pure join of the node
// records, the liveness keys and the pod-CIDR claims reflected from etcd.
//
// Which nodes are listed, and with which CIDRs (the rule the routing layer relies on):
// - every node other than ourselves that holds a CIDR claim OR has a liveness key;
// - its `cidrs` come from the CIDR claims (the ownership keys), never from the liveness key:
//   a node whose liveness blips (lease lost, etcd hiccup, node rebooting) keeps its CIDRs, so
//   its routes stay; they go only when its CIDR is reclaimed (grace period observed twice, or
//   `nrdctl node decommission`), because that deletes the claim;
// - a live node without a CIDR yet is listed with `cidrs: []` (a BGP mesh peer, no routes);
// - the underlay address comes from the node record, else from the liveness value; a node
//   with neither is left out (nothing can be routed towards it).
import type { CidrClaim, NodeRecord } from './records.js';

export interface RemoteNodeView {
  name: string;
  /** Underlay address (BGP next hop, VXLAN tunnel endpoint). */
  address: string;
  vtepMac?: string;
  asn?: number;
  /** Pod CIDRs owned by the node (from the claims), sorted: IPv4 first, then IPv6. */
  cidrs: string[];
  /** Whether its liveness key exists right now (informational: routes do not depend on it). */
  alive: boolean;
}

export interface AliveValue {
  address?: string;
}

export function remoteNodes(
  self: string,
  nodes: Iterable<NodeRecord>,
  alive: ReadonlyMap<string, AliveValue>,
  claims: Iterable<CidrClaim & { cidr: string }>,
): RemoteNodeView[] {
  const records = new Map<string, NodeRecord>();
  for (const n of nodes) records.set(n.name, n);
  const cidrs = new Map<string, string[]>();
  for (const c of claims) {
    const l = cidrs.get(c.node) ?? [];
    l.push(c.cidr);
    cidrs.set(c.node, l);
  }
  const names = new Set<string>([...cidrs.keys(), ...alive.keys()]);
  names.delete(self);
  const out: RemoteNodeView[] = [];
  for (const name of [...names].sort()) {
    const rec = records.get(name);
    const address = rec?.address ?? alive.get(name)?.address;
    if (!address) continue;
    const view: RemoteNodeView = {
      name,
      address,
      cidrs: (cidrs.get(name) ?? []).sort((a, b) => Number(a.includes(':')) - Number(b.includes(':')) || a.localeCompare(b)),
      alive: alive.has(name),
    };
    if (rec?.vtepMac) view.vtepMac = rec.vtepMac;
    if (rec?.asn !== undefined) view.asn = rec.asn;
    out.push(view);
  }
  return out;
}
