// Byte layout of the sockaddrs handed to setsockopt(TCP_MD5SIG)/bind(2) (no syscalls here).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sockaddr, SOCKET_FAMILY } from '../../../../daemon/bgp/session/tcp-md5.js';

test('sockaddr_in: family 2 little-endian, port big-endian, address', () => {
  assert.deepEqual([...sockaddr(SOCKET_FAMILY.AF_INET, '192.0.2.1', 179)], [2, 0, 0, 179, 192, 0, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0]);
});

test('sockaddr_in6: family 10, port, flowinfo, 16 address bytes, scope id', () => {
  const b = sockaddr(SOCKET_FAMILY.AF_INET6, 'fd00:244::1:2', 179);
  assert.equal(b.length, 28);
  assert.deepEqual([...b.subarray(0, 8)], [10, 0, 0, 179, 0, 0, 0, 0]);
  assert.deepEqual([...b.subarray(8, 24)], [0xfd, 0, 2, 0x44, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 2]);
});

test('an IPv4 peer on a dual-stack (AF_INET6) socket is keyed v4-mapped', () => {
  const b = sockaddr(SOCKET_FAMILY.AF_INET6, '192.0.2.1');
  assert.deepEqual([...b.subarray(8, 24)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 1]);
});

test('bad addresses are refused, not encoded', () => {
  assert.throws(() => sockaddr(SOCKET_FAMILY.AF_INET, 'fd00::1'), TypeError);
  assert.throws(() => sockaddr(SOCKET_FAMILY.AF_INET6, 'not-an-address'), TypeError);
});
