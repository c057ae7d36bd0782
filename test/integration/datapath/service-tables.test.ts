// Service selection tables in the kernel: nrd_svc_tables (hash of maps) of a loaded nrd_endpoint,
// written by ServiceMapWriter through ServicesDatapath at the default Maglev M = 16381. A new
// service is a handful of syscalls (a spare table filled through mmap, no map-in-map write), the tables read
// back through the outer map equal the plan, a restart prunes what the previous run left (and
// the flat slot hash of older versions), and a write that fails midway is retried to the plan.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { closeFd, mapCreate, objGet, objPin } from '../../../daemon/datapath/libbpf.js';
import { TypedMap, u32Codec } from '../../../daemon/datapath/maps.js';
import { type LoadedObject, loadObject } from '../../../daemon/datapath/objects.js';
import { LB_MAP_NAMES, backendCodec, revNatCodec, svcKeyCodec, svcValueCodec } from '../../../daemon/datapath/services-layout.js';
import { type WireServiceOp, ServiceMapWriter, ServicesDatapath, readTable } from '../../../daemon/datapath/services.js';
import { POOL_HIGH, POOL_LOW, QUARANTINE_MS } from '../../../daemon/datapath/service-tables.js';
import { serviceKeyText } from '../../../daemon/services/plan.js';
import type { ServiceRecord } from '../../../daemon/state/records.js';
import { type ModelContents, planContents, rng, untilRetried } from '../../unit/services/service-model.js';
import { Cleanup, mountBpffs, objectDir } from './env.js';

const M = 16381;
const svc = (i: number, n = 3): ServiceRecord => ({
  name: `svc-${String(i).padStart(4, '0')}`, vip: `10.96.${i >> 8}.${i & 255}`, port: 80, protocol: 'tcp',
  backends: Array.from({ length: n }, (_, b) => ({ ip: `10.244.${b}.${i & 255}`, port: 8080 })),
});

/** What the pinned maps hold, in the model's shape (tables read through their inner map ids). */
function readBack(pinPath: string): ModelContents {
  const fds: number[] = [];
  const open = (m: string): number => {
    const o = objGet(join(pinPath, 'maps', m));
    fds.push(o);
    return o;
  };
  try {
    const services = new TypedMap(open('nrd_services'), svcKeyCodec, svcValueCodec);
    const backends = new TypedMap(open('nrd_backends'), u32Codec, backendCodec);
    const revnat = new TypedMap(open('nrd_revnat'), u32Codec, revNatCodec);
    const tables = new TypedMap(open('nrd_svc_tables'), u32Codec, u32Codec);
    const c: ModelContents = { services: new Map(), backends: new Map(), tables: new Map(), revNat: new Map() };
    for (const [k, { tableId, ...v }] of services.entries()) {
      c.services.set(serviceKeyText(k), v);
      // A service's table, through the id its value names (the other tables are spares).
      if (tableId) { const t = readTable(tables.fd, tableId); if (!t) throw new Error(`service ${v.id} names table ${tableId}, absent`); c.tables.set(v.id, [...t]); }
    }
    for (const [k, v] of backends.entries()) c.backends.set(k, v);
    for (const [k, v] of revnat.entries()) c.revNat.set(k, v);
    return c;
  } finally {
    for (const fd of fds) closeFd(fd);
  }
}

describe('service tables in nrd_svc_tables (hash of maps, M = 16381)', () => {
  const cleanup = new Cleanup();
  let bpffs: string;
  let obj: LoadedObject;
  const opts = { lbAlgorithm: 'maglev' as const, maglevTableSize: M, drainMs: 0 };

  before(() => {
    bpffs = mountBpffs(cleanup);
    obj = loadObject({
      path: join(objectDir, 'nrd_endpoint.bpf.o'), knobs: { lb_maglev_m: M },
      pinDir: join(bpffs, 'maps'), pinMaps: LB_MAP_NAMES,
    });
    cleanup.add(() => obj.close());
  });
  after(() => cleanup.run());

  it('a new service is a few syscalls, its table reads back equal to the plan; a restart prunes the leftovers', async () => {
    // The flat slot hash an older version pinned: gone after the first apply.
    const stale = mapCreate({ type: 1, keySize: 8, valueSize: 4, maxEntries: 16 }, 'nrd_svc_slots');
    objPin(stale, join(bpffs, 'maps', 'nrd_svc_slots'));
    closeFd(stale);
    const writer = new ServiceMapWriter(bpffs);
    const timed: { ms: number; writes: number }[] = [];
    const applier = {
      applyServiceOps: async (ops: WireServiceOp[]): Promise<number> => {
        const t = performance.now();
        const writes = writer.apply(ops);
        timed.push({ ms: performance.now() - t, writes });
        return writes;
      },
    };
    const first = new ServicesDatapath(applier, opts);
    const set = Array.from({ length: 20 }, (_, i) => svc(i));
    await first.setServices(set);
    assert.equal(first.lastError, undefined);
    assert.ok(!existsSync(join(bpffs, 'maps', 'nrd_svc_slots')), 'the old flat slot map is unpinned');
    assert.deepEqual(readBack(bpffs), planContents(first.plan));
    // One more service: 3 backends + a spare table filled through mmap (outer lookup, fd by id,
    // mmap, munmap, close) + rev-NAT + service = 10 syscalls, no write to the map-in-map.
    await first.setServices([...set, svc(100)]);
    const add = timed.at(-1)!;
    assert.equal(add.writes, 10);
    // Removed again: service, rev-NAT, 3 backends; its table goes back to the pool (quarantined).
    await first.setServices(set);
    assert.equal(timed.at(-1)!.writes, 5);
    // A backend change swaps one table.
    const changed = [...set];
    changed[3] = svc(3, 2);
    await first.setServices(changed);
    assert.deepEqual(readBack(bpffs), planContents(first.plan));
    console.log(`M=${M}: add one service ${add.writes} syscalls in ${add.ms.toFixed(2)} ms; backend change ${timed.at(-1)!.writes} syscalls in ${timed.at(-1)!.ms.toFixed(2)} ms; pool ${JSON.stringify(writer.poolStats())}`);
    first.close();

    // Restart with half the services: the new process prunes the rest on its first apply.
    const second = new ServicesDatapath({ applyServiceOps: async (ops) => writer.apply(ops) }, opts);
    const half = changed.slice(0, 10);
    await second.setServices(half);
    const maps = readBack(bpffs);
    assert.deepEqual(maps, planContents(second.plan));
    assert.equal(maps.services.size, 10);
    assert.equal(maps.tables.size, 10);
    second.close();
    writer.close();
  });

  it('a write that fails midway is counted and retried until the maps hold the plan', async () => {
    const writer = new ServiceMapWriter(bpffs);
    let failNext = false;
    const dp = new ServicesDatapath({
      applyServiceOps: async (ops) => {
        if (failNext) {
          failNext = false;
          writer.apply(ops.slice(0, Math.ceil(ops.length / 2)));
          throw new Error('bpf_map_update_elem: injected fault');
        }
        return writer.apply(ops);
      },
    }, opts);
    await dp.setServices([svc(1), svc(2)]);
    failNext = true;
    await dp.setServices([svc(1, 1), svc(3), svc(4)]);
    assert.equal(dp.metrics.failedApplies, 1);
    await untilRetried(dp);
    assert.deepEqual(readBack(bpffs), planContents(dp.plan));
    assert.equal(readBack(bpffs).services.size, 3);
    dp.close();
    writer.close();
  });

  it('spare tables: a released one waits out its quarantine; a restart keeps tables that hold the right slots', async () => {
    let t = 1_000_000;
    const writer = new ServiceMapWriter(bpffs, () => t);
    const dp = new ServicesDatapath({ applyServiceOps: async (ops) => writer.apply(ops) }, opts);
    const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 20)); // the writer's maintenance runs
    const set = Array.from({ length: 5 }, (_, i) => svc(200 + i));
    await dp.setServices(set);
    await tick();
    const before = tableIds(bpffs);
    const released = before.get('svc-0200')!;
    await dp.setServices(set.slice(1));
    assert.equal(writer.poolStats()!.quarantined, 1);
    await dp.setServices([...set.slice(1), svc(300)]);
    assert.notEqual(tableIds(bpffs).get('svc-0300'), released, 'a quarantined table is not reused at once');
    t += QUARANTINE_MS + 1;
    await tick();
    assert.equal(writer.poolStats()!.quarantined, 0);
    const spare = writer.poolStats()!.spare;
    assert.ok(spare >= POOL_LOW && spare <= POOL_HIGH, `${spare} spares`);
    const ids = tableIds(bpffs);
    const tables = writer.poolStats()!.tables;
    dp.close();
    writer.close();
    // Restarted with the same set: every service keeps its table, none is created.
    const writer2 = new ServiceMapWriter(bpffs, () => t);
    const dp2 = new ServicesDatapath({ applyServiceOps: async (ops) => writer2.apply(ops) }, opts);
    await dp2.setServices([...set.slice(1), svc(300)]);
    assert.deepEqual(tableIds(bpffs), ids);
    assert.equal(writer2.poolStats()!.tables, tables);
    assert.deepEqual(readBack(bpffs), planContents(dp2.plan));
    dp2.close();
    writer2.close();
  });
  it('random changes (VIP moves, backend changes, removals, algorithm switches): the maps always hold the plan', async () => {
    const r = rng(42);
    const writer = new ServiceMapWriter(bpffs);
    let o: { lbAlgorithm: 'maglev' | 'random'; maglevTableSize: number; drainMs: number } = { ...opts, maglevTableSize: 251 };
    const dp = new ServicesDatapath({ applyServiceOps: async (ops) => writer.apply(ops) }, o);
    const recs = new Map<string, ServiceRecord>();
    for (let step = 0; step < 120; step++) {
      const i = Math.floor(r() * 12);
      const x = r();
      if (x < 0.5) {
        const base = svc(i, 1 + Math.floor(r() * 4));
        recs.set(base.name, { ...base, vip: `10.96.9.${Math.floor(r() * 6)}`, port: r() < 0.5 ? 80 : 443 });
      } else if (x < 0.8) recs.delete(svc(i).name);
      else if (x < 0.9) {
        o = { ...o, lbAlgorithm: o.lbAlgorithm === 'maglev' ? 'random' : 'maglev' };
        await dp.setOptions(o);
      } else recs.set(svc(i).name, { ...svc(i), backends: [] });
      await dp.setServices([...recs.values()]);
      assert.equal(dp.lastError, undefined, `step ${step}`);
      const got = readBack(bpffs);
      const want = planContents(dp.plan);
      for (const k of ['services', 'backends', 'tables', 'revNat'] as const) assert.deepEqual(got[k], want[k], `step ${step}: ${k}`);
    }
    dp.close();
    writer.close();
  });
  it('a second writer that adds and removes a service between the first one\'s changes (the bench does this) takes no live table', async () => {
    const a = new ServiceMapWriter(bpffs);
    const b = new ServiceMapWriter(bpffs, Date.now, { maintain: false });
    let useB = false;
    const dp = new ServicesDatapath({
      applyServiceOps: async (ops) => {
        if (!useB) return a.apply(ops);
        b.resync();
        return b.apply(ops);
      },
    }, { ...opts, maglevTableSize: 251 });
    const r = rng(7);
    let set = Array.from({ length: 6 }, (_, i) => svc(400 + i));
    const check = async (what: string): Promise<void> => {
      await new Promise((res) => setTimeout(res, 5)); // both writers' pool maintenance runs
      assert.equal(dp.lastError, undefined, what);
      assert.deepEqual(readBack(bpffs), planContents(dp.plan), what);
    };
    for (let step = 0; step < 20; step++) {
      useB = false;
      set = [...set.filter(() => r() < 0.8), ...Array.from({ length: Math.floor(r() * 20) }, (_, i) => svc(500 + ((i * 7 + step * 3) % 90), 1 + (step % 3)))]
        .filter((x, i, all) => all.findIndex((y) => y.name === x.name) === i);
      await dp.setServices(set);
      await check(`step ${step}: first writer`);
      useB = true;
      await dp.setServices([...set, svc(999)]);
      await check(`step ${step}: second writer adds`);
      await dp.setServices(set);
      await check(`step ${step}: second writer removes`);
    }
    dp.close();
    a.close();
    b.close();
  });
});

/** Service name (by its VIP's last bytes, as svc() builds them) → the table id its value names. */
function tableIds(pinPath: string): Map<string, number> {
  const fd = objGet(join(pinPath, 'maps', 'nrd_services'));
  try {
    const out = new Map<string, number>();
    for (const [k, v] of new TypedMap(fd, svcKeyCodec, svcValueCodec).entries()) out.set(`svc-${String((k.addr[2]! << 8) | k.addr[3]!).padStart(4, '0')}`, v.tableId ?? 0);
    return out;
  } finally {
    closeFd(fd);
  }
}
