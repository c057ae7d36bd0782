// Insertion-order independence (property): any interleaving of the same per-(peer, prefix)
// announcement/withdrawal sequences ends in the same Loc-RIB and the same subscriber table.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { PathAttributes } from '../../../../daemon/bgp/types.js';
import type { Rib } from '../../../../daemon/bgp/rib/rib.js';
import { RecordingSink } from '../../../../daemon/bgp/rib/changes.js';
import { attrs, makeRib, peer, update, V4 } from './helpers.js';

const PREFIXES = ['10.1.0.0/24', '10.1.1.0/24', '10.1.2.0/24'];
const PEERS = [
  peer(1, { asn: 65001 }),
  peer(2, { asn: 65001, routerId: '198.51.100.5' }),
  peer(3, { asn: 65002 }),
  peer(4, { type: 'ibgp', routerId: '198.51.100.1' }),
  peer(5, { type: 'ibgp', routerId: '198.51.100.2' }),
];

// A small attribute space so ties at every step are frequent.
const attrsArb: fc.Arbitrary<PathAttributes> = fc
  .record({
    lp: fc.constantFrom(undefined, 100, 200),
    first: fc.constantFrom(65001, 65002),
    len: fc.integer({ min: 0, max: 2 }),
    origin: fc.constantFrom(0, 1) as fc.Arbitrary<0 | 1>,
    med: fc.constantFrom(undefined, 0, 5, 10),
    originator: fc.constantFrom(undefined, '198.51.100.3'),
  })
  .map((r) => {
    const a = attrs([r.first, ...Array.from({ length: r.len }, (_, i) => 64000 + i)], { origin: r.origin });
    if (r.lp !== undefined) a.localPref = r.lp;
    if (r.med !== undefined) a.med = r.med;
    if (r.originator !== undefined) a.originatorId = r.originator;
    return a;
  });

type Op = { kind: 'announce'; attrs: PathAttributes } | { kind: 'withdraw' };
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 3, arbitrary: attrsArb.map((a): Op => ({ kind: 'announce', attrs: a })) },
  { weight: 1, arbitrary: fc.constant<Op>({ kind: 'withdraw' }) },
);

type Scenario = { peer: number; prefix: number; ops: Op[] }[];

/** Per distinct (peer, prefix) key: an ordered list of operations. */
const scenarioArb: fc.Arbitrary<Scenario> = fc.uniqueArray(
  fc.record({
    peer: fc.integer({ min: 0, max: PEERS.length - 1 }),
    prefix: fc.integer({ min: 0, max: 2 }),
    ops: fc.array(opArb, { minLength: 1, maxLength: 3 }),
  }),
  { minLength: 1, maxLength: 15, selector: (s) => `${s.peer}/${s.prefix}` },
);

function apply(rib: Rib, peerIdx: number, prefix: string, op: Op): void {
  const p = PEERS[peerIdx]!;
  if (op.kind === 'announce') rib.applyUpdate(p.id, update([prefix], structuredClone(op.attrs)), 1);
  else rib.applyUpdate(p.id, update([], null, [prefix]), 1);
}

/** Runs the scenario in an interleaving given by `order` (indices into the flattened op list). */
function run(scn: Scenario, keys: number[]): { rib: Rib; sink: RecordingSink } {
  const rib = makeRib({ maxPaths: 4 });
  const sink = new RecordingSink();
  rib.subscribe(sink);
  for (const p of PEERS) rib.peerUp(p, 0);
  const next = scn.map(() => 0);
  for (const k of keys) {
    const s = scn[k]!;
    const op = s.ops[next[k]!++];
    if (op) apply(rib, s.peer, PREFIXES[s.prefix]!, op);
    if (k % 2 === 0) rib.flushChanges(); // flush at arbitrary points too
  }
  rib.flushChanges();
  return { rib, sink };
}

function snapshot(rib: Rib): unknown {
  return PREFIXES.map((prefix) => {
    const s = rib.selection(V4, prefix);
    return { prefix, best: s.best?.peerId ?? null, ecmp: s.ecmp.map((p) => `${p.peerId} ${JSON.stringify(p.attrs)}`) };
  });
}

function sinkView(sink: RecordingSink): unknown {
  return PREFIXES.map((prefix) => {
    const c = sink.latest(V4, prefix);
    return { prefix, best: c?.best?.peerId ?? null, ecmp: c?.ecmp.map((p) => `${p.peerId} ${JSON.stringify(p.attrs)}`) ?? [] };
  });
}

describe('Loc-RIB insertion-order independence', () => {
  it('every interleaving ends in the same Loc-RIB and subscriber table', () => {
    fc.assert(
      fc.property(
        scenarioArb,
        fc.infiniteStream(fc.nat()),
        (scn, rnd) => {
          // The scenario order: each key appears once per op, key after key.
          const sequential = scn.flatMap((s, k) => s.ops.map(() => k));
          // A random interleaving of the same multiset (per-key order is kept by `run`).
          const it = rnd[Symbol.iterator]();
          const shuffled = sequential
            .map((k) => ({ k, r: it.next().value as number }))
            .sort((a, b) => a.r - b.r)
            .map((x) => x.k);
          const a = run(scn, sequential);
          const b = run(scn, shuffled);
          assert.deepEqual(snapshot(b.rib), snapshot(a.rib));
          assert.deepEqual(sinkView(a.sink), snapshot(a.rib));
          assert.deepEqual(sinkView(b.sink), snapshot(b.rib));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('the result equals a RIB fed only each key’s final state', () => {
    fc.assert(
      fc.property(scenarioArb, (scn) => {
        const full = run(scn, scn.flatMap((s, k) => s.ops.map(() => k)));
        // Reference: per (peer, prefix) only the last op counts.
        const rib = makeRib({ maxPaths: 4 });
        for (const p of PEERS) rib.peerUp(p, 0);
        for (const s of scn) apply(rib, s.peer, PREFIXES[s.prefix]!, s.ops[s.ops.length - 1]!);
        assert.deepEqual(snapshot(full.rib), snapshot(rib));
      }),
      { numRuns: 300 },
    );
  });
});
