// Framing (RFC 4271 §4.1): every fixture, hand-built and captured from BIRD, split at every byte
// offset, must come out as the same messages; so must the whole stream in arbitrary chunks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Framer } from '../../../../daemon/bgp/wire/index.js';
import { allCaptureFrames } from './bird-captures.test.js';
import { toHex } from './helpers.js';

const fixtures = allCaptureFrames().map((f) => ({ name: f.name, bytes: f.bytes }));

function drain(f: Framer): string[] {
  const out: string[] = [];
  for (const r of f) {
    assert.ok(r.ok, r.ok ? '' : r.error.reason);
    out.push(toHex(r.frame));
  }
  return out;
}

test('framer: every fixture split at every byte offset yields the same message', () => {
  assert.ok(fixtures.length > 0);
  for (const { name, bytes } of fixtures) {
    for (let i = 0; i <= bytes.length; i++) {
      const f = new Framer();
      f.push(bytes.subarray(0, i));
      const first = drain(f);
      f.push(bytes.subarray(i));
      const got = [...first, ...drain(f)];
      assert.deepEqual(got, [toHex(bytes)], `${name} split at ${i}`);
      assert.equal(f.pending, 0);
    }
  }
});

test('framer: the whole fixture stream fed one byte at a time', () => {
  const f = new Framer();
  const got: string[] = [];
  for (const { bytes } of fixtures) for (const b of bytes) {
    f.push(Uint8Array.of(b));
    got.push(...drain(f));
  }
  assert.deepEqual(got, fixtures.map((x) => toHex(x.bytes)));
});

test('framer: the whole fixture stream in arbitrary chunks (property)', () => {
  const stream = Buffer.concat(fixtures.map((x) => x.bytes));
  const expected = fixtures.map((x) => toHex(x.bytes));
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 1, max: stream.length }), { maxLength: 20 }), (cuts) => {
      const points = [...new Set(cuts)].sort((a, b) => a - b);
      const f = new Framer();
      const got: string[] = [];
      let at = 0;
      for (const p of [...points, stream.length]) {
        f.push(stream.subarray(at, p));
        at = p;
        got.push(...drain(f));
      }
      assert.deepEqual(got, expected);
    }),
    { numRuns: 200 },
  );
});

test('framer: a message inside one chunk is a view, not a copy', () => {
  const bytes = fixtures[0]!.bytes;
  const chunk = Buffer.concat([bytes, bytes]);
  const f = new Framer();
  f.push(chunk);
  const r = f.next();
  assert.ok(r?.ok);
  assert.equal(r.frame.buffer, chunk.buffer);
});

/** A KEEPALIVE-typed frame of `len` octets (the framer checks only marker and length). */
function frameOf(len: number, fill: number): Uint8Array {
  const m = new Uint8Array(len).fill(fill);
  m.fill(0xff, 0, 16);
  m[16] = len >> 8;
  m[17] = len & 0xff;
  m[18] = 2;
  return m;
}

test('framer regression: a 64 KiB extended message fed one octet at a time copies O(n) octets, not O(n²)', () => {
  // The old push() joined the whole pending buffer with every chunk: 65535 chunks copied ~2 GB.
  const msg = frameOf(65535, 0xab);
  const f = new Framer();
  f.maxMessage = 65535;
  const t0 = performance.now();
  for (let i = 0; i < msg.length; i++) {
    f.push(msg.subarray(i, i + 1));
    if (i < msg.length - 1) assert.equal(f.next(), null);
  }
  const r = f.next();
  const ms = performance.now() - t0;
  assert.ok(r?.ok);
  assert.equal(toHex(r.frame), toHex(msg));
  assert.ok(f.copied <= 4 * msg.length, `copied ${f.copied} octets for a ${msg.length}-octet message`);
  assert.ok(ms < 2000, `took ${ms.toFixed(0)} ms`);
  assert.equal(f.pending, 0);
});

test('framer: frames already returned are not overwritten by later chunks', () => {
  const a = frameOf(40, 1);
  const b = frameOf(50, 2);
  const c = frameOf(30, 3);
  const stream = Buffer.concat([a, b, c]);
  const f = new Framer();
  const got: Uint8Array[] = [];
  // Split inside every message so that each lands in the framer's own buffer.
  for (const [s, e] of [[0, 20], [20, 60], [60, 100], [100, 120]] as const) {
    f.push(stream.subarray(s, e));
    for (const r of f) {
      assert.ok(r.ok);
      got.push(r.frame);
    }
  }
  assert.deepEqual(got.map(toHex), [a, b, c].map(toHex));
});
