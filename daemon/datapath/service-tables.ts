// Selection tables of the services (nrd_svc_tables, a hash of maps: table id → inner array whose
// one value is u32[M], the backend ids of the slots) and the pool of spare tables the service
// writer takes them from.
//
// Why one value of u32[M] and not M values of one u32: the kernel lays array elements
// round_up(value_size, 8) apart, so a u32 element costs 8 bytes. One element of 4·M bytes halves
// a table (64 KiB at M = 16381; Cilium's Maglev maps are laid out the same way). The kernel takes
// into the outer map only inner maps of the template's exact value size, so every table is M
// slots, random ones too (their first backend_count slots are used), and M is the loader's knob
// lb_maglev_m (objects.ts sizes the template from it).
//
// Why a pool: every update or delete of a map-in-map makes the kernel wait for an RCU grace period
// (maybe_wait_bpf_programs: 8–20 ms measured here), whatever the table size. Inserting a table per
// new service would make each service change that slow. Instead spare tables sit in the outer map
// already; a change takes one, fills it through mmap (no per-slot syscall) and points the
// service's nrd_services value at it — one plain hash update, which also switches the backend
// count at the same instant. Spares are created and inserted in batches (one grace period per
// batch, bpf_map_update_batch) off the change path, about once per 24 changes; a table let go
// waits QUARANTINE_MS before reuse (a program run that looked the old table up is long finished),
// and spares beyond need are deleted in batches.
//
// Table ids are the writer's own (the plan never sees them); after a restart the pool is found
// again from the pinned maps: tables named by a service are in use, the other inner maps are spares.
import {
  closeFd, isBpfError, mapCreate, mapDeleteBatch, mapGetFdById, mapGetNextKey, mapInfoByFd, mapLookupElem, mapReadMmap, mapUpdateBatch,
  mapUpdateElem, mapWriteMmap,
} from './libbpf.js';

const BPF_MAP_TYPE_ARRAY = 2;
/** The inner maps' flags, as the template in nrd_lb.h has them (the kernel checks they match):
 * the table is written through mmap. */
const BPF_F_MMAPABLE = 1 << 10;
const BPF_F_INNER_MAP = 1 << 12;

/** Spares per table size in use: below LOW they are topped up to TARGET after a change (one
 * grace period per TARGET − LOW changes, off the change path); above HIGH they are trimmed. */
export const POOL_LOW = 8;
export const POOL_TARGET = 32;
export const POOL_HIGH = 128;
/** How long a released table waits before reuse. */
export const QUARANTINE_MS = 1000;
/** A table size not taken for this long loses its spares. */
const SIZE_IDLE_MS = 600_000;

const u32 = (n: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
};

/** Slots of a table for the knob lb_maglev_m = m: M (at least one: m = 0 turns Maglev off). */
export function tableSlots(m: number): number {
  return Math.max(1, m);
}

/** value_size of the inner template and of every table for lb_maglev_m = m (nrd_lb.h nrd_svc_table). */
export function tableValueSize(m: number): number {
  return 4 * tableSlots(m);
}

function createTable(size: number): number {
  return mapCreate({ type: BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: 4 * size, maxEntries: 1, mapFlags: BPF_F_INNER_MAP | BPF_F_MMAPABLE }, 'nrd_svc_table');
}

/** A table's one value: `slots`, zero after them, cut at `size` (a random service past M backends). */
function tableBytes(size: number, slots: Uint32Array): Buffer {
  const v = new Uint32Array(size);
  v.set(slots.length > size ? slots.subarray(0, size) : slots);
  return Buffer.from(v.buffer, v.byteOffset, v.byteLength);
}

/** Writes `slots` (zero after them) into an inner table through mmap: 2 syscalls whatever its size. */
function fillTable(fd: number, size: number, slots: Uint32Array): void {
  mapWriteMmap(fd, tableBytes(size, slots));
}

/** The slots of a table (its value size / 4). */
function slotsOf(fd: number): number {
  return mapInfoByFd(fd).valueSize / 4;
}

/** The fd of the inner map under `key` of the outer map, or undefined. */
function innerFd(outerFd: number, key: number): number | undefined {
  const id = Buffer.alloc(4);
  try {
    mapLookupElem(outerFd, u32(key), id);
  } catch (e) {
    if (isBpfError(e, 'ENOENT')) return undefined;
    throw e;
  }
  return mapGetFdById(id.readUInt32LE(0));
}

/** Creates a table of `size` slots (default: as many as `slots`) holding `slots` and inserts it
 * under `key` (tests; the writer uses the pool). */
export function writeTable(outerFd: number, key: number, slots: Uint32Array, size = slots.length): void {
  const fd = createTable(size);
  try {
    fillTable(fd, size, slots);
    mapUpdateElem(outerFd, u32(key), u32(fd));
  } finally {
    closeFd(fd);
  }
}

/** The table under `key` as the kernel holds it, or undefined. */
export function readTable(outerFd: number, key: number): Uint32Array | undefined {
  const fd = innerFd(outerFd, key);
  if (fd === undefined) return undefined;
  try {
    const b = mapReadMmap(fd, slotsOf(fd) * 4);
    return new Uint32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
  } finally {
    closeFd(fd);
  }
}

/** All keys of a map with u32 keys. */
function u32Keys(fd: number): number[] {
  const out: number[] = [];
  let prev: Buffer | null = null;
  for (;;) {
    const next = Buffer.alloc(4);
    try {
      mapGetNextKey(fd, prev, next);
    } catch (e) {
      if (isBpfError(e, 'ENOENT')) return out;
      throw e;
    }
    out.push(next.readUInt32LE(0));
    prev = next;
  }
}

export interface PoolStats {
  tables: number;
  spare: number;
  quarantined: number;
  /** Grace-period waits paid (batched inserts and deletes of the outer map). */
  outerWrites: number;
}

export class TablePool {
  /** Table id → its size (slots), for every table in the outer map. */
  private readonly sizes = new Map<number, number>();
  private readonly spare = new Map<number, number[]>();
  private quarantine: { id: number; until: number }[] = [];
  private readonly lastTaken = new Map<number, number>();
  private nextId = 1;
  outerWrites = 0;

  constructor(private readonly outerFd: number, private readonly now: () => number = Date.now) {}

  /** Finds the tables of a previous run: `inUse` are named by services, the others are spares. */
  adopt(inUse: ReadonlySet<number>): void {
    for (const id of u32Keys(this.outerFd)) {
      const fd = innerFd(this.outerFd, id);
      if (fd === undefined) continue;
      try {
        this.sizes.set(id, slotsOf(fd));
      } finally {
        closeFd(fd);
      }
      if (id >= this.nextId) this.nextId = id + 1;
      if (!inUse.has(id)) this.pushSpare(id);
    }
  }

  /** Ensures `need[size]` spares are ready (creating the missing ones in one batch). */
  reserve(need: ReadonlyMap<number, number>): void {
    this.thaw();
    for (const [size, n] of need) {
      const have = this.spare.get(size)?.length ?? 0;
      if (have < n) this.create(size, n - have + POOL_TARGET);
    }
  }

  /** A spare of `size` filled with `slots`, now the caller's (reserve first, or it costs a grace period). */
  take(size: number, slots: Uint32Array): number {
    this.thaw();
    this.lastTaken.set(size, this.now());
    let id: number;
    let fd: number | undefined;
    do {
      let list = this.spare.get(size);
      if (!list?.length) {
        this.create(size, 1 + POOL_TARGET);
        list = this.spare.get(size)!;
      }
      id = list.pop()!;
      fd = innerFd(this.outerFd, id);
      if (fd === undefined) this.sizes.delete(id); // deleted behind this writer's back: the next one
    } while (fd === undefined);
    try {
      fillTable(fd, size, slots);
    } catch (e) {
      this.pushSpare(id);
      throw e;
    } finally {
      closeFd(fd);
    }
    return id;
  }

  /** Whether table `id` has `size` slots holding exactly `slots` (a restart's first apply keeps such tables). */
  holds(id: number, size: number, slots: Uint32Array): boolean {
    if (this.sizes.get(id) !== size) return false;
    const fd = innerFd(this.outerFd, id);
    if (fd === undefined) return false;
    try {
      return mapReadMmap(fd, size * 4).equals(tableBytes(size, slots));
    } finally {
      closeFd(fd);
    }
  }

  /** A table no service names any more: reusable after the quarantine. */
  release(id: number): void {
    if (this.sizes.has(id)) this.quarantine.push({ id, until: this.now() + QUARANTINE_MS });
  }

  /** Tops up the sizes taken lately to POOL_LOW, trims the rest (off the change path). */
  maintain(): void {
    this.thaw();
    const now = this.now();
    const drop: number[] = [];
    for (const [size, list] of this.spare) {
      const recent = now - (this.lastTaken.get(size) ?? -Infinity) < SIZE_IDLE_MS;
      const keep = recent ? POOL_HIGH : 0;
      while (list.length > keep) drop.push(list.pop()!);
      if (recent && list.length < POOL_LOW) this.create(size, POOL_TARGET - list.length);
    }
    if (drop.length) this.remove(drop);
  }

  stats(): PoolStats {
    let spare = 0;
    for (const l of this.spare.values()) spare += l.length;
    return { tables: this.sizes.size, spare, quarantined: this.quarantine.length, outerWrites: this.outerWrites };
  }

  private pushSpare(id: number): void {
    const size = this.sizes.get(id)!;
    let list = this.spare.get(size);
    if (!list) this.spare.set(size, (list = []));
    list.push(id);
  }

  private thaw(): void {
    const now = this.now();
    if (!this.quarantine.length || this.quarantine[0]!.until > now) return;
    const still: { id: number; until: number }[] = [];
    for (const q of this.quarantine) (q.until <= now ? this.pushSpare(q.id) : still.push(q));
    this.quarantine = still;
  }

  /**
   * Creates `n` empty tables of `size` and inserts them in one batch (one grace period). A batch
   * takes no BPF_NOEXIST (EINVAL), so each id is first looked up: an id another writer of the same
   * maps took is skipped, never replaced under a live service.
   */
  private create(size: number, n: number): void {
    const fds: number[] = [];
    try {
      for (let i = 0; i < n; i++) fds.push(createTable(size));
      const keys = Buffer.alloc(n * 4);
      const values = Buffer.alloc(n * 4);
      const ids: number[] = [];
      const probe = Buffer.alloc(4);
      while (ids.length < n) {
        const id = this.nextId++;
        try {
          mapLookupElem(this.outerFd, u32(id), probe);
          continue; // taken
        } catch (e) {
          if (!isBpfError(e, 'ENOENT')) throw e;
        }
        keys.writeUInt32LE(id, ids.length * 4);
        values.writeUInt32LE(fds[ids.length]!, ids.length * 4);
        ids.push(id);
      }
      const r = mapUpdateBatch(this.outerFd, keys, values, n);
      this.outerWrites++;
      for (const id of ids.slice(0, r.written)) {
        this.sizes.set(id, size);
        this.pushSpare(id);
      }
      if (r.error !== undefined) {
        // EINVAL: the table does not match the template, i.e. the programs were loaded with another
        // M than the one given (a change of M applied before the reload that replaces the map).
        const why = r.error.startsWith('EINVAL') ? `: tables of ${size} slots do not fit the pinned template (programs loaded with another lb_maglev_m?)` : '';
        throw new Error(`bpf_map_update_batch (nrd_svc_tables): ${r.error}${why}`);
      }
    } finally {
      for (const fd of fds) closeFd(fd);
    }
  }

  private remove(ids: number[]): void {
    const keys = Buffer.alloc(ids.length * 4);
    ids.forEach((id, i) => keys.writeUInt32LE(id, i * 4));
    mapDeleteBatch(this.outerFd, keys, ids.length);
    this.outerWrites++;
    for (const id of ids) this.sizes.delete(id);
  }
}
