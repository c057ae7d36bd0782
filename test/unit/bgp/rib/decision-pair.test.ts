// The two-candidate fast path of the decision process (RFC 4271 §9.1.2.2, RFC 4456 §9) must pick
// the same best path and ECMP set as the general set-elimination process, in both orders.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decide, decidePair, PAIR_BOTH_ECMP, PAIR_SECOND_BEST, type DecisionOptions } from '../../../../daemon/bgp/rib/decision.js';
import { Path } from '../../../../daemon/bgp/rib/path.js';
import { localSource, type PathSource } from '../../../../daemon/bgp/rib/peer.js';
import type { PathAttributes } from '../../../../daemon/bgp/types.js';
import { LOCAL_AS, peer } from './helpers.js';

const source = fc.oneof(
  { weight: 8, arbitrary: fc.record({ n: fc.integer({ min: 1, max: 3 }), type: fc.constantFrom('ebgp' as const, 'ibgp' as const), rid: fc.integer({ min: 1, max: 3 }) }) },
  { weight: 1, arbitrary: fc.constant(null) },
);

const attributes = fc.record({
  asns: fc.array(fc.integer({ min: 65100, max: 65102 }), { maxLength: 3 }),
  set: fc.boolean(),
  origin: fc.constantFrom(0 as const, 1 as const, 2 as const),
  med: fc.option(fc.integer({ min: 0, max: 2 }), { nil: undefined }),
  localPref: fc.option(fc.constantFrom(100, 200), { nil: undefined }),
  originator: fc.option(fc.constantFrom('198.51.100.11', '198.51.100.12'), { nil: undefined }),
  clusters: fc.option(fc.array(fc.constant('192.0.2.1'), { maxLength: 2 }), { nil: undefined }),
});

type Src = { n: number; type: 'ebgp' | 'ibgp'; rid: number } | null;
type Attrs = { asns: number[]; set: boolean; origin: 0 | 1 | 2; med?: number; localPref?: number; originator?: string; clusters?: string[] };

function path(src: Src, a: Attrs, pathId: number): Path {
  const info: PathSource = src === null ? localSource(LOCAL_AS, '192.0.2.1') : peer(src.n, { type: src.type, routerId: `198.51.100.${10 + src.rid}` });
  const asPath: PathAttributes['asPath'] = a.asns.length === 0 ? [] : [{ type: a.set ? 1 : 2, asns: a.asns }];
  const attrs: PathAttributes = { origin: a.origin, asPath, nextHop: '192.0.2.99' };
  if (a.med !== undefined) attrs.med = a.med;
  if (a.localPref !== undefined) attrs.localPref = a.localPref;
  if (a.originator !== undefined) attrs.originatorId = a.originator;
  if (a.clusters !== undefined) attrs.clusterList = a.clusters;
  return new Path('10.0.0.0/24', pathId, info, attrs, ['192.0.2.99'], 0, false);
}

describe('two-candidate decision', () => {
  it('equals the general process for any pair, both orders, any ECMP options', () => {
    fc.assert(
      fc.property(
        source,
        attributes,
        source,
        attributes,
        fc.integer({ min: 0, max: 2 }),
        fc.integer({ min: 1, max: 3 }),
        fc.boolean(),
        (s1, a1, s2, a2, id, maxPaths, asPathRelax) => {
          const opts: DecisionOptions = { maxPaths, asPathRelax, localAsn: LOCAL_AS };
          const x = path(s1, a1, id);
          const y = path(s2, a2, 1);
          for (const [a, b] of [[x, y], [y, x]] as const) {
            const sel = decide([a, b], opts);
            const r = decidePair(a, b, opts);
            assert.equal((r & PAIR_SECOND_BEST) !== 0 ? b : a, sel.best);
            assert.equal((r & PAIR_BOTH_ECMP) !== 0 ? 2 : 1, sel.ecmp.length);
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
