// Address and prefix text used by the config: canonical forms, containment, communities.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cidrContains, formatIp, parseCidr, parseCommunity, parseIp, parseLargeCommunity } from '../../../daemon/config/net.js';

test('canonical text (RFC 5952) and host bits', () => {
  assert.equal(parseCidr('FD00:0244:0000::/48')!.network, 'fd00:244::/48');
  assert.equal(parseCidr('10.244.1.7/16')!.network, '10.244.0.0/16');
  assert.equal(parseCidr('10.244.1.7/16')!.hostBitsSet, true);
  assert.equal(parseCidr('10.244.0.0/16')!.hostBitsSet, false);
  assert.equal(parseCidr('2001:db8:0:0:1:0:0:1/128')!.network, '2001:db8::1:0:0:1/128');
  assert.equal(parseCidr('::/0')!.network, '::/0');
  assert.equal(parseCidr('0.0.0.0/0')!.network, '0.0.0.0/0');
  assert.equal(parseCidr('::ffff:192.0.2.1/128')!.network, '::ffff:c000:201/128');
  for (const bad of ['10.0.0.0', '10.0.0.0/33', '10.0.0.0/-1', '10.0.0.0/ 8', 'fe80::1%eth0/64', '/8', '10.0.0.0/08x', '']) {
    assert.equal(parseCidr(bad), null, bad);
  }
});

test('containment', () => {
  const pool = parseCidr('10.244.0.0/16')!;
  assert.ok(cidrContains(pool, parseCidr('10.244.3.0/24')!));
  assert.ok(!cidrContains(pool, parseCidr('10.245.0.0/24')!));
  assert.ok(!cidrContains(pool, parseCidr('10.0.0.0/8')!));
  assert.ok(!cidrContains(pool, parseCidr('fd00::/64')!));
});

test('IPv4 and IPv6 text round-trips through the integer form', () => {
  fc.assert(
    fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (text) => {
      const ip = parseIp(text);
      if (!ip) return; // fast-check emits some forms Node's isIP refuses (e.g. leading zeros)
      const again = parseIp(formatIp(ip.family, ip.value));
      assert.ok(again);
      assert.equal(again.value, ip.value);
    }),
  );
});

test('communities', () => {
  assert.equal(parseCommunity('65000:100'), 65000 * 65536 + 100);
  assert.equal(parseCommunity('no-export'), 0xffffff01);
  assert.equal(parseCommunity('NO-EXPORT'), 0xffffff01);
  assert.equal(parseCommunity('65536:1'), null);
  assert.equal(parseCommunity('toString'), null);
  assert.deepEqual(parseLargeCommunity('4294967295:1:2'), { global: 4294967295, local1: 1, local2: 2 });
  assert.equal(parseLargeCommunity('4294967296:1:2'), null);
});
