// Benchmark: BFD at 50 ms × 3 while nrd ingests and programs 1M IPv4 routes (the scenario of
// test/integration/bfd/ingest.ts): the real nrd daemon with a BFD session to BIRD 2 (`protocol
// bfd`, `bfd on`), a raw injector sending the routes over another BGP session. Per round, from a
// tcpdump in the peer namespace: the largest and 99th-percentile gap between consecutive BFD
// packets nrd sent and BIRD sent, first with BFD alone (baseline), then during the ingest until
// every route is in the kernel FIB; whether either side's session left Up; RIB and FIB times.
// Both sides jitter their interval to 75–100 % of 50 ms (RFC 5880 §6.8.7); a gap past 150 ms
// is a false Down at the other end. Prints medians and the nrd/BIRD ratios, writes
// bench/results/bfd-under-load.json. Root.
// Usage: node bfd-under-load.bench.js [--rounds N] [--routes N] [--idle SECONDS]
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { Topology } from '../../test/lib/netns.js';
import { ROOT } from '../../test/integration/daemon/harness.js';
import { runBfdIngest, type BfdIngestResult } from '../../test/integration/bfd/ingest.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, routes: { type: 'string', default: '1000000' }, idle: { type: 'string', default: '10' } } });
const ROUNDS = Number(values.rounds);
const ROUTES = Number(values.routes);
const IDLE_S = Number(values.idle);
const BFD = { intervalMs: 50, multiplier: 3 };
const RESULTS = join(ROOT, 'bench', 'results', 'bfd-under-load.json');

const median = (xs: number[]): number => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};
const fmt = (x: number, d = 0): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

async function main(): Promise<void> {
  const rounds: BfdIngestResult[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const topo = new Topology('nrdb-bfdload');
    try {
      const r = await runBfdIngest(topo, { routes: ROUTES, intervalMs: BFD.intervalMs, multiplier: BFD.multiplier, timeoutS: 600, idleS: IDLE_S });
      rounds.push(r);
      console.log(
        `round ${i + 1}/${ROUNDS}: RIB ${fmt(r.ribSeconds, 1)} s, FIB ${fmt(r.fibSeconds, 1)} s; ` +
          `idle gap max nrd ${fmt(r.idle?.nrd.maxGapMs ?? NaN)} / BIRD ${fmt(r.idle?.bird.maxGapMs ?? NaN)} ms; ` +
          `ingest gap max nrd ${fmt(r.nrd.maxGapMs)} (p99 ${fmt(r.nrd.p99GapMs)}) / BIRD ${fmt(r.bird.maxGapMs)} (p99 ${fmt(r.bird.p99GapMs)}) ms; ` +
          `state changes nrd ${r.nrd.changes}, BIRD ${r.bird.changes}`,
      );
    } finally {
      await topo.destroy();
    }
  }
  const m = (f: (r: BfdIngestResult) => number): number => median(rounds.map(f));
  const med = {
    ribSeconds: m((r) => r.ribSeconds),
    fibSeconds: m((r) => r.fibSeconds),
    idle: { nrdMaxGapMs: m((r) => r.idle?.nrd.maxGapMs ?? NaN), birdMaxGapMs: m((r) => r.idle?.bird.maxGapMs ?? NaN) },
    ingest: {
      nrdMaxGapMs: m((r) => r.nrd.maxGapMs),
      nrdP99GapMs: m((r) => r.nrd.p99GapMs),
      birdMaxGapMs: m((r) => r.bird.maxGapMs),
      birdP99GapMs: m((r) => r.bird.p99GapMs),
    },
  };
  const falseDowns = { nrd: rounds.filter((r) => r.nrd.changes > 0).length, bird: rounds.filter((r) => r.bird.changes > 0).length };
  console.log(`\nBFD ${BFD.intervalMs} ms × ${BFD.multiplier} (detection ${BFD.intervalMs * BFD.multiplier} ms) during a ${ROUTES}-route ingest, nrd vs BIRD 2, median of ${ROUNDS} rounds`);
  console.log(`  ingest: RIB ${fmt(med.ribSeconds, 1)} s, kernel FIB ${fmt(med.fibSeconds, 1)} s after Established`);
  console.log(`  largest gap between BFD packets, BFD alone:   nrd ${fmt(med.idle.nrdMaxGapMs)} ms, BIRD ${fmt(med.idle.birdMaxGapMs)} ms`);
  console.log(`  largest gap between BFD packets, during it:   nrd ${fmt(med.ingest.nrdMaxGapMs)} ms (p99 ${fmt(med.ingest.nrdP99GapMs)}), BIRD ${fmt(med.ingest.birdMaxGapMs)} ms (p99 ${fmt(med.ingest.birdP99GapMs)})`);
  console.log(`  ratio largest gap nrd ÷ BIRD during the ingest: ${fmt(med.ingest.nrdMaxGapMs / med.ingest.birdMaxGapMs, 2)}; nrd's largest gap ÷ interval: ${fmt(med.ingest.nrdMaxGapMs / BFD.intervalMs, 2)}`);
  console.log(`  rounds with a session that left Up: nrd ${falseDowns.nrd}/${ROUNDS}, BIRD ${falseDowns.bird}/${ROUNDS}`);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(
    RESULTS,
    JSON.stringify(
      {
        bench: 'routing/bfd-under-load',
        date: new Date().toISOString(),
        machine: { kernel: release(), cpus: cpus().length, quiet: false, note: 'shared machine, other jobs running' },
        params: { rounds: ROUNDS, routes: ROUTES, idleS: IDLE_S, bfd: BFD },
        medians: med,
        ratios: { maxGapNrdOverBird: med.ingest.nrdMaxGapMs / med.ingest.birdMaxGapMs, maxGapNrdOverInterval: med.ingest.nrdMaxGapMs / BFD.intervalMs },
        roundsWithFalseDown: falseDowns,
        rounds,
      },
      null,
      2,
    ) + '\n',
  );
  console.log(`results: ${RESULTS}`);
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
