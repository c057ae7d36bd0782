// encodeBatch (channel.ts), shared by the in-thread channel and the route writer thread: messages
// numbered in order and packed into datagrams within the limit, only the last message of each
// datagram asking for the ACK that settles it, and an item that cannot be encoded failing alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { encodeBatch, type Datagram } from '../../../daemon/kernel/channel.js';
import { NLM_F_ACK, NLM_F_REQUEST, splitMessages } from '../../../daemon/kernel/codec.js';

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
