// Benchmark of one service change end to end, the daemon's path: a service key written in the
// store (its watch event delivered at once) → reflector and admission → the state subsystem's
// service set (coalesced per tick) → onServices → ServicesDatapath.setServices → incremental plan →
// the map writes (ServiceMapWriter on real pinned nrd_endpoint maps, on this thread), against
// kube-proxy's iptables-restore --noflush of the same change (iptables mode, the rule set of
// datapath/services.bench.ts) in the same run, with 100, 1k and 10k services installed. Root; the
// maps live on a private bpffs, the rules in a namespace made here.
//
// nrd's figure per change is the time from the write to the maps written (setServices resolved),
// with the parts: map writes alone, records the state layer compared, records the planner compared
// and replanned (both O(changed): 1 for one service, whatever the size). Not included: the
// datapath worker's round trip (the daemon runs the writer in a worker thread; the services bench
// times it: about 0.5–1 ms) and etcd's own put-to-watch latency.
//
// iptables-restore --noflush of the nft backend grows faster than linearly with the chain count
// (minutes at 10k services here): above --ipt-change-max services the iptables change is one add.
//
// Usage: node service-change.bench.js [--reps N] [--sizes 100,1000,10000] [--maglev PRIME] [--ipt-reps N (0: none)] [--ipt-change-max N]
import type { ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { loadConfigObject } from '../../daemon/config/index.js';
import { ServiceMapWriter, ServicesDatapath, type WireServiceOp } from '../../daemon/datapath/services.js';
import { LB_MAP_NAMES } from '../../daemon/datapath/services-layout.js';
import { loadObject } from '../../daemon/datapath/objects.js';
import { silentLogger } from '../../daemon/lib/log.js';
import type { IncrementalPlanner } from '../../daemon/services/incremental.js';
import { Keys } from '../../daemon/state/keys.js';
import type { ServiceRecord } from '../../daemon/state/records.js';
import { StateSubsystem } from '../../daemon/state/subsystem.js';
import { FakeStore } from '../../test/lib/fake-store.js';
import { Cleanup, addNetns, mountBpffs, objectDir, sh } from '../../test/integration/datapath/env.js';
import { cliArg, freshService, kubeProxyRules, median, restorer, runBench, serviceHelper, services } from '../datapath/service-fixtures.js';

const arg = cliArg;
const REPS = Number(arg('--reps', '20'));
const SIZES = arg('--sizes', '100,1000,10000').split(',').map(Number);
const MAGLEV_M = Number(arg('--maglev', '401'));
const IPT_CHANGE_MAX = Number(arg('--ipt-change-max', '1000'));
const IPT_REPS = Number(arg('--ipt-reps', '3'));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results', 'service-change.json');
const K = new Keys('/nrd/v1');

const cleanup = new Cleanup();
const children: ChildProcess[] = [];

const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((s.length - 1) * p))]!;
};
const fmt = (x: number, d = 3): string => (Number.isFinite(x) ? x.toFixed(d) : '-');
const text = (s: ServiceRecord): string => JSON.stringify({ name: s.name, vip: s.vip, port: s.port, protocol: s.protocol, backends: s.backends });

interface Change { totalMs: number; toSetMs: number; writesMs: number; writes: number; stateExamined: number; plannerExamined: number; replanned: number }

async function main(): Promise<void> {
  const bpffs = mountBpffs(cleanup);
  const obj = loadObject({ path: join(objectDir, 'nrd_endpoint.bpf.o'), knobs: { lb_maglev_m: MAGLEV_M }, pinDir: join(bpffs, 'maps'), pinMaps: LB_MAP_NAMES });
  cleanup.add(() => obj.close());
  const writer = new ServiceMapWriter(bpffs);
  cleanup.add(() => writer.close());
  const work = mkdtempSync(join(tmpdir(), 'nrd-bench-svcchg-'));
  cleanup.add(() => rmSync(work, { recursive: true, force: true }));

  // nrd: the state subsystem over an in-memory store (watch events delivered synchronously on a
  // write), its service sets handed to ServicesDatapath as daemon/main.ts wires them.
  let last = { writesMs: 0, writes: 0 };
  const ds = new ServicesDatapath({
    applyServiceOps: async (ops: WireServiceOp[]): Promise<number> => {
      const t = performance.now();
      const writes = writer.apply(ops);
      last = { writesMs: performance.now() - t, writes };
      return writes;
    },
  }, { lbAlgorithm: 'maglev', maglevTableSize: MAGLEV_M, drainMs: 300_000 });
  cleanup.add(() => ds.close());
  const planner = (ds as unknown as { planner: IncrementalPlanner }).planner;
  const store = new FakeStore();
  const cfg = loadConfigObject({ node: { name: 'n1', address: '192.0.2.1', stateDir: join(work, 'state') }, cluster: { podCIDRs: ['10.244.0.0/16'] } }, { env: {} });
  if (!cfg.ok) throw new Error(JSON.stringify(cfg.issues));
  const state = new StateSubsystem({ metrics: new Registry(), store, overrides: { log: silentLogger() }, readinessIntervalMs: 60_000 });
  let applied: Promise<void> = Promise.resolve();
  let sets = 0;
  let emittedAt = 0;
  state.onServices((s) => {
    sets++;
    emittedAt = performance.now();
    applied = ds.setServices(s);
  });
  await state.start({ config: cfg.config, log: silentLogger(), ready: () => {} });
  cleanup.add(() => void state.stop());
  const tracker = (state as unknown as { serviceSet?: { lastExamined: number } }).serviceSet;

  /** Writes (or deletes) one key and waits for the set it yields to be in the maps. */
  const change = async (write: () => void): Promise<Change> => {
    const before = sets;
    const t0 = performance.now();
    write();
    while (sets === before) await new Promise((r) => setImmediate(r));
    await applied;
    const totalMs = performance.now() - t0;
    if (ds.lastError) throw new Error(ds.lastError);
    const u = planner.lastUpdate ?? { examined: NaN, replanned: NaN };
    return { totalMs, toSetMs: emittedAt - t0, ...last, stateExamined: tracker?.lastExamined ?? NaN, plannerExamined: u.examined, replanned: u.replanned };
  };
  const install = async (set: ServiceRecord[]): Promise<number> => {
    const t0 = performance.now();
    const before = sets;
    for (const s of set) store.seed(K.service(s.name), text(s));
    while (sets === before) await new Promise((r) => setImmediate(r));
    await applied;
    return performance.now() - t0;
  };

  // iptables: the kube-proxy rule set in a namespace of its own, restored by a helper living there.
  const nsI = addNetns(cleanup, 'sc');
  const restore = restorer(serviceHelper(cleanup, children, nsI, 'restore'), work);

  console.log('NOTE: measured on a shared, noisy machine (2 cores, other jobs running); ratios from the same run are the figures to read.');
  console.log(`sizes ${SIZES.join(', ')}; ${REPS} adds and ${REPS} removes per size through the state subsystem; Maglev table ${MAGLEV_M} slots; iptables ${IPT_REPS} add/remove rounds (one add above ${IPT_CHANGE_MAX} services)`);
  const perSize: Record<string, { installMs: number; iptInstallMs: number; add: Change[]; remove: Change[]; iptAdd: number[]; iptRemove: number[] }> = {};
  let installed = 0;
  for (const size of SIZES) {
    const set = services(size);
    const installMs = await install(set.slice(installed));
    installed = size;
    const iptInstallMs = await restore(kubeProxyRules(set, [], true), false);
    const e = { installMs, iptInstallMs, add: [] as Change[], remove: [] as Change[], iptAdd: [] as number[], iptRemove: [] as number[] };
    perSize[size] = e;
    console.log(`\n${size} services: installed through the state subsystem in ${fmt(installMs, 0)} ms, iptables-restore ${fmt(iptInstallMs, 0)} ms`);
    // Warm-up (JIT, spare tables), then nrd's changes, half before and half after iptables'.
    for (let i = 0; i < 3; i++) {
      const s = freshService();
      await change(() => store.seed(K.service(s.name), text(s)));
      await change(() => void store.delete(K.service(s.name)));
    }
    const nrdRounds = async (n: number): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const s = freshService();
        e.add.push(await change(() => store.seed(K.service(s.name), text(s))));
        e.remove.push(await change(() => void store.delete(K.service(s.name))));
      }
    };
    await nrdRounds(REPS >> 1);
    for (let r = 0; r < IPT_REPS; r++) {
      const extra = freshService();
      e.iptAdd.push(await restore(kubeProxyRules([...set, extra], [], false), true));
      if (size > IPT_CHANGE_MAX) break;
      e.iptRemove.push(await restore(kubeProxyRules(set, [extra], false), true));
    }
    await nrdRounds(REPS - (REPS >> 1));
    const m = (xs: Change[], f: (c: Change) => number): number => median(xs.map(f));
    console.log(`  nrd add    ${fmt(m(e.add, (c) => c.totalMs))} ms median, p90 ${fmt(pct(e.add.map((c) => c.totalMs), 0.9))} (set handed out after ${fmt(m(e.add, (c) => c.toSetMs))} ms; map writes ${fmt(m(e.add, (c) => c.writesMs))} ms, ${m(e.add, (c) => c.writes)} syscalls; state compared ${m(e.add, (c) => c.stateExamined)}, planner compared ${m(e.add, (c) => c.plannerExamined)} and replanned ${m(e.add, (c) => c.replanned)})`);
    console.log(`  nrd remove ${fmt(m(e.remove, (c) => c.totalMs))} ms median, p90 ${fmt(pct(e.remove.map((c) => c.totalMs), 0.9))} (set handed out after ${fmt(m(e.remove, (c) => c.toSetMs))} ms; map writes ${fmt(m(e.remove, (c) => c.writesMs))} ms, ${m(e.remove, (c) => c.writes)} syscalls; state compared ${m(e.remove, (c) => c.stateExamined)}, planner compared ${m(e.remove, (c) => c.plannerExamined)} and replanned ${m(e.remove, (c) => c.replanned)})`);
    console.log(`  iptables-restore --noflush add ${e.iptAdd.map((x) => fmt(x, 1)).join(', ')} ms; remove ${e.iptRemove.map((x) => fmt(x, 1)).join(', ') || '-'} ms`);
  }

  const medians: Record<string, unknown> = {};
  const ratios: Record<string, unknown> = {};
  console.log('\nsize    nrd add/rm ms (write → maps written)   of which map writes ms   iptables add/rm ms     nrd/iptables');
  for (const size of SIZES) {
    const e = perSize[size]!;
    const n = {
      addMs: median(e.add.map((c) => c.totalMs)), removeMs: median(e.remove.map((c) => c.totalMs)),
      addP90Ms: pct(e.add.map((c) => c.totalMs), 0.9), removeP90Ms: pct(e.remove.map((c) => c.totalMs), 0.9),
      addToSetMs: median(e.add.map((c) => c.toSetMs)), removeToSetMs: median(e.remove.map((c) => c.toSetMs)),
      addWritesMs: median(e.add.map((c) => c.writesMs)), removeWritesMs: median(e.remove.map((c) => c.writesMs)),
      addWrites: median(e.add.map((c) => c.writes)), removeWrites: median(e.remove.map((c) => c.writes)),
      stateCompared: median([...e.add, ...e.remove].map((c) => c.stateExamined)),
      plannerCompared: median([...e.add, ...e.remove].map((c) => c.plannerExamined)),
      replanned: median([...e.add, ...e.remove].map((c) => c.replanned)),
      installMs: e.installMs,
    };
    const i = { addMs: e.iptAdd.length ? median(e.iptAdd) : NaN, removeMs: e.iptRemove.length ? median(e.iptRemove) : null, installFlushingMs: e.iptInstallMs };
    const changeN = (n.addMs + n.removeMs) / 2;
    const changeI = i.removeMs === null ? i.addMs : (i.addMs + i.removeMs) / 2;
    const r = { change: changeN / changeI };
    medians[size] = { nrd: n, iptables: i };
    ratios[size] = { 'nrd/iptables': r };
    console.log(`${String(size).padEnd(8)}${fmt(n.addMs)}/${fmt(n.removeMs)}`.padEnd(47) + `${fmt(n.addWritesMs)}/${fmt(n.removeWritesMs)}`.padEnd(25) +
      `${fmt(i.addMs, 1)}/${i.removeMs === null ? '-' : fmt(i.removeMs, 1)}`.padEnd(23) + r.change.toPrecision(2));
  }
  const hi = (medians[SIZES[SIZES.length - 1]!] as { nrd: { addMs: number; removeMs: number } }).nrd;
  console.log(`\nnrd one service change at ${SIZES[SIZES.length - 1]}, etcd event to maps written: ${fmt(hi.addMs)} ms add, ${fmt(hi.removeMs)} ms remove (target < 1 ms)`);
  console.log('machine shared and noisy during this run');

  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(RESULTS, JSON.stringify({
    bench: 'state/service-change',
    date: new Date().toISOString(),
    machine: { kernel: release(), cpus: cpus().length, quiet: false, note: 'shared machine, other jobs running' },
    params: { reps: REPS, sizes: SIZES, maglevTableSize: MAGLEV_M, iptReps: IPT_REPS, iptChangeMax: IPT_CHANGE_MAX, backendsPerService: '2-4', iptables: sh('iptables', ['--version']).trim() },
    method: {
      nrdChange: 'one service key written to (or deleted from) the in-memory store, whose watch event reaches the reflector at once; state subsystem (admission, service set, coalescing tick), onServices → ServicesDatapath.setServices → incremental plan → ServiceMapWriter.apply on pinned nrd_endpoint maps, on this thread; time from the write to setServices resolved. Not included: the datapath worker round trip and etcd\'s put-to-watch latency',
      compared: 'records the state layer compared (stateCompared) and the planner compared / replanned for the change',
      iptablesChange: 'one full iptables-restore --noflush --counters of the kube-proxy rule set (exec included), as a kube-proxy full sync',
    },
    medians,
    ratios,
    targets: { changeUnder1ms: Math.max(hi.addMs, hi.removeMs) < 1 },
    rounds: perSize,
  }, null, 2) + '\n');
  console.log(`results: ${RESULTS}`);
}

await runBench(main, cleanup, children);
// The state subsystem's timers and the store: nothing left to wait for.
process.exit(process.exitCode ?? 0);
