// Adj-RIB-Out: what each peer is sent (RFC 4271 §5.1, §9.2; RFC 4456 reflection), split
// horizon, grouping by attributes, incremental differences, route refresh, soft policy change.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ExportPolicy } from '../../../../daemon/bgp/policy/export.js';
import type { ExportPolicyOptions } from '../../../../daemon/bgp/policy/options.js';
import { attrs, LOCAL_AS, makeRib, peer, update, update6, V4, V6 } from './helpers.js';

const OWN = '10.244.1.0/24';
const OWN6 = 'fd00:244:1::/64';
const NODE_EXPORT: ExportPolicyOptions = {
  originate: [
    { prefix: OWN, communities: ['65000:100'], largeCommunities: ['65000:1:2'], med: 50, localPref: 300, prepend: 2 },
    { prefix: OWN6 },
  ],
};

describe('Adj-RIB-Out: node export (own routes only)', () => {
  it('eBGP peer: own AS prepended (+ configured prepends), next hop self, no LOCAL_PREF, MED and communities kept', () => {
    const rib = makeRib({ export: NODE_EXPORT });
    const e = peer(1);
    rib.peerUp(e, 0);
    const batch = rib.takeOutgoing(e.id);
    const v4 = batch.announce.find((g) => g.family === V4)!;
    assert.deepEqual(v4.prefixes, [OWN]);
    assert.deepEqual(v4.attrs.asPath, [{ type: 2, asns: [LOCAL_AS, LOCAL_AS, LOCAL_AS] }]);
    assert.equal(v4.attrs.nextHop, '192.0.2.1');
    assert.deepEqual(v4.nextHops, ['192.0.2.1']);
    assert.equal(v4.attrs.localPref, undefined);
    assert.equal(v4.attrs.med, 50);
    assert.deepEqual(v4.attrs.communities, [65000 * 65536 + 100]);
    assert.deepEqual(v4.attrs.largeCommunities, [{ global: 65000, local1: 1, local2: 2 }]);
    const v6 = batch.announce.find((g) => g.family === V6)!;
    assert.deepEqual(v6.prefixes, [OWN6]);
    assert.equal(v6.attrs.nextHop, undefined);
    assert.deepEqual(v6.nextHops, ['2001:db8::1']);
    assert.deepEqual(v6.attrs.asPath, [{ type: 2, asns: [LOCAL_AS] }]);
  });

  it('iBGP peer: no prepend, LOCAL_PREF (configured or 100), next hop self', () => {
    const rib = makeRib({ export: NODE_EXPORT });
    const i = peer(1, { type: 'ibgp' });
    rib.peerUp(i, 0);
    const batch = rib.takeOutgoing(i.id);
    const v4 = batch.announce.find((g) => g.family === V4)!;
    assert.deepEqual(v4.attrs.asPath, []);
    assert.equal(v4.attrs.localPref, 300);
    assert.equal(v4.attrs.nextHop, '192.0.2.1');
    assert.equal(batch.announce.find((g) => g.family === V6)!.attrs.localPref, 100);
  });

  it('learned routes are not exported by a node', () => {
    const rib = makeRib({ export: NODE_EXPORT });
    const a = peer(1);
    const b = peer(2);
    rib.peerUp(a, 0);
    rib.peerUp(b, 0);
    rib.takeOutgoing(b.id);
    rib.applyUpdate(a.id, update(['10.9.0.0/24'], attrs([65101])), 1);
    assert.deepEqual(rib.takeOutgoing(b.id), { announce: [], withdraw: [] });
  });

  it('only negotiated families are sent; without a next-hop-self address nothing is', () => {
    const rib = makeRib({ export: NODE_EXPORT });
    const p = peer(1, { families: [V4] });
    const q = peer(2, { nextHopSelf: { ipv4: '192.0.2.1' } });
    rib.peerUp(p, 0);
    rib.peerUp(q, 0);
    assert.deepEqual(rib.takeOutgoing(p.id).announce.map((g) => g.family), [V4]);
    assert.deepEqual(rib.takeOutgoing(q.id).announce.map((g) => g.family), [V4]);
  });

  it('a learned route that beats nothing of ours does not disturb our own advertisement', () => {
    const rib = makeRib({ export: NODE_EXPORT });
    const a = peer(1, { type: 'ibgp' });
    rib.peerUp(a, 0);
    rib.takeOutgoing(a.id);
    // Someone else announces our own CIDR: local still wins, nothing changes outward.
    rib.applyUpdate(a.id, update([OWN], attrs([], { localPref: 900 })), 1);
    assert.deepEqual(rib.takeOutgoing(a.id), { announce: [], withdraw: [] });
  });

  it('export policy change emits only the differences and keeps the session', () => {
    const rib = makeRib({ export: NODE_EXPORT });
    const e = peer(1);
    rib.peerUp(e, 0);
    rib.takeOutgoing(e.id);
    // Same policy again: nothing to send.
    rib.setExportPolicy(new ExportPolicy(NODE_EXPORT), 1);
    assert.deepEqual(rib.takeOutgoing(e.id), { announce: [], withdraw: [] });
    // Different MED on one prefix, a new extra prefix, IPv6 prefix removed.
    rib.setExportPolicy(
      new ExportPolicy({
        originate: [{ ...NODE_EXPORT.originate[0]!, med: 60 }, { prefix: '10.250.0.0/16' }],
      }),
      2,
    );
    const b = rib.takeOutgoing(e.id);
    assert.deepEqual(b.announce.map((g) => [g.family, g.prefixes, g.attrs.med]).sort(), [
      [V4, [OWN], 60],
      [V4, ['10.250.0.0/16'], undefined],
    ]);
    assert.deepEqual(b.withdraw, [{ family: V6, prefixes: [OWN6] }]);
    assert.equal(rib.isPeerUp(e.id), true);
  });

  it('per-peer options: extra prepend, MED override, announce off', () => {
    const rib = makeRib({
      export: { ...NODE_EXPORT, peers: { '192.0.2.11': { prepend: 1, med: 7 }, '192.0.2.12': { announce: false } } },
    });
    const a = peer(1);
    const b = peer(2);
    rib.peerUp(a, 0);
    rib.peerUp(b, 0);
    const g = rib.takeOutgoing(a.id).announce.find((x) => x.family === V4)!;
    assert.deepEqual(g.attrs.asPath, [{ type: 2, asns: [LOCAL_AS, LOCAL_AS, LOCAL_AS, LOCAL_AS] }]);
    assert.equal(g.attrs.med, 7);
    assert.deepEqual(rib.takeOutgoing(b.id).announce, []);
  });

  it('route refresh returns the full Adj-RIB-Out again', () => {
    const rib = makeRib({ export: NODE_EXPORT });
    const e = peer(1);
    rib.peerUp(e, 0);
    rib.takeOutgoing(e.id);
    const full = rib.routeRefresh(e.id, V4);
    assert.deepEqual(full.announce.map((g) => g.prefixes), [[OWN]]);
    assert.deepEqual(rib.routeRefresh(e.id, V6).announce.map((g) => g.prefixes), [[OWN6]]);
  });
});

describe('Adj-RIB-Out: learned routes (reflector / transit)', () => {
  const RR = { clusterId: '192.0.2.1', export: { originate: [], exportLearned: true } };

  it('groups prefixes with identical attributes into one announcement', () => {
    const rib = makeRib({ export: { originate: [], exportLearned: true } });
    const a = peer(1);
    const b = peer(2);
    const i = peer(3, { type: 'ibgp' });
    for (const p of [a, b, i]) rib.peerUp(p, 0);
    rib.applyUpdate(a.id, update(['10.9.0.0/24', '10.9.1.0/24'], attrs([65101])), 1);
    rib.applyUpdate(a.id, update(['10.9.2.0/24'], attrs([65101], { med: 4 })), 1);
    rib.applyUpdate(a.id, update(['10.9.3.0/24'], attrs([65101])), 1);
    // iBGP keeps the MED: two attribute sets, two groups.
    const toI = rib.takeOutgoing(i.id);
    assert.deepEqual(toI.announce.map((g) => g.prefixes), [['10.9.0.0/24', '10.9.1.0/24', '10.9.3.0/24'], ['10.9.2.0/24']]);
    assert.equal(toI.announce[1]!.attrs.med, 4);
    // eBGP to eBGP: a MED from another AS is not passed on, so all four share one set.
    const out = rib.takeOutgoing(b.id);
    assert.deepEqual(out.announce.map((g) => g.prefixes), [['10.9.0.0/24', '10.9.1.0/24', '10.9.2.0/24', '10.9.3.0/24']]);
    assert.equal(out.announce[0]!.attrs.med, undefined);
    assert.deepEqual(out.announce[0]!.attrs.asPath, [{ type: 2, asns: [LOCAL_AS, 65101] }]);
    assert.equal(out.announce[0]!.attrs.nextHop, '192.0.2.1');
  });

  it('split horizon: never back to the peer it came from; withdrawn when it stops being best', () => {
    const rib = makeRib({ export: { originate: [], exportLearned: true } });
    const a = peer(1);
    const b = peer(2);
    rib.peerUp(a, 0);
    rib.peerUp(b, 0);
    rib.applyUpdate(a.id, update(['10.9.0.0/24'], attrs([65101])), 1);
    assert.deepEqual(rib.takeOutgoing(a.id).announce, []);
    assert.deepEqual(rib.takeOutgoing(b.id).announce.map((g) => g.prefixes), [['10.9.0.0/24']]);
    // b learns its own path (a still wins on router id); then a withdraws: b's own path becomes
    // best, so what b was sent (a's path) is withdrawn from b and b's path goes to a.
    rib.applyUpdate(b.id, update(['10.9.0.0/24'], attrs([65102])), 2);
    rib.applyUpdate(a.id, update([], null, ['10.9.0.0/24']), 3);
    const toB = rib.takeOutgoing(b.id);
    assert.deepEqual(toB.withdraw, [{ family: V4, prefixes: ['10.9.0.0/24'] }]);
    assert.deepEqual(toB.announce, []);
    const toA = rib.takeOutgoing(a.id);
    assert.deepEqual(toA.announce.map((g) => [g.prefixes, g.attrs.asPath]), [[['10.9.0.0/24'], [{ type: 2, asns: [LOCAL_AS, 65102] }]]]);
  });

  it('sender-side loop avoidance: not sent to an eBGP peer whose AS is in the path', () => {
    const rib = makeRib({ export: { originate: [], exportLearned: true } });
    const a = peer(1);
    const b = peer(2);
    rib.peerUp(a, 0);
    rib.peerUp(b, 0);
    rib.applyUpdate(a.id, update(['10.9.0.0/24'], attrs([65101, b.asn])), 1);
    assert.deepEqual(rib.takeOutgoing(b.id).announce, []);
  });

  it('iBGP-learned routes go to no iBGP peer without reflection', () => {
    const rib = makeRib({ export: { originate: [], exportLearned: true } });
    const i1 = peer(1, { type: 'ibgp', rrClient: true });
    const i2 = peer(2, { type: 'ibgp', rrClient: true });
    const e = peer(3);
    for (const p of [i1, i2, e]) rib.peerUp(p, 0);
    rib.applyUpdate(i1.id, update(['10.9.0.0/24'], attrs([])), 1);
    assert.deepEqual(rib.takeOutgoing(i2.id).announce, []);
    assert.equal(rib.takeOutgoing(e.id).announce.length, 1);
  });

  it('reflection: client → clients and non-clients, non-client → clients only (RFC 4456 §6)', () => {
    const rib = makeRib(RR);
    const c1 = peer(1, { type: 'ibgp', rrClient: true });
    const c2 = peer(2, { type: 'ibgp', rrClient: true });
    const n1 = peer(3, { type: 'ibgp' });
    const n2 = peer(4, { type: 'ibgp' });
    for (const p of [c1, c2, n1, n2]) rib.peerUp(p, 0);
    rib.applyUpdate(c1.id, update(['10.9.0.0/24'], attrs([])), 1);
    rib.applyUpdate(n1.id, update(['10.9.1.0/24'], attrs([])), 1);
    const got = (p: { id: string }) => rib.takeOutgoing(p.id).announce.flatMap((g) => g.prefixes).sort();
    assert.deepEqual(got(c1), ['10.9.1.0/24']);
    assert.deepEqual(got(c2), ['10.9.0.0/24', '10.9.1.0/24']);
    assert.deepEqual(got(n1), ['10.9.0.0/24']);
    assert.deepEqual(got(n2), ['10.9.0.0/24']);
  });

  it('reflection sets ORIGINATOR_ID and prepends CLUSTER_ID; next hop and LOCAL_PREF unchanged', () => {
    const rib = makeRib(RR);
    const c1 = peer(1, { type: 'ibgp', rrClient: true, routerId: '198.51.100.77' });
    const c2 = peer(2, { type: 'ibgp', rrClient: true });
    rib.peerUp(c1, 0);
    rib.peerUp(c2, 0);
    rib.applyUpdate(c1.id, update(['10.9.0.0/24'], attrs([], { localPref: 250, nextHop: '192.0.2.11', med: 9 })), 1);
    const g = rib.takeOutgoing(c2.id).announce[0]!;
    assert.equal(g.attrs.originatorId, '198.51.100.77');
    assert.deepEqual(g.attrs.clusterList, ['192.0.2.1']);
    assert.equal(g.attrs.nextHop, '192.0.2.11');
    assert.equal(g.attrs.localPref, 250);
    assert.equal(g.attrs.med, 9);
    assert.deepEqual(g.attrs.asPath, []);
  });

  it('reflection keeps an existing ORIGINATOR_ID and prepends to an existing CLUSTER_LIST', () => {
    const rib = makeRib(RR);
    const c1 = peer(1, { type: 'ibgp', rrClient: true });
    const c2 = peer(2, { type: 'ibgp', rrClient: true });
    rib.peerUp(c1, 0);
    rib.peerUp(c2, 0);
    rib.applyUpdate(c1.id, update(['10.9.0.0/24'], attrs([], { originatorId: '198.51.100.5', clusterList: ['192.0.2.250'] })), 1);
    const g = rib.takeOutgoing(c2.id).announce[0]!;
    assert.equal(g.attrs.originatorId, '198.51.100.5');
    assert.deepEqual(g.attrs.clusterList, ['192.0.2.1', '192.0.2.250']);
  });

  it('to eBGP: ORIGINATOR_ID, CLUSTER_LIST and LOCAL_PREF are stripped', () => {
    const rib = makeRib(RR);
    const c1 = peer(1, { type: 'ibgp', rrClient: true });
    const e = peer(2);
    rib.peerUp(c1, 0);
    rib.peerUp(e, 0);
    rib.applyUpdate(c1.id, update(['10.9.0.0/24'], attrs([], { originatorId: '198.51.100.5', clusterList: ['192.0.2.250'], localPref: 200 })), 1);
    const g = rib.takeOutgoing(e.id).announce[0]!;
    assert.equal(g.attrs.originatorId, undefined);
    assert.equal(g.attrs.clusterList, undefined);
    assert.equal(g.attrs.localPref, undefined);
  });

  it('eBGP-learned to iBGP: next hop unchanged unless next-hop-self is set; LOCAL_PREF 100', () => {
    for (const nhs of [false, true]) {
      const rib = makeRib({ export: { originate: [], exportLearned: true, peers: { '192.0.2.12': { nextHopSelf: nhs } } } });
      const e = peer(1);
      const i = peer(2, { type: 'ibgp' });
      rib.peerUp(e, 0);
      rib.peerUp(i, 0);
      rib.applyUpdate(e.id, update(['10.9.0.0/24'], attrs([65101], { nextHop: '192.0.2.11', localPref: 999, med: 3 })), 1);
      const g = rib.takeOutgoing(i.id).announce[0]!;
      assert.equal(g.attrs.nextHop, nhs ? '192.0.2.1' : '192.0.2.11');
      assert.equal(g.attrs.localPref, 100);
      assert.equal(g.attrs.med, 3, 'MED may be passed inside the AS');
      assert.deepEqual(g.attrs.asPath, [{ type: 2, asns: [65101] }]);
    }
  });

  it('reflected IPv6 routes drop the link-local next hop', () => {
    const rib = makeRib(RR);
    const c1 = peer(1, { type: 'ibgp', rrClient: true });
    const c2 = peer(2, { type: 'ibgp', rrClient: true });
    rib.peerUp(c1, 0);
    rib.peerUp(c2, 0);
    rib.applyUpdate(c1.id, update6(['fd00:9::/64'], { ...attrs([]), nextHop: undefined }, ['2001:db8::11', 'fe80::11']), 1);
    assert.deepEqual(rib.takeOutgoing(c2.id).announce[0]!.nextHops, ['2001:db8::11']);
  });

  it('well-known communities: NO_ADVERTISE goes nowhere, NO_EXPORT not to eBGP', () => {
    const rib = makeRib({ export: { originate: [], exportLearned: true } });
    const a = peer(1);
    const e = peer(2);
    const i = peer(3, { type: 'ibgp' });
    for (const p of [a, e, i]) rib.peerUp(p, 0);
    rib.applyUpdate(a.id, update(['10.9.0.0/24'], attrs([65101], { communities: [0xffffff01] })), 1);
    rib.applyUpdate(a.id, update(['10.9.1.0/24'], attrs([65101], { communities: [0xffffff02] })), 1);
    assert.deepEqual(rib.takeOutgoing(e.id).announce, []);
    assert.deepEqual(rib.takeOutgoing(i.id).announce.flatMap((g) => g.prefixes), ['10.9.0.0/24']);
  });

  it('a peer coming up gets the current table; one going down releases its Adj-RIB-Out', () => {
    const rib = makeRib({ export: { originate: [{ prefix: OWN }], exportLearned: true } });
    const a = peer(1);
    rib.peerUp(a, 0);
    rib.applyUpdate(a.id, update(['10.9.0.0/24'], attrs([65101])), 1);
    const b = peer(2);
    rib.peerUp(b, 2);
    assert.deepEqual(rib.takeOutgoing(b.id).announce.flatMap((g) => g.prefixes).sort(), ['10.244.1.0/24', '10.9.0.0/24']);
    assert.equal(rib.peerCounts(b.id, V4).advertised, 2);
    rib.peerDown(b.id, { graceful: false }, 3);
    assert.equal(rib.peerCounts(b.id, V4).advertised, 0);
  });

  it('switching off exportLearned withdraws learned routes and keeps our own', () => {
    const rib = makeRib({ export: { originate: [{ prefix: OWN }], exportLearned: true } });
    const a = peer(1);
    const b = peer(2);
    rib.peerUp(a, 0);
    rib.peerUp(b, 0);
    rib.applyUpdate(a.id, update(['10.9.0.0/24'], attrs([65101])), 1);
    rib.takeOutgoing(b.id);
    rib.setExportPolicy(new ExportPolicy({ originate: [{ prefix: OWN }] }), 2);
    assert.deepEqual(rib.takeOutgoing(b.id), { announce: [], withdraw: [{ family: V4, prefixes: ['10.9.0.0/24'] }] });
    assert.deepEqual(rib.adjRibOut(b.id, V4).map(([p]) => p), [OWN]);
  });

  it('onOutgoing tells the shell which peer has something to send', () => {
    const calls: string[] = [];
    const rib = makeRib({ export: { originate: [], exportLearned: true }, onOutgoing: (id) => calls.push(id) });
    const a = peer(1);
    const b = peer(2);
    rib.peerUp(a, 0);
    rib.peerUp(b, 0);
    rib.applyUpdate(a.id, update(['10.9.0.0/24', '10.9.1.0/24'], attrs([65101])), 1);
    assert.ok(calls.includes(b.id));
    assert.ok(!calls.includes(a.id));
  });
});
