// A routed L3 fabric in network namespaces for end-to-end tests and benchmarks of nrd: one or two
// BIRD top-of-rack routers (eBGP, RFC 4271, with a kernel protocol so they forward pod traffic),
// etcd in its own namespace behind ToR1, N nodes each running the real daemon (or, for self-tests
// and baselines, BIRD or nothing), and one "pod" namespace per node behind a veth.
// Kernel interfaces: iproute2 in namespaces (veth, bridge, addresses, routes), bpffs mounts
// (datapath.pinPath), the nrd control API over its unix socket (HTTP+JSON).
//
// Addressing (TEST-NET ranges, inside the namespaces only):
//   etcd  ↔ ToR1   192.0.2.0/29        ToR .1, etcd .2
//   node i ↔ ToR1  192.0.2.(8i)/29     ToR .8i+1, node .8i+2  (node.address, node.interface eth0)
//   node i ↔ ToR2  198.51.100.(8i)/29  ToR .8i+1, node .8i+2  (eth1, dual-homed nodes only)
//   shared segment 192.0.2.192/27 on a bridge of ToR1: ToR .193, segment nodes .194, .195, …
//   pods           <node CIDR base> + 10, gateway 169.254.1.1 (the node side of the veth)
// ASNs: ToR1 65000, ToR2 65001, node i 64600+i (distinct, so eBGP through a ToR has no AS loop).
// BFD (RFC 5880/5881, FabricOptions.bfd or per node): off by default; when on, BIRD's `protocol
// bfd` on the ToR interface towards the node and `bfd on` (or `bfd graceful`) in its BGP protocol.
import * as http from 'node:http';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { Topology, type AfterRegistrar, type Host } from './netns.js';
import { startBird, type Bird, type BirdPeer } from './bird.js';
import { startEtcd, type EtcdHandle } from './etcd.js';
import { run, type ManagedProcess } from './proc.js';
import { sleep, waitFor } from './wait.js';
import { mountTempBpffs, unmountTempBpffs } from './bpffs.js';
import { collectJsonLines } from './lines.js';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const NRD_MAIN = join(ROOT, 'dist', 'daemon', 'main.js');
export const NRDCTL = join(ROOT, 'dist', 'daemon', 'cli', 'nrdctl.js');

export const POD_POOL = '10.244.0.0/16';
export const POD_POOL_V6 = 'fd00:244::/48';
export const TOR_ASNS = [65000, 65001] as const;
export const NODE_ASN_BASE = 64600;
export const ETCD_ADDRESS = '192.0.2.2';
export const ETCD_TOR_ADDRESS = '192.0.2.1';
export const POD_GATEWAY = '169.254.1.1';
export const ROUTE_PROTOCOL = 220;
export const VXLAN_DEVICE = 'nrd.vxlan';
export const VXLAN_PORT = 4789;
/** Node-side name of the veth to the node's pod (must not start with nrd's owned prefix "nrd"). */
export const POD_VETH = 'vpod0';

const SEGMENT_NET = '192.0.2.192';
const SEGMENT_LEN = 27;
/** BIRD prefix set of what the ToRs accept and pass on: pod routes only. */
const POD_FILTER = 'net ~ [ 10.244.0.0/16+ ]';
/** The same for the IPv6 pool (sessions over the IPv6 underlay, FabricOptions.underlay6). */
const POD_FILTER_V6 = 'net ~ [ fd00:244::/48+ ]';

export type RoutingMode = 'native' | 'vxlan' | 'auto' | 'cross-subnet';
/** What runs on a node: the real daemon, BIRD (a reference speaker with kernel export), or nothing. */
export type NodeSpeaker = 'nrd' | 'bird' | 'none';

export interface FabricNodeSpec {
  /** Peer with the ToR(s) over BGP (default true). false: the node is reachable only over VXLAN. */
  bgp?: boolean;
  /** Also linked to (and peering with) ToR2; default: true when the fabric has two ToRs. */
  dualHomed?: boolean;
  /** On the shared L2 segment of ToR1 (192.0.2.192/27) instead of a point-to-point /29. */
  segment?: boolean;
  /** routing.mode of this node (default FabricOptions.mode). */
  mode?: RoutingMode;
  /** Static node.podCIDRs (required for speaker 'bird'; else allocated by nrd through etcd). */
  podCIDR?: string;
  speaker?: NodeSpeaker;
  /** Extra site keys merged (deeply) into the generated site. */
  site?: Record<string, unknown>;
  /** BFD on this node's sessions with its ToRs (default FabricOptions.bfd); an object's fields win over the fabric's. */
  bfd?: boolean | FabricBfd;
}

/** BFD (RFC 5880, single hop RFC 5881) between the nodes and their ToRs, the same on both ends. */
export interface FabricBfd {
  /** Desired min TX and required min RX interval, ms (default 300). */
  intervalMs?: number;
  /** Detect multiplier (default 3). */
  multiplier?: number;
  /**
   * BIRD `bfd graceful` on the ToRs instead of `bfd on`: a BFD Down starts the graceful restart
   * helper (the node's routes kept as stale) instead of closing the session and withdrawing them,
   * so a crashed nrd (kill -9 sends no BFD AdminDown) keeps its traffic like it does without BFD.
   */
  graceful?: boolean;
}

export interface FabricOptions {
  /** Namespace tag: namespaces are nrdt-<tag>-<pid>-<n>-<host>. */
  tag: string;
  tors?: 1 | 2;
  nodes: FabricNodeSpec[];
  mode?: RoutingMode;
  /** routing.failoverHoldDown, seconds (default 2). */
  holdDown?: number;
  /** BGP hold time on both sides, seconds (default 3). */
  holdTime?: number;
  logLevel?: string;
  /** ASN of ToR2 (default 65001). */
  tor2Asn?: number;
  /** Start the node speakers in build() (default true). */
  start?: boolean;
  /** cluster.podCIDRs of every node (default [POD_POOL]; add POD_POOL_V6 for dual stack). Without
   * underlay6 the IPv6 pod prefixes have no session to go to the ToR on (nrd has no IPv6 next hop
   * on an IPv4 session), so between nodes IPv6 goes over VXLAN (IPv6 inside IPv4). */
  pools?: string[];
  /** IPv6 on the ToR1 links as well (node i 2001:db8:0:i::2/64, ToR …::1, IPv6 default route via
   * the ToR, forwarding on the ToRs): a global IPv6 address on each uplink (IPv6 masquerade), and
   * for BGP nodes a second session with ToR1 over IPv6 (family ipv6, the IPv6 pool) beside the
   * IPv4 one (family ipv4): IPv6 pod prefixes are routed natively. node.address and VXLAN stay
   * IPv4. Point-to-point nodes only. */
  underlay6?: boolean;
  /** BFD on the node↔ToR sessions of the BGP nodes (default off; FabricNodeSpec.bfd: false opts out). */
  bfd?: boolean | FabricBfd;
}

export interface Tor {
  index: number;
  host: Host;
  asn: number;
  bird: Bird;
}

export interface Pod {
  host: Host;
  ip: string;
}

/** A route as `ip -j route show` prints it. */
export interface KernelRoute {
  dst: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  type?: string;
  flags?: string[];
  nexthops?: Array<{ gateway?: string; dev?: string; weight?: number; flags?: string[] }>;
  [k: string]: unknown;
}

/** One entry of GET /v1/routes. */
export interface ApiRoute {
  prefix: string;
  node?: string;
  mode: string;
  nextHops: string[];
  since: number | string;
}

export type LogLine = Record<string, unknown> & { level?: string | number; msg?: string };

/** A running nrd child: its parsed JSON log lines and the rest of its output. */
export class NrdRun {
  readonly logs: LogLine[] = [];
  readonly other: string[] = [];

  constructor(readonly proc: ManagedProcess) {
    if (proc.child.stdout) collectJsonLines(proc.child.stdout, this.logs, this.other);
    proc.child.stderr?.setEncoding('utf8').on('data', (c: string) => this.other.push(c));
  }

  get pid(): number {
    return this.proc.pid;
  }

  running(): boolean {
    return this.proc.running();
  }

  /** Log lines whose message matches. */
  find(re: RegExp): LogLine[] {
    return this.logs.filter((l) => typeof l.msg === 'string' && re.test(l.msg));
  }

  describe(lines = 25): string {
    const ex = this.proc.exit();
    const head = ex ? `exited ${ex.code ?? ex.signal}` : `pid ${this.pid} running`;
    const tail = this.logs.slice(-lines).map((l) => JSON.stringify(l)).join('\n');
    const other = this.other.join('').slice(-2000);
    return `nrd ${head}\n--- last log lines ---\n${tail}${other ? `\n--- other output ---\n${other}` : ''}`;
  }
}

/** GET on a unix-socket HTTP API. */
export function apiGet(socketPath: string, path: string, timeoutMs = 5000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ socketPath, path, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path} on ${socketPath}: timeout`)));
    req.on('error', reject);
  });
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)) {
      out[k] = deepMerge(cur as Record<string, unknown>, v as Record<string, unknown>);
    } else out[k] = v;
  }
  return out;
}

/** The child nrd sees the site file only: no NRD_* overrides or systemd variables of the runner. */
function daemonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('NRD_') || k === 'NOTIFY_SOCKET' || k.startsWith('WATCHDOG_') || k === 'LISTEN_FDS') continue;
    env[k] = v;
  }
  return env;
}

/** The IPv6 underlay address of node i on its ToR1 link (host 2), or of the ToR's end (host 1). */
export function underlay6Address(i: number, host = 2): string {
  return `2001:db8:0:${i.toString(16)}::${host}`;
}

/** "10.244.3.0/24" → "10.244.3.10". */
export function podAddress(cidr: string, offset = 10): string {
  const [base] = cidr.split('/');
  const o = base!.split('.').map(Number);
  const n = ((o[0]! << 24) >>> 0) + (o[1]! << 16) + (o[2]! << 8) + o[3]! + offset;
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** Next hops of a kernel route (one for a plain route), as gateway strings. */
export function routeGateways(r: KernelRoute): string[] {
  if (r.nexthops?.length) return r.nexthops.map((h) => h.gateway ?? `dev ${h.dev ?? '?'}`).sort();
  return r.gateway ? [r.gateway] : r.dev ? [`dev ${r.dev}`] : [];
}

/** Output devices of a kernel route. */
export function routeDevs(r: KernelRoute): string[] {
  if (r.nexthops?.length) return r.nexthops.map((h) => h.dev ?? '').sort();
  return r.dev ? [r.dev] : [];
}

export class FabricNode {
  nrd: NrdRun | null = null;
  bird: Bird | null = null;
  pod: Pod | null = null;
  /** Own pod CIDR (from the daemon's API, or the static one). */
  cidr: string | undefined;
  private runs = 0;

  constructor(
    readonly fabric: Fabric,
    readonly index: number,
    readonly name: string,
    readonly host: Host,
    readonly spec: Required<Pick<FabricNodeSpec, 'bgp' | 'dualHomed' | 'segment' | 'speaker'>> & FabricNodeSpec,
    /** node.address: its address on the ToR1 link or segment. */
    readonly address: string,
    /** ToR1's address on this node's link (its default gateway). */
    readonly tor1Address: string,
    readonly prefixLen: number,
    readonly asn: number,
    /** Address on the ToR2 link, and ToR2's end, when dual-homed. */
    readonly tor2: { address: string; torAddress: string } | null,
    readonly dir: string,
  ) {
    this.cidr = spec.podCIDR;
  }

  get mode(): RoutingMode {
    return this.spec.mode ?? this.fabric.opts.mode ?? 'auto';
  }

  get socket(): string {
    return join(this.dir, 'nrd.sock');
  }

  get siteFile(): string {
    return join(this.dir, 'site.yaml');
  }

  get pinPath(): string {
    return join(this.fabric.bpffs, this.name);
  }

  /** BGP protocol name of this node on a ToR's BIRD. */
  get protocol(): string {
    return this.name;
  }

  /** BFD settings of this node's ToR sessions, or undefined when it runs none. */
  get bfd(): Required<FabricBfd> | undefined {
    const f = this.fabric.opts.bfd;
    const own = this.spec.bfd;
    if (!this.spec.bgp || !(own ?? f)) return undefined;
    const c = { ...(typeof f === 'object' ? f : {}), ...(typeof own === 'object' ? own : {}) };
    return { intervalMs: c.intervalMs ?? 300, multiplier: c.multiplier ?? 3, graceful: c.graceful ?? false };
  }

  /** The site file of this node's nrd. */
  site(): string {
    const o = this.fabric.opts;
    const peers: Array<Record<string, unknown>> = [];
    const v6 = !!o.underlay6 && !this.spec.segment;
    const b = this.bfd;
    const bfd = b ? { bfd: { enabled: true, minTx: b.intervalMs, minRx: b.intervalMs, multiplier: b.multiplier } } : {};
    if (this.spec.bgp) {
      peers.push({ address: this.tor1Address, asn: TOR_ASNS[0], description: 'tor1', ...(v6 ? { families: ['ipv4'] } : {}), ...bfd });
      if (this.tor2) peers.push({ address: this.tor2.torAddress, asn: this.fabric.tor2Asn, description: 'tor2', ...(v6 ? { families: ['ipv4'] } : {}), ...bfd });
      if (v6) peers.push({ address: underlay6Address(this.index, 1), asn: TOR_ASNS[0], description: 'tor1-v6', families: ['ipv6'], ...bfd });
    }
    let site: Record<string, unknown> = {
      node: {
        name: this.name,
        address: this.address,
        interface: 'eth0',
        stateDir: join(this.dir, 'state'),
        ...(this.spec.podCIDR ? { podCIDRs: [this.spec.podCIDR] } : {}),
      },
      cluster: { podCIDRs: o.pools ?? [POD_POOL], nodeCIDRMaskSize: 24 },
      etcd: { endpoints: [`http://${ETCD_ADDRESS}:2379`], dialTimeout: 2000 },
      bgp: {
        asn: this.asn,
        routerId: this.address,
        // Dual-homed nodes take sessions on both links; the session's local address is the next hop.
        listen: { address: v6 ? '::' : '0.0.0.0', port: 179 },
        holdTime: o.holdTime ?? 3,
        connectRetryTime: 1,
        gracefulRestart: { restartTime: 30 },
        peers,
      },
      routing: { mode: this.mode, failoverHoldDown: o.holdDown ?? 2 },
      datapath: { pinPath: this.pinPath },
      // Not the default (the machine's root cgroup): the socket hooks would reach every process
      // on the machine running the tests. A spec's site may name a cgroup the test owns.
      services: { cgroupPath: '' },
      api: { socket: this.socket, metrics: '' },
      log: { level: o.logLevel ?? 'info' },
    };
    if (this.spec.site) site = deepMerge(site, this.spec.site);
    return `# nrd e2e fabric: ${this.name} in ${this.host.ns}\n${stringify(site)}`;
  }

  /** Start the node's speaker (nrd, or BIRD for speaker 'bird'). */
  async start(): Promise<void> {
    if (this.spec.speaker === 'none') return;
    if (this.spec.speaker === 'bird') {
      if (!this.bird) this.bird = await startBird(this.host, this.birdOptions());
      return;
    }
    if (this.nrd?.running()) throw new Error(`${this.name}: nrd runs already (pid ${this.nrd.pid})`);
    writeFileSync(this.siteFile, this.site());
    const proc = this.host.spawn([process.execPath, NRD_MAIN, '--config', this.siteFile], {
      name: `${this.name}:nrd#${++this.runs}`,
      env: daemonEnv(),
      cwd: ROOT,
      captureBytes: 16 * 1024,
    });
    this.nrd = new NrdRun(proc);
  }

  /** Stop nrd: SIGTERM (a clean stop, kernel state kept) or SIGKILL (a crash). */
  async stop(signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const r = this.nrd;
    if (!r || !r.running()) return;
    if (signal === 'SIGKILL') {
      r.proc.signal('SIGKILL');
      await r.proc.exited;
    } else {
      await r.proc.stop(10_000);
    }
  }

  private birdOptions(): Parameters<typeof startBird>[1] {
    if (!this.spec.podCIDR) throw new Error(`${this.name}: speaker 'bird' needs a static podCIDR`);
    const peers: BirdPeer[] = [];
    const common = { holdTime: this.fabric.opts.holdTime ?? 3, keepaliveTime: 1, import: { where: POD_FILTER }, export: { where: POD_FILTER } };
    if (this.spec.bgp) {
      peers.push({ name: 'tor1', address: this.tor1Address, asn: TOR_ASNS[0], localAddress: this.address, localAsn: this.asn, ...common });
      if (this.tor2) peers.push({ name: 'tor2', address: this.tor2.torAddress, asn: this.fabric.tor2Asn, localAddress: this.tor2.address, localAsn: this.asn, ...common });
    }
    return {
      routerId: this.address,
      asn: this.asn,
      peers,
      staticRoutes: [this.spec.podCIDR],
      kernel: { export: { where: 'source = RTS_BGP' } },
    };
  }

  /** GET on the control API, parsed. */
  async api<T = unknown>(path: string): Promise<T> {
    const r = await apiGet(this.socket, path);
    if (r.status !== 200) throw new Error(`${this.name} GET ${path}: HTTP ${r.status}: ${r.body.slice(0, 400)}`);
    return JSON.parse(r.body) as T;
  }

  /** GET /v1/routes (a list, or {routes: [...]}). */
  async apiRoutes(): Promise<ApiRoute[]> {
    const body = await this.api<ApiRoute[] | { routes: ApiRoute[] }>('/v1/routes');
    return Array.isArray(body) ? body : body.routes;
  }

  /** GET /readyz without throwing on 503. */
  async readyz(): Promise<{ status: number; body: { ready: boolean; notReady?: Array<{ name: string; reason?: string }> } }> {
    const r = await apiGet(this.socket, '/readyz');
    return { status: r.status, body: JSON.parse(r.body) as { ready: boolean; notReady?: Array<{ name: string; reason?: string }> } };
  }

  /** nrdctl --socket S <args…> -o json, run in the root namespace (the socket is a path). */
  async nrdctl<T = unknown>(args: readonly string[]): Promise<T> {
    const r = await run([process.execPath, NRDCTL, '--socket', this.socket, ...args, '-o', 'json'], { env: daemonEnv(), timeoutMs: 15_000 });
    return JSON.parse(r.stdout) as T;
  }

  /** `ip -j route show [args]` in the node. */
  async kernelRoutes(args: readonly string[] = []): Promise<KernelRoute[]> {
    return (await this.host.routes(args)) as KernelRoute[];
  }

  /** nrd's routes in the kernel (protocol 220), main table. */
  nrdRoutes(): Promise<KernelRoute[]> {
    return this.kernelRoutes(['proto', String(ROUTE_PROTOCOL)]);
  }

  /** `ip route show proto 220` as text, sorted: what "identical" compares. */
  async nrdRoutesText(): Promise<string> {
    const r = await this.host.ip(['route', 'show', 'proto', String(ROUTE_PROTOCOL)]);
    return r.stdout
      .split('\n')
      .map((l) => l.trimEnd())
      .filter(Boolean)
      .sort()
      .join('\n');
  }

  /** The kernel route to `prefix` (exact match), if any. */
  async kernelRoute(prefix: string): Promise<KernelRoute | undefined> {
    const rs = await this.kernelRoutes(['exact', prefix]);
    return rs.find((r) => r.dst === prefix || (prefix.endsWith('/32') && r.dst === prefix.slice(0, -3)));
  }

  /** TX packets of the VXLAN device (0 when it does not exist). */
  async vxlanTxPackets(): Promise<number> {
    const r = await this.host.ip(['-s', '-j', 'link', 'show', VXLAN_DEVICE], { allowFailure: true });
    if (r.code !== 0 || !r.stdout.trim()) return 0;
    const [l] = JSON.parse(r.stdout) as Array<{ stats64?: { tx?: { packets?: number } } }>;
    return l?.stats64?.tx?.packets ?? 0;
  }

  /** The node's own CIDR as its daemon reports it (route of mode local, else /v1/nodes). */
  async readOwnCidr(): Promise<string | undefined> {
    const routes = await this.apiRoutes().catch(() => [] as ApiRoute[]);
    const local = routes.find((r) => r.mode === 'local' && !r.prefix.includes(':'));
    if (local) return local.prefix;
    const nodes = await this.api<unknown>('/v1/nodes').catch(() => undefined);
    const list = Array.isArray(nodes) ? nodes : nodes && typeof nodes === 'object' && Array.isArray((nodes as { nodes?: unknown[] }).nodes) ? (nodes as { nodes: unknown[] }).nodes : [];
    for (const n of list as Array<Record<string, unknown>>) {
      if (n.name !== this.name) continue;
      const cidrs = (n.podCIDRs ?? n.podCidrs ?? n.cidrs) as unknown;
      const arr = Array.isArray(cidrs) ? cidrs : cidrs && typeof cidrs === 'object' ? Object.values(cidrs) : [];
      const v4 = (arr as unknown[]).find((c): c is string => typeof c === 'string' && !c.includes(':'));
      if (v4) return v4;
    }
    return undefined;
  }

  /** Wait until the daemon answers and knows its CIDR; sets this.cidr. */
  async waitCidr(timeoutMs = 45_000): Promise<string> {
    if (this.spec.speaker !== 'nrd') {
      if (!this.cidr) throw new Error(`${this.name}: no static podCIDR`);
      return this.cidr;
    }
    try {
      this.cidr = await waitFor(
        async () => {
          if (!this.nrd?.running()) throw new Error('nrd is not running');
          return this.readOwnCidr();
        },
        { timeoutMs, intervalMs: 200, what: `${this.name}: nrd to report its pod CIDR` },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${this.nrd?.describe() ?? 'nrd never started'}`);
    }
    return this.cidr;
  }

  /** Wait until /readyz says ready. */
  async waitReady(timeoutMs = 45_000): Promise<void> {
    try {
      await waitFor(
        async () => {
          if (!this.nrd?.running()) throw new Error('nrd is not running');
          const r = await this.readyz();
          if (!r.body.ready) throw new Error(`not ready: ${JSON.stringify(r.body.notReady)}`);
          return true;
        },
        { timeoutMs, intervalMs: 200, what: `${this.name}: nrd ready` },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}\n${this.nrd?.describe() ?? ''}`);
    }
  }

  /**
   * The node's "pod": a namespace behind a veth, with the pod IP (CIDR base + 10) as a /32 and a
   * default route via the link-local gateway 169.254.1.1 held by the node side (as Calico does),
   * and the node's /32 route to it (what the datapath issue will install).
   */
  async addPod(): Promise<Pod> {
    if (this.pod) return this.pod;
    const cidr = this.cidr ?? (await this.waitCidr());
    const ip = podAddress(cidr);
    const topo = this.fabric.topo;
    const h = await topo.host(`${this.name}pod`);
    await topo.link(this.host, h, { nameA: POD_VETH, nameB: 'eth0' });
    await this.host.ip(['addr', 'add', `${POD_GATEWAY}/32`, 'dev', POD_VETH]);
    await this.host.ip(['route', 'replace', `${ip}/32`, 'dev', POD_VETH]);
    await h.ip(['addr', 'add', `${ip}/32`, 'dev', 'eth0']);
    await h.ip(['route', 'add', POD_GATEWAY, 'dev', 'eth0', 'scope', 'link']);
    await h.ip(['route', 'add', 'default', 'via', POD_GATEWAY, 'dev', 'eth0']);
    this.pod = { host: h, ip };
    return this.pod;
  }

  describe(): string {
    return `${this.name} (${this.host.ns}, ${this.address}, AS ${this.asn}, cidr ${this.cidr ?? '?'}): ${this.nrd ? this.nrd.describe() : this.spec.speaker}`;
  }
}

export class Fabric {
  readonly topo: Topology;
  readonly tors: Tor[] = [];
  readonly nodes: FabricNode[] = [];
  etcd!: EtcdHandle;
  etcdHost!: Host;
  bpffs = '';
  dir = '';
  private torHosts: Host[] = [];
  private tornDown: Promise<void> | undefined;

  private constructor(readonly opts: FabricOptions) {
    this.topo = new Topology(`nrdt-${opts.tag}`);
  }

  get tor2Asn(): number {
    return this.opts.tor2Asn ?? TOR_ASNS[1];
  }

  /**
   * A fabric whose teardown is registered on `hook` (node:test's `after`, or a TestContext) before
   * anything exists; then `await fabric.build()` (in before() or the first test).
   */
  static use(hook: AfterRegistrar, opts: FabricOptions): Fabric {
    const f = new Fabric(opts);
    const fn = (): Promise<void> => f.teardown();
    if (typeof hook === 'function') hook(fn);
    else hook.after(fn);
    return f;
  }

  node(name: string): FabricNode {
    const n = this.nodes.find((x) => x.name === name);
    if (!n) throw new Error(`no node ${name} in the fabric`);
    return n;
  }

  /** Build namespaces, links, etcd, the ToRs' BIRD, the bpffs; start the node speakers. */
  async build(): Promise<void> {
    const o = this.opts;
    const nTors = o.tors ?? 1;
    if (o.nodes.length < 1 || o.nodes.length > 23) throw new Error('fabric: 1..23 nodes');
    this.dir = this.topo.tmpdir('run');

    for (let t = 0; t < nTors; t++) {
      const h = await this.topo.host(`tor${t + 1}`);
      await h.sysctl('net.ipv4.ip_forward', 1);
      if (o.underlay6) await h.sysctl('net.ipv6.conf.all.forwarding', 1);
      this.torHosts.push(h);
    }
    const tor1 = this.torHosts[0]!;
    const tor2 = this.torHosts[1];

    this.etcdHost = await this.topo.host('etcd');
    await this.topo.link(this.etcdHost, tor1, { nameA: 'eth0', nameB: 'etcd', addrA: `${ETCD_ADDRESS}/29`, addrB: `${ETCD_TOR_ADDRESS}/29` });
    await this.etcdHost.addRoute('default', { via: ETCD_TOR_ADDRESS });

    const segmentPorts: string[] = [];
    let segNext = 194;
    for (const [k, raw] of o.nodes.entries()) {
      const i = k + 1;
      const spec = {
        ...raw,
        bgp: raw.bgp ?? true,
        dualHomed: raw.dualHomed ?? nTors === 2,
        segment: raw.segment ?? false,
        speaker: raw.speaker ?? ('nrd' as const),
      };
      if (spec.dualHomed && !tor2) throw new Error(`node ${i}: dualHomed needs two ToRs`);
      const name = `n${i}`;
      const host = await this.topo.host(name);
      await host.sysctl('net.ipv4.ip_forward', 1);
      let address: string;
      let torAddr: string;
      let len: number;
      if (spec.segment) {
        address = `192.0.2.${segNext++}`;
        torAddr = `192.0.2.193`;
        len = SEGMENT_LEN;
        await this.topo.link(host, tor1, { nameA: 'eth0', nameB: `seg${i}`, addrA: `${address}/${len}` });
        segmentPorts.push(`seg${i}`);
      } else {
        address = `192.0.2.${8 * i + 2}`;
        torAddr = `192.0.2.${8 * i + 1}`;
        len = 29;
        const v6 = o.underlay6 ? { a: [`${underlay6Address(i)}/64`], b: [`${underlay6Address(i, 1)}/64`] } : { a: [], b: [] };
        await this.topo.link(host, tor1, { nameA: 'eth0', nameB: name, addrA: [`${address}/${len}`, ...v6.a], addrB: [`${torAddr}/${len}`, ...v6.b] });
        if (o.underlay6) await host.addRoute('::/0', { via: underlay6Address(i, 1) });
      }
      // The underlay: everything beyond the node's own link goes through ToR1.
      await host.addRoute('default', { via: torAddr });
      let t2: FabricNode['tor2'] = null;
      if (spec.dualHomed) {
        t2 = { address: `198.51.100.${8 * i + 2}`, torAddress: `198.51.100.${8 * i + 1}` };
        await this.topo.link(host, tor2!, { nameA: 'eth1', nameB: name, addrA: `${t2.address}/29`, addrB: `${t2.torAddress}/29` });
      }
      const dir = join(this.dir, name);
      mkdirSync(join(dir, 'state'), { recursive: true });
      this.nodes.push(new FabricNode(this, i, name, host, spec, address, torAddr, len, NODE_ASN_BASE + i, t2, dir));
    }
    if (segmentPorts.length) await this.topo.bridge(tor1, 'seg', segmentPorts, { addr: `192.0.2.193/${SEGMENT_LEN}` });

    // etcd first: the nodes register with it as they start.
    this.etcd = await startEtcd({ netns: this.etcdHost.ns, host: ETCD_ADDRESS, name: `${this.topo.prefix}-etcd` });

    for (const [t, h] of this.torHosts.entries()) {
      const asn = t === 0 ? TOR_ASNS[0] : this.tor2Asn;
      const peers: BirdPeer[] = [];
      for (const n of this.nodes) {
        if (!n.spec.bgp) continue;
        if (t === 1 && !n.tor2) continue;
        const bfd = n.bfd ? { extra: n.bfd.graceful ? 'bfd graceful;' : 'bfd on;' } : {};
        peers.push({
          name: n.protocol,
          address: t === 0 ? n.address : n.tor2!.address,
          localAddress: t === 0 ? n.tor1Address : n.tor2!.torAddress,
          asn: n.asn,
          holdTime: o.holdTime ?? 3,
          keepaliveTime: 1,
          gracefulRestart: true,
          import: { where: POD_FILTER },
          export: { where: POD_FILTER },
          ...bfd,
        });
        if (t === 0 && o.underlay6 && !n.spec.segment) {
          peers.push({
            name: `${n.protocol}_6`,
            address: underlay6Address(n.index),
            localAddress: underlay6Address(n.index, 1),
            asn: n.asn,
            holdTime: o.holdTime ?? 3,
            keepaliveTime: 1,
            gracefulRestart: true,
            families: ['ipv6'],
            import: { where: POD_FILTER_V6 },
            export: { where: POD_FILTER_V6 },
            ...bfd,
          });
        }
      }
      const bird = await startBird(h, {
        routerId: t === 0 ? ETCD_TOR_ADDRESS : '198.51.100.1',
        asn,
        peers,
        // Learned pod CIDRs go into the ToR's FIB: it forwards pod traffic natively.
        kernel: { export: { where: 'source = RTS_BGP' } },
        ...this.torBfdConfig(),
      });
      this.tors.push({ index: t + 1, host: h, asn, bird });
    }

    // The bpffs goes up before any nrd starts: `ip netns exec` gives each a copy of the mounts.
    if (this.nodes.some((n) => n.spec.speaker === 'nrd')) this.bpffs = await mountTempBpffs(this.topo.prefix);

    if (o.start ?? true) for (const n of this.nodes) await n.start();
  }

  /**
   * BIRD's `protocol bfd` for a ToR when any node runs BFD: each node's intervals on the ToR's
   * interface towards it (sessions exist only for the BGP protocols that say `bfd on`).
   */
  private torBfdConfig(): { extraConfig?: string } {
    const lines: string[] = [];
    for (const n of this.nodes) {
      const b = n.bfd;
      if (!b) continue;
      lines.push(`  interface "${n.spec.segment ? 'seg' : n.name}" { min rx interval ${b.intervalMs} ms; min tx interval ${b.intervalMs} ms; multiplier ${b.multiplier}; };`);
    }
    return lines.length ? { extraConfig: `protocol bfd {\n${[...new Set(lines)].join('\n')}\n}` } : {};
  }

  /** Wait until every nrd node knows its CIDR, then give each node a pod. */
  async addPods(nodes: readonly FabricNode[] = this.nodes): Promise<void> {
    await Promise.all(nodes.map((n) => n.waitCidr()));
    for (const n of nodes) await n.addPod();
  }

  /** Wait until every listed ToR has its sessions with the BGP nodes Established. */
  async waitSessions(timeoutMs = 45_000): Promise<void> {
    for (const t of this.tors) {
      for (const p of t.bird.options.peers ?? []) {
        try {
          await t.bird.waitEstablished(p.name!, timeoutMs);
        } catch (err) {
          const n = this.nodes.find((x) => x.protocol === p.name);
          throw new Error(`${(err as Error).message}\n${n?.describe() ?? ''}`);
        }
      }
    }
  }

  /** Everything the nodes' daemons said, for failure messages. */
  describe(): string {
    return this.nodes.map((n) => n.describe()).join('\n\n');
  }

  /** Processes, namespaces, etcd, temp dirs, then the bpffs (once no nrd can pin any more). */
  teardown(): Promise<void> {
    this.tornDown ??= (async () => {
      const errors: string[] = [];
      try {
        await this.topo.destroy();
      } catch (e) {
        errors.push(String(e));
      }
      try {
        // Its process lived in a namespace of ours and is gone; this removes its data dir.
        if (this.etcd) await this.etcd.stop();
      } catch (e) {
        errors.push(String(e));
      }
      if (this.bpffs) {
        try {
          await unmountTempBpffs(this.bpffs);
        } catch (e) {
          errors.push(String(e));
        }
      }
      if (errors.length) throw new Error(`fabric teardown: ${errors.join('; ')}`);
    })();
    return this.tornDown;
  }
}

/**
 * `ping -i INTERVAL` from a pod for `durationMs`, in the background; resolves with what ping
 * counted. Loss is what a failover costs.
 */
export interface PingRun {
  proc: ManagedProcess;
  /** SIGINT (ping prints its summary), then the counts. */
  stop(): Promise<PingCounts>;
}

export interface PingCounts {
  sent: number;
  received: number;
  lost: number;
}

/**
 * `ping -i INTERVAL` from a host in the background until stop() (or `maxMs`); the counts say
 * what a failover cost. -i below 0.2 s needs root, which these tests are.
 */
export function startPing(from: Host, to: string, opts: { intervalS?: number; maxMs?: number } = {}): PingRun {
  const interval = opts.intervalS ?? 0.01;
  const count = Math.ceil((opts.maxMs ?? 120_000) / 1000 / interval);
  const proc = from.spawn(['ping', '-n', '-q', '-i', String(interval), '-W', '1', '-c', String(count), to], { name: `${from.name}:ping` });
  return {
    proc,
    async stop() {
      proc.signal('SIGINT');
      const t = setTimeout(() => proc.signal('SIGKILL'), 5000);
      await proc.exited;
      clearTimeout(t);
      // 'exit' can come before the last of stdout has been read (the summary ping prints on its
      // way out): wait for the pipes to end, or the summary may not be in the output yet.
      await pipesDrained(proc);
      return parsePing(proc.output());
    },
  };
}

/** Resolves once the child's stdout and stderr have ended (everything it wrote has been read). */
function pipesDrained(p: ManagedProcess): Promise<void> {
  const ended = (st: NodeJS.ReadableStream & { readableEnded?: boolean; destroyed?: boolean }): Promise<void> =>
    st.readableEnded || st.destroyed ? Promise.resolve() : new Promise((r) => {
      st.once('end', () => r());
      st.once('close', () => r());
    });
  const pipes = [p.child.stdout, p.child.stderr].filter((x): x is NonNullable<typeof x> => x !== null);
  return Promise.all(pipes.map(ended)).then(() => undefined);
}

/** "N packets transmitted, M received" → counts. */
export function parsePing(out: string): PingCounts {
  const m = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(out);
  if (!m) throw new Error(`no ping summary in: ${out.slice(-500)}`);
  const sent = Number(m[1]);
  const received = Number(m[2]);
  return { sent, received, lost: sent - received };
}

/** `ip -ts monitor route` inside a host, collecting its lines until stopped. */
export class RouteMonitor {
  readonly proc: ManagedProcess;
  constructor(host: Host) {
    this.proc = host.spawn(['ip', '-ts', 'monitor', 'route'], { name: `${host.name}:monitor`, captureBytes: 1024 * 1024 });
  }
  /** Give `ip monitor` a moment to subscribe before the events it must see. */
  async ready(): Promise<void> {
    await sleep(300);
  }
  lines(): string[] {
    return this.proc
      .output()
      .split('\n')
      .filter((l) => l.trim());
  }
  async stop(): Promise<string[]> {
    await this.proc.stop(1000);
    return this.lines();
  }
}

/** Does an `ip monitor route` line concern nrd's routes (protocol 220, or one of `prefixes`)? */
export function isNrdRouteEvent(line: string, prefixes: readonly string[]): boolean {
  const body = line.replace(/^\[[^\]]*\]\s*/, '').replace(/^Deleted /, '');
  if (/\bproto (220|nrd)\b/.test(body)) return true;
  return prefixes.some((p) => body.startsWith(`${p} `) || body.startsWith(`blackhole ${p} `) || body.startsWith(`unreachable ${p} `));
}
