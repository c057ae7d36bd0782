// An in-memory model of the service maps (nrd_services, nrd_backends, nrd_svc_tables, nrd_revnat)
// that applies WireServiceOps the way ServiceMapWriter does, checks after every op what the
// datapath relies on (a service that takes flows has a table whose ids all resolve), and can fail
// a chosen write (fault injection) after the ops before it took effect, as a real writer would.
import assert from 'node:assert/strict';
import type { WireServiceOp } from '../../../daemon/datapath/services.js';
import {
  type BackendValue, type RevNatValue, type ServicePlan, type ServiceValue, SVC_F_MAGLEV, SVC_F_NO_BACKEND, serviceKeyText,
} from '../../../daemon/services/plan.js';

export interface ModelContents {
  services: Map<string, ServiceValue>;
  backends: Map<number, BackendValue>;
  tables: Map<number, number[]>;
  revNat: Map<number, RevNatValue>;
}

/** Addresses as plain Uint8Arrays (plans hold Buffers, codecs decode Uint8Arrays). */
const plain = <V extends { addr: Uint8Array }>(v: V): V => ({ ...v, addr: Uint8Array.from(v.addr) });

const emptyContents = (): ModelContents => ({ services: new Map(), backends: new Map(), tables: new Map(), revNat: new Map() });

/** What `plan` says the maps hold, in the model's shape. */
export function planContents(plan: ServicePlan): ModelContents {
  const c = emptyContents();
  for (const [t, e] of plan.services) c.services.set(t, e.value);
  for (const e of plan.backends.values()) c.backends.set(e.key, plain(e.value));
  for (const [id, s] of plan.slots) c.tables.set(id, [...s]);
  for (const e of plan.revNat.values()) c.revNat.set(e.key, plain(e.value));
  return c;
}

export class ServiceMapsModel {
  readonly maps: ModelContents = emptyContents();
  /** Ops applied so far (every call); a write fails when this reaches failAt. */
  opsApplied = 0;
  failAt: number | undefined;
  /** Check the datapath invariant after every op (off while the Maglev M itself changes). */
  checkInvariant = true;
  maglevM = 0;
  /** The table size (M) the last apply announced. */
  tableSize: number | undefined;

  async applyServiceOps(ops: WireServiceOp[]): Promise<number> {
    let writes = 0;
    for (const o of ops) {
      if (this.failAt !== undefined && this.opsApplied === this.failAt) {
        this.failAt = undefined;
        throw new Error(`bpf_map_update_elem: injected fault at op ${this.opsApplied} (${o.op})`);
      }
      this.opsApplied++;
      writes += this.apply(o);
      if (this.checkInvariant) this.invariant(o);
    }
    return writes;
  }

  private apply(o: WireServiceOp): number {
    const m = this.maps;
    switch (o.op) {
      case 'set-backend': m.backends.set(o.id, plain(o.value)); return 1;
      case 'set-slots': m.tables.set(o.serviceId, [...o.slots]); return 5;
      case 'set-revnat': m.revNat.set(o.id, plain(o.value)); return 1;
      case 'set-service': m.services.set(serviceKeyText(o.key), o.value); return 1;
      case 'delete-service': m.services.delete(serviceKeyText(o.key)); return 1;
      case 'delete-revnat': m.revNat.delete(o.id); return 1;
      case 'delete-slots': m.tables.delete(o.serviceId); return 1;
      case 'delete-backend': m.backends.delete(o.id); return 1;
      case 'table-size': this.tableSize = o.slots; return 0;
      case 'prune': {
        let n = 0;
        const svc = new Set(o.keep.services.map(serviceKeyText));
        for (const k of [...m.services.keys()]) if (!svc.has(k)) n += Number(m.services.delete(k));
        const drop = <V>(map: Map<number, V>, keep: number[]): void => {
          const s = new Set(keep);
          for (const k of [...map.keys()]) if (!s.has(k)) n += Number(map.delete(k));
        };
        drop(m.revNat, o.keep.revNat);
        drop(m.tables, o.keep.tables);
        drop(m.backends, o.keep.backends);
        return n;
      }
    }
  }

  /** A service that takes new flows has a table long enough for its pick, naming known backends. */
  private invariant(after: WireServiceOp): void {
    for (const [t, v] of this.maps.services) {
      if (v.flags & SVC_F_NO_BACKEND) continue;
      const table = this.maps.tables.get(v.id);
      assert.ok(table, `after ${after.op}: service ${t} (id ${v.id}) takes flows but has no table`);
      const need = v.flags & SVC_F_MAGLEV ? this.maglevM : v.backendCount;
      assert.ok(table.length >= need, `after ${after.op}: service ${t}: table of ${table.length} < ${need}`);
      for (const b of table) assert.ok(this.maps.backends.has(b), `after ${after.op}: service ${t}: slot names unknown backend ${b}`);
    }
  }
}

/** Waits (up to `ms`) until a ServicesDatapath's retry of a failed apply succeeded. */
export async function untilRetried(dp: { lastError: string | undefined }, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (dp.lastError !== undefined && Date.now() - t0 < ms) await new Promise((r) => setTimeout(r, 20));
  assert.equal(dp.lastError, undefined, 'the retry reached the plan');
}
/** mulberry32: a small seeded PRNG, so a failing history can be replayed from its seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

