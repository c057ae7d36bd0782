// Socket-level service load balancing for processes on the node (bpf/nrd_sock.bpf.c): loads the
// eight cgroup sock_addr programs and attaches them to one cgroup v2 directory through bpf_links
// (bpf_link_create with the cgroup fd, BPF_CGROUP_INET{4,6}_CONNECT, UDP{4,6}_SENDMSG/RECVMSG,
// INET{4,6}_GETPEERNAME), every link pinned so it outlives the daemon.
//
// Pins under <pinPath>:
//   progs/@nrd_sock-<hash of object file and knobs>/<program>   the loaded programs
//   links/cgroup/<program>                                      one link per hook
//   maps/<name>                                                 service maps shared with nrd_endpoint,
//                                                               and nrd_sock_revnat
// A restart with the same object and knobs adopts the pinned programs and finds its links already
// running them: nothing is touched. A new object or knob set is loaded and swapped into the links
// in place (bpf_link_update: no connect() goes untranslated meanwhile). A link on another cgroup
// (services.cgroupPath changed) is detached and a new one created on the configured cgroup.
import { createHash } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmdirSync, statSync, statfsSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { detachPinnedLink } from './attach.js';
import {
  BPF_CGROUP_INET4_CONNECT,
  BPF_CGROUP_INET4_GETPEERNAME,
  BPF_CGROUP_INET6_CONNECT,
  BPF_CGROUP_INET6_GETPEERNAME,
  BPF_CGROUP_UDP4_RECVMSG,
  BPF_CGROUP_UDP4_SENDMSG,
  BPF_CGROUP_UDP6_RECVMSG,
  BPF_CGROUP_UDP6_SENDMSG,
  BPF_LINK_TYPE_CGROUP,
  closeFd,
  linkCreate,
  linkInfo,
  linkUpdate,
  objGet,
  objPin,
  progInfo,
} from './libbpf.js';
import { type KnobValue, loadObject } from './objects.js';
import { ensurePinSubdir } from './pin-dir.js';
import { LB_MAP_NAMES } from './services-layout.js';

const OBJ = 'nrd_sock';

/** Program name → the cgroup hook it runs on. */
export const SOCK_PROGS = {
  nrd_sock_connect4: BPF_CGROUP_INET4_CONNECT,
  nrd_sock_connect6: BPF_CGROUP_INET6_CONNECT,
  nrd_sock_sendmsg4: BPF_CGROUP_UDP4_SENDMSG,
  nrd_sock_sendmsg6: BPF_CGROUP_UDP6_SENDMSG,
  nrd_sock_recvmsg4: BPF_CGROUP_UDP4_RECVMSG,
  nrd_sock_recvmsg6: BPF_CGROUP_UDP6_RECVMSG,
  nrd_sock_getpeername4: BPF_CGROUP_INET4_GETPEERNAME,
  nrd_sock_getpeername6: BPF_CGROUP_INET6_GETPEERNAME,
} as const;
type SockProg = keyof typeof SOCK_PROGS;
const PROG_NAMES = Object.keys(SOCK_PROGS) as SockProg[];

/** Every map of the object is pinned by name: the service maps (and the endpoint maps nrd_lb.h
 *  drags in through nrd_endpoint.h) are the very ones nrd_endpoint uses, so the object must reuse
 *  their pins rather than create private copies; nrd_sock_revnat is its own. */
export const SOCK_MAPS = ['nrd_endpoints', 'nrd_ep_ifs', 'nrd_ep_stats', 'nrd_dp_drops', ...LB_MAP_NAMES, 'nrd_sock_revnat'] as const;

export interface SockLbOptions {
  pinPath: string;
  /** Directory of the .bpf.o files. */
  objectDir: string;
  /** The cgroup v2 directory whose processes (and descendants') get socket LB. */
  cgroupPath: string;
  /** Same knobs as nrd_endpoint's, so both pick the same Maglev slot table. */
  lb: { maglevM: number; flags: number };
}

export interface SockLbStatus {
  cgroupPath: string;
  /** The cgroup's id (its directory's inode number), as a decimal string (structured-clone safe either way, JSON-safe this way). */
  cgroupId: string;
  /** True when the pinned programs were adopted instead of loaded. */
  adopted: boolean;
  links: Array<{ prog: string; attachType: number; linkId: number; progId: number; updated: boolean }>;
}

function knobHash(path: string, knobs: Record<string, KnobValue>): string {
  return createHash('sha256').update(readFileSync(path)).update(JSON.stringify(knobs)).digest('hex').slice(0, 16);
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

function linkPin(pinPath: string, prog: string): string {
  return join(pinPath, 'links', 'cgroup', prog);
}

/** The cgroup id the kernel reports in bpf_link_info: the kernfs node id, the directory's inode. */
export function cgroupId(path: string): bigint {
  return statSync(path, { bigint: true }).ino;
}

/** statfs f_type of a cgroup v2 mount (linux/magic.h CGROUP2_SUPER_MAGIC). */
const CGROUP2_SUPER_MAGIC = 0x63677270;

/**
 * Throws a reason an operator can act on when path is not a cgroup v2 directory: the kernel's own
 * answer (EBADF from BPF_LINK_CREATE on a cgroup v1 or plain directory) names neither the path
 * nor the cause.
 */
export function assertCgroup2(path: string): void {
  let type: number;
  try {
    if (!statSync(path).isDirectory()) throw new Error(`services.cgroupPath ${path} is not a directory: it must be a cgroup v2 directory such as /sys/fs/cgroup`);
    type = statfsSync(path).type;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new Error(`services.cgroupPath ${path} does not exist: create the cgroup, or set services.cgroupPath to "" to disable the socket hooks`);
    throw e;
  }
  if (type !== CGROUP2_SUPER_MAGIC) {
    throw new Error(`services.cgroupPath ${path} is not on a cgroup v2 file system (statfs type 0x${type.toString(16)}): the socket hooks need the unified hierarchy (cgroup v1 has none; a hybrid layout mounts it at /sys/fs/cgroup/unified); set it to a cgroup2 directory, or "" to disable them`);
  }
}

/** Program fds of this object and knob set: the pinned ones if complete, else a fresh load (pinned). */
function programs(o: SockLbOptions, knobs: Record<string, KnobValue>): { fds: Map<SockProg, number>; adopted: boolean } {
  const path = join(o.objectDir, `${OBJ}.bpf.o`);
  const hash = knobHash(path, knobs);
  const root = join(o.pinPath, 'progs');
  const dir = join(root, `@${OBJ}-${hash}`);
  const fds = new Map<SockProg, number>();
  let adopted = false;
  if (PROG_NAMES.every((p) => existsSync(join(dir, p))) && SOCK_MAPS.every((m) => existsSync(join(o.pinPath, 'maps', m)))) {
    try {
      for (const p of PROG_NAMES) fds.set(p, objGet(join(dir, p)));
      adopted = true;
    } catch {
      for (const fd of fds.values()) closeFd(fd);
      fds.clear();
    }
  }
  if (!adopted) {
    const obj = loadObject({ path, knobs, pinDir: join(o.pinPath, 'maps'), pinMaps: SOCK_MAPS });
    try {
      ensurePinSubdir(root);
      ensurePinSubdir(dir);
      for (const p of PROG_NAMES) {
        unlinkQuiet(join(dir, p));
        objPin(obj.programFd(p), join(dir, p));
      }
      // Own fds, independent of the object (closed right below with everything it opened).
      for (const p of PROG_NAMES) fds.set(p, objGet(join(dir, p)));
    } finally {
      obj.close();
    }
  }
  pruneProgramDirs(o.pinPath, `@${OBJ}-${hash}`);
  return { fds, adopted };
}

/** Removes pinned program sets of older objects or knob sets (the links hold what they run). */
function pruneProgramDirs(pinPath: string, keep: string | undefined): void {
  const root = join(pinPath, 'progs');
  if (!existsSync(root)) return;
  for (const d of readdirSync(root)) {
    if (!d.startsWith(`@${OBJ}-`) || d === keep) continue;
    for (const f of readdirSync(join(root, d))) unlinkQuiet(join(root, d, f));
    rmdirSync(join(root, d));
  }
}

/** A pinned link kept (and updated in place) if it is a cgroup link of the same hook on the same
 *  cgroup; otherwise detached and unpinned. Returns its id when kept. */
function keepPinnedLink(pin: string, cgId: bigint, attachType: number, progFd: number): { id: number; updated: boolean } | undefined {
  if (!existsSync(pin)) return undefined;
  const fd = objGet(pin);
  try {
    const info = linkInfo(fd);
    if (info.type === BPF_LINK_TYPE_CGROUP && info.cgroupId === cgId && info.attachType === attachType) {
      const same = info.progId === progInfo(progFd).id;
      if (!same) linkUpdate(fd, progFd);
      return { id: info.id, updated: !same };
    }
  } finally {
    closeFd(fd);
  }
  detachPinnedLink(pin);
  return undefined;
}

/**
 * Loads (or adopts) nrd_sock and attaches its programs to o.cgroupPath, idempotently. Throws when
 * the cgroup directory does not exist or the kernel refuses a link; links made before the failure
 * stay (the next run completes them).
 */
export function applySockLb(o: SockLbOptions): SockLbStatus {
  assertCgroup2(o.cgroupPath);
  const cgId = cgroupId(o.cgroupPath);
  const { fds, adopted } = programs(o, { lb_maglev_m: o.lb.maglevM, lb_flags: o.lb.flags });
  const status: SockLbStatus = { cgroupPath: o.cgroupPath, cgroupId: cgId.toString(), adopted, links: [] };
  let cgFd: number | undefined;
  try {
    for (const prog of PROG_NAMES) {
      const progFd = fds.get(prog)!;
      const attachType = SOCK_PROGS[prog];
      const pin = linkPin(o.pinPath, prog);
      const kept = keepPinnedLink(pin, cgId, attachType, progFd);
      const progId = progInfo(progFd).id;
      if (kept) {
        status.links.push({ prog, attachType, linkId: kept.id, progId, updated: kept.updated });
        continue;
      }
      // O_RDONLY on the directory is what BPF_LINK_CREATE takes as a cgroup target.
      cgFd ??= openSync(o.cgroupPath, 'r');
      const linkFd = linkCreate(progFd, cgFd, attachType);
      try {
        ensurePinSubdir(join(o.pinPath, 'links'));
        ensurePinSubdir(join(o.pinPath, 'links', 'cgroup'));
        objPin(linkFd, pin);
        status.links.push({ prog, attachType, linkId: linkInfo(linkFd).id, progId, updated: false });
      } finally {
        closeFd(linkFd);
      }
    }
  } finally {
    if (cgFd !== undefined) closeSync(cgFd);
    for (const fd of fds.values()) closeFd(fd);
  }
  return status;
}

/** Detaches every nrd_sock link and removes the program pins (services.cgroupPath unset, or
 *  stop with detach). nrd_sock_revnat's pin goes too; the shared service maps stay. */
export function detachSockLb(pinPath: string): boolean {
  let any = false;
  for (const prog of PROG_NAMES) any = detachPinnedLink(linkPin(pinPath, prog)) || any;
  const dir = join(pinPath, 'links', 'cgroup');
  if (existsSync(dir) && readdirSync(dir).length === 0) rmdirSync(dir);
  pruneProgramDirs(pinPath, undefined);
  unlinkQuiet(join(pinPath, 'maps', 'nrd_sock_revnat'));
  return any;
}

/** The datapath worker's request for socket LB (protocol.ts op 'sock'): attach, or detach all. */
export type SockRequest = { apply: SockLbOptions } | { detach: string };
export type SockReply = { status: SockLbStatus } | { detached: boolean };

export function serveSock(r: SockRequest): SockReply {
  return 'apply' in r ? { status: applySockLb(r.apply) } : { detached: detachSockLb(r.detach) };
}
