// Service selection tables in the kernel: nrd_svc_tables (hash of maps) of a loaded nrd_endpoint,
// written by ServiceMapWriter through ServicesDatapath at the default Maglev M = 16381. A new
// service is a handful of syscalls (its table: create, mmap'd fill, one swap), the tables read
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
import { serviceKeyText } from '../../../daemon/services/plan.js';
import type { ServiceRecord } from '../../../daemon/state/records.js';
import { type ModelContents, planContents, untilRetried } from '../../unit/services/service-model.js';
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
    for (const [k, v] of services.entries()) c.services.set(serviceKeyText(k), v);
    for (const [k, v] of backends.entries()) c.backends.set(k, v);
    for (const [k, v] of revnat.entries()) c.revNat.set(k, v);
    for (const id of tables.keys()) c.tables.set(id, [...readTable(tables.fd, id)!]);
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
    // One more service: 3 backends + table (create, mmap, munmap, swap) + rev-NAT + service = 9 syscalls.
    await first.setServices([...set, svc(100)]);
    const add = timed.at(-1)!;
    assert.equal(add.writes, 9);
    // Removed again: service, rev-NAT, table, 3 backends.
    await first.setServices(set);
    assert.equal(timed.at(-1)!.writes, 6);
    // A backend change swaps one table.
    const changed = [...set];
    changed[3] = svc(3, 2);
    await first.setServices(changed);
    assert.deepEqual(readBack(bpffs), planContents(first.plan));
    console.log(`M=${M}: add one service ${add.writes} syscalls in ${add.ms.toFixed(2)} ms; backend change ${timed.at(-1)!.writes} syscalls in ${timed.at(-1)!.ms.toFixed(2)} ms`);
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
});
