// The RIB fed packed IPv4 NLRI (wire/packed.ts PackedUpdate, the speaker's bulk form) ends up
// exactly as when fed the same UPDATEs as Nlri objects: same Loc-RIB, same counts, same change
// stream (prefix text included), rejected and long (> /24) prefixes, a second peer, withdrawals
// by text of prefixes learned packed, and the packed message's nlri never materialised.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { PackedUpdate } from '../../../../daemon/bgp/wire/packed.js';
import { RecordingSink } from '../../../../daemon/bgp/rib/changes.js';
import type { Rib } from '../../../../daemon/bgp/rib/rib.js';
import type { PathAttributes, UpdateMessage } from '../../../../daemon/bgp/types.js';
import { attrs, makeRib, peer, update, V4 } from './helpers.js';

function parse(prefix: string): [number, number] {
  const [a, l] = prefix.split('/');
  const o = a!.split('.').map(Number);
  return [((o[0]! << 24) | (o[1]! << 16) | (o[2]! << 8) | o[3]!) >>> 0, Number(l)];
}

/** A PackedUpdate that throws if anything reads its nlri (the RIB must use the arrays). */
function packed(prefixes: string[], a: PathAttributes): UpdateMessage {
  const u = new PackedUpdate([], a, Uint32Array.from(prefixes.map((p) => parse(p)[0])), Uint8Array.from(prefixes.map((p) => parse(p)[1])));
  Object.defineProperty(u, 'nlri', {
    get() {
      throw new Error('nlri materialised');
    },
  });
  return u;
}

function snapshot(rib: Rib): string[] {
  const out: string[] = [];
  for (const [prefix, sel] of rib.bestRoutes(V4)) out.push(`${prefix} ${sel.ecmp.map((p) => `${p.peerId}:${p.prefix}`).join(',')}`);
  return out.sort();
}

const prefixArb = fc
  .tuple(fc.constantFrom(10, 11), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 }), fc.constantFrom(8, 16, 23, 24, 25, 32))
  .map(([a, b, c, d, len]) => {
    const v = ((a << 24) | (b << 16) | (c << 8) | d) >>> 0;
    const m = (~0 << (32 - len)) >>> 0;
    const x = (v & m) >>> 0;
    return `${x >>> 24}.${(x >>> 16) & 255}.${(x >>> 8) & 255}.${x & 255}/${len}`;
  });

test('packed and plain UPDATEs build the same RIB and the same changes', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.integer({ min: 1, max: 2 }), fc.uniqueArray(prefixArb, { minLength: 1, maxLength: 40 }), fc.integer({ min: 1, max: 3 }), fc.boolean()), {
        minLength: 1,
        maxLength: 8,
      }),
      (steps) => {
        const run = (pack: boolean) => {
          const rib = makeRib();
          const sink = new RecordingSink();
          rib.subscribe(sink);
          const peers = [peer(1, { asn: 65100 }), peer(2, { asn: 65100 })];
          for (const p of peers) rib.peerUp(p, 0);
          let t = 1;
          const counts: unknown[] = [];
          for (const [who, prefixes, hops, withdraw] of steps) {
            const id = peers[who - 1]!.id;
            const a = attrs(Array.from({ length: hops }, () => 65100));
            // 11.0.0.0/8 is outside the import ranges: rejected (and kept) either way.
            if (withdraw) rib.applyUpdate(id, update([], null, prefixes), t++);
            else rib.applyUpdate(id, pack ? packed(prefixes, a) : update(prefixes, a), t++);
            counts.push(rib.peerCounts(id, V4));
            rib.flushChanges();
          }
          return { table: snapshot(rib), changes: sink.changes.map((c) => `${c.prefix} ${c.best?.peerId ?? '-'}`), counts };
        };
        assert.deepEqual(run(true), run(false));
      },
    ),
    { numRuns: 60 },
  );
});

test('a path learned packed has its canonical prefix text', () => {
  const rib = makeRib();
  const a = peer(1);
  rib.peerUp(a, 0);
  const sink = new RecordingSink();
  rib.subscribe(sink);
  const r = rib.applyUpdate(a.id, packed(['10.0.0.0/8', '10.1.2.0/24', '10.1.2.128/25', '10.1.2.3/32', '11.0.0.0/24'], attrs([65101])), 1);
  assert.equal(r.accepted, 4);
  assert.equal(r.rejected, 1);
  rib.flushChanges();
  assert.deepEqual(sink.changes.map((c) => c.prefix).sort(), ['10.0.0.0/8', '10.1.2.0/24', '10.1.2.128/25', '10.1.2.3/32']);
  assert.deepEqual(rib.candidates(V4, '10.1.2.0/24').map((p) => p.prefix), ['10.1.2.0/24']);
  // Withdrawn by text, as a plain UPDATE carries it.
  assert.equal(rib.applyUpdate(a.id, update([], null, ['10.1.2.0/24', '10.1.2.3/32', '11.0.0.0/24']), 2).withdrawn, 3);
  assert.equal(rib.locRibSize(V4), 2);
});
