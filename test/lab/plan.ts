// The lab's plan: names, addresses, ASNs and paths of the fabric (one BIRD top-of-rack router,
// etcd, N nrd nodes with a labelled pod each, plus app=other on node1 and app=db on the last node,
// in network namespaces), the service and policy the lab sets, and the nrd site file each node
// gets. Pure data, no I/O.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';

/** Repository root (dist/test/lab/plan.js → three levels up; same from test/lab/plan.ts under tsx). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

export const TOR_ASN = 65000;
/**
 * Node i gets AS NODE_ASN_BASE + i (64601, 64602, …). One AS per node: with a shared AS, the
 * ToR's eBGP re-advertisement of node2's CIDR would reach node1 with node1's own AS in the path,
 * and RFC 4271 §9.1.2 loop detection would drop it.
 */
export const NODE_ASN_BASE = 64600;
export const TOR_ADDRESS = '192.0.2.1';
export const ETCD_ADDRESS = '192.0.2.2';
export const FABRIC_PREFIX_LEN = 24;
export const POD_CIDR = '10.244.0.0/16';
/** The pods' gateway: link-local, on every node's side of every pod veth (Calico's trick). */
export const POD_GATEWAY = '169.254.1.1';
/** The external host behind the ToR (TEST-NET-3, outside the pools): it has a route to the
 *  fabric only, never to the pods, so a pod reaches it only through the node's masquerade. */
export const EXT_ADDRESS = '203.0.113.2';
export const EXT_TOR_ADDRESS = '203.0.113.1';
export const EXT_PREFIX_LEN = 29;
/** TCP port of the external host's "who is calling" service (answers the peer's address). */
export const EXT_PORT = 7070;

/** The lab's service: a VIP outside the pod and fabric ranges, backed by every app=web pod. */
export const SERVICE_NAME = 'web';
export const SERVICE_VIP = '10.96.0.10';
export const SERVICE_PORT = 80;
/** Every pod's name server listens here (the service's backend port) and on DB_PORT. */
export const BACKEND_PORT = 8080;
/** The port the policy opens on app=db, to app=web only. */
export const DB_PORT = 5432;
export const POLICY_NAME = 'db-from-web';
/** Connections the report makes to the VIP from one pod: enough that two backends both show. */
export const SERVICE_PROBES = 30;

export interface LabOptions {
  /** Namespace prefix: namespaces are `<name>-tor`, `<name>-etcd`, `<name>-node1`, … (default nrdlab). */
  name?: string;
  /** Where the state file, sockets and logs live (default /run/nrd-lab). */
  stateDir?: string;
  /** Where the generated site files go (default config/lab in the repository). */
  configDir?: string;
  /** Number of nrd nodes, 1..9 (default 3). */
  nodes?: number;
  /**
   * Short mode (tests): consider a node up once its control API answers, without waiting for
   * `ready`, and use shorter timeouts.
   */
  short?: boolean;
  /** How long `up` waits for the nodes (default 90 s, short mode 45 s). */
  readyTimeoutMs?: number;
  /** Where progress and the status table are printed (default stdout). */
  out?: (line: string) => void;
}

/** The endpoint ("pod") of a node: a namespace the lab makes, plumbed by nrd
 *  (`nrdctl endpoint add <name> --netns /run/netns/<ns>`). */
export interface PodPlan {
  /** Host name in the topology and endpoint name (`<node>-pod`); the namespace is `<lab>-<node>-pod`. */
  name: string;
  ns: string;
  /** The interface nrd gives the workload inside its namespace. */
  podIf: string;
  /** The endpoint's labels (`nrdctl endpoint add --labels`): what the service and policy select. */
  labels: Record<string, string>;
}

export interface NodePlan {
  name: string;
  asn: number;
  /** Host name in the topology; the namespace is `<lab>-<name>`. */
  ns: string;
  address: string;
  routerId: string;
  /** The node's uplink in its namespace (the veth to the ToR): its node.interface. */
  interface: string;
  /** Port name on the top-of-rack bridge. */
  torPort: string;
  configFile: string;
  socket: string;
  stateDir: string;
  /** datapath.pinPath: <pinRoot>/<node>, on the lab's bpffs. */
  pinPath: string;
  logFile: string;
  /** The node's own pod (app=web): pinged, masqueraded, a backend of the service. */
  pod: PodPlan;
  /** More pods on the node, for the policy and the service client (node1: app=other; last node: app=db). */
  extraPods: PodPlan[];
}

export interface LabPlan {
  name: string;
  stateDir: string;
  stateFile: string;
  logDir: string;
  configDir: string;
  short: boolean;
  readyTimeoutMs: number;
  /**
   * How long `up` waits, after readiness, for every node to route every other node's CIDR and
   * for routes held down on their way to native to get there (routing.failoverHoldDown, 30 s).
   */
  convergeTimeoutMs: number;
  torNs: string;
  etcdNs: string;
  /** The external host's namespace (behind the ToR, reached by pods through masquerade). */
  extNs: string;
  etcdEndpoint: string;
  /**
   * Mount point of the bpffs the lab mounts for its nodes (this machine has none at /sys/fs/bpf);
   * node N pins under <pinRoot>/N. `down` unmounts it once the nodes are gone.
   */
  pinRoot: string;
  nodes: NodePlan[];
}

export function makePlan(opts: LabOptions = {}): LabPlan {
  const name = opts.name ?? 'nrdlab';
  if (!/^[a-z][a-z0-9]{0,15}$/.test(name)) throw new Error(`lab name ${JSON.stringify(name)}: 1-16 chars of [a-z0-9], starting with a letter`);
  const stateDir = opts.stateDir ?? '/run/nrd-lab';
  const configDir = opts.configDir ?? join(REPO_ROOT, 'config', 'lab');
  const n = opts.nodes ?? 3;
  if (!Number.isInteger(n) || n < 1 || n > 9) throw new Error(`lab nodes: ${n} (1..9)`);
  const short = opts.short ?? false;
  const pinRoot = join(stateDir, 'bpf');
  const logDir = join(stateDir, 'logs');
  const nodes: NodePlan[] = [];
  for (let i = 1; i <= n; i++) {
    const node = `node${i}`;
    const address = `192.0.2.${10 + i}`;
    nodes.push({
      name: node,
      asn: NODE_ASN_BASE + i,
      ns: `${name}-${node}`,
      address,
      routerId: address,
      interface: 'eth0',
      torPort: node,
      configFile: join(configDir, `${node}.generated.yaml`),
      socket: join(stateDir, node, 'nrd.sock'),
      stateDir: join(stateDir, node, 'state'),
      pinPath: join(pinRoot, node),
      logFile: join(logDir, `${node}.log`),
      pod: { name: `${node}-pod`, ns: `${name}-${node}-pod`, podIf: 'eth0', labels: { app: 'web' } },
      extraPods: [
        // The service client and the policy's denied peer, on the first node; the policy's target
        // on the last one, so web→db crosses nodes (node1) and stays on one (the last node).
        ...(i === 1 ? [{ name: `${node}-other`, ns: `${name}-${node}-other`, podIf: 'eth0', labels: { app: 'other' } }] : []),
        ...(i === n ? [{ name: `${node}-db`, ns: `${name}-${node}-db`, podIf: 'eth0', labels: { app: 'db' } }] : []),
      ],
    });
  }
  return {
    name,
    stateDir,
    stateFile: join(stateDir, 'state.json'),
    logDir,
    configDir,
    short,
    readyTimeoutMs: opts.readyTimeoutMs ?? (short ? 45_000 : 90_000),
    convergeTimeoutMs: short ? 60_000 : 90_000,
    torNs: `${name}-tor`,
    etcdNs: `${name}-etcd`,
    extNs: `${name}-ext`,
    etcdEndpoint: `http://${ETCD_ADDRESS}:2379`,
    pinRoot,
    nodes,
  };
}

/** The policy the lab sets (`nrdctl policy set -f`): app=db admits TCP DB_PORT from app=web only. */
export function dbPolicy(): Record<string, unknown> {
  return { name: POLICY_NAME, selector: { app: 'db' }, ingress: [{ from: [{ labels: { app: 'web' } }], ports: [{ port: DB_PORT, protocol: 'tcp' }] }] };
}

/** The site file of one lab node (keys as in config/site.example.yaml). */
export function siteFile(plan: LabPlan, node: NodePlan): string {
  const site = {
    node: { name: node.name, address: node.address, interface: node.interface, stateDir: node.stateDir },
    cluster: { podCIDRs: [POD_CIDR], nodeCIDRMaskSize: 24 },
    etcd: { endpoints: [plan.etcdEndpoint], prefix: `/${plan.name}` },
    bgp: {
      asn: node.asn,
      routerId: node.routerId,
      listen: { address: node.address, port: 179 },
      peers: [{ address: TOR_ADDRESS, asn: TOR_ASN }],
    },
    datapath: { pinPath: node.pinPath },
    // Every lab node shares the machine's cgroups: the default (the cgroup v2 root) would put the
    // socket hooks on every process of the machine, so the lab runs without them.
    services: { cgroupPath: '' },
    api: { socket: node.socket, metrics: '' },
    log: { level: 'info' },
  };
  return `# Generated by the nrd lab (test/lab) for ${node.name} in namespace ${node.ns}; rewritten by every \`npm run lab\`.\n${stringify(site)}`;
}
