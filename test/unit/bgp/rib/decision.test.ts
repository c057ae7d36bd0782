// Decision process (RFC 4271 §9.1.2.2, RFC 4456 §9): one case per tie-break, each in both
// insertion orders, plus the MED set-elimination case that a pairwise comparator gets wrong.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { PathAttributes } from '../../../../daemon/bgp/types.js';
import type { PeerInfo } from '../../../../daemon/bgp/rib/peer.js';
import { asPathLength, neighborAs } from '../../../../daemon/bgp/rib/decision.js';
import { attrs, bestId, LOCAL_AS, makeRib, peer, update, V4 } from './helpers.js';

const P = '10.244.7.0/24';
type Candidate = [PeerInfo, PathAttributes];

/** Announces the candidates in the given order into a fresh RIB (maxPaths 1) and returns the best. */
function winner(cands: Candidate[]): string | null {
  const rib = makeRib({ maxPaths: 1 });
  for (const [p] of cands) rib.peerUp(p, 0);
  for (const [p, a] of cands) rib.applyUpdate(p.id, update([P], a), 1);
  return bestId(rib, V4, P);
}

/** The first candidate must win whichever arrives first. */
function assertWins(win: Candidate, lose: Candidate): void {
  assert.equal(winner([win, lose]), win[0].id, 'winner first');
  assert.equal(winner([lose, win]), win[0].id, 'winner last');
}

describe('decision tie-breaks, both insertion orders', () => {
  it('highest LOCAL_PREF (iBGP)', () => {
    const a = peer(1, { type: 'ibgp', routerId: '198.51.100.99' });
    const b = peer(2, { type: 'ibgp', routerId: '198.51.100.1' });
    assertWins([a, attrs([], { localPref: 200 })], [b, attrs([], { localPref: 100 })]);
  });

  it('LOCAL_PREF from eBGP is ignored (counts as 100)', () => {
    const i = peer(1, { type: 'ibgp', routerId: '198.51.100.99' });
    const e = peer(2, { type: 'ebgp' });
    // eBGP claims 500 but counts as 100 < 150 from iBGP.
    assertWins([i, attrs([65200], { localPref: 150 })], [e, attrs([65102], { localPref: 500 })]);
  });

  it('missing LOCAL_PREF counts as 100', () => {
    const a = peer(1, { type: 'ibgp', routerId: '198.51.100.99' });
    const b = peer(2, { type: 'ibgp', routerId: '198.51.100.1' });
    assertWins([a, attrs([])], [b, attrs([], { localPref: 99 })]);
  });

  it('shortest AS_PATH', () => {
    assertWins([peer(2), attrs([65102])], [peer(1), attrs([65101, 65001])]);
  });

  it('AS_SET counts as one', () => {
    const withSet = attrs([], { asPath: [{ type: 2, asns: [65102] }, { type: 1, asns: [1, 2, 3, 4] }] });
    assertWins([peer(2), withSet], [peer(1), attrs([65101, 7, 8])]);
  });

  it('confederation segments count zero', () => {
    const confed = attrs([], { asPath: [{ type: 3, asns: [64512, 64513, 64514] }, { type: 2, asns: [65102] }] });
    assertWins([peer(2), confed], [peer(1), attrs([65101, 9])]);
  });

  it('lowest ORIGIN', () => {
    assertWins([peer(2), attrs([65102], { origin: 1 })], [peer(1), attrs([65101], { origin: 2 })]);
    assertWins([peer(2), attrs([65102], { origin: 0 })], [peer(1), attrs([65101], { origin: 1 })]);
  });

  it('lowest MED among paths from the same neighbour AS', () => {
    const a = peer(2, { asn: 65100 });
    const b = peer(1, { asn: 65100 });
    assertWins([a, attrs([65100], { med: 10 })], [b, attrs([65100], { med: 20 })]);
  });

  it('missing MED counts as 0 (lowest)', () => {
    const a = peer(2, { asn: 65100 });
    const b = peer(1, { asn: 65100 });
    assertWins([a, attrs([65100])], [b, attrs([65100], { med: 1 })]);
  });

  it('MED is not compared between different neighbour ASes', () => {
    // peer 1 has the higher MED but a different neighbour AS: router id decides (peer 1 lower).
    assertWins([peer(1), attrs([65101], { med: 500 })], [peer(2), attrs([65102], { med: 1 })]);
  });

  it('eBGP over iBGP', () => {
    const e = peer(2, { routerId: '198.51.100.200' });
    const i = peer(1, { type: 'ibgp', routerId: '198.51.100.1' });
    assertWins([e, attrs([65102])], [i, attrs([65102])]);
  });

  it('lowest router id', () => {
    const a = peer(2, { asn: 65100, routerId: '198.51.100.3' });
    const b = peer(1, { asn: 65100, routerId: '198.51.100.4' });
    assertWins([a, attrs([65100])], [b, attrs([65100])]);
  });

  it('router id compares numerically, not as text', () => {
    const a = peer(2, { asn: 65100, routerId: '9.0.0.1' });
    const b = peer(1, { asn: 65100, routerId: '10.0.0.1' });
    assertWins([a, attrs([65100])], [b, attrs([65100])]);
  });

  it('ORIGINATOR_ID replaces the router id (RFC 4456 §9)', () => {
    const a = peer(1, { type: 'ibgp', routerId: '198.51.100.250' });
    const b = peer(2, { type: 'ibgp', routerId: '198.51.100.5' });
    // a's route was reflected from an originator with a lower id than b's router id.
    assertWins([a, attrs([], { originatorId: '198.51.100.2', clusterList: ['192.0.2.200'] })], [b, attrs([])]);
  });

  it('shortest CLUSTER_LIST', () => {
    const a = peer(2, { type: 'ibgp', routerId: '198.51.100.20' });
    const b = peer(1, { type: 'ibgp', routerId: '198.51.100.21' });
    const o = '198.51.100.7';
    assertWins(
      [a, attrs([], { originatorId: o, clusterList: ['192.0.2.200'] })],
      [b, attrs([], { originatorId: o, clusterList: ['192.0.2.201', '192.0.2.202'] })],
    );
  });

  it('lowest peer address', () => {
    const a = peer(1, { asn: 65100, routerId: '198.51.100.7', address: '192.0.2.50' });
    const b = peer(2, { asn: 65100, routerId: '198.51.100.7', address: '192.0.2.100' });
    assertWins([a, attrs([65100])], [b, attrs([65100])]);
  });

  it('IPv4 peer address before IPv6', () => {
    const a = peer(1, { asn: 65100, routerId: '198.51.100.7', address: '192.0.2.200' });
    const b = peer(2, { asn: 65100, routerId: '198.51.100.7', address: '2001:db8::1' });
    assertWins([a, attrs([65100])], [b, attrs([65100])]);
  });

  it('a locally originated route wins over any learned one', () => {
    const rib = makeRib({ export: { originate: [{ prefix: P }] } });
    const p = peer(1, { type: 'ibgp' });
    rib.peerUp(p, 0);
    rib.applyUpdate(p.id, update([P], attrs([], { localPref: 1000 })), 1);
    assert.equal(bestId(rib, V4, P), 'local');
    assert.equal(rib.candidates(V4, P).length, 2);
  });

  it('steps apply in order: LOCAL_PREF beats a shorter AS_PATH', () => {
    const a = peer(1, { type: 'ibgp', routerId: '198.51.100.99' });
    const b = peer(2, { type: 'ibgp', routerId: '198.51.100.1' });
    assertWins([a, attrs([1, 2, 3], { localPref: 200 })], [b, attrs([1])]);
  });

  it('MED elimination is per neighbour-AS group, whatever the order (set semantics)', () => {
    // Pairwise comparison is not transitive here: A(AS1,MED 20) vs B(AS1,MED 10): B wins;
    // B vs C(AS2,MED 0): router id; C vs A: router id. The RFC's set elimination removes A,
    // then router id among {B, C} picks C.
    const A: Candidate = [peer(1, { routerId: '198.51.100.1' }), attrs([65001], { med: 20 })];
    const B: Candidate = [peer(2, { routerId: '198.51.100.3' }), attrs([65001], { med: 10 })];
    const C: Candidate = [peer(3, { routerId: '198.51.100.2' }), attrs([65002], { med: 0 })];
    const orders = [[A, B, C], [A, C, B], [B, A, C], [B, C, A], [C, A, B], [C, B, A]];
    for (const o of orders) assert.equal(winner(o), C[0].id);
  });
});

describe('decision helpers', () => {
  it('asPathLength: sequence counts each AS, set 1, confed 0', () => {
    assert.equal(asPathLength([]), 0);
    assert.equal(asPathLength([{ type: 2, asns: [1, 2, 3] }, { type: 1, asns: [4, 5] }]), 4);
    assert.equal(asPathLength([{ type: 3, asns: [1, 2] }, { type: 4, asns: [3] }, { type: 2, asns: [9] }]), 1);
  });

  it('neighborAs: first AS after confed segments, local AS when empty', () => {
    assert.equal(neighborAs([], LOCAL_AS), LOCAL_AS);
    assert.equal(neighborAs([{ type: 3, asns: [64512] }, { type: 2, asns: [7, 8] }], LOCAL_AS), 7);
    assert.equal(neighborAs([{ type: 1, asns: [7, 8] }], LOCAL_AS), -1);
  });
});
