// The incremental planner against the full replan: random histories of adds, removes, changes,
// conflicts (same vip/port/proto), shared backends, draining sets and option changes; after every
// step the incremental plan equals planServices(same input, previous plan), and its ops, applied
// to a model of the maps, leave exactly that plan in them without ever exposing a service whose
// table is missing, too short or names an unknown backend. Plus the cost: one change among 10k
// services is a few ops and a fraction of a full plan's time.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Protocol, ServiceRecord } from '../../../daemon/state/records.js';
import { IncrementalPlanner, sameRecord } from '../../../daemon/services/incremental.js';
import { type BackendRef, type LbAlgorithm, type ServicePlan, backendKeyText, diffPlan, emptyPlan, planServices } from '../../../daemon/services/plan.js';
import { ServiceMapsModel, planContents, rng } from './service-model.js';

/** Records list each backend once (the state layer rejects duplicates). */
const dedupe = (bs: { ip: string; port: number }[]): { ip: string; port: number }[] =>
  bs.filter((b, i) => bs.findIndex((c) => c.ip === b.ip && c.port === b.port) === i);

function assertSamePlan(inc: ServicePlan, full: ServicePlan, what: string): void {
  assert.deepEqual([...inc.serviceIds].sort(), [...full.serviceIds].sort(), `${what}: service ids`);
  assert.deepEqual([...inc.backendIds].sort(), [...full.backendIds].sort(), `${what}: backend ids`);
  assert.deepEqual(inc.conflicts, full.conflicts, `${what}: conflicts`);
  assert.deepEqual(diffPlan(full, inc), [], `${what}: map contents`);
  assert.deepEqual(diffPlan(inc, full), [], `${what}: map contents (reverse)`);
}

describe('incremental service planning', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`equals the full replan over a random history (seed ${seed})`, async () => {
      const r = rng(seed);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
      const names = Array.from({ length: 24 }, (_, i) => `svc-${String.fromCharCode(97 + (i % 26))}${i}`);
      const vips = ['10.96.0.1', '10.96.0.2', '10.96.0.3', '10.96.0.4', 'fd00:96::1', 'fd00:96::2'];
      const ips = Array.from({ length: 10 }, (_, i) => (i < 7 ? `10.244.0.${i + 1}` : `fd00:244::${i}`));
      const protocols: Protocol[] = ['tcp', 'udp'];
      const randomRecord = (name: string): ServiceRecord => ({
        name, vip: pick(vips), port: pick([80, 443]), protocol: pick(protocols),
        backends: dedupe(Array.from({ length: Math.floor(r() * 5) }, () => ({ ip: pick(ips), port: pick([8080, 8081]) }))),
      });
      const randomBackend = (): BackendRef => ({ ip: pick(ips), port: pick([8080, 8081]), protocol: pick(protocols) });

      let records = new Map<string, ServiceRecord>();
      let draining: BackendRef[] = [];
      let opts: { lbAlgorithm: LbAlgorithm; maglevTableSize: number } = { lbAlgorithm: 'maglev', maglevTableSize: 31 };
      const inc = new IncrementalPlanner();
      const model = new ServiceMapsModel();
      let full = emptyPlan();
      for (let step = 0; step < 300; step++) {
        const x = r();
        if (x < 0.3 || records.size < 3) {
          const n = pick(names);
          records.set(n, randomRecord(n));
        } else if (x < 0.5) {
          records.delete(pick([...records.keys()]));
        } else if (x < 0.7) {
          const n = pick([...records.keys()]);
          const old = records.get(n)!;
          records.set(n, { ...old, backends: r() < 0.5 ? old.backends.slice(1) : dedupe([...old.backends, { ip: pick(ips), port: 8080 }]) });
        } else if (x < 0.85) {
          draining = r() < 0.3 ? [] : [...draining.filter(() => r() < 0.7), randomBackend()];
        } else if (x < 0.9) {
          opts = { lbAlgorithm: pick(['maglev', 'random'] as const), maglevTableSize: pick([31, 37]) };
        } else {
          // several changes in one call
          const n1 = pick(names);
          const n2 = pick(names);
          records.set(n1, randomRecord(n1));
          records.delete(n2);
        }
        // Listed in any order, as a watch may deliver; sometimes the same objects, sometimes copies.
        const list = [...records.values()].map((rec) => (r() < 0.5 ? rec : { ...rec, backends: rec.backends.map((b) => ({ ...b })) }));
        if (r() < 0.5) list.reverse();
        const input = { services: list, draining, ...opts };
        model.checkInvariant = model.maglevM === opts.maglevTableSize || model.maglevM === 0;
        model.maglevM = opts.maglevTableSize;
        const ops = inc.update(input);
        full = planServices(input, full);
        const what = `seed ${seed} step ${step}`;
        assertSamePlan(inc.plan, full, what);
        try {
          await model.applyServiceOps(ops);
        } catch (e) {
          console.log(what, JSON.stringify(ops.map((o) => ({ ...o, slots: o.op === 'set-slots' ? o.slots.length : undefined }))), JSON.stringify(input.draining));
          throw e;
        }
        assert.deepEqual(model.maps, planContents(full), `${what}: the ops leave the plan in the maps`);
        records = new Map(records);
      }
    });
  }

  it('keeps ids read back after a restart, like planServices with previousIds', () => {
    const recs: ServiceRecord[] = ['a', 'b', 'c'].map((n, i) => ({ name: n, vip: `10.96.0.${i + 1}`, port: 80, protocol: 'tcp', backends: [{ ip: `10.244.0.${i + 1}`, port: 80 }] }));
    const previousIds = { services: new Map([['a', 7], ['b', 9]]), backends: new Map([[backendKeyText({ ip: '10.244.0.1', port: 80, protocol: 'tcp' }), 42]]) };
    const inc = new IncrementalPlanner();
    inc.adoptIds(previousIds);
    const input = { services: recs, lbAlgorithm: 'maglev' as const, maglevTableSize: 31 };
    inc.update(input);
    assertSamePlan(inc.plan, planServices({ ...input, previousIds }), 'adopted');
    assert.equal(inc.plan.serviceIds.get('a'), 7);
  });

  it('an unparsable record throws and changes nothing', () => {
    const inc = new IncrementalPlanner();
    const good: ServiceRecord = { name: 'a', vip: '10.96.0.1', port: 80, protocol: 'tcp', backends: [{ ip: '10.244.0.1', port: 80 }] };
    const input = { services: [good], lbAlgorithm: 'maglev' as const, maglevTableSize: 31 };
    inc.update(input);
    const before = planContents(inc.plan);
    assert.throws(() => inc.update({ ...input, services: [good, { ...good, name: 'b', backends: [{ ip: 'nope', port: 1 }] }] }), /not an IP address/);
    assert.deepEqual(planContents(inc.plan), before);
    assert.deepEqual(inc.update(input), []);
  });

  it('sameRecord compares content, not identity', () => {
    const a: ServiceRecord = { name: 'a', vip: '10.96.0.1', port: 80, protocol: 'tcp', backends: [{ ip: '10.244.0.1', port: 80 }] };
    assert.ok(sameRecord(a, JSON.parse(JSON.stringify(a)) as ServiceRecord));
    assert.ok(!sameRecord(a, { ...a, backends: [{ ip: '10.244.0.1', port: 81 }] }));
    assert.ok(!sameRecord(a, { ...a, protocol: 'udp' }));
  });

  it('one change among 10k services: a few ops, and no replan of the others', () => {
    const recs: ServiceRecord[] = Array.from({ length: 10_000 }, (_, i) => ({
      name: `svc-${i}`, vip: `10.96.${i >> 8}.${i & 255}`, port: 80, protocol: 'tcp',
      backends: [0, 1, 2].map((b) => ({ ip: `10.${100 + b}.${i >> 8}.${i & 255}`, port: 8080 })),
    }));
    const opts = { lbAlgorithm: 'maglev' as const, maglevTableSize: 401 };
    const inc = new IncrementalPlanner();
    let t = performance.now();
    inc.update({ services: recs, ...opts });
    const firstMs = performance.now() - t;
    // The set arrives as fresh objects each time (JSON from the state layer).
    const copy = JSON.parse(JSON.stringify(recs)) as ServiceRecord[];
    copy.push({ name: 'svc-new', vip: '10.97.0.1', port: 80, protocol: 'tcp', backends: [{ ip: '10.200.0.1', port: 80 }, { ip: '10.200.0.2', port: 80 }] });
    t = performance.now();
    const add = inc.update({ services: copy, ...opts });
    const addMs = performance.now() - t;
    assert.deepEqual(add.map((o) => o.op), ['set-backend', 'set-backend', 'set-slots', 'set-revnat', 'set-service']);
    copy.pop();
    t = performance.now();
    const remove = inc.update({ services: copy, ...opts });
    const removeMs = performance.now() - t;
    assert.deepEqual(remove.map((o) => o.op), ['delete-service', 'delete-revnat', 'delete-slots', 'delete-backend', 'delete-backend']);
    assert.deepEqual(inc.update({ services: copy, ...opts }), []);
    console.log(`10k services: first plan ${firstMs.toFixed(0)} ms; add one ${addMs.toFixed(2)} ms, remove one ${removeMs.toFixed(2)} ms`);
  });
});
