// The typed, resolved site configuration every subsystem reads (deeply frozen after load).
// Derived defaults (node.name, bgp.routerId, bgp.listen.address, per-peer holdTime, multihop,
// families) are already filled in: consumers never re-derive them.

export type RoutingMode = 'native' | 'vxlan' | 'auto' | 'cross-subnet';
export type AttachMode = 'tcx' | 'tc' | 'auto';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
export type AddressFamily = 'ipv4' | 'ipv6';
export type MaxPrefixAction = 'warn' | 'teardown';

export interface BgpPeerConfig {
  address: string;
  asn: number;
  /** TCP MD5 key (RFC 2385); "" for none. */
  password: string;
  passive: boolean;
  gracefulRestart: boolean;
  port: number;
  description: string;
  /** Seconds; resolved from bgp.holdTime when the peer does not override it. */
  holdTime: number;
  /** Hops the peer may be away: resolved to 1 for eBGP and 255 for iBGP when unset. */
  multihop: number;
  /** GTSM (RFC 5082): send TTL 255, accept only TTL >= 256 - multihop. */
  ttlSecurity: boolean;
  maxPrefix: { limit: number; action: MaxPrefixAction };
  /** Resolved from the families of cluster.podCIDRs when unset. */
  families: AddressFamily[];
  /** RFC 4456 route-reflector client (iBGP peers only). */
  rrClient: boolean;
  /** BFD (RFC 5880) with the peer; intervals in milliseconds. */
  bfd: BfdPeerConfig;
}

export type BfdAuthType = 'none' | 'keyed-sha1' | 'meticulous-keyed-sha1';

export interface BfdPeerConfig {
  enabled: boolean;
  minTx: number;
  minRx: number;
  multiplier: number;
  auth: { type: BfdAuthType; keyId: number; key: string };
}

/** A BFD block (bgp.peers[].bfd, bgp.nodeMeshBfd, routing.bfd): the same fields everywhere. */
export type BfdConfig = BfdPeerConfig;

export interface NrdConfig {
  node: {
    name: string;
    address: string;
    /** Uplink interface; "" means the interface that holds node.address. */
    interface: string;
    podCIDRs: string[];
    stateDir: string;
  };
  cluster: {
    podCIDRs: string[];
    nodeCIDRMaskSize: number;
    nodeCIDRMaskSizeIPv6: number;
    /** Seconds a node must be gone (observed twice) before its CIDR is reclaimed. */
    cidrReclaimGracePeriod: number;
  };
  etcd: {
    endpoints: string[];
    prefix: string;
    tls: { ca: string; cert: string; key: string };
    username: string;
    password: string;
    /** Seconds; TTL of the liveness lease. */
    leaseTTL: number;
    /** Milliseconds. */
    dialTimeout: number;
  };
  bgp: {
    asn: number;
    routerId: string;
    listen: { address: string; port: number };
    holdTime: number;
    connectRetryTime: number;
    peers: BgpPeerConfig[];
    nodeMesh: boolean;
    /** BFD (RFC 5883 multihop) with every node-mesh peer. */
    nodeMeshBfd: BfdConfig;
    gracefulRestart: { enabled: boolean; restartTime: number; stalePathTime: number };
    ecmpMax: number;
    multipathRelax: boolean;
    import: { extraRanges: string[]; maxPrefixLength: { ipv4: number; ipv6: number } };
    export: {
      /** RFC 1997 communities as "asn:value" or well-known names. */
      communities: string[];
      /** RFC 8092 large communities as "global:local1:local2". */
      largeCommunities: string[];
      /** null: no MULTI_EXIT_DISC attribute. */
      med: number | null;
      localPref: number;
      prepend: number;
      extraPrefixes: string[];
    };
  };
  routing: {
    mode: RoutingMode;
    vxlan: { vni: number; port: number; device: string; mtu: number };
    /** Seconds a recovered native path must stay up before traffic leaves VXLAN again. */
    failoverHoldDown: number;
    routeProtocol: number;
    /** Single-hop BFD (RFC 5881) to every node a direct path reaches; Down moves it to VXLAN. */
    bfd: BfdConfig;
  };
  datapath: {
    attach: AttachMode;
    masquerade: boolean;
    masqueradeExclude: string[];
    /** Where masquerade runs: BPF with an nftables fallback, or nftables always. */
    masqueradeBackend: 'auto' | 'nftables';
    xdpPrefilter: { deny: string[] };
    /** Which flow events the datapath writes besides drops and translations. */
    flowEvents: { forwarded: boolean };
    pinPath: string;
  };
  services: {
    algorithm: 'maglev' | 'random';
    /** Prime (checked in semantics.ts): Maglev's permutation needs it. */
    maglevTableSize: number;
    drain: 'keep' | 'reset';
    drainSeconds: number;
    /** cgroup v2 directory of the socket hooks (datapath/sock.ts); "" disables them. */
    cgroupPath: string;
  };
  endpoints: {
    /** MTU of the workload veths; 0: auto (see daemon/endpoints/model.ts endpointMtu). */
    mtu: number;
  };
  api: {
    socket: string;
    /** "host:port"; "" disables the metrics listener. */
    metrics: string;
  };
  log: { level: LogLevel };
}

/** One problem in a site file; key is a dotted path such as "bgp.peers[0].asn", "(file)" for the file itself. */
export interface ConfigIssue {
  key: string;
  value: unknown;
  message: string;
}

export type LoadResult = { ok: true; config: NrdConfig } | { ok: false; issues: ConfigIssue[] };

export interface ConfigChange {
  key: string;
  from: unknown;
  to: unknown;
}

export const EX_CONFIG = 78;
