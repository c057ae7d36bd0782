// Flat, errno-transparent binding of libbpf.so.1 (libbpf 1.1, Debian libbpf1) through koffi: BPF
// objects, programs, maps, links, pins, BTF and BPF_PROG_TEST_RUN (kernel bpf(2) interface).
//
// No policy lives here: every function is one libbpf call over pointers, fds and Buffers, and
// every failure is a BpfError { errno, code: 'EEXIST', call } so callers can treat EEXIST or
// ENOENT as outcomes. libbpf 1.x returns -errno from int functions and NULL + errno from pointer
// functions (libbpf_strict, the 1.0 default); both are mapped here. libbpf's own log lines
// (including the verifier log of a failed load) are captured and attached to the error.
import koffi from 'koffi';
import { close as libcClose } from '../lib/libc.js';
import { errnoName } from '../lib/errno.js';

// ---- errors -------------------------------------------------------------------------------------

/** A failed libbpf call: the errno, its code, the call's name, and libbpf's log during it. */
export class BpfError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly call: string;
  readonly log: string[];

  constructor(call: string, errno: number, detail = '', log: string[] = []) {
    const code = errnoName(errno);
    super(`${call}${detail ? ` (${detail})` : ''}: ${code}${log.length ? `\n${log.join('\n')}` : ''}`);
    this.name = 'BpfError';
    this.errno = errno;
    this.code = code;
    this.call = call;
    this.log = log;
  }
}

/** True when err is a BpfError with one of the given codes (e.g. isBpfError(e, 'ENOENT')). */
export function isBpfError(err: unknown, ...codes: string[]): err is BpfError {
  return err instanceof BpfError && (codes.length === 0 || codes.includes(err.code));
}

// ---- library ------------------------------------------------------------------------------------

/** Opaque libbpf pointers, branded so an object cannot be passed where a map is expected. */
export type BpfObject = bigint & { readonly __brand: 'bpf_object' };
export type BpfProgram = bigint & { readonly __brand: 'bpf_program' };
export type BpfMap = bigint & { readonly __brand: 'bpf_map' };
export type Btf = bigint & { readonly __brand: 'btf' };

type Fn = (...args: unknown[]) => unknown;

interface Native {
  open_file: Fn; obj_load: Fn; obj_close: Fn; find_prog: Fn; prog_fd: Fn; prog_set_autoload: Fn;
  prog_name: Fn; find_map: Fn; map_fd: Fn; map_set_pin_path: Fn; map_is_pinned: Fn; pin_maps: Fn;
  unpin_maps: Fn; map_set_initial_value: Fn; map_initial_value: Fn; map_key_size: Fn;
  map_value_size: Fn; map_type: Fn; map_max_entries: Fn; map_flags: Fn; map_btf_key_type_id: Fn;
  map_btf_value_type_id: Fn; obj_btf: Fn; btf_parse_elf: Fn; btf_free: Fn; btf_find: Fn;
  btf_type_by_id: Fn; btf_name: Fn; btf_type_cnt: Fn; btf_resolve_size: Fn; update_elem: Fn;
  lookup_elem: Fn; delete_elem: Fn; get_next_key: Fn; link_create: Fn; link_update: Fn;
  link_detach: Fn; obj_pin: Fn; obj_get: Fn; get_info: Fn; test_run: Fn; num_cpus: Fn;
  set_print: Fn; vsnprintf: Fn; ringbuf_new: Fn; ringbuf_consume: Fn; ringbuf_free: Fn; map_create: Fn;
  inner_map: Fn; map_set_value_size: Fn;
}

let native: Native | undefined;
const logLines: string[] = [];
let logTotal = 0;
const LOG_KEEP = 400;
const LIBBPF_INFO = 1;
let logListener: ((line: string, level: number) => void) | undefined;

function lib(): Native {
  if (native) return native;
  const so = koffi.load('libbpf.so.1');
  const libc = koffi.load('libc.so.6');
  const f = (decl: string): Fn => so.func(decl) as Fn;
  const n: Native = {
    open_file: f('void *bpf_object__open_file(const char *path, const void *opts)'),
    obj_load: f('int bpf_object__load(void *obj)'),
    obj_close: f('void bpf_object__close(void *obj)'),
    find_prog: f('void *bpf_object__find_program_by_name(void *obj, const char *name)'),
    prog_fd: f('int bpf_program__fd(void *prog)'),
    prog_set_autoload: f('int bpf_program__set_autoload(void *prog, bool autoload)'),
    prog_name: f('const char *bpf_program__name(void *prog)'),
    find_map: f('void *bpf_object__find_map_by_name(void *obj, const char *name)'),
    map_fd: f('int bpf_map__fd(void *map)'),
    map_set_pin_path: f('int bpf_map__set_pin_path(void *map, const char *path)'),
    map_is_pinned: f('bool bpf_map__is_pinned(void *map)'),
    pin_maps: f('int bpf_object__pin_maps(void *obj, const char *path)'),
    unpin_maps: f('int bpf_object__unpin_maps(void *obj, const char *path)'),
    map_set_initial_value: f('int bpf_map__set_initial_value(void *map, const void *data, size_t size)'),
    map_initial_value: f('void *bpf_map__initial_value(void *map, _Out_ size_t *psize)'),
    map_key_size: f('uint32_t bpf_map__key_size(void *map)'),
    map_value_size: f('uint32_t bpf_map__value_size(void *map)'),
    map_set_value_size: f('int bpf_map__set_value_size(void *map, uint32_t size)'),
    inner_map: f('void *bpf_map__inner_map(void *map)'),
    map_type: f('int bpf_map__type(void *map)'),
    map_max_entries: f('uint32_t bpf_map__max_entries(void *map)'),
    map_flags: f('uint32_t bpf_map__map_flags(void *map)'),
    map_btf_key_type_id: f('uint32_t bpf_map__btf_key_type_id(void *map)'),
    map_btf_value_type_id: f('uint32_t bpf_map__btf_value_type_id(void *map)'),
    obj_btf: f('void *bpf_object__btf(void *obj)'),
    btf_parse_elf: f('void *btf__parse_elf(const char *path, void *btf_ext)'),
    btf_free: f('void btf__free(void *btf)'),
    btf_find: f('int btf__find_by_name_kind(void *btf, const char *name, uint32_t kind)'),
    btf_type_by_id: f('void *btf__type_by_id(void *btf, uint32_t id)'),
    btf_name: f('const char *btf__name_by_offset(void *btf, uint32_t offset)'),
    btf_type_cnt: f('uint32_t btf__type_cnt(void *btf)'),
    btf_resolve_size: f('int64_t btf__resolve_size(void *btf, uint32_t id)'),
    update_elem: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
    lookup_elem: f('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
    delete_elem: f('int bpf_map_delete_elem(int fd, const void *key)'),
    get_next_key: f('int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),
    link_create: f('int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)'),
    link_update: f('int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)'),
    link_detach: f('int bpf_link_detach(int link_fd)'),
    obj_pin: f('int bpf_obj_pin(int fd, const char *path)'),
    obj_get: f('int bpf_obj_get(const char *path)'),
    get_info: f('int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *len)'),
    test_run: f('int bpf_prog_test_run_opts(int prog_fd, void *opts)'),
    num_cpus: f('int libbpf_num_possible_cpus(void)'),
    set_print: f('void *libbpf_set_print(void *fn)'),
    ringbuf_new: f('void *ring_buffer__new(int map_fd, void *sample_cb, void *ctx, const void *opts)'),
    ringbuf_consume: f('int ring_buffer__consume(void *rb)'),
    ringbuf_free: f('void ring_buffer__free(void *rb)'),
    map_create: f('int bpf_map_create(int type, const char *name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const void *opts)'),
    vsnprintf: libc.func('int vsnprintf(_Out_ uint8_t *buf, size_t size, const char *fmt, void *ap)') as Fn,
  };
  // libbpf prints warnings and verifier logs to stderr by default; route them into a ring that
  // errors quote, and to an optional listener (the daemon's logger).
  const printProto = koffi.proto('int nrd_libbpf_print(int level, const char *fmt, void *ap)');
  const scratch = Buffer.alloc(8192);
  const cb = koffi.register((level: number, fmt: string, ap: bigint): number => {
    const len = n.vsnprintf(scratch, scratch.length, fmt, ap) as number;
    const text = scratch.subarray(0, Math.max(0, Math.min(len, scratch.length - 1))).toString('utf8');
    for (const raw of text.split('\n')) {
      const line = raw.replace(/^libbpf: /, '');
      if (line === '') continue;
      logListener?.(line, level);
      // Errors quote warnings and info (the verifier log of a failed load is a warning), not the
      // per-relocation debug chatter.
      if (level <= LIBBPF_INFO) {
        logLines.push(line);
        logTotal++;
      }
    }
    if (logLines.length > LOG_KEEP) logLines.splice(0, logLines.length - LOG_KEEP);
    return len;
  }, koffi.pointer(printProto));
  n.set_print(cb);
  native = n;
  return n;
}

/** Receive libbpf's log lines (level: 0 warn, 1 info, 2 debug). One listener; undefined removes. */
export function setLogListener(fn: ((line: string, level: number) => void) | undefined): void {
  logListener = fn;
}

/** Marks the log so an error can quote what libbpf logged during one call. */
function logMark(): number {
  return logTotal;
}
function logSince(mark: number): string[] {
  const n = logTotal - mark;
  return n > 0 ? logLines.slice(-Math.min(n, logLines.length)) : [];
}

function check(call: string, ret: number, detail = '', mark?: number): number {
  if (ret < 0) throw new BpfError(call, -ret, detail, mark === undefined ? [] : logSince(mark));
  return ret;
}

function checkPtr<T extends bigint>(call: string, ptr: unknown, detail = '', mark?: number): T {
  if (ptr === null || ptr === undefined || ptr === 0n) {
    const e = koffi.errno() || 22; /* EINVAL: libbpf returned NULL without errno */
    throw new BpfError(call, e, detail, mark === undefined ? [] : logSince(mark));
  }
  return ptr as T;
}

// ---- objects and programs ------------------------------------------------------------------------

/** bpf_object__open_file(path, NULL): parse the ELF and BTF; nothing is loaded into the kernel. */
export function objectOpenFile(path: string): BpfObject {
  const m = logMark();
  return checkPtr<BpfObject>('bpf_object__open_file', lib().open_file(path, null), path, m);
}

/** bpf_object__load: create maps (reusing pinned ones), verify and load the programs. */
export function objectLoad(obj: BpfObject): void {
  const m = logMark();
  check('bpf_object__load', lib().obj_load(obj) as number, '', m);
}

/** bpf_object__close: closes every fd the object holds; pinned objects and links outlive it. */
export function objectClose(obj: BpfObject): void {
  lib().obj_close(obj);
}

export function objectFindProgramByName(obj: BpfObject, name: string): BpfProgram {
  return checkPtr<BpfProgram>('bpf_object__find_program_by_name', lib().find_prog(obj, name), name);
}

export function programFd(prog: BpfProgram): number {
  return check('bpf_program__fd', lib().prog_fd(prog) as number);
}

export function programName(prog: BpfProgram): string {
  return lib().prog_name(prog) as string;
}

export function programSetAutoload(prog: BpfProgram, autoload: boolean): void {
  check('bpf_program__set_autoload', lib().prog_set_autoload(prog, autoload) as number);
}

// ---- maps (libbpf objects) ----------------------------------------------------------------------

/** Finds a map by name, or an internal map by its section name ('.rodata'). */
export function objectFindMapByName(obj: BpfObject, name: string): BpfMap {
  return checkPtr<BpfMap>('bpf_object__find_map_by_name', lib().find_map(obj, name), name);
}

export function mapFd(map: BpfMap): number {
  return check('bpf_map__fd', lib().map_fd(map) as number);
}

/** Before load: libbpf reuses a compatible map pinned at path, else pins the new map there. */
export function mapSetPinPath(map: BpfMap, path: string | null): void {
  check('bpf_map__set_pin_path', lib().map_set_pin_path(map, path) as number, path ?? '');
}

/** The inner-map template of a map-in-map (what every inner map must match), or undefined. */
export function mapInnerMap(map: BpfMap): BpfMap | undefined {
  const p = lib().inner_map(map) as BpfMap | null | undefined;
  return p === null || p === undefined || p === 0n ? undefined : p;
}

/** Before load: the map's value size (an inner template sized from a knob, say). */
export function mapSetValueSize(map: BpfMap, size: number): void {
  check('bpf_map__set_value_size', lib().map_set_value_size(map, size) as number, String(size));
}

export function mapIsPinned(map: BpfMap): boolean {
  return lib().map_is_pinned(map) as boolean;
}

export function objectPinMaps(obj: BpfObject, dir: string | null): void {
  const m = logMark();
  check('bpf_object__pin_maps', lib().pin_maps(obj, dir) as number, dir ?? '', m);
}

export function objectUnpinMaps(obj: BpfObject, dir: string | null): void {
  check('bpf_object__unpin_maps', lib().unpin_maps(obj, dir) as number, dir ?? '');
}

/** Before load: replace the initial contents of a map (used for .rodata knobs). */
export function mapSetInitialValue(map: BpfMap, data: Buffer): void {
  check('bpf_map__set_initial_value', lib().map_set_initial_value(map, data, data.length) as number);
}

/** A copy of a map's initial contents (.data/.rodata/.bss), or null if it has none. */
export function mapInitialValue(map: BpfMap): Buffer | null {
  const size = [0];
  const ptr = lib().map_initial_value(map, size) as bigint | null;
  if (!ptr) return null;
  return Buffer.from(koffi.view(ptr, Number(size[0])).slice(0));
}

export interface MapInfo {
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** BPF_F_* creation flags (BPF_F_NO_PREALLOC...). */
  mapFlags: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

export function mapInfo(map: BpfMap): MapInfo {
  const n = lib();
  return {
    type: n.map_type(map) as number,
    keySize: n.map_key_size(map) as number,
    valueSize: n.map_value_size(map) as number,
    maxEntries: n.map_max_entries(map) as number,
    mapFlags: n.map_flags(map) as number,
    btfKeyTypeId: n.map_btf_key_type_id(map) as number,
    btfValueTypeId: n.map_btf_value_type_id(map) as number,
  };
}

// ---- BTF ----------------------------------------------------------------------------------------

/** The object's BTF (owned by the object; do not free). */
export function objectBtf(obj: BpfObject): Btf {
  return checkPtr<Btf>('bpf_object__btf', lib().obj_btf(obj));
}

/** Parses the .BTF section of an ELF file; free with btfFree. */
export function btfParseElf(path: string): Btf {
  return checkPtr<Btf>('btf__parse_elf', lib().btf_parse_elf(path, null), path);
}

export function btfFree(btf: Btf): void {
  lib().btf_free(btf);
}

/** Type id of the named type of a BTF kind (BTF_KIND_STRUCT = 4, BTF_KIND_DATASEC = 15, ...). */
export function btfFindByNameKind(btf: Btf, name: string, kind: number): number {
  return check('btf__find_by_name_kind', lib().btf_find(btf, name, kind) as number, name);
}

/**
 * The raw bytes of a btf_type and its kind-specific trailer (members, var_secinfos, ...):
 * struct btf_type { u32 name_off; u32 info; u32 size_or_type; } followed by vlen records.
 */
export function btfTypeRaw(btf: Btf, id: number, trailerRecordSize: number): Buffer {
  const ptr = checkPtr<bigint>('btf__type_by_id', lib().btf_type_by_id(btf, id), String(id));
  const head = Buffer.from(koffi.view(ptr, 12).slice(0));
  const vlen = head.readUInt32LE(4) & 0xffff;
  return Buffer.from(koffi.view(ptr, 12 + vlen * trailerRecordSize).slice(0));
}

export function btfNameByOffset(btf: Btf, offset: number): string {
  return (lib().btf_name(btf, offset) as string | null) ?? '';
}

export function btfResolveSize(btf: Btf, id: number): number {
  return check('btf__resolve_size', Number(lib().btf_resolve_size(btf, id)), String(id));
}

// ---- map elements (fd-level) --------------------------------------------------------------------

export const BPF_ANY = 0;
export const BPF_NOEXIST = 1;
export const BPF_EXIST = 2;

export function mapUpdateElem(fd: number, key: Buffer, value: Buffer, flags = BPF_ANY): void {
  check('bpf_map_update_elem', lib().update_elem(fd, key, value, flags) as number);
}

/** Fills value (sized by the caller: per-CPU maps need roundup(size, 8) * possible CPUs). */
export function mapLookupElem(fd: number, key: Buffer | null, value: Buffer): void {
  check('bpf_map_lookup_elem', lib().lookup_elem(fd, key, value) as number);
}

export function mapDeleteElem(fd: number, key: Buffer): void {
  check('bpf_map_delete_elem', lib().delete_elem(fd, key) as number);
}

/** The key after `key` (null: the first key) into next; ENOENT past the last key. */
export function mapGetNextKey(fd: number, key: Buffer | null, next: Buffer): void {
  check('bpf_map_get_next_key', lib().get_next_key(fd, key, next) as number);
}

// Batch writes, mmap'd arrays and map ids: bound on first use, apart from lib() (the service
// tables need them).
interface TableFns { update_batch: Fn; delete_batch: Fn; fd_by_id: Fn; mmap: Fn; munmap: Fn; memcpy: Fn }
let tableFns: TableFns | undefined;
function tableLib(): TableFns {
  if (tableFns) return tableFns;
  lib();
  const so = koffi.load('libbpf.so.1');
  const libc = koffi.load('libc.so.6');
  tableFns = {
    update_batch: so.func('int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, const void *opts)') as Fn,
    delete_batch: so.func('int bpf_map_delete_batch(int fd, const void *keys, _Inout_ uint32_t *count, const void *opts)') as Fn,
    fd_by_id: so.func('int bpf_map_get_fd_by_id(uint32_t id)') as Fn,
    mmap: libc.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)') as Fn,
    munmap: libc.func('int munmap(void *addr, size_t len)') as Fn,
    memcpy: libc.func('void *memcpy(void *dst, const void *src, size_t n)') as Fn,
  };
  return tableFns;
}

/**
 * Writes `data` over the start of an array map created with BPF_F_MMAPABLE: mmap(MAP_SHARED) of
 * the map fd, one memcpy, munmap. `data` is laid out as the kernel lays out array elements: each
 * value at a multiple of round_up(value_size, 8). A service table (one u32[16381] value) costs two
 * syscalls and a 64 KiB copy, where a batch write of 16381 u32 elements still makes one kernel
 * update per element (1.5 ms) and element writes one syscall each (10 ms).
 */
export function mapWriteMmap(fd: number, data: Buffer): void {
  const n = tableLib();
  const len = Math.ceil(data.length / 4096) * 4096;
  const PROT_READ_WRITE = 3;
  const MAP_SHARED = 1;
  const p = n.mmap(null, len, PROT_READ_WRITE, MAP_SHARED, fd, 0);
  if (p === null || koffi.address(p) === 0xffffffffffffffffn) {
    throw new BpfError('mmap', koffi.errno(), `map fd ${fd}`);
  }
  try {
    n.memcpy(p, data, data.length);
  } finally {
    n.munmap(p, len);
  }
}

/** Reads the first `length` bytes of an array map created with BPF_F_MMAPABLE (laid out as mapWriteMmap says). */
export function mapReadMmap(fd: number, length: number): Buffer {
  const n = tableLib();
  const len = Math.ceil(length / 4096) * 4096;
  const p = n.mmap(null, len, 1 /* PROT_READ */, 1 /* MAP_SHARED */, fd, 0);
  if (p === null || koffi.address(p) === 0xffffffffffffffffn) throw new BpfError('mmap', koffi.errno(), `map fd ${fd}`);
  try {
    const out = Buffer.alloc(length);
    n.memcpy(out, p, length);
    return out;
  } finally {
    n.munmap(p, len);
  }
}

/**
 * bpf_map_update_batch: `count` packed keys and values in one syscall (one RCU wait for a
 * map-in-map), each with elemFlags (BPF_NOEXIST: never replace). Returns how many were written
 * before the first failure, and that failure's errno name (undefined when all were written).
 */
export function mapUpdateBatch(fd: number, keys: Buffer, values: Buffer, count: number, elemFlags = BPF_ANY): { written: number; error?: string } {
  const n = [count];
  const opts = Buffer.alloc(24); // struct bpf_map_batch_opts { size_t sz; __u64 elem_flags; __u64 flags; }
  opts.writeBigUInt64LE(24n, 0);
  opts.writeBigUInt64LE(BigInt(elemFlags), 8);
  const ret = tableLib().update_batch(fd, keys, values, n, opts) as number;
  return ret < 0 ? { written: n[0]!, error: errnoName(-ret) } : { written: count };
}

/** bpf_map_delete_batch: `count` packed keys in one syscall (one RCU wait for a map-in-map). */
export function mapDeleteBatch(fd: number, keys: Buffer, count: number): void {
  check('bpf_map_delete_batch', tableLib().delete_batch(fd, keys, [count], null) as number, `${count} elements`);
}

/** An fd (owned by the caller) of the map with this id, e.g. the inner map a map-in-map lookup returns. */
export function mapGetFdById(id: number): number {
  return check('bpf_map_get_fd_by_id', tableLib().fd_by_id(id) as number, `id ${id}`);
}

/** libbpf_num_possible_cpus: the per-CPU value count of per-CPU maps. */
export function numPossibleCpus(): number {
  return check('libbpf_num_possible_cpus', lib().num_cpus() as number);
}

// ---- links, pins, info --------------------------------------------------------------------------

/** enum bpf_attach_type values nrd uses (linux/bpf.h; tcx needs kernel >= 6.6). */
export const BPF_XDP = 37;
export const BPF_TCX_INGRESS = 46;
export const BPF_TCX_EGRESS = 47;
/** cgroup sock_addr hooks (enum bpf_attach_type), the target being a cgroup v2 directory fd. */
export const BPF_CGROUP_INET4_CONNECT = 10;
export const BPF_CGROUP_INET6_CONNECT = 11;
export const BPF_CGROUP_UDP4_SENDMSG = 14;
export const BPF_CGROUP_UDP6_SENDMSG = 15;
export const BPF_CGROUP_UDP4_RECVMSG = 19;
export const BPF_CGROUP_UDP6_RECVMSG = 20;
export const BPF_CGROUP_INET4_GETPEERNAME = 29;
export const BPF_CGROUP_INET6_GETPEERNAME = 30;

/** XDP attach flags (linux/if_link.h). */
export const XDP_FLAGS_UPDATE_IF_NOEXIST = 1;
export const XDP_FLAGS_SKB_MODE = 2;
export const XDP_FLAGS_DRV_MODE = 4;

/**
 * bpf_link_create(prog_fd, target, attach_type, opts): target is an ifindex for XDP and tcx.
 * libbpf 1.1 has no tcx attach helper; the raw link_create with attach type 46/47 works.
 * flags go in struct bpf_link_create_opts { size_t sz; __u32 flags; } (XDP mode bits).
 */
export function linkCreate(progFd: number, target: number, attachType: number, flags = 0): number {
  let opts: Buffer | null = null;
  if (flags !== 0) {
    opts = Buffer.alloc(16);
    opts.writeBigUInt64LE(16n, 0);
    opts.writeUInt32LE(flags, 8);
  }
  const m = logMark();
  return check('bpf_link_create', lib().link_create(progFd, target, attachType, opts) as number,
    `type ${attachType} target ${target}`, m);
}

/** Atomically replaces the program of a link (its id stays the same). */
export function linkUpdate(linkFd: number, newProgFd: number): void {
  check('bpf_link_update', lib().link_update(linkFd, newProgFd, null) as number);
}

/** Detaches a link from its hook even while fds or pins still reference it. */
export function linkDetach(linkFd: number): void {
  check('bpf_link_detach', lib().link_detach(linkFd) as number);
}

export function objPin(fd: number, path: string): void {
  check('bpf_obj_pin', lib().obj_pin(fd, path) as number, path);
}

/** Opens a pinned object; the caller owns (and closes) the fd. */
export function objGet(path: string): number {
  return check('bpf_obj_get', lib().obj_get(path) as number, path);
}

/** bpf_obj_get_info_by_fd into a zeroed buffer of `size` bytes; returns the filled prefix. */
export function objGetInfoByFd(fd: number, size: number): Buffer {
  const info = Buffer.alloc(size);
  const len = [size];
  check('bpf_obj_get_info_by_fd', lib().get_info(fd, info, len) as number);
  return info.subarray(0, Math.min(size, len[0]));
}

/** The definition of a map in the kernel, as bpf_obj_get_info_by_fd reports it (struct bpf_map_info). */
export interface KernelMapInfo {
  type: number;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  mapFlags: number;
  name: string;
}

/** struct bpf_map_info: type @0, id @4, key_size @8, value_size @12, max_entries @16,
 *  map_flags @20, name[16] @24 (the kernel fills as much as it knows, zeroes stay zero). */
export function decodeMapInfo(b: Buffer): KernelMapInfo {
  if (b.length < 40) throw new Error(`bpf_map_info: ${b.length} bytes, at least 40 expected`);
  const nameBytes = b.subarray(24, 40);
  const end = nameBytes.indexOf(0);
  return {
    type: b.readUInt32LE(0),
    id: b.readUInt32LE(4),
    keySize: b.readUInt32LE(8),
    valueSize: b.readUInt32LE(12),
    maxEntries: b.readUInt32LE(16),
    mapFlags: b.readUInt32LE(20),
    name: nameBytes.subarray(0, end < 0 ? 16 : end).toString('utf8'),
  };
}

/** The kernel's definition of the map behind fd (a pin opened with objGet, say). */
export function mapInfoByFd(fd: number): KernelMapInfo {
  return decodeMapInfo(objGetInfoByFd(fd, 88));
}

/**
 * bpf_map_create(type, name, key, value, max_entries, opts) with map_flags: a map with no BTF,
 * owned by the caller's fd. struct bpf_map_create_opts (libbpf 1.1), 48 bytes: 0 sz | 8 btf_fd |
 * 12 btf_key_type_id | 16 btf_value_type_id | 20 btf_vmlinux_value_type_id | 24 inner_map_fd |
 * 28 map_flags | 32 map_extra | 40 numa_node | 44 map_ifindex.
 */
export function mapCreate(def: { type: number; keySize: number; valueSize: number; maxEntries: number; mapFlags?: number; innerMapFd?: number }, name: string): number {
  const opts = Buffer.alloc(48);
  opts.writeBigUInt64LE(48n, 0);
  if (def.innerMapFd !== undefined) opts.writeUInt32LE(def.innerMapFd, 24);
  opts.writeUInt32LE(def.mapFlags ?? 0, 28);
  const m = logMark();
  return check('bpf_map_create', lib().map_create(def.type, name, def.keySize, def.valueSize, def.maxEntries, opts) as number,
    `${name} type ${def.type}`, m);
}

/** close(2) of a BPF object fd. Through libc, not node:fs: these fds were opened by libbpf, and a
 * worker thread's fs.closeSync warns about (and tracks) fds it did not open itself. */
export function closeFd(fd: number): void {
  libcClose(fd);
}

// ---- BPF_PROG_TEST_RUN --------------------------------------------------------------------------

export interface TestRunInput {
  data: Buffer;
  /** Room for the output packet; defaults to data.length + 256 (programs may grow it). */
  dataOutSize?: number;
  ctx?: Buffer;
  ctxOutSize?: number;
  repeat?: number;
}

export interface TestRunResult {
  retval: number;
  dataOut: Buffer;
  ctxOut: Buffer | null;
  durationNs: number;
}

/**
 * bpf_prog_test_run_opts. struct bpf_test_run_opts (libbpf 1.1), 80 bytes:
 *   0 sz | 8 data_in | 16 data_out | 24 data_size_in | 28 data_size_out | 32 ctx_in |
 *   40 ctx_out | 48 ctx_size_in | 52 ctx_size_out | 56 retval | 60 repeat | 64 duration |
 *   68 flags | 72 cpu | 76 batch_size
 * Native buffers come from koffi.alloc: libbpf keeps pointers to them inside the opts struct.
 */
export function progTestRun(progFd: number, input: TestRunInput): TestRunResult {
  const outSize = input.dataOutSize ?? input.data.length + 256;
  const ctxOutSize = input.ctx ? (input.ctxOutSize ?? input.ctx.length) : 0;
  const allocs: bigint[] = [];
  const alloc = (src: Buffer | null, size: number): bigint => {
    const p = koffi.alloc('uint8_t', Math.max(1, size)) as bigint;
    allocs.push(p);
    if (src) Buffer.from(koffi.view(p, size)).set(src);
    return p;
  };
  try {
    const dataIn = alloc(input.data, input.data.length);
    const dataOut = alloc(null, outSize);
    const ctxIn = input.ctx ? alloc(input.ctx, input.ctx.length) : 0n;
    const ctxOut = input.ctx ? alloc(null, ctxOutSize) : 0n;
    const opts = Buffer.alloc(80);
    opts.writeBigUInt64LE(80n, 0);
    opts.writeBigUInt64LE(dataIn, 8);
    opts.writeBigUInt64LE(dataOut, 16);
    opts.writeUInt32LE(input.data.length, 24);
    opts.writeUInt32LE(outSize, 28);
    opts.writeBigUInt64LE(ctxIn, 32);
    opts.writeBigUInt64LE(ctxOut, 40);
    opts.writeUInt32LE(input.ctx?.length ?? 0, 48);
    opts.writeUInt32LE(ctxOutSize, 52);
    opts.writeInt32LE(input.repeat ?? 1, 60);
    check('bpf_prog_test_run_opts', lib().test_run(progFd, opts) as number);
    const gotOut = opts.readUInt32LE(28);
    const gotCtx = opts.readUInt32LE(52);
    return {
      retval: opts.readUInt32LE(56),
      dataOut: Buffer.from(koffi.view(dataOut, Math.min(gotOut, outSize)).slice(0)),
      ctxOut: input.ctx ? Buffer.from(koffi.view(ctxOut, Math.min(gotCtx, ctxOutSize)).slice(0)) : null,
      durationNs: opts.readUInt32LE(64),
    };
  } finally {
    for (const p of allocs) koffi.free(p);
  }
}

// ---- object info --------------------------------------------------------------------------------

/** enum bpf_link_type values nrd reads back. */
export const BPF_LINK_TYPE_CGROUP = 3;
export const BPF_LINK_TYPE_XDP = 6;
export const BPF_LINK_TYPE_TCX = 11;

export interface LinkInfo {
  type: number;
  id: number;
  progId: number;
  /** xdp.ifindex or tcx.ifindex; 0 once the device is gone (the link is then defunct). */
  ifindex: number;
  /** tcx.attach_type (46/47) or cgroup.attach_type; 0 for other link types. */
  attachType: number;
  /** cgroup.cgroup_id (the cgroup directory's inode number); 0n for other link types. */
  cgroupId: bigint;
}

/** struct bpf_link_info: type, id, prog_id, then a union at offset 16 (8-byte aligned): tcx/xdp
 *  ifindex @16 (tcx attach_type @20), cgroup { u64 cgroup_id @16; u32 attach_type @24 }. */
export function linkInfo(linkFd: number): LinkInfo {
  const b = objGetInfoByFd(linkFd, 64);
  const type = b.readUInt32LE(0);
  const hasIf = type === BPF_LINK_TYPE_XDP || type === BPF_LINK_TYPE_TCX;
  return {
    type,
    id: b.readUInt32LE(4),
    progId: b.readUInt32LE(8),
    ifindex: hasIf ? b.readUInt32LE(16) : 0,
    attachType: type === BPF_LINK_TYPE_TCX ? b.readUInt32LE(20) : type === BPF_LINK_TYPE_CGROUP ? b.readUInt32LE(24) : 0,
    cgroupId: type === BPF_LINK_TYPE_CGROUP ? b.readBigUInt64LE(16) : 0n,
  };
}

export interface ProgInfo {
  type: number;
  id: number;
  name: string;
}

/** struct bpf_prog_info: type @0, id @4, ..., name[16] @64. */
export function progInfo(progFd: number): ProgInfo {
  const b = objGetInfoByFd(progFd, 80);
  const nameBytes = b.subarray(64, 80);
  const end = nameBytes.indexOf(0);
  return {
    type: b.readUInt32LE(0),
    id: b.readUInt32LE(4),
    name: nameBytes.subarray(0, end < 0 ? 16 : end).toString('utf8'),
  };
}

// ---- ring buffers --------------------------------------------------------------------------------

/** A BPF_MAP_TYPE_RINGBUF consumer (libbpf ring_buffer__new/__consume/__free). */
export interface RingBuffer {
  /** Hands every record available now to the callback; returns how many there were. */
  consume(): number;
  free(): void;
}

let sampleProto: ReturnType<typeof koffi.proto> | undefined;

/**
 * Opens a consumer of the ring buffer map `mapFd`. onRecord receives a copy of each record (the
 * ring's memory is reused as soon as the callback returns). Records are delivered only from
 * consume(), on the calling thread: no libbpf thread calls into JavaScript.
 */
export function ringBufferOpen(mapFd: number, onRecord: (record: Uint8Array) => void): RingBuffer {
  const n = lib();
  sampleProto ??= koffi.proto('int nrd_ring_sample(void *ctx, void *data, size_t size)');
  const cb = koffi.register((_ctx: unknown, data: unknown, size: number | bigint): number => {
    const len = Number(size);
    onRecord(new Uint8Array(koffi.view(data, len)).slice());
    return 0;
  }, koffi.pointer(sampleProto));
  let rb: bigint;
  try {
    rb = checkPtr<bigint>('ring_buffer__new', n.ringbuf_new(mapFd, cb, null, null), `map fd ${mapFd}`);
  } catch (e) {
    koffi.unregister(cb);
    throw e;
  }
  let open = true;
  return {
    consume: () => (open ? check('ring_buffer__consume', n.ringbuf_consume(rb) as number) : 0),
    free: () => {
      if (!open) return;
      open = false;
      n.ringbuf_free(rb);
      koffi.unregister(cb);
    },
  };
}
