// Regressions found by the ExaBGP 4.2 interop test (test/integration/bgp/exabgp-malformed.test.ts):
// UPDATEs as ExaBGP wrote them on the wire (its DEBUG packet log), decoded by nrd's codec against
// RFC 4271 §6.3 and RFC 7606 §3 g. One test per finding, named by what broke or what it pins.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage } from '../../../../daemon/bgp/wire/index.js';
import type { UpdateMessage } from '../../../../daemon/bgp/types.js';
import { ctxOf, hex } from './helpers.js';

// `announce route 10.244.80.0/24 next-hop 192.0.2.2 attribute [0xf3 0x40 0x01]` from AS 65000.
const UNKNOWN_WELL_KNOWN = hex(`
  ffffffffffffffffffffffffffffffff 0033 02  // marker, length 51, UPDATE
  0000                                      // no withdrawn routes
  0018                                      // 24 octets of attributes
  40 01 01 00                               // ORIGIN IGP
  40 02 06 02 01 0000fde8                   // AS_PATH AS_SEQUENCE [65000]
  40 03 04 c0000202                         // NEXT_HOP 192.0.2.2
  40 f3 01 01                               // type 0xF3, flags well-known transitive: not recognised
  18 0af450                                 // NLRI 10.244.80.0/24
`);

test('ExaBGP: an unrecognised non-optional attribute withdraws the UPDATE\'s routes (3/2 as data), no session reset', () => {
  const r = decodeMessage(UNKNOWN_WELL_KNOWN, ctxOf());
  assert.equal(r.ok, true, 'treat-as-withdraw, not a session reset (see attributes.ts: RFC says … / nrd does …)');
  if (!r.ok) return;
  const u = r.message as UpdateMessage;
  assert.deepEqual(u.nlri, []);
  assert.deepEqual(u.withdrawn.map((n) => n.prefix), ['10.244.80.0/24']);
  assert.deepEqual(r.errors.map((e) => [e.code, e.subcode, e.action]), [[3, 2, 'treat-as-withdraw']]);
});

// On a session without the four-octet AS capability, `as-path [65002 4200000000] attribute
// [0x11 0xc0 0x0201FA56EA01]` makes ExaBGP write its own AS4_PATH and then the generic one.
const TWO_AS4_PATHS = hex(`
  ffffffffffffffffffffffffffffffff 0045 02  // marker, length 69, UPDATE
  0000                                      // no withdrawn routes
  002a                                      // 42 octets of attributes
  40 01 01 00                               // ORIGIN IGP
  40 02 06 02 02 fdea 5ba0                  // AS_PATH [65002 23456 (AS_TRANS)]
  c0 11 0a 02 02 0000fdea fa56ea00          // AS4_PATH [65002 4200000000]: the first copy
  40 03 04 c0000204                         // NEXT_HOP 192.0.2.4
  c0 11 06 02 01 fa56ea01                   // AS4_PATH [4200000001]: a repeat, to discard
  18 0af421                                 // NLRI 10.244.33.0/24
`);

test('ExaBGP: a repeated AS4_PATH on a two-octet session keeps the first copy (RFC 7606 §3 g)', () => {
  const r = decodeMessage(TWO_AS4_PATHS, ctxOf({ fourOctetAs: false }));
  assert.ok(r.ok, r.ok ? '' : r.error.reason);
  const m = r.message as UpdateMessage;
  assert.deepEqual(m.attrs?.asPath, [{ type: 2, asns: [65002, 4200000000] }]);
  assert.deepEqual(m.nlri.map((n) => n.prefix), ['10.244.33.0/24']);
  assert.equal(r.errors.length, 1);
  assert.equal(r.errors[0]!.action, 'attribute-discard');
  assert.equal(r.errors[0]!.subcode, 1);
});
