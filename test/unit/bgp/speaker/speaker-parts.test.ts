// Unit tests of the speaker's pure parts: fair ingest scheduling with backpressure, packing of
// Adj-RIB-Out batches into size-bounded UPDATEs (RFC 4271 §4.3, RFC 4760), graceful-restart helper
// decisions (RFC 4724, RFC 8538), nrdctl argument parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IngestScheduler } from '../../../../daemon/bgp/speaker/ingest.js';
import { batchToUpdates, endOfRibMessage, nlriSize } from '../../../../daemon/bgp/speaker/outbound.js';
import { gracefulOnDown, preservedOnUp } from '../../../../daemon/bgp/speaker/graceful.js';
import { parseRoutesArgs, routesPath } from '../../../../daemon/cli/commands/bgp.js';
import { decodeMessage, encodeMessage, isEndOfRib } from '../../../../daemon/bgp/wire/index.js';
import type { NegotiatedSession } from '../../../../daemon/bgp/session/negotiate.js';
import type { SessionContext, UpdateMessage } from '../../../../daemon/bgp/types.js';

const upd = (n: number): UpdateMessage => ({ type: 'update', withdrawn: [], attrs: null, nlri: Array.from({ length: n }, (_, i) => ({ prefix: `10.0.${i}.0/24` })) });

function manual(): { defer: (fn: () => void) => void; run: () => boolean } {
  const q: Array<() => void> = [];
  return { defer: (fn) => void q.push(fn), run: () => (q.length ? (q.shift()!(), true) : false) };
}

test('ingest serves peers round-robin within a per-turn prefix budget', () => {
  const order: string[] = [];
  const m = manual();
  const s = new IngestScheduler({ apply: (p) => order.push(p), prefixesPerTurn: 20, highWater: 1000, defer: m.defer });
  for (let i = 0; i < 5; i++) s.push('a', upd(10));
  s.push('b', upd(10));
  s.push('c', upd(10));
  m.run();
  assert.deepEqual(order, ['a', 'b']); // budget 20 = two UPDATEs of 10
  m.run();
  // c was not reached last turn: it goes first now.
  assert.deepEqual(order.slice(2), ['c', 'a']);
  while (m.run());
  assert.equal(order.filter((p) => p === 'a').length, 5);
  assert.equal(s.pending(), 0);
});

test('ingest pushes back (a promise) above high water and releases below low water; drop releases too', async () => {
  const m = manual();
  const s = new IngestScheduler({ apply: () => undefined, prefixesPerTurn: 1, highWater: 4, defer: m.defer });
  for (let i = 0; i < 3; i++) assert.equal(s.push('a', upd(1)), undefined);
  const p = s.push('a', upd(1));
  assert.ok(p instanceof Promise);
  let released = false;
  void p!.then(() => (released = true));
  m.run();
  m.run();
  await Promise.resolve();
  assert.equal(released, true); // 2 left <= low water 2
  const p2 = [s.push('b', upd(1)), s.push('b', upd(1)), s.push('b', upd(1)), s.push('b', upd(1))][3];
  let r2 = false;
  void p2!.then(() => (r2 = true));
  s.drop('b');
  await Promise.resolve();
  assert.equal(r2, true);
  assert.equal(s.pending('b'), 0);
});

const ctx: SessionContext = { fourOctetAs: true, extendedMessage: false, addPathReceive: new Set(), addPathSend: new Set(), peerType: 'ebgp' };

test('outbound packs many prefixes per UPDATE, every message within 4096 octets, all prefixes once', () => {
  const prefixes = Array.from({ length: 3000 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
  const attrs = { origin: 0 as const, asPath: [{ type: 2 as const, asns: [65001] }], nextHop: '192.0.2.1', communities: [0xfde90001] };
  const msgs = batchToUpdates({ announce: [{ family: '1/1', attrs, nextHops: ['192.0.2.1'], prefixes }], withdraw: [{ family: '2/1', prefixes: ['fd00::/64', 'fd00:0:0:1::/64'] }] }, ctx);
  const seen: string[] = [];
  for (const m of msgs) {
    const bytes = encodeMessage(m, ctx);
    assert.ok(bytes.length <= 4096, `message of ${bytes.length}`);
    const d = decodeMessage(bytes, ctx);
    assert.ok(d.ok);
    const u = d.message as UpdateMessage;
    seen.push(...u.nlri.map((n) => n.prefix));
  }
  assert.deepEqual(seen, prefixes);
  assert.ok(msgs.length <= 5, `${msgs.length} messages for 3000 prefixes`);
  assert.deepEqual(msgs[0]!.mpUnreach?.withdrawn.map((n) => n.prefix), ['fd00::/64', 'fd00:0:0:1::/64']);
  assert.equal(nlriSize('10.0.0.0/24', false), 4);
  assert.equal(nlriSize('fd00::/64', true), 13);
  for (const f of ['1/1', '2/1'] as const) assert.equal(isEndOfRib(decodeMessage(encodeMessage(endOfRibMessage(f), ctx), ctx).ok ? (decodeMessage(encodeMessage(endOfRibMessage(f), ctx), ctx) as { message: UpdateMessage }).message : upd(1)), f);
});

function negotiated(peerN: boolean, localN: boolean, families = [{ afi: 1, safi: 1, forwardingPreserved: true }]): NegotiatedSession {
  return {
    context: ctx,
    families: ['1/1', '2/1'],
    holdTime: 3,
    keepaliveTime: 1,
    peerAs: 65000,
    peerId: '192.0.2.2',
    routeRefresh: true,
    enhancedRouteRefresh: false,
    peerGracefulRestart: { restartState: false, notification: peerN, restartTime: 120, families },
    localGracefulRestart: { restartState: false, notification: localN, restartTime: 120, families },
    peerOpen: { type: 'open', version: 4, myAs: 65000, holdTime: 3, bgpId: '192.0.2.2', capabilities: { multiprotocol: [], routeRefresh: true, enhancedRouteRefresh: false, extendedMessage: false, unknown: [] } },
  };
}

test('graceful restart helper: TCP failure keeps routes; NOTIFICATION only with both N-bits and not Hard Reset', () => {
  const tcp = gracefulOnDown({ kind: 'tcp-failed', text: 'reset' }, negotiated(false, true));
  assert.deepEqual([tcp.graceful, tcp.restartTime, tcp.families], [true, 120, ['1/1']]);
  const hold = { kind: 'notification-sent' as const, text: 'hold', notification: { code: 4, subcode: 0 } };
  assert.equal(gracefulOnDown(hold, negotiated(false, true)).graceful, false);
  assert.equal(gracefulOnDown(hold, negotiated(true, true)).graceful, true);
  assert.equal(gracefulOnDown({ kind: 'notification-received', text: 'x', notification: { code: 6, subcode: 9 } }, negotiated(true, true)).graceful, false);
  assert.equal(gracefulOnDown({ kind: 'manual-stop', text: 'x' }, negotiated(true, true)).graceful, false);
  assert.equal(gracefulOnDown({ kind: 'tcp-failed', text: 'x' }, null).graceful, false);
  // F bit decides on the way back.
  assert.deepEqual(preservedOnUp(negotiated(true, true, [{ afi: 1, safi: 1, forwardingPreserved: false }, { afi: 2, safi: 1, forwardingPreserved: true }])), ['2/1']);
});

test('nrdctl bgp routes arguments', () => {
  assert.deepEqual(parseRoutesArgs(['--peer', '192.0.2.2', '--family=ipv6']), { peer: '192.0.2.2', family: 'ipv6' });
  assert.deepEqual(parseRoutesArgs(['192.0.2.2']), { peer: '192.0.2.2' });
  assert.equal(typeof parseRoutesArgs(['--bogus', 'x']), 'string');
  assert.equal(typeof parseRoutesArgs(['--peer']), 'string');
  assert.equal(routesPath({ peer: 'fd00::1', family: 'ipv6' }), '/v1/bgp/routes?peer=fd00%3A%3A1&family=ipv6');
  assert.equal(routesPath({}), '/v1/bgp/routes');
});
