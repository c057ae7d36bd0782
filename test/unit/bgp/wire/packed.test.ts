// Packed IPv4 NLRI (wire/packed.ts): decodeMessage with packIpv4 gives a PackedUpdate whose NLRI,
// built on demand, equal the plain decode's (host bits cleared, every length 0..32); whatever the
// packed form cannot carry (add-path, treat-as-withdraw, End-of-RIB) comes back as a plain message;
// malformed NLRI fields get the same typed error either way.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeMessage, encodeMessage, PackedUpdate, packUpdates } from '../../../../daemon/bgp/wire/index.js';
import type { Nlri, PathAttributes, UpdateMessage } from '../../../../daemon/bgp/types.js';
import { symmetricCtx } from './helpers.js';

const PACK = { packIpv4: true };
const attrs: PathAttributes = { origin: 0, asPath: [{ type: 2, asns: [65001] }], nextHop: '192.0.2.1' };

function prefixText(v: number, len: number): string {
  const m = len === 0 ? 0 : (~0 << (32 - len)) >>> 0;
  const a = (v & m) >>> 0;
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${len}`;
}

test('packed decode: same NLRI as the plain decode, for every prefix length', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 })), { minLength: 1, maxLength: 300 }), (list) => {
      const ctx = symmetricCtx();
      const nlri: Nlri[] = list.map(([v, len]) => ({ prefix: prefixText(v, len) }));
      for (const msg of packUpdates(attrs, nlri, ctx, '1/1')) {
        const plain = decodeMessage(msg, ctx);
        const packed = decodeMessage(msg, ctx, PACK);
        assert.ok(plain.ok && packed.ok);
        assert.ok(packed.message instanceof PackedUpdate);
        const p = packed.message;
        const u = plain.message as UpdateMessage;
        assert.equal(p.nlriCount, u.nlri.length);
        assert.deepEqual(p.attrs, u.attrs);
        assert.deepEqual(p.withdrawn, u.withdrawn);
        assert.deepEqual(p.nlri, u.nlri);
        // Re-encoding the packed message gives the same bytes.
        assert.deepEqual(encodeMessage(p, ctx), msg);
      }
    }),
    { numRuns: 100 },
  );
});

test('packed decode: host bits beyond the length are cleared', () => {
  const ctx = symmetricCtx();
  // One NLRI 10.1.2.255/23 on the wire (3 octets: 10.1.3 with host bits set).
  const plain = encodeMessage({ type: 'update', withdrawn: [], attrs, nlri: [{ prefix: '10.1.2.0/23' }] }, ctx);
  const msg = plain.slice();
  msg[msg.length - 1] = 3;
  const r = decodeMessage(msg, ctx, PACK);
  assert.ok(r.ok && r.message instanceof PackedUpdate);
  assert.deepEqual(Array.from(r.message.nlriAddrs!), [0x0a010200]);
  assert.deepEqual(Array.from(r.message.nlriLens!), [23]);
  assert.deepEqual(r.message.nlri, [{ prefix: '10.1.2.0/23' }]);
});

test('packed decode falls back to plain messages: add-path, End-of-RIB, treat-as-withdraw', () => {
  const ap = symmetricCtx({ addPath: ['1/1'] });
  const withIds = encodeMessage({ type: 'update', withdrawn: [], attrs, nlri: [{ prefix: '10.0.0.0/8', pathId: 7 }] }, ap);
  const r1 = decodeMessage(withIds, ap, PACK);
  assert.ok(r1.ok && !(r1.message instanceof PackedUpdate));
  assert.deepEqual((r1.message as UpdateMessage).nlri, [{ prefix: '10.0.0.0/8', pathId: 7 }]);

  const ctx = symmetricCtx();
  const eor = encodeMessage({ type: 'update', withdrawn: [], attrs: null, nlri: [] }, ctx);
  const r2 = decodeMessage(eor, ctx, PACK);
  assert.ok(r2.ok);
  assert.deepEqual(r2.message, { type: 'update', withdrawn: [], attrs: null, nlri: [] });

  // No NEXT_HOP with classic NLRI: RFC 7606 treat-as-withdraw, the prefixes become withdrawals.
  const noNh = encodeMessage({ type: 'update', withdrawn: [], attrs: { origin: 0, asPath: [] }, nlri: [{ prefix: '10.9.0.0/16' }] }, ctx);
  const r3 = decodeMessage(noNh, ctx, PACK);
  assert.ok(r3.ok && !(r3.message instanceof PackedUpdate));
  assert.deepEqual(r3.message, { type: 'update', withdrawn: [{ prefix: '10.9.0.0/16' }], attrs: null, nlri: [] });
  assert.equal(r3.errors.length, 1);
});

test('packed decode: malformed NLRI field gives the same typed error as the plain decode', () => {
  const ctx = symmetricCtx();
  const good = encodeMessage({ type: 'update', withdrawn: [], attrs, nlri: [{ prefix: '10.1.0.0/16' }] }, ctx);
  for (const [lenOctet, cut] of [
    [33, 0],
    [24, 1],
  ] as const) {
    const bad = good.slice(0, good.length - cut);
    bad[bad.length - (3 - cut)] = lenOctet;
    bad[16] = bad.length >> 8;
    bad[17] = bad.length & 255;
    const plain = decodeMessage(bad, ctx);
    const packed = decodeMessage(bad, ctx, PACK);
    assert.equal(plain.ok, false);
    assert.deepEqual(packed, plain);
  }
});

test('PackedUpdate: assigning nlri replaces the packed arrays', () => {
  const ctx = symmetricCtx();
  const [msg] = packUpdates(attrs, [{ prefix: '10.0.0.0/24' }, { prefix: '10.0.1.0/24' }], ctx, '1/1');
  const r = decodeMessage(msg!, ctx, PACK);
  assert.ok(r.ok && r.message instanceof PackedUpdate);
  const u = r.message;
  u.nlri = [{ prefix: '10.7.0.0/16' }];
  assert.equal(u.nlriAddrs, null);
  assert.equal(u.nlriCount, 1);
  assert.deepEqual(u.nlri, [{ prefix: '10.7.0.0/16' }]);
});
