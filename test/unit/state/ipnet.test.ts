// Unit tests of the pure IP arithmetic (daemon/state/ipnet.ts), with fast-check properties.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { formatCidr, formatIp, parseCidr, parseIp, subnetAt, subnetCount, subnetIndex, usableRange, cidrContains } from '../../../daemon/state/ipnet.js';

test('IPv6 text form is RFC 5952 canonical', () => {
  const cases: [string, string][] = [
    ['fd00:0244:0000:0000:0000:0000:0000:0001', 'fd00:244::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8::0:1', '2001:db8::1'],
    ['::', '::'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
  ];
  for (const [input, want] of cases) assert.equal(formatIp(6, parseIp(input).addr), want, input);
});

test('parse/format round trip (property)', () => {
  fc.assert(
    fc.property(fc.ipV4(), (ip) => {
      const p = parseIp(ip);
      assert.equal(p.family, 4);
      assert.equal(formatIp(4, p.addr), ip.split('.').map(Number).join('.'));
    }),
  );
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: (1n << 128n) - 1n }), (n) => {
      assert.equal(parseIp(formatIp(6, n)).addr, n);
    }),
  );
});

test('parseCidr refuses host bits and bad lengths with a reason', () => {
  assert.throws(() => parseCidr('10.244.1.1/16'), /host bits set.*10\.244\.0\.0\/16/);
  assert.throws(() => parseCidr('10.0.0.0/33'), /prefix length above 32/);
  assert.throws(() => parseCidr('10.0.0.0'), /missing/);
  assert.throws(() => parseCidr('nope/8'), /invalid IP/);
  assert.equal(formatCidr(parseCidr('fd00:244::/48')), 'fd00:244::/48');
});

test('subnetAt and subnetIndex are inverse and stay inside the pool (property)', () => {
  const pools = [parseCidr('10.244.0.0/16'), parseCidr('fd00:244::/48')];
  fc.assert(
    fc.property(fc.constantFrom(0, 1), fc.integer({ min: 0, max: 16 }), fc.bigInt({ min: 0n, max: 1n << 40n }), (pi, extra, raw) => {
      const pool = pools[pi]!;
      const mask = pool.prefixLen + extra;
      const n = subnetCount(pool, mask);
      const i = raw % n;
      const sub = subnetAt(pool, mask, i);
      assert.ok(cidrContains(pool, sub));
      assert.equal(subnetIndex(pool, sub), i);
      assert.equal(parseCidr(formatCidr(sub)).addr, sub.addr);
    }),
  );
});

test('usable range skips network and IPv4 broadcast', () => {
  assert.deepEqual(usableRange(parseCidr('10.0.0.0/24')), { first: 1n, last: 254n });
  assert.deepEqual(usableRange(parseCidr('fd00::/120')), { first: 1n, last: 255n });
  assert.deepEqual(usableRange(parseCidr('10.0.0.0/31')), { first: 0n, last: 1n });
});
