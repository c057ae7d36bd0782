// nrd-test: solo (a million routes through the kernel on 2 cores: run alone, see scripts/run-tests.mjs)
// No false BFD Down under a million-route ingest: the real nrd daemon runs a BFD session at
// 50 ms × 3 with BIRD (its `protocol bfd`, `bfd on` on the BGP session) while a raw injector sends
// 1M IPv4 routes over another BGP session and nrd takes them into its RIB and programs them all
// into the kernel FIB. The session must stay Up the whole time on both ends: nrd's session view
// (stateChanges) and nrd_bfd_state_changes_total, and BIRD's `show bfd sessions` (state, Since).
// The BFD packets run on nrd's worker thread, not on the event loop that the ingest keeps busy.
// NRDT_INGEST_ROUTES overrides the route count (a quick local run).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { Topology } from '../../lib/netns.js';
import { runBfdIngest } from './ingest.js';

const ROUTES = Number(process.env.NRDT_INGEST_ROUTES ?? 1_000_000);
const topo = new Topology('nrdt-bfd-ingest');
after(() => topo.destroy());

test(`${ROUTES} routes ingested and programmed while BFD runs at 50 ms × 3: no false Down on either end`, { timeout: 420_000 }, async () => {
  const r = await runBfdIngest(topo, { routes: ROUTES, intervalMs: 50, multiplier: 3, timeoutS: 360 }, (s) => process.stdout.write(`#${s}\n`));
  process.stdout.write(
    `# ${r.routes} routes: RIB ${r.ribSeconds.toFixed(1)} s, FIB ${r.fibSeconds.toFixed(1)} s after Established; ` +
      `largest gap between BFD packets nrd ${r.nrd.maxGapMs.toFixed(0)} ms (p99 ${r.nrd.p99GapMs.toFixed(0)}, ${r.nrd.packets} packets), ` +
      `BIRD ${r.bird.maxGapMs.toFixed(0)} ms (p99 ${r.bird.p99GapMs.toFixed(0)}, ${r.bird.packets} packets); FIB probe ${r.probeMs.toFixed(0)} ms, steal ${r.stealMs} ms; nrd ${JSON.stringify(r.nrd)}, BIRD ${JSON.stringify(r.bird)}\n`,
  );
  assert.ok(r.fibRoutes >= r.routes, `FIB holds ${r.fibRoutes}`);
  assert.equal(r.rtThreads, 1, 'the BFD worker thread runs SCHED_RR');
  if (availableParallelism() >= 2) {
    // The BFD thread on a CPU of its own, the route writer thread (the only other one pinned) not on it.
    assert.equal(r.bfdCpus.length, 1, `BFD thread CPUs ${JSON.stringify(r.bfdCpus)}`);
    const all = Math.max(...r.threadCpus.map((c) => c.length));
    assert.ok(r.threadCpus.some((c) => c.length === all - 1 && !c.includes(r.bfdCpus[0]!)), `no thread keeps off the BFD CPU: ${JSON.stringify(r.threadCpus)}`);
  }
  assert.equal(r.nrd.state, 'Up');
  assert.equal(r.nrd.changes, 0, 'nrd: the session never left Up');
  assert.equal(r.nrd.changeTotal, 0, 'nrd_bfd_state_changes_total: no state change during the run');
  assert.equal(r.bird.state, 'Up');
  assert.equal(r.bird.sinceAfter, r.bird.sinceBefore, 'BIRD: the session never left Up');
  // Both sides sent all along (a capture that saw nothing would prove nothing).
  assert.ok(r.nrd.packets > r.fibSeconds * 10, `nrd sent ${r.nrd.packets} BFD packets`);
  assert.ok(r.bird.packets > r.fibSeconds * 10, `BIRD sent ${r.bird.packets} BFD packets`);
});
