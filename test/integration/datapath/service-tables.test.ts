// Service selection tables in the kernel: nrd_svc_tables (hash of maps) of a loaded nrd_endpoint,
// written by ServiceMapWriter through ServicesDatapath at the default Maglev M = 16381. A new
// service is a handful of syscalls (a spare table filled through mmap, no map-in-map write), the tables read
// back through the outer map equal the plan, a restart prunes what the previous run left (and
// the flat slot hash of older versions), and a write that fails midway is retried to the plan.
// Each table is one u32[M] value (4·M bytes); pins of the layout before it (M u32 elements, 8
// bytes apart) are replaced on load and the tables rebuilt.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { closeFd, mapCreate, mapInfoByFd, mapUpdateElem, mapWriteMmap, objGet, objPin, progTestRun } from '../../../daemon/datapath/libbpf.js';
import { type PinMigration, setPinMigrationListener } from '../../../daemon/datapath/pin-migrate.js';
import { NRD_DP_F_ARP_ANY, NRD_EP_IF_F_IP4, epIfCodec, macKnob } from '../../../daemon/datapath/endpoint-layout.js';
import { CtDir, ctEntryCodec, ctKeyCodec } from '../../../daemon/datapath/services-layout.js';
import { parseCidr } from '../../../daemon/datapath/maps.js';
import { SVC_F_MAGLEV } from '../../../daemon/services/plan.js';
import { ipv4Packet, mac, tcpSegment } from './packets.js';
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
const INNER_MMAP = (1 << 12) | (1 << 10); // BPF_F_INNER_MAP | BPF_F_MMAPABLE
const ip = (a: string): Buffer => parseCidr(a).addr;
const u32Buf = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(n, 0); return b; };

/** memlock of a map as /proc/self/fdinfo reports it (what the kernel charges for it). */
function memlock(fd: number): number {
  const m = /memlock:\s+(\d+)/.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'));
  if (!m) throw new Error(`no memlock in fdinfo of ${fd}`);
  return Number(m[1]);
}
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
      // Random uses the first backend_count slots of its M (the rest are zero).
      if (tableId) {
        const t = readTable(tables.fd, tableId);
        if (!t) throw new Error(`service ${v.id} names table ${tableId}, absent`);
        c.tables.set(v.id, [...(v.flags & SVC_F_MAGLEV ? t : t.subarray(0, v.backendCount))]);
      }
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
  /** A pin path of its own whose maps an nrd_endpoint loaded with lb_maglev_m = m pinned. */
  const pinSet = (name: string, m: number): string => {
    const dir = join(bpffs, name);
    mkdirSync(join(dir, 'maps'), { recursive: true });
    const o = loadObject({ path: join(objectDir, 'nrd_endpoint.bpf.o'), knobs: { lb_maglev_m: m }, pinDir: join(dir, 'maps'), pinMaps: LB_MAP_NAMES });
    cleanup.add(() => o.close());
    return dir;
  };

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
    const pins = pinSet('m251-random', 251);
    const writer = new ServiceMapWriter(pins);
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
      const got = readBack(pins);
      const want = planContents(dp.plan);
      for (const k of ['services', 'backends', 'tables', 'revNat'] as const) assert.deepEqual(got[k], want[k], `step ${step}: ${k}`);
    }
    dp.close();
    writer.close();
  });
  it('a second writer that adds and removes a service between the first one\'s changes (the bench does this) takes no live table', async () => {
    const pins = pinSet('m251-two', 251);
    const a = new ServiceMapWriter(pins);
    const b = new ServiceMapWriter(pins, Date.now, { maintain: false });
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
      assert.deepEqual(readBack(pins), planContents(dp.plan), what);
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
  it('a change of M: applied before the reload it fails clearly and is retried; the reload replaces the map and the retry rebuilds every table', async () => {
    const dir = pinSet('m-change', 251);
    const writer = new ServiceMapWriter(dir);
    const dp = new ServicesDatapath({ applyServiceOps: async (ops) => writer.apply(ops) }, { ...opts, maglevTableSize: 251 });
    const set = [svc(700), svc(701, 2), svc(702, 4)];
    await dp.setServices(set);
    assert.equal(dp.lastError, undefined);
    // The subsystem hands the new options to the services before the datapath reloads.
    await dp.setOptions({ ...opts, maglevTableSize: 401 });
    assert.equal(dp.metrics.failedApplies, 1);
    assert.match(dp.lastError ?? '', /tables of 401 slots do not fit the pinned template/);
    assert.deepEqual([...readBack(dir).tables.values()].map((t) => t.length), [251, 251, 251], 'the old tables stay in use meanwhile');
    const o = loadObject({ path: join(objectDir, 'nrd_endpoint.bpf.o'), knobs: { lb_maglev_m: 401 }, pinDir: join(dir, 'maps'), pinMaps: LB_MAP_NAMES });
    cleanup.add(() => o.close());
    await untilRetried(dp);
    const got = readBack(dir);
    assert.deepEqual(got, planContents(dp.plan));
    assert.deepEqual([...got.tables.values()].map((t) => t.length), [401, 401, 401]);
    dp.close();
    writer.close();
  });

  it('a table is one u32[M] value: 64 KiB of kernel memory at M = 16381, half the M u32 elements of before', () => {
    const fds = [
      mapCreate({ type: 2, keySize: 4, valueSize: 4 * M, maxEntries: 1, mapFlags: INNER_MMAP }, 'new_layout'),
      mapCreate({ type: 2, keySize: 4, valueSize: 4, maxEntries: M, mapFlags: INNER_MMAP }, 'old_layout'),
    ];
    try {
      const [now, old] = fds.map(memlock);
      console.log(`memlock per table at M=${M}: u32[M] value ${now} B, M u32 elements ${old} B (ratio ${(now! / old!).toFixed(3)})`);
      assert.ok(now! <= 4 * M + 2 * 4096, `${now} bytes`);
      assert.ok(old! >= 8 * M, `${old} bytes`);
    } finally {
      fds.forEach(closeFd);
    }
  });

  it('pins of the previous layout (M u32 elements 8 bytes apart): nrd_svc_tables is replaced on load, the writer rebuilds every table, services answer', async () => {
    const dir = pinSet('upgrade', M);
    const outerPin = join(dir, 'maps', 'nrd_svc_tables');
    // What the previous layout pinned: the same outer map, its template an array of u32 elements
    // (any length), and a service's table under id 7 holding backend 1 in every slot.
    unlinkSync(outerPin);
    const tmpl = mapCreate({ type: 2, keySize: 4, valueSize: 4, maxEntries: 1, mapFlags: INNER_MMAP }, 'nrd_svc_tables.in');
    const outer = mapCreate({ type: 13, keySize: 4, valueSize: 4, maxEntries: 65536, mapFlags: 1, innerMapFd: tmpl }, 'nrd_svc_tables');
    const oldTable = mapCreate({ type: 2, keySize: 4, valueSize: 4, maxEntries: M, mapFlags: INNER_MMAP }, 'nrd_svc_table');
    const elems = new Uint32Array(2 * M);
    for (let i = 0; i < M; i++) elems[2 * i] = 1;
    mapWriteMmap(oldTable, Buffer.from(elems.buffer));
    mapUpdateElem(outer, u32Buf(7), u32Buf(oldTable));
    objPin(outer, outerPin);
    [tmpl, outer, oldTable].forEach(closeFd);
    const set = [svc(600), svc(601, 2)];
    const services = new TypedMap(objGet(join(dir, 'maps', 'nrd_services')), svcKeyCodec, svcValueCodec);
    for (const [i, r] of set.entries()) {
      services.set({ family: 4, addr: ip(r.vip), port: r.port, proto: 6 }, { id: 50 + i, backendCount: 3, flags: SVC_F_MAGLEV, revNatId: 50 + i, tableId: 7 });
    }
    closeFd(services.fd);

    // The new nrd starts: its endpoint object finds the old template and replaces the map.
    const seen: PinMigration[] = [];
    setPinMigrationListener((m) => seen.push(m));
    let o: LoadedObject;
    try {
      o = loadObject({
        path: join(objectDir, 'nrd_endpoint.bpf.o'), pinDir: join(dir, 'maps'), pinMaps: LB_MAP_NAMES,
        knobs: { lb_maglev_m: M, gw_mac: macKnob(mac('02:aa:bb:cc:dd:01')), cfg_flags: NRD_DP_F_ARP_ANY },
      });
    } finally {
      setPinMigrationListener(undefined);
    }
    cleanup.add(() => o.close());
    assert.deepEqual(seen.map((m) => [m.map, m.action]), [['nrd_svc_tables', 'replaced']]);
    assert.match(seen[0]!.reason, new RegExp(`inner value_size 4 → ${4 * M}`));
    const pinned = objGet(outerPin);
    try {
      assert.equal(mapInfoByFd(pinned).id, mapInfoByFd(o.mapFd('nrd_svc_tables')).id, 'the new map is pinned and used');
    } finally {
      closeFd(pinned);
    }
    // Loading again with the same M reuses it: the pinned template now matches.
    const again = loadObject({ path: join(objectDir, 'nrd_endpoint.bpf.o'), knobs: { lb_maglev_m: M }, pinDir: join(dir, 'maps'), pinMaps: LB_MAP_NAMES });
    assert.equal(mapInfoByFd(again.mapFd('nrd_svc_tables')).id, mapInfoByFd(o.mapFd('nrd_svc_tables')).id);
    again.close();

    // The writer's first apply rebuilds the tables the services name.
    const writer = new ServiceMapWriter(dir);
    const dp = new ServicesDatapath({ applyServiceOps: async (ops) => writer.apply(ops) }, opts);
    await dp.setServices(set);
    assert.equal(dp.lastError, undefined);
    const got = readBack(dir);
    assert.deepEqual(got, planContents(dp.plan));
    for (const t of got.tables.values()) assert.equal(t.length, M);

    // A SYN from a local endpoint to the first service is DNATed to one of its backends.
    const A = { ip4: '10.244.9.5', mac: mac('02:00:00:00:09:05') };
    new TypedMap(o.mapFd('nrd_ep_ifs'), u32Codec, epIfCodec).set(1, { id: 5, flags: NRD_EP_IF_F_IP4, ip4: ip(A.ip4), ip6: Buffer.alloc(16) });
    const vip = set[0]!.vip;
    const syn = ipv4Packet(A.ip4, vip, 6, tcpSegment(A.ip4, vip, 41000, 80, 0x02), { l2: { src: A.mac, dst: mac('02:aa:bb:cc:dd:01') } });
    progTestRun(o.programFd('nrd_ep_ingress'), { data: syn });
    const ct = new TypedMap(o.mapFd('nrd_ct'), ctKeyCodec, ctEntryCodec);
    const fwd = ct.get({ family: 4, saddr: ip(A.ip4), daddr: ip(vip), sport: 41000, dport: 80, proto: 6, dir: CtDir.FWD });
    const plan = dp.plan;
    const sid = plan.serviceIds.get(set[0]!.name)!;
    assert.ok(fwd, 'the flow has its conntrack entry');
    assert.ok(plan.slots.get(sid)!.includes(fwd.backendId), `backend ${fwd.backendId} is one of the service's`);
    dp.close();
    writer.close();
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
