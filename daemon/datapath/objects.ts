// Opens and loads one BPF object file (bpf/*.bpf.o) through libbpf: sets `const volatile` knobs in
// .rodata from the object's BTF, points maps at their pins so state survives restarts, and
// exposes program and map fds (bpf(2) BPF_PROG_LOAD / BPF_MAP_CREATE via bpf_object__load).
import { join } from 'node:path';
import { btfDatasecVars } from './btf.js';
import {
  type BpfMap,
  type BpfObject,
  isBpfError,
  mapFd,
  mapInnerMap,
  mapInitialValue,
  mapSetInitialValue,
  mapSetPinPath,
  mapSetValueSize,
  objectBtf,
  objectClose,
  objectFindMapByName,
  objectFindProgramByName,
  objectLoad,
  objectOpenFile,
  objectUnpinMaps,
  programFd,
  programSetAutoload,
} from './libbpf.js';
import { type PinMigrations, detachMismatchedPins } from './pin-migrate.js';
import { tableValueSize } from './service-tables.js';

/** A number for an integer knob; a Buffer of exactly the variable's size for an array (bytes as
 *  they lie in memory, e.g. an IPv6 address in wire order). */
export type KnobValue = number | bigint | boolean | Buffer;

export interface LoadObjectOptions {
  /** Path of the .bpf.o file. */
  path: string;
  /** `const volatile` globals in .rodata to set before load, by variable name. */
  knobs?: Record<string, KnobValue>;
  /** Directory (on bpffs) where the maps named in pinMaps are pinned and reused from. */
  pinDir?: string;
  pinMaps?: readonly string[];
  /** Load only these programs (default: all). */
  programs?: readonly string[];
  /** Every program name in the object; needed with `programs` to switch the others off. */
  allPrograms?: readonly string[];
}

/** Writes knob values into a copy of the .rodata image at the offsets BTF gives. */
export function encodeKnobs(image: Buffer, vars: ReadonlyArray<{ name: string; offset: number; size: number }>,
  knobs: Record<string, KnobValue>): Buffer {
  const out = Buffer.from(image);
  for (const [name, value] of Object.entries(knobs)) {
    const v = vars.find((x) => x.name === name);
    if (!v) throw new Error(`knob ${name}: no such const volatile variable in .rodata`);
    if (Buffer.isBuffer(value)) {
      if (value.length !== v.size) throw new Error(`knob ${name}: ${value.length} bytes given, the variable has ${v.size}`);
      value.copy(out, v.offset);
      continue;
    }
    const n = typeof value === 'boolean' ? BigInt(value ? 1 : 0) : BigInt(value);
    const max = 1n << BigInt(v.size * 8);
    if (n < -(max >> 1n) || n >= max) throw new Error(`knob ${name}: ${n} does not fit in ${v.size} bytes`);
    const u = n < 0n ? n + max : n;
    switch (v.size) {
      case 1: out.writeUInt8(Number(u), v.offset); break;
      case 2: out.writeUInt16LE(Number(u), v.offset); break;
      case 4: out.writeUInt32LE(Number(u), v.offset); break;
      case 8: out.writeBigUInt64LE(u, v.offset); break;
      default: throw new Error(`knob ${name}: unsupported size ${v.size}`);
    }
  }
  return out;
}

/** A loaded BPF object. close() releases the fds; pinned maps and links outlive it. */
export class LoadedObject {
  private closed = false;

  constructor(
    readonly path: string,
    private readonly obj: BpfObject,
  ) {}

  programFd(name: string): number {
    return programFd(objectFindProgramByName(this.obj, name));
  }

  mapFd(name: string): number {
    return mapFd(objectFindMapByName(this.obj, name));
  }

  /** Removes the pins of the maps that were given a pin path (they live on while fds remain). */
  unpinMaps(): void {
    if (!this.closed) objectUnpinMaps(this.obj, null);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    objectClose(this.obj);
  }
}

/**
 * nrd_lb.h's service tables: the inner template of nrd_svc_tables holds one u32[M] value, M the
 * knob lb_maglev_m as .rodata now holds it (set or default), so its value size is set here before
 * the load. Objects without the map are left alone.
 */
function sizeServiceTables(obj: BpfObject): void {
  const outer = findMap(obj, 'nrd_svc_tables');
  if (!outer) return;
  const inner = mapInnerMap(outer);
  if (!inner) throw new Error('nrd_svc_tables has no inner-map template');
  const image = mapInitialValue(objectFindMapByName(obj, '.rodata'));
  const v = btfDatasecVars(objectBtf(obj), '.rodata').find((x) => x.name === 'lb_maglev_m');
  if (!image || !v) throw new Error('nrd_svc_tables without the knob lb_maglev_m in .rodata');
  mapSetValueSize(inner, tableValueSize(image.readUInt32LE(v.offset)));
}

function findMap(obj: BpfObject, name: string): BpfMap | undefined {
  try {
    return objectFindMapByName(obj, name);
  } catch (e) {
    if (isBpfError(e)) return undefined;
    throw e;
  }
}

export function loadObject(opts: LoadObjectOptions): LoadedObject {
  const obj = objectOpenFile(opts.path);
  let migrations: PinMigrations | undefined;
  try {
    if (opts.knobs && Object.keys(opts.knobs).length > 0) {
      const rodata = objectFindMapByName(obj, '.rodata');
      const image = mapInitialValue(rodata);
      if (!image) throw new Error(`${opts.path}: .rodata has no initial value`);
      const vars = btfDatasecVars(objectBtf(obj), '.rodata');
      mapSetInitialValue(rodata, encodeKnobs(image, vars, opts.knobs));
    }
    sizeServiceTables(obj);
    if (opts.pinDir) {
      for (const m of opts.pinMaps ?? []) mapSetPinPath(objectFindMapByName(obj, m), join(opts.pinDir, m));
      // A pin whose definition changed (an upgrade) would fail the load: migrate or replace it.
      migrations = detachMismatchedPins(opts.pinMaps ?? [], opts.pinDir, (m) => objectFindMapByName(obj, m));
    }
    if (opts.programs) {
      for (const p of opts.allPrograms ?? []) {
        programSetAutoload(objectFindProgramByName(obj, p), opts.programs.includes(p));
      }
    }
    objectLoad(obj);
  } catch (e) {
    migrations?.restore();
    objectClose(obj);
    throw e;
  }
  migrations?.finish((m) => mapFd(objectFindMapByName(obj, m)));
  return new LoadedObject(opts.path, obj);
}
