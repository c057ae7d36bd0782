// Property and fuzz tests of the BFD codec: decodeControl throws nothing but BfdPacketError on any
// input; encode → decode is the identity on every valid packet; verifyAuth never throws on decoded
// input. Random bytes, and mutations of valid packets (which reach the deeper checks).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BfdPacketError, STATE_NAMES, decodeControl, encodeControl, verifyAuth, type AuthKey, type ControlPacket } from '../../../daemon/bfd/packet.js';

const u32 = fc.integer({ min: 0, max: 0xffffffff });
const packetArb: fc.Arbitrary<ControlPacket> = fc
  .record({
    diag: fc.integer({ min: 0, max: 31 }),
    state: fc.constantFrom(...STATE_NAMES),
    poll: fc.boolean(),
    final: fc.boolean(),
    cpi: fc.boolean(),
    demand: fc.boolean(),
    detectMult: fc.integer({ min: 1, max: 255 }),
    myDiscriminator: fc.integer({ min: 1, max: 0xffffffff }),
    yourDiscriminator: u32,
    desiredMinTx: u32,
    requiredMinRx: u32,
    requiredMinEchoRx: u32,
  })
  .map((r) => ({ ...r, multipoint: false, yourDiscriminator: r.state === 'Up' || r.state === 'Init' ? r.yourDiscriminator || 1 : r.yourDiscriminator }));
const keyArb: fc.Arbitrary<AuthKey | undefined> = fc.option(
  fc.record({
    type: fc.constantFrom('simple' as const, 'keyed-sha1' as const, 'meticulous-keyed-sha1' as const),
    keyId: fc.integer({ min: 0, max: 255 }),
    secret: fc.uint8Array({ minLength: 1, maxLength: 16 }),
  }),
  { nil: undefined },
);

function onlyTypedErrors(bytes: Uint8Array): void {
  try {
    const p = decodeControl(bytes);
    verifyAuth(bytes, p, { type: 'keyed-sha1', keyId: 1, secret: Uint8Array.of(1) });
    verifyAuth(bytes, p, undefined);
  } catch (err) {
    if (!(err instanceof BfdPacketError)) throw err;
  }
}

test('encode → decode is the identity, with and without auth', () => {
  fc.assert(
    fc.property(packetArb, keyArb, u32, (p, key, seq) => {
      const bytes = encodeControl(p, key, seq);
      const d = decodeControl(bytes);
      const { auth, ...rest } = d;
      assert.deepEqual(rest, p);
      assert.equal(auth !== undefined, key !== undefined);
      assert.equal(verifyAuth(bytes, d, key), null);
    }),
    { numRuns: 2000 },
  );
});

test('decodeControl throws only BfdPacketError on random bytes', () => {
  fc.assert(fc.property(fc.uint8Array({ maxLength: 80 }), (b) => onlyTypedErrors(b)), { numRuns: 20000 });
});

test('decodeControl throws only BfdPacketError on mutated valid packets', () => {
  fc.assert(
    fc.property(packetArb, keyArb, fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.integer({ min: -8, max: 8 }), (p, key, muts, cut) => {
      const b = Uint8Array.from(encodeControl(p, key, 1));
      for (const [at, v] of muts) b[at % b.length] = v;
      onlyTypedErrors(cut < 0 ? b.subarray(0, Math.max(0, b.length + cut)) : Uint8Array.from([...b, ...new Array<number>(cut).fill(0)]));
    }),
    { numRuns: 20000 },
  );
});

test('fuzz: 20,000 random slices (half shaped past the first checks) never escape the typed error', () => {
  // Deterministic PRNG so that a failure names a reproducible seed.
  let x = 0x2545f491;
  const rnd = (): number => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  const buf = new Uint8Array(64);
  for (let i = 0; i < 20000; i++) {
    const len = rnd() % 65;
    for (let j = 0; j < len; j++) buf[j] = rnd() & 0xff;
    // Bias toward the paths past the first checks: version 1, nonzero discriminators, fitting length.
    if (i % 2 === 0 && len >= 24) {
      buf[0] = 0x20 | (buf[0]! & 0x1f);
      buf[3] = Math.min(len, buf[3]! % 64);
      buf[2] ||= 1;
    }
    onlyTypedErrors(buf.subarray(0, len));
  }
  assert.ok(true);
});
