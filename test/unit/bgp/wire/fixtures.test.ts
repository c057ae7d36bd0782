// Hand-built byte-exact fixtures, one per message type, checked both ways (decode → object,
// encode → bytes) with a comment per field. RFC 4271 §4, RFC 4760, RFC 6793, RFC 7313, RFC 9003.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeMessage, endOfRib } from '../../../../daemon/bgp/wire/index.js';
import type { BgpMessage, SessionContext } from '../../../../daemon/bgp/types.js';
import { ctxOf, hex, MARKER, toHex } from './helpers.js';

interface Fixture {
  name: string;
  ctx: SessionContext;
  bytes: Uint8Array;
  message: BgpMessage;
}

const fixtures: Fixture[] = [
  {
    name: 'OPEN with capabilities',
    ctx: ctxOf(),
    bytes: hex(`
      ${MARKER}            // marker
      0049                 // length 73
      01                   // type OPEN
      04                   // version 4
      5ba0                 // My AS 23456 (AS_TRANS)
      005a                 // hold time 90
      c0000201             // BGP id 192.0.2.1
      2c                   // optional parameters length 44
      02 2a                // parameter: capabilities, 42 octets
      01 04 0001 00 01     // multiprotocol IPv4 unicast
      01 04 0002 00 01     // multiprotocol IPv6 unicast
      02 00                // route refresh
      06 00                // extended message
      40 06 c078 0001 0180 // graceful restart: R+N bits, 120 s; IPv4 unicast forwarding preserved
      41 04 000101d1       // four-octet AS 66001
      45 04 0002 01 03     // add-path IPv6 unicast send+receive
      46 00                // enhanced route refresh
      49 02 0102           // unknown capability 73 kept as received
    `),
    message: {
      type: 'open',
      version: 4,
      myAs: 23456,
      holdTime: 90,
      bgpId: '192.0.2.1',
      capabilities: {
        multiprotocol: [{ afi: 1, safi: 1 }, { afi: 2, safi: 1 }],
        routeRefresh: true,
        enhancedRouteRefresh: true,
        extendedMessage: true,
        fourOctetAs: 66001,
        gracefulRestart: { restartState: true, notification: true, restartTime: 120, families: [{ afi: 1, safi: 1, forwardingPreserved: true }] },
        addPath: [{ afi: 2, safi: 1, mode: 3 }],
        unknown: [{ code: 73, value: new Uint8Array([1, 2]) }],
      },
    },
  },
  {
    name: 'UPDATE IPv4, iBGP, every classic attribute',
    ctx: ctxOf({ peerType: 'ibgp' }),
    bytes: hex(`
      ${MARKER}            // marker
      009b                 // length 155
      02                   // type UPDATE
      0005                 // withdrawn routes length 5
      18 0af401            // withdraw 10.244.1.0/24
      00                   // withdraw 0.0.0.0/0
      0076                 // total path attribute length 118
      40 01 01 00          // ORIGIN IGP
      40 02 10             // AS_PATH, 16 octets
      02 02 0000fde9 0000fdea // AS_SEQUENCE 65001 65002
      01 01 000101d1       // AS_SET {66001}
      40 03 04 c0000202    // NEXT_HOP 192.0.2.2
      80 04 04 00000032    // MED 50
      40 05 04 000000c8    // LOCAL_PREF 200
      40 06 00             // ATOMIC_AGGREGATE
      c0 07 08 0000fde9 c0000203 // AGGREGATOR AS 65001, 192.0.2.3
      c0 08 08 fde90064 ffffff01 // COMMUNITIES 65001:100, NO_EXPORT
      80 09 04 c0000204    // ORIGINATOR_ID 192.0.2.4
      80 0a 08 c0000205 c0000206 // CLUSTER_LIST 192.0.2.5 192.0.2.6
      c0 10 08 0002fde900000007  // EXTENDED_COMMUNITIES route target 65001:7
      c0 20 0c 0000fde9 00000001 00000002 // LARGE_COMMUNITY 65001:1:2
      e0 63 02 abcd        // unknown optional transitive type 99, partial bit set
      16 0af404            // NLRI 10.244.4.0/22
      20 c0000207          // NLRI 192.0.2.7/32
    `),
    message: {
      type: 'update',
      withdrawn: [{ prefix: '10.244.1.0/24' }, { prefix: '0.0.0.0/0' }],
      attrs: {
        origin: 0,
        asPath: [{ type: 2, asns: [65001, 65002] }, { type: 1, asns: [66001] }],
        nextHop: '192.0.2.2',
        med: 50,
        localPref: 200,
        atomicAggregate: true,
        aggregator: { asn: 65001, address: '192.0.2.3' },
        communities: [0xfde90064, 0xffffff01],
        originatorId: '192.0.2.4',
        clusterList: ['192.0.2.5', '192.0.2.6'],
        extCommunities: ['0002fde900000007'],
        unknown: [{ flags: 0xe0, type: 99, value: new Uint8Array([0xab, 0xcd]) }],
        largeCommunities: [{ global: 65001, local1: 1, local2: 2 }],
      },
      nlri: [{ prefix: '10.244.4.0/22' }, { prefix: '192.0.2.7/32' }],
    },
  },
  {
    name: 'UPDATE IPv6 MP_REACH with global + link-local next hop, add-path',
    ctx: ctxOf({ addPathReceive: new Set(['2/1']), addPathSend: new Set(['2/1']) }),
    bytes: hex(`
      ${MARKER}            // marker
      005a                 // length 90
      02                   // type UPDATE
      0000                 // no withdrawn routes
      0043                 // total path attribute length 67
      90 0e 0032           // MP_REACH_NLRI, extended length 50
      0002 01              // AFI IPv6, SAFI unicast
      20                   // next hop length 32
      20010db8000100000000000000000001 // global 2001:db8:1::1
      fe800000000000000000000000000001 // link-local fe80::1
      00                   // reserved
      00000007 40 fd000244 00010000    // path id 7, fd00:244:1::/64
      40 01 01 02          // ORIGIN INCOMPLETE
      40 02 06 02 01 0000fde9 // AS_PATH AS_SEQUENCE 65001
    `),
    message: {
      type: 'update',
      withdrawn: [],
      attrs: { origin: 2, asPath: [{ type: 2, asns: [65001] }] },
      nlri: [],
      mpReach: { afi: 2, safi: 1, nextHops: ['2001:db8:1::1', 'fe80::1'], nlri: [{ prefix: 'fd00:244:1::/64', pathId: 7 }] },
    },
  },
  {
    name: 'UPDATE on a two-octet session: AS_TRANS + AS4_PATH/AS4_AGGREGATOR (RFC 6793)',
    ctx: ctxOf({ fourOctetAs: false }),
    bytes: hex(`
      ${MARKER}            // marker
      0050                 // length 80
      02                   // type UPDATE
      0000                 // no withdrawn routes
      0035                 // total path attribute length 53
      40 01 01 00          // ORIGIN IGP
      40 02 06 02 02 fde9 5ba0 // AS_PATH (2-octet) 65001 AS_TRANS
      40 03 04 c0000202    // NEXT_HOP 192.0.2.2
      c0 07 06 5ba0 c0000203 // AGGREGATOR AS_TRANS, 192.0.2.3
      c0 11 0a 02 02 0000fde9 000101d1 // AS4_PATH 65001 66001
      c0 12 08 000101d1 c0000203 // AS4_AGGREGATOR 66001, 192.0.2.3
      18 0af401            // NLRI 10.244.1.0/24
    `),
    message: {
      type: 'update',
      withdrawn: [],
      attrs: {
        origin: 0,
        asPath: [{ type: 2, asns: [65001, 66001] }],
        nextHop: '192.0.2.2',
        aggregator: { asn: 66001, address: '192.0.2.3' },
      },
      nlri: [{ prefix: '10.244.1.0/24' }],
    },
  },
  {
    name: 'UPDATE IPv6 withdraw in MP_UNREACH',
    ctx: ctxOf(),
    bytes: hex(`
      ${MARKER}            // marker
      0027                 // length 39
      02                   // type UPDATE
      0000                 // no withdrawn routes
      0010                 // total path attribute length 16
      90 0f 000c           // MP_UNREACH_NLRI, extended length 12
      0002 01              // AFI IPv6, SAFI unicast
      40 fd000244 00040000 // fd00:244:4::/64
    `),
    message: { type: 'update', withdrawn: [], attrs: null, nlri: [], mpUnreach: { afi: 2, safi: 1, withdrawn: [{ prefix: 'fd00:244:4::/64' }] } },
  },
  {
    name: 'End-of-RIB IPv6 unicast (RFC 4724 §2)',
    ctx: ctxOf(),
    bytes: hex(`
      ${MARKER}            // marker
      001d                 // length 29
      02                   // type UPDATE
      0000                 // no withdrawn routes
      0006                 // total path attribute length 6
      80 0f 03 0002 01     // MP_UNREACH_NLRI IPv6 unicast, no NLRI
    `),
    message: { type: 'update', withdrawn: [], attrs: null, nlri: [], mpUnreach: { afi: 2, safi: 1, withdrawn: [] } },
  },
  {
    name: 'NOTIFICATION Cease / Administrative Shutdown with RFC 9003 message',
    ctx: ctxOf(),
    bytes: hex(`
      ${MARKER}            // marker
      001b                 // length 27
      03                   // type NOTIFICATION
      06                   // code Cease
      02                   // subcode Administrative Shutdown
      05                   // shutdown communication length 5
      6d61696e74           // "maint"
    `),
    message: { type: 'notification', code: 6, subcode: 2, data: hex('05 6d61696e74'), shutdownMessage: 'maint' },
  },
  {
    name: 'NOTIFICATION Hold Timer Expired',
    ctx: ctxOf(),
    bytes: hex(`${MARKER} 0015 03 // marker, length 21, NOTIFICATION
      04 00                // code Hold Timer Expired, subcode 0`),
    message: { type: 'notification', code: 4, subcode: 0, data: new Uint8Array(0) },
  },
  {
    name: 'KEEPALIVE',
    ctx: ctxOf(),
    bytes: hex(`${MARKER} // marker
      0013 04              // length 19, type KEEPALIVE`),
    message: { type: 'keepalive' },
  },
  {
    name: 'ROUTE-REFRESH BoRR IPv6 unicast (RFC 7313)',
    ctx: ctxOf(),
    bytes: hex(`${MARKER} // marker
      0017 05              // length 23, type ROUTE-REFRESH
      0002                 // AFI IPv6
      01                   // subtype 1: BoRR
      01                   // SAFI unicast`),
    message: { type: 'route-refresh', afi: 2, safi: 1, subtype: 1 },
  },
];

for (const f of fixtures) {
  test(`fixture ${f.name}: decode`, () => {
    const r = decodeMessage(f.bytes, f.ctx);
    assert.ok(r.ok, r.ok ? '' : r.error.reason);
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.message, f.message);
  });
  test(`fixture ${f.name}: encode`, () => {
    assert.equal(toHex(encodeMessage(f.message, f.ctx)), toHex(f.bytes));
  });
}

test('endOfRib() builds the RFC 4724 markers', () => {
  assert.equal(toHex(endOfRib(1, 1)), `${MARKER}001702 0000 0000`.replace(/ /g, ''));
  assert.equal(toHex(endOfRib(2, 1)), toHex(fixtures.find((f) => f.name.startsWith('End-of-RIB'))!.bytes));
});

test('OPEN with more than 255 octets of capabilities uses RFC 9072 extended parameters', () => {
  const unknown = Array.from({ length: 30 }, (_, i) => ({ code: 200 + i, value: new Uint8Array(8).fill(i) }));
  const open: BgpMessage = {
    type: 'open', version: 4, myAs: 65001, holdTime: 90, bgpId: '192.0.2.1',
    capabilities: { multiprotocol: [], routeRefresh: false, enhancedRouteRefresh: false, extendedMessage: false, unknown },
  };
  const bytes = encodeMessage(open, ctxOf());
  assert.equal(bytes[28], 255, 'Non-Ext OP Len 255');
  assert.equal(bytes[29], 255, 'Non-Ext OP Type 255');
  assert.equal((bytes[30]! << 8) | bytes[31]!, 3 + 30 * 10, 'Extended Opt. Parm. Length');
  const r = decodeMessage(bytes, ctxOf());
  assert.ok(r.ok);
  assert.deepEqual(r.message, open);
});

test('shutdown communication longer than 255 octets is cut at a character boundary', () => {
  const text = 'é'.repeat(200); // 400 octets of UTF-8
  const bytes = encodeMessage({ type: 'notification', code: 6, subcode: 4, data: new Uint8Array(0), shutdownMessage: text }, ctxOf());
  assert.equal(bytes[21], 254);
  const r = decodeMessage(bytes, ctxOf());
  assert.ok(r.ok && r.message.type === 'notification');
  assert.equal(r.message.shutdownMessage, 'é'.repeat(127));
});
