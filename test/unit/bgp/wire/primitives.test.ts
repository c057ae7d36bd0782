// Reader/Writer bounds and fork/join (STYLE §5), address text (RFC 5952), OPEN helpers (RFC 4271
// §6.2, RFC 6793, RFC 7911 negotiation).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Reader, ShortRead } from '../../../../daemon/bgp/wire/reader.js';
import { Writer } from '../../../../daemon/bgp/wire/writer.js';
import { canonicalAddress } from '../../../../daemon/bgp/wire/index.js';
import { toHex } from './helpers.js';

test('Reader: reads within its region, sub() confines, short reads throw ShortRead', () => {
  const pool = Uint8Array.from([9, 9, 1, 2, 3, 4, 5, 6, 7, 9]);
  const r = new Reader(pool.subarray(2, 9)); // a view with a byteOffset, like a socket Buffer
  assert.equal(r.u16(), 0x0102);
  const s = r.sub(3);
  assert.equal(s.u8(), 3);
  assert.equal(s.u16(), 0x0405);
  assert.throws(() => s.u8(), ShortRead);
  assert.equal(r.remaining, 2);
  assert.throws(() => r.u32(), ShortRead);
  assert.equal(r.u16(), 0x0607);
});

test('Writer: fork/join fill lengths, grows past its initial size', () => {
  const w = new Writer(2);
  const outer = w.fork(2);
  w.u8(0xaa);
  const inner = w.fork(1);
  w.u32(0x01020304);
  w.join(inner);
  w.join(outer);
  assert.equal(toHex(w.finish()), '0006aa0401020304');
  const big = new Writer(4);
  const f = big.fork(1);
  big.bytes(new Uint8Array(256));
  assert.throws(() => big.join(f), RangeError);
});

test('canonicalAddress: RFC 5952 text', () => {
  assert.equal(canonicalAddress('2001:DB8:0:0:0:0:0:1'), '2001:db8::1');
  assert.equal(canonicalAddress('2001:db8:0:0:1:0:0:1'), '2001:db8::1:0:0:1');
  assert.equal(canonicalAddress('0:0:0:0:0:0:0:0'), '::');
  assert.equal(canonicalAddress('2001:db8:0:1:1:1:1:1'), '2001:db8:0:1:1:1:1:1');
  assert.equal(canonicalAddress('::ffff:192.0.2.1'), '::ffff:c000:201');
  assert.equal(canonicalAddress('192.0.2.1'), '192.0.2.1');
  for (const bad of ['1.2.3', '1.2.3.256', '1::2::3', 'g::1', '1:2:3:4:5:6:7:8:9', '']) assert.equal(canonicalAddress(bad), null, bad);
});
