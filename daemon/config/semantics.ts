// Checks across keys that no single-key format can make: pool overlaps and mask sizes, static
// CIDRs inside pools, peers (duplicates, self, RFC 4456 clients), etcd credential pairs, and a
// prefilter that would cut the node off, a Maglev table size that is not prime. Runs on values convict has already typed; every check
// skips keys that already have an issue, so one mistake yields one line.
import { formatIp, parseCidr, parseIp, cidrContains, cidrHasIp, cidrOverlaps, type ParsedCidr } from './net.js';
import { nodeNameProblem } from './formats.js';
import { ENDPOINT_MARK, FOREIGN_PROTOCOLS } from '../kernel/owners.js';
import { isPrime } from '../services/maglev.js';
import type { BgpPeerConfig, ConfigIssue, NrdConfig } from './types.js';

/** A peer as validated, before derived defaults are filled in. */
export type RawPeer = Omit<BgpPeerConfig, 'holdTime' | 'multihop'> & { holdTime: number | null; multihop: number | null };
export type RawConfig = Omit<NrdConfig, 'bgp'> & { bgp: Omit<NrdConfig['bgp'], 'peers'> & { peers: RawPeer[] } };

const MULTICAST_V4 = parseCidr('224.0.0.0/4')!;
const BROADCAST_V4 = parseCidr('255.255.255.255/32')!;
const MULTICAST_V6 = parseCidr('ff00::/8')!;

export function checkSemantics(c: RawConfig, host: string, issues: ConfigIssue[]): void {
  const bad = (key: string): boolean =>
    issues.some((i) => i.key === key || i.key.startsWith(`${key}[`) || i.key.startsWith(`${key}.`));
  const add = (key: string, value: unknown, message: string): void => {
    issues.push({ key, value, message });
  };
  const cidrList = (key: string, list: unknown): { text: string; c: ParsedCidr }[] =>
    bad(key) || !Array.isArray(list)
      ? []
      : list.flatMap((t) => {
          const p = typeof t === 'string' ? parseCidr(t) : null;
          return p ? [{ text: t as string, c: p }] : [];
        });

  if (!bad('node.name') && c.node.name === '') {
    const p = nodeNameProblem(host);
    if (p) add('node.name', host, `is unset and the host name is not a valid node name (${p}): set node.name`);
  }
  // Route protocols are ownership marks: two owners sharing one would delete each other's routes.
  if (!bad('routing.routeProtocol')) {
    const p = c.routing.routeProtocol;
    const other = FOREIGN_PROTOCOLS.get(p);
    if (p === ENDPOINT_MARK.protocol) add('routing.routeProtocol', p, `is the protocol of nrd's endpoint routes (${ENDPOINT_MARK.protocolName}); choose another`);
    else if (other) add('routing.routeProtocol', p, `is the route protocol of ${other}; nrd would take that software's routes for its own`);
  }
  const self = bad('node.address') ? null : parseIp(c.node.address);

  // Pools, and the size of the block each node takes from them.
  const pools = cidrList('cluster.podCIDRs', c.cluster.podCIDRs);
  pools.forEach((b, j) => {
    const i = pools.findIndex((a, k) => k < j && cidrOverlaps(a.c, b.c));
    if (i >= 0) add(`cluster.podCIDRs[${j}]`, b.text, `overlaps cluster.podCIDRs[${i}] (${pools[i]!.text})`);
  });
  for (const [fam, key] of [
    [4, 'cluster.nodeCIDRMaskSize'],
    [6, 'cluster.nodeCIDRMaskSizeIPv6'],
  ] as const) {
    const mask = fam === 4 ? c.cluster.nodeCIDRMaskSize : c.cluster.nodeCIDRMaskSizeIPv6;
    if (bad(key)) continue;
    const longest = pools.filter((p) => p.c.family === fam).sort((a, b) => b.c.prefixLength - a.c.prefixLength)[0];
    if (longest && mask < longest.c.prefixLength) {
      add(key, mask, `is shorter than the pool ${longest.text}: a node block must fit inside its pool (use /${longest.c.prefixLength} or longer)`);
    }
  }

  // Static node CIDRs come out of the pools like allocated ones, so the fabric filters stay right.
  const statics = cidrList('node.podCIDRs', c.node.podCIDRs);
  statics.forEach((s, j) => {
    if (pools.length > 0 && !bad('cluster.podCIDRs') && !pools.some((p) => cidrContains(p.c, s.c))) {
      add(`node.podCIDRs[${j}]`, s.text, `is not inside any of cluster.podCIDRs (${pools.map((p) => p.text).join(', ')})`);
    }
    const i = statics.findIndex((a, k) => k < j && cidrOverlaps(a.c, s.c));
    if (i >= 0) add(`node.podCIDRs[${j}]`, s.text, `overlaps node.podCIDRs[${i}] (${statics[i]!.text})`);
  });

  // Import filter: a maximum shorter than the node blocks would refuse every other node's CIDR.
  for (const [fam, key, maskKey] of [
    [4, 'bgp.import.maxPrefixLength.ipv4', 'cluster.nodeCIDRMaskSize'],
    [6, 'bgp.import.maxPrefixLength.ipv6', 'cluster.nodeCIDRMaskSizeIPv6'],
  ] as const) {
    const max = fam === 4 ? c.bgp.import.maxPrefixLength.ipv4 : c.bgp.import.maxPrefixLength.ipv6;
    const mask = fam === 4 ? c.cluster.nodeCIDRMaskSize : c.cluster.nodeCIDRMaskSizeIPv6;
    if (bad(key) || bad(maskKey) || !pools.some((p) => p.c.family === fam)) continue;
    if (max < mask) add(key, max, `is shorter than ${maskKey} (${mask}): the other nodes' pod CIDRs would be refused`);
  }

  // RFC 6286: the BGP identifier is a non-zero 32-bit number; an IPv6 node has none to lend.
  if (!bad('bgp.routerId') && c.bgp.routerId === '' && self?.family === 6) {
    add('bgp.routerId', '', 'is required when node.address is IPv6: the BGP identifier is a 32-bit IPv4-style number (RFC 6286)');
  }

  // etcd credentials come in pairs.
  const tls = c.etcd.tls;
  if (!bad('etcd.tls')) {
    if (tls.cert !== '' && tls.key === '') add('etcd.tls.key', '', 'is required when etcd.tls.cert is set');
    if (tls.key !== '' && tls.cert === '') add('etcd.tls.cert', '', 'is required when etcd.tls.key is set');
    if ((tls.cert !== '' || tls.ca !== '') && !bad('etcd.endpoints') && Array.isArray(c.etcd.endpoints)) {
      c.etcd.endpoints.forEach((u, i) => {
        if (u.startsWith('http:')) add(`etcd.endpoints[${i}]`, u, 'uses http but etcd.tls is set: use https');
      });
      // The embedded etcd (no endpoints) listens on loopback without TLS.
      if (c.etcd.endpoints.length === 0) add('etcd.endpoints', [], 'is empty (embedded etcd, no TLS) but etcd.tls is set: list the cluster endpoints');
    }
  }
  if (!bad('etcd.username') && !bad('etcd.password')) {
    if (c.etcd.password !== '' && c.etcd.username === '') add('etcd.username', '', 'is required when etcd.password is set');
    if (c.etcd.username !== '' && c.etcd.password === '') add('etcd.password', '', 'is required when etcd.username is set');
  }

  // Peers. (With nodeMesh, mesh members come from etcd at run time; a node that is also a static
  // peer cannot be known here.)
  const firstByAddress = new Map<string, number>();
  const peerIps: { i: number; text: string; ip: NonNullable<ReturnType<typeof parseIp>> }[] = [];
  c.bgp.peers.forEach((p, i) => {
    const pfx = `bgp.peers[${i}]`;
    const ip = bad(`${pfx}.address`) ? null : parseIp(p.address);
    if (ip) {
      const canon = `${ip.family}/${formatIp(ip.family, ip.value)}`;
      const first = firstByAddress.get(canon);
      if (first !== undefined) add(`${pfx}.address`, p.address, `duplicates bgp.peers[${first}].address: one session per peer address`);
      else firstByAddress.set(canon, i);
      if (self && self.family === ip.family && self.value === ip.value) add(`${pfx}.address`, p.address, "is this node's own address (node.address)");
      const multicast = ip.family === 4 ? cidrHasIp(MULTICAST_V4, ip) || cidrHasIp(BROADCAST_V4, ip) : cidrHasIp(MULTICAST_V6, ip);
      if (multicast) add(`${pfx}.address`, p.address, 'must be a unicast address');
      peerIps.push({ i, text: p.address, ip });
    }
    if (p.rrClient === true && !bad(`${pfx}.asn`) && !bad('bgp.asn') && !bad(`${pfx}.rrClient`) && p.asn !== c.bgp.asn) {
      add(`${pfx}.rrClient`, true, `applies to iBGP peers only (RFC 4456): this peer is AS ${p.asn}, bgp.asn is ${c.bgp.asn}`);
    }
    if (p.bfd && p.bfd.auth.type !== 'none' && p.bfd.auth.key === '' && !bad(`${pfx}.bfd.auth.key`)) {
      add(`${pfx}.bfd.auth.key`, '', `is required when bfd.auth.type is ${p.bfd.auth.type}`);
    }
  });

  for (const [key, b] of [
    ['bgp.nodeMeshBfd', c.bgp.nodeMeshBfd],
    ['routing.bfd', c.routing.bfd],
  ] as const) {
    if (b && b.auth.type !== 'none' && b.auth.key === '' && !bad(`${key}.auth.key`)) add(`${key}.auth.key`, '', `is required when ${key}.auth.type is ${b.auth.type}`);
  }

  // Maglev's permutation (offset + j·skip mod M) visits every slot only when M is prime.
  const m = c.services.maglevTableSize;
  if (Number.isInteger(m) && !isPrime(m)) add('services.maglevTableSize', m, 'must be a prime (Maglev fills its table by permutation modulo the size); 16381 and 65521 are primes');

  // The prefilter drops by source on the uplink: covering the pools or a peer cuts this node off.
  cidrList('datapath.xdpPrefilter.deny', c.datapath.xdpPrefilter.deny).forEach((d, i) => {
    const key = `datapath.xdpPrefilter.deny[${i}]`;
    const pool = pools.findIndex((p) => cidrOverlaps(p.c, d.c));
    if (pool >= 0) add(key, d.text, `overlaps cluster.podCIDRs[${pool}] (${pools[pool]!.text}): pod traffic from other nodes would be dropped`);
    const peer = peerIps.find((p) => cidrHasIp(d.c, p.ip));
    if (peer) add(key, d.text, `contains bgp.peers[${peer.i}].address (${peer.text}): its BGP session would be dropped`);
  });
}
