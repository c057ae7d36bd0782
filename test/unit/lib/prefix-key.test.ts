// Compact prefix keys (daemon/lib/prefix-key.ts), the keys of routing's and the reconciler's
// per-route tables: checked against the canonical text (addr.ts) as the simple model — a table
// keyed by PrefixKey holds exactly what a Map keyed by canonical text holds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalPrefix, parsePrefix } from '../../../daemon/kernel/addr.js';
import { keyFamily, keyV4, prefixKey, prefixText, shortKeyV4 } from '../../../daemon/lib/prefix-key.js';

const v4Prefix = fc
  .tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 }))
  .map(([a, len]) => `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}/${len}`);
const v6Prefix = fc
  .tuple(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), fc.integer({ min: 0, max: 128 }))
  .map(([g, len]) => `${g.map((x) => x.toString(16)).join(':')}/${len}`);
const anyPrefix = fc.oneof(v4Prefix, v4Prefix, v6Prefix);

test('prefix keys: a number exactly for IPv4 up to /24, text otherwise; the text of a key is the canonical prefix', () => {
  fc.assert(
    fc.property(anyPrefix, (raw) => {
      const c = canonicalPrefix(raw);
      const k = prefixKey(c);
      const p = parsePrefix(c);
      assert.equal(typeof k === 'number', p.family === 4 && p.len <= 24, c);
      assert.equal(prefixText(k), c);
      assert.equal(keyFamily(k), p.family);
      if (typeof k === 'number') assert.ok(Number.isInteger(k) && k >= 0 && k < 2 ** 31, 'a small integer');
      const v4 = keyV4(k);
      if (p.family === 6) assert.equal(v4, undefined);
      else assert.deepEqual(v4, { addr: p.bytes.readUInt32BE(0), len: p.len });
    }),
    { numRuns: 2000 },
  );
});

test('prefix keys: text that is not canonical is never a short key (it would alias another prefix)', () => {
  for (const t of ['10.0.0.1/24', '10.0.1.0/16', '010.0.0.0/8', '10.0.0.0/024', '10.0.0.00/24', '10.0.0.0', '10.0.0.0/', '10.0.0.0/25', 'a.b.c.d/8', '1.2.3.0/-1']) {
    assert.equal(shortKeyV4(t), -1, t);
  }
  assert.equal(prefixKey('10.0.0.0/25'), '10.0.0.0/25');
  assert.equal(prefixKey('0.0.0.0/0'), 0);
});

test('property: a table keyed by PrefixKey holds what a Map keyed by canonical text holds (set, delete, iterate)', () => {
  const op = fc.record({ p: anyPrefix, del: fc.boolean(), v: fc.integer({ min: 0, max: 3 }) });
  fc.assert(
    fc.property(fc.array(op, { maxLength: 200 }), (ops) => {
      const model = new Map<string, number>();
      const table = new Map<number | string, number>();
      for (const o of ops) {
        const c = canonicalPrefix(o.p);
        if (o.del) {
          model.delete(c);
          table.delete(prefixKey(c));
        } else {
          model.set(c, o.v);
          table.set(prefixKey(c), o.v);
        }
        assert.equal(table.size, model.size);
      }
      const back = [...table].map(([k, v]) => [prefixText(k), v] as const).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      const want = [...model].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
      assert.deepEqual(back, want);
    }),
    { numRuns: 300 },
  );
});
