// Connection collision resolution (RFC 4271 §6.8, RFC 6286 §2.3), both ways and the tie-break.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { resolveCollision } from '../../../../daemon/bgp/session/collision.js';

test('higher local BGP id keeps the connection we initiated', () => {
  assert.equal(resolveCollision('192.0.2.2', '192.0.2.1', 65001, 65002), 'outgoing');
});

test('lower local BGP id keeps the connection the peer initiated', () => {
  assert.equal(resolveCollision('192.0.2.1', '192.0.2.2', 65001, 65002), 'incoming');
});

test('ids compare as unsigned 32-bit numbers, not as text', () => {
  // "10.0.0.1" < "9.0.0.1" as strings, but 10.x is the larger number; 200.x must not go negative.
  assert.equal(resolveCollision('10.0.0.1', '9.0.0.1', 1, 2), 'outgoing');
  assert.equal(resolveCollision('200.0.0.1', '9.0.0.1', 1, 2), 'outgoing');
});

test('equal ids (eBGP, RFC 6286): the larger AS keeps the connection it initiated', () => {
  assert.equal(resolveCollision('192.0.2.1', '192.0.2.1', 65010, 65002), 'outgoing');
  assert.equal(resolveCollision('192.0.2.1', '192.0.2.1', 65001, 65002), 'incoming');
});

test('property: both speakers agree on the surviving connection', () => {
  const id = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((p) => p.join('.'));
  fc.assert(
    fc.property(id, id, fc.integer({ min: 1, max: 2 ** 32 - 1 }), fc.integer({ min: 1, max: 2 ** 32 - 1 }), (a, b, asA, asB) => {
      fc.pre(a !== b || asA !== asB);
      // The connection A initiated is A's "outgoing" and B's "incoming": both must pick the same one.
      const keptByA = resolveCollision(a, b, asA, asB);
      const keptByB = resolveCollision(b, a, asB, asA);
      assert.equal(keptByA === 'outgoing', keptByB === 'incoming');
    }),
  );
});
