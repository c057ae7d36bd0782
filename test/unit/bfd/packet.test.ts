// BFD control packet codec (RFC 5880 §4.1, §4.4, §6.8.6 checks): byte-exact fixtures both ways with
// a comment per field, every reception check as its typed error, keyed SHA1 digests.
import { test } from 'node:test';
import { controlPacket } from './packets.js';
import { createHash } from 'node:crypto';
import assert from 'node:assert/strict';
import { BfdPacketError, decodeControl, encodeControl, verifyAuth, type AuthKey, type BfdPacketErrorCode, type ControlPacket } from '../../../daemon/bfd/packet.js';
import { hex, toHex } from '../bgp/wire/helpers.js';

const base: ControlPacket = controlPacket();

test('Down packet without auth: byte-exact both ways', () => {
  const bytes = hex(`
    20        // version 1 (001), diag 0 (00000)
    40        // state Down (01), P F C A D M all 0
    03        // detect mult 3
    18        // length 24
    01020304  // my discriminator
    00000000  // your discriminator 0 (allowed in Down)
    000f4240  // desired min TX 1,000,000 us (slow TX while not Up)
    000493e0  // required min RX 300,000 us
    00000000  // required min echo RX 0: no echo
  `);
  assert.equal(toHex(encodeControl(base)), toHex(bytes));
  assert.deepEqual(decodeControl(bytes), base);
});

test('Up packet with Poll, diag 3 and every flag that may be set: byte-exact both ways', () => {
  const p: ControlPacket = { ...base, diag: 3, state: 'Up', poll: true, cpi: true, demand: true, yourDiscriminator: 0xfffffffe, desiredMinTx: 300_000, requiredMinEchoRx: 50_000 };
  const bytes = hex(`
    23        // version 1, diag 3 (neighbor signaled session down)
    ea        // state Up (11), P 1, F 0, C 1, A 0, D 1, M 0
    03        // detect mult 3
    18        // length 24
    01020304  // my discriminator
    fffffffe  // your discriminator
    000493e0  // desired min TX 300 ms
    000493e0  // required min RX 300 ms
    0000c350  // required min echo RX 50 ms
  `);
  assert.equal(toHex(encodeControl(p)), toHex(bytes));
  assert.deepEqual(decodeControl(bytes), p);
});

test('Final in AdminDown with diag 7', () => {
  const p: ControlPacket = { ...base, diag: 7, state: 'AdminDown', final: true };
  const bytes = hex(`
    27        // version 1, diag 7 (administratively down)
    10        // state AdminDown (00), F 1
    03 18     // detect mult 3, length 24
    01020304 00000000 000f4240 000493e0 00000000
  `);
  assert.equal(toHex(encodeControl(p)), toHex(bytes));
  assert.deepEqual(decodeControl(bytes), p);
});

test('meticulous keyed SHA1: byte-exact, digest over the packet with the key in the hash field', () => {
  const key: AuthKey = { type: 'meticulous-keyed-sha1', keyId: 7, secret: new TextEncoder().encode('nrd-bfd-key') };
  const p: ControlPacket = { ...base, state: 'Up', yourDiscriminator: 9, desiredMinTx: 300_000 };
  const bytes = encodeControl(p, key, 0x11223344);
  // The digest, computed independently here the way RFC 5880 §6.7.4 describes it.
  const pre = hex(`
    20        // version 1, diag 0
    c4        // state Up, A 1
    03        // detect mult 3
    34        // length 52 = 24 + 28
    01020304 00000009 000493e0 000493e0 00000000
    05        // auth type 5: meticulous keyed SHA1
    1c        // auth len 28
    07        // key id 7
    00        // reserved
    11223344  // sequence number
    6e72642d6266642d6b6579 000000000000000000  // key "nrd-bfd-key" zero-padded to 20 bytes
  `);
  const digest = createHash('sha1').update(pre).digest();
  const expected = Uint8Array.from([...pre.subarray(0, 32), ...digest]);
  assert.equal(toHex(bytes), toHex(expected));
  const d = decodeControl(bytes);
  assert.deepEqual(d.auth, { type: 'meticulous-keyed-sha1', keyId: 7, sequence: 0x11223344, digest: Uint8Array.from(digest) });
  assert.equal(verifyAuth(bytes, d, key), null);
  // One flipped bit anywhere in the packet: the digest no longer matches.
  for (const at of [1, 12, 30, 40]) {
    const bad = bytes.slice();
    bad[at]! ^= 0x01;
    let verdict: string | null;
    try {
      verdict = verifyAuth(bad, decodeControl(bad), key);
    } catch (err) {
      assert.ok(err instanceof BfdPacketError);
      continue;
    }
    assert.notEqual(verdict, null, `flipped byte ${at}`);
  }
  assert.equal(verifyAuth(bytes, d, { ...key, secret: new TextEncoder().encode('other') }), 'bad-digest');
  assert.equal(verifyAuth(bytes, d, { ...key, keyId: 8 }), 'key-id');
  assert.equal(verifyAuth(bytes, d, { ...key, type: 'keyed-sha1' }), 'type-mismatch');
  assert.equal(verifyAuth(bytes, d, undefined), 'unexpected');
  assert.equal(verifyAuth(encodeControl(p), decodeControl(encodeControl(p)), key), 'missing');
});

test('keyed SHA1 (type 4) and simple password (type 1) sections', () => {
  const sha: AuthKey = { type: 'keyed-sha1', keyId: 1, secret: new Uint8Array(20).fill(0xab) };
  const b = encodeControl(base, sha, 5);
  assert.equal(b[24], 4);
  assert.equal(b[3], 52);
  assert.equal(verifyAuth(b, decodeControl(b), sha), null);
  const simple: AuthKey = { type: 'simple', keyId: 2, secret: new TextEncoder().encode('pw') };
  const s = encodeControl(base, simple);
  assert.equal(toHex(s.subarray(24)), toHex(hex(`
    01     // auth type 1: simple password
    05     // auth len 5 = 3 + password
    02     // key id 2
    7077   // "pw"
  `)));
  assert.equal(s[3], 29);
  assert.equal(verifyAuth(s, decodeControl(s), simple), null);
  assert.equal(verifyAuth(s, decodeControl(s), { ...simple, secret: new TextEncoder().encode('px') }), 'bad-password');
});

const bad = (code: BfdPacketErrorCode, bytes: Uint8Array): void => {
  assert.throws(
    () => decodeControl(bytes),
    (err: unknown) => err instanceof BfdPacketError && err.code === code,
    `expected ${code}`,
  );
};

test('RFC 5880 §6.8.6 packet checks, each as its typed error', () => {
  const good = encodeControl({ ...base, state: 'Up', yourDiscriminator: 5 });
  const mut = (f: (b: Uint8Array) => void, from = good): Uint8Array => {
    const b = from.slice();
    f(b);
    return b;
  };
  bad('short', good.subarray(0, 23));
  bad('bad-version', mut((b) => (b[0] = 0x40))); // version 2
  bad('bad-version', mut((b) => (b[0] = 0x00))); // version 0
  bad('bad-length', mut((b) => (b[3] = 23)));
  bad('short', mut((b) => (b[3] = 25))); // Length beyond the payload
  bad('bad-length', mut((b) => ((b[1] = b[1]! | 0x04), (b[3] = 25)), Uint8Array.from([...good, 0]))); // A with < 26
  bad('zero-detect-mult', mut((b) => (b[2] = 0)));
  bad('multipoint', mut((b) => (b[1] = b[1]! | 0x01)));
  bad('zero-my-discriminator', mut((b) => b.fill(0, 4, 8)));
  bad('zero-your-discriminator', mut((b) => b.fill(0, 8, 12))); // Up with your discriminator 0
  bad('zero-your-discriminator', mut((b) => (b.fill(0, 8, 12), (b[1] = 0x80)))); // Init likewise
  const withAuth = (section: number[]): Uint8Array => {
    const b = Uint8Array.from([...good, ...section]);
    b[1] = b[1]! | 0x04;
    b[3] = b.length;
    return b;
  };
  bad('bad-auth-type', withAuth([9, 4, 1, 0]));
  bad('bad-auth-length', withAuth([4, 20, 1, 0, ...new Array(16).fill(0)])); // SHA1 must be 28
  bad('bad-auth-length', withAuth([1, 3, 1])); // simple with no password
  bad('bad-auth-length', withAuth([1, 6, 1, 0x61])); // Auth Len beyond the packet
  // Extra bytes after Length are ignored (the UDP payload may be longer).
  assert.deepEqual(decodeControl(Uint8Array.from([...good, 1, 2, 3])), decodeControl(good));
  // Your discriminator 0 is fine in Down and AdminDown.
  decodeControl(mut((b) => (b.fill(0, 8, 12), (b[1] = 0x40))));
  decodeControl(mut((b) => (b.fill(0, 8, 12), (b[1] = 0x00))));
});

test('encoder refuses values that do not fit their fields', () => {
  assert.throws(() => encodeControl({ ...base, desiredMinTx: 2 ** 32 }), RangeError);
  assert.throws(() => encodeControl({ ...base, diag: 32 }), RangeError);
  assert.throws(() => encodeControl({ ...base, detectMult: 256 }), RangeError);
  assert.throws(() => encodeControl(base, { type: 'keyed-sha1', keyId: 1, secret: new Uint8Array(21) }), RangeError);
  assert.throws(() => encodeControl(base, { type: 'simple', keyId: 1, secret: new Uint8Array(17) }), RangeError);
});

