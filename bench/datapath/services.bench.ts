// Benchmark of service load balancing: nrd's BPF path (nrd_lb.h: DNAT in the from-endpoint tc
// program, Maglev slots, nrd_ct) against a kube-proxy-style iptables rule set, in the same run,
// with 100, 1k and 10k services installed. Root; everything lives in namespaces made here.
//
//   nrd       a node namespace with three workload endpoints behind nrdv… veths (client, two
//             backends), DatapathSubsystem running in it (services-helper.ts agent, as the service
//             integration test runs it), the service set handed to setServices as the state
//             subsystem would;
//   iptables  a node namespace with the same three endpoints on plain veths (proxy_arp gateway,
//             kernel routing) and the nat table kube-proxy writes in iptables mode: KUBE-SERVICES,
//             one rule per service jumping to KUBE-SVC-<hash>, statistic-mode random rules to
//             KUBE-SEP-<hash> chains that DNAT, KUBE-MARK-MASQ / KUBE-POSTROUTING. Loaded with
//             iptables-restore --noflush (Debian's iptables, nft backend); one service change is one
//             full restore of the rule set, as kube-proxy's full sync does.
//
// Every service has 2–4 backends (unreachable addresses) except the most recently added one, whose
// two backends are real TCP servers; it comes last in KUBE-SERVICES as a service created last would
// after the other rules. Per size, rounds alternate the two paths (nrd, iptables / iptables, nrd):
// latency of N sequential connect/request/close rounds from the client endpoint to that service's
// VIP, then adding one service and removing it again. nrd's change is timed three ways: setServices
// call to resolved (compares the records, plans the changed one, writes), the map writes alone (ServiceMapWriter.apply,
// the worker's writer run on the agent's thread, wrapped around the applier), and the same change
// through the datapath worker (writes + one worker round trip).
//
// iptables-restore --noflush of the nft backend grows faster than linearly with the chain count
// (0.9 s at 2k services, 3.3 s at 4k, minutes at 10k here): above --ipt-change-max services the
// iptables change is one add in the first round only, or a full run would take most of an hour.
//
// Usage: node services.bench.js [--reps N] [--conns N] [--sizes 100,1000,10000] [--maglev PRIME] [--ipt-change-max N] [--ipt-change-skip N]
import type { ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENDPOINT_GATEWAY_MAC, type LocalEndpoint } from '../../daemon/lib/endpoint-types.js';
import type { ServiceRecord } from '../../daemon/state/records.js';
import { type LineProc, POD_POOL, SVC_PORT, cliArg, freshService, kubeProxyRules, median, restorer, runBench, serviceHelper, services } from './service-fixtures.js';
import { Cleanup, addEndpointNs, addNetns, mountBpffs, nsExec, objectDir, sh } from '../../test/integration/datapath/env.js';

const arg = cliArg;
const REPS = Number(arg('--reps', '3'));
const CONNS = Number(arg('--conns', '2000'));
const SIZES = arg('--sizes', '100,1000,10000').split(',').map(Number);
// 401 is the smallest prime the config reference recommends for 4 backends (100 × the largest
// backend count); --maglev 16381 (the default of the configuration) costs 128 KiB of table per
// service in the kernel, and writes its results to services-m16381.json.
const MAGLEV_M = Number(arg('--maglev', '401'));
const IPT_CHANGE_MAX = Number(arg('--ipt-change-max', '1000'));
// Above this many services no iptables change at all (latency only): for runs about nrd's side
// (--maglev 16381) where one restore of 10k services would take a quarter of an hour.
const IPT_CHANGE_SKIP = Number(arg('--ipt-change-skip', 'Infinity'));
const NODE_IP = '198.51.100.1';
const EP = [
  { id: 'client', host: 'nrdv0', ip: '10.244.0.10' },
  { id: 'be-one', host: 'nrdv1', ip: '10.244.0.11' },
  { id: 'be-two', host: 'nrdv2', ip: '10.244.0.12' },
];
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results', MAGLEV_M === 401 ? 'services.json' : `services-m${MAGLEV_M}.json`);

const cleanup = new Cleanup();
const children: ChildProcess[] = [];

const helper = (ns: string, mode: string, extra: string[] = []): LineProc => serviceHelper(cleanup, children, ns, mode, extra);

/** A private copy of the built objects: a rebuild in the working tree mid-run must not matter. */
function snapshotObjects(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nrd-bench-bpf-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  for (const f of readdirSync(objectDir)) if (f.endsWith('.bpf.o')) copyFileSync(join(objectDir, f), join(dir, f));
  return dir + '/';
}

function ip(ns: string, ...a: string[]): void {
  sh('ip', ['-n', ns, ...a]);
}

function sysctl(ns: string, kv: string): void {
  nsExec(ns, 'sysctl', ['-qw', kv]);
}

/** Many short sequential connections: reuse TIME_WAIT ports as a busy client does. */
function clientSysctls(ns: string): void {
  sysctl(ns, 'net.ipv4.tcp_tw_reuse=1');
  sysctl(ns, 'net.ipv4.ip_local_port_range=10000 65000');
}

// ---- measurement --------------------------------------------------------------------------------

const fmt = (x: number, d = 3): string => x.toFixed(d);

interface Latency { medianMs: number; p99Ms: number; failed: number }
interface NrdChange { totalMs: number; writesMs: number; writes: number; ops: number }
interface NrdRound { latency: Latency; add: NrdChange; remove: NrdChange; addWorker: NrdChange; removeWorker: NrdChange }
interface IptRound { latency: Latency; addMs: number | null; removeMs: number | null }

async function main(): Promise<void> {
  const bpffs = mountBpffs(cleanup);
  const pinPath = join(bpffs, 'nrd');
  const objects = snapshotObjects();
  const work = mkdtempSync(join(tmpdir(), 'nrd-bench-svc-'));
  cleanup.add(() => rmSync(work, { recursive: true, force: true }));

  // nrd: node namespace, uplink to a namespace of its own (node.address), endpoints as nrd makes them.
  const nsN = addNetns(cleanup, 'sn');
  sysctl(nsN, 'net.ipv4.ip_forward=1');
  ip(nsN, 'link', 'set', 'lo', 'up');
  const nsX = addNetns(cleanup, 'sx');
  ip(nsN, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'ext0', 'netns', nsX);
  ip(nsN, 'addr', 'add', `${NODE_IP}/24`, 'dev', 'up0');
  ip(nsN, 'link', 'set', 'up0', 'up');
  const nrdEps = EP.map((e) => addEndpointNs(cleanup, nsN, ENDPOINT_GATEWAY_MAC, e, 'sw'));
  const endpoints: LocalEndpoint[] = EP.map((e, i) => ({
    id: e.id, hostIfname: e.host, identity: 0, ips: [e.ip],
    hostIfindex: (JSON.parse(sh('ip', ['-n', nsN, '-j', 'link', 'show', e.host])) as Array<{ ifindex: number }>)[0]!.ifindex,
    mac: (JSON.parse(sh('ip', ['-n', nrdEps[i]!, '-j', 'link', 'show', 'eth0'])) as Array<{ address: string }>)[0]!.address,
  }));

  // iptables: the same endpoints on plain veths; the gateway 169.254.1.1 answered by proxy_arp,
  // which needs a route to it (a stub default route out of a veth that goes nowhere).
  const nsI = addNetns(cleanup, 'si');
  sysctl(nsI, 'net.ipv4.ip_forward=1');
  ip(nsI, 'link', 'set', 'lo', 'up');
  ip(nsI, 'link', 'add', 'stub0', 'type', 'veth', 'peer', 'name', 'stub1');
  ip(nsI, 'link', 'set', 'stub1', 'up');
  ip(nsI, 'link', 'set', 'stub0', 'up');
  ip(nsI, 'route', 'add', 'default', 'dev', 'stub0');
  const iptEps = EP.map((e, i) => {
    const host = `cali${i}`;
    const ns = addNetns(cleanup, 'sw');
    ip(nsI, 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
    ip(nsI, 'link', 'set', host, 'up');
    sysctl(nsI, `net.ipv4.conf.${host}.proxy_arp=1`);
    sysctl(nsI, `net.ipv4.neigh.${host}.proxy_delay=0`);
    ip(nsI, 'route', 'add', `${e.ip}/32`, 'dev', host);
    ip(ns, 'link', 'set', 'lo', 'up');
    ip(ns, 'link', 'set', 'eth0', 'up');
    ip(ns, 'addr', 'add', `${e.ip}/32`, 'dev', 'eth0');
    ip(ns, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link');
    ip(ns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0', 'onlink');
    return ns;
  });
  clientSysctls(nrdEps[0]!);
  clientSysctls(iptEps[0]!);

  const servers = [nrdEps[1]!, nrdEps[2]!, iptEps[1]!, iptEps[2]!].map((ns) => helper(ns, 'server'));
  for (const s of servers) await s.next(20_000);
  const site = {
    node: { name: 'n1', address: NODE_IP, interface: 'up0' },
    cluster: { podCIDRs: [POD_POOL] },
    datapath: { pinPath },
    services: { algorithm: 'maglev', maglevTableSize: MAGLEV_M, drain: 'keep' },
  };
  const agent = helper(nsN, 'agent', [JSON.stringify({ site, objectDir: objects, endpoints, pinPath })]);
  const started = await agent.next<{ started: boolean }>(120_000);
  if (!started.started) throw new Error('nrd datapath not ready');
  const nrdClient = helper(nrdEps[0]!, 'client');
  const iptClient = helper(iptEps[0]!, 'client');

  const restore = restorer(helper(nsI, 'restore'), work);

  console.log('NOTE: measured on a shared, noisy machine (2 cores, other jobs running); ratios from the same run are the figures to read.');
  console.log(`sizes ${SIZES.join(', ')}; ${REPS} alternating rounds per size; ${CONNS} sequential connections per latency sample; Maglev table ${MAGLEV_M} slots`);

  const perSize: Record<string, { install: { nrdMs: number; nrdWrites: number; iptablesMs: number }; nrd: NrdRound[]; iptables: IptRound[] }> = {};
  for (const size of SIZES) {
    const set = services(size, [EP[1]!.ip, EP[2]!.ip]);
    const real = set[set.length - 1]!;
    const nrdInstall = await agent.ask<{ ms: number; writes: number }>({ op: 'services', services: set }, 600_000);
    // Installing is setup, not a measured change: a flushing restore, linear in the rule count
    // (the --noflush one kube-proxy runs grows faster than linearly with the chain count).
    const iptInstall = await restore(kubeProxyRules(set, [], true), false);
    console.log(`\n${size} services: installed, nrd ${fmt(nrdInstall.ms, 0)} ms (${nrdInstall.writes} map writes), iptables-restore ${fmt(iptInstall, 0)} ms`);
    const entry = { install: { nrdMs: nrdInstall.ms, nrdWrites: nrdInstall.writes, iptablesMs: iptInstall }, nrd: [] as NrdRound[], iptables: [] as IptRound[] };
    perSize[size] = entry;
    const probe = { host: real.vip, port: SVC_PORT };
    // Warm both paths (ARP, first conntrack entries, JIT of the client) before timing.
    await nrdClient.ask({ ...probe, n: 50 });
    await iptClient.ask({ ...probe, n: 50 });

    const runNrd = async (): Promise<NrdRound> => {
      const latency = await nrdClient.ask<Latency>({ ...probe, n: CONNS }, 600_000);
      const change = (s: ServiceRecord[], via: 'direct' | 'worker') => agent.ask<NrdChange>({ op: 'change', services: s, via }, 600_000);
      const add = await change([...set, freshService()], 'direct');
      const remove = await change(set, 'direct');
      const addWorker = await change([...set, freshService()], 'worker');
      const removeWorker = await change(set, 'worker');
      return { latency, add, remove, addWorker, removeWorker };
    };
    const runIpt = async (r: number): Promise<IptRound> => {
      const latency = await iptClient.ask<Latency>({ ...probe, n: CONNS }, 600_000);
      // Above --ipt-change-max services one restore takes minutes here: one add in the first round only.
      if ((size > IPT_CHANGE_MAX && r > 0) || size > IPT_CHANGE_SKIP) return { latency, addMs: null, removeMs: null };
      const extra = freshService();
      const addMs = await restore(kubeProxyRules([...set, extra], [], false), true);
      const removeMs = size > IPT_CHANGE_MAX ? null : await restore(kubeProxyRules(set, [extra], false), true);
      return { latency, addMs, removeMs };
    };
    for (let r = 0; r < REPS; r++) {
      const order = r % 2 === 0 ? ['nrd', 'iptables'] as const : ['iptables', 'nrd'] as const;
      for (const path of order) {
        if (path === 'nrd') {
          const x = await runNrd();
          entry.nrd.push(x);
          console.log(`  round ${r + 1} nrd      latency ${fmt(x.latency.medianMs)} / p99 ${fmt(x.latency.p99Ms)} ms; add ${x.add.writes} writes ${fmt(x.add.writesMs)} ms (setServices ${fmt(x.add.totalMs, 1)} ms, via worker ${fmt(x.addWorker.writesMs)} ms); remove ${x.remove.writes} writes ${fmt(x.remove.writesMs)} ms (setServices ${fmt(x.remove.totalMs, 1)} ms)`);
        } else {
          const x = await runIpt(r);
          entry.iptables.push(x);
          console.log(`  round ${r + 1} iptables latency ${fmt(x.latency.medianMs)} / p99 ${fmt(x.latency.p99Ms)} ms; add ${x.addMs === null ? '-' : fmt(x.addMs, 1)} ms, remove ${x.removeMs === null ? '-' : fmt(x.removeMs, 1)} ms (full iptables-restore --noflush)`);
        }
      }
    }
  }

  // Medians and same-run ratios per size.
  const med = <T>(xs: T[], f: (x: T) => number): number => median(xs.map(f));
  const medOf = (xs: Array<number | null>): number => median(xs.filter((x): x is number => x !== null));
  const medians: Record<string, unknown> = {};
  const ratios: Record<string, unknown> = {};
  console.log('\nsize    nrd lat med/p99 ms   ipt lat med/p99 ms   nrd add/rm writes ms (n)     nrd setServices add/rm ms   ipt add/rm ms        nrd/ipt lat  nrd/ipt change');
  for (const size of SIZES) {
    const e = perSize[size]!;
    const n = {
      latMedianMs: med(e.nrd, (x) => x.latency.medianMs), latP99Ms: med(e.nrd, (x) => x.latency.p99Ms),
      addWritesMs: med(e.nrd, (x) => x.add.writesMs), removeWritesMs: med(e.nrd, (x) => x.remove.writesMs),
      addWrites: med(e.nrd, (x) => x.add.writes), removeWrites: med(e.nrd, (x) => x.remove.writes),
      addSetServicesMs: med(e.nrd, (x) => x.add.totalMs), removeSetServicesMs: med(e.nrd, (x) => x.remove.totalMs),
      addViaWorkerMs: med(e.nrd, (x) => x.addWorker.writesMs), removeViaWorkerMs: med(e.nrd, (x) => x.removeWorker.writesMs),
      installMs: e.install.nrdMs, installWrites: e.install.nrdWrites,
    };
    const i = {
      latMedianMs: med(e.iptables, (x) => x.latency.medianMs), latP99Ms: med(e.iptables, (x) => x.latency.p99Ms),
      addMs: medOf(e.iptables.map((x) => x.addMs)), removeMs: medOf(e.iptables.map((x) => x.removeMs)), installFlushingMs: e.install.iptablesMs,
    };
    const changeN = (n.addSetServicesMs + n.removeSetServicesMs) / 2;
    const changeI = Number.isNaN(i.removeMs) ? i.addMs : (i.addMs + i.removeMs) / 2;
    const r = {
      latencyMedian: n.latMedianMs / i.latMedianMs, latencyP99: n.latP99Ms / i.latP99Ms,
      changeSetServicesOverRestore: changeN / changeI,
      changeMapWritesOverRestore: ((n.addWritesMs + n.removeWritesMs) / 2) / changeI,
    };
    medians[size] = { nrd: n, iptables: i };
    ratios[size] = { 'nrd/iptables': r };
    console.log(`${String(size).padEnd(7)} ${fmt(n.latMedianMs)}/${fmt(n.latP99Ms)}`.padEnd(29) + `${fmt(i.latMedianMs)}/${fmt(i.latP99Ms)}`.padEnd(21) +
      `${fmt(n.addWritesMs)}/${fmt(n.removeWritesMs)} (${n.addWrites}/${n.removeWrites})`.padEnd(29) + `${fmt(n.addSetServicesMs, 1)}/${fmt(n.removeSetServicesMs, 1)}`.padEnd(28) +
      `${fmt(i.addMs, 1)}/${fmt(i.removeMs, 1)}`.padEnd(21) + `${fmt(r.latencyMedian, 2)}`.padEnd(13) + `${fmt(r.changeSetServicesOverRestore, 4)}`);
  }
  const lo = medians[SIZES[0]!] as { nrd: { latMedianMs: number; addWritesMs: number; removeWritesMs: number; addSetServicesMs: number; removeSetServicesMs: number; addWrites: number; removeWrites: number } };
  const hi = medians[SIZES[SIZES.length - 1]!] as typeof lo;
  const scale = hi.nrd.latMedianMs / lo.nrd.latMedianMs;
  const changeMs = Math.max(hi.nrd.addWritesMs, hi.nrd.removeWritesMs);
  const setServicesMs = Math.max(hi.nrd.addSetServicesMs, hi.nrd.removeSetServicesMs);
  console.log(`\nnrd latency at ${SIZES[SIZES.length - 1]} / at ${SIZES[0]}: ${fmt(scale)} (target <= 1.05)`);
  console.log(`nrd one service change at ${SIZES[SIZES.length - 1]}: map writes ${fmt(hi.nrd.addWritesMs)} ms add, ${fmt(hi.nrd.removeWritesMs)} ms remove (target < 1 ms; ServiceMapWriter.apply timed on the agent's thread, Maglev table ${MAGLEV_M} slots)`);
  console.log(`nrd one service change at ${SIZES[SIZES.length - 1]}: setServices ${fmt(hi.nrd.addSetServicesMs)} ms add, ${fmt(hi.nrd.removeSetServicesMs)} ms remove (whole set in, incremental plan, writes); ${fmt(hi.nrd.addWrites, 0)} / ${fmt(hi.nrd.removeWrites, 0)} syscalls`);
  console.log('machine shared and noisy during this run');

  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(RESULTS, JSON.stringify({
    bench: 'datapath/services',
    date: new Date().toISOString(),
    machine: { kernel: release(), cpus: cpus().length, quiet: false, note: 'shared machine, other jobs running' },
    params: { reps: REPS, conns: CONNS, sizes: SIZES, maglevTableSize: MAGLEV_M, iptChangeMax: IPT_CHANGE_MAX, iptChangeSkip: IPT_CHANGE_SKIP, backendsPerService: '2-4', iptables: sh('iptables', ['--version']).trim() },
    method: {
      latency: 'sequential connect, one request line, reply, client closes, wait for close; per-connection time from the client namespace',
      nrdChange: 'add one service then remove it via setServices (whole set, level-triggered; incremental plan of the changed records); writesMs = ServiceMapWriter.apply on the agent thread; writes = syscalls it made (map updates and deletes, plus the table fill through mmap of a spare table); setServicesMs = call to resolved (plan + writes); viaWorker = applier round trip through the datapath worker',
      iptablesChange: 'one full iptables-restore --noflush --counters of the kube-proxy rule set (exec included), as a kube-proxy full sync',
    },
    medians,
    ratios: { ...ratios, nrdLatencyLargestOverSmallest: scale },
    targets: { latencyScaleAtMost1_05: scale <= 1.05, changeMapWritesUnder1ms: changeMs < 1, changeSetServicesUnder1ms: setServicesMs < 1 },
    rounds: perSize,
  }, null, 2) + '\n');
  console.log(`results: ${RESULTS}`);
}

await runBench(main, cleanup, children);
