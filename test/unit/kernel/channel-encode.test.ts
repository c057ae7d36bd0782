// encodeBatch (channel.ts), shared by the in-thread channel and the route writer thread: messages
// numbered in order and packed into datagrams within the limit, only the last message of each
// datagram asking for the ACK that settles it, an item that cannot be encoded failing alone, and
// no datagram ever above the limit (WRITE_DATAGRAM_MAX for route writes: a non-preemptible kernel
// holds the CPU for a whole datagram, BFD's thread included).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeBatch, WRITE_DATAGRAM_MAX, type Datagram } from '../../../daemon/kernel/channel.js';
import { NLM_F_ACK, NLM_F_CREATE, NLM_F_REPLACE, NLM_F_REQUEST, RTM_NEWROUTE, routeMaxBytes, splitMessages, writeRoute } from '../../../daemon/kernel/codec.js';
import type { KernelError } from '../../../daemon/kernel/types.js';
import type { Route } from '../../../daemon/kernel/types.js';

/** An item is a payload length (bytes, 4-aligned); negative = its encoding throws. */
const encode = (b: Buffer, off: number, len: number): number => {
  if (len < 0) throw new Error('cannot encode');
  b.fill(0xab, off, off + len);
  return off + len;
};
const maxBytes = (len: number): number => Math.max(0, len);

test('property: datagrams within the limit, sequence numbers in order, one ACK flag per datagram, bad items fail alone', () => {
  const item = fc.oneof(fc.integer({ min: 0, max: 300 }).map((n) => n * 4), fc.constant(-1));
  fc.assert(
    fc.property(fc.array(item, { maxLength: 200 }), fc.integer({ min: 0, max: 0xffffffff }), fc.integer({ min: 1300, max: 8192 }), (items, first, limit) => {
      const dgs: Datagram[] = [];
      const failed: number[] = [];
      encodeBatch(24, 0x500, items, encode, maxBytes, 'test', first, limit, (i) => failed.push(i), (d) => dgs.push({ ...d, buf: Buffer.from(d.buf) }));
      assert.deepEqual(failed, items.flatMap((x, i) => (x < 0 ? [i] : [])));
      const seqs: number[] = [];
      for (const d of dgs) {
        assert.ok(d.buf.length <= limit, `datagram of ${d.buf.length} > ${limit}`);
        const msgs = splitMessages(d.buf);
        assert.equal(msgs.length, d.count);
        assert.equal(msgs[0]!.seq, d.from);
        assert.equal(msgs[msgs.length - 1]!.seq, d.to);
        msgs.forEach((m, i) => {
          assert.equal(m.type, 24);
          assert.ok(m.flags & NLM_F_REQUEST);
          assert.equal(!!(m.flags & NLM_F_ACK), i === msgs.length - 1, 'only the last message asks for the ACK');
          seqs.push(m.seq);
        });
      }
      const want = items.flatMap((x, i) => (x < 0 ? [] : [(first + i) >>> 0]));
      assert.deepEqual(seqs, want, 'every good item once, numbered first + its index');
    }),
    { numRuns: 200 },
  );
});

test('property: an item larger than the limit fails alone with EMSGSIZE and no datagram exceeds the limit', () => {
  const item = fc.integer({ min: 0, max: 3000 }).map((n) => n * 4);
  fc.assert(
    fc.property(fc.array(item, { maxLength: 100 }), fc.integer({ min: 1024, max: 8192 }), (items, limit) => {
      const failed: Array<[number, string]> = [];
      let sent = 0;
      encodeBatch(24, 0, items, encode, maxBytes, 'test', 1, limit, (i, e) => failed.push([i, e.code]), (d) => {
        assert.ok(d.buf.length <= limit, `datagram of ${d.buf.length} > ${limit}`);
        sent += d.count;
      });
      const big = items.flatMap((x, i) => (16 + x > limit ? [[i, 'EMSGSIZE'] as [number, string]] : []));
      assert.deepEqual(failed, big);
      assert.equal(sent, items.length - big.length);
    }),
    { numRuns: 200 },
  );
});

const v4 = (i: number): string => `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`;
const hops = (n: number, family: 4 | 6): Route['nextHops'] =>
  Array.from({ length: n }, (_, j) => ({ gateway: family === 4 ? `192.0.${j >> 8}.${(j & 255) || 1}` : `2001:db8::${(j + 1).toString(16)}`, ifindex: 2 + (j % 5), weight: 1 + (j % 256) }));

test('route batches at WRITE_DATAGRAM_MAX: every datagram within it (16 KiB), ECMP up to the limit, larger routes refused', () => {
  assert.ok(WRITE_DATAGRAM_MAX <= 16 * 1024, 'a larger cap lets one sendmsg hold a non-preemptible CPU for tens of ms');
  fc.assert(
    fc.property(
      fc.array(fc.record({ family: fc.constantFrom<4 | 6>(4, 6), hops: fc.oneof({ weight: 20, arbitrary: fc.integer({ min: 0, max: 4 }) }, { weight: 1, arbitrary: fc.integer({ min: 5, max: 600 }) }) }), { minLength: 1, maxLength: 400 }),
      (specs) => {
        const routes: Route[] = specs.map((s, i) => ({
          family: s.family,
          dst: s.family === 4 ? v4(i) : `2001:db8:${i.toString(16)}::/64`,
          table: 254,
          protocol: 220,
          type: s.hops ? 'unicast' : 'blackhole',
          metric: 20,
          nextHops: hops(s.hops, s.family),
        }));
        const failed = new Map<number, KernelError>();
        let messages = 0;
        encodeBatch(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, routes, (b, o, r) => writeRoute(b, o, r), routeMaxBytes, 'replaceRoutes', 7, WRITE_DATAGRAM_MAX, (i, e) => failed.set(i, e), (d) => {
          assert.ok(d.buf.length <= WRITE_DATAGRAM_MAX, `datagram of ${d.buf.length} bytes`);
          messages += splitMessages(d.buf).length;
        });
        routes.forEach((r, i) => {
          const over = 16 + routeMaxBytes(r) > WRITE_DATAGRAM_MAX;
          assert.equal(failed.get(i)?.code, over ? 'EMSGSIZE' : undefined, `route ${i} with ${r.nextHops.length} next hops`);
        });
        assert.equal(messages, routes.length - failed.size);
      },
    ),
    { numRuns: 60 },
  );
});

test('1M routes: every datagram within WRITE_DATAGRAM_MAX, none lost', () => {
  const routes: Route[] = Array.from({ length: 1_000_000 }, (_, i) => ({ family: 4, dst: v4(i), table: 254, protocol: 220, type: 'unicast', nextHops: [{ gateway: '192.0.2.2' }] }));
  let messages = 0;
  let datagrams = 0;
  let largest = 0;
  encodeBatch(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, routes, (b, o, r) => writeRoute(b, o, r), routeMaxBytes, 'replaceRoutes', 1, WRITE_DATAGRAM_MAX, (i, e) => assert.fail(`route ${i}: ${e.message}`), (d) => {
    largest = Math.max(largest, d.buf.length);
    datagrams++;
    messages += d.count;
  });
  assert.equal(messages, routes.length);
  assert.ok(largest <= WRITE_DATAGRAM_MAX, `largest datagram ${largest}`);
  assert.ok(datagrams >= Math.ceil((routes.length * 52) / WRITE_DATAGRAM_MAX), `${datagrams} datagrams`);
});
