// ServicesDatapath (daemon/datapath/services.ts) against a recording applier: the first apply
// writes everything, an unchanged set writes nothing, one service change at 1000 services is a few
// writes, a removed backend drains (DRAINING entry, no slot) and is deleted when the drain ends.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type WireServiceOp, ServicesDatapath } from '../../../daemon/datapath/services.js';
import { BackendState } from '../../../daemon/services/plan.js';
import type { ServiceRecord } from '../../../daemon/state/records.js';

class Recorder {
  batches: WireServiceOp[][] = [];
  async applyServiceOps(ops: WireServiceOp[]): Promise<number> {
    this.batches.push(ops);
    return ops.reduce((n, o) => n + (o.op === 'set-slots' ? o.slots.length : o.op === 'delete-slot-range' ? o.to - o.from : 1), 0);
  }
}

const svc = (i: number, backends: Array<[string, number]>): ServiceRecord => ({
  name: `svc-${String(i).padStart(5, '0')}`, vip: `10.96.${i >> 8}.${i & 255}`, port: 80, protocol: 'tcp',
  backends: backends.map(([ip, port]) => ({ ip, port })),
});

describe('ServicesDatapath', () => {
  it('writes only the diff: nothing for the same set, a few writes for one changed service of 1000', async () => {
    const r = new Recorder();
    const dp = new ServicesDatapath(r, { lbAlgorithm: 'random', maglevTableSize: 251, drainMs: 60_000 });
    const all = Array.from({ length: 1000 }, (_, i) => svc(i, [[`10.244.${i & 7}.${(i >> 3) & 255}`, 8080], ['10.244.9.9', 8080]]));
    await dp.setServices(all);
    assert.ok(dp.metrics.lastApplyWrites >= 1000 * 3, `first apply wrote ${dp.metrics.lastApplyWrites}`);
    await dp.setServices([...all]);
    assert.equal(dp.metrics.lastApplyWrites, 0);
    const changed = [...all];
    changed[500] = svc(500, [['10.244.4.62', 8080], ['10.244.9.9', 8080], ['10.244.200.1', 8080]]);
    await dp.setServices(changed);
    assert.ok(dp.metrics.lastApplyWrites > 0 && dp.metrics.lastApplyWrites <= 6, `one service changed: ${dp.metrics.lastApplyWrites} writes`);
    assert.equal(dp.metrics.errors, 0);
    dp.close();
  });

  it('a backend (or a whole service) re-added during its drain is active again at once, with slots', async () => {
    const t = 1000;
    const r = new Recorder();
    const dp = new ServicesDatapath(r, { lbAlgorithm: 'maglev', maglevTableSize: 251, drainMs: 300_000 }, () => t);
    const both = svc(1, [['10.244.1.5', 80], ['10.244.2.5', 80]]);
    await dp.setServices([both]);
    await dp.setServices([svc(1, [['10.244.1.5', 80]])]);
    assert.deepEqual(dp.status().get('svc-00001')!.backends.map((b) => `${b.ip}=${b.state}`).sort(), ['10.244.1.5=active', '10.244.2.5=draining']);
    await dp.setServices([both]);
    assert.deepEqual(dp.status().get('svc-00001')!.backends.map((b) => `${b.ip}=${b.state}`).sort(), ['10.244.1.5=active', '10.244.2.5=active']);
    const be = r.batches.at(-1)!.find((o) => o.op === 'set-backend');
    assert.equal(be?.op === 'set-backend' && be.value.state, BackendState.ACTIVE);
    // The whole service removed (its only backend drains) and put back: slots again, no reject.
    await dp.setServices([]);
    await dp.setServices([both]);
    const st = dp.status().get('svc-00001')!;
    assert.deepEqual(st.backends.map((b) => b.state), ['active', 'active']);
    assert.equal(dp.metrics.errors, 0);
    dp.close();
  });

  it('drains a removed backend (DRAINING, no slot), then deletes it when the drain ends', async () => {
    let t = 1000;
    const r = new Recorder();
    const dp = new ServicesDatapath(r, { lbAlgorithm: 'maglev', maglevTableSize: 251, drainMs: 5000 }, () => t);
    await dp.setServices([svc(1, [['10.244.1.5', 80], ['10.244.2.5', 80]])]);
    await dp.setServices([svc(1, [['10.244.1.5', 80]])]);
    const ops = r.batches.at(-1)!;
    const be = ops.find((o) => o.op === 'set-backend');
    assert.equal(be?.op === 'set-backend' && be.value.state, BackendState.DRAINING);
    assert.ok(!ops.some((o) => o.op === 'delete-backend'));
    const st = dp.status().get('svc-00001')!;
    assert.deepEqual(st.backends.map((b) => `${b.ip}=${b.state}`).sort(), ['10.244.1.5=active', '10.244.2.5=draining']);
    // every slot now names the remaining backend
    const slots = ops.filter((o) => o.op === 'set-slot');
    assert.ok(slots.length > 0);
    t += 5001;
    await dp.setServices([svc(1, [['10.244.1.5', 80]])]);
    assert.ok(r.batches.at(-1)!.some((o) => o.op === 'delete-backend'));
    assert.deepEqual(dp.status().get('svc-00001')!.backends.map((b) => b.state), ['active']);
    dp.close();
  });
});
