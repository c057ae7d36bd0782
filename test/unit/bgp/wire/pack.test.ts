// Bulk UPDATE packing: as many NLRI per message as the (RFC 8654) size allows, each message the same
// bytes encodeMessage would give, every prefix exactly once; withdrawals likewise; End-of-RIB.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeMessage, encodeMessage, packUpdates, packWithdrawals } from '../../../../daemon/bgp/wire/index.js';
import type { FamilyKey, Nlri, PathAttributes, SessionContext, UpdateMessage } from '../../../../daemon/bgp/types.js';
import { symmetricCtx } from './helpers.js';

const v4 = (n: number): Nlri[] => Array.from({ length: n }, (_, i) => ({ prefix: `10.${(i >> 8) & 255}.${i & 255}.0/24` }));
const v6 = (n: number): Nlri[] => Array.from({ length: n }, (_, i) => ({ prefix: `fd00:244:${(i + 1).toString(16)}::/64` }));
const attrs: PathAttributes = {
  origin: 0,
  asPath: [{ type: 2, asns: [65001, 70000] }],
  nextHop: '192.0.2.1',
  med: 10,
  communities: [1, 2, 3],
  largeCommunities: [{ global: 65001, local1: 1, local2: 2 }],
};

function decodeAll(msgs: Uint8Array[], ctx: SessionContext): UpdateMessage[] {
  return msgs.map((m) => {
    const r = decodeMessage(m, ctx);
    assert.ok(r.ok && r.message.type === 'update', r.ok ? '' : r.error.reason);
    assert.deepEqual(r.errors, []);
    return r.message as UpdateMessage;
  });
}

const cases: { name: string; ctx: SessionContext; family: FamilyKey; prefixes: Nlri[]; nextHops?: string[] }[] = [
  { name: 'IPv4 unicast, 4096-octet messages', ctx: symmetricCtx(), family: '1/1', prefixes: v4(5000) },
  { name: 'IPv4 unicast, extended messages', ctx: symmetricCtx({ extendedMessage: true }), family: '1/1', prefixes: v4(40000) },
  { name: 'IPv4 unicast, add-path, two-octet session', ctx: symmetricCtx({ addPath: ['1/1'], fourOctetAs: false }), family: '1/1', prefixes: v4(3000).map((n, i) => ({ ...n, pathId: i })) },
  { name: 'IPv6 unicast in MP_REACH', ctx: symmetricCtx(), family: '2/1', prefixes: v6(3000), nextHops: ['2001:db8::1', 'fe80::1'] },
];

for (const c of cases) {
  test(`packUpdates: ${c.name}`, () => {
    const max = c.ctx.extendedMessage ? 65535 : 4096;
    const msgs = packUpdates(attrs, c.prefixes, c.ctx, c.family, c.nextHops);
    const decoded = decodeAll(msgs, c.ctx);
    const got = decoded.flatMap((u) => (c.family === '1/1' ? u.nlri : u.mpReach!.nlri));
    assert.deepEqual(got, c.prefixes);
    let total = 0;
    for (let i = 0; i < msgs.length; i++) {
      assert.ok(msgs[i]!.length <= max);
      total += msgs[i]!.length;
      // Same bytes as the single-message encoder (MP_REACH first, attributes in type order).
      assert.deepEqual(encodeMessage(decoded[i]!, c.ctx), msgs[i]);
      // Full: the next prefix would not have fitted (every message but the last).
      if (i < msgs.length - 1) assert.ok(msgs[i]!.length + 25 > max, `message ${i} has ${msgs[i]!.length} octets`);
    }
    const per = c.family === '1/1' ? decoded[0]!.attrs : decoded[0]!.attrs;
    assert.equal(per?.med, 10);
    assert.deepEqual(per?.asPath, attrs.asPath, 'four-octet ASN survives (AS4_PATH on two-octet sessions)');
    assert.ok(total < c.prefixes.length * 30);
  });

  test(`packWithdrawals: ${c.name}`, () => {
    const max = c.ctx.extendedMessage ? 65535 : 4096;
    const msgs = packWithdrawals(c.prefixes, c.ctx, c.family);
    const decoded = decodeAll(msgs, c.ctx);
    const got = decoded.flatMap((u) => (c.family === '1/1' ? u.withdrawn : u.mpUnreach!.withdrawn));
    assert.deepEqual(got, c.prefixes);
    for (let i = 0; i < msgs.length; i++) {
      assert.ok(msgs[i]!.length <= max);
      assert.equal(decoded[i]!.attrs, null);
      assert.deepEqual(encodeMessage(decoded[i]!, c.ctx), msgs[i]);
      if (i < msgs.length - 1) assert.ok(msgs[i]!.length + 25 > max);
    }
  });
}

test('packUpdates: no prefixes, no messages; bad input is a RangeError', () => {
  assert.deepEqual(packUpdates(attrs, [], symmetricCtx(), '1/1'), []);
  assert.throws(() => packUpdates(attrs, [{ prefix: '10.0.0.0/33' }], symmetricCtx(), '1/1'), RangeError);
  assert.throws(() => packUpdates({ origin: 0, asPath: [] }, v4(1), symmetricCtx(), '1/1'), RangeError);
  assert.throws(() => packUpdates(attrs, v6(1), symmetricCtx(), '2/1'), RangeError);
});
