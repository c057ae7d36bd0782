#!/usr/bin/env node
// nrd entry point: parses the command line, loads the site config, and wires the subsystems into
// the lifecycle (the only module that knows them all); systemd talks to it via sd_notify(3) and signals.
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { EX_CONFIG, checkConfigCommand, formatIssue, loadConfigFile } from './config/index.js';
import { Daemon } from './daemon.js';
import { DEFAULT_TARGET, cleanup, socketAnswers } from './cleanup.js';
import { rootLogger, type LogLevel } from './lib/log.js';
import { limitHeapGrowth } from './lib/heap.js';
import { ReadinessRegistry } from './lib/health.js';
import { notifierFromEnv, watchdogIntervalMs } from './lib/sdnotify.js';
import { Router } from './api/router.js';
import { registerCoreRoutes } from './api/routes.js';
import { createMetrics } from './api/metrics.js';
import { ApiSubsystem } from './api/subsystem.js';
import { DatapathSubsystem } from './datapath/subsystem.js';
import { registerDatapathRoutes } from './api/datapath-routes.js';
import { registerPolicyRoutes } from './api/policy-routes.js';
import { StateSubsystem } from './state/subsystem.js';
import { registerStateRoutes } from './api/state-routes.js';
import { registerCtRoutes } from './api/ct-routes.js';
import { BgpSubsystem } from './bgp/subsystem.js';
import { registerBgpRoutes } from './api/bgp-routes.js';
import { RoutingSubsystem } from './routing/subsystem.js';
import { registerRoutingRoutes } from './api/routing-routes.js';
import { BfdSubsystem, reactionTo } from './bfd/subsystem.js';
import { diagName } from './bfd/packet.js';
import { registerBfdRoutes } from './api/bfd-routes.js';
import { NetlinkKernelPort } from './kernel/netlink-port.js';
import { EndpointKernelOwner } from './kernel/endpoint-owner.js';
import { EndpointsSubsystem } from './endpoints/subsystem.js';
import { NetlinkPlumber } from './endpoints/plumbing.js';
import { registerEndpointsRoutes } from './api/endpoints-routes.js';

/** EX_USAGE from sysexits.h: bad command line. */
const EX_USAGE = 64;
/** EX_SOFTWARE from sysexits.h: an internal error; systemd restarts the unit (Restart=on-failure). */
const EX_SOFTWARE = 70;

const USAGE = `Usage:
  nrd --config FILE [--set key=value ...]      run the daemon in the foreground
  nrd check-config FILE [--set key=value ...]  validate a site file: exit 0, or ${EX_CONFIG} with one line per problem
  nrd cleanup [--config FILE]                  with nrd stopped, remove every kernel object nrd owns (routes of its
                                               protocols, its VXLAN and endpoint links, tc filters, BPF pins,
                                               nftables table inet nrd) and nothing else; exit 1 if any removal failed
  nrd --version | --help

NRD_* environment variables and --set override the file (e.g. --set log.level=debug).
Signals: SIGTERM/SIGINT stop (kernel state is kept), SIGHUP reloads the file.
`;

function readVersion(): string {
  try {
    // dist/daemon/main.js → package.json two levels up, as in the source tree.
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: {
        config: { type: 'string', short: 'c' },
        set: { type: 'string', multiple: true },
        version: { type: 'boolean', short: 'V' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    process.stderr.write(`nrd: ${(err as Error).message}\n${USAGE}`);
    return EX_USAGE;
  }
  const { values, positionals } = parsed;
  const sets = values.set ?? [];
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.version) {
    process.stdout.write(`nrd ${readVersion()}\n`);
    return 0;
  }
  if (positionals[0] === 'check-config') {
    const file = positionals[1] ?? values.config;
    if (!file || positionals.length > 2) {
      process.stderr.write(`nrd: check-config takes one FILE\n${USAGE}`);
      return EX_USAGE;
    }
    return checkConfigCommand(file, sets);
  }
  if (positionals[0] === 'cleanup') {
    if (positionals.length > 1) {
      process.stderr.write(`nrd: cleanup takes no arguments\n${USAGE}`);
      return EX_USAGE;
    }
    return cleanupCommand(values.config, sets);
  }
  if (positionals.length > 0) {
    process.stderr.write(`nrd: unknown command ${JSON.stringify(positionals[0])}\n${USAGE}`);
    return EX_USAGE;
  }
  if (!values.config) {
    process.stderr.write(`nrd: --config FILE is required\n${USAGE}`);
    return EX_USAGE;
  }
  return runDaemon(values.config, sets);
}

/** `nrd cleanup`: the site file says which protocol, pin path and socket are nrd's. */
async function cleanupCommand(configFile: string | undefined, sets: string[]): Promise<number> {
  let target = DEFAULT_TARGET;
  if (configFile !== undefined) {
    const r = loadConfigFile(configFile, { env: process.env, sets });
    if (!r.ok) {
      process.stderr.write(`nrd: ${configFile} is not a valid site config:\n`);
      for (const issue of r.issues) process.stderr.write(`${formatIssue(issue)}\n`);
      return EX_CONFIG;
    }
    target = { routeProtocol: r.config.routing.routeProtocol, pinPath: r.config.datapath.pinPath, socket: r.config.api.socket };
  }
  // A running nrd would put everything back at its next reconcile.
  if (await socketAnswers(target.socket)) {
    process.stderr.write(`nrd: cleanup: nrd is running (${target.socket} answers); stop it first\n`);
    return 1;
  }
  const report = cleanup(target);
  for (const r of report.removed) process.stdout.write(`removed ${r}\n`);
  for (const f of report.failed) process.stderr.write(`nrd: cleanup: ${f}\n`);
  return report.failed.length ? 1 : 0;
}

async function runDaemon(configFile: string, sets: string[]): Promise<number> {
  const load = () => loadConfigFile(configFile, { env: process.env, sets });
  const first = load();
  if (!first.ok) {
    process.stderr.write(`nrd: ${configFile} is not a valid site config:\n`);
    for (const issue of first.issues) process.stderr.write(`${formatIssue(issue)}\n`);
    return EX_CONFIG;
  }
  const config = first.config;
  // Before the BGP table and the routes are built: keep the heap near its live size (lib/heap.ts).
  limitHeapGrowth();
  const log = rootLogger();
  log.level = config.log.level as LogLevel;
  const version = readVersion();

  const crash = (kind: string) => (err: unknown) => {
    log.fatal({ err }, `${kind}: exiting so that systemd restarts nrd`);
    process.exit(EX_SOFTWARE);
  };
  process.on('uncaughtException', crash('uncaught exception'));
  process.on('unhandledRejection', crash('unhandled rejection'));

  const notifier = notifierFromEnv(process.env, (err) => log.warn({ err }, 'sd_notify failed'));
  const readiness = new ReadinessRegistry();
  const router = new Router();
  const metrics = createMetrics({ version, node: config.node.name, readiness });
  const watchdogMs = watchdogIntervalMs(process.env);

  const daemon = new Daemon({
    config,
    configFile,
    loadConfig: load,
    version,
    log,
    notifier,
    readiness,
    ...(watchdogMs !== undefined ? { watchdogMs } : {}),
  });
  daemon.onReload((info) => metrics.reloads.inc({ result: info.result }));
  registerCoreRoutes(router, { status: () => daemon.status(), readiness });

  // Start order: api/metrics → state (etcd) → bgp → routing → endpoints → datapath. Each later subsystem is
  // one daemon.add() here, handed the router/registry it publishes on.
  const state = new StateSubsystem({ metrics: metrics.registry, version });
  // GET /v1/services adds this node's datapath view (backends and their state) to the records.
  registerStateRoutes(router, state.queries, () => datapath.serviceStatus());
  const bgp = new BgpSubsystem({ metrics: metrics.registry });
  registerBgpRoutes(router, bgp);
  // BFD (RFC 5880) per peer with bgp.peers[].bfd.enabled and per node-mesh peer with
  // bgp.nodeMeshBfd.enabled: a session going from Up to Down closes the peer's BGP session at once
  // (RFC 5882 §3.2), which withdraws its routes: routing moves the affected nodes to VXLAN within
  // milliseconds instead of after a hold time. With routing.bfd.enabled, one single-hop session per
  // node a direct path reaches: Up → Down makes that direct path unusable (VXLAN at once), Up again
  // brings it back after the failback hold-down.
  const bfd = new BfdSubsystem({ metrics: metrics.registry });
  registerBfdRoutes(router, bfd);
  bfd.onStateChange((c) => {
    const r = reactionTo(c);
    if (r.directDown !== undefined) routing.setDirectDown(c.peer, r.directDown);
    if (!r.resetBgp) return;
    try {
      bgp.resetPeer(c.peer, `BFD session down (${diagName(c.diag)})`);
    } catch (err) {
      log.warn({ err, peer: c.peer }, 'BFD down: BGP peer not reset');
    }
  });
  // The one kernel port of the daemon: every owner of kernel objects (routing, and the endpoints'
  // EndpointKernelOwner of kernel/endpoint-owner.ts) reconciles over it under its own mark
  // (kernel/owners.ts), so no owner's reconcile ever deletes another's objects.
  const kernel = new NetlinkKernelPort();
  const routing = new RoutingSubsystem({ port: kernel, metrics: metrics.registry });
  registerRoutingRoutes(router, routing);
  daemon.add(new ApiSubsystem({ router, metrics: metrics.registry }));
  daemon.add(state);
  daemon.add(bgp);
  daemon.add(bfd);
  daemon.add(routing);
  // Workload endpoints: veth pairs, addresses and routes inside the workloads, records through the
  // state queries; their host routes and links are the endpoint owner's, over the same kernel port.
  const endpoints = new EndpointsSubsystem({
    store: {
      local: () => state.queries.localEndpoints(),
      create: (spec) => state.queries.createEndpoint(spec),
      delete: (id) => state.queries.deleteEndpoint(id),
    },
    owner: new EndpointKernelOwner(kernel, { log: log.child({ subsystem: 'endpoints', owner: 'kernel' }) }),
    plumber: () => new NetlinkPlumber(),
  });
  registerEndpointsRoutes(router, endpoints);
  daemon.add(endpoints);
  const datapath = new DatapathSubsystem({ metrics: metrics.registry });
  daemon.add(datapath);
  registerDatapathRoutes(router, datapath);
  // endpoints → datapath: the whole set of this node's endpoints (host veth, MAC, addresses,
  // identity) each time it changes; the datapath attaches its programs and writes its maps.
  endpoints.onEndpoints((eps) => datapath.setEndpoints(eps));
  // etcd → datapath: policies, every endpoint of every node, identities and nodes, as full sets;
  // the datapath compiles them into the policy maps and the ipcache and writes only the diff.
  state.onPolicyInputs((inputs) => void datapath.setPolicyInputs(inputs));
  registerPolicyRoutes(router, { explain: (id) => datapath.explainPolicy(id), events: datapath.events });
  registerCtRoutes(router, datapath);
  // etcd → datapath: the whole set of services each time it changes; the datapath writes the
  // load-balancing maps (a removed backend drains for services.drainSeconds).
  state.onServices((services) => void datapath.setServices(services));

  // etcd → BGP: this node's pod CIDRs are what it advertises; the other nodes are its iBGP mesh
  // (used only with bgp.nodeMesh). Both may arrive before or after the speaker starts.
  state.onOwnCidrs((own) => {
    bgp.setLocalPrefixes('ipv4', own.ipv4 ? [own.ipv4] : []);
    bgp.setLocalPrefixes('ipv6', own.ipv6 ? [own.ipv6] : []);
  });
  state.onNodes((nodes) => {
    bgp.setMeshPeers(nodes.map((n) => (n.asn !== undefined ? { name: n.name, address: n.address, asn: n.asn } : { name: n.name, address: n.address })));
  });

  // etcd → routing: the own CIDRs (blackholed, never sent back to the fabric) and every other
  // node (underlay address, VTEP MAC, CIDRs) for the direct and VXLAN paths. Deletions wait for
  // `synced`. routing → etcd: the VXLAN device's MAC goes into this node's record.
  state.onOwnCidrs((own) => routing.setOwnCidrs([own.ipv4, own.ipv6].filter((c): c is string => c !== undefined)));
  state.onNodes((nodes, synced) => {
    routing.setNodes(
      nodes.map((n) => (n.vtepMac !== undefined ? { name: n.name, underlay: n.address, vtepMac: n.vtepMac, cidrs: n.cidrs } : { name: n.name, underlay: n.address, cidrs: n.cidrs })),
      synced,
    );
  });
  routing.onVtepMac((mac) => state.setVtepMac(mac));
  // routing → BFD: the nodes a direct path reaches get routing.bfd's sessions; etcd → BFD: the
  // node-mesh peers get bgp.nodeMeshBfd's.
  routing.onDirectNodes((nodes) => bfd.setDirectNodes(nodes));
  state.onNodes((nodes) => bfd.setMeshNodes(nodes.map((n) => ({ name: n.name, address: n.address }))));

  // BGP → routing: the Loc-RIB change set (best path and ECMP set per prefix); routing turns it
  // into native routes itself.
  bgp.subscribe({ onRouteChanges: (changes) => routing.applyBgpChanges(changes) });
  bgp.onSynced(() => routing.setBgpSynced(true));

  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'already stopping');
      return;
    }
    stopping = true;
    daemon.stop(signal).then(
      () => {
        notifier.close();
        process.exit(0);
      },
      crash('stop failed'),
    );
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', () => {
    daemon.reload().catch(crash('reload failed'));
  });

  log.info({ version, configFile, node: config.node.name, notify: notifier.enabled }, 'nrd starting');
  try {
    await daemon.start();
  } catch (err) {
    log.fatal({ err }, 'start failed');
    notifier.close();
    return 1;
  }
  // The listeners keep the process alive; the signal handlers end it.
  return new Promise<number>(() => undefined);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err: unknown) => {
    rootLogger().fatal({ err }, 'nrd failed');
    process.exit(EX_SOFTWARE);
  },
);
