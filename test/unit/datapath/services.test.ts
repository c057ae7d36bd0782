// ServicesDatapath (daemon/datapath/services.ts) against a recording applier: the first apply
// writes everything, an unchanged set writes nothing, one service change at 1000 services is a few
// writes, a removed backend drains (DRAINING entry, no slot) and is deleted when the drain ends.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type WireServiceOp, ServicesDatapath } from '../../../daemon/datapath/services.js';
import { BackendState, planServices } from '../../../daemon/services/plan.js';
import type { ServiceRecord } from '../../../daemon/state/records.js';
import { ServiceMapsModel, planContents, untilRetried } from '../services/service-model.js';

class Recorder {
  batches: WireServiceOp[][] = [];
  async applyServiceOps(ops: WireServiceOp[]): Promise<number> {
    this.batches.push(ops);
    return ops.reduce((n, o) => n + (o.op === 'set-slots' ? 5 : o.op === 'prune' ? 0 : 1), 0);
  }
}

const svc = (i: number, backends: Array<[string, number]>): ServiceRecord => ({
  name: `svc-${String(i).padStart(5, '0')}`, vip: `10.96.${i >> 8}.${i & 255}`, port: 80, protocol: 'tcp',
  backends: backends.map(([ip, port]) => ({ ip, port })),
});

/** A ServicesDatapath writing into a model of the maps (M = 31, no drain). */
function onModel(lbAlgorithm: 'maglev' | 'random') {
  const model = new ServiceMapsModel();
  model.maglevM = 31;
  const opts = { lbAlgorithm, maglevTableSize: 31, drainMs: 0 };
  return { model, opts, dp: new ServicesDatapath(model, opts) };
}

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
    assert.ok(dp.metrics.lastApplyWrites > 0 && dp.metrics.lastApplyWrites <= 8, `one service changed: ${dp.metrics.lastApplyWrites} writes`);
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
    // the service's table is swapped for one naming only the remaining backend
    const slots = ops.filter((o) => o.op === 'set-slots');
    assert.equal(slots.length, 1);
    const remaining = dp.plan.backendIds.get('tcp|10.244.1.5|80');
    assert.ok(slots[0]!.op === 'set-slots' && slots[0]!.slots.every((b) => b === remaining));
    t += 5001;
    await dp.setServices([svc(1, [['10.244.1.5', 80]])]);
    assert.ok(r.batches.at(-1)!.some((o) => o.op === 'delete-backend'));
    assert.deepEqual(dp.status().get('svc-00001')!.backends.map((b) => b.state), ['active']);
    dp.close();
  });

  it('the first apply prunes what a previous run left in the maps (services, tables, rev-NAT, backends)', async () => {
    const model = new ServiceMapsModel();
    model.maglevM = 31;
    const opts = { lbAlgorithm: 'maglev' as const, maglevTableSize: 31, drainMs: 0 };
    const before = [svc(1, [['10.244.1.5', 80]]), svc(2, [['10.244.2.5', 80], ['10.244.3.5', 80]]), svc(3, [['10.244.4.5', 80]])];
    const old = new ServicesDatapath(model, opts);
    await old.setServices(before);
    old.close();
    // Restarted without services 2 and 3: the new process knows nothing of them.
    const dp = new ServicesDatapath(model, opts);
    const after = [svc(1, [['10.244.1.5', 80]])];
    await dp.setServices(after);
    assert.deepEqual(model.maps, planContents(planServices({ services: after, ...opts })));
    assert.equal(model.maps.tables.size, 1);
    assert.equal(model.maps.backends.size, 1);
    // Later applies are incremental again: nothing to write for the same set.
    await dp.setServices([...after]);
    assert.equal(dp.metrics.lastApplyWrites, 0);
    dp.close();
  });

  it('a failed map write is counted and retried with backoff until the maps hold the plan', async () => {
    const { model, opts, dp } = onModel('maglev');
    const a = [svc(1, [['10.244.1.5', 80]]), svc(2, [['10.244.2.5', 80]])];
    await dp.setServices(a);
    // The change fails at its second write: the first took effect, the rest did not.
    const b = [svc(1, [['10.244.1.5', 80], ['10.244.1.6', 80]]), svc(3, [['10.244.3.5', 80]])];
    model.failAt = model.opsApplied + 1;
    await dp.setServices(b);
    assert.equal(dp.metrics.failedApplies, 1);
    assert.equal(dp.metrics.errors, 1);
    assert.match(dp.lastError ?? '', /injected fault/);
    assert.notDeepEqual(model.maps, planContents(planServices({ services: b, ...opts })));
    // The retry (after RETRY_MIN_MS) writes the whole plan and prunes: the maps hold b exactly.
    await untilRetried(dp);
    assert.deepEqual(model.maps, planContents(planServices({ services: b, ...opts })));
    // Then back to a few writes per change.
    await dp.setServices([...b, svc(4, [['10.244.4.5', 80]])]);
    assert.ok(dp.metrics.lastApplyWrites > 0 && dp.metrics.lastApplyWrites <= 8, `${dp.metrics.lastApplyWrites} writes`);
    assert.equal(dp.metrics.failedApplies, 1);
    dp.close();
  });

  it('a failure during the retry backs off further, and a new set meanwhile still ends consistent', async () => {
    const { model, opts, dp } = onModel('random');
    model.failAt = 0;
    await dp.setServices([svc(1, [['10.244.1.5', 80]])]);
    assert.equal(dp.metrics.failedApplies, 1);
    model.failAt = model.opsApplied + 2;
    const c = [svc(1, [['10.244.1.5', 80], ['10.244.1.7', 80]]), svc(5, [['10.244.5.5', 80]])];
    await dp.setServices(c);
    assert.equal(dp.metrics.failedApplies, 2);
    await untilRetried(dp);
    assert.deepEqual(model.maps, planContents(planServices({ services: c, ...opts })));
    dp.close();
  });
});
