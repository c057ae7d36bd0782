// Which BFD sessions nrd runs, from the site config and the nodes it knows: one per bgp.peers[]
// entry with bfd.enabled (single-hop when the peer is one hop away, RFC 5881, else multihop,
// RFC 5883), one multihop session per node-mesh peer with bgp.nodeMeshBfd.enabled (iBGP across
// the fabric, like a static iBGP peer), one single-hop session per node that a direct path reaches
// with routing.bfd.enabled. Sessions with the same address and hop mode are one session serving
// several purposes; its parameters come from the first of peer, mesh, node. Pure: no I/O.
import { formatIp, parseIp } from '../config/net.js';
import type { BfdConfig, NrdConfig } from '../config/types.js';
import type { BfdPurpose, BfdSessionSpec } from './types.js';

/** Another node: its name and underlay address. */
export interface BfdNodeTarget {
  name: string;
  address: string;
}

export interface BfdTargets {
  /** The node-mesh peers (every other node in etcd); used with bgp.nodeMesh and bgp.nodeMeshBfd.enabled. */
  mesh: readonly BfdNodeTarget[];
  /** The nodes on a subnet connected to the underlay interface (routing's direct candidates). */
  direct: readonly BfdNodeTarget[];
}

export const NO_TARGETS: BfdTargets = { mesh: [], direct: [] };

const canon = (a: string): string => {
  const ip = parseIp(a);
  return ip ? formatIp(ip.family, ip.value) : a;
};

/** The session key: one session per peer address and hop mode. */
export const sessionKey = (peer: string, multihop: boolean): string => `${multihop ? 'mh' : 'sh'}/${peer}`;

function spec(peer: string, multihop: boolean, b: BfdConfig, purpose: BfdPurpose, node?: string): BfdSessionSpec {
  const s: BfdSessionSpec = { peer, multihop, minTx: b.minTx, minRx: b.minRx, multiplier: b.multiplier, purposes: [purpose] };
  if (b.auth.type !== 'none') s.auth = { type: b.auth.type, keyId: b.auth.keyId, key: b.auth.key };
  if (node !== undefined) s.node = node;
  return s;
}

/** The sessions the config asks for, given the mesh and direct nodes known now. */
export function sessionSpecs(c: NrdConfig, t: BfdTargets = NO_TARGETS): BfdSessionSpec[] {
  const out = new Map<string, BfdSessionSpec>();
  const add = (s: BfdSessionSpec): void => {
    const k = sessionKey(s.peer, s.multihop);
    const have = out.get(k);
    if (!have) {
      out.set(k, s);
      return;
    }
    for (const p of s.purposes) if (!have.purposes.includes(p)) have.purposes.push(p);
    if (have.node === undefined && s.node !== undefined) have.node = s.node;
  };
  for (const p of c.bgp.peers) if (p.bfd.enabled) add(spec(p.address, p.multihop > 1, p.bfd, 'peer'));
  const self = canon(c.node.address);
  if (c.bgp.nodeMesh && c.bgp.nodeMeshBfd.enabled) {
    // A node that is also a static peer is that peer's session (the speaker lets it shadow the mesh).
    const statics = new Set(c.bgp.peers.map((p) => canon(p.address)));
    for (const n of t.mesh) {
      const a = canon(n.address);
      if (a !== self && !statics.has(a)) add(spec(a, true, c.bgp.nodeMeshBfd, 'mesh', n.name));
    }
  }
  if (c.routing.bfd.enabled && (c.routing.mode === 'auto' || c.routing.mode === 'cross-subnet')) {
    for (const n of t.direct) {
      const a = canon(n.address);
      if (a !== self) add(spec(a, false, c.routing.bfd, 'node', n.name));
    }
  }
  return [...out.values()];
}
