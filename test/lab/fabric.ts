// The lab keeper: a background process that builds the fabric (top-of-rack BIRD on a bridge,
// etcd, nrd nodes, each in its own network namespace), mounts the bpffs the nodes pin into,
// records it all in the state file, and stays alive as the parent of everything it started. Once a
// node's state layer has claimed its pod CIDR (read from its control API), the keeper gives it one
// endpoint made by nrd: it creates the "pod" namespace and runs `nrdctl endpoint add` into it (nrd
// makes the veth, addresses, routes and attaches its BPF). An "external host" namespace sits
// behind the ToR with a TCP service that answers each caller's source address, so the report can
// show the node's masquerade. Every pod carries labels and runs a name server (a Node one-liner
// in its namespace, spawned and tracked by the topology like every other lab process); once all
// pods are up the keeper sets a service over the app=web pods and a policy admitting app=web
// only to app=db.
// SIGTERM (from `lab down`) tears the processes and namespaces down through the topology's exit
// hook; `down` unmounts the bpffs once they are gone.
import { mkdirSync, writeFileSync } from 'node:fs';
import type { EndpointView } from '../../daemon/endpoints/api-types.js';
import { join } from 'node:path';
import { Topology, type Host } from '../lib/netns.js';
import { startBird } from '../lib/bird.js';
import { startEtcd } from '../lib/etcd.js';
import { procStartTime, run, type ManagedProcess } from '../lib/proc.js';
import { waitFor } from '../lib/wait.js';
import {
  REPO_ROOT,
  TOR_ASN,
  TOR_ADDRESS,
  ETCD_ADDRESS,
  FABRIC_PREFIX_LEN,
  EXT_ADDRESS,
  EXT_TOR_ADDRESS,
  EXT_PREFIX_LEN,
  EXT_PORT,
  SERVICE_NAME,
  SERVICE_VIP,
  SERVICE_PORT,
  BACKEND_PORT,
  DB_PORT,
  dbPolicy,
  siteFile,
  type LabPlan,
  type NodePlan,
  type PodPlan,
} from './plan.js';
import { writeState, type LabPodState, type LabState } from './state.js';
import { mountBpffs } from './bpffs.js';
import { ownCidr } from './api.js';

const NRDCTL = join(REPO_ROOT, 'dist', 'daemon', 'cli', 'nrdctl.js');

/** The external host's service: writes the caller's address as seen there, then closes. */
const WHOAMI = `require('net').createServer((c) => c.end(c.remoteAddress.replace(/^::ffff:/, '') + '\\n')).listen(Number(process.argv[1]), '0.0.0.0')`;

/** A pod's server: answers its name on every port given and closes, so a client learns which
 *  pod it reached (through the VIP, or past the policy) with nothing shared between them. */
const NAME_SERVER = `const net = require('net'); const [name, ...ports] = process.argv.slice(1); let up = 0;
for (const p of ports) net.createServer((c) => { c.on('error', () => {}); c.end(name + '\\n'); })
  .listen({ host: '0.0.0.0', port: Number(p) }, () => { if (++up === ports.length) console.log('LISTENING'); });`;

function log(msg: string): void {
  process.stdout.write(`${new Date().toISOString()} lab-keeper: ${msg}\n`);
}

/** The daemons must see the site file only: an operator's NRD_* variables would override it. */
function daemonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('NRD_') && k !== 'NOTIFY_SOCKET') env[k] = v;
  return env;
}

export async function runKeeper(plan: LabPlan): Promise<void> {
  const topo = new Topology(plan.name, { stableNames: true, graceMs: 3000 });
  const state: LabState = {
    version: 1,
    name: plan.name,
    phase: 'building',
    updatedAt: '',
    keeper: { pid: process.pid, startTime: procStartTime(process.pid) },
    keeperLog: join(plan.logDir, 'keeper.log'),
    topology: topo.state(),
    nodes: plan.nodes.map((n) => ({
      name: n.name,
      ns: n.ns,
      address: n.address,
      asn: n.asn,
      socket: n.socket,
      configFile: n.configFile,
      logFile: n.logFile,
    })),
    configFiles: plan.nodes.map((n) => n.configFile),
    pinRoot: plan.pinRoot,
    pods: 'waiting',
  };
  const save = (): void => {
    state.topology = topo.state();
    writeState(plan.stateFile, state);
  };
  save();
  try {
    mkdirSync(plan.logDir, { recursive: true });
    mkdirSync(plan.configDir, { recursive: true });
    for (const n of plan.nodes) {
      const dir = join(plan.stateDir, n.name);
      mkdirSync(n.stateDir, { recursive: true, mode: 0o700 });
      topo.ownDir(dir);
    }

    log(`creating namespaces ${plan.torNs}, ${plan.etcdNs}, ${plan.nodes.map((n) => n.ns).join(', ')}`);
    const tor = await topo.host('tor');
    save();
    const etcdHost = await topo.host('etcd');
    save();
    const ports: string[] = [];
    const l = await topo.link(etcdHost, tor, { nameA: 'eth0', nameB: 'etcd', addrA: `${ETCD_ADDRESS}/${FABRIC_PREFIX_LEN}` });
    ports.push(l.ifB);
    const nodeHosts: Host[] = [];
    for (const n of plan.nodes) {
      const h = await topo.host(n.name);
      save();
      const nl = await topo.link(h, tor, { nameA: n.interface, nameB: n.torPort, addrA: `${n.address}/${FABRIC_PREFIX_LEN}` });
      ports.push(nl.ifB);
      // The ToR is the nodes' way out of the fabric subnet; pod CIDRs get their own routes from nrd.
      await h.addRoute('default', { via: TOR_ADDRESS });
      nodeHosts.push(h);
    }
    await topo.bridge(tor, 'br0', ports, { addr: `${TOR_ADDRESS}/${FABRIC_PREFIX_LEN}` });
    await tor.sysctl('net.ipv4.ip_forward', 1);

    // The external host: its own link to the ToR and a route to the fabric only (never to the
    // pod CIDRs), so its answer reaches a pod only when the node rewrote the pod's source.
    log(`creating the external host ${plan.extNs} (${EXT_ADDRESS})`);
    const ext = await topo.host('ext');
    save();
    await topo.link(ext, tor, { nameA: 'eth0', nameB: 'ext', addrA: `${EXT_ADDRESS}/${EXT_PREFIX_LEN}`, addrB: `${EXT_TOR_ADDRESS}/${EXT_PREFIX_LEN}` });
    await ext.addRoute(`${TOR_ADDRESS.replace(/\.\d+$/, '.0')}/${FABRIC_PREFIX_LEN}`, { via: EXT_TOR_ADDRESS });
    ext.spawn([process.execPath, '-e', WHOAMI, String(EXT_PORT)], { name: 'ext:whoami', logFile: join(plan.logDir, 'ext.log') });
    state.ext = { ns: ext.ns, address: EXT_ADDRESS, port: EXT_PORT };
    save();

    log(`starting etcd in ${plan.etcdNs} at ${plan.etcdEndpoint}`);
    const etcd = await startEtcd({ netns: etcdHost.ns, host: ETCD_ADDRESS, name: `${plan.name}-etcd` });
    topo.ownDir(etcd.baseDir);
    state.etcd = { process: { pid: etcd.pid, startTime: procStartTime(etcd.pid) }, baseDir: etcd.baseDir, endpoints: etcd.endpoints };
    save();

    const birdLog = join(plan.logDir, 'tor-bird.log');
    log(`starting BIRD (AS ${TOR_ASN}) in ${plan.torNs}`);
    const bird = await startBird(tor, {
      routerId: TOR_ADDRESS,
      asn: TOR_ASN,
      logFile: birdLog,
      // Learned pod CIDRs land in the ToR's FIB (kernel protocol exporting BGP routes), so the
      // ToR forwards pod traffic too, e.g. from a node that routes a remote CIDR via the ToR.
      kernel: true,
      peers: plan.nodes.map((n) => ({
        name: n.name,
        address: n.address,
        // Each node in its own AS (see NODE_ASN_BASE), so routes the ToR passes on survive the
        // receiving node's AS-path loop check.
        asn: n.asn,
        localAddress: TOR_ADDRESS,
        gracefulRestart: true,
        import: 'all' as const,
        export: 'all' as const,
      })),
    });
    state.tor = { ns: tor.ns, birdSocket: bird.socket, birdLog };
    save();

    // Before any nrd starts: `ip netns exec` gives each a copy of the mount table as it is then.
    log(`mounting a bpffs at ${plan.pinRoot} for the nodes' pins`);
    state.bpffs = plan.pinRoot;
    save();
    await mountBpffs(plan.pinRoot);

    const mainJs = join(REPO_ROOT, 'dist', 'daemon', 'main.js');
    const procs: ManagedProcess[] = [];
    for (const [i, n] of plan.nodes.entries()) {
      writeFileSync(n.configFile, siteFile(plan, n));
      log(`starting nrd on ${n.name} (${n.address}) in ${n.ns} with ${n.configFile}`);
      const p = nodeHosts[i]!.spawn([process.execPath, mainJs, '--config', n.configFile], {
        name: `${n.name}:nrd`,
        logFile: n.logFile,
        cwd: REPO_ROOT,
        env: daemonEnv(),
      });
      procs.push(p);
      state.nodes[i]!.process = { pid: p.pid, startTime: p.startTime };
      save();
    }
    for (const p of procs) {
      void p.exited.then((ex) => log(`${p.name} (pid ${p.pid}) exited: ${ex.code ?? ex.signal}`));
    }
    state.phase = 'running';
    save();
    log('lab running; waiting for the nodes\' pod CIDRs to build their pods');
  } catch (err) {
    state.phase = 'failed';
    state.pods = 'failed';
    state.error = err instanceof Error ? err.message : String(err);
    save();
    log(`build failed: ${state.error}`);
    // Stay alive: `lab up` prints the logs, then runs `down`, which tears everything down.
  }
  if (state.phase === 'running') {
    // Serially: the topology records each namespace as it is made, and save() writes that down.
    try {
      for (const [i, n] of plan.nodes.entries()) {
        state.nodes[i]!.pod = await buildPod(plan, topo, n, n.pod);
        save();
        log(`${n.name}: pod ${state.nodes[i]!.pod!.ip} in ${n.pod.ns}`);
        for (const x of n.extraPods) {
          (state.nodes[i]!.extraPods ??= []).push(await buildPod(plan, topo, n, x));
          save();
          log(`${n.name}: pod ${x.name} in ${x.ns}`);
        }
      }
      await setServiceAndPolicy(plan, state);
      save();
      state.pods = 'ready';
    } catch (err) {
      state.pods = 'failed';
      state.podsError = err instanceof Error ? err.message : String(err);
      log(`pods failed: ${state.podsError}`);
    }
    save();
  }
  // The keeper is the parent of the lab: it lives until `down` sends SIGTERM.
  setInterval(() => undefined, 1 << 30);
}

/**
 * One pod for `node`: waits for the node's own CIDR (GET /v1/nodes, the `self` entry), creates
 * the namespace and asks nrd for the endpoint (`nrdctl endpoint add`, retried while the node's
 * endpoints subsystem is not ready yet). nrd picks the address from the node's CIDR.
 */
async function buildPod(plan: LabPlan, topo: Topology, node: NodePlan, podPlan: PodPlan): Promise<LabPodState> {
  const cidr = await waitFor(() => ownCidr(node.socket), {
    timeoutMs: plan.readyTimeoutMs,
    intervalMs: 250,
    what: `${node.name} to claim a pod CIDR (GET /v1/nodes on ${node.socket})`,
  });
  const pod = await topo.host(podPlan.name);
  const labels = Object.entries(podPlan.labels).map(([k, v]) => `${k}=${v}`).join(',');
  let last = '';
  const view = await waitFor(async () => {
    const r = await run([process.execPath, NRDCTL, '--socket', node.socket, 'endpoint', 'add', podPlan.name, '--netns', `/run/netns/${pod.ns}`, '--labels', labels, '-o', 'json'],
      { allowFailure: true, timeoutMs: 15_000 });
    last = (r.stderr || r.stdout).trim();
    return r.code === 0 ? (JSON.parse(r.stdout) as EndpointView) : undefined;
  }, { timeoutMs: plan.readyTimeoutMs, intervalMs: 500, what: `nrdctl endpoint add ${podPlan.name} on ${node.name}` }).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}: ${last}`);
  });
  const ip = view.ips.find((a) => !a.includes(':'));
  if (!ip) throw new Error(`${node.name}: endpoint ${podPlan.name} has no IPv4 address: ${JSON.stringify(view)}`);
  const srv = pod.spawn([process.execPath, '-e', NAME_SERVER, podPlan.name, String(BACKEND_PORT), String(DB_PORT)], {
    name: `${podPlan.name}:server`,
    captureBytes: 4096,
  });
  await waitFor(() => srv.output().includes('LISTENING') || (!srv.running() ? Promise.reject(new Error(`server of ${podPlan.name} exited: ${srv.output()}`)) : false), {
    timeoutMs: 10_000,
    intervalMs: 50,
    what: `the name server in ${podPlan.name}`,
  });
  return {
    name: podPlan.name,
    labels: podPlan.labels,
    server: { pid: srv.pid, startTime: srv.startTime },
    ns: pod.ns,
    cidr,
    ip,
    hostIf: view.hostIfname,
    podIf: podPlan.podIf,
  };
}

/**
 * The service over every app=web pod and the policy on app=db, set through the first node (both
 * are cluster records: etcd carries them to every node). Waiting for them to reach the datapaths
 * is the report's job (report-apps.ts), so `status` checks it again.
 */
async function setServiceAndPolicy(plan: LabPlan, state: LabState): Promise<void> {
  const socket = plan.nodes[0]!.socket;
  const pods = state.nodes.flatMap((n) => [...(n.pod ? [n.pod] : []), ...(n.extraPods ?? [])]);
  const backends = pods.filter((p) => p.labels?.app === 'web').map((p) => `${p.ip}:${BACKEND_PORT}`);
  const nrdctl = async (args: string[]): Promise<void> => {
    const r = await run([process.execPath, NRDCTL, '--socket', socket, ...args], { allowFailure: true, timeoutMs: 15_000 });
    if (r.code !== 0) throw new Error(`nrdctl ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  };
  log(`service ${SERVICE_NAME} ${SERVICE_VIP}:${SERVICE_PORT} → ${backends.join(', ')}`);
  await nrdctl(['service', 'set', '--name', SERVICE_NAME, '--vip', SERVICE_VIP, '--port', String(SERVICE_PORT), '--protocol', 'tcp', ...backends.flatMap((b) => ['--backend', b])]);
  state.service = { name: SERVICE_NAME, vip: SERVICE_VIP, port: SERVICE_PORT, backendPort: BACKEND_PORT, backends };
  // In the state dir: `down` removes it with the rest.
  const file = join(plan.stateDir, 'db-policy.json');
  writeFileSync(file, JSON.stringify(dbPolicy(), null, 2) + '\n');
  log(`policy ${String(dbPolicy().name)} from ${file}`);
  await nrdctl(['policy', 'set', '-f', file]);
  state.policy = { name: String(dbPolicy().name), file };
}
