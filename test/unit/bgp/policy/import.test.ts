// Import policy: prefix ranges with maximum length, loop detection (RFC 4271 AS_PATH, RFC 4456
// ORIGINATOR_ID / CLUSTER_LIST), max-prefix (RFC 4486), and soft re-evaluation on change.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ImportPolicy, checkMaxPrefix, maxPrefixNotificationData } from '../../../../daemon/bgp/policy/import.js';
import { attrs, bestId, IMPORT_DEFAULT, LOCAL_AS, makeRib, peer, ROUTER_ID, update, update6, V4, V6 } from '../rib/helpers.js';

const SELF = { localAsn: LOCAL_AS, routerId: ROUTER_ID, clusterId: '192.0.2.1' };

describe('import policy: prefixes', () => {
  const pol = new ImportPolicy({
    ranges: [
      { prefix: '10.244.0.0/16', maxLength: 26 },
      { prefix: '172.16.0.0/12' },
      { prefix: 'fd00:244::/48', maxLength: 64 },
    ],
    maxPrefixLength: { ipv4: 28 },
  });

  it('accepts inside a range up to its maximum length', () => {
    assert.equal(pol.acceptsPrefix('10.244.0.0/16'), true);
    assert.equal(pol.acceptsPrefix('10.244.7.0/24'), true);
    assert.equal(pol.acceptsPrefix('10.244.7.192/26'), true);
    assert.equal(pol.acceptsPrefix('10.244.7.192/27'), false);
  });

  it('rejects outside every range and shorter than the range', () => {
    assert.equal(pol.acceptsPrefix('10.245.0.0/24'), false);
    assert.equal(pol.acceptsPrefix('10.0.0.0/8'), false);
    assert.equal(pol.acceptsPrefix('0.0.0.0/0'), false);
    assert.equal(pol.acceptsPrefix('192.168.1.0/24'), false);
  });

  it('the per-family ceiling applies when a range sets none', () => {
    assert.equal(pol.acceptsPrefix('172.20.1.16/28'), true);
    assert.equal(pol.acceptsPrefix('172.20.1.16/29'), false);
  });

  it('IPv6 ranges', () => {
    assert.equal(pol.acceptsPrefix('fd00:244:0:5::/64'), true);
    assert.equal(pol.acceptsPrefix('fd00:244:0:5::/80'), false);
    assert.equal(pol.acceptsPrefix('fd00:245::/64'), false);
    assert.equal(pol.acceptsPrefix('fd00::/16'), false);
  });

  it('no IPv6 ranges: no IPv6 accepted; garbage is rejected, not thrown', () => {
    const p4 = new ImportPolicy({ ranges: [{ prefix: '10.0.0.0/8' }] });
    assert.equal(p4.acceptsPrefix('fd00::/64'), false);
    assert.equal(p4.acceptsPrefix('nonsense'), false);
    assert.equal(p4.acceptsPrefix('10.1.2.3'), false);
  });

  it('an invalid configured range is refused at construction', () => {
    assert.throws(() => new ImportPolicy({ ranges: [{ prefix: '10.0.0.1/8' }] }), /10\.0\.0\.1\/8/);
  });
});

describe('import policy: loops', () => {
  const pol = new ImportPolicy(IMPORT_DEFAULT);

  it('eBGP: own AS anywhere in AS_PATH (sequence or set) is a loop', () => {
    assert.equal(pol.checkAttributes(peer(1), attrs([65101, LOCAL_AS, 7]), SELF), 'as-path-loop');
    assert.equal(pol.checkAttributes(peer(1), attrs([], { asPath: [{ type: 2, asns: [65101] }, { type: 1, asns: [LOCAL_AS] }] }), SELF), 'as-path-loop');
    assert.equal(pol.checkAttributes(peer(1), attrs([65101, 7]), SELF), null);
  });

  it('eBGP: the per-peer local AS counts too', () => {
    const p = { ...peer(1), localAsn: 64999 };
    assert.equal(pol.checkAttributes(p, attrs([65101, 64999]), SELF), 'as-path-loop');
  });

  it('iBGP: own AS in the path is normal (routes learned from outside)', () => {
    assert.equal(pol.checkAttributes(peer(1, { type: 'ibgp' }), attrs([LOCAL_AS]), SELF), null);
  });

  it('ORIGINATOR_ID equal to our router id is a loop', () => {
    assert.equal(pol.checkAttributes(peer(1, { type: 'ibgp' }), attrs([], { originatorId: ROUTER_ID }), SELF), 'originator-id-loop');
  });

  it('our CLUSTER_ID in CLUSTER_LIST is a loop (only when we have one)', () => {
    const a = attrs([], { originatorId: '198.51.100.9', clusterList: ['192.0.2.200', '192.0.2.1'] });
    assert.equal(pol.checkAttributes(peer(1, { type: 'ibgp' }), a, SELF), 'cluster-list-loop');
    assert.equal(pol.checkAttributes(peer(1, { type: 'ibgp' }), a, { localAsn: LOCAL_AS, routerId: '192.0.2.77' }), null);
  });

  it('through the RIB: looped routes are rejected and counted', () => {
    const rib = makeRib();
    const e = peer(1);
    rib.peerUp(e, 0);
    const r = rib.applyUpdate(e.id, update(['10.1.0.0/24', '10.1.1.0/24'], attrs([65101, LOCAL_AS])), 1);
    assert.deepEqual([r.accepted, r.rejected], [0, 2]);
    assert.equal(rib.locRibSize(V4), 0);
    assert.equal(rib.peerCounts(e.id, V4).rejected, 2);
  });
});

describe('max-prefix (RFC 4486)', () => {
  it('notification data: AFI (2), SAFI (1), limit (4)', () => {
    assert.deepEqual([...maxPrefixNotificationData(2, 1, 1000)], [0, 2, 1, 0, 0, 0x03, 0xe8]);
  });

  it('warn once per crossing; teardown every time over', () => {
    assert.equal(checkMaxPrefix({ limit: 2, action: 'warn' }, 1, 1, 2, false), null);
    assert.equal(checkMaxPrefix({ limit: 2, action: 'warn' }, 1, 1, 3, false)?.action, 'warn');
    assert.equal(checkMaxPrefix({ limit: 2, action: 'warn' }, 1, 1, 3, true), null);
    const t = checkMaxPrefix({ limit: 2, action: 'teardown' }, 1, 1, 3, true);
    assert.ok(t && t.action === 'teardown');
    assert.deepEqual(t.notification.code, 6);
    assert.deepEqual(t.notification.subcode, 1);
    assert.deepEqual([...t.notification.data], [0, 1, 1, 0, 0, 0, 2]);
  });

  it('through the RIB: warn when crossing, again only after dropping below', () => {
    const rib = makeRib({ import: { ...IMPORT_DEFAULT, maxPrefix: { default: { limit: 2, action: 'warn' } } } });
    const e = peer(1);
    rib.peerUp(e, 0);
    assert.equal(rib.applyUpdate(e.id, update(['10.1.0.0/24', '10.1.1.0/24'], attrs([65101])), 1).maxPrefix, null);
    const w = rib.applyUpdate(e.id, update(['10.1.2.0/24'], attrs([65101])), 1).maxPrefix;
    assert.deepEqual(w, { action: 'warn', afi: 1, safi: 1, count: 3, limit: 2 });
    assert.equal(rib.applyUpdate(e.id, update(['10.1.3.0/24'], attrs([65101])), 1).maxPrefix, null);
    assert.equal(rib.locRibSize(V4), 4, 'warn-only keeps the routes');
    rib.applyUpdate(e.id, update([], null, ['10.1.3.0/24', '10.1.2.0/24']), 2);
    rib.applyUpdate(e.id, update(['10.1.0.0/24'], attrs([65101])), 2); // at the limit: re-arms
    assert.equal(rib.applyUpdate(e.id, update(['10.1.5.0/24'], attrs([65101])), 3).maxPrefix?.action, 'warn');
  });

  it('through the RIB: teardown decision per family, per-peer limit overrides the default', () => {
    const e = peer(1);
    const rib = makeRib({
      import: { ...IMPORT_DEFAULT, maxPrefix: { default: { limit: 100, action: 'warn' }, peers: { [e.id]: { limit: 1, action: 'teardown' } } } },
    });
    rib.peerUp(e, 0);
    const a6 = { ...attrs([65101]), nextHop: undefined };
    assert.equal(rib.applyUpdate(e.id, update6(['fd00:1::/64'], a6, ['2001:db8::1']), 1).maxPrefix, null);
    const d = rib.applyUpdate(e.id, update6(['fd00:2::/64'], a6, ['2001:db8::1']), 1).maxPrefix;
    assert.ok(d && d.action === 'teardown');
    assert.deepEqual([d.afi, d.safi, d.count, d.limit], [2, 1, 2, 1]);
    assert.deepEqual([...d.notification.data], [0, 2, 1, 0, 0, 0, 1]);
    // The session executes it: NOTIFICATION, then a non-graceful down.
    rib.peerDown(e.id, { graceful: false }, 2);
    assert.equal(rib.locRibSize(V6), 0);
  });

  it('rejected prefixes do not count', () => {
    const rib = makeRib({ import: { ...IMPORT_DEFAULT, maxPrefix: { default: { limit: 1, action: 'teardown' } } } });
    const e = peer(1);
    rib.peerUp(e, 0);
    assert.equal(rib.applyUpdate(e.id, update(['10.1.0.0/24', '192.168.0.0/24', '192.168.1.0/24'], attrs([65101])), 1).maxPrefix, null);
  });
});

describe('import policy change (soft reconfiguration, no session reset)', () => {
  it('kept rejected routes are re-evaluated: newly allowed enter, newly denied leave', () => {
    const rib = makeRib({ import: { ranges: [{ prefix: '10.1.0.0/16' }] } });
    const e = peer(1);
    rib.peerUp(e, 0);
    rib.applyUpdate(e.id, update(['10.1.0.0/24', '10.2.0.0/24'], attrs([65101])), 1);
    assert.equal(bestId(rib, V4, '10.2.0.0/24'), null);
    const res = rib.setImportPolicy(new ImportPolicy({ ranges: [{ prefix: '10.2.0.0/16' }] }));
    assert.deepEqual(res.refreshNeeded, []);
    assert.equal(bestId(rib, V4, '10.2.0.0/24'), e.id);
    assert.equal(bestId(rib, V4, '10.1.0.0/24'), null);
    assert.equal(rib.isPeerUp(e.id), true);
    assert.equal(rib.attrs.refsOf(rib.adjRibIn(e.id, V4)[0]!.attrs), 2, 'accepted + rejected path');
  });

  it('without kept rejected routes, peers to refresh are named', () => {
    const rib = makeRib({ keepRejected: false, import: { ranges: [{ prefix: '10.1.0.0/16' }] } });
    const e = peer(1);
    rib.peerUp(e, 0);
    rib.applyUpdate(e.id, update(['10.1.0.0/24', '10.2.0.0/24'], attrs([65101])), 1);
    const res = rib.setImportPolicy(new ImportPolicy({ ranges: [{ prefix: '10.2.0.0/16' }] }));
    assert.deepEqual(res.refreshNeeded, [e.id]);
    assert.equal(rib.locRibSize(V4), 0);
    assert.equal(rib.attrs.size, 0);
  });

  it('a policy change can trigger max-prefix', () => {
    const rib = makeRib({ import: { ranges: [{ prefix: '10.1.0.0/16' }], maxPrefix: { default: { limit: 1, action: 'teardown' } } } });
    const e = peer(1);
    rib.peerUp(e, 0);
    rib.applyUpdate(e.id, update(['10.1.0.0/24', '10.2.0.0/24'], attrs([65101])), 1);
    const res = rib.setImportPolicy(new ImportPolicy({ ranges: [{ prefix: '10.0.0.0/8' }], maxPrefix: { default: { limit: 1, action: 'teardown' } } }));
    assert.equal(res.maxPrefix.length, 1);
    assert.equal(res.maxPrefix[0]!.decision.action, 'teardown');
  });
});
