// The codec keeps every NLRI's AFI/SAFI (RFC 4760): a multicast (SAFI 2) MP_REACH_NLRI never turns
// into unicast, not even through RFC 7606 treat-as-withdraw. Regression for multicast NLRI that
// became unicast kernel routes (whether a family was negotiated is the RIB's check: rib/families).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeMessage } from '../../../../daemon/bgp/wire/index.js';
import type { UpdateMessage } from '../../../../daemon/bgp/types.js';
import { ctxOf } from './helpers.js';

const mixed: UpdateMessage = {
  type: 'update',
  withdrawn: [],
  attrs: { origin: 0, asPath: [{ type: 2, asns: [65000] }], nextHop: '192.0.2.2' },
  nlri: [{ prefix: '10.244.12.0/24' }],
  mpReach: { afi: 1, safi: 2, nextHops: ['192.0.2.2'], nlri: [{ prefix: '10.244.10.0/24' }] },
};

function decodeUpdate(bytes: Uint8Array): UpdateMessage {
  const r = decodeMessage(bytes, ctxOf());
  assert.ok(r.ok && r.message.type === 'update', r.ok ? 'not an UPDATE' : r.error.reason);
  return r.message as UpdateMessage;
}

test('MP_REACH_NLRI of SAFI 2 decodes as SAFI 2, apart from the unicast NLRI of the same UPDATE', () => {
  const m = decodeUpdate(encodeMessage(mixed, ctxOf()));
  assert.deepEqual(m.mpReach && { afi: m.mpReach.afi, safi: m.mpReach.safi, nlri: m.mpReach.nlri.map((n) => n.prefix) }, { afi: 1, safi: 2, nlri: ['10.244.10.0/24'] });
  assert.deepEqual(m.nlri.map((n) => n.prefix), ['10.244.12.0/24']);
});

test('treat-as-withdraw (bad ORIGIN) withdraws the multicast NLRI as multicast, never as unicast', () => {
  const bytes = encodeMessage(mixed, ctxOf());
  // Header (19), withdrawn length 0 (2), attributes length (2), then attributes: flags, type,
  // length (2 octets with the extended-length flag 0x10), value.
  let at = 23;
  while (bytes[at + 1] !== 1) at += (bytes[at]! & 0x10 ? 4 + ((bytes[at + 2]! << 8) | bytes[at + 3]!) : 3 + bytes[at + 2]!);
  assert.equal(bytes[at + 2], 1, 'ORIGIN has length 1');
  bytes[at + 3] = 7; // undefined ORIGIN value: treat-as-withdraw (RFC 7606 §7.1)
  const m = decodeUpdate(bytes);
  assert.equal(m.attrs, null);
  assert.deepEqual(m.withdrawn.map((n) => n.prefix), ['10.244.12.0/24']);
  assert.deepEqual(m.mpUnreach && { afi: m.mpUnreach.afi, safi: m.mpUnreach.safi, withdrawn: m.mpUnreach.withdrawn.map((n) => n.prefix) }, { afi: 1, safi: 2, withdrawn: ['10.244.10.0/24'] });
});
