// Unit tests of the shared IPv4/IPv6 address and CIDR module (daemon/lib/ip.ts), with fast-check
// properties: parse∘format round trips, RFC 5952 canonical text, CIDR host bits and containment.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isIPv6 } from 'node:net';
import fc from 'fast-check';
import {
  bytesToIpValue,
  parseIpv6Into,
  canonicalCidr,
  cidrContains,
  cidrContainsIp,
  cidrsOverlap,
  formatCidr,
  formatIp,
  formatIpBytes,
  ipValueToBytes,
  maskBytesInPlace,
  maskOf,
  parseCidr,
  parseIp,
  parseIpBytes,
  type Family,
  type IpCidr,
} from '../../../daemon/lib/ip.js';

const V4_MAX = (1n << 32n) - 1n;
const V6_MAX = (1n << 128n) - 1n;
const v4Value = fc.bigInt({ min: 0n, max: V4_MAX });
// Values with long zero runs, so that '::' compression is exercised often.
const v6Value = fc
  .array(fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 0xffff })), { minLength: 8, maxLength: 8 })
  .map((gs) => gs.reduce((acc, g) => (acc << 16n) | BigInt(g), 0n));
const anyAddr = fc.oneof(
  v4Value.map((value) => ({ family: 4 as Family, value })),
  v6Value.map((value) => ({ family: 6 as Family, value })),
);
const anyCidr = anyAddr.chain((a) =>
  fc.integer({ min: 0, max: a.family === 4 ? 32 : 128 }).map(
    (prefixLength): IpCidr => ({ family: a.family, value: a.value & maskOf(a.family, prefixLength), prefixLength }),
  ),
);

test('IPv6 text is RFC 5952 canonical', () => {
  const cases: [string, string][] = [
    ['fd00:0244:0000:0000:0000:0000:0000:0001', 'fd00:244::1'],
    ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['::', '::'],
    ['1::', '1::'],
    ['::ffff:192.0.2.1', '::ffff:c000:201'],
  ];
  for (const [input, want] of cases) {
    const a = parseIp(input);
    assert.ok(a, input);
    assert.equal(formatIp(6, a.value), want, input);
    assert.equal(formatIpBytes(parseIpBytes(input)!), want, input);
  }
});

test('invalid addresses and zone ids are refused', () => {
  for (const bad of ['', '1.2.3', '1.2.3.4.5', '01.2.3.4', '256.0.0.1', '1.2.3.4 ', 'fe80::1%eth0', ':::', '1::2::3', 'g::1', '1:2:3:4:5:6:7:8:9']) {
    assert.equal(parseIp(bad), null, bad);
    assert.equal(parseIpBytes(bad), null, bad);
  }
});

test('parse∘format is the identity on values (property)', () => {
  fc.assert(
    fc.property(anyAddr, (a) => {
      const text = formatIp(a.family, a.value);
      assert.deepEqual(parseIp(text), a);
      assert.equal(formatIpBytes(ipValueToBytes(a.family, a.value)), text);
      assert.deepEqual(bytesToIpValue(ipValueToBytes(a.family, a.value)), a);
      assert.deepEqual(parseIpBytes(text), ipValueToBytes(a.family, a.value));
    }),
  );
});

test('formatted text is canonical: IPv4 from fast-check, any IPv6 spelling (property)', () => {
  fc.assert(
    fc.property(fc.ipV4(), (text) => {
      const a = parseIp(text);
      assert.ok(a);
      assert.equal(formatIp(4, a.value), text.split('.').map(Number).join('.'));
    }),
  );
  fc.assert(
    fc.property(fc.ipV6(), (text) => {
      const a = parseIp(text);
      assert.ok(a, text);
      const canon = formatIp(6, a.value);
      assert.ok(isIPv6(canon));
      assert.equal(canon, canon.toLowerCase());
      assert.ok(!/(^|:)0[0-9a-f]/.test(canon), `leading zero in ${canon}`);
      // Without '::' no run of two zero groups is left; with it, none longer than the one compressed.
      const parts = canon.split('::');
      const groupsOf = (s: string): string[] => (s === '' ? [] : s.split(':'));
      const zeroRuns = (s: string): number[] =>
        groupsOf(s).reduce<number[]>((acc, g) => (g === '0' ? [...acc.slice(0, -1), acc.at(-1)! + 1] : [...acc, 0]), [0]);
      const leftover = Math.max(...parts.flatMap(zeroRuns));
      if (parts.length === 1) assert.ok(leftover < 2, canon);
      else assert.ok(leftover <= 8 - parts.flatMap(groupsOf).length, canon);
      // Canonical text is a fixed point.
      assert.equal(formatIp(6, parseIp(canon)!.value), canon);
    }),
  );
});

test('CIDR parse: host bits cleared and flagged, errors named', () => {
  const r = parseCidr('10.244.1.1/16');
  assert.ok(r.ok);
  assert.equal(r.hostBitsSet, true);
  assert.equal(formatCidr(r.cidr), '10.244.0.0/16');
  assert.deepEqual(parseCidr('10.0.0.0'), { ok: false, error: 'missing-length' });
  assert.equal(canonicalCidr('10.0.0.7', { bareIsHost: true }), '10.0.0.7/32');
  assert.equal(canonicalCidr('2001:DB8:0::1/32'), '2001:db8::/32');
  assert.deepEqual(parseCidr('10.0.0.0/ 8'), { ok: false, error: 'bad-length' });
  assert.deepEqual(parseCidr('10.0.0.0/-1'), { ok: false, error: 'bad-length' });
  assert.deepEqual(parseCidr('nope/8'), { ok: false, error: 'bad-address' });
  assert.deepEqual(parseCidr('fe80::1%eth0/64'), { ok: false, error: 'bad-address' });
  assert.deepEqual(parseCidr('10.0.0.0/33'), { ok: false, error: 'length-too-long', family: 4 });
  assert.deepEqual(parseCidr('::/129'), { ok: false, error: 'length-too-long', family: 6 });
});

test('CIDR format∘parse round trip and host-bit flag (property)', () => {
  fc.assert(
    fc.property(anyCidr, anyAddr, (c, a) => {
      const back = parseCidr(formatCidr(c));
      assert.ok(back.ok);
      assert.deepEqual(back.cidr, c);
      assert.equal(back.hostBitsSet, false);
      // Any address of the family with that length parses to its network, flagged iff it differs.
      if (a.family !== c.family) return;
      const r = parseCidr(`${formatIp(a.family, a.value)}/${c.prefixLength}`);
      assert.ok(r.ok);
      assert.equal(r.cidr.value, a.value & maskOf(a.family, c.prefixLength));
      assert.equal(r.hostBitsSet, r.cidr.value !== a.value);
      const bytes = ipValueToBytes(a.family, a.value);
      maskBytesInPlace(bytes, c.prefixLength);
      assert.deepEqual(bytes, ipValueToBytes(a.family, r.cidr.value));
    }),
  );
});

test('containment: a prefix holds its own addresses and its longer sub-prefixes (property)', () => {
  fc.assert(
    fc.property(anyCidr, anyAddr, fc.nat(128), (outer, a, extra) => {
      const bits = outer.family === 4 ? 32 : 128;
      assert.ok(cidrContains(outer, outer));
      if (a.family !== outer.family) {
        assert.equal(cidrContainsIp(outer, a), false);
        return;
      }
      // Put a's host part under outer's network: always inside.
      const hostMask = ((1n << BigInt(bits)) - 1n) ^ maskOf(outer.family, outer.prefixLength);
      const inside = { family: a.family, value: outer.value | (a.value & hostMask) };
      assert.ok(cidrContainsIp(outer, inside));
      const len = outer.prefixLength + (extra % (bits - outer.prefixLength + 1));
      const sub: IpCidr = { family: outer.family, value: inside.value & maskOf(outer.family, len), prefixLength: len };
      assert.ok(cidrContains(outer, sub));
      assert.ok(cidrsOverlap(sub, outer));
      assert.equal(cidrContains(sub, outer), sub.prefixLength === outer.prefixLength);
      // An arbitrary address is inside exactly when its network bits match.
      assert.equal(cidrContainsIp(outer, a), (a.value & maskOf(a.family, outer.prefixLength)) === outer.value);
    }),
  );
});

test('prefixes of different families never contain each other', () => {
  const v4 = parseCidr('0.0.0.0/0');
  const v6 = parseCidr('::/0');
  assert.ok(v4.ok && v6.ok);
  assert.equal(cidrContains(v4.cidr, v6.cidr), false);
  assert.equal(cidrsOverlap(v4.cidr, v6.cidr), false);
});

test('parseIpv6Into accepts exactly what node:net isIPv6 accepts, zone ids excepted (property)', () => {
  const out = new Uint8Array(16);
  const alphabet = fc.constantFrom(...'0123456789abcdefABCDEF:.%g'.split(''));
  fc.assert(
    fc.property(fc.oneof(fc.ipV6(), fc.string({ unit: alphabet, maxLength: 46 })), (t) => {
      assert.equal(parseIpv6Into(t, out, 0), isIPv6(t) && !t.includes('%'), t);
    }),
    { numRuns: 50_000 },
  );
  assert.ok(parseIpv6Into('2001:db8::ffff:192.0.2.1', out, 0));
  assert.equal(formatIpBytes(out), '2001:db8::ffff:c000:201');
});
