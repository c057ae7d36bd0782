// The site-config schema: one convict schema for the file, env vars (NRD_*) and --set overrides,
// plus the schema of one static BGP peer. docs/config.md is rendered from these objects.
import type { FormatName, LeafSpec } from './formats.js';

export type SchemaTree = { [key: string]: LeafSpec | SchemaTree };

export const isLeaf = (n: LeafSpec | SchemaTree): n is LeafSpec =>
  Object.prototype.hasOwnProperty.call(n, 'default') && typeof (n as LeafSpec).format === 'string';

type Opts = Omit<LeafSpec, 'doc' | 'default' | 'format' | 'type'> & { type?: string };

const leaf = (format: FormatName, type: string, def: unknown, doc: string, o: Opts = {}): LeafSpec => ({
  type,
  ...o,
  format,
  default: def,
  doc,
});
const int = (min: number, max: number, def: number | null, doc: string, o: Opts = {}): LeafSpec =>
  leaf('nrd-int', `integer ${min}..${max}${o.nullable ? ' or null' : ''}`, def, doc, { min, max, ...o });
const bool = (def: boolean, doc: string): LeafSpec => leaf('nrd-bool', 'boolean', def, doc);
const oneOf = (values: readonly string[], def: string, doc: string): LeafSpec =>
  leaf('nrd-enum', values.join(' | '), def, doc, { values });
const str = (def: string, doc: string, o: Opts = {}): LeafSpec =>
  leaf('nrd-string', 'string', def, doc, { allowEmpty: true, ...o });
const path = (def: string, doc: string, o: Opts = {}): LeafSpec =>
  leaf('nrd-abspath', 'absolute path', def, doc, { allowEmpty: false, ...o });
const cidrs = (def: string[], doc: string, o: Opts = {}): LeafSpec =>
  leaf('nrd-cidr-list', 'list of CIDR prefixes', def, doc, o);
const ip = (def: string, doc: string, o: Opts = {}): LeafSpec =>
  leaf('nrd-ip', o.family ? `IPv${o.family} address` : 'IP address', def, doc, o);

const SECONDS = 'seconds';

/** The BFD block of bgp.peers[], bgp.nodeMeshBfd and routing.bfd (fresh leaves on every call). */
const bfdSchema = (enabledDoc: string): SchemaTree => ({
  enabled: bool(false, enabledDoc),
  minTx: int(10, 60000, 300, 'Desired minimum transmit interval once Up, in milliseconds (1 s while not Up, RFC 5880 §6.8.3).'),
  minRx: int(10, 60000, 300, 'Required minimum receive interval, in milliseconds.'),
  multiplier: int(1, 255, 3, 'Detect multiplier: the peer declares the session down after this many intervals without a packet.'),
  auth: {
    type: oneOf(['none', 'keyed-sha1', 'meticulous-keyed-sha1'], 'none', 'BFD authentication (RFC 5880 §6.7.4).'),
    keyId: int(0, 255, 1, 'Auth Key ID sent and expected.'),
    key: str('', 'Shared secret, 1..20 bytes when auth.type is not none.', { sensitive: true, maxBytes: 20 }),
  },
});

export const CONFIG_SCHEMA: SchemaTree = {
  node: {
    name: leaf('nrd-nodename', 'host name', '', 'Name of this node in the cluster: the key of its records in etcd.', {
      allowEmpty: true,
      docDefault: 'the machine\'s host name',
    }),
    address: ip(
      '',
      'Underlay address of this node on the fabric: the BGP next hop of its pod CIDRs and its VXLAN tunnel endpoint. Required.',
      { allowEmpty: false, nonzero: true, docDefault: '(required)' },
    ),
    interface: leaf(
      'nrd-ifname',
      'interface name',
      '',
      'Uplink interface. Empty: the interface that holds node.address.',
      { allowEmpty: true, docDefault: '"" (the interface holding node.address)' },
    ),
    podCIDRs: cidrs(
      [],
      'Static pod CIDRs of this node, instead of blocks allocated from cluster.podCIDRs through etcd. Each must lie inside a cluster pool of its family.',
    ),
    stateDir: path('/var/lib/nrd', 'Directory for state that must survive restarts (systemd StateDirectory).'),
  },
  cluster: {
    podCIDRs: cidrs(
      ['10.244.0.0/16'],
      'Pod address pools of the cluster, IPv4 and/or IPv6 (e.g. fd00:244::/48). Every node gets one block per family.',
      { minItems: 1 },
    ),
    nodeCIDRMaskSize: int(8, 32, 24, 'Prefix length of the block each node gets from an IPv4 pool.'),
    nodeCIDRMaskSizeIPv6: int(8, 128, 64, 'Prefix length of the block each node gets from an IPv6 pool.'),
    cidrReclaimGracePeriod: int(
      30,
      2592000,
      900,
      'Seconds a node must be gone (seen gone twice) before its pod CIDR returns to the pool.',
    ),
  },
  etcd: {
    endpoints: leaf(
      'nrd-url-list',
      'list of URLs',
      [],
      'etcd client URLs (http:// or https://). Empty: nrd starts and supervises a local single-member etcd with its data in node.stateDir/etcd (one node, zero setup).',
    ),
    prefix: leaf('nrd-etcd-prefix', 'key prefix', '/nrd', 'Prefix of every key nrd reads or writes (then /v1/...).'),
    tls: {
      ca: path('', 'CA bundle that signs the etcd server certificates. Empty: the system CAs.', { allowEmpty: true }),
      cert: path('', 'Client certificate (PEM) for etcd; needs etcd.tls.key.', { allowEmpty: true }),
      key: path('', 'Private key (PEM) of the client certificate.', { allowEmpty: true }),
    },
    username: str('', 'etcd user (RBAC); needs etcd.password.'),
    password: str('', 'Password of etcd.username.', { sensitive: true }),
    leaseTTL: int(2, 3600, 15, 'TTL in seconds of the lease that holds this node\'s liveness key.'),
    dialTimeout: int(100, 60000, 5000, 'Milliseconds to wait for an etcd connection.'),
  },
  bgp: {
    asn: int(1, 4294967295, 64512, 'AS number of this node (four-octet ASNs allowed, RFC 6793).', {
      type: 'AS number 1..4294967295',
    }),
    routerId: ip('', 'BGP identifier (RFC 4271, RFC 6286): a non-zero IPv4 address, unique in the AS.', {
      family: 4,
      allowEmpty: true,
      nonzero: true,
      docDefault: 'node.address (required when that is IPv6)',
    }),
    listen: {
      address: ip('', 'Address the BGP speaker listens on; 0.0.0.0 or :: for all.', {
        allowEmpty: true,
        docDefault: 'node.address',
      }),
      port: int(1, 65535, 179, 'TCP port of the BGP speaker.'),
    },
    holdTime: leaf(
      'nrd-hold-time',
      'integer 0 or 3..65535',
      90,
      'Hold time in seconds proposed in OPEN (keepalives every third of it); 0 disables keepalives.',
    ),
    connectRetryTime: int(1, 65535, 30, 'Seconds between attempts to connect to a peer (RFC 4271 ConnectRetryTimer).'),
    peers: leaf(
      'nrd-peer-list',
      'list of peers',
      [],
      'Static BGP peers (top-of-rack routers, route reflectors); see "bgp.peers[] fields" below. As an env var or --set: a YAML/JSON list.',
    ),
    nodeMesh: bool(false, 'Peer with every other node registered in etcd (iBGP full mesh), besides the static peers.'),
    nodeMeshBfd: bfdSchema(
      'With bgp.nodeMesh, run a multihop BFD session (RFC 5883, UDP 4784) with every node-mesh peer, as bgp.peers[].bfd does for a static iBGP peer: BFD Down closes that node\'s BGP session at once (RFC 5882). Both nodes need it. A node that is also a static peer follows its bgp.peers[].bfd instead.',
    ),
    gracefulRestart: {
      enabled: bool(true, 'Announce graceful restart (RFC 4724) so peers keep our routes while nrd restarts.'),
      restartTime: int(1, 4095, 120, 'Seconds peers keep our routes while we restart (12-bit field of the capability).'),
      stalePathTime: int(
        1,
        3600,
        360,
        'Seconds a restarted peer\'s stale routes stay installed after its session is back, waiting for End-of-RIB.',
      ),
    },
    ecmpMax: int(1, 256, 8, 'Most equal-cost next hops installed for one prefix (1: no ECMP).'),
    multipathRelax: bool(
      false,
      'ECMP across paths from different neighbour ASes (two ToRs in different ASes); off: only paths through the same neighbour AS share traffic, as RFC 4271 routers do by default.',
    ),
    import: {
      extraRanges: cidrs(
        [],
        'Prefixes accepted from peers besides those inside cluster.podCIDRs, e.g. 0.0.0.0/0 for a default route from the fabric.',
      ),
      maxPrefixLength: {
        ipv4: int(0, 32, 32, 'Longest IPv4 prefix accepted from peers, inside cluster.podCIDRs and bgp.import.extraRanges alike.'),
        ipv6: int(0, 128, 128, 'Longest IPv6 prefix accepted from peers, inside cluster.podCIDRs and bgp.import.extraRanges alike.'),
      },
    },
    export: {
      communities: leaf(
        'nrd-community-list',
        'list of communities',
        [],
        'RFC 1997 communities added to our routes: "asn:value" or no-export, no-advertise, no-export-subconfed, no-peer, blackhole, graceful-shutdown.',
      ),
      largeCommunities: leaf(
        'nrd-large-community-list',
        'list of large communities',
        [],
        'RFC 8092 large communities added to our routes: "global:local1:local2".',
      ),
      med: int(0, 4294967295, null, 'MULTI_EXIT_DISC sent with our routes; null: none.', { nullable: true }),
      localPref: int(0, 4294967295, 100, 'LOCAL_PREF sent to iBGP peers.'),
      prepend: int(0, 10, 0, 'Times our ASN is prepended to the AS_PATH sent to eBGP peers.'),
      extraPrefixes: cidrs([], 'Prefixes advertised besides this node\'s pod CIDRs (e.g. service VIP ranges).'),
    },
  },
  routing: {
    mode: oneOf(
      ['native', 'vxlan', 'auto', 'cross-subnet'],
      'auto',
      'How traffic reaches other nodes: native (BGP or directly connected routes only), vxlan (always encapsulate), auto (native when a path exists, else VXLAN), cross-subnet (VXLAN only to nodes outside our subnet).',
    ),
    vxlan: {
      vni: int(1, 16777215, 1, 'VXLAN network identifier (24 bits).'),
      port: int(1, 65535, 4789, 'UDP destination port of VXLAN (IANA 4789).'),
      device: leaf('nrd-ifname', 'interface name', 'nrd.vxlan', 'Name of the VXLAN device nrd owns.', {
        namePrefix: 'nrd',
      }),
      mtu: int(0, 65535, 0, 'MTU of the VXLAN device; 0: uplink MTU minus the encapsulation (50 over IPv4, 70 over IPv6).'),
    },
    bfd: bfdSchema(
      'Run a single-hop BFD session (RFC 5881, UDP 3784, TTL 255) with every node on a subnet connected to the underlay interface (the nodes a direct path can reach) in routing.mode auto or cross-subnet. When a session that was Up goes Down (not AdminDown: a restarting node), the direct path to that node is unusable and its CIDRs move to VXLAN at once; once Up again they come back after routing.failoverHoldDown. Both nodes need it; a session that never came Up leaves the direct path as it is. Unrelated to BGP: see bgp.peers[].bfd and bgp.nodeMeshBfd for those sessions.',
    ),
    failoverHoldDown: int(
      0,
      3600,
      30,
      'Seconds a recovered native path must stay up before traffic to that node leaves VXLAN again (prevents flapping).',
    ),
    routeProtocol: int(
      5,
      255,
      220,
      'rtm_protocol that marks the kernel routes of nrd\'s routing (0..4 belong to the kernel; 221 marks the endpoints\' host routes; numbers other routing software writes, such as BIRD\'s 12 or FRR\'s 186..198, are refused).',
    ),
  },
  datapath: {
    attach: oneOf(['tcx', 'tc', 'auto'], 'auto', 'How BPF programs attach: tcx links, classic tc (clsact), or tcx when the kernel has it.'),
    masquerade: bool(true, 'Masquerade (SNAT to the node address) traffic from pods to destinations outside the cluster.'),
    masqueradeExclude: cidrs([], 'Destinations reached without masquerade besides the cluster pools.'),
    masqueradeBackend: oneOf(
      ['auto', 'nftables'],
      'auto',
      'Where masquerade runs: auto (BPF on the uplink, or an nftables table "inet nrd" where the BPF program cannot load or attach), or nftables always.',
    ),
    xdpPrefilter: {
      deny: cidrs([], 'Source prefixes dropped by XDP on the uplink before the stack sees them.'),
    },
    flowEvents: {
      forwarded: bool(
        false,
        'Flow events for forwarded traffic as well (nrdctl monitor --verdict forwarded): the first packet of every endpoint flow in each checked direction, its first reply, and a change of the reason it is allowed. Off by default: each such event makes the first packet of a flow 1.3 to 1.4 times as long in BPF (the endpoint-prog bench); established packets cost the same either way. Drops and translations (service, masquerade) are always reported.',
      ),
    },
    pinPath: path('/sys/fs/bpf/nrd', 'bpffs directory where nrd pins its maps and links.'),
  },
  services: {
    algorithm: oneOf(
      ['maglev', 'random'],
      'maglev',
      'How a new connection to a service picks its backend: maglev (consistent hashing of the 5-tuple into a table of services.maglevTableSize slots; adding or removing a backend moves few flows, every node picks the same backend) or random (one slot per backend, picked at random per flow; a table holds at most services.maglevTableSize backends).',
    ),
    maglevTableSize: int(
      7,
      131071,
      16381,
      'Slots of each service\'s Maglev table: a prime, at least 100 times the largest backend count for an even spread. Applies to all services; a change reloads the endpoint program, replaces the pinned table map and rewrites every table. Each service\'s table (random ones too) is one kernel array value of M u32 (4 bytes per slot: 64 KiB at the default, 68 KiB of kernel memory with its page-aligned header), filled in one copy, so a service change costs a few syscalls whatever the size; the number of services is bounded by memory only (about 0.65 GiB of tables at 10k services and the default M).',
    ),
    drain: oneOf(
      ['keep', 'reset'],
      'keep',
      'A removed backend\'s established connections: keep (they continue to it for services.drainSeconds while new ones go elsewhere) or reset (the next packet of a TCP connection to it is answered with a RST).',
    ),
    drainSeconds: int(0, 86400, 300, 'Seconds a removed backend keeps its established connections (drain keep) before its entry is deleted.'),
    cgroupPath: path(
      '/sys/fs/cgroup',
      'cgroup v2 directory whose processes (and those of every cgroup below it) reach services from the node itself: their connect() to a service IP:port goes straight to a backend (socket hooks connect, sendmsg, recvmsg, getpeername), and the application still sees the service IP:port as its peer. The default, the cgroup v2 root, covers every process on the node; narrow it (e.g. /sys/fs/cgroup/system.slice) to leave some processes\' connections untouched, such as containers that run their own proxy, or to keep the hooks out of a delegated subtree. "" disables the socket hooks (pods still reach services through the endpoint datapath). A path that is not a cgroup v2 directory is reported in the datapath status; routing is unaffected.',
      { allowEmpty: true },
    ),
  },
  endpoints: {
    mtu: int(
      0,
      65535,
      0,
      'MTU of both ends of each workload veth; 0: auto, the uplink MTU with routing.mode native (traffic never leaves encapsulated), else the VXLAN device\'s MTU (routing.vxlan.mtu, or the uplink MTU minus 50 over an IPv4 underlay, 70 over IPv6), so that full-size packets fit into VXLAN. Applies to endpoints created (or re-plumbed) afterwards.',
    ),
  },
  api: {
    socket: path('/run/nrd/nrd.sock', 'Unix socket of the control API (mode 0600).', { maxBytes: 107 }),
    metrics: leaf('nrd-hostport', 'host:port', '127.0.0.1:9469', 'Prometheus /metrics listener; "" disables it.', {
      allowEmpty: true,
    }),
  },
  log: {
    level: oneOf(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'], 'info', 'Lowest level logged.'),
  },
};

/** Fields of one entry of bgp.peers (validated by a convict instance of its own per peer). */
export const PEER_SCHEMA: SchemaTree = {
  address: ip('', 'Address of the peer. Required.', { allowEmpty: false, nonzero: true, docDefault: '(required)' }),
  asn: int(1, 4294967295, null, 'AS number of the peer; equal to bgp.asn makes it iBGP. Required.', {
    type: 'AS number 1..4294967295',
    docDefault: '(required)',
  }),
  port: int(1, 65535, 179, 'TCP port of the peer.'),
  password: str('', 'TCP MD5 signature key (RFC 2385), at most 80 bytes; "" for none.', { sensitive: true, maxBytes: 80 }),
  passive: bool(false, 'Wait for the peer to connect; never connect out.'),
  gracefulRestart: bool(true, 'Negotiate graceful restart (RFC 4724) with this peer.'),
  description: str('', 'Free text shown by nrdctl and in logs.', { maxBytes: 255 }),
  holdTime: leaf('nrd-hold-time', 'integer 0 or 3..65535, or null', null, 'Hold time for this peer.', {
    nullable: true,
    docDefault: 'bgp.holdTime',
  }),
  multihop: int(1, 255, null, 'How many hops away the peer may be (outgoing TTL, and the GTSM limit).', {
    nullable: true,
    docDefault: '1 for eBGP, 255 for iBGP',
  }),
  ttlSecurity: bool(false, 'GTSM (RFC 5082): send TTL 255 and accept only TTL >= 256 - multihop.'),
  maxPrefix: {
    limit: int(
      0,
      4294967295,
      50000,
      'Most prefixes accepted from this peer per family; 0: no limit. A node expects about one pod CIDR per cluster node plus its extra ranges: the default stops a peer that leaks a full Internet table into the node\'s kernel, far above any cluster. Beyond it (action teardown) the session stays down until a reload changes the peer or the control API resets it (POST /v1/peers/ADDRESS/reset).',
    ),
    action: oneOf(['warn', 'teardown'], 'teardown', 'What happens beyond the limit: log a warning, or close the session (RFC 4486 Cease 1).'),
  },
  families: leaf('nrd-family-list', 'list of ipv4 | ipv6', [], 'Address families (unicast) negotiated with the peer.', {
    docDefault: 'the families of cluster.podCIDRs',
  }),
  rrClient: bool(false, 'Treat the peer as a route-reflector client (RFC 4456); iBGP peers only.'),
  bfd: bfdSchema(
    'Run a BFD session (RFC 5880) with the peer: single-hop (RFC 5881, UDP 3784, TTL 255 both ways) when multihop is 1, multihop (RFC 5883, UDP 4784) otherwise. BFD Down closes the BGP session at once (RFC 5882).',
  ),
};

/** One line per section for the docs. */
export const SECTION_DOCS: Readonly<Record<string, string>> = {
  node: 'This machine.',
  cluster: 'Address pools shared by all nodes.',
  etcd: 'The cluster state store.',
  'etcd.tls': 'TLS towards etcd; with all three empty, plain or server-authenticated TLS per the endpoint scheme.',
  bgp: 'The BGP speaker (RFC 4271).',
  'bgp.listen': 'Where the speaker accepts connections.',
  'bgp.gracefulRestart': 'Graceful restart (RFC 4724).',
  'bgp.import': 'What is accepted from peers: prefixes inside cluster.podCIDRs, plus bgp.import.extraRanges.',
  'bgp.import.maxPrefixLength': 'Longest prefix accepted per family.',
  'bgp.export': 'Attributes and extra prefixes of what this node advertises (its pod CIDRs).',
  routing: 'The path to each other node: native routes or VXLAN.',
  'routing.vxlan': 'The VXLAN overlay (RFC 7348).',
  datapath: 'The eBPF datapath.',
  'datapath.xdpPrefilter': 'The XDP prefilter on the uplink.',
  'datapath.flowEvents': 'Flow events of the datapath (nrdctl monitor, GET /v1/monitor).',
  services: 'Service load balancing by the endpoint datapath (virtual IP:port to backends, DNAT at the workload\'s veth) and, for processes on the node, by socket hooks at connect time.',
  endpoints: 'Workload endpoints (veth pairs into workload network namespaces).',
  api: 'The control socket and metrics.',
  log: 'Structured JSON logs on stdout.',
  maxPrefix: 'Prefix limit per peer.',
  bfd: 'Bidirectional Forwarding Detection with the peer (RFC 5880).',
  'bfd.auth': 'BFD authentication (keyed SHA1).',
  'bgp.nodeMeshBfd': 'BFD with the node-mesh peers (RFC 5880, multihop RFC 5883), like bgp.peers[].bfd.',
  'bgp.nodeMeshBfd.auth': 'BFD authentication (keyed SHA1) of the node-mesh sessions.',
  'routing.bfd': 'BFD on the direct paths to other nodes (RFC 5880, single-hop RFC 5881): a failed session moves that node to VXLAN.',
  'routing.bfd.auth': 'BFD authentication (keyed SHA1) of the direct-path sessions.',
};

/** Env var for a schema path: NRD_ + path in SCREAMING_SNAKE_CASE (bgp.holdTime → NRD_BGP_HOLD_TIME). */
export function envName(dotted: string): string {
  const snake = (seg: string): string =>
    seg
      .replace(/CIDRs/g, 'Cidrs')
      .replace(/IPv([46])/g, 'Ipv$1')
      .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
      .replace(/([A-Z]+)([A-Z][a-z])/g, '$1_$2')
      .toUpperCase();
  return `NRD_${dotted.split('.').map(snake).join('_')}`;
}

/** Sets `path` on every leaf and, when `withEnv`, its env var; returns the leaves by path. */
function finalize(tree: SchemaTree, withEnv: boolean, prefix = '', out = new Map<string, LeafSpec>()): Map<string, LeafSpec> {
  for (const [k, node] of Object.entries(tree)) {
    const p = prefix ? `${prefix}.${k}` : k;
    if (isLeaf(node)) {
      node.path = p;
      if (withEnv) node.env = node.env ?? envName(p);
      else delete node.env;
      out.set(p, node);
    } else {
      finalize(node, withEnv, p, out);
    }
  }
  return out;
}

/** Leaves of the site schema by dotted path. */
export const CONFIG_LEAVES: ReadonlyMap<string, LeafSpec> = finalize(CONFIG_SCHEMA, true);
/** Leaves of one peer by dotted path relative to the peer. */
export const PEER_LEAVES: ReadonlyMap<string, LeafSpec> = finalize(PEER_SCHEMA, false);

/** The schema node (leaf or section) at a dotted path, or undefined. */
export function schemaNodeAt(tree: SchemaTree, dotted: string): LeafSpec | SchemaTree | undefined {
  let node: LeafSpec | SchemaTree | undefined = tree;
  for (const seg of dotted.split('.')) {
    if (!node || isLeaf(node) || !Object.prototype.hasOwnProperty.call(node, seg)) return undefined;
    node = (node as SchemaTree)[seg];
  }
  return node;
}
