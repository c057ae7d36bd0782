// Flow events (daemon/datapath/events.ts): the struct nrd_flow_event decoder against a byte-exact
// record, its refusals, the monitor filters, the hub's fan-out and the worker pump's batching.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  EventDecodeError, EventFilterError, EventHub, EventPump, FLOW_EVENT_SIZE, type FlowEvent, type RingReader,
  decodeFlowEvent, matchesFilter, parseEventFilter,
} from '../../../daemon/datapath/events.js';
import { droppedRecord } from './flow-event-fixture.js';

const clock = { monoNs: 6_000_000_000n, wallMs: Date.parse('2024-05-01T12:00:01.000Z') };

describe('decodeFlowEvent', () => {
  it('decodes every field of a 104-byte record; wall time from the monotonic clock', () => {
    const e = decodeFlowEvent(droppedRecord(), new Map([[0xaabbccdd, 'db-1']]), clock);
    assert.deepEqual(e, {
      tsNs: '5000000000', time: '2024-05-01T12:00:00.000Z', type: 'dropped', reason: 'policy', endpoint: 'db-1',
      endpointNumericId: 0xaabbccdd, dir: 'ingress', ifindex: 7, family: 4, proto: 6, src: '10.244.2.2', dst: '10.244.1.2',
      sport: 40000, dport: 5432, srcIdentity: 301, dstIdentity: 300, len: 74, translated: null, serviceId: 0, backendId: 0, suppressed: 3,
    } satisfies FlowEvent);
  });

  it('decodes a service translation (backend address and port, service and backend ids) and the new drop reasons', () => {
    const b = Buffer.from(droppedRecord({ type: 3, reason: 1 }));
    Buffer.from([10, 244, 3, 7]).copy(b, 72);
    b.writeUInt16BE(8080, 38);
    b.writeUInt32LE(12, 88);
    b.writeUInt32LE(34, 92);
    const e = decodeFlowEvent(b, new Map(), clock);
    assert.deepEqual([e.type, e.reason, e.translated, e.serviceId, e.backendId], ['translated', 'service', { addr: '10.244.3.7', port: 8080 }, 12, 34]);
    const names = [6, 7, 8].map((reason) => decodeFlowEvent(droppedRecord({ reason }), new Map(), clock).reason);
    assert.deepEqual(names, ['no_backend', 'no_route', 'prefilter']);
  });

  it('decodes a frame that is not IP (family 0) with empty addresses', () => {
    const e = decodeFlowEvent(droppedRecord({ family: 0 }), new Map(), clock);
    assert.deepEqual([e.family, e.src, e.dst, e.translated], [0, '', '', null]);
  });

  it('random records: decoded or refused with EventDecodeError, never another exception', () => {
    let seed = 0x2545f491;
    const rnd = (): number => {
      seed ^= seed << 13; seed ^= seed >>> 17; seed ^= seed << 5;
      return (seed >>> 0) / 2 ** 32;
    };
    let decoded = 0;
    for (let i = 0; i < 20000; i++) {
      // sizes around the record's, and records of the right size with random bytes; family kept
      // valid in half of them so the later fields are reached
      const size = i % 4 === 0 ? Math.floor(rnd() * 2 * FLOW_EVENT_SIZE) : FLOW_EVENT_SIZE;
      const b = Buffer.alloc(size);
      for (let j = 0; j < size; j++) b[j] = Math.floor(rnd() * 256);
      if (size === FLOW_EVENT_SIZE && i % 2) b[31] = [0, 4, 6][i % 3]!;
      if (size === FLOW_EVENT_SIZE && i % 3 === 0) b.writeBigUInt64LE(BigInt(Math.floor(rnd() * 1e12)), 0);
      try {
        const e = decodeFlowEvent(b, new Map(), clock);
        assert.equal(typeof e.reason, 'string');
        JSON.stringify(e);
        decoded++;
      } catch (err) {
        assert.ok(err instanceof EventDecodeError, `record ${b.toString('hex')}: ${String(err)}`);
      }
    }
    assert.ok(decoded > 1000, `only ${decoded} random records decoded`);
  });

  it('names forward reasons and translations; unknown endpoints by number; IPv6 addresses', () => {
    assert.equal(decodeFlowEvent(droppedRecord({ type: 1, reason: 3 }), new Map(), clock).reason, 'reply');
    assert.equal(decodeFlowEvent(droppedRecord({ type: 3, reason: 2 }), new Map(), clock).reason, 'masquerade');
    assert.equal(decodeFlowEvent(droppedRecord({ endpoint: 42 }), new Map(), clock).endpoint, '42');
    assert.equal(decodeFlowEvent(droppedRecord({ endpoint: 0 }), new Map(), clock).endpoint, null);
    const v6 = Buffer.from(droppedRecord({ family: 6 }));
    Buffer.from('fd000000000000000000000000000001', 'hex').copy(v6, 40);
    assert.equal(decodeFlowEvent(v6, new Map(), clock).src, 'fd00::1');
  });

  it('refuses a record of another size or an unknown family', () => {
    assert.throws(() => decodeFlowEvent(new Uint8Array(FLOW_EVENT_SIZE - 1)), EventDecodeError);
    assert.throws(() => decodeFlowEvent(droppedRecord({ family: 9 })), EventDecodeError);
  });
});

describe('filters', () => {
  const e = decodeFlowEvent(droppedRecord(), new Map([[0xaabbccdd, 'db-1']]), clock);
  it('match endpoint, verdict and type (reason or event type)', () => {
    assert.ok(matchesFilter(e, {}));
    assert.ok(matchesFilter(e, { endpoint: 'db-1', verdict: 'dropped', type: 'policy' }));
    assert.ok(matchesFilter(e, { type: 'dropped' }));
    assert.ok(!matchesFilter(e, { verdict: 'forwarded' }));
    assert.ok(!matchesFilter(e, { endpoint: 'web-1' }));
    assert.ok(!matchesFilter(e, { type: 'spoofed' }));
  });
  it('parse from a query; an unknown verdict or key is refused', () => {
    assert.deepEqual(parseEventFilter(new URLSearchParams('endpoint=db-1&verdict=dropped&type=')), { endpoint: 'db-1', verdict: 'dropped' });
    assert.throws(() => parseEventFilter(new URLSearchParams('verdict=denied')), EventFilterError);
    assert.throws(() => parseEventFilter(new URLSearchParams('ep=x')), EventFilterError);
  });
});

describe('EventHub and EventPump', () => {
  it('the pump posts one batch per round with records; the hub decodes it for matching subscribers only', () => {
    const hub = new EventHub(() => new Map([[0xaabbccdd, 'db-1']]));
    const seen: { all: FlowEvent[]; fwd: FlowEvent[] } = { all: [], fwd: [] };
    hub.subscribe({}, (e) => seen.all.push(e));
    const off = hub.subscribe({ verdict: 'forwarded' }, (e) => seen.fwd.push(e));
    let queued: Uint8Array[] = [];
    let closed = false;
    const pump = new EventPump((onRecord): RingReader => ({
      consume: () => {
        const n = queued.length;
        for (const r of queued) onRecord(r);
        queued = [];
        return n;
      },
      close: () => { closed = true; },
    }), (batch) => hub.publishRaw(batch, clock), 1e9);
    pump.start();
    pump.round();
    assert.equal(pump.counts.batches, 0, 'nothing drained, nothing posted');
    queued = [droppedRecord(), droppedRecord({ type: 1, reason: 1 }), new Uint8Array(10)];
    pump.round();
    assert.deepEqual(pump.counts, { records: 2, badSize: 1, batches: 1 });
    assert.deepEqual(seen.all.map((e) => e.type), ['dropped', 'forwarded']);
    assert.deepEqual(seen.fwd.map((e) => e.reason), ['policy']);
    off();
    assert.equal(hub.subscribers, 1);
    pump.stop();
    assert.ok(closed);
  });
});
