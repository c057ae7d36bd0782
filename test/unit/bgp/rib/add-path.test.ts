// RFC 7911 add-path receive (several paths per prefix from one peer, keyed by path id) and
// RFC 7313 enhanced route refresh inbound (BoRR marks stale, EoRR sweeps).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { UpdateMessage } from '../../../../daemon/bgp/types.js';
import { attrs, makeRib, peer, update, V4 } from './helpers.js';

const P = '10.7.0.0/24';
function withPathIds(ids: number[], a: ReturnType<typeof attrs> | null, withdraw = false): UpdateMessage {
  const nlri = ids.map((pathId) => ({ prefix: P, pathId }));
  return { type: 'update', withdrawn: withdraw ? nlri : [], attrs: a, nlri: withdraw ? [] : nlri };
}

describe('add-path receive', () => {
  it('paths with different ids from one peer are separate candidates; withdrawal by id', () => {
    const rib = makeRib({ maxPaths: 8 });
    const r = peer(1, { type: 'ibgp' });
    rib.peerUp(r, 0);
    rib.applyUpdate(r.id, withPathIds([1], attrs([], { nextHop: '192.0.2.51' })), 1);
    rib.applyUpdate(r.id, withPathIds([2], attrs([], { nextHop: '192.0.2.52' })), 1);
    assert.equal(rib.candidates(V4, P).length, 2);
    const s = rib.selection(V4, P);
    assert.deepEqual(s.ecmp.map((p) => [p.pathId, p.nextHops[0]]), [[1, '192.0.2.51'], [2, '192.0.2.52']]);
    rib.applyUpdate(r.id, withPathIds([1], null, true), 2);
    assert.deepEqual(rib.selection(V4, P).ecmp.map((p) => p.pathId), [2]);
    assert.equal(rib.peerCounts(r.id, V4).accepted, 1);
  });
});

describe('enhanced route refresh inbound (RFC 7313)', () => {
  it('BoRR marks the family stale; re-sent paths survive EoRR, the rest is removed', () => {
    const rib = makeRib();
    const e = peer(1);
    rib.peerUp(e, 0);
    rib.applyUpdate(e.id, update(['10.1.0.0/24', '10.1.1.0/24'], attrs([65101])), 1);
    rib.beginRouteRefresh(e.id, V4);
    assert.equal(rib.peerCounts(e.id, V4).stale, 2);
    rib.applyUpdate(e.id, update(['10.1.0.0/24'], attrs([65101])), 2);
    assert.equal(rib.endRouteRefresh(e.id, V4), 1);
    assert.deepEqual([...rib.bestRoutes(V4)].map(([p]) => p), ['10.1.0.0/24']);
    assert.equal(rib.peerCounts(e.id, V4).stale, 0);
  });
});
