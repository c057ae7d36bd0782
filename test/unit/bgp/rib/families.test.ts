// Regression: an MP_REACH_NLRI of SAFI 2 (multicast), never negotiated, became a unicast kernel
// route, and its MP_UNREACH deleted the unicast route of the same prefix. RFC 4760 §7 / RFC 7606
// §7.3: NLRI of an AFI/SAFI the session did not negotiate are ignored; every route keeps its family.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RecordingSink } from '../../../../daemon/bgp/rib/changes.js';
import type { UpdateMessage } from '../../../../daemon/bgp/types.js';
import { attrs, makeRib, peer, update, V4, V6 } from './helpers.js';

const PREFIX = '10.244.9.0/24';

function multicast(kind: 'reach' | 'unreach', prefix = PREFIX): UpdateMessage {
  if (kind === 'reach') {
    return { type: 'update', withdrawn: [], attrs: attrs([65101], { nextHop: undefined }), nlri: [], mpReach: { afi: 1, safi: 2, nextHops: ['192.0.2.77'], nlri: [{ prefix }] } };
  }
  return { type: 'update', withdrawn: [], attrs: null, nlri: [], mpUnreach: { afi: 1, safi: 2, withdrawn: [{ prefix }] } };
}

function setup(families = [V4, V6]) {
  const rib = makeRib();
  const sink = new RecordingSink();
  rib.subscribe(sink);
  const a = peer(1, { families });
  rib.peerUp(a, 0);
  rib.applyUpdate(a.id, update([PREFIX], attrs([65101])), 1);
  rib.flushChanges();
  sink.clear();
  return { rib, sink, a };
}

describe('families not negotiated on the session', () => {
  it('a multicast announcement is ignored: no route of any family, reported as unnegotiated', () => {
    const { rib, sink, a } = setup();
    const r = rib.applyUpdate(a.id, multicast('reach', '10.244.10.0/24'), 2);
    rib.flushChanges();
    assert.deepEqual(r.unnegotiated, ['1/2']);
    assert.equal(r.accepted + r.rejected, 0);
    assert.deepEqual(sink.changes, []);
    assert.equal(rib.locRibSize('1/2'), 0);
    assert.equal(rib.candidates(V4, '10.244.10.0/24').length, 0);
  });

  it('a multicast withdrawal of a prefix we hold as unicast leaves the unicast route alone', () => {
    const { rib, sink, a } = setup();
    rib.applyUpdate(a.id, multicast('reach'), 2);
    const r = rib.applyUpdate(a.id, multicast('unreach'), 3);
    rib.flushChanges();
    assert.equal(r.withdrawn, 0);
    assert.deepEqual(sink.changes, []);
    assert.equal(rib.selection(V4, PREFIX).best?.peerId, a.id);
  });

  it('IPv6 unicast from a peer that negotiated IPv4 only is ignored, announcement and withdrawal', () => {
    const { rib, a } = setup([V4]);
    const u6: UpdateMessage = { type: 'update', withdrawn: [], attrs: attrs([65101], { nextHop: undefined }), nlri: [], mpReach: { afi: 2, safi: 1, nextHops: ['2001:db8::7'], nlri: [{ prefix: 'fd00:244:0:9::/64' }] } };
    assert.deepEqual(rib.applyUpdate(a.id, u6, 2).unnegotiated, [V6]);
    assert.equal(rib.locRibSize(V6), 0);
  });

  it('a negotiated family next to an unnegotiated one in the same UPDATE is applied', () => {
    const { rib, a } = setup();
    const both: UpdateMessage = { ...multicast('reach', '10.244.11.0/24'), nlri: [{ prefix: '10.244.12.0/24' }], attrs: attrs([65101]) };
    const r = rib.applyUpdate(a.id, both, 2);
    assert.equal(r.accepted, 1);
    assert.deepEqual(r.unnegotiated, ['1/2']);
    assert.equal(rib.selection(V4, '10.244.12.0/24').best?.peerId, a.id);
    assert.equal(rib.candidates(V4, '10.244.11.0/24').length, 0);
  });
});
