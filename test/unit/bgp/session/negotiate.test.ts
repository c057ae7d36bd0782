// The daemon's one OPEN negotiation (session/negotiate.ts, RFC 4271 §6.2, RFC 5492, RFC 6793,
// RFC 6286, RFC 7911, RFC 8654); moved here from the codec, which kept only encode/decode.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { negotiate } from '../../../../daemon/bgp/session/negotiate.js';
import { sessionConfig } from '../../../../daemon/bgp/session/config.js';
import { emptyCapabilities } from '../../../../daemon/bgp/wire/index.js';
import type { OpenMessage } from '../../../../daemon/bgp/types.js';

const open = (over: Partial<OpenMessage> = {}, caps: Partial<OpenMessage['capabilities']> = {}): OpenMessage => ({
  type: 'open', version: 4, myAs: 23456, holdTime: 90, bgpId: '192.0.2.2',
  capabilities: { ...emptyCapabilities(), multiprotocol: [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }], ...caps }, ...over,
});

const cfg = (over: Parameters<typeof sessionConfig>[0] extends infer B ? Partial<B> : never = {}) =>
  sessionConfig({ localAs: 65001, peerAs: 4200000000, localId: '192.0.2.1', ...over });

test('negotiate: the real peer AS is the four-octet capability; a mismatch is OPEN error 2/2', () => {
  const o = open({}, { fourOctetAs: 4200000000 });
  const r = negotiate(cfg(), o);
  assert.ok(r.ok);
  assert.equal(r.negotiated.peerAs, 4200000000);
  const bad = negotiate(cfg({ peerAs: 65002 }), o);
  assert.ok(!bad.ok);
  assert.deepEqual([bad.error.code, bad.error.subcode], [2, 2]);
});

test('negotiate: our own identifier is refused from an iBGP peer only (RFC 6286 §2.2); hold 1 or 2 s refused', () => {
  const o = open({ myAs: 65001, bgpId: '192.0.2.1' }, { fourOctetAs: 65001 });
  const ibgp = negotiate(cfg({ peerAs: 65001 }), o);
  assert.ok(!ibgp.ok);
  assert.equal(ibgp.error.subcode, 3);
  const ebgp = negotiate(cfg({ peerAs: 65001, localAs: 65000 }), o);
  assert.ok(ebgp.ok);
  const hold = negotiate(cfg(), open({ holdTime: 2 }, { fourOctetAs: 4200000000 }));
  assert.ok(!hold.ok);
  assert.equal(hold.error.subcode, 6);
});

test('negotiate: four-octet AS, extended message and add-path directions', () => {
  const local = cfg({
    extendedMessage: true,
    addPath: [{ afi: 1, safi: 1, mode: 1 }, { afi: 2, safi: 1, mode: 3 }],
  });
  const remote = open({}, { fourOctetAs: 4200000000, addPath: [{ afi: 1, safi: 1, mode: 2 }, { afi: 2, safi: 1, mode: 1 }] });
  const r = negotiate(local, remote);
  assert.ok(r.ok);
  const ctx = r.negotiated.context;
  assert.equal(ctx.fourOctetAs, true);
  assert.equal(ctx.extendedMessage, false);
  assert.deepEqual([...ctx.addPathReceive], ['1/1']);
  assert.deepEqual([...ctx.addPathSend], ['2/1']);
  const twoOctet = negotiate(cfg({ peerAs: 65002 }), open({ myAs: 65002 }));
  assert.ok(twoOctet.ok);
  assert.equal(twoOctet.negotiated.context.fourOctetAs, false);
});

test('negotiate: families are the intersection; a peer without MP capability speaks IPv4 unicast', () => {
  const r = negotiate(cfg(), open({}, { fourOctetAs: 4200000000, multiprotocol: [{ afi: 1, safi: 2 }, { afi: 2, safi: 1 }] }));
  assert.ok(r.ok);
  assert.deepEqual(r.negotiated.families, ['2/1']);
  const none = negotiate(cfg(), open({}, { fourOctetAs: 4200000000, multiprotocol: [] }));
  assert.ok(none.ok);
  assert.deepEqual(none.negotiated.families, ['1/1']);
});
