// Attribute interning: equal attribute sets share one frozen object; references are counted and
// the last release frees the set.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { attributesInterner, attributesKey } from '../../../../daemon/bgp/rib/intern.js';
import { attrs, makeRib, peer, update, V4 } from './helpers.js';

describe('attribute interning', () => {
  it('equal attributes from different UPDATEs and peers share one frozen object', () => {
    const rib = makeRib();
    const a = peer(1);
    const b = peer(2);
    rib.peerUp(a, 0);
    rib.peerUp(b, 0);
    rib.applyUpdate(a.id, update(['10.0.1.0/24', '10.0.2.0/24'], attrs([65000 + 7], { communities: [1, 2] })), 1);
    rib.applyUpdate(b.id, update(['10.0.3.0/24'], attrs([65000 + 7], { communities: [1, 2] })), 1);
    const [p1, p2] = rib.adjRibIn(a.id, V4);
    const [p3] = rib.adjRibIn(b.id, V4);
    assert.ok(p1!.attrs === p2!.attrs && p2!.attrs === p3!.attrs);
    assert.ok(Object.isFrozen(p1!.attrs));
    assert.ok(Object.isFrozen(p1!.attrs.asPath) && Object.isFrozen(p1!.attrs.asPath[0]!.asns));
    assert.ok(Object.isFrozen(p1!.attrs.communities));
    assert.equal(rib.attrs.refsOf(p1!.attrs), 3);
    assert.equal(rib.attrs.size, 1);
    // next-hop lists are interned too
    assert.ok(p1!.nextHops === p3!.nextHops);
  });

  it('the decoder’s object is not kept or frozen (only a copy is)', () => {
    const rib = makeRib();
    const a = peer(1);
    rib.peerUp(a, 0);
    const raw = attrs([65101]);
    rib.applyUpdate(a.id, update(['10.0.1.0/24'], raw), 1);
    assert.ok(!Object.isFrozen(raw));
    assert.notEqual(rib.adjRibIn(a.id, V4)[0]!.attrs, raw);
    assert.deepEqual(rib.adjRibIn(a.id, V4)[0]!.attrs, raw);
  });

  it('replacing and withdrawing routes releases references; unused sets are freed', () => {
    const rib = makeRib();
    const a = peer(1);
    rib.peerUp(a, 0);
    rib.applyUpdate(a.id, update(['10.0.1.0/24', '10.0.2.0/24'], attrs([65101], { med: 1 })), 1);
    const first = rib.adjRibIn(a.id, V4)[0]!.attrs;
    assert.equal(rib.attrs.refsOf(first), 2);
    rib.applyUpdate(a.id, update(['10.0.1.0/24'], attrs([65101], { med: 2 })), 2);
    assert.equal(rib.attrs.refsOf(first), 1);
    assert.equal(rib.attrs.size, 2);
    rib.applyUpdate(a.id, update([], null, ['10.0.2.0/24']), 3);
    assert.equal(rib.attrs.refsOf(first), 0);
    assert.equal(rib.attrs.isInterned(first), false);
    assert.equal(rib.attrs.size, 1);
    rib.peerDown(a.id, { graceful: false }, 4);
    assert.equal(rib.attrs.size, 0);
    assert.equal(rib.nextHops.size, 0);
  });

  it('an UPDATE whose prefixes are all rejected leaves nothing interned (keepRejected off)', () => {
    const rib = makeRib({ keepRejected: false });
    const a = peer(1);
    rib.peerUp(a, 0);
    rib.applyUpdate(a.id, update(['192.168.0.0/24'], attrs([65101])), 1);
    assert.equal(rib.attrs.size, 0);
  });

  it('advertised routes are interned and released with the session', () => {
    const rib = makeRib({ export: { originate: [{ prefix: '10.244.1.0/24' }] } });
    const a = peer(1);
    const b = peer(2);
    rib.peerUp(a, 0);
    rib.peerUp(b, 0);
    const ra = rib.adjRibOut(a.id, V4)[0]![1];
    const rb = rib.adjRibOut(b.id, V4)[0]![1];
    assert.equal(ra, rb, 'same exported attributes → one shared object');
    assert.equal(rib.outRoutes.refsOf(ra), 2);
    rib.peerDown(a.id, { graceful: false }, 1);
    assert.equal(rib.outRoutes.refsOf(ra), 1);
    rib.peerDown(b.id, { graceful: false }, 1);
    assert.equal(rib.outRoutes.size, 0);
  });

  it('the key tells absent lists from empty ones and respects every field', () => {
    const base = attrs([1, 2]);
    const keys = new Set([
      attributesKey(base),
      attributesKey({ ...base, communities: [] }),
      attributesKey({ ...base, communities: [1] }),
      attributesKey({ ...base, med: 0 }),
      attributesKey({ ...base, localPref: 0 }),
      attributesKey({ ...base, origin: 1 }),
      attributesKey({ ...base, asPath: [{ type: 1, asns: [1, 2] }] }),
      attributesKey({ ...base, asPath: [{ type: 2, asns: [1] }, { type: 2, asns: [2] }] }),
      attributesKey({ ...base, nextHop: '192.0.2.1' }),
      attributesKey({ ...base, atomicAggregate: true }),
      attributesKey({ ...base, aggregator: { asn: 1, address: '192.0.2.1' } }),
      attributesKey({ ...base, originatorId: '192.0.2.1' }),
      attributesKey({ ...base, clusterList: [] }),
      attributesKey({ ...base, extCommunities: ['0002fde800000064'] }),
      attributesKey({ ...base, largeCommunities: [{ global: 1, local1: 2, local2: 3 }] }),
      attributesKey({ ...base, unknown: [{ flags: 0xc0, type: 99, value: Uint8Array.of(1) }] }),
      attributesKey({ ...base, unknown: [{ flags: 0xc0, type: 99, value: Uint8Array.of(2) }] }),
    ]);
    assert.equal(keys.size, 17);
    assert.equal(attributesKey({ ...base, med: undefined }), attributesKey(base));
  });

  it('releasing a value that is not interned is a programming error', () => {
    const i = attributesInterner();
    assert.throws(() => i.release(attrs([])), /not interned/);
    const v = i.intern(attrs([]));
    i.release(v);
    assert.throws(() => i.release(v), /not interned/);
  });
});
