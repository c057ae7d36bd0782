// The ipcache: address → security identity for every endpoint of the cluster (all nodes, from the
// endpoint records in etcd), every node's underlay address and the rest of the world, as the
// desired entries of two LPM tries (IPv4, IPv6) and the diff between two such sets. The datapath
// looks up the peer of a packet here and checks the identity against the endpoint's policy map
// (compile.ts): identities travel between nodes as addresses, not as packet marks.
//
// Reserved identities (ids below MIN_IDENTITY = 256, which state/identities.ts never allocates;
// numbered as in Cilium, so operators who know one know the other):
//   0 ANY          the "any peer" wildcard of policy keys; never an ipcache value
//   1 HOST         this node's own addresses
//   2 WORLD        anything not otherwise known (0.0.0.0/0 and ::/0 entries, so a lookup always hits)
//   5 INIT         an endpoint whose identity is not allocated yet: only "any peer" rules admit it
//   6 REMOTE_NODE  the underlay address of another node
// 3, 4 and 7-255 are kept free for later reserved identities.
//
// Maps: nrd_ipcache4 / nrd_ipcache6, BPF_MAP_TYPE_LPM_TRIE, key nrd_lpm4_key / nrd_lpm6_key
// ({__u32 prefixlen; __u8 addr[4|16]}, address in network order) → nrd_ipcache_value.
import { type Family, formatIp, ipValueToBytes, maskOf, parseIp } from '../lib/ip.js';
import { diffKeyed, type Keyed, type KeyedDiff } from '../lib/keyed-diff.js';
import type { EndpointRecord, NodeRecord } from '../state/records.js';

export const ReservedIdentity = { ANY: 0, HOST: 1, WORLD: 2, INIT: 5, REMOTE_NODE: 6 } as const;

/** Same shape as the datapath's LPM key (maps.ts Cidr): the prefix in network order, host bits zero. */
export interface LpmKey {
  family: Family;
  prefixlen: number;
  addr: Buffer;
}

/** struct nrd_ipcache_value { __u32 identity; __u32 flags; } — 8 bytes, little-endian. */
export interface IpcacheValue {
  identity: number;
  flags: number;
}

/** The address is an endpoint on this node (its traffic never leaves through the uplink). */
export const IPCACHE_F_LOCAL = 1;

export interface IpcacheInput {
  endpoints: readonly EndpointRecord[];
  nodes: readonly NodeRecord[];
  localNode: string;
}

export interface Ipcache {
  /** By canonical prefix text. */
  entries: Map<string, Keyed<LpmKey, IpcacheValue>>;
  /** Addresses claimed twice: what was kept and what was not (IPAM should make this impossible). */
  conflicts: { address: string; kept: string; dropped: string }[];
}

function hostKey(text: string): { key: LpmKey; canon: string } | null {
  const a = parseIp(text);
  if (!a) return null;
  const prefixlen = a.family === 4 ? 32 : 128;
  return { key: { family: a.family, prefixlen, addr: ipValueToBytes(a.family, a.value) }, canon: `${formatIp(a.family, a.value)}/${prefixlen}` };
}

/** The desired ipcache. Precedence for an address claimed twice: host, then endpoints (by node, id), then remote nodes. */
export function buildIpcache(input: IpcacheInput): Ipcache {
  const entries: Ipcache['entries'] = new Map();
  const owner = new Map<string, string>();
  const conflicts: Ipcache['conflicts'] = [];
  const put = (text: string, who: string, value: IpcacheValue): void => {
    const k = hostKey(text);
    if (!k) return;
    const kept = owner.get(k.canon);
    if (kept !== undefined) {
      conflicts.push({ address: k.canon, kept, dropped: who });
      return;
    }
    owner.set(k.canon, who);
    entries.set(k.canon, { key: k.key, value });
  };
  for (const [canon, family] of [['0.0.0.0/0', 4], ['::/0', 6]] as const) {
    entries.set(canon, { key: { family, prefixlen: 0, addr: Buffer.alloc(family === 4 ? 4 : 16) }, value: { identity: ReservedIdentity.WORLD, flags: 0 } });
  }
  const nodes = [...input.nodes].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const n of nodes) if (n.name === input.localNode) put(n.address, `node ${n.name}`, { identity: ReservedIdentity.HOST, flags: 0 });
  const eps = [...input.endpoints].sort((a, b) => (a.node !== b.node ? (a.node < b.node ? -1 : 1) : a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const e of eps) {
    const value = { identity: e.identity ?? ReservedIdentity.INIT, flags: e.node === input.localNode ? IPCACHE_F_LOCAL : 0 };
    for (const ip of e.ips) put(ip, `endpoint ${e.node}/${e.id}`, value);
  }
  for (const n of nodes) if (n.name !== input.localNode) put(n.address, `node ${n.name}`, { identity: ReservedIdentity.REMOTE_NODE, flags: 0 });
  return { entries, conflicts };
}

export function diffIpcache(prev: Ipcache, next: Ipcache): KeyedDiff<LpmKey, IpcacheValue> {
  return diffKeyed(prev.entries, next.entries);
}

/** Longest-prefix match, as the LPM trie does it (the reference the BPF side is tested against). */
export function lookupIpcache(cache: Ipcache, ip: string): IpcacheValue | null {
  const a = parseIp(ip);
  if (!a) return null;
  const bits = a.family === 4 ? 32 : 128;
  for (let len = bits; len >= 0; len--) {
    const e = cache.entries.get(`${formatIp(a.family, a.value & maskOf(a.family, len))}/${len}`);
    if (e) return e.value;
  }
  return null;
}
