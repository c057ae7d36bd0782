// ECMP sets: paths equal through the eBGP/iBGP step, capped, in deterministic order, with the
// same-neighbour-AS rule unless as-path relax is on.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingSink } from '../../../../daemon/bgp/rib/changes.js';
import { attrs, ecmpIds, makeRib, peer, update, update6, V4, V6 } from './helpers.js';

const P = '10.244.3.0/24';

describe('ECMP', () => {
  it('equal eBGP paths from the same neighbour AS form a set ordered by router id', () => {
    const rib = makeRib({ maxPaths: 8 });
    const peers = [
      peer(1, { asn: 65100, routerId: '198.51.100.30' }),
      peer(2, { asn: 65100, routerId: '198.51.100.10' }),
      peer(3, { asn: 65100, routerId: '198.51.100.20' }),
    ];
    for (const p of peers) rib.peerUp(p, 0);
    for (const p of peers) rib.applyUpdate(p.id, update([P], attrs([65100], { nextHop: p.address })), 1);
    assert.deepEqual(ecmpIds(rib, V4, P), ['192.0.2.12', '192.0.2.13', '192.0.2.11']);
    assert.deepEqual(
      rib.selection(V4, P).ecmp.map((p) => p.nextHops[0]),
      ['192.0.2.12', '192.0.2.13', '192.0.2.11'],
    );
  });

  it('maxPaths caps the set, keeping the best ones', () => {
    const rib = makeRib({ maxPaths: 2 });
    for (let i = 1; i <= 4; i++) {
      const p = peer(i, { asn: 65100 });
      rib.peerUp(p, 0);
      rib.applyUpdate(p.id, update([P], attrs([65100])), 1);
    }
    assert.deepEqual(ecmpIds(rib, V4, P), ['192.0.2.11', '192.0.2.12']);
  });

  it('maxPaths 1: no multipath', () => {
    const rib = makeRib({ maxPaths: 1 });
    for (let i = 1; i <= 3; i++) {
      const p = peer(i, { asn: 65100 });
      rib.peerUp(p, 0);
      rib.applyUpdate(p.id, update([P], attrs([65100])), 1);
    }
    assert.deepEqual(ecmpIds(rib, V4, P), ['192.0.2.11']);
  });

  it('different neighbour AS: excluded by default, included with as-path relax', () => {
    for (const relax of [false, true]) {
      const rib = makeRib({ maxPaths: 8, asPathRelax: relax });
      const a = peer(1);
      const b = peer(2);
      rib.peerUp(a, 0);
      rib.peerUp(b, 0);
      rib.applyUpdate(a.id, update([P], attrs([65101])), 1);
      rib.applyUpdate(b.id, update([P], attrs([65102])), 1);
      assert.deepEqual(ecmpIds(rib, V4, P), relax ? [a.id, b.id] : [a.id], `relax=${relax}`);
    }
  });

  it('paths lost at an earlier step are not in the set (MED, AS path length)', () => {
    const rib = makeRib({ maxPaths: 8 });
    const ps = [1, 2, 3].map((i) => peer(i, { asn: 65100 }));
    for (const p of ps) rib.peerUp(p, 0);
    rib.applyUpdate(ps[0]!.id, update([P], attrs([65100], { med: 5 })), 1);
    rib.applyUpdate(ps[1]!.id, update([P], attrs([65100], { med: 5 })), 1);
    rib.applyUpdate(ps[2]!.id, update([P], attrs([65100], { med: 6 })), 1);
    assert.deepEqual(ecmpIds(rib, V4, P), [ps[0]!.id, ps[1]!.id]);
    rib.applyUpdate(ps[1]!.id, update([P], attrs([65100, 65100], { med: 5 })), 2);
    assert.deepEqual(ecmpIds(rib, V4, P), [ps[0]!.id]);
  });

  it('eBGP paths exclude iBGP ones; iBGP-only paths form their own set', () => {
    const rib = makeRib({ maxPaths: 8 });
    const i1 = peer(1, { type: 'ibgp' });
    const i2 = peer(2, { type: 'ibgp' });
    const e = peer(3);
    for (const p of [i1, i2, e]) rib.peerUp(p, 0);
    rib.applyUpdate(i1.id, update([P], attrs([])), 1);
    rib.applyUpdate(i2.id, update([P], attrs([])), 1);
    assert.deepEqual(ecmpIds(rib, V4, P), [i1.id, i2.id]);
    rib.applyUpdate(e.id, update([P], attrs([65103])), 2);
    // Shorter AS path wins first here: the iBGP routes (empty path) still beat the eBGP one.
    assert.deepEqual(ecmpIds(rib, V4, P), [i1.id, i2.id]);
    rib.applyUpdate(i1.id, update([P], attrs([65103])), 3);
    rib.applyUpdate(i2.id, update([P], attrs([65103])), 3);
    assert.deepEqual(ecmpIds(rib, V4, P), [e.id]);
  });

  it('IPv6 ECMP keeps each path’s next hops (global, link-local)', () => {
    const rib = makeRib({ maxPaths: 8 });
    const a = peer(1, { asn: 65100 });
    const b = peer(2, { asn: 65100 });
    rib.peerUp(a, 0);
    rib.peerUp(b, 0);
    const a6 = { ...attrs([65100]), nextHop: undefined };
    rib.applyUpdate(a.id, update6(['fd00:244:1::/64'], a6, ['2001:db8::a', 'fe80::a']), 1);
    rib.applyUpdate(b.id, update6(['fd00:244:1::/64'], a6, ['2001:db8::b']), 1);
    const s = rib.selection(V6, 'fd00:244:1::/64');
    assert.deepEqual(s.ecmp.map((p) => [...p.nextHops]), [['2001:db8::a', 'fe80::a'], ['2001:db8::b']]);
  });

  it('changing maxPaths recomputes and publishes the new sets', () => {
    const rib = makeRib({ maxPaths: 1 });
    const sink = new RecordingSink();
    rib.subscribe(sink);
    for (let i = 1; i <= 3; i++) {
      const p = peer(i, { asn: 65100 });
      rib.peerUp(p, 0);
      rib.applyUpdate(p.id, update([P], attrs([65100])), 1);
    }
    rib.flushChanges();
    sink.clear();
    rib.setDecisionOptions({ maxPaths: 3 });
    rib.flushChanges();
    assert.equal(sink.changes.length, 1);
    assert.deepEqual(sink.changes[0]!.ecmp.map((p) => p.peerId), ['192.0.2.11', '192.0.2.12', '192.0.2.13']);
  });

  it('losing an ECMP member shrinks the set; the survivor order is unchanged', () => {
    const rib = makeRib({ maxPaths: 8 });
    const ps = [1, 2, 3].map((i) => peer(i, { asn: 65100 }));
    for (const p of ps) {
      rib.peerUp(p, 0);
      rib.applyUpdate(p.id, update([P], attrs([65100])), 1);
    }
    rib.applyUpdate(ps[0]!.id, update([], null, [P]), 2);
    assert.deepEqual(ecmpIds(rib, V4, P), [ps[1]!.id, ps[2]!.id]);
    rib.applyUpdate(ps[1]!.id, update([], null, [P]), 3);
    assert.deepEqual(ecmpIds(rib, V4, P), [ps[2]!.id]);
    rib.applyUpdate(ps[2]!.id, update([], null, [P]), 4);
    assert.deepEqual(ecmpIds(rib, V4, P), []);
    assert.equal(rib.selection(V4, P).best, null);
  });
});
