// The Loc-RIB change stream to the routing layer: incremental, coalesced per prefix, batched,
// level-triggered (each change carries the full best/ECMP state of its prefix).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingSink } from '../../../../daemon/bgp/rib/changes.js';
import { attrs, makeRib, peer, update, V4 } from './helpers.js';

function setup(maxPaths = 8) {
  let pendingCalls = 0;
  const rib = makeRib({ maxPaths, onChangesPending: () => pendingCalls++ });
  const sink = new RecordingSink();
  rib.subscribe(sink);
  const a = peer(1, { asn: 65100 });
  const b = peer(2, { asn: 65100 });
  rib.peerUp(a, 0);
  rib.peerUp(b, 0);
  return { rib, sink, a, b, pending: () => pendingCalls };
}

describe('change stream', () => {
  it('one announcement: one change with best and ECMP; nothing before flush', () => {
    const { rib, sink, a, pending } = setup();
    rib.applyUpdate(a.id, update(['10.1.0.0/24'], attrs([65100])), 1);
    assert.equal(sink.changes.length, 0);
    assert.equal(pending(), 1);
    assert.equal(rib.flushChanges(), 1);
    const [c] = sink.changes;
    assert.equal(c!.prefix, '10.1.0.0/24');
    assert.equal(c!.family, V4);
    assert.equal(c!.best!.peerId, a.id);
    assert.deepEqual(c!.ecmp.map((p) => p.peerId), [a.id]);
  });

  it('an update touches only its own prefixes', () => {
    const { rib, sink, a, b } = setup();
    rib.applyUpdate(a.id, update(['10.1.0.0/24', '10.1.1.0/24', '10.1.2.0/24'], attrs([65100])), 1);
    rib.flushChanges();
    sink.clear();
    rib.applyUpdate(b.id, update(['10.1.1.0/24'], attrs([65100])), 2);
    rib.flushChanges();
    assert.deepEqual(sink.changes.map((c) => c.prefix), ['10.1.1.0/24']);
    assert.deepEqual(sink.changes[0]!.ecmp.map((p) => p.peerId), [a.id, b.id]);
  });

  it('coalesces per prefix: several changes between flushes give one, with the final state', () => {
    const { rib, sink, a, b } = setup();
    rib.applyUpdate(a.id, update(['10.1.0.0/24'], attrs([65100], { med: 5 })), 1);
    rib.applyUpdate(b.id, update(['10.1.0.0/24'], attrs([65100], { med: 3 })), 1);
    rib.applyUpdate(a.id, update(['10.1.0.0/24'], attrs([65100], { med: 1 })), 1);
    rib.flushChanges();
    assert.equal(sink.changes.length, 1);
    assert.equal(sink.changes[0]!.best!.peerId, a.id);
    assert.equal(sink.changes[0]!.best!.attrs.med, 1);
  });

  it('A→B→A within one batch delivers nothing', () => {
    const { rib, sink, a, b } = setup(1);
    rib.applyUpdate(a.id, update(['10.1.0.0/24'], attrs([65100])), 1);
    rib.flushChanges();
    sink.clear();
    rib.applyUpdate(b.id, update(['10.1.0.0/24'], attrs([65100])), 2); // b loses (router id)
    rib.applyUpdate(a.id, update([], null, ['10.1.0.0/24']), 2); // b is best
    rib.applyUpdate(a.id, update(['10.1.0.0/24'], attrs([65100])), 2); // a is best again
    rib.applyUpdate(b.id, update([], null, ['10.1.0.0/24']), 2);
    assert.equal(rib.flushChanges(), 0);
    assert.equal(sink.changes.length, 0);
  });

  it('re-announcing identical attributes is no change', () => {
    const { rib, sink, a } = setup();
    rib.applyUpdate(a.id, update(['10.1.0.0/24'], attrs([65100])), 1);
    rib.flushChanges();
    sink.clear();
    rib.applyUpdate(a.id, update(['10.1.0.0/24'], attrs([65100])), 5);
    assert.equal(rib.flushChanges(), 0);
  });

  it('withdrawal of the last path: best null, ECMP empty', () => {
    const { rib, sink, a } = setup();
    rib.applyUpdate(a.id, update(['10.1.0.0/24'], attrs([65100])), 1);
    rib.flushChanges();
    rib.applyUpdate(a.id, update([], null, ['10.1.0.0/24']), 2);
    rib.flushChanges();
    const last = sink.changes.at(-1)!;
    assert.equal(last.best, null);
    assert.deepEqual(last.ecmp, []);
    assert.equal(sink.latest(V4, '10.1.0.0/24'), undefined);
  });

  it('an ECMP-only change (best unchanged) is delivered', () => {
    const { rib, sink, a, b } = setup();
    rib.applyUpdate(a.id, update(['10.1.0.0/24'], attrs([65100])), 1);
    rib.flushChanges();
    sink.clear();
    rib.applyUpdate(b.id, update(['10.1.0.0/24'], attrs([65100])), 2);
    rib.flushChanges();
    assert.equal(sink.changes.length, 1);
    assert.equal(sink.changes[0]!.best!.peerId, a.id);
    assert.equal(sink.changes[0]!.ecmp.length, 2);
  });

  it('delivers in batches of the requested size', () => {
    const { rib, sink, a } = setup();
    const prefixes = Array.from({ length: 10 }, (_, i) => `10.2.${i}.0/24`);
    rib.applyUpdate(a.id, update(prefixes, attrs([65100])), 1);
    assert.equal(rib.flushChanges(4), 10);
    assert.deepEqual(sink.batches.map((b) => b.length), [4, 4, 2]);
  });

  it('onChangesPending fires once per flush cycle', () => {
    const { rib, a, pending } = setup();
    rib.applyUpdate(a.id, update(['10.3.0.0/24', '10.3.1.0/24'], attrs([65100])), 1);
    rib.applyUpdate(a.id, update(['10.3.2.0/24'], attrs([65100])), 1);
    assert.equal(pending(), 1);
    rib.flushChanges();
    rib.applyUpdate(a.id, update(['10.3.3.0/24'], attrs([65100])), 1);
    assert.equal(pending(), 2);
  });

  it('a late subscriber with replay receives the whole table', () => {
    const { rib, a } = setup();
    rib.applyUpdate(a.id, update(['10.4.0.0/24', '10.4.1.0/24'], attrs([65100])), 1);
    rib.flushChanges();
    const late = new RecordingSink();
    const unsubscribe = rib.subscribe(late, { replay: true });
    assert.deepEqual(late.changes.map((c) => c.prefix).sort(), ['10.4.0.0/24', '10.4.1.0/24']);
    unsubscribe();
    rib.applyUpdate(a.id, update(['10.4.2.0/24'], attrs([65100])), 1);
    rib.flushChanges();
    assert.equal(late.changes.length, 2);
  });

  it('prefixes rejected by import policy never reach the stream', () => {
    const { rib, sink, a } = setup();
    const r = rib.applyUpdate(a.id, update(['192.168.0.0/24', '10.5.0.0/24'], attrs([65100])), 1);
    assert.equal(r.accepted, 1);
    assert.equal(r.rejected, 1);
    rib.flushChanges();
    assert.deepEqual(sink.changes.map((c) => c.prefix), ['10.5.0.0/24']);
  });
});
