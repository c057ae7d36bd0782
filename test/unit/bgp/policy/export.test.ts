// Export policy details: AS_PATH prepend (RFC 4271 §5.1.2, 255-AS segments, RFC 5065 confed
// removal), community text forms (RFC 1997, RFC 8092), originated route attributes, RFC 4360
// non-transitive extended communities and RFC 4271 partial bit on unknown transitive attributes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ExportPolicy, prependAs } from '../../../../daemon/bgp/policy/export.js';
import { parseCommunity, parseLargeCommunity, NO_EXPORT } from '../../../../daemon/bgp/wire/communities.js';
import { Path } from '../../../../daemon/bgp/rib/path.js';
import { localSource } from '../../../../daemon/bgp/rib/peer.js';
import { attrs, LOCAL_AS, peer, ROUTER_ID, V4 } from '../rib/helpers.js';

const SELF = { localAsn: LOCAL_AS, routerId: ROUTER_ID };

describe('prependAs', () => {
  it('merges into a leading AS_SEQUENCE', () => {
    assert.deepEqual(prependAs([{ type: 2, asns: [1, 2] }], 9, 2), [{ type: 2, asns: [9, 9, 1, 2] }]);
  });
  it('adds a sequence before a leading AS_SET, and to an empty path', () => {
    assert.deepEqual(prependAs([{ type: 1, asns: [1, 2] }], 9, 1), [{ type: 2, asns: [9] }, { type: 1, asns: [1, 2] }]);
    assert.deepEqual(prependAs([], 9, 1), [{ type: 2, asns: [9] }]);
  });
  it('splits segments longer than 255 ASes', () => {
    const out = prependAs([{ type: 2, asns: new Array(250).fill(1) }], 9, 10);
    assert.deepEqual(out.map((s) => s.asns.length), [255, 5]);
    assert.deepEqual(out[0]!.asns.slice(0, 11), [9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 1]);
  });
  it('removes confederation segments toward a true external peer', () => {
    assert.deepEqual(prependAs([{ type: 3, asns: [64512] }, { type: 2, asns: [1] }], 9, 1), [{ type: 2, asns: [9, 1] }]);
  });
  it('does not mutate its input (interned attributes are frozen)', () => {
    const seg = Object.freeze({ type: 2 as const, asns: Object.freeze([1]) as number[] });
    assert.doesNotThrow(() => prependAs([seg], 9, 1));
  });
});

describe('communities', () => {
  it('text, numbers and well-known names', () => {
    assert.equal(parseCommunity('65000:100'), 65000 * 65536 + 100);
    assert.equal(parseCommunity(42), 42);
    assert.equal(parseCommunity('no-export'), NO_EXPORT);
    assert.deepEqual(parseLargeCommunity('4200000000:1:2'), { global: 4200000000, local1: 1, local2: 2 });
  });
  it('rejects malformed values', () => {
    assert.equal(parseCommunity('65536:1'), null);
    assert.equal(parseCommunity('1:2:3'), null);
    assert.equal(parseLargeCommunity('1:2'), null);
    assert.equal(parseCommunity(-1), null);
    assert.equal(parseCommunity('toString'), null);
  });
  it('an export policy with a malformed community names the value', () => {
    assert.throws(() => new ExportPolicy({ originate: [{ prefix: '10.0.0.0/24', communities: ['65536:1'] }] }), /65536:1/);
    assert.throws(() => new ExportPolicy({ originate: [{ prefix: '10.0.0.0/24', largeCommunities: ['1:2'] }] }), /1:2/);
  });
});

describe('export policy', () => {
  it('originated routes take per-prefix values over defaults', () => {
    const pol = new ExportPolicy({
      originate: [{ prefix: '10.244.1.0/24', med: 5 }, { prefix: 'fd00:244:1::/64', communities: [] }],
      defaults: { med: 10, localPref: 150, communities: ['65000:1'], largeCommunities: ['65000:0:1'] },
    });
    const [v4, v6] = pol.originated();
    assert.deepEqual(v4, {
      family: V4,
      prefix: '10.244.1.0/24',
      attrs: { origin: 0, asPath: [], med: 5, localPref: 150, communities: [65000 * 65536 + 1], largeCommunities: [{ global: 65000, local1: 0, local2: 1 }] },
    });
    assert.equal(v6!.family, '2/1');
    assert.equal(v6!.attrs.communities, undefined, 'an explicit empty list overrides the default');
  });

  it('an invalid originated prefix is refused at construction', () => {
    assert.throws(() => new ExportPolicy({ originate: [{ prefix: '10.244.1.1/24' }] }), /10\.244\.1\.1\/24/);
  });

  const learned = (over: Parameters<typeof attrs>[1]) =>
    new Path('10.9.0.0/24', 0, peer(1, { type: 'ibgp' }), attrs([65101], over), ['192.0.2.99'], 0, false);
  const pol = new ExportPolicy({ originate: [], exportLearned: true });

  it('a node that reflects for iBGP clients is no transit: learned routes never go to eBGP peers', () => {
    const nodePol = new ExportPolicy({ originate: [{ prefix: '10.244.1.0/24' }], exportLearned: true, learnedToEbgp: false });
    const self = { ...SELF, clusterId: '192.0.2.1' };
    const fromEbgp = new Path('10.9.0.0/24', 0, peer(1), attrs([65101]), ['192.0.2.99'], 0, false);
    const fromClient = new Path('10.9.1.0/24', 0, peer(3, { type: 'ibgp', rrClient: true }), attrs([]), ['192.0.2.98'], 0, false);
    assert.equal(nodePol.exportRoute(peer(2), V4, fromEbgp, self), null, 'eBGP-learned to another eBGP peer');
    assert.equal(nodePol.exportRoute(peer(2), V4, fromClient, self), null, 'client route to an eBGP peer');
    assert.notEqual(nodePol.exportRoute(peer(4, { type: 'ibgp', rrClient: true }), V4, fromEbgp, self), null, 'eBGP-learned to a client');
    assert.notEqual(nodePol.exportRoute(peer(4, { type: 'ibgp', rrClient: true }), V4, fromClient, self), null, 'reflected to another client');
    const own = nodePol.originated()[0]!;
    const ownPath = new Path(own.prefix, 0, localSource(LOCAL_AS, ROUTER_ID), own.attrs, [], 0, false);
    assert.notEqual(nodePol.exportRoute(peer(2), V4, ownPath, self), null, 'own routes still go to eBGP peers');
  });

  it('non-transitive extended communities stay inside the AS', () => {
    const p = learned({ extCommunities: ['0002fde800000064', '4300000000000001'] });
    assert.deepEqual(pol.exportRoute(peer(2), V4, p, SELF)!.attrs.extCommunities, ['0002fde800000064']);
    assert.deepEqual(pol.exportRoute(peer(2, { type: 'ibgp', rrClient: true }), V4, p, { ...SELF, clusterId: '192.0.2.1' })!.attrs.extCommunities, [
      '0002fde800000064',
      '4300000000000001',
    ]);
  });

  it('unknown optional transitive attributes go on with the Partial bit; non-transitive are dropped', () => {
    const p = learned({
      unknown: [
        { flags: 0xc0, type: 99, value: Uint8Array.of(1) },
        { flags: 0x80, type: 98, value: Uint8Array.of(2) },
      ],
    });
    const out = pol.exportRoute(peer(2), V4, p, SELF)!;
    assert.deepEqual(out.attrs.unknown, [{ flags: 0xe0, type: 99, value: Uint8Array.of(1) }]);
  });

  it('ATOMIC_AGGREGATE and AGGREGATOR pass unchanged', () => {
    const p = learned({ atomicAggregate: true, aggregator: { asn: 65101, address: '192.0.2.50' } });
    const out = pol.exportRoute(peer(2), V4, p, SELF)!;
    assert.equal(out.attrs.atomicAggregate, true);
    assert.deepEqual(out.attrs.aggregator, { asn: 65101, address: '192.0.2.50' });
  });
});
