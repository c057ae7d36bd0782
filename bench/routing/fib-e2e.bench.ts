// End-to-end benchmark, BGP → kernel FIB: N IPv4 routes sent by a source over one eBGP session
// (RFC 4271) to a target in another network namespace, timed from session Established until all N
// are in the target namespace's main routing table; RSS of the target. Targets, same run, same
// source: the real nrd daemon (etcd in its namespace, a bpffs for the datapath, routes with
// protocol 220 through batched netlink) and BIRD 2 with a kernel protocol. Prints both and the
// nrd/BIRD ratios, and writes them to bench/results/fib-e2e.json.
// nrd's event-loop delay over the run (perf_hooks.monitorEventLoopDelay, the
// nrd_nodejs_eventloop_lag_{max,p99}_seconds metrics, reset at Established) is printed beside the
// largest gap between the target's BGP messages: keepalives on time throughout is a requirement.
// Sources: `inject` (default) writes pre-encoded UPDATEs at socket speed, so the target is what is
// measured; `bird` is a BIRD tester exporting N static routes (≈32k routes/s, it bounds the run).
// FIB progress is read from /proc/<pid>/net/fib_triestat every --interval ms (a trie walk in the
// kernel, a few ms at 1M routes; an `ip route show` dump would cost seconds per poll and slow the
// target it measures); one full dump (`ip -4 route show proto …`) checks the count at the end.
// Root. node dist/bench/routing/fib-e2e.bench.js [--routes 100000,1000000] [--source inject|bird]
//   [--targets nrd,bird] [--interval 100] [--timeout SECONDS] [--log-level info] [--nrd-events as-is|no-enobufs]
// Env: NRDB_NRD_NODE_ARGS (extra node flags for nrd, e.g. --cpu-prof), NRDB_NRD_LOG (nrd output to a file).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { stringify } from 'yaml';
import { rawRequest, apiRequest } from '../../daemon/cli/client.js';
import type { PeersResponse } from '../../daemon/bgp/speaker.js';
import type { ReadyzResponse } from '../../daemon/api/types.js';
import { Topology, type Host } from '../../test/lib/netns.js';
import { startBird, type Bird } from '../../test/lib/bird.js';
import { startEtcd, type EtcdHandle } from '../../test/lib/etcd.js';
import type { ManagedProcess } from '../../test/lib/proc.js';
import { sleep, waitFor } from '../../test/lib/wait.js';
import { NRD, ROOT, cleanEnv, mountTempBpffs, unmountTempBpffs } from '../../test/integration/daemon/harness.js';
import { INJECT_RANGE, SOURCE, SOURCE_AS, TARGET, TARGET_AS, injectorEvents, mainTableRoutes, memoryOf, prefixes, runInjector } from './fib-e2e-source.js';

const SELF = fileURLToPath(import.meta.url);
const ROLE_ENV = 'NRDB_FIB_ROLE';
const NO_ENOBUFS = join(dirname(SELF), 'fib-e2e-no-enobufs.js');
/** nrd's metrics listener, on the target namespace's loopback. */
const METRICS_PORT = 9469;

type TargetKind = 'nrd' | 'bird';
type SourceKind = 'inject' | 'bird';

interface Options {
  source: SourceKind;
  intervalMs: number;
  timeoutS: number | undefined;
  logLevel: string;
  /** Hold time the injector offers (s): the target keepalives every third of it; the gap is measured. */
  holdTime: number;
  /** 'no-enobufs': preload fib-e2e-no-enobufs.js into nrd (a what-if, see that file). */
  nrdEvents: 'as-is' | 'no-enobufs';
}

interface Result {
  target: TargetKind;
  routes: number;
  /** Established → all N routes in the FIB, seconds; undefined when it timed out. */
  seconds: number | undefined;
  /** Established → the target first answered that all N routes are in its RIB (nrd: accepted from the peer; BIRD: its table), seconds; a busy target answers late, so an upper bound. */
  ribSeconds: number | undefined;
  /** Established → the source handed its last UPDATE to the kernel (injector only). */
  sourceDoneSeconds: number | undefined;
  /** Routes in the FIB when the run ended (N unless it timed out). */
  reached: number;
  /** Routes with the target's protocol in a full dump after the run. */
  dumped: number;
  rssBefore: number;
  rssAfter: number;
  peak: number;
  /** Established → half / 90 % of the routes in the FIB, seconds. */
  half: number | undefined;
  p90: number | undefined;
  /** Most expensive fib_triestat read during the run, ms (the probe's own cost). */
  probeMaxMs: number;
  /** Largest gap between two messages of the target seen by the injector, ms (injector only). */
  gapMs: number | undefined;
  holdTime: number;
  /** nrd's event-loop delay from Established to the end of the run, ms (max, p99); nrd only. */
  loopMaxMs: number | undefined;
  loopP99Ms: number | undefined;
  /** nrd's V8 heap (used, committed) and external memory when all routes were in, bytes. */
  heap: { used?: number; total?: number; external?: number } | undefined;
}

/** Event-loop delay since the last read (the metrics reset their histogram on each scrape), ms. */
interface LoopDelay {
  maxMs: number;
  p99Ms: number;
  /** V8 heap used and committed, and memory outside it (Buffers), bytes, at the time of the read. */
  heapUsed?: number;
  heapTotal?: number;
  external?: number;
}

/** What the benchmark needs from a running target. */
interface Target {
  /** A process inside the target namespace (for /proc/<pid>/net) whose RSS is the target's. */
  pid: number;
  /** Routes the target has accepted from the source into its RIB. */
  ribCount(): Promise<number>;
  /** `ip route show proto …` argument naming the target's routes. */
  proto: string;
  /** Output tail for failure messages. */
  describe(): string;
  /** Why the target process is gone (exit status and its last non-log lines), or undefined. */
  death(): string | undefined;
  /** Event-loop delay since the previous call (nrd's metrics), or undefined when not known. */
  loopDelay?(): Promise<LoopDelay | undefined>;
}

/** max and p99 of nrd_nodejs_eventloop_lag_* in a Prometheus text exposition, ms. */
export function loopDelayOf(text: string): LoopDelay | undefined {
  const val = (name: string): number | undefined => {
    const m = new RegExp(`^nrd_nodejs_eventloop_lag_${name}_seconds(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text);
    return m ? Number(m[1]) * 1000 : undefined;
  };
  const maxMs = val('max');
  const p99Ms = val('p99');
  const bytes = (name: string): number | undefined => {
    const m = new RegExp(`^nrd_${name}(?:\\{[^}]*\\})? ([0-9.eE+-]+)$`, 'm').exec(text);
    return m ? Number(m[1]) : undefined;
  };
  const mem = { heapUsed: bytes('nodejs_heap_size_used_bytes'), heapTotal: bytes('nodejs_heap_size_total_bytes'), external: bytes('nodejs_external_memory_bytes') };
  return maxMs === undefined || p99Ms === undefined ? undefined : { maxMs, p99Ms, ...mem };
}

// ---- targets ------------------------------------------------------------------------------------

/** Temp dirs of etcds still running: removed by the exit hook when a signal skips the cleanup. */
const etcdDirs = new Set<string>();
process.on('exit', () => {
  for (const d of etcdDirs) rmSync(d, { recursive: true, force: true });
});

interface NrdTarget extends Target {
  etcd: EtcdHandle;
  bpffs: string;
}

async function startNrd(topo: Topology, host: Host, opts: Options, cleanup: Array<() => Promise<void>>): Promise<NrdTarget> {
  const dir = topo.tmpdir('nrd');
  const bpffs = await mountTempBpffs(topo.prefix);
  cleanup.push(() => unmountTempBpffs(bpffs));
  const etcd = await startEtcd({ netns: host.ns, host: '127.0.0.1', name: `${topo.prefix}-etcd` });
  // etcd's own exit hook kills it on Ctrl-C but keeps its temp dir: ours removes it.
  etcdDirs.add(etcd.baseDir);
  cleanup.push(async () => {
    await etcd.stop();
    etcdDirs.delete(etcd.baseDir);
  });
  const socket = join(dir, 'nrd.sock');
  const site = {
    node: { name: 'bench-node', address: TARGET, interface: 'eth0', stateDir: join(dir, 'state') },
    cluster: { podCIDRs: ['10.244.0.0/16'], nodeCIDRMaskSize: 24 },
    etcd: { endpoints: etcd.endpoints },
    bgp: {
      asn: TARGET_AS,
      routerId: TARGET,
      listen: { address: '0.0.0.0', port: 179 },
      // A million routes on purpose: no max-prefix limit (the default would stop the session).
      peers: [{ address: SOURCE, asn: SOURCE_AS, passive: true, holdTime: 240, families: ['ipv4'], description: 'route source', maxPrefix: { limit: 0 } }],
      // The source's range is not a pod pool: accept it as an extra range, every length.
      import: { extraRanges: [INJECT_RANGE], maxPrefixLength: { ipv4: 32 } },
    },
    routing: { mode: 'auto' },
    datapath: { pinPath: join(bpffs, 'nrd') },
    // Metrics inside the target namespace only (the event-loop delay is read from them).
    api: { socket, metrics: `127.0.0.1:${METRICS_PORT}` },
    log: { level: opts.logLevel },
  };
  const siteFile = join(dir, 'site.yaml');
  writeFileSync(siteFile, `# nrd fib-e2e benchmark target\n${stringify(site)}`);
  // NRDB_NRD_NODE_ARGS: extra node flags for nrd (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
  const nodeArgs = (process.env.NRDB_NRD_NODE_ARGS ?? '').split(/\s+/).filter((a) => a.length > 0);
  if (opts.nrdEvents === 'no-enobufs') nodeArgs.push('--import', pathToFileURL(NO_ENOBUFS).href);
  const proc = host.spawn([process.execPath, ...nodeArgs, NRD, '--config', siteFile], {
    env: cleanEnv(),
    cwd: ROOT,
    name: 'nrd',
    captureBytes: 16 * 1024,
    // NRDB_NRD_LOG: append nrd's whole output to this file instead of keeping its tail.
    ...(process.env.NRDB_NRD_LOG ? { logFile: process.env.NRDB_NRD_LOG } : {}),
  });
  // Ready except for BGP (its only peer is the source, which connects later): state has the own
  // CIDR, routing has run its first reconcile, the datapath is attached.
  await waitFor(
    async () => {
      if (!proc.running()) throw new Error('nrd exited');
      const r = await rawRequest(socket, '/readyz', { timeoutMs: 2000 });
      const body = r.body as ReadyzResponse;
      // The datapath (BPF) plays no part in programming routes: a BPF object that does not load on
      // this machine must not keep the routing figures from being taken.
      return body.notReady?.every((s) => s.name === 'bgp' || s.name === 'datapath') ?? false;
    },
    { timeoutMs: 60_000, intervalMs: 100, what: 'nrd ready (all but bgp)' },
  ).catch((err: Error) => {
    throw new Error(`${err.message}\n${proc.describe()}`);
  });
  return {
    pid: proc.pid,
    etcd,
    bpffs,
    proto: '220',
    async ribCount() {
      const body = await apiRequest<PeersResponse>(socket, '/v1/peers', { timeoutMs: 5000 });
      return body.peers.find((p) => p.address === SOURCE)?.prefixes.accepted ?? 0;
    },
    describe: () => proc.describe(),
    death: () => deathOf(proc),
    async loopDelay() {
      const r = await host.exec(['curl', '-sf', '--max-time', '30', `http://127.0.0.1:${METRICS_PORT}/metrics`], { allowFailure: true, timeoutMs: 35_000 });
      return loopDelayOf(r.stdout);
    },
  };
}

/** "exited SIGABRT: <last lines that are not JSON log lines>" once `p` is gone. */
function deathOf(p: ManagedProcess): string | undefined {
  const e = p.exit();
  if (!e) return undefined;
  const tail = p
    .output()
    .split('\n')
    .filter((l) => l.trim() && !l.startsWith('{'))
    .slice(-4)
    .join(' | ');
  return `exited ${e.signal ?? `code ${e.code}`}${tail ? `: ${tail}` : ''}`;
}

/** `birdc show route count` → the number of routes in BIRD's table. */
async function birdRouteCount(b: Bird): Promise<number> {
  const m = /(\d+) of \d+ routes/.exec(await b.birdc('show route count'));
  return m ? Number(m[1]) : 0;
}

async function startBirdTarget(host: Host): Promise<Target> {
  const b = await startBird(host, {
    routerId: TARGET,
    asn: TARGET_AS,
    peers: [{ name: 'feed', address: SOURCE, asn: SOURCE_AS, localAddress: TARGET, passive: true, holdTime: 240, import: 'all', export: 'none' }],
    // Our own kernel protocol instead of the helper's (scan time 10): BIRD's default 60 s scan,
    // like nrd's 60 s resync, so that no full kernel-table scan lands inside the timed window.
    extraConfig: 'protocol kernel kfib {\n  ipv4 { import none; export where source = RTS_BGP; };\n  merge paths on;\n  scan time 60;\n}',
  });
  return {
    pid: b.process.pid,
    proto: 'bird',
    ribCount: () => birdRouteCount(b),
    describe: () => b.process.describe(),
    death: () => deathOf(b.process),
  };
}

// ---- sources ------------------------------------------------------------------------------------

/** A started source: resolves with the epoch ms of Established (and of the last write, if known). */
interface Source {
  established: Promise<number>;
  written(): number | undefined;
  /** Largest gap between the target's messages so far, ms (injector only). */
  gap(): number | undefined;
  describe(): string;
}

function startInjector(host: Host, n: number, holdTime: number): Source {
  const p: ManagedProcess = host.spawn([process.execPath, '--max-old-space-size=4096', SELF], {
    env: { ...process.env, [ROLE_ENV]: 'inject', NRDB_FIB_ROUTES: String(n), NRDB_FIB_HOLD: String(holdTime) },
    name: 'injector',
  });
  const events = () => injectorEvents(p.output());
  return {
    // Encoding 1M prefixes takes a few seconds before the injector connects.
    established: waitFor(
      () => {
        const ev = events();
        const err = ev.find((e) => e.error);
        if (err || !p.running()) throw new Error(`injector: ${err?.error ?? 'exited'}`);
        return ev.find((e) => e.up)?.up;
      },
      { timeoutMs: 120_000, intervalMs: 10, what: 'injector session Established' },
    ),
    written: () => events().find((e) => e.written)?.written,
    gap: () => events().reduce<number | undefined>((m, e) => (e.gap !== undefined && e.gap > (m ?? -1) ? e.gap : m), undefined),
    describe: () => p.describe(),
  };
}

/**
 * A BIRD tester with n static routes and its session disabled: enabled once the routes are all
 * in its table, so the timed window holds the transfer and not the tester's config parsing.
 */
async function startBirdTester(host: Host, n: number): Promise<Source> {
  const b = await startBird(host, {
    routerId: SOURCE,
    asn: SOURCE_AS,
    staticRoutes: prefixes(n),
    peers: [{ name: 'sink', address: TARGET, asn: TARGET_AS, localAddress: SOURCE, holdTime: 240, import: 'none', export: 'all', extra: 'disabled;' }],
  });
  await waitFor(async () => (await birdRouteCount(b)) >= n, { timeoutMs: 300_000, intervalMs: 250, what: `${n} static routes in the BIRD tester` });
  await b.birdc('enable sink');
  const established = waitFor(
    async () => {
      const p = (await b.protocols()).find((x) => x.name === 'sink');
      return p && p.state === 'up' && p.info.startsWith('Established') ? Date.now() : false;
    },
    { timeoutMs: 60_000, intervalMs: 10, what: 'BIRD tester session Established' },
  );
  return { established, written: () => undefined, gap: () => undefined, describe: () => b.process.describe() };
}

// ---- one measurement ----------------------------------------------------------------------------

async function measure(kind: TargetKind, n: number, opts: Options): Promise<Result> {
  // A profiled nrd (NRDB_NRD_NODE_ARGS=--cpu-prof) writes its profile on exit: give it the time.
  const topo = new Topology('nrdb-fib', process.env.NRDB_NRD_NODE_ARGS ? { graceMs: 30_000 } : {});
  const cleanup: Array<() => Promise<void>> = [];
  try {
    const src = await topo.host('src');
    const tgt = await topo.host('tgt');
    await topo.link(src, tgt, { nameA: 'eth0', nameB: 'eth0', addrA: `${SOURCE}/24`, addrB: `${TARGET}/24` });
    const target = kind === 'nrd' ? await startNrd(topo, tgt, opts, cleanup) : await startBirdTarget(tgt);
    await sleep(1000);
    const probe = (): number => {
      try {
        return mainTableRoutes(target.pid);
      } catch (err) {
        // /proc/<pid>/net vanishes with the process: say why.
        const why = target.death();
        throw new Error(why ? `${kind} ${why}` : `${kind}: ${(err as Error).message}\n${target.describe()}`);
      }
    };
    const base = probe();
    const mem0 = memoryOf(target.pid);
    const source = opts.source === 'inject' ? startInjector(src, n, opts.holdTime) : await startBirdTester(src, n);
    const t0 = await source.established.catch((err: Error) => {
      throw new Error(`${err.message}\n${source.describe()}\n${target.describe()}`);
    });
    // Resets nrd's event-loop histogram: the read at the end covers Established → all in the FIB.
    const loopStart = target.loopDelay?.().catch(() => undefined);
    const timeoutMs = (opts.timeoutS ?? 60 + n / 5000) * 1000;
    let fib = 0;
    let probeMaxMs = 0;
    let tRib: number | undefined;
    let tHalf: number | undefined;
    let t90: number | undefined;
    let tDone: number | undefined;
    let lastRib = 0;
    let nextRib = 0;
    let ribAsking = false;
    const deadline = t0 + timeoutMs;
    let nextReport = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const a = performance.now();
      fib = probe() - base;
      const probeMs = performance.now() - a;
      probeMaxMs = Math.max(probeMaxMs, probeMs);
      const now = Date.now();
      if (tHalf === undefined && fib >= n / 2) tHalf = now;
      if (t90 === undefined && fib >= n * 0.9) t90 = now;
      if (fib >= n) {
        tDone = now;
        break;
      }
      // The RIB is asked less often (an API call or a birdc run costs the target a little) and
      // never awaited here: a busy target answers late, and the FIB probe must not wait for it.
      if (tRib === undefined && !ribAsking && now >= nextRib) {
        ribAsking = true;
        target
          .ribCount()
          .then((c) => {
            lastRib = c;
            if (c >= n && tRib === undefined) tRib = Date.now();
          })
          .catch(() => undefined)
          .finally(() => {
            ribAsking = false;
            nextRib = Date.now() + 500;
          });
      }
      if (now >= nextReport) {
        nextReport = now + 10_000;
        process.stdout.write(`  … ${kind}: ${((now - t0) / 1000).toFixed(0)} s, RIB ${lastRib}, FIB ${fib}\n`);
      }
      // The trie walk grows with the table (tens of ms at 1M routes): keep the probe under ~10 %
      // of one core so that it does not slow the target it measures.
      await sleep(Math.max(opts.intervalMs, 9 * probeMs));
    }
    // All in the FIB means all were in the RIB by then: an answer that came later (or none) only
    // bounds the RIB time from above.
    if (tDone !== undefined && (tRib === undefined || tRib > tDone)) tRib = tDone;
    const mem1 = memoryOf(target.pid);
    const loopReset = await loopStart;
    const loop = loopReset ? await target.loopDelay?.().catch(() => undefined) : undefined;
    const dump = await tgt.exec(['sh', '-c', `ip -4 route show proto ${target.proto} | wc -l`], { allowFailure: true, timeoutMs: 120_000 });
    const w = source.written();
    const s = (t: number | undefined): number | undefined => (t === undefined ? undefined : (t - t0) / 1000);
    return {
      target: kind,
      routes: n,
      seconds: s(tDone),
      ribSeconds: s(tRib),
      sourceDoneSeconds: s(w),
      reached: fib,
      dumped: Number(dump.stdout.trim()) || 0,
      rssBefore: mem0.rss,
      rssAfter: mem1.rss,
      peak: mem1.peak,
      half: s(tHalf),
      p90: s(t90),
      probeMaxMs,
      gapMs: source.gap(),
      holdTime: opts.holdTime,
      loopMaxMs: loop?.maxMs,
      loopP99Ms: loop?.p99Ms,
      heap: loop ? { used: loop.heapUsed, total: loop.heapTotal, external: loop.external } : undefined,
    };
  } finally {
    // Processes first (nrd releases its pins), then the bpffs and etcd's temp dir.
    await topo.destroy().catch((err: unknown) => console.error(String(err)));
    for (const c of cleanup.reverse()) await c().catch((err: unknown) => console.error(String(err)));
  }
}

// ---- report -------------------------------------------------------------------------------------

const MB = 1024 * 1024;
const sec = (x: number | undefined): string => (x === undefined ? 'n/a' : `${x.toFixed(2)} s`);

function line(r: Result, source: SourceKind): string {
  const done = r.seconds !== undefined;
  const head = `${r.target.padEnd(4)} ${String(r.routes).padStart(8)} routes (${source}): `;
  const time = done
    ? `all in the FIB ${sec(r.seconds)} after Established (${Math.round(r.routes / r.seconds!).toLocaleString('en')} routes/s)`
    : `TIMED OUT with ${r.reached} of ${r.routes} in the FIB`;
  const parts = [
    time,
    `50% ${sec(r.half)}, 90% ${sec(r.p90)}`,
    `RIB seen complete ${sec(r.ribSeconds)}`,
    ...(r.sourceDoneSeconds !== undefined ? [`source done writing ${sec(r.sourceDoneSeconds)}`] : []),
    `RSS ${(r.rssBefore / MB).toFixed(0)} → ${(r.rssAfter / MB).toFixed(0)} MB (${Math.round(Math.max(0, r.rssAfter - r.rssBefore) / r.routes)} B/route), peak ${(r.peak / MB).toFixed(0)} MB`,
    `dump: ${r.dumped} routes proto ${r.target === 'nrd' ? 220 : 'bird'}`,
    `slowest FIB probe ${r.probeMaxMs.toFixed(1)} ms`,
    ...(r.gapMs !== undefined ? [`largest gap between its BGP messages ${(r.gapMs / 1000).toFixed(2)} s (keepalive every ${(r.holdTime / 3).toFixed(0)} s)`] : []),
    ...(r.loopMaxMs !== undefined ? [`event-loop delay max ${r.loopMaxMs.toFixed(0)} ms, p99 ${r.loopP99Ms!.toFixed(1)} ms`] : []),
    ...(r.heap?.used !== undefined ? [`V8 heap used ${((r.heap.used ?? 0) / MB).toFixed(0)} of ${((r.heap.total ?? 0) / MB).toFixed(0)} MB, external ${((r.heap.external ?? 0) / MB).toFixed(0)} MB`] : []),
  ];
  return head + parts.join('; ');
}

async function main(): Promise<void> {
  if (process.env[ROLE_ENV] === 'inject') return runInjector(Number(process.env.NRDB_FIB_ROUTES), Number(process.env.NRDB_FIB_HOLD ?? 240));
  const { values } = parseArgs({
    options: {
      routes: { type: 'string', default: '100000,1000000' },
      source: { type: 'string', default: 'inject' },
      targets: { type: 'string', default: 'nrd,bird' },
      interval: { type: 'string', default: '100' },
      timeout: { type: 'string' },
      'log-level': { type: 'string', default: 'info' },
      'nrd-events': { type: 'string', default: 'as-is' },
      // Short enough that a stalled event loop shows as a late keepalive (and long stalls drop the session).
      'hold-time': { type: 'string', default: '9' },
    },
  });
  const source = values.source as SourceKind;
  if (source !== 'inject' && source !== 'bird') throw new Error(`--source inject|bird, not ${values.source}`);
  const targets = values.targets!.split(',') as TargetKind[];
  for (const t of targets) if (t !== 'nrd' && t !== 'bird') throw new Error(`unknown target ${t}`);
  const opts: Options = {
    source,
    intervalMs: Number(values.interval),
    timeoutS: values.timeout !== undefined ? Number(values.timeout) : undefined,
    logLevel: values['log-level']!,
    holdTime: Number(values['hold-time']),
    nrdEvents: values['nrd-events'] === 'no-enobufs' ? 'no-enobufs' : 'as-is',
  };
  if (values['nrd-events'] !== opts.nrdEvents) throw new Error(`--nrd-events as-is|no-enobufs, not ${values['nrd-events']}`);
  const sizes = values.routes!.split(',').map(Number);
  if (opts.nrdEvents === 'no-enobufs') console.log('fib-e2e: nrd runs with NETLINK_NO_ENOBUFS preloaded on its event socket (a what-if, not nrd as shipped)');
  console.log(`fib-e2e: source ${source}, FIB polled every ${opts.intervalMs} ms via /proc/<pid>/net/fib_triestat; times from session Established`);
  let failed = false;
  const rows: Array<Record<string, unknown>> = [];
  for (const n of sizes) {
    const results: Result[] = [];
    for (const t of targets) {
      try {
        const r = await measure(t, n, opts);
        results.push(r);
        console.log(line(r, source));
        if (r.seconds === undefined) failed = true;
      } catch (err) {
        failed = true;
        console.log(`${t} ${n}: failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    }
    const nrd = results.find((r) => r.target === 'nrd');
    const bird = results.find((r) => r.target === 'bird');
    const per = (r: Result): number => Math.max(1, r.rssAfter - r.rssBefore) / r.routes;
    const ratio = (a: number | undefined, b: number | undefined): number | null => (a !== undefined && b !== undefined && b > 0 ? a / b : null);
    if (nrd?.seconds !== undefined && bird?.seconds !== undefined) {
      const rib = ratio(nrd.ribSeconds, bird.ribSeconds);
      console.log(
        `  ${n} routes: nrd/BIRD time to FIB ${(nrd.seconds / bird.seconds).toFixed(2)}x, time to RIB ${rib === null ? 'n/a' : `${rib.toFixed(2)}x`}, ` +
          `RSS after ${(nrd.rssAfter / bird.rssAfter).toFixed(2)}x, RSS growth per route ${(per(nrd) / per(bird)).toFixed(2)}x ` +
          `(${Math.round(per(nrd))} vs ${Math.round(per(bird))} B/route)` +
          (nrd.loopMaxMs !== undefined ? `; nrd event-loop delay max ${nrd.loopMaxMs.toFixed(0)} ms, p99 ${nrd.loopP99Ms!.toFixed(1)} ms` : '') +
          (nrd.gapMs !== undefined ? `; nrd's largest BGP message gap ${(nrd.gapMs / 1000).toFixed(2)} s` : ''),
      );
    }
    rows.push({
      routes: n,
      nrd: nrd ?? null,
      bird: bird ?? null,
      ratios: {
        fibTimeNrdOverBird: ratio(nrd?.seconds, bird?.seconds),
        ribTimeNrdOverBird: ratio(nrd?.ribSeconds, bird?.ribSeconds),
        bytesPerRouteNrdOverBird: nrd && bird ? per(nrd) / per(bird) : null,
      },
      bytesPerRoute: { nrd: nrd ? per(nrd) : null, bird: bird ? per(bird) : null },
    });
  }
  // Only a full run (both targets) is a result worth keeping.
  if (rows.some((r) => r.nrd && r.bird)) {
    const results = join(ROOT, 'bench', 'results', 'fib-e2e.json');
    mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
    writeFileSync(
      results,
      JSON.stringify(
        {
          bench: 'routing/fib-e2e',
          date: new Date().toISOString(),
          machine: { kernel: release(), cpus: cpus().length, quiet: false, note: 'shared machine, other jobs running' },
          params: { source, holdTimeS: opts.holdTime, intervalMs: opts.intervalMs, nrdEvents: opts.nrdEvents },
          sizes: rows,
        },
        null,
        2,
      ) + '\n',
    );
    console.log(`results: ${results}`);
  }
  process.exit(failed ? 1 : 0);
}

await main();
