// Malformed-message table: RFC 4271 §6.1/§6.2 header and OPEN errors, RFC 7606 UPDATE errors
// (with the action each one gets), RFC 7313 and RFC 9003 details. One row per case.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, Framer } from '../../../../daemon/bgp/wire/index.js';
import type { ErrorAction, SessionContext, UpdateMessage } from '../../../../daemon/bgp/types.js';
import { ctxOf, hex, MARKER, toHex } from './helpers.js';

/** A message with correct header length around `body` (hex). */
function msg(type: number, body: string): Uint8Array {
  const b = hex(body);
  const out = new Uint8Array(19 + b.length);
  out.fill(0xff, 0, 16);
  out[16] = out.length >> 8;
  out[17] = out.length & 0xff;
  out[18] = type;
  out.set(b, 19);
  return out;
}

const len2 = (h: string): string => (hex(h).length).toString(16).padStart(4, '0');
/** An UPDATE whose withdrawn/attribute lengths are computed from the parts. */
const upd = (attrs: string, nlri = NLRI, withdrawn = ''): Uint8Array =>
  msg(2, `${len2(withdrawn)} ${withdrawn} ${len2(attrs)} ${attrs} ${nlri}`);

const ORIGIN = '40 01 01 00';
const AS_PATH = '40 02 06 02 01 0000fde9';
const NEXT_HOP = '40 03 04 c0000202';
const BASE = `${ORIGIN} ${AS_PATH} ${NEXT_HOP}`;
const NLRI = '18 0af401'; // 10.244.1.0/24
const MP_V6 = '90 0e 001e 0002 01 10 20010db8000100000000000000000001 00 40 fd000244 00010000';
const OPEN_OK = '04 fde9 005a c0000201';

interface Row {
  name: string;
  frame: Uint8Array;
  ctx?: SessionContext;
  /** Expected error (the first one for handled errors). */
  code: number;
  subcode: number;
  action: ErrorAction;
  data?: string;
  family?: string;
  /** For handled errors: a check on the transformed message. */
  check?: (m: UpdateMessage) => void;
}

const withdrawnAll = (m: UpdateMessage): void => {
  assert.equal(m.attrs, null);
  assert.deepEqual(m.nlri, []);
  assert.deepEqual(m.withdrawn, [{ prefix: '10.244.1.0/24' }]);
};
const kept = (m: UpdateMessage): void => {
  assert.notEqual(m.attrs, null);
  assert.deepEqual(m.nlri, [{ prefix: '10.244.1.0/24' }]);
};

const ibgp = ctxOf({ peerType: 'ibgp' });
const twoOctet = ctxOf({ fourOctetAs: false });

const rows: Row[] = [
  // RFC 4271 §6.1 header
  { name: 'marker not all ones', frame: hex(`${'ff'.repeat(15)}fe 0013 04`), code: 1, subcode: 1, action: 'session-reset' },
  { name: 'length field below 19', frame: hex(`${MARKER} 0012 04 00`), code: 1, subcode: 2, action: 'session-reset', data: '0012' },
  { name: 'length field above 4096 without extended message', frame: msg(2, '00'.repeat(4082)), code: 1, subcode: 2, action: 'session-reset', data: '1005' },
  { name: 'length field differs from frame size', frame: hex(`${MARKER} 0014 04`), code: 1, subcode: 2, action: 'session-reset', data: '0014' },
  { name: 'unknown message type 6', frame: msg(6, ''), code: 1, subcode: 3, action: 'session-reset', data: '06' },
  { name: 'KEEPALIVE with a body', frame: msg(4, '00'), code: 1, subcode: 2, action: 'session-reset', data: '0014' },
  { name: 'OPEN shorter than 29', frame: msg(1, '04 fde9 005a c0000201'), code: 1, subcode: 2, action: 'session-reset' },
  { name: 'UPDATE shorter than 23', frame: msg(2, '0000'), code: 1, subcode: 2, action: 'session-reset' },
  { name: 'NOTIFICATION shorter than 21', frame: msg(3, '06'), code: 1, subcode: 2, action: 'session-reset' },
  { name: 'ROUTE-REFRESH BoRR with wrong length (RFC 7313 §5)', frame: msg(5, '0001 01 01 00'), code: 7, subcode: 1, action: 'session-reset' },
  { name: 'ROUTE-REFRESH normal with wrong length', frame: msg(5, '0001 00 01 00'), code: 1, subcode: 2, action: 'session-reset' },
  // RFC 4271 §6.2 OPEN
  { name: 'OPEN version 3', frame: msg(1, '03 fde9 005a c0000201 00'), code: 2, subcode: 1, action: 'session-reset', data: '0004' },
  { name: 'OPEN My AS 0', frame: msg(1, '04 0000 005a c0000201 00'), code: 2, subcode: 2, action: 'session-reset' },
  { name: 'OPEN four-octet AS capability 0', frame: msg(1, `${OPEN_OK} 08 02 06 41 04 00000000`), code: 2, subcode: 2, action: 'session-reset' },
  { name: 'OPEN BGP identifier 0', frame: msg(1, '04 fde9 005a 00000000 00'), code: 2, subcode: 3, action: 'session-reset' },
  { name: 'OPEN hold time 1', frame: msg(1, '04 fde9 0001 c0000201 00'), code: 2, subcode: 6, action: 'session-reset' },
  { name: 'OPEN hold time 2', frame: msg(1, '04 fde9 0002 c0000201 00'), code: 2, subcode: 6, action: 'session-reset' },
  { name: 'OPEN unsupported optional parameter (authentication)', frame: msg(1, `${OPEN_OK} 03 01 01 00`), code: 2, subcode: 4, action: 'session-reset' },
  { name: 'OPEN optional parameters length overruns', frame: msg(1, `${OPEN_OK} 09 02 02 02 00`), code: 1, subcode: 2, action: 'session-reset' },
  { name: 'OPEN capability overruns its parameter', frame: msg(1, `${OPEN_OK} 04 02 02 41 04`), code: 2, subcode: 0, action: 'session-reset' },
  { name: 'OPEN four-octet AS capability of 2 octets', frame: msg(1, `${OPEN_OK} 06 02 04 41 02 fde9`), code: 2, subcode: 0, action: 'session-reset' },
  { name: 'OPEN add-path with send/receive 4', frame: msg(1, `${OPEN_OK} 08 02 06 45 04 0001 01 04`), code: 2, subcode: 0, action: 'session-reset' },
  // RFC 7606 UPDATE: session reset
  { name: 'withdrawn routes length overruns', frame: msg(2, '0010 0000'), code: 3, subcode: 1, action: 'session-reset' },
  { name: 'total path attribute length overruns', frame: msg(2, '0000 0010 40010100'), code: 3, subcode: 1, action: 'session-reset' },
  { name: 'withdrawn prefix length 33', frame: upd('', '', '21 0af40100 00'), code: 3, subcode: 10, action: 'session-reset' },
  { name: 'NLRI prefix overruns the message', frame: upd(BASE, '18 0af4'), code: 3, subcode: 10, action: 'session-reset' },
  { name: 'MP_REACH_NLRI twice', frame: upd(`${MP_V6} ${MP_V6} ${ORIGIN} ${AS_PATH}`, ''), code: 3, subcode: 1, action: 'session-reset' },
  { name: 'MP_REACH_NLRI too short for AFI/SAFI', frame: upd(`80 0e 02 0002 ${BASE}`), code: 3, subcode: 9, action: 'session-reset' },
  { name: 'MP_UNREACH_NLRI too short for AFI/SAFI', frame: upd(`80 0f 02 0002 ${BASE}`), code: 3, subcode: 9, action: 'session-reset' },
  // RFC 7606 §7.11: AFI/SAFI disable
  { name: 'MP_REACH_NLRI IPv6 next hop length 5', frame: upd(`80 0e 0b 0002 01 05 2001000000 00 00 ${ORIGIN} ${AS_PATH}`, ''), code: 3, subcode: 9, action: 'afisafi-disable', family: '2/1' },
  { name: 'MP_REACH_NLRI IPv6 prefix length 129', frame: upd(`80 0e 16 0002 01 10 20010db8000100000000000000000001 00 81 ${ORIGIN} ${AS_PATH}`, ''), code: 3, subcode: 9, action: 'afisafi-disable', family: '2/1' },
  { name: 'MP_UNREACH_NLRI prefix overruns', frame: upd('80 0f 06 0002 01 40 fd00', ''), code: 3, subcode: 9, action: 'afisafi-disable', family: '2/1' },
  // RFC 7606 treat-as-withdraw
  { name: 'attribute length overruns the attribute field (§4)', frame: upd(`${BASE} c0 08 08 fde90064`), code: 3, subcode: 5, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'two stray octets after the last attribute (§4)', frame: upd(`${BASE} c0 08`), code: 3, subcode: 1, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'ORIGIN with the optional bit (§3 c)', frame: upd(`c0 01 01 00 ${AS_PATH} ${NEXT_HOP}`), code: 3, subcode: 4, action: 'treat-as-withdraw', data: 'c0010100', check: withdrawnAll },
  { name: 'MED with the transitive bit', frame: upd(`${BASE} c0 04 04 00000001`), code: 3, subcode: 4, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'ORIGIN length 2 (§7.1)', frame: upd(`40 01 02 0000 ${AS_PATH} ${NEXT_HOP}`), code: 3, subcode: 5, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'ORIGIN value 3 (§7.1)', frame: upd(`40 01 01 03 ${AS_PATH} ${NEXT_HOP}`), code: 3, subcode: 6, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'missing ORIGIN (§3 d)', frame: upd(`${AS_PATH} ${NEXT_HOP}`), code: 3, subcode: 3, action: 'treat-as-withdraw', data: '01', check: withdrawnAll },
  { name: 'missing AS_PATH (§3 d)', frame: upd(`${ORIGIN} ${NEXT_HOP}`), code: 3, subcode: 3, action: 'treat-as-withdraw', data: '02', check: withdrawnAll },
  { name: 'missing NEXT_HOP with classic NLRI', frame: upd(`${ORIGIN} ${AS_PATH}`), code: 3, subcode: 3, action: 'treat-as-withdraw', data: '03', check: withdrawnAll },
  { name: 'NEXT_HOP length 5 (§7.3)', frame: upd(`${ORIGIN} ${AS_PATH} 40 03 05 c000020200`), code: 3, subcode: 5, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'NEXT_HOP 0.0.0.0', frame: upd(`${ORIGIN} ${AS_PATH} 40 03 04 00000000`), code: 3, subcode: 8, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'NEXT_HOP multicast 224.0.0.1', frame: upd(`${ORIGIN} ${AS_PATH} 40 03 04 e0000001`), code: 3, subcode: 8, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'AS_PATH segment overruns (§7.2)', frame: upd(`${ORIGIN} 40 02 06 02 02 0000fde9 ${NEXT_HOP}`), code: 3, subcode: 11, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'AS_PATH one octet left over (§7.2)', frame: upd(`${ORIGIN} 40 02 07 02 01 0000fde9 02 ${NEXT_HOP}`), code: 3, subcode: 11, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'AS_PATH empty segment (§7.2)', frame: upd(`${ORIGIN} 40 02 02 02 00 ${NEXT_HOP}`), code: 3, subcode: 11, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'AS_PATH segment type 5 (§7.2)', frame: upd(`${ORIGIN} 40 02 06 05 01 0000fde9 ${NEXT_HOP}`), code: 3, subcode: 11, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'AS_PATH confederation segment from eBGP (§7.2)', frame: upd(`${ORIGIN} 40 02 06 03 01 0000fde9 ${NEXT_HOP}`), code: 3, subcode: 11, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'AS_PATH with AS 0 (RFC 7607)', frame: upd(`${ORIGIN} 40 02 06 02 01 00000000 ${NEXT_HOP}`), code: 3, subcode: 11, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'MED length 3 (§7.4)', frame: upd(`${BASE} 80 04 03 000001`), code: 3, subcode: 5, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'LOCAL_PREF length 3 on iBGP (§7.5)', ctx: ibgp, frame: upd(`${BASE} 40 05 03 000064`), code: 3, subcode: 5, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'COMMUNITIES length 5 (§7.8)', frame: upd(`${BASE} c0 08 05 fde9006400`), code: 3, subcode: 5, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'ORIGINATOR_ID length 3 on iBGP (§7.9)', ctx: ibgp, frame: upd(`${BASE} 80 09 03 c00002`), code: 3, subcode: 5, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'CLUSTER_LIST length 6 on iBGP (§7.10)', ctx: ibgp, frame: upd(`${BASE} 80 0a 06 c0000201 0000`), code: 3, subcode: 5, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'EXTENDED_COMMUNITIES length 7 (§7.14)', frame: upd(`${BASE} c0 10 07 0002fde9000000`), code: 3, subcode: 5, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'LARGE_COMMUNITY length 11 (RFC 8092 §6)', frame: upd(`${BASE} c0 20 0b 0000fde9 00000001 000000`), code: 3, subcode: 5, action: 'treat-as-withdraw', check: withdrawnAll },
  { name: 'unrecognised well-known attribute', frame: upd(`${BASE} 40 63 01 00`), code: 3, subcode: 2, action: 'treat-as-withdraw', check: withdrawnAll },
  {
    name: 'treat-as-withdraw of MP_REACH IPv6 becomes MP_UNREACH',
    frame: upd(`${MP_V6} ${ORIGIN} ${AS_PATH} c0 08 03 000000`, ''),
    code: 3, subcode: 5, action: 'treat-as-withdraw',
    check: (m) => {
      assert.equal(m.attrs, null);
      assert.equal(m.mpReach, undefined);
      assert.deepEqual(m.mpUnreach, { afi: 2, safi: 1, withdrawn: [{ prefix: 'fd00:244:1::/64' }] });
    },
  },
  {
    name: 'treat-as-withdraw with MP_REACH and MP_UNREACH of different families',
    frame: upd(`${MP_V6} 80 0f 07 0001 01 18 0af402 ${ORIGIN} ${AS_PATH} c0 08 03 000000`, ''),
    code: 3, subcode: 1, action: 'session-reset',
  },
  // RFC 7606 attribute discard
  { name: 'MED twice: later copy discarded (§3 g)', frame: upd(`${BASE} 80 04 04 00000001 80 04 04 00000002`), code: 3, subcode: 1, action: 'attribute-discard', check: (m) => { kept(m); assert.equal(m.attrs?.med, 1); } },
  { name: 'LOCAL_PREF from eBGP ignored (§7.5)', frame: upd(`${BASE} 40 05 04 00000064`), code: 3, subcode: 9, action: 'attribute-discard', check: (m) => { kept(m); assert.equal(m.attrs?.localPref, undefined); } },
  { name: 'ORIGINATOR_ID from eBGP ignored (§7.9)', frame: upd(`${BASE} 80 09 04 c0000201`), code: 3, subcode: 9, action: 'attribute-discard', check: kept },
  { name: 'ATOMIC_AGGREGATE length 1 (§7.6)', frame: upd(`${BASE} 40 06 01 00`), code: 3, subcode: 5, action: 'attribute-discard', check: (m) => { kept(m); assert.equal(m.attrs?.atomicAggregate, undefined); } },
  { name: 'AGGREGATOR length 7 (§7.7)', frame: upd(`${BASE} c0 07 07 0000fde9 c00002`), code: 3, subcode: 5, action: 'attribute-discard', check: kept },
  { name: 'AGGREGATOR AS 0 (RFC 7607)', frame: upd(`${BASE} c0 07 08 00000000 c0000201`), code: 3, subcode: 9, action: 'attribute-discard', check: kept },
  { name: 'MP_REACH_NLRI of an unsupported family', frame: upd(`${BASE} 80 0e 09 0019 46 04 c0000201 00`), code: 3, subcode: 9, action: 'attribute-discard', check: kept },
  { name: 'AS4_PATH on a four-octet session (RFC 6793)', frame: upd(`${BASE} c0 11 06 02 01 000101d1`), code: 3, subcode: 9, action: 'attribute-discard', check: (m) => { kept(m); assert.deepEqual(m.attrs?.asPath, [{ type: 2, asns: [65001] }]); } },
  {
    name: 'malformed AS4_PATH on a two-octet session (RFC 6793 §6)', ctx: twoOctet,
    frame: upd(`${ORIGIN} 40 02 04 02 01 5ba0 ${NEXT_HOP} c0 11 06 02 02 000101d1`),
    code: 3, subcode: 9, action: 'attribute-discard', check: (m) => { kept(m); assert.deepEqual(m.attrs?.asPath, [{ type: 2, asns: [23456] }]); },
  },
  {
    name: 'AS4_AGGREGATOR length 6 on a two-octet session', ctx: twoOctet,
    frame: upd(`${ORIGIN} 40 02 04 02 01 fde9 ${NEXT_HOP} c0 12 06 0001 c0000201`),
    code: 3, subcode: 5, action: 'attribute-discard', check: kept,
  },
];

for (const r of rows) {
  test(`malformed: ${r.name} → ${r.code}/${r.subcode} ${r.action}`, () => {
    const res = decodeMessage(r.frame, r.ctx ?? ctxOf());
    const err = res.ok ? res.errors[0] : res.error;
    assert.ok(err, 'an error is reported');
    assert.equal(err.code, r.code, err.reason);
    assert.equal(err.subcode, r.subcode, err.reason);
    assert.equal(err.action, r.action, err.reason);
    if (r.data !== undefined) assert.equal(toHex(err.data), r.data.replace(/ /g, ''));
    const fatal = r.action === 'session-reset' || r.action === 'afisafi-disable';
    assert.equal(res.ok, !fatal);
    if (!res.ok) assert.equal(res.family, r.family);
    if (res.ok) {
      assert.equal(res.message.type, 'update');
      r.check?.(res.message as UpdateMessage);
    }
  });
}

test('header errors surface from the Framer too, and it stays failed', () => {
  const f = new Framer();
  f.push(hex(`${'ff'.repeat(15)}fe 0013 04`));
  const r = f.next();
  assert.ok(r && !r.ok && r.error.code === 1 && r.error.subcode === 1);
  f.push(hex(`${MARKER} 0013 04`));
  assert.equal(f.next()?.ok, false);
  const g = new Framer();
  g.push(hex(`${MARKER} 1001 02`));
  const e = g.next();
  assert.ok(e && !e.ok && e.error.subcode === 2 && toHex(e.error.data) === '1001');
});

test('extended message (RFC 8654): 5000-octet UPDATE only once negotiated; OPEN stays within 4096', () => {
  const big = upd(BASE, '18 0af401'.repeat(1600));
  assert.equal(decodeMessage(big, ctxOf()).ok, false);
  const r = decodeMessage(big, ctxOf({ extendedMessage: true }));
  assert.ok(r.ok && r.message.type === 'update' && r.message.nlri.length === 1600);
  const f = new Framer();
  f.maxMessage = 65535;
  f.push(big);
  assert.equal(f.next()?.ok, true);
  const open = msg(1, `${OPEN_OK} ff ff 1390 02 138d ${'02 00'.repeat(2502)}`);
  const o = decodeMessage(open, ctxOf({ extendedMessage: true }));
  assert.ok(!o.ok && o.error.code === 1 && o.error.subcode === 2);
});

test('unknown optional attributes: transitive kept with the partial bit, non-transitive dropped', () => {
  const r = decodeMessage(upd(`${BASE} c0 63 01 07 80 64 01 08`), ctxOf());
  assert.ok(r.ok && r.message.type === 'update');
  assert.deepEqual(r.errors, []);
  assert.deepEqual(r.message.attrs?.unknown, [{ flags: 0xe0, type: 99, value: new Uint8Array([7]) }]);
});

test('MP_REACH without NEXT_HOP attribute is complete (RFC 4760 §3)', () => {
  const r = decodeMessage(upd(`${MP_V6} ${ORIGIN} ${AS_PATH}`, ''), ctxOf());
  assert.ok(r.ok);
  assert.deepEqual(r.errors, []);
});

test('AGGREGATOR without AS_TRANS makes AS4_PATH/AS4_AGGREGATOR stale (RFC 6793 §4.2.3)', () => {
  const r = decodeMessage(
    upd(`${ORIGIN} 40 02 06 02 02 fde9 5ba0 ${NEXT_HOP} c0 07 06 fde9 c0000203 c0 11 0a 02 02 0000fde9 000101d1 c0 12 08 000101d1 c0000203`),
    twoOctet,
  );
  assert.ok(r.ok && r.message.type === 'update');
  assert.deepEqual(r.message.attrs?.asPath, [{ type: 2, asns: [65001, 23456] }]);
  assert.deepEqual(r.message.attrs?.aggregator, { asn: 65001, address: '192.0.2.3' });
});

test('AS4_PATH shorter than AS_PATH: leading ASNs from AS_PATH are kept (RFC 6793 §4.2.3)', () => {
  const r = decodeMessage(upd(`${ORIGIN} 40 02 08 02 03 fde8 5ba0 fde9 ${NEXT_HOP} c0 11 0a 02 02 000101d1 0000fde9`), twoOctet);
  assert.ok(r.ok && r.message.type === 'update');
  assert.deepEqual(r.message.attrs?.asPath, [{ type: 2, asns: [65000, 66001, 65001] }]);
});

test('shutdown communication: overrunning length or bad UTF-8 keeps only the raw data (RFC 9003 §2)', () => {
  for (const body of ['06 02 09 414243', '06 04 02 c328']) {
    const r = decodeMessage(msg(3, body), ctxOf());
    assert.ok(r.ok && r.message.type === 'notification');
    assert.equal(r.message.shutdownMessage, undefined);
    assert.equal(toHex(r.message.data), body.replace(/ /g, '').slice(4));
  }
});
