// Address and prefix parsing used by policy and tie-breaks.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { compareAddresses, parseIpv4, parseIpv6, parsePrefix, prefixContains } from '../../../../daemon/bgp/policy/prefix.js';

describe('addresses and prefixes', () => {
  it('IPv4 parse is exact', () => {
    assert.equal(parseIpv4('0.0.0.0'), 0);
    assert.equal(parseIpv4('255.255.255.255'), 0xffffffff);
    assert.equal(parseIpv4('10.244.1.2'), 0x0af40102);
    for (const bad of ['', '1.2.3', '1.2.3.4.5', '256.1.1.1', '1..2.3', '1.2.3.4 ', 'a.b.c.d', '1.2.3.1234']) {
      assert.equal(parseIpv4(bad), -1, bad);
    }
  });

  it('IPv4 parse round-trips every value (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 0xffffffff }), (v) => {
        const text = [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255].join('.');
        assert.equal(parseIpv4(text), v);
      }),
    );
  });

  it('IPv6 text forms', () => {
    assert.equal(parseIpv6('::'), 0n);
    assert.equal(parseIpv6('::1'), 1n);
    assert.equal(parseIpv6('fd00:244::'), 0xfd000244n << 96n);
    assert.equal(parseIpv6('2001:db8:0:0:0:0:0:1'), parseIpv6('2001:db8::1'));
    assert.equal(parseIpv6('::ffff:192.0.2.1'), (0xffffn << 32n) | 0xc0000201n);
    for (const bad of ['1::2::3', '1:2:3:4:5:6:7:8:9', '12345::', 'g::', '1:2:3:4:5:6:7']) assert.equal(parseIpv6(bad), null, bad);
  });

  it('prefixes: host bits must be zero; containment', () => {
    assert.equal(parsePrefix('10.0.0.1/8'), null);
    assert.equal(parsePrefix('10.0.0.0/33'), null);
    assert.equal(parsePrefix('fd00::1/64'), null);
    const outer = parsePrefix('10.244.0.0/16')!;
    assert.ok(prefixContains(outer, parsePrefix('10.244.255.0/24')!));
    assert.ok(prefixContains(outer, outer));
    assert.ok(!prefixContains(outer, parsePrefix('10.0.0.0/8')!));
    assert.ok(!prefixContains(outer, parsePrefix('fd00::/64')!));
    assert.ok(prefixContains(parsePrefix('0.0.0.0/0')!, parsePrefix('1.2.3.4/32')!));
    assert.ok(prefixContains(parsePrefix('fd00::/8')!, parsePrefix('fd00:244::/48')!));
  });

  it('compareAddresses: IPv4 before IPv6, numeric within a family', () => {
    assert.ok(compareAddresses('9.0.0.1', '10.0.0.1') < 0);
    assert.ok(compareAddresses('192.0.2.255', '2001:db8::') < 0);
    assert.ok(compareAddresses('2001:db8::2', '2001:db8::10') < 0);
    assert.equal(compareAddresses('10.0.0.1', '10.0.0.1'), 0);
    assert.ok(compareAddresses('10.0.0.1', 'junk') < 0);
  });
});
