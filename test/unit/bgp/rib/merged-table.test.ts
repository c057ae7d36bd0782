// The merged Adj-RIB-In/Loc-RIB table and its change records: a prefix removed and re-added,
// replaced several times, or moved between one and several candidates within one flush cycle is
// delivered once with its final state (or not at all when that equals what subscribers saw);
// per-peer views and counts stay exact without per-peer tables.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { RecordingSink } from '../../../../daemon/bgp/rib/changes.js';
import { Path, samePath } from '../../../../daemon/bgp/rib/path.js';
import { shortKeyV4 } from '../../../../daemon/bgp/rib/loc-rib.js';
import type { UpdateMessage } from '../../../../daemon/bgp/types.js';
import { attrs, makeRib, peer, update, V4 } from './helpers.js';

const P = '10.1.0.0/24';

function setup(maxPaths = 8) {
  const rib = makeRib({ maxPaths });
  const sink = new RecordingSink();
  rib.subscribe(sink);
  const a = peer(1, { asn: 65100 });
  const b = peer(2, { asn: 65100 });
  rib.peerUp(a, 0);
  rib.peerUp(b, 0);
  return { rib, sink, a, b };
}

describe('merged table change records', () => {
  it('withdrawn and re-announced before a flush: no change when equal to what was seen', () => {
    const { rib, sink, a } = setup();
    // A second prefix keeps the attribute set interned: equality is by interned identity.
    rib.applyUpdate(a.id, update([P, '10.9.0.0/24'], attrs([65100])), 1);
    rib.flushChanges();
    sink.clear();
    rib.applyUpdate(a.id, update([], null, [P]), 2);
    rib.applyUpdate(a.id, update([P], attrs([65100])), 3);
    assert.equal(rib.flushChanges(), 0);
  });

  it('withdrawn and re-announced with other attributes: one change with the final state', () => {
    const { rib, sink, a } = setup();
    rib.applyUpdate(a.id, update([P], attrs([65100])), 1);
    rib.flushChanges();
    sink.clear();
    rib.applyUpdate(a.id, update([], null, [P]), 2);
    rib.applyUpdate(a.id, update([P], attrs([65100], { med: 7 })), 3);
    assert.equal(rib.flushChanges(), 1);
    assert.equal(sink.changes[0]!.best!.attrs.med, 7);
  });

  it('new, withdrawn, re-announced, withdrawn again before any flush: nothing', () => {
    const { rib, a } = setup();
    rib.applyUpdate(a.id, update([P], attrs([65100])), 1);
    rib.applyUpdate(a.id, update([], null, [P]), 2);
    rib.applyUpdate(a.id, update([P], attrs([65100], { med: 1 })), 3);
    rib.applyUpdate(a.id, update([], null, [P]), 4);
    assert.equal(rib.flushChanges(), 0);
  });

  it('one candidate → two → one within a cycle: one change, ECMP as it ends', () => {
    const { rib, sink, a, b } = setup();
    rib.applyUpdate(a.id, update([P], attrs([65100])), 1);
    rib.flushChanges();
    sink.clear();
    rib.applyUpdate(b.id, update([P], attrs([65100])), 2);
    rib.applyUpdate(a.id, update([], null, [P]), 3);
    assert.equal(rib.flushChanges(), 1);
    assert.deepEqual(sink.changes[0]!.ecmp.map((p) => p.peerId), [b.id]);
  });

  it('a delivered ECMP list is a snapshot: later changes do not alter it', () => {
    const { rib, sink, a, b } = setup();
    rib.applyUpdate(a.id, update([P], attrs([65100])), 1);
    rib.applyUpdate(b.id, update([P], attrs([65100])), 1);
    rib.flushChanges();
    const first = sink.changes[0]!;
    assert.equal(first.ecmp.length, 2);
    rib.applyUpdate(b.id, update([], null, [P]), 2);
    rib.flushChanges();
    assert.equal(first.ecmp.length, 2);
    assert.equal(sink.changes.at(-1)!.ecmp.length, 1);
  });

  it('the same route re-announced is refreshed in place: not stale, newer, same references', () => {
    const { rib, sink, a } = setup();
    rib.applyUpdate(a.id, update([P], attrs([65100])), 1);
    rib.flushChanges();
    sink.clear();
    const before = rib.selection(V4, P).best!;
    rib.beginRouteRefresh(a.id, V4);
    assert.equal(before.stale, true);
    rib.applyUpdate(a.id, update([P], attrs([65100])), 9);
    const after = rib.selection(V4, P).best!;
    assert.equal(after, before);
    assert.equal(after.stale, false);
    assert.equal(after.learnedAt, 9);
    assert.equal(rib.peerCounts(a.id, V4).stale, 0);
    assert.equal(rib.attrs.refsOf(after.attrs), 1);
    assert.equal(rib.endRouteRefresh(a.id, V4), 0);
    assert.equal(rib.flushChanges(), 0);
  });

  it('per-peer views and counts come from the shared table', () => {
    const { rib, a, b } = setup();
    rib.applyUpdate(a.id, update(['10.1.0.0/24', '10.1.1.0/24', '192.168.0.0/24'], attrs([65100])), 1);
    rib.applyUpdate(b.id, update(['10.1.1.0/24'], attrs([65100])), 1);
    assert.deepEqual(rib.adjRibIn(a.id, V4).map((p) => p.prefix).sort(), ['10.1.0.0/24', '10.1.1.0/24']);
    assert.deepEqual(rib.adjRibIn(a.id, V4, 'rejected').map((p) => p.prefix), ['192.168.0.0/24']);
    assert.deepEqual(rib.adjRibIn(b.id, V4).map((p) => p.prefix), ['10.1.1.0/24']);
    assert.deepEqual(rib.peerCounts(a.id, V4), { accepted: 2, rejected: 1, stale: 0, advertised: 0 });
    rib.peerDown(a.id, { graceful: false }, 2);
    assert.equal(rib.locRibSize(V4), 1);
    assert.deepEqual(rib.candidates(V4, '10.1.1.0/24').map((p) => p.peerId), [b.id]);
    assert.equal(rib.attrs.refsOf(rib.adjRibIn(b.id, V4)[0]!.attrs), 1);
  });

  it('a rejected path turned accepted by a new announcement leaves the rejected view', () => {
    const rib = makeRib();
    const a = peer(1);
    rib.peerUp(a, 0);
    rib.applyUpdate(a.id, update([P], attrs([65101, 65000])), 1); // AS loop: rejected
    assert.equal(rib.peerCounts(a.id, V4).rejected, 1);
    rib.applyUpdate(a.id, update([P], attrs([65101])), 2);
    assert.deepEqual(rib.peerCounts(a.id, V4), { accepted: 1, rejected: 0, stale: 0, advertised: 0 });
    assert.equal(rib.attrs.size, 1, 'the rejected set was released');
  });

  it('random announce/withdraw sequences: the subscriber ends with the table, references are exact', () => {
    const prefixes = ['10.0.0.0/24', '10.0.1.0/24', '10.0.2.0/24'];
    const op = fc.record({
      peer: fc.integer({ min: 0, max: 2 }),
      prefix: fc.constantFrom(...prefixes),
      med: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
      withdraw: fc.boolean(),
      flush: fc.boolean(),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const rib = makeRib({ maxPaths: 2 });
        const sink = new RecordingSink();
        rib.subscribe(sink);
        const peers = [peer(1, { asn: 65100 }), peer(2, { asn: 65100 }), peer(3, { asn: 65100 })];
        for (const p of peers) rib.peerUp(p, 0);
        let t = 1;
        for (const o of ops) {
          const id = peers[o.peer]!.id;
          if (o.withdraw) rib.applyUpdate(id, update([], null, [o.prefix]), t++);
          else rib.applyUpdate(id, update([o.prefix], attrs([65100], { med: o.med })), t++);
          if (o.flush) rib.flushChanges();
        }
        rib.flushChanges();
        for (const prefix of prefixes) {
          const sel = rib.selection(V4, prefix);
          const seen = sink.latest(V4, prefix);
          assert.ok(samePath(seen?.best ?? null, sel.best), prefix);
          assert.equal(seen?.ecmp.length ?? 0, sel.ecmp.length);
          for (let i = 0; i < sel.ecmp.length; i++) assert.ok(samePath(seen!.ecmp[i]!, sel.ecmp[i]!));
        }
        let paths = 0;
        for (const p of peers) paths += rib.adjRibIn(p.id, V4).length;
        let refs = 0;
        const sets = new Set(peers.flatMap((p) => rib.adjRibIn(p.id, V4).map((x) => x.attrs)));
        for (const s of sets) refs += rib.attrs.refsOf(s);
        assert.equal(refs, paths);
        assert.equal(rib.attrs.size, sets.size);
        // A second flush has nothing to say.
        assert.equal(rib.flushChanges(), 0);
      }),
      { numRuns: 300 },
    );
  });
});

describe('table keys', () => {
  it('canonical IPv4 prefixes up to /24 get a small-integer key; anything else keeps its text', () => {
    assert.equal(shortKeyV4('10.1.2.0/24'), (24 << 24) | (10 << 16) | (1 << 8) | 2);
    assert.equal(shortKeyV4('0.0.0.0/0'), 0);
    assert.equal(shortKeyV4('255.255.255.0/24'), (24 << 24) | 0xffffff);
    assert.equal(shortKeyV4('10.0.0.0/8'), (8 << 24) | (10 << 16));
    for (const t of ['10.1.2.0/25', '10.1.2.1/24', '10.1.2.0/32', '010.1.2.0/24', '10.1.2.00/24', '10.1.2.0/024', '10.1.2.0/', '10.1.2.0',
      '10.1.1.0/23', '256.1.2.0/24', '10.1.2/24', 'fd00::/8', '10.1.2.0/24 ', '1.2.3.4.0/24']) {
      assert.equal(shortKeyV4(t), -1, t);
    }
  });

  it('prefixes of every kind share one table: /24 and shorter, longer, and non-canonical text', () => {
    const rib = makeRib({ import: { ranges: [{ prefix: '0.0.0.0/0', maxLength: 32 }] } });
    const a = peer(1);
    rib.peerUp(a, 0);
    const prefixes = ['10.0.0.0/8', '10.1.2.0/24', '10.1.2.128/25', '10.1.2.1/32', '0.0.0.0/0'];
    rib.applyUpdate(a.id, update(prefixes, attrs([65101])), 1);
    assert.equal(rib.locRibSize(V4), 5);
    for (const p of prefixes) assert.equal(rib.selection(V4, p).best?.prefix, p);
    assert.equal(rib.selection(V4, '010.1.2.0/24').best, null, 'lookups are by canonical text only');
    assert.deepEqual([...rib.bestRoutes(V4)].map(([p]) => p).sort(), [...prefixes].sort());
    rib.applyUpdate(a.id, update([], null, ['10.1.2.1/32', '10.1.2.0/24']), 2);
    assert.deepEqual([...rib.bestRoutes(V4)].map(([p]) => p).sort(), ['0.0.0.0/0', '10.0.0.0/8', '10.1.2.128/25']);
  });
});

describe('path identifiers', () => {
  it('any 32-bit RFC 7911 path id round-trips, with the stale mark independent of it', () => {
    for (const id of [0, 1, 2 ** 27 - 1, 2 ** 27, 2 ** 31, 2 ** 32 - 1]) {
      const p = new Path(P, id, peer(1), attrs([65101]), ['192.0.2.99'], 0, true);
      assert.equal(p.pathId, id);
      assert.equal(p.stale, true);
      p.stale = false;
      assert.equal(p.pathId, id);
      assert.equal(p.stale, false);
    }
  });

  it('large path ids from an add-path peer are separate candidates, withdrawn by id', () => {
    const rib = makeRib();
    const r = peer(1, { type: 'ibgp' });
    rib.peerUp(r, 0);
    const ids = [5, 2 ** 32 - 1];
    const u = (id: number, nh: string): UpdateMessage => ({
      type: 'update',
      withdrawn: [],
      attrs: attrs([], { nextHop: nh }),
      nlri: [{ prefix: P, pathId: id }],
    });
    rib.applyUpdate(r.id, u(ids[0]!, '192.0.2.51'), 1);
    rib.applyUpdate(r.id, u(ids[1]!, '192.0.2.52'), 1);
    assert.deepEqual(rib.candidates(V4, P).map((p) => p.pathId).sort(), [...ids].sort());
    rib.applyUpdate(r.id, { type: 'update', withdrawn: [{ prefix: P, pathId: 2 ** 32 - 1 }], attrs: null, nlri: [] }, 2);
    assert.deepEqual(rib.candidates(V4, P).map((p) => p.pathId), [5]);
  });
});
