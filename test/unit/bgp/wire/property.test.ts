// Property tests (fast-check) on every decoder: arbitrary bytes only ever give typed results, never
// an exception; arbitrary valid messages survive encode → decode unchanged (RFC 4271 and extensions).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { decodeMessage, encodeMessage, Framer } from '../../../../daemon/bgp/wire/index.js';
import { decodeOpen } from '../../../../daemon/bgp/wire/open.js';
import { decodeUpdate } from '../../../../daemon/bgp/wire/update.js';
import { decodeNotification, decodeRouteRefresh } from '../../../../daemon/bgp/wire/notification.js';
import { decodeAttributes } from '../../../../daemon/bgp/wire/attributes.js';
import { decodePrefixes } from '../../../../daemon/bgp/wire/addr.js';
import type {
  AsPathSegment,
  BgpError,
  BgpMessage,
  FamilyKey,
  Nlri,
  PathAttributes,
  SessionContext,
  UpdateMessage,
} from '../../../../daemon/bgp/types.js';
import { ctxOf } from './helpers.js';

const ACTIONS = new Set(['session-reset', 'afisafi-disable', 'treat-as-withdraw', 'attribute-discard']);
const RUNS = Number(process.env.NRD_FC_RUNS ?? 300);

function assertTypedError(e: BgpError): void {
  assert.ok(Number.isInteger(e.code) && e.code >= 1 && e.code <= 7, `code ${e.code}`);
  assert.ok(Number.isInteger(e.subcode) && e.subcode >= 0 && e.subcode <= 255);
  assert.ok(e.data instanceof Uint8Array);
  assert.ok(ACTIONS.has(e.action));
  assert.equal(typeof e.reason, 'string');
}

const ctxArb: fc.Arbitrary<SessionContext> = fc.record({
  fourOctetAs: fc.boolean(),
  extendedMessage: fc.boolean(),
  addPathReceive: fc.subarray(['1/1', '2/1'] as FamilyKey[]).map((a) => new Set(a)),
  addPathSend: fc.subarray(['1/1', '2/1'] as FamilyKey[]).map((a) => new Set(a)),
  peerType: fc.constantFrom('ebgp' as const, 'ibgp' as const),
});

/** A frame with a valid marker and length around arbitrary body bytes, so decoders get past §6.1. */
const framed = (type: fc.Arbitrary<number>, body: fc.Arbitrary<Uint8Array>): fc.Arbitrary<Uint8Array> =>
  fc.tuple(type, body).map(([t, b]) => {
    const out = new Uint8Array(19 + b.length);
    out.fill(0xff, 0, 16);
    out[16] = out.length >> 8;
    out[17] = out.length & 0xff;
    out[18] = t;
    out.set(b, 19);
    return out;
  });

/** Bodies biased towards plausible UPDATE structure, so attribute decoding is exercised deeply. */
const attrBytes = fc
  .array(
    fc.tuple(fc.constantFrom(0x40, 0x80, 0xc0, 0x50, 0x90, 0xe0, 0x00), fc.constantFrom(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32, 99), fc.uint8Array({ maxLength: 40 })),
    { maxLength: 8 },
  )
  .map((list) => {
    const parts: number[] = [];
    for (const [fl, ty, v] of list) {
      parts.push(fl, ty);
      if (fl & 0x10) parts.push(v.length >> 8);
      parts.push(v.length & 0xff, ...v);
    }
    return Uint8Array.from(parts);
  });
const updateBody = fc.tuple(fc.uint8Array({ maxLength: 12 }), attrBytes, fc.uint8Array({ maxLength: 20 }), fc.boolean()).map(([w, a, n, corrupt]) => {
  const b = new Uint8Array(4 + w.length + a.length + n.length);
  b[0] = w.length >> 8;
  b[1] = w.length & 0xff;
  b.set(w, 2);
  b[2 + w.length] = a.length >> 8;
  b[3 + w.length] = a.length & 0xff;
  b.set(a, 4 + w.length);
  b.set(n, 4 + w.length + a.length);
  if (corrupt && b.length > 4) b[b.length >> 1] ^= 0x5a;
  return b;
});

const anyFrame = fc.oneof(
  fc.uint8Array({ maxLength: 80 }),
  framed(fc.integer({ min: 0, max: 7 }), fc.uint8Array({ maxLength: 120 })),
  framed(fc.constant(2), updateBody),
  framed(fc.constant(1), fc.uint8Array({ minLength: 10, maxLength: 60 }).map((b) => ((b[0] = 4), b))),
);

test('property: decodeMessage returns a typed result for arbitrary bytes, never throws', () => {
  fc.assert(
    fc.property(anyFrame, ctxArb, (frame, ctx) => {
      const r = decodeMessage(frame, ctx);
      if (r.ok) {
        assert.ok(['open', 'update', 'notification', 'keepalive', 'route-refresh'].includes(r.message.type));
        for (const e of r.errors) assertTypedError(e);
        for (const e of r.errors) assert.ok(e.action === 'treat-as-withdraw' || e.action === 'attribute-discard');
      } else {
        assertTypedError(r.error);
        assert.ok(r.error.action === 'session-reset' || r.error.action === 'afisafi-disable');
      }
    }),
    { numRuns: RUNS * 10 },
  );
});

test('property: each per-type decoder is total on framed bodies', () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 100 }), ctxArb, (body, ctx) => {
      const frame = new Uint8Array(19 + Math.max(body.length, 4));
      frame.set(body, 19);
      const o = decodeOpen(frame);
      if (!o.ok) assertTypedError(o.error);
      const u = decodeUpdate(frame, ctx);
      if (!u.ok) assertTypedError(u.error);
      decodeNotification(frame);
      decodeRouteRefresh(frame);
      const s = decodeAttributes(body, 0, body.length, ctx);
      for (const e of s.errors) assertTypedError(e);
      const out: Nlri[] = [];
      const bad = decodePrefixes(body, 0, body.length, (body[0] ?? 0) & 1 ? 1 : 2, ctx.fourOctetAs, out);
      assert.ok(bad === null || typeof bad === 'string');
    }),
    { numRuns: RUNS * 5 },
  );
});

test('property: the Framer never throws and returns frames or a typed error', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 60 }), { maxLength: 10 }), (chunks) => {
      const f = new Framer();
      for (const c of chunks) {
        f.push(c);
        for (const r of f) {
          if (r.ok) assert.equal(r.frame.length, (r.frame[16]! << 8) | r.frame[17]!);
          else assertTypedError(r.error);
        }
      }
    }),
    { numRuns: RUNS * 3 },
  );
});

// ---- valid message generators -------------------------------------------------------------

const asn = fc.integer({ min: 1, max: 0xffffffff });
const ipv4 = fc.tuple(fc.integer({ min: 1, max: 223 }), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
const anyIpv4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((o) => o.join('.'));
/** Canonical IPv6 text from an independent formatter (WHATWG URL host serialisation, RFC 5952). */
const v6text = (b: Uint8Array): string => {
  const g: string[] = [];
  for (let i = 0; i < 16; i += 2) g.push(((b[i]! << 8) | b[i + 1]!).toString(16));
  return new URL(`http://[${g.join(':')}]/`).hostname.slice(1, -1);
};
const ipv6 = fc.uint8Array({ minLength: 16, maxLength: 16 }).map(v6text);

const prefix4 = fc.tuple(fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 0, max: 32 })).map(([v, len]) => {
  const m = len === 0 ? 0 : (v & (~0 << (32 - len))) >>> 0;
  return `${m >>> 24}.${(m >>> 16) & 255}.${(m >>> 8) & 255}.${m & 255}/${len}`;
});
const prefix6 = fc.tuple(fc.uint8Array({ minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 128 })).map(([b, len]) => {
  const c = Uint8Array.from(b);
  for (let i = 0; i < 16; i++) {
    const keep = Math.max(0, Math.min(8, len - 8 * i));
    c[i]! &= (0xff << (8 - keep)) & 0xff;
  }
  return `${v6text(c)}/${len}`;
});
const nlriOf = (p: fc.Arbitrary<string>, addPath: boolean): fc.Arbitrary<Nlri[]> =>
  fc.array(addPath ? fc.record({ prefix: p, pathId: fc.integer({ min: 0, max: 0xffffffff }) }) : fc.record({ prefix: p }), { maxLength: 6 });

function segments(ctx: SessionContext): fc.Arbitrary<AsPathSegment[]> {
  const seg = (types: AsPathSegment['type'][], n: fc.Arbitrary<number>): fc.Arbitrary<AsPathSegment> =>
    fc.record({ type: fc.constantFrom(...types), asns: fc.array(n, { minLength: 1, maxLength: 6 }) });
  const plain = fc.array(seg([1, 2], asn), { maxLength: 4 });
  if (ctx.peerType === 'ebgp') return plain;
  // Confederation segments come first in a path (RFC 5065 §5); that is also what AS4 merge expects.
  // RFC 6793 §3 leaves them out of AS4_PATH: on a two-octet session they only carry two-octet ASNs.
  const confedAsn = ctx.fourOctetAs ? asn : fc.integer({ min: 1, max: 65535 });
  return fc.tuple(fc.array(seg([3, 4], confedAsn), { maxLength: 2 }), plain).map(([c, p]) => [...c, ...p]);
}

const KNOWN_ATTRS = new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32]);

function attrsArb(ctx: SessionContext, needNextHop: boolean): fc.Arbitrary<PathAttributes> {
  const ibgp = ctx.peerType === 'ibgp';
  return fc
    .record(
      {
        origin: fc.constantFrom(0 as const, 1 as const, 2 as const),
        asPath: segments(ctx),
        nextHop: needNextHop ? ipv4 : fc.option(ipv4, { nil: undefined }),
        med: fc.integer({ min: 0, max: 0xffffffff }),
        localPref: fc.integer({ min: 0, max: 0xffffffff }),
        atomicAggregate: fc.constant(true),
        // On a two-octet session an AGGREGATOR below 65536 would make AS4 attributes stale (§4.2.3).
        aggregator: fc.record({ asn: ctx.fourOctetAs ? asn : fc.integer({ min: 65536, max: 0xffffffff }), address: anyIpv4 }),
        communities: fc.array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: 1, maxLength: 5 }),
        originatorId: ipv4,
        clusterList: fc.array(anyIpv4, { minLength: 1, maxLength: 3 }),
        extCommunities: fc.array(fc.uint8Array({ minLength: 8, maxLength: 8 }).map((b) => Buffer.from(b).toString('hex')), { minLength: 1, maxLength: 3 }),
        largeCommunities: fc.array(fc.record({ global: fc.integer({ min: 0, max: 0xffffffff }), local1: fc.integer({ min: 0, max: 0xffffffff }), local2: fc.integer({ min: 0, max: 0xffffffff }) }), { minLength: 1, maxLength: 3 }),
        unknown: fc
          .uniqueArray(
            fc.record({ flags: fc.constant(0xe0), type: fc.integer({ min: 11, max: 255 }).filter((t) => !KNOWN_ATTRS.has(t)), value: fc.uint8Array({ maxLength: 10 }) }),
            { selector: (u) => u.type, minLength: 1, maxLength: 3 },
          )
          .map((l) => l.sort((a, b) => a.type - b.type)),
      },
      { requiredKeys: needNextHop ? ['origin', 'asPath', 'nextHop'] : ['origin', 'asPath'] },
    )
    .map((a) => {
      const out = { ...a } as PathAttributes;
      if (!ibgp) {
        delete out.localPref;
        delete out.originatorId;
        delete out.clusterList;
      }
      if (out.nextHop === undefined) delete out.nextHop;
      return out;
    });
}

function updateArb(ctx: SessionContext): fc.Arbitrary<UpdateMessage> {
  const ap4 = ctx.addPathReceive.has('1/1');
  const ap6 = ctx.addPathReceive.has('2/1');
  return fc
    .record({
      withdrawn: nlriOf(prefix4, ap4),
      nlri: nlriOf(prefix4, ap4),
      reach: fc.option(fc.record({ nextHops: fc.oneof(fc.tuple(ipv6), fc.tuple(ipv6, ipv6)), nlri: nlriOf(prefix6, ap6) }), { nil: undefined }),
      unreach: fc.option(nlriOf(prefix6, ap6), { nil: undefined }),
      withAttrs: fc.boolean(),
      seedAttrs: fc.constant(null),
    })
    .chain((u) => {
      const announces = u.nlri.length > 0 || (u.reach !== undefined && u.reach.nlri.length > 0);
      const attrs = announces || u.withAttrs ? attrsArb(ctx, u.nlri.length > 0) : fc.constant(null);
      return attrs.map((a) => {
        const m: UpdateMessage = { type: 'update', withdrawn: u.withdrawn, attrs: a, nlri: u.nlri };
        if (u.reach) m.mpReach = { afi: 2, safi: 1, nextHops: [...u.reach.nextHops], nlri: u.reach.nlri };
        if (u.unreach) m.mpUnreach = { afi: 2, safi: 1, withdrawn: u.unreach };
        return m;
      });
    });
}

const shutdownText = fc.string({ unit: 'grapheme', maxLength: 40 });
const notificationArb: fc.Arbitrary<BgpMessage> = fc.oneof(
  fc
    .record({ code: fc.integer({ min: 1, max: 255 }), subcode: fc.nat(255), data: fc.uint8Array({ maxLength: 30 }) })
    .filter((n) => !(n.code === 6 && (n.subcode === 2 || n.subcode === 4)))
    .map((n) => ({ type: 'notification' as const, ...n })),
  fc.tuple(fc.constantFrom(2, 4), shutdownText).map(([subcode, text]) => {
    const t = new TextEncoder().encode(text);
    return { type: 'notification' as const, code: 6, subcode, data: Uint8Array.from([t.length, ...t]), shutdownMessage: text };
  }),
);

const openArb: fc.Arbitrary<BgpMessage> = fc.record({
  type: fc.constant('open' as const),
  version: fc.constant(4),
  myAs: fc.integer({ min: 1, max: 65535 }),
  holdTime: fc.oneof(fc.constant(0), fc.integer({ min: 3, max: 65535 })),
  bgpId: ipv4,
  capabilities: fc.record(
    {
      multiprotocol: fc.array(fc.record({ afi: fc.nat(65535), safi: fc.nat(255) }), { maxLength: 3 }),
      routeRefresh: fc.boolean(),
      enhancedRouteRefresh: fc.boolean(),
      extendedMessage: fc.boolean(),
      fourOctetAs: asn,
      gracefulRestart: fc.record({
        restartState: fc.boolean(),
        notification: fc.boolean(),
        restartTime: fc.nat(4095),
        families: fc.array(fc.record({ afi: fc.nat(65535), safi: fc.nat(255), forwardingPreserved: fc.boolean() }), { maxLength: 3 }),
      }),
      addPath: fc.array(fc.record({ afi: fc.nat(65535), safi: fc.nat(255), mode: fc.constantFrom(1 as const, 2 as const, 3 as const) }), { minLength: 1, maxLength: 3 }),
      unknown: fc.array(
        fc.record({ code: fc.nat(255).filter((c) => ![1, 2, 6, 64, 65, 69, 70].includes(c)), value: fc.uint8Array({ maxLength: 12 }) }),
        { maxLength: 3 },
      ),
    },
    { requiredKeys: ['multiprotocol', 'routeRefresh', 'enhancedRouteRefresh', 'extendedMessage', 'unknown'] },
  ),
});

const messageArb = (ctx: SessionContext): fc.Arbitrary<BgpMessage> =>
  fc.oneof(
    openArb,
    updateArb(ctx),
    notificationArb,
    fc.constant({ type: 'keepalive' as const }),
    fc.record({ type: fc.constant('route-refresh' as const), afi: fc.nat(65535), safi: fc.nat(255), subtype: fc.nat(255) }),
  ).map((m) => structuredClone(m)); // fc.record builds null-prototype objects; decoders build plain ones

test('property: encode → decode round-trips arbitrary valid messages in every session context', () => {
  fc.assert(
    fc.property(
      ctxArb.map((c) => ({ ...c, addPathSend: c.addPathReceive })).chain((ctx) => fc.tuple(fc.constant(ctx), messageArb(ctx))),
      ([ctx, m]) => {
        const bytes = encodeMessage(m, ctx);
        const r = decodeMessage(bytes, ctx);
        assert.ok(r.ok, r.ok ? '' : r.error.reason);
        assert.deepEqual(r.errors, []);
        assert.deepEqual(r.message, m);
        assert.deepEqual(encodeMessage(r.message, ctx), bytes);
      },
    ),
    { numRuns: RUNS * 3 },
  );
});

test('property: IPv6 text formatting agrees with the WHATWG URL serialiser (RFC 5952)', () => {
  fc.assert(
    fc.property(prefix6, (p) => {
      const m: UpdateMessage = { type: 'update', withdrawn: [], attrs: null, nlri: [], mpUnreach: { afi: 2, safi: 1, withdrawn: [{ prefix: p }] } };
      const r = decodeMessage(encodeMessage(m, ctxOf()), ctxOf());
      assert.ok(r.ok && r.message.type === 'update');
      assert.equal(r.message.mpUnreach?.withdrawn[0]?.prefix, p);
    }),
    { numRuns: RUNS * 3 },
  );
});
