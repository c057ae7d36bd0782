// Pinned maps across an upgrade whose object changed a map's definition. libbpf reuses a map
// pinned at a map's pin path only when type, key_size, value_size, max_entries and map_flags all
// match the object ("couldn't reuse pinned map" otherwise), and then fails the whole load: an
// upgraded nrd would not start its datapath. So before the load every pinned map of the object
// is compared with its definition (bpf_obj_get_info_by_fd against bpf_map__*):
//  - equal: libbpf reuses it, entries and all (conntrack, NAT, endpoints survive the upgrade);
//  - different, but its entries fit the new definition (same type, key and value size: a table
//    that grew, or new flags): the pin is taken away, libbpf creates and pins the new map, and
//    the old map's entries are copied into it right after the load ("migrated");
//  - different otherwise (a key or value layout or the type changed): the old map is dropped and
//    the new one starts empty ("replaced").
// Either way the programs loaded with the object use the new map, and it is logged (warn) and
// counted (nrd_datapath_pin_migrations_total). A failed load puts the old pins back.
//
// A map-in-map is also compared by its inner-map template, which libbpf does not check: the
// verifier takes the inner maps' layout from the pinned map, so programs built for another
// layout (nrd_svc_tables' tables when M or their value layout changed) would fail to load on it.
// The kernel does not report the template; an inner map held reveals it (every one matches it),
// and an empty hash of maps is asked with an update of an absent key under BPF_EXIST, which
// checks the inner map against the template (EINVAL) before finding no key (ENOENT) and so
// changes nothing.
//
// Entries the old programs write between the copy and the moment the links run the new programs
// are not carried (a short window, during which the old programs still run on the old maps).
import { unlinkSync } from 'node:fs';
import { join } from 'node:path';
import {
  type BpfMap,
  type KernelMapInfo,
  type MapInfo,
  BPF_EXIST,
  closeFd,
  isBpfError,
  mapCreate,
  mapGetFdById,
  mapGetNextKey,
  mapInfo,
  mapInfoByFd,
  mapInnerMap,
  mapLookupElem,
  mapUpdateElem,
  numPossibleCpus,
  objGet,
  objPin,
} from './libbpf.js';

/** enum bpf_map_type values whose entries can be listed and copied with the element calls. */
const MAP_TYPES: Record<number, { name: string; copyable: boolean; perCpu: boolean }> = {
  1: { name: 'hash', copyable: true, perCpu: false },
  2: { name: 'array', copyable: true, perCpu: false },
  3: { name: 'prog_array', copyable: false, perCpu: false },
  4: { name: 'perf_event_array', copyable: false, perCpu: false },
  5: { name: 'percpu_hash', copyable: true, perCpu: true },
  6: { name: 'percpu_array', copyable: true, perCpu: true },
  9: { name: 'lru_hash', copyable: true, perCpu: false },
  10: { name: 'lru_percpu_hash', copyable: true, perCpu: true },
  11: { name: 'lpm_trie', copyable: true, perCpu: false },
  12: { name: 'array_of_maps', copyable: false, perCpu: false },
  13: { name: 'hash_of_maps', copyable: false, perCpu: false },
  27: { name: 'ringbuf', copyable: false, perCpu: false },
};

function typeName(t: number): string {
  return MAP_TYPES[t]?.name ?? `type ${t}`;
}

/** The definition fields libbpf compares before reusing a pin. */
export type MapDef = Pick<MapInfo, 'type' | 'keySize' | 'valueSize' | 'maxEntries' | 'mapFlags'>;

const BPF_F_INNER_MAP = 1 << 12;
const HASH_OF_MAPS = 13;

/** What the kernel compares between an inner map and its outer map's template
 *  (bpf_map_meta_equal; max_entries too unless BPF_F_INNER_MAP). */
export type InnerDef = Pick<MapInfo, 'type' | 'keySize' | 'valueSize' | 'maxEntries' | 'mapFlags'>;

/** The differences between a pinned map-in-map's inner template and the wanted one ("inner value_size 4 → 65524"). */
export function compareInnerDef(pinned: InnerDef, wanted: InnerDef): string[] {
  const out: string[] = [];
  if (pinned.type !== wanted.type) out.push(`inner type ${typeName(pinned.type)} → ${typeName(wanted.type)}`);
  if (pinned.keySize !== wanted.keySize) out.push(`inner key_size ${pinned.keySize} → ${wanted.keySize}`);
  if (pinned.valueSize !== wanted.valueSize) out.push(`inner value_size ${pinned.valueSize} → ${wanted.valueSize}`);
  if (pinned.mapFlags !== wanted.mapFlags) out.push(`inner map_flags 0x${pinned.mapFlags.toString(16)} → 0x${wanted.mapFlags.toString(16)}`);
  else if (!(wanted.mapFlags & BPF_F_INNER_MAP) && pinned.maxEntries !== wanted.maxEntries) {
    out.push(`inner max_entries ${pinned.maxEntries} → ${wanted.maxEntries}`);
  }
  return out;
}

/** The template differences of a pinned map-in-map (fd) from the object's inner map; [] if it
 *  matches or cannot be told (an empty array of maps). */
export function innerTemplateChanges(fd: number, info: KernelMapInfo, wanted: InnerDef): string[] {
  const key = Buffer.alloc(info.keySize);
  const id = Buffer.alloc(4);
  let prev: Buffer | null = null;
  for (let i = 0; i < info.maxEntries; i++) {
    try {
      mapGetNextKey(fd, prev, key);
    } catch (e) {
      if (isBpfError(e, 'ENOENT')) break;
      throw e;
    }
    prev = Buffer.from(key);
    try {
      mapLookupElem(fd, key, id);
    } catch (e) {
      if (isBpfError(e, 'ENOENT')) continue; // an empty array slot, or deleted meanwhile
      throw e;
    }
    const inner = mapGetFdById(id.readUInt32LE(0));
    try {
      return compareInnerDef(mapInfoByFd(inner), wanted);
    } finally {
      closeFd(inner);
    }
  }
  if (info.type !== HASH_OF_MAPS) return [];
  // Empty: the kernel checks a candidate against the template; BPF_EXIST on an absent key writes nothing.
  const probe = mapCreate({ ...wanted }, 'nrd_probe');
  try {
    const value = Buffer.alloc(4);
    value.writeUInt32LE(probe, 0);
    mapUpdateElem(fd, Buffer.alloc(info.keySize, 0xff), value, BPF_EXIST);
  } catch (e) {
    if (isBpfError(e, 'ENOENT', 'EEXIST')) return [];
    if (isBpfError(e, 'EINVAL')) return ['inner map template'];
    throw e;
  } finally {
    closeFd(probe);
  }
  return [];
}

export type PinMigrationAction = 'migrated' | 'replaced';

export interface PinComparison {
  /** What differs, e.g. ["max_entries 5 → 6"]; empty: the pin is reused as it is. */
  changes: string[];
  /** Set when the entries cannot go into the new map, saying why. */
  notCarried?: string;
}

/** Compares a pinned map (kernel info) with the object's definition of it. */
export function comparePinnedMap(pinned: MapDef, wanted: MapDef): PinComparison {
  const changes: string[] = [];
  if (pinned.type !== wanted.type) changes.push(`type ${typeName(pinned.type)} → ${typeName(wanted.type)}`);
  if (pinned.keySize !== wanted.keySize) changes.push(`key_size ${pinned.keySize} → ${wanted.keySize}`);
  if (pinned.valueSize !== wanted.valueSize) changes.push(`value_size ${pinned.valueSize} → ${wanted.valueSize}`);
  if (pinned.maxEntries !== wanted.maxEntries) changes.push(`max_entries ${pinned.maxEntries} → ${wanted.maxEntries}`);
  if (pinned.mapFlags !== wanted.mapFlags) changes.push(`map_flags 0x${pinned.mapFlags.toString(16)} → 0x${wanted.mapFlags.toString(16)}`);
  if (changes.length === 0) return { changes };
  let notCarried: string | undefined;
  if (pinned.type !== wanted.type) notCarried = 'the map type changed';
  else if (!MAP_TYPES[wanted.type]?.copyable) notCarried = `a ${typeName(wanted.type)} map's entries cannot be copied`;
  else if (pinned.keySize !== wanted.keySize || pinned.valueSize !== wanted.valueSize) notCarried = 'the key or value layout changed';
  return notCarried ? { changes, notCarried } : { changes };
}

export interface PinMigration {
  map: string;
  /** The pin path. */
  path: string;
  action: PinMigrationAction;
  /** The definition changes, e.g. "max_entries 5 → 6". */
  reason: string;
  /** Entries copied into the new map (migrated), and entries that were not (replaced: all). */
  carried: number;
  lost: number;
  /** Why entries were lost (the old layout, or the copy's error). */
  lostWhy?: string;
}

export interface PinMigrationCount {
  map: string;
  action: PinMigrationAction;
  count: number;
}

let listener: ((m: PinMigration) => void) | undefined;
const counts = new Map<string, PinMigrationCount>();

/** Receives every migration of this thread (the datapath's logger). One listener; undefined removes. */
export function setPinMigrationListener(fn: ((m: PinMigration) => void) | undefined): void {
  listener = fn;
}

/** Migrations done by this thread since it started, by map and action. */
export function pinMigrationCounts(): PinMigrationCount[] {
  return [...counts.values()].map((c) => ({ ...c }));
}

function record(m: PinMigration): void {
  const k = `${m.map}\0${m.action}`;
  const c = counts.get(k) ?? { map: m.map, action: m.action, count: 0 };
  c.count++;
  counts.set(k, c);
  listener?.(m);
}

const entries = (n: number): string => `${n} ${n === 1 ? 'entry' : 'entries'}`;

/** The message an operator reads in the log for a migration. */
export function describePinMigration(m: PinMigration): string {
  const what = `pinned map ${m.map} does not match the new object (${m.reason})`;
  if (m.action === 'migrated') {
    return `${what}: migrated ${entries(m.carried)} into a new map${m.lost ? `, ${m.lost} did not fit${m.lostWhy ? ` (${m.lostWhy})` : ''}` : ''}`;
  }
  return `${what}: replaced by an empty map${m.lost ? `, ${entries(m.lost)} dropped` : ''} (${m.lostWhy ?? 'entries not carried'})`;
}

interface Detached {
  name: string;
  path: string;
  /** The old map, kept open past its unpin: copied from after the load, re-pinned if it fails. */
  fd: number;
  info: KernelMapInfo;
  cmp: PinComparison;
}

/** Pins taken away before a load; finish() after a successful load, restore() after a failed one. */
export class PinMigrations {
  constructor(private readonly detached: Detached[]) {}

  get pending(): number {
    return this.detached.length;
  }

  /** Puts the old maps back at their pins (the load failed: nothing changes for the next try).
   *  Never throws: the caller is reporting the load's error. */
  restore(): void {
    for (const d of this.detached.splice(0)) {
      try {
        objPin(d.fd, d.path);
      } catch {
        // EEXIST: a map is pinned there again, it stays. Otherwise the old map goes with its fd.
      } finally {
        closeFd(d.fd);
      }
    }
  }

  /** Copies what can be carried into the new maps (fds from the loaded object), records the rest. */
  finish(newFd: (name: string) => number): PinMigration[] {
    const done: PinMigration[] = [];
    for (const d of this.detached.splice(0)) {
      const base = { map: d.name, path: d.path, reason: d.cmp.changes.join(', ') };
      let m: PinMigration;
      try {
        if (d.cmp.notCarried) {
          m = { ...base, action: 'replaced', carried: 0, lost: countEntries(d.fd, d.info), lostWhy: d.cmp.notCarried };
        } else {
          const r = copyEntries(d.fd, newFd(d.name), d.info);
          m = { ...base, action: 'migrated', carried: r.carried, lost: r.lost, ...(r.why ? { lostWhy: r.why } : {}) };
        }
      } finally {
        closeFd(d.fd);
      }
      record(m);
      done.push(m);
    }
    return done;
  }
}

/**
 * Before bpf_object__load: compares each pinned map of `names` under pinDir with the object's
 * definition and unpins the ones libbpf would refuse, keeping their fds. Maps not pinned yet and
 * maps that match are left to libbpf (create and pin, or reuse).
 */
export function detachMismatchedPins(names: readonly string[], pinDir: string, findMap: (name: string) => BpfMap): PinMigrations {
  const detached: Detached[] = [];
  try {
    for (const name of names) {
      const path = join(pinDir, name);
      let fd: number;
      try {
        fd = objGet(path);
      } catch (e) {
        if (isBpfError(e, 'ENOENT')) continue;
        throw e;
      }
      let keep = false;
      try {
        const info = mapInfoByFd(fd);
        const map = findMap(name);
        const cmp = comparePinnedMap(info, mapInfo(map));
        const inner = mapInnerMap(map);
        if (cmp.changes.length === 0 && inner && info.type === mapInfo(map).type) {
          const changes = innerTemplateChanges(fd, info, mapInfo(inner));
          if (changes.length) Object.assign(cmp, { changes, notCarried: 'the inner map template changed' });
        }
        if (cmp.changes.length === 0) continue;
        unlinkSync(path);
        detached.push({ name, path, fd, info, cmp });
        keep = true;
      } finally {
        if (!keep) closeFd(fd);
      }
    }
  } catch (e) {
    new PinMigrations(detached).restore();
    throw e;
  }
  return new PinMigrations(detached);
}

/** Bytes of a value as the element calls see it: per-CPU maps hold roundup(size, 8) per CPU. */
function valueBytes(info: KernelMapInfo): number {
  return MAP_TYPES[info.type]?.perCpu ? Math.ceil(info.valueSize / 8) * 8 * numPossibleCpus() : info.valueSize;
}

/** The keys of a map, at most max_entries of them (old programs may still be changing it). */
function listKeys(fd: number, info: KernelMapInfo): Buffer[] {
  const keys: Buffer[] = [];
  let prev: Buffer | null = null;
  while (keys.length < info.maxEntries) {
    const next = Buffer.alloc(info.keySize);
    try {
      mapGetNextKey(fd, prev, next);
    } catch (e) {
      if (isBpfError(e, 'ENOENT')) break;
      throw e;
    }
    keys.push(next);
    prev = next;
  }
  return keys;
}

function countEntries(fd: number, info: KernelMapInfo): number {
  if (!MAP_TYPES[info.type]?.copyable || info.keySize === 0) return 0;
  try {
    return listKeys(fd, info).length;
  } catch {
    return 0;
  }
}

/** Copies every entry of the old map into the new one (same key and value layout). */
function copyEntries(from: number, to: number, info: KernelMapInfo): { carried: number; lost: number; why?: string } {
  let carried = 0;
  let lost = 0;
  let why: string | undefined;
  try {
    const keys = listKeys(from, info);
    const value = Buffer.alloc(valueBytes(info));
    for (const key of keys) {
      try {
        mapLookupElem(from, key, value);
      } catch (e) {
        if (isBpfError(e, 'ENOENT')) continue; // deleted meanwhile by the old programs
        throw e;
      }
      try {
        mapUpdateElem(to, key, value);
        carried++;
      } catch (e) {
        // E2BIG: an array index past the new size, or a full hash table (the map shrank).
        if (!isBpfError(e)) throw e;
        lost++;
        why ??= e.message.split('\n')[0];
      }
    }
  } catch (e) {
    // Reading the old map failed: what was copied stays, the new map is in use either way.
    why = `copy stopped: ${(e as Error).message.split('\n')[0]}`;
  }
  return why ? { carried, lost, why } : { carried, lost };
}
