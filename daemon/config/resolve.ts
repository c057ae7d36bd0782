// Fills in derived defaults (node.name, bgp.routerId, bgp.listen.address, per-peer holdTime,
// multihop and families) and writes addresses and prefixes in canonical text (RFC 5952), so
// consumers compare them with kernel and RIB text directly. Input is already validated.
import { formatIp, parseCidr, parseIp } from './net.js';
import type { AddressFamily, BfdConfig, NrdConfig } from './types.js';
import type { RawConfig } from './semantics.js';

const canonIp = (s: string): string => {
  const ip = parseIp(s);
  return ip ? formatIp(ip.family, ip.value) : s;
};
const bfdOf = (b: BfdConfig): BfdConfig => ({ enabled: b.enabled, minTx: b.minTx, minRx: b.minRx, multiplier: b.multiplier, auth: { ...b.auth } });
const canonCidrs = (list: readonly string[]): string[] => list.map((s) => parseCidr(s)?.network ?? s);

export function resolveConfig(c: RawConfig, host: string): NrdConfig {
  const nodeAddress = canonIp(c.node.address);
  const poolFamilies: AddressFamily[] = (['ipv4', 'ipv6'] as const).filter((f) =>
    c.cluster.podCIDRs.some((p) => parseCidr(p)?.family === (f === 'ipv4' ? 4 : 6)),
  );
  const b = c.bgp;
  return {
    node: {
      name: c.node.name || host,
      address: nodeAddress,
      interface: c.node.interface,
      podCIDRs: canonCidrs(c.node.podCIDRs),
      stateDir: c.node.stateDir,
    },
    cluster: {
      podCIDRs: canonCidrs(c.cluster.podCIDRs),
      nodeCIDRMaskSize: c.cluster.nodeCIDRMaskSize,
      nodeCIDRMaskSizeIPv6: c.cluster.nodeCIDRMaskSizeIPv6,
      cidrReclaimGracePeriod: c.cluster.cidrReclaimGracePeriod,
    },
    etcd: {
      endpoints: [...c.etcd.endpoints],
      prefix: c.etcd.prefix,
      tls: { ca: c.etcd.tls.ca, cert: c.etcd.tls.cert, key: c.etcd.tls.key },
      username: c.etcd.username,
      password: c.etcd.password,
      leaseTTL: c.etcd.leaseTTL,
      dialTimeout: c.etcd.dialTimeout,
    },
    bgp: {
      asn: b.asn,
      routerId: b.routerId ? canonIp(b.routerId) : nodeAddress,
      listen: { address: b.listen.address ? canonIp(b.listen.address) : nodeAddress, port: b.listen.port },
      holdTime: b.holdTime,
      connectRetryTime: b.connectRetryTime,
      peers: b.peers.map((p) => ({
        address: canonIp(p.address),
        asn: p.asn,
        password: p.password,
        passive: p.passive,
        gracefulRestart: p.gracefulRestart,
        port: p.port,
        description: p.description,
        holdTime: p.holdTime ?? b.holdTime,
        // eBGP peers are directly connected unless told otherwise; iBGP sessions cross the fabric.
        multihop: p.multihop ?? (p.asn === b.asn ? 255 : 1),
        ttlSecurity: p.ttlSecurity,
        maxPrefix: { limit: p.maxPrefix.limit, action: p.maxPrefix.action },
        families: p.families.length > 0 ? [...p.families] : [...poolFamilies],
        rrClient: p.rrClient,
        bfd: bfdOf(p.bfd),
      })),
      nodeMesh: b.nodeMesh,
      nodeMeshBfd: bfdOf(b.nodeMeshBfd),
      gracefulRestart: {
        enabled: b.gracefulRestart.enabled,
        restartTime: b.gracefulRestart.restartTime,
        stalePathTime: b.gracefulRestart.stalePathTime,
      },
      ecmpMax: b.ecmpMax,
      multipathRelax: b.multipathRelax,
      import: {
        extraRanges: canonCidrs(b.import.extraRanges),
        maxPrefixLength: { ipv4: b.import.maxPrefixLength.ipv4, ipv6: b.import.maxPrefixLength.ipv6 },
      },
      export: {
        communities: [...b.export.communities],
        largeCommunities: [...b.export.largeCommunities],
        med: b.export.med,
        localPref: b.export.localPref,
        prepend: b.export.prepend,
        extraPrefixes: canonCidrs(b.export.extraPrefixes),
      },
    },
    routing: {
      mode: c.routing.mode,
      vxlan: { vni: c.routing.vxlan.vni, port: c.routing.vxlan.port, device: c.routing.vxlan.device, mtu: c.routing.vxlan.mtu },
      failoverHoldDown: c.routing.failoverHoldDown,
      routeProtocol: c.routing.routeProtocol,
      bfd: bfdOf(c.routing.bfd),
    },
    datapath: {
      attach: c.datapath.attach,
      masquerade: c.datapath.masquerade,
      masqueradeExclude: canonCidrs(c.datapath.masqueradeExclude),
      masqueradeBackend: c.datapath.masqueradeBackend,
      xdpPrefilter: { deny: canonCidrs(c.datapath.xdpPrefilter.deny) },
      flowEvents: { forwarded: c.datapath.flowEvents.forwarded },
      pinPath: c.datapath.pinPath,
    },
    services: { ...c.services },
    endpoints: { mtu: c.endpoints.mtu },
    api: { socket: c.api.socket, metrics: c.api.metrics },
    log: { level: c.log.level },
  };
}
