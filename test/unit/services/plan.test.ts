// Service plan: ServiceRecords → desired map contents (service, backends, slots, rev-NAT), stable
// ids, draining, conflicts, and diffPlan's minimality: at 10k services a one-backend change is
// at most (changed Maglev slots + 2) writes and touches no other service.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ServiceRecord } from '../../../daemon/state/records.js';
import {
  BackendState, backendKeyText, diffPlan, emptyPlan, planServices, removedBackends, SVC_F_MAGLEV, SVC_F_NO_BACKEND,
  type PlanInput, type ServiceOp,
} from '../../../daemon/services/plan.js';

const svc = (name: string, vip: string, backends: [string, number][], port = 80): ServiceRecord => ({
  name, vip, port, protocol: 'tcp', backends: backends.map(([ip, p]) => ({ ip, port: p })),
});
const input = (services: ServiceRecord[], extra: Partial<PlanInput> = {}): PlanInput => ({ services, lbAlgorithm: 'maglev', maglevTableSize: 1021, ...extra });
const count = (ops: ServiceOp[], op: ServiceOp['op']): number => ops.filter((o) => o.op === op).length;

describe('service plan', () => {
  it('one service: key, value, backends, Maglev slots and rev-NAT', () => {
    const p = planServices(input([svc('web', '10.96.0.10', [['10.244.1.5', 8080], ['10.244.2.7', 8080]])]));
    assert.equal(p.services.size, 1);
    const [e] = [...p.services.values()];
    assert.deepEqual([...e!.key.addr], [10, 96, 0, 10]);
    assert.deepEqual([e!.key.port, e!.key.proto, e!.key.family], [80, 6, 4]);
    assert.equal(e!.value.backendCount, 2);
    assert.equal(e!.value.flags, SVC_F_MAGLEV);
    assert.equal(e!.value.revNatId, e!.value.id);
    assert.equal(p.backends.size, 2);
    const slots = p.slots.get(e!.value.id)!;
    assert.equal(slots.length, 1021);
    const ids = new Set([...p.backends.values()].map((b) => b.key));
    for (const s of slots) assert.ok(ids.has(s));
    assert.deepEqual([...p.revNat.get(String(e!.value.id))!.value.addr], [10, 96, 0, 10]);
    const ops = diffPlan(emptyPlan(), p);
    assert.deepEqual(ops.map((o) => o.op), ['set-backend', 'set-backend', 'set-slots', 'set-revnat', 'set-service']);
    assert.deepEqual(diffPlan(p, planServices(input([svc('web', '10.96.0.10', [['10.244.2.7', 8080], ['10.244.1.5', 8080]])]))), []);
  });

  it('ids are stable: a pure function of the names, unaffected by other services, kept from previous ids', () => {
    const a = planServices(input([svc('a', '10.96.0.1', []), svc('b', '10.96.0.2', [])]));
    const b = planServices(input([svc('b', '10.96.0.2', []), svc('c', '10.96.0.3', []), svc('a', '10.96.0.1', [])]));
    assert.equal(a.serviceIds.get('a'), b.serviceIds.get('a'));
    assert.equal(a.serviceIds.get('b'), b.serviceIds.get('b'));
    const c = planServices(input([svc('a', '10.96.0.1', [])], { previousIds: { services: new Map([['a', 42]]) } }));
    assert.equal(c.serviceIds.get('a'), 42);
  });

  it('no backend: flag NO_BACKEND (reject), no slots; getting one creates the slots', () => {
    const p = planServices(input([svc('web', '10.96.0.10', [])]));
    const [e] = [...p.services.values()];
    assert.equal(e!.value.flags & SVC_F_NO_BACKEND, SVC_F_NO_BACKEND);
    assert.equal(p.slots.size, 0);
    const q = planServices(input([svc('web', '10.96.0.10', [['10.244.1.5', 80]])]), p);
    assert.deepEqual(diffPlan(p, q).map((o) => o.op), ['set-backend', 'set-slots', 'set-service']);
    assert.deepEqual(diffPlan(q, p).map((o) => o.op), ['set-service', 'delete-slots', 'delete-backend']);
  });

  it('draining: a removed backend keeps its entry as DRAINING and no slot; dropping it deletes the entry', () => {
    const s3 = svc('web', '10.96.0.10', [['10.244.1.5', 80], ['10.244.1.6', 80], ['10.244.1.7', 80]]);
    const s2 = svc('web', '10.96.0.10', [['10.244.1.5', 80], ['10.244.1.6', 80]]);
    const p = planServices(input([s3]));
    const gone = removedBackends(p, planServices(input([s2]), p));
    assert.deepEqual(gone, [backendKeyText({ ip: '10.244.1.7', port: 80, protocol: 'tcp' })]);
    const q = planServices(input([s2], { draining: [{ ip: '10.244.1.7', port: 80, protocol: 'tcp' }] }), p);
    const id = q.backendIds.get(gone[0]!)!;
    assert.equal(id, p.backendIds.get(gone[0]!));
    assert.equal(q.backends.get(String(id))!.value.state, BackendState.DRAINING);
    for (const s of q.slots.values()) assert.ok(!s.includes(id));
    const ops = diffPlan(p, q);
    assert.equal(count(ops, 'set-backend'), 1);
    assert.equal(count(ops, 'delete-backend'), 0);
    const r = planServices(input([s2]), q);
    assert.deepEqual(diffPlan(q, r).map((o) => o.op), ['delete-backend']);
    // Draining a backend still listed in the record: no new connections to it either.
    const d = planServices(input([s3], { draining: [{ ip: '10.244.1.5', port: 80, protocol: 'tcp' }] }));
    assert.equal([...d.services.values()][0]!.value.backendCount, 2);
  });

  it('two services on one (vip, port, proto): the first by name wins, the other is reported', () => {
    const p = planServices(input([svc('zeta', '10.96.0.10', []), svc('alpha', '10.96.0.10', [])]));
    assert.equal(p.services.size, 1);
    assert.equal([...p.services.values()][0]!.name, 'alpha');
    assert.deepEqual(p.conflicts, [{ name: 'zeta', keptName: 'alpha' }]);
  });

  it('random: slots are the active backends in key order; IPv6 services', () => {
    const p = planServices(input([svc('v6', 'fd00:96::10', [['fd00:244::7', 80], ['fd00:244::5', 80]])], { lbAlgorithm: 'random' }));
    const [e] = [...p.services.values()];
    assert.equal(e!.key.family, 6);
    assert.equal(e!.key.addr.length, 16);
    assert.equal(e!.value.flags, 0);
    const slots = [...p.slots.get(e!.value.id)!];
    assert.deepEqual(slots, [p.backendIds.get('tcp|fd00:244::5|80'), p.backendIds.get('tcp|fd00:244::7|80')]);
  });

  it('10k services: a one-backend change writes ≤ changed slots + 2 and touches only that service', () => {
    const services: ServiceRecord[] = [];
    for (let i = 0; i < 10_000; i++) {
      const vip = `10.96.${i >> 8}.${i & 255}`;
      services.push(svc(`svc-${i}`, vip, [0, 1, 2, 3].map((b) => [`10.${100 + b}.${i >> 8}.${i & 255}`, 8080] as [string, number])));
    }
    let t = Date.now();
    const p = planServices(input(services));
    const planMs = Date.now() - t;
    const first = diffPlan(emptyPlan(), p);
    assert.equal(count(first, 'set-service'), 10_000);
    assert.equal(count(first, 'set-slots'), 10_000);
    const changed = services.slice();
    changed[4321] = { ...changed[4321]!, backends: changed[4321]!.backends.slice(1) };
    t = Date.now();
    const q = planServices(input(changed), p);
    const ops = diffPlan(p, q);
    const diffMs = Date.now() - t;
    const id = p.serviceIds.get('svc-4321')!;
    // One table swap (the whole new table: 3 syscalls in the writer), the service, the backend gone.
    assert.deepEqual(ops.map((o) => o.op).sort(), ['delete-backend', 'set-service', 'set-slots']);
    for (const o of ops) if (o.op === 'set-slots') assert.equal(o.serviceId, id);
    assert.deepEqual(diffPlan(q, planServices(input(changed), q)), []);
    console.log(`10k services: full plan ${planMs} ms, ${first.length} ops; one-backend change ${ops.length} ops in ${diffMs} ms`);
  });
});
