// Graceful restart, helper side (RFC 4724 §4.2, RFC 8538): a restarting peer's paths stay
// (stale) in the Loc-RIB and in the kernel output until End-of-RIB or the restart time.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingSink } from '../../../../daemon/bgp/rib/changes.js';
import { attrs, bestId, makeRib, peer, update, update6, V4, V6 } from './helpers.js';

function setup() {
  const rib = makeRib();
  const sink = new RecordingSink();
  rib.subscribe(sink);
  const a = peer(1);
  rib.peerUp(a, 0);
  rib.applyUpdate(a.id, update(['10.1.0.0/24', '10.1.1.0/24'], attrs([65101])), 0);
  const a6 = { ...attrs([65101]), nextHop: undefined };
  rib.applyUpdate(a.id, update6(['fd00:1::/64'], a6, ['2001:db8::11']), 0);
  rib.flushChanges();
  sink.clear();
  return { rib, sink, a };
}

describe('graceful restart helper', () => {
  it('non-graceful down withdraws everything at once', () => {
    const { rib, sink, a } = setup();
    rib.peerDown(a.id, { graceful: false }, 10);
    rib.flushChanges();
    assert.equal(rib.locRibSize(V4), 0);
    assert.equal(rib.locRibSize(V6), 0);
    assert.equal(sink.changes.length, 3);
    assert.ok(sink.changes.every((c) => c.best === null));
    assert.deepEqual(rib.knownPeers(), []);
  });

  it('graceful down keeps paths as stale, in the Loc-RIB and with no change to the kernel', () => {
    const { rib, sink, a } = setup();
    rib.peerDown(a.id, { graceful: true, restartTime: 120 }, 1000);
    assert.equal(rib.flushChanges(), 0);
    assert.equal(sink.changes.length, 0);
    assert.equal(bestId(rib, V4, '10.1.0.0/24'), a.id);
    assert.ok(rib.selection(V4, '10.1.0.0/24').best!.stale);
    assert.equal(rib.peerCounts(a.id, V4).stale, 2);
    assert.equal(rib.nextStaleDeadline(), 1000 + 120_000);
  });

  it('re-announced paths lose the stale mark; End-of-RIB sweeps the rest of that family only', () => {
    const { rib, sink, a } = setup();
    rib.peerDown(a.id, { graceful: true, restartTime: 120 }, 1000);
    rib.peerUp(a, 2000);
    rib.applyUpdate(a.id, update(['10.1.0.0/24'], attrs([65101])), 2100);
    assert.equal(rib.selection(V4, '10.1.0.0/24').best!.stale, false);
    assert.equal(rib.flushChanges(), 0, 'same route again: nothing for the kernel');
    const r = rib.applyUpdate(a.id, update([], null), 2200); // IPv4 End-of-RIB
    assert.equal(r.endOfRib, V4);
    rib.flushChanges();
    assert.deepEqual(sink.changes.map((c) => [c.prefix, c.best]), [['10.1.1.0/24', null]]);
    // IPv6 still stale until its own End-of-RIB (an empty MP_UNREACH)
    assert.ok(rib.selection(V6, 'fd00:1::/64').best!.stale);
    assert.ok(rib.selection(V6, 'fd00:1::/64').best!.stale, 'the IPv4 End-of-RIB left IPv6 alone');
    const eor6 = rib.applyUpdate(a.id, { type: 'update', withdrawn: [], attrs: null, nlri: [], mpUnreach: { afi: 2, safi: 1, withdrawn: [] } }, 2300);
    assert.equal(eor6.endOfRib, V6);
    assert.equal(rib.selection(V6, 'fd00:1::/64').best, null);
    assert.equal(rib.nextStaleDeadline(), null);
  });

  it('restart timer: sweepExpired removes what is still stale once the deadline passes', () => {
    const { rib, sink, a } = setup();
    rib.peerDown(a.id, { graceful: true, restartTime: 5 }, 1000);
    assert.equal(rib.sweepExpired(5999), 0);
    assert.equal(rib.locRibSize(V4), 2);
    assert.equal(rib.sweepExpired(6000), 3);
    rib.flushChanges();
    assert.equal(rib.locRibSize(V4), 0);
    assert.equal(sink.changes.length, 3);
    assert.deepEqual(rib.knownPeers(), []);
    assert.equal(rib.nextStaleDeadline(), null);
  });

  it('after re-establishment, a missing End-of-RIB is bounded by the stale time', () => {
    const { rib, a } = setup();
    rib.peerDown(a.id, { graceful: true, restartTime: 5 }, 1000);
    rib.peerUp(a, 3000, { staleTime: 60 });
    assert.equal(rib.sweepExpired(6000), 0, 'restart timer stopped by the new session');
    assert.equal(rib.nextStaleDeadline(), 63_000);
    assert.equal(rib.sweepExpired(63_000), 3);
  });

  it('families without preserved forwarding state are withdrawn at once (down and up)', () => {
    const { rib, a } = setup();
    rib.peerDown(a.id, { graceful: true, restartTime: 120, families: [V4] }, 1000);
    assert.equal(rib.locRibSize(V6), 0);
    assert.equal(rib.locRibSize(V4), 2);
    rib.peerUp(a, 2000, { preservedFamilies: [] });
    assert.equal(rib.locRibSize(V4), 0);
  });

  it('stale paths keep losing to fresh ones normally and come back if the fresh one goes', () => {
    const { rib, a } = setup();
    const b = peer(2, { asn: 65101 });
    rib.peerUp(b, 0);
    rib.peerDown(a.id, { graceful: true, restartTime: 120 }, 1000);
    rib.applyUpdate(b.id, update(['10.1.0.0/24'], attrs([65101])), 1100);
    // a (192.0.2.11, router id .11) still wins the tie-break even while stale (RFC 4724 §4.2:
    // stale routes are used as before).
    assert.equal(bestId(rib, V4, '10.1.0.0/24'), a.id);
    rib.endOfRib(a.id, V4);
    assert.equal(bestId(rib, V4, '10.1.0.0/24'), b.id);
  });

  it('a restarted peer with a new router id re-runs the decision for its paths', () => {
    const { rib, a } = setup();
    const b = peer(2, { asn: 65101, routerId: '198.51.100.50' });
    rib.peerUp(b, 0);
    rib.applyUpdate(b.id, update(['10.1.0.0/24'], attrs([65101])), 1);
    assert.equal(bestId(rib, V4, '10.1.0.0/24'), a.id);
    rib.peerDown(a.id, { graceful: true, restartTime: 120 }, 1000);
    rib.peerUp({ ...a, routerId: '198.51.100.99' }, 2000);
    assert.equal(bestId(rib, V4, '10.1.0.0/24'), b.id);
  });
});
