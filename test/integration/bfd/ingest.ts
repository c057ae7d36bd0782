// BFD under a route-ingest load, for the integration test (ingest.test.ts) and the bench
// (bench/routing/bfd-under-load.bench.ts): the real nrd daemon (etcd in its namespace, a bpffs for
// the datapath) with two BGP peers in a peer namespace — a raw injector (bench/routing/
// fib-e2e-source.ts) that writes N IPv4 routes at socket speed, and BIRD 2 with `bfd on` and a
// BFD session at a short interval (both ends) — while nrd takes the N routes into its RIB and
// programs them into the kernel. Measured: whether the BFD session ever left Up (nrd's session
// view and its nrd_bfd_state_changes_total; BIRD's `show bfd sessions` Since column), and the
// largest gap between BFD packets each side sent, from a tcpdump in the peer namespace (arrival
// times at the peer, so the gap is what the peer's detection timer saw).
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { apiRequest } from '../../../daemon/cli/client.js';
import type { PeersResponse } from '../../../daemon/bgp/speaker.js';
import type { BfdSessionView } from '../../../daemon/bfd/types.js';
import type { Topology, Host } from '../../lib/netns.js';
import { startBird, type Bird } from '../../lib/bird.js';
import { startEtcd, type EtcdHandle } from '../../lib/etcd.js';
import { mountTempBpffs, unmountTempBpffs } from '../../lib/bpffs.js';
import type { ManagedProcess } from '../../lib/proc.js';
import { sleep, waitFor } from '../../lib/wait.js';
import { NRD, ROOT, cleanEnv } from '../daemon/harness.js';
import { INJECT_RANGE, SOURCE, SOURCE_AS, TARGET, TARGET_AS, injectorEvents, mainTableRoutes } from '../../../bench/routing/fib-e2e-source.js';

const INJECTOR = fileURLToPath(new URL('./injector.js', import.meta.url));
/** BIRD's address in the peer namespace (beside the injector's SOURCE). */
export const BIRD_ADDRESS = '192.0.2.3';
const BIRD_AS = 65010;

export interface BfdIngestOptions {
  routes: number;
  intervalMs: number;
  multiplier: number;
  /** Seconds to wait for the RIB and the FIB to hold every route. */
  timeoutS: number;
  /** Seconds of BFD alone, measured before the ingest starts (a baseline; default 0). */
  idleS?: number;
  logLevel?: string;
}

export interface BfdSideResult {
  /** State when the run ended. */
  state: string;
  /** State changes during the run (0 = never left Up). */
  changes: number;
  /** BFD packets this side sent during the run (seen at the peer). */
  packets: number;
  /** Largest gap between two of them, ms. */
  maxGapMs: number;
  /** 99th percentile of the gaps, ms. */
  p99GapMs: number;
}

export interface BfdIngestResult {
  routes: number;
  /** Injector's session Established → all routes in nrd's RIB / in the kernel FIB, seconds. */
  ribSeconds: number;
  fibSeconds: number;
  /** Routes in the main table at the end. */
  fibRoutes: number;
  /** The one read of the FIB size at the end (fib_triestat: the kernel walks the trie), ms. */
  probeMs: number;
  /** CPU time the hypervisor took from this machine during the run (steal, all CPUs), ms. */
  stealMs: number;
  /** nrd's threads running SCHED_RR (the BFD worker: 1). */
  rtThreads: number;
  /** CPUs the SCHED_RR (BFD) thread may run on, and those of every thread of nrd, after the ingest. */
  bfdCpus: number[];
  threadCpus: number[][];
  /** changeTotal: nrd_bfd_state_changes_total of the session over the run (any new state). */
  nrd: BfdSideResult & { changeTotal: number };
  /** The baseline before the ingest (idleS > 0): largest and p99 gaps per side. */
  idle?: { nrd: GapStats; bird: GapStats };
  bird: BfdSideResult & { sinceBefore: string; sinceAfter: string };
}

/** `birdc show bfd sessions` row of `address`: state and Since. */
async function birdSession(b: Bird, address: string): Promise<{ state: string; since: string } | undefined> {
  const text = await b.birdc('show bfd sessions');
  for (const line of text.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f[0] === address) return { state: f[2] ?? '', since: `${f[3] ?? ''} ${f[4] ?? ''}`.trim() };
  }
  return undefined;
}

/** Gaps between consecutive packets from `src` in tcpdump -tt -n lines, inside [from, to] epoch s. */
export function packetGaps(lines: readonly string[], src: string, from: number, to: number): number[] {
  const times: number[] = [];
  const prefix = ` IP ${src}.`;
  for (const l of lines) {
    const sp = l.indexOf(' ');
    if (sp < 0 || !l.startsWith(prefix, sp)) continue;
    const t = Number(l.slice(0, sp));
    if (Number.isFinite(t) && t >= from && t <= to) times.push(t);
  }
  const gaps: number[] = [];
  for (let i = 1; i < times.length; i++) gaps.push((times[i]! - times[i - 1]!) * 1000);
  return gaps;
}

export interface GapStats {
  packets: number;
  maxGapMs: number;
  p99GapMs: number;
}

function sideOf(gaps: number[]): GapStats {
  const s = [...gaps].sort((a, b) => a - b);
  return { packets: gaps.length + 1, maxGapMs: s.at(-1) ?? NaN, p99GapMs: s[Math.floor(0.99 * (s.length - 1))] ?? NaN };
}

function metricSum(text: string, re: RegExp): number {
  let sum = 0;
  for (const line of text.split('\n')) if (re.test(line)) sum += Number(line.split(' ').at(-1));
  return sum;
}

const METRICS = '127.0.0.1:9469';

const SCHED_RR = 2;

/** Steal time of all CPUs so far (/proc/stat), ms. */
function stealMs(): number {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/);
  return Number(f[8]) * 10;
}

/** The scheduling policy of every thread of `pid`. */
function threadPolicies(pid: number): number[] {
  return threadCpus(pid).map((t) => t.policy);
}

/**
 * Every thread of `pid`: its scheduling policy (field 41 of /proc/PID/task/TID/stat) and the CPUs it
 * may run on (Cpus_allowed_list of its status).
 */
function threadCpus(pid: number): Array<{ policy: number; cpus: number[] }> {
  return readdirSync(`/proc/${pid}/task`).map((tid) => {
    const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    const policy = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);
    const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'))?.[1] ?? '';
    const cpus = list.split(',').flatMap((r) => {
      const [a, b] = r.split('-').map(Number);
      return Array.from({ length: (b ?? a!) - a! + 1 }, (_, k) => a! + k);
    });
    return { policy, cpus };
  });
}

/** nrd's /metrics, fetched inside its namespace. */
async function scrape(node: Host): Promise<string> {
  const script = 'fetch(process.argv[1]).then(async (r) => process.stdout.write(await r.text()), (e) => { process.stderr.write(String(e)); process.exit(1); })';
  return (await node.exec([process.execPath, '-e', script, `http://${METRICS}/metrics`], { env: cleanEnv(), timeoutMs: 10_000 })).stdout;
}

/** Builds the namespaces, starts etcd, nrd and BIRD, runs the ingest, stops everything it started. */
export async function runBfdIngest(topo: Topology, o: BfdIngestOptions, log: (s: string) => void = () => undefined): Promise<BfdIngestResult> {
  const cleanup: Array<() => Promise<unknown>> = [];
  try {
    const node = await topo.host('nrd');
    const peer = await topo.host('peer');
    await topo.link(node, peer, { nameA: 'eth0', nameB: 'eth0', addrA: `${TARGET}/24`, addrB: [`${SOURCE}/24`, `${BIRD_ADDRESS}/24`] });
    const dir = topo.tmpdir('run');
    const bpffs = await mountTempBpffs(topo.prefix);
    cleanup.push(() => unmountTempBpffs(bpffs));
    const etcd: EtcdHandle = await startEtcd({ netns: node.ns, host: '127.0.0.1', name: `${topo.prefix}-etcd`, tmpRoot: '/dev/shm' });
    cleanup.push(() => etcd.stop());
    const bfd = { enabled: true, minTx: o.intervalMs, minRx: o.intervalMs, multiplier: o.multiplier };
    const bird = await startBird(peer, {
      routerId: BIRD_ADDRESS,
      asn: BIRD_AS,
      peers: [{ name: 'nrd', address: TARGET, localAddress: BIRD_ADDRESS, asn: TARGET_AS, holdTime: 9, keepaliveTime: 3, extra: 'bfd on;' }],
      extraConfig: `protocol bfd {\n  interface "*" { interval ${o.intervalMs} ms; multiplier ${o.multiplier}; };\n}\n`,
    });
    cleanup.push(() => bird.stop());
    const socket = join(dir, 'nrd.sock');
    const site = {
      node: { name: 'bfd-ingest', address: TARGET, interface: 'eth0', stateDir: join(dir, 'state') },
      cluster: { podCIDRs: ['10.244.0.0/16'], nodeCIDRMaskSize: 24 },
      etcd: { endpoints: etcd.endpoints },
      bgp: {
        asn: TARGET_AS,
        routerId: TARGET,
        listen: { address: '0.0.0.0', port: 179 },
        holdTime: 9,
        connectRetryTime: 1,
        peers: [
          // A million routes on purpose: no max-prefix limit.
          { address: SOURCE, asn: SOURCE_AS, passive: true, holdTime: 240, families: ['ipv4'], description: 'route source', maxPrefix: { limit: 0 } },
          { address: BIRD_ADDRESS, asn: BIRD_AS, families: ['ipv4'], description: 'bird with bfd', bfd },
        ],
        import: { extraRanges: [INJECT_RANGE], maxPrefixLength: { ipv4: 32 } },
      },
      routing: { mode: 'auto' },
      datapath: { pinPath: join(bpffs, 'nrd') },
      services: { cgroupPath: '' },
      api: { socket, metrics: METRICS },
      log: { level: o.logLevel ?? 'warn' },
    };
    const siteFile = join(dir, 'site.yaml');
    writeFileSync(siteFile, `# nrd BFD-under-ingest target\n${stringify(site)}`);
    const nrd: ManagedProcess = node.spawn([process.execPath, NRD, '--config', siteFile], { env: cleanEnv(), cwd: ROOT, name: 'nrd', captureBytes: 16 * 1024 });
    cleanup.push(() => nrd.stop(10_000));
    const api = <T>(path: string): Promise<T> => apiRequest<T>(socket, path, { timeoutMs: 10_000 });
    const session = async (): Promise<BfdSessionView | undefined> => (await api<{ sessions: BfdSessionView[] }>('/v1/bfd')).sessions.find((s) => s.peer === BIRD_ADDRESS);
    await waitFor(
      async () => {
        if (!nrd.running()) throw new Error(`nrd exited: ${nrd.describe()}`);
        const s = await session().catch(() => undefined);
        const b = await birdSession(bird, TARGET);
        // Up on both ends and the Poll Sequence to the short interval done.
        return s?.state === 'Up' && !s.polling && s.txIntervalMs === o.intervalMs && b?.state === 'Up';
      },
      { timeoutMs: 60_000, intervalMs: 100, what: `BFD nrd ↔ BIRD Up at ${o.intervalMs} ms` },
    );
    const before = (await session())!;
    const rtThreads = threadPolicies(nrd.pid).filter((p) => p === SCHED_RR).length;
    const birdBefore = (await birdSession(bird, TARGET))!;
    const metricsBefore = await scrape(node);
    // Packet capture in the peer namespace: the BFD packets of both sides, with arrival times.
    const capFile = join(dir, 'bfd.txt');
    const cap = peer.spawn(['tcpdump', '-i', 'eth0', '-n', '-tt', '-l', '-U', 'udp port 3784'], { name: 'tcpdump', logFile: capFile });
    cleanup.push(() => cap.stop());
    await waitFor(() => readFileSync(capFile, 'utf8').includes(` IP ${TARGET}.`), { timeoutMs: 10_000, intervalMs: 50, what: 'tcpdump sees BFD' });
    let idle: BfdIngestResult['idle'];
    if (o.idleS) {
      const i0 = Date.now() / 1000;
      await sleep(o.idleS * 1000);
      const i1 = Date.now() / 1000;
      const l = readFileSync(capFile, 'utf8').split('\n');
      idle = { nrd: sideOf(packetGaps(l, TARGET, i0, i1)), bird: sideOf(packetGaps(l, BIRD_ADDRESS, i0, i1)) };
    }
    const t0 = Date.now() / 1000;
    const inj = peer.spawn([process.execPath, INJECTOR], { env: { ...cleanEnv(), NRDT_INJECT_ROUTES: String(o.routes) }, name: 'injector', captureBytes: 64 * 1024 });
    cleanup.push(() => inj.stop());
    let up: number | undefined;
    let ribAt: number | undefined;
    let fibAt: number | undefined;
    let written = 0;
    const steal0 = stealMs();
    let lastLog = 0;
    await waitFor(
      async () => {
        if (!nrd.running()) throw new Error(`nrd exited: ${nrd.describe()}`);
        if (!inj.running()) throw new Error(`injector exited: ${inj.output().slice(-2000)}`);
        up ??= injectorEvents(inj.output()).find((e) => e.up !== undefined)?.up;
        if (up === undefined) return false;
        if (ribAt === undefined) {
          const p = await api<PeersResponse>('/v1/peers').catch(() => undefined);
          if ((p?.peers.find((x) => x.address === SOURCE)?.prefixes.accepted ?? 0) >= o.routes) ribAt = Date.now();
        }
        // nrd's own count of routes written to the kernel, not a look at the FIB: reading
        // fib_triestat walks the whole trie inside the kernel, 0.7 s at 1M routes on a loaded
        // 2-core VM whose kernel does not preempt itself — with nrd's route writer in the kernel on
        // the other core that stalled every thread on the machine, BFD on both ends included.
        written = metricSum(await scrape(node).catch(() => ''), /^nrd_kernel_writes_total\{op="route_replace",result="ok"\}/);
        if (Date.now() - lastLog > 5000) {
          lastLog = Date.now();
          log(`  ${((Date.now() - up) / 1000).toFixed(0)} s: RIB ${ribAt ? 'complete' : 'filling'}, routes written ${written}`);
        }
        if (ribAt !== undefined && written >= o.routes) fibAt = Date.now();
        return fibAt !== undefined;
      },
      { timeoutMs: o.timeoutS * 1000, intervalMs: 500, what: `${o.routes} routes in nrd's RIB and written to the kernel` },
    );
    // A little longer: a Down reported just after the last route would still count.
    await sleep(Math.max(500, o.intervalMs * o.multiplier * 3));
    const t1 = Date.now() / 1000;
    const after = (await session())!;
    const birdAfter = (await birdSession(bird, TARGET))!;
    const metrics = await scrape(node);
    await cap.stop();
    // The kernel's own count, once, after the BFD states were read (nrd is idle by now).
    const p0 = performance.now();
    // After the ingest the route writer thread exists: which CPUs it and the BFD thread may use.
    const threads = threadCpus(nrd.pid);
    const fibRoutes = mainTableRoutes(nrd.pid);
    const probeMs = performance.now() - p0;
    const lines = readFileSync(capFile, 'utf8').split('\n');
    const nrdGaps = sideOf(packetGaps(lines, TARGET, t0, t1));
    const birdGaps = sideOf(packetGaps(lines, BIRD_ADDRESS, t0, t1));
    const changesMetric = new RegExp(`^nrd_bfd_state_changes_total\\{peer="${BIRD_ADDRESS.replace(/\./g, '\\.')}",purpose="peer",to="[A-Za-z]+"\\}`);
    const changeTotal = metricSum(metrics, changesMetric) - metricSum(metricsBefore, changesMetric);
    return {
      routes: o.routes,
      ribSeconds: (ribAt! - up!) / 1000,
      fibSeconds: (fibAt! - up!) / 1000,
      fibRoutes,
      probeMs,
      stealMs: stealMs() - steal0,
      rtThreads,
      bfdCpus: threads.find((t) => t.policy === SCHED_RR)?.cpus ?? [],
      threadCpus: threads.map((t) => t.cpus),
      ...(idle ? { idle } : {}),
      nrd: { state: after.state, changes: after.stateChanges - before.stateChanges, changeTotal, ...nrdGaps },
      bird: { state: birdAfter.state, changes: birdAfter.since === birdBefore.since && birdAfter.state === birdBefore.state ? 0 : 1, sinceBefore: birdBefore.since, sinceAfter: birdAfter.since, ...birdGaps },
    };
  } finally {
    for (const f of cleanup.reverse()) await f().catch(() => undefined);
  }
}
