// Incremental service planning: the same ServicePlan planServices computes from the whole service
// set, kept up to date by recomputing only what a change touches. setServices stays
// level-triggered (the whole set each time), but the work per call is a cheap pass comparing each
// record with the one applied before (by reference, then by content) — or, for a set the state
// layer derived from the one applied last (service-set.ts), only the records it says changed —
// plus the plan work of the
// services that changed: their conflict group (same vip/port/proto: the first by name wins), their
// ids, their backends' reference counts and their slot tables. A Maglev table is built only for a
// service whose live backends changed, so a change of one service among 10k costs about what it
// costs among 100, and the ops it yields are that service's few map writes.
//
// Equivalence with planServices (checked by a property test over random histories): after every
// update, `plan` equals planServices(same input, previous plan) — same ids (kept while a name or
// backend stays, a new one gets stableIds' hash-and-probe id), same entries, same conflicts.
import { type Keyed, sameData } from '../lib/keyed-diff.js';
import { nextStableId } from '../lib/stable-hash.js';
import type { ServiceRecord } from '../state/records.js';
import { type ServiceChanges, sameService, serviceSetChanges } from '../state/service-set.js';
import {
  type BackendRef, type BackendValue, type LbAlgorithm, type RevNatValue, type ServiceEntry, type ServiceOp, type ServicePlan,
  BackendState, ID_MAX, ID_MIN, SEED_BACKEND, SEED_SERVICE, backendKeyText, backendValue, computeService, emptyPlan,
  serviceKeyOf, serviceKeyText,
} from './plan.js';

export interface IncrementalInput {
  services: readonly ServiceRecord[];
  /** Backends that take no new connection but keep their established ones. */
  draining?: readonly BackendRef[];
  lbAlgorithm: LbAlgorithm;
  maglevTableSize: number;
  /** Drop from `draining` a backend some record lists again (its drain ends: it takes new flows). */
  undrainListed?: boolean;
}

/** A backend that was ACTIVE and is referenced by no service any more. */
export interface GoneBackend {
  text: string;
  ref: BackendRef;
  /** The services that listed it before this update. */
  services: string[];
}

/** Returns the gone backends to keep as DRAINING (their entry stays, with no slot). */
export type DrainHook = (gone: GoneBackend[]) => readonly GoneBackend[];

const cmpText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Records with the same frontend and backends, in the same order (the order feeds nothing but
 * equality here; the Maglev table itself does not depend on it). */
export const sameRecord = sameService;

/** What one update looked at: records compared with the applied ones, and those replanned. */
export interface UpdateStats {
  examined: number;
  replanned: number;
}

/** Ids for `names` (taken in sorted order): a previous id when free, else stableIds' probe. */
function allocate(names: string[], ids: Map<string, number>, used: Set<number>, seed: number, previous?: ReadonlyMap<string, number>): void {
  names.sort(cmpText);
  if (previous) {
    for (const n of names) {
      const id = previous.get(n);
      if (id !== undefined && id >= ID_MIN && id <= ID_MAX && !used.has(id)) {
        ids.set(n, id);
        used.add(id);
      }
    }
  }
  for (const n of names) {
    if (ids.has(n)) continue;
    const id = nextStableId(n, used, { min: ID_MIN, max: ID_MAX, seed });
    ids.set(n, id);
    used.add(id);
  }
}

/** A changed record with its frontend key and its backends checked (throws on a duplicate). */
function changedRecord(rec: ServiceRecord): { name: string; rec: ServiceRecord; key: string } {
  const texts = new Set(rec.backends.map((b) => backendKeyText({ ...b, protocol: rec.protocol })));
  if (texts.size !== rec.backends.length) throw new RangeError(`service ${rec.name}: duplicate backend`);
  return { name: rec.name, rec, key: serviceKeyText(serviceKeyOf(rec)) };
}

/** The entries one update touched, as they were before it (undefined: absent). */
class Before {
  readonly services = new Map<string, ServiceEntry | undefined>();
  readonly revNat = new Map<number, RevNatValue | undefined>();
  readonly slots = new Map<number, Uint32Array | undefined>();
  readonly backends = new Map<number, BackendValue | undefined>();
}

export class IncrementalPlanner {
  /** The desired maps after the last update (mutated in place by update). */
  readonly plan: ServicePlan = emptyPlan();
  /** Applied records by name; gen marks those seen by the current update. */
  private readonly records = new Map<string, { rec: ServiceRecord; gen: number }>();
  private gen = 0;
  /** Record name → its frontend's key text. */
  private readonly keyOf = new Map<string, string>();
  /** Frontend key text → the names of the records with that frontend (a conflict when > 1). */
  private readonly groups = new Map<string, Set<string>>();
  private readonly winnerOf = new Map<string, string>();
  private readonly conflicted = new Set<string>();
  /** Winning service → the key texts of the backends it lists. */
  private readonly svcBackends = new Map<string, Set<string>>();
  /** Backend key text → the winning services listing it (its reference count is the size). */
  private readonly users = new Map<string, Set<string>>();
  /** Backend key text → how many records (winners or not) list it. */
  private readonly listed = new Map<string, number>();
  private readonly refs = new Map<string, BackendRef>();
  private draining = new Set<string>();
  private readonly usedServiceIds = new Set<number>();
  private readonly usedBackendIds = new Set<number>();
  private opts: { lbAlgorithm: LbAlgorithm; maglevTableSize: number } | undefined;
  /** Draining backends the last update dropped because a record lists them again (undrainListed). */
  undrained: string[] = [];
  private previousIds: { services?: ReadonlyMap<string, number>; backends?: ReadonlyMap<string, number> } | undefined;
  /** The services input of the last update that succeeded, when frozen (it cannot change later). */
  private applied: readonly ServiceRecord[] | undefined;
  /** What the last update looked at. */
  lastUpdate: UpdateStats = { examined: 0, replanned: 0 };

  /** Ids read back from the maps after a restart: the first update keeps them where it can. */
  adoptIds(previous: { services?: ReadonlyMap<string, number>; backends?: ReadonlyMap<string, number> }): void {
    this.previousIds = previous;
  }

  /** The record applied under `name`. */
  record(name: string): ServiceRecord | undefined {
    return this.records.get(name)?.rec;
  }

  /** Whether any record (a conflict's loser too) lists the backend. */
  isListed(text: string): boolean {
    return (this.listed.get(text) ?? 0) > 0;
  }

  /**
   * Brings `plan` to the desired maps for `input` and returns the map writes between the plan
   * before and after, ordered as diffPlan orders them. Throws (changing nothing) on a record with
   * an address that does not parse.
   */
  update(input: IncrementalInput, drainHook?: DrainHook): ServiceOp[] {
    const opts = { lbAlgorithm: input.lbAlgorithm, maglevTableSize: input.maglevTableSize };
    const optsChanged = !this.opts || this.opts.lbAlgorithm !== opts.lbAlgorithm || this.opts.maglevTableSize !== opts.maglevTableSize;
    // Which records changed (the first of a name counts); their keys and backend texts parsed
    // before anything is touched. A set the state layer derived from the one applied last says
    // what changed (service-set.ts): only those records are looked at. Any other input costs one
    // lookup per record, no new map.
    const changed: { name: string; rec?: ServiceRecord; key?: string }[] = [];
    const frozen = Object.isFrozen(input.services);
    const delta = frozen && this.applied ? (input.services === this.applied ? new Map() : serviceSetChanges(input.services, this.applied)) : undefined;
    const examined = delta ? this.changedIn(delta, changed) : this.changedAmong(input.services, changed);
    const draining = new Map<string, BackendRef>();
    for (const b of input.draining ?? []) draining.set(backendKeyText(b), b);

    const before = new Before();
    const dirtyKeys = new Set<string>();
    const touched = new Set<string>();
    for (const c of changed) {
      const old = this.records.get(c.name)?.rec;
      if (old) {
        const k = this.keyOf.get(c.name)!;
        this.groups.get(k)!.delete(c.name);
        dirtyKeys.add(k);
        for (const b of old.backends) this.count(this.listed, backendKeyText({ ...b, protocol: old.protocol }), -1);
      }
      if (c.rec) {
        this.keyOf.set(c.name, c.key!);
        let g = this.groups.get(c.key!);
        if (!g) this.groups.set(c.key!, (g = new Set()));
        g.add(c.name);
        dirtyKeys.add(c.key!);
        for (const b of c.rec.backends) this.count(this.listed, backendKeyText({ ...b, protocol: c.rec.protocol }), 1);
        this.records.set(c.name, { rec: c.rec, gen: this.gen });
      } else {
        this.keyOf.delete(c.name);
        this.records.delete(c.name);
      }
    }
    this.undrained = [];
    if (input.undrainListed) {
      for (const t of draining.keys()) {
        if (!this.isListed(t)) continue;
        draining.delete(t);
        this.undrained.push(t);
      }
    }
    // A backend entering or leaving `draining` changes its users' live backends and its state.
    for (const t of new Set([...this.draining, ...draining.keys()])) {
      if (this.draining.has(t) === draining.has(t)) continue;
      touched.add(t);
      for (const u of this.users.get(t) ?? []) dirtyKeys.add(this.keyOf.get(u)!);
    }
    this.draining = new Set(draining.keys());
    for (const [t, ref] of draining) if (!this.refs.has(t)) this.refs.set(t, ref);
    if (optsChanged) for (const k of this.winnerOf.keys()) dirtyKeys.add(k);
    this.opts = opts;

    // Retract the old winner of every dirty frontend, then install the new one (first by name).
    const formerUsers = new Map<string, Set<string>>();
    const retracted: { name: string; id: number }[] = [];
    const installs: { key: string; name: string }[] = [];
    for (const k of dirtyKeys) {
      const old = this.winnerOf.get(k);
      if (old !== undefined) {
        for (const t of this.svcBackends.get(old) ?? []) {
          const u = this.users.get(t)!;
          if (!formerUsers.has(t)) formerUsers.set(t, new Set(u));
          u.delete(old);
          if (u.size === 0) this.users.delete(t);
          touched.add(t);
        }
        this.svcBackends.delete(old);
        this.winnerOf.delete(k);
        retracted.push({ name: old, id: this.plan.serviceIds.get(old)! });
      }
      const g = this.groups.get(k);
      if (!g || g.size === 0) {
        this.groups.delete(k);
        this.conflicted.delete(k);
        continue;
      }
      let first: string | undefined;
      for (const n of g) if (first === undefined || n < first) first = n;
      if (g.size > 1) this.conflicted.add(k);
      else this.conflicted.delete(k);
      installs.push({ key: k, name: first! });
    }
    for (const { key, name } of installs) {
      const rec = this.records.get(name)!.rec;
      const texts = new Set<string>();
      for (const b of rec.backends) {
        const ref: BackendRef = { ...b, protocol: rec.protocol };
        const t = backendKeyText(ref);
        texts.add(t);
        let u = this.users.get(t);
        if (!u) this.users.set(t, (u = new Set()));
        u.add(name);
        this.refs.set(t, ref);
        touched.add(t);
      }
      this.svcBackends.set(name, texts);
      this.winnerOf.set(key, name);
    }

    // Service ids: freed for a name that won before and no longer does, allocated for a new winner.
    const plan = this.plan;
    for (const { name, id } of retracted) {
      if (this.isWinner(name)) continue;
      plan.serviceIds.delete(name);
      this.usedServiceIds.delete(id);
      this.setRevNat(before, id, undefined);
      this.setSlots(before, id, undefined, '');
    }
    allocate(installs.map((i) => i.name).filter((n) => !plan.serviceIds.has(n)), plan.serviceIds, this.usedServiceIds, SEED_SERVICE, this.previousIds?.services);

    // Backends: present while a winner lists it or it drains; an ACTIVE one that lost its last
    // user may be kept DRAINING by the hook.
    const gone: GoneBackend[] = [];
    for (const t of touched) {
      if (this.users.has(t) || this.draining.has(t)) continue;
      const id = plan.backendIds.get(t);
      if (id !== undefined && plan.backends.get(String(id))?.value.state === BackendState.ACTIVE) {
        gone.push({ text: t, ref: this.refs.get(t)!, services: [...(formerUsers.get(t) ?? [])].sort(cmpText) });
      }
    }
    if (gone.length && drainHook) for (const g of drainHook(gone)) this.draining.add(g.text);
    const newBackends: string[] = [];
    for (const t of touched) {
      const id = plan.backendIds.get(t);
      if (this.users.has(t) || this.draining.has(t)) {
        if (id === undefined) newBackends.push(t);
        continue;
      }
      this.refs.delete(t);
      if (id === undefined) continue;
      plan.backendIds.delete(t);
      this.usedBackendIds.delete(id);
      this.setBackend(before, id, undefined);
    }
    allocate(newBackends, plan.backendIds, this.usedBackendIds, SEED_BACKEND, this.previousIds?.backends);
    this.previousIds = undefined;
    for (const t of touched) {
      const id = plan.backendIds.get(t);
      if (id === undefined) continue;
      const state = this.users.has(t) && !this.draining.has(t) ? BackendState.ACTIVE : BackendState.DRAINING;
      this.setBackend(before, id, backendValue(this.refs.get(t)!, state));
    }

    // The services of the dirty frontends.
    for (const k of dirtyKeys) {
      const name = this.winnerOf.get(k);
      if (name === undefined) {
        this.setService(before, k, undefined);
        continue;
      }
      const rec = this.records.get(name)!.rec;
      const key = serviceKeyOf(rec);
      const id = plan.serviceIds.get(name)!;
      const s = computeService(rec, key, id, this.draining, plan.backendIds, opts, plan);
      this.setService(before, k, { name, key, value: s.value });
      this.setRevNat(before, id, s.revNat);
      this.setSlots(before, id, s.slots, s.source);
    }
    plan.conflicts = this.conflicts();
    this.applied = frozen ? input.services : undefined;
    this.lastUpdate = { examined, replanned: changed.length };
    return this.ops(before);
  }

  /** Fills `changed` from a whole set; returns how many records were compared. */
  private changedAmong(services: readonly ServiceRecord[], changed: { name: string; rec?: ServiceRecord; key?: string }[]): number {
    const gen = ++this.gen;
    const added = new Set<string>();
    let seen = 0;
    for (const rec of services) {
      const e = this.records.get(rec.name);
      if (e) {
        if (e.gen === gen) continue;
        e.gen = gen;
        seen++;
        if (sameRecord(e.rec, rec)) continue;
      } else if (added.has(rec.name)) continue;
      else added.add(rec.name);
      changed.push(changedRecord(rec));
    }
    if (seen < this.records.size) for (const [name, e] of this.records) if (e.gen !== gen) changed.push({ name });
    return services.length;
  }

  /** Fills `changed` from the changes of a set derived from the one applied last. */
  private changedIn(delta: ServiceChanges, changed: { name: string; rec?: ServiceRecord; key?: string }[]): number {
    for (const [name, rec] of delta) {
      const e = this.records.get(name);
      if (rec === undefined) {
        if (e) changed.push({ name });
      } else if (!e || !sameRecord(e.rec, rec)) changed.push(changedRecord(rec));
    }
    return delta.size;
  }

  private isWinner(name: string): boolean {
    const k = this.keyOf.get(name);
    return k !== undefined && this.winnerOf.get(k) === name;
  }

  private count(m: Map<string, number>, t: string, d: number): void {
    const n = (m.get(t) ?? 0) + d;
    if (n > 0) m.set(t, n);
    else m.delete(t);
  }

  private conflicts(): ServicePlan['conflicts'] {
    const out: ServicePlan['conflicts'] = [];
    for (const k of this.conflicted) {
      const kept = this.winnerOf.get(k)!;
      for (const n of this.groups.get(k)!) if (n !== kept) out.push({ name: n, keptName: kept });
    }
    return out.sort((a, b) => cmpText(a.name, b.name));
  }

  private setService(b: Before, k: string, e: ServiceEntry | undefined): void {
    if (!b.services.has(k)) b.services.set(k, this.plan.services.get(k));
    if (e) this.plan.services.set(k, e);
    else this.plan.services.delete(k);
  }

  private setRevNat(b: Before, id: number, v: RevNatValue | undefined): void {
    if (!b.revNat.has(id)) b.revNat.set(id, this.plan.revNat.get(String(id))?.value);
    if (v) this.plan.revNat.set(String(id), { key: id, value: v });
    else this.plan.revNat.delete(String(id));
  }

  private setSlots(b: Before, id: number, slots: Uint32Array | undefined, source: string): void {
    if (!b.slots.has(id)) b.slots.set(id, this.plan.slots.get(id));
    if (slots) {
      this.plan.slots.set(id, slots);
      this.plan.slotSource.set(id, source);
    } else {
      this.plan.slots.delete(id);
      this.plan.slotSource.delete(id);
    }
  }

  private setBackend(b: Before, id: number, v: BackendValue | undefined): void {
    if (!b.backends.has(id)) b.backends.set(id, this.plan.backends.get(String(id))?.value);
    if (v) this.plan.backends.set(String(id), { key: id, value: v } satisfies Keyed<number, BackendValue>);
    else this.plan.backends.delete(String(id));
  }

  /** The writes between `before` and the plan now, in diffPlan's order. */
  private ops(b: Before): ServiceOp[] {
    const p = this.plan;
    const ops: ServiceOp[] = [];
    const late: ServiceOp[] = [];
    for (const [id, old] of b.backends) {
      const now = p.backends.get(String(id))?.value;
      if (now && !(old && sameData(old, now))) ops.push({ op: 'set-backend', id, value: now });
    }
    for (const [k, old] of b.services) if (old && !p.services.has(k)) ops.push({ op: 'delete-service', key: old.key });
    for (const [id, old] of b.slots) {
      const now = p.slots.get(id);
      if (now && old !== now && !(old && sameData(old, now))) (old && old.length > now.length ? late : ops).push({ op: 'set-slots', serviceId: id, slots: now });
    }
    for (const [id, old] of b.revNat) {
      const now = p.revNat.get(String(id))?.value;
      if (now && !(old && sameData(old, now))) ops.push({ op: 'set-revnat', id, value: now });
    }
    for (const [k, old] of b.services) {
      const now = p.services.get(k);
      if (now && !(old && sameData(old.value, now.value))) ops.push({ op: 'set-service', key: now.key, value: now.value });
    }
    ops.push(...late);
    for (const [id, old] of b.revNat) if (old && !p.revNat.has(String(id))) ops.push({ op: 'delete-revnat', id });
    for (const [id, old] of b.slots) if (old && !p.slots.has(id)) ops.push({ op: 'delete-slots', serviceId: id });
    for (const [id, old] of b.backends) if (old && !p.backends.has(String(id))) ops.push({ op: 'delete-backend', id });
    return ops;
  }
}
