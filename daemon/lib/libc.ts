// Flat, errno-transparent binding (koffi FFI) to the few libc calls Node lacks: AF_UNIX datagram
// sockets (socket(2), bind(2), sendto(2), recv(2), close(2)) and clock_gettime(2), for sd_notify(3);
// setsockopt(2) for socket options Node's wrappers do not expose (netlink NETLINK_NO_ENOBUFS, TCP
// MD5 signatures and GTSM in bgp/session/tcp-md5.ts), bind(2) of any sockaddr; mount(2) for the
// bpffs the datapath needs at /sys/fs/bpf (datapath/pin-dir.ts); setns(2) for netlink sockets
// opened inside a workload's network namespace (kernel/netns.ts); setpriority(2) of one thread
// and sched_setscheduler(2) of one thread (the BFD worker, bfd/worker.ts); sched_getaffinity(2)
// and sched_setaffinity(2) of one thread (the BFD and route writer threads, lib/cpu-split.ts).
import koffi from 'koffi';
import { errnoName } from './errno.js';

export const AF_UNIX = 1;
export const SOCK_DGRAM = 2;
export const SOCK_NONBLOCK = 0o4000;
export const SOCK_CLOEXEC = 0o2000000;
export const MSG_DONTWAIT = 0x40;
export const MSG_NOSIGNAL = 0x4000;
export const CLOCK_MONOTONIC = 1;

/** sizeof(struct sockaddr_un.sun_path) on Linux. */
const SUN_PATH_MAX = 108;
/** offsetof(struct sockaddr_un, sun_path): sun_family is a 16-bit integer. */
const SUN_PATH_OFFSET = 2;

/** A failed libc call: the errno, its symbolic name and which call failed. Callers may treat
 * EAGAIN or ENOENT as outcomes rather than faults. */
export class LibcError extends Error {
  constructor(
    readonly call: string,
    readonly errno: number,
    readonly code: string,
  ) {
    super(`${call}: ${code} (errno ${errno})`);
    this.name = 'LibcError';
  }
}

function fail(call: string): never {
  const errno = koffi.errno();
  throw new LibcError(call, errno, errnoName(errno));
}

interface Libc {
  socket: (domain: number, type: number, protocol: number) => number;
  bind: (fd: number, addr: Buffer, len: number) => number;
  sendto: (fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, alen: number) => number;
  recv: (fd: number, buf: Buffer, len: number, flags: number) => number;
  close: (fd: number) => number;
  clockGettime: (clock: number, ts: Buffer) => number;
  setsockopt: (fd: number, level: number, name: number, val: Buffer, len: number) => number;
  mount: (source: string, target: string, fstype: string, flags: number, data: string | null) => number;
  setns: (fd: number, nstype: number) => number;
  gettid: () => number;
  setpriority: (which: number, who: number, prio: number) => number;
  schedSetscheduler: (pid: number, policy: number, param: Buffer) => number;
  schedGetaffinity: (pid: number, size: number, mask: Buffer) => number;
  schedSetaffinity: (pid: number, size: number, mask: Buffer) => number;
}

let libc: Libc | undefined;

// Loaded on first use so that importing this module costs nothing where no call is made.
function lib(): Libc {
  if (libc) return libc;
  const l = koffi.load('libc.so.6');
  libc = {
    socket: l.func('int socket(int domain, int type, int protocol)'),
    bind: l.func('int bind(int fd, const void *addr, uint32_t addrlen)'),
    sendto: l.func('intptr_t sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)'),
    recv: l.func('intptr_t recv(int fd, _Out_ void *buf, size_t len, int flags)'),
    close: l.func('int close(int fd)'),
    clockGettime: l.func('int clock_gettime(int clock, _Out_ void *ts)'),
    setsockopt: l.func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)'),
    mount: l.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
    setns: l.func('int setns(int fd, int nstype)'),
    gettid: l.func('int gettid(void)'),
    setpriority: l.func('int setpriority(int which, uint32_t who, int prio)'),
    schedSetscheduler: l.func('int sched_setscheduler(int pid, int policy, const void *param)'),
    schedGetaffinity: l.func('int sched_getaffinity(int pid, size_t size, _Out_ void *mask)'),
    schedSetaffinity: l.func('int sched_setaffinity(int pid, size_t size, const void *mask)'),
  };
  return libc;
}

/** An encoded socket address (struct sockaddr_un, sockaddr_in, …) and the length to pass with it. */
export interface Sockaddr {
  addr: Buffer;
  len: number;
}

/** An encoded `struct sockaddr_un`. A leading '@' names a socket in the abstract namespace
 * (sun_path starts with NUL, length excludes any terminator), as systemd does for $NOTIFY_SOCKET. */
export type SockaddrUn = Sockaddr;

export function sockaddrUn(path: string): SockaddrUn {
  const abstract = path.startsWith('@');
  const name = Buffer.from(abstract ? path.slice(1) : path);
  // Abstract: NUL + name; filesystem: name + NUL terminator.
  if (name.length + 1 > SUN_PATH_MAX) throw new RangeError(`unix socket path too long (${name.length} bytes): ${path}`);
  const addr = Buffer.alloc(SUN_PATH_OFFSET + SUN_PATH_MAX);
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, SUN_PATH_OFFSET + (abstract ? 1 : 0));
  return { addr, len: SUN_PATH_OFFSET + name.length + 1 };
}

export function socket(domain: number, type: number, protocol = 0): number {
  const fd = lib().socket(domain, type, protocol);
  if (fd < 0) fail('socket');
  return fd;
}

export function bind(fd: number, sa: Sockaddr): void {
  if (lib().bind(fd, sa.addr, sa.len) < 0) fail('bind');
}

/** Returns the number of bytes sent. */
export function sendto(fd: number, data: Buffer, flags: number, sa: SockaddrUn): number {
  const n = Number(lib().sendto(fd, data, data.length, flags, sa.addr, sa.len));
  if (n < 0) fail('sendto');
  return n;
}

/** Returns the number of bytes received into buf (EAGAIN surfaces as a LibcError). */
export function recv(fd: number, buf: Buffer, flags: number): number {
  const n = Number(lib().recv(fd, buf, buf.length, flags));
  if (n < 0) fail('recv');
  return n;
}

export function close(fd: number): void {
  if (lib().close(fd) < 0) fail('close');
}

/** clock_gettime(CLOCK_MONOTONIC) in microseconds: the clock systemd expects in MONOTONIC_USEC. */
export function monotonicUsec(): bigint {
  const ts = Buffer.alloc(16); // struct timespec on 64-bit Linux: two 64-bit fields
  if (lib().clockGettime(CLOCK_MONOTONIC, ts) < 0) fail('clock_gettime');
  return ts.readBigInt64LE(0) * 1_000_000n + ts.readBigInt64LE(8) / 1000n;
}

/** setsockopt(2) with a raw option value (a struct); `call` names the call in a LibcError. */
export function setsockopt(fd: number, level: number, name: number, value: Buffer, call = 'setsockopt'): void {
  if (lib().setsockopt(fd, level, name, value, value.length) < 0) fail(call);
}

function intValue(value: number): Buffer {
  const v = Buffer.alloc(4);
  v.writeInt32LE(value, 0);
  return v;
}

/** setsockopt(2) with an `int` value (SO_RCVBUFFORCE, NETLINK_NO_ENOBUFS, …). */
export function setsockoptInt(fd: number, level: number, name: number, value: number, call = 'setsockopt'): void {
  setsockopt(fd, level, name, intValue(value), call);
}

/** setsockopt(2) with an `int` value where failure is an answer, not a fault: false when refused. */
export function trySetsockoptInt(fd: number, level: number, name: number, value: number): boolean {
  return lib().setsockopt(fd, level, name, intValue(value), 4) >= 0;
}

/** mount(2): mounts `source` of type `fstype` on `target` with MS_* flags and fs-specific data. */
export function mount(source: string, target: string, fstype: string, flags: number, data: string | null): void {
  if (lib().mount(source, target, fstype, flags, data) < 0) fail('mount');
}

/** CLONE_NEWNET: the namespace type setns(2) checks the fd against (EINVAL when it is another). */
export const CLONE_NEWNET = 0x40000000;

/** setns(2): moves the calling thread into the namespace behind `fd` (checked against `nstype`). */
export function setns(fd: number, nstype: number): void {
  if (lib().setns(fd, nstype) < 0) fail('setns');
}

const PRIO_PROCESS = 0;

/**
 * setpriority(2) of the calling thread alone (Linux: PRIO_PROCESS with a thread id): its nice
 * value, -20 (first) .. 19. Lowering it needs CAP_SYS_NICE or RLIMIT_NICE (systemd LimitNICE=).
 */
export function setThreadNice(nice: number): void {
  if (lib().setpriority(PRIO_PROCESS, lib().gettid(), nice) < 0) fail('setpriority');
}

const SCHED_RR = 2;

/**
 * sched_setscheduler(2) of the calling thread (pid 0): SCHED_RR at `priority` (1..99). Needs
 * CAP_SYS_NICE or RLIMIT_RTPRIO (systemd LimitRTPRIO=), and RestrictRealtime=no.
 */
export function setThreadRealtime(priority: number): void {
  const param = Buffer.alloc(4); // struct sched_param { int sched_priority; }
  param.writeInt32LE(priority, 0);
  if (lib().schedSetscheduler(0, SCHED_RR, param) < 0) fail('sched_setscheduler');
}

/** Bytes of the CPU masks passed to the kernel: 1024 CPUs (glibc's cpu_set_t). */
const CPU_MASK_BYTES = 128;

/** sched_getaffinity(2) of the calling thread: the CPUs it may run on, ascending. */
export function threadAffinity(): number[] {
  const mask = Buffer.alloc(CPU_MASK_BYTES);
  if (lib().schedGetaffinity(0, CPU_MASK_BYTES, mask) < 0) fail('sched_getaffinity');
  const cpus: number[] = [];
  for (let i = 0; i < CPU_MASK_BYTES * 8; i++) if (mask[i >> 3]! & (1 << (i & 7))) cpus.push(i);
  return cpus;
}

/** sched_setaffinity(2) of the calling thread (pid 0) to `cpus` (each below 1024). */
export function setThreadAffinity(cpus: readonly number[]): void {
  const mask = Buffer.alloc(CPU_MASK_BYTES);
  for (const c of cpus) {
    if (!Number.isInteger(c) || c < 0 || c >= CPU_MASK_BYTES * 8) throw new RangeError(`CPU ${c} out of range 0..${CPU_MASK_BYTES * 8 - 1}`);
    mask[c >> 3] = mask[c >> 3]! | (1 << (c & 7));
  }
  if (lib().schedSetaffinity(0, CPU_MASK_BYTES, mask) < 0) fail('sched_setaffinity');
}
