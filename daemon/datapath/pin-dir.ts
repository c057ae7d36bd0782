// Makes datapath.pinPath a directory on a bpf filesystem before anything is pinned there:
// statfs(2) of the path's nearest existing ancestor (BPF_FS_MAGIC), mount(2) of a bpffs on
// /sys/fs/bpf when that is where the path lies and nothing is mounted (as Cilium's agent does),
// then mkdir(2) one level at a time, only on bpffs.
//
// Why not mkdirSync(p, { recursive: true }): on sysfs, mkdir("/sys/fs/bpf/nrd") answers ENOENT
// although the parent exists, and Node's recursive mkdir retries that forever at 100% CPU. That
// is exactly the situation under `ip netns exec` (which remounts /sys) or on a host where nothing
// mounted bpffs, so nothing here creates a directory that was not checked first.
import { mkdirSync, statSync, statfsSync } from 'node:fs';
import { dirname, isAbsolute, join, normalize } from 'node:path';
import { NrdError } from '../lib/errors.js';
import * as libc from '../lib/libc.js';

/** linux/magic.h BPF_FS_MAGIC. */
export const BPF_FS_MAGIC = 0xcafe4a11;
/** Where nrd mounts a bpffs itself when the pin path lies below it. */
export const BPFFS_ROOT = '/sys/fs/bpf';
/** Subdirectories of the pin path (datapath/attach.ts documents the layout). */
export const PIN_SUBDIRS = ['maps', 'links', 'progs'] as const;

/** A few linux/magic.h values, to name the filesystem found instead of bpffs in the error. */
const FS_NAMES = new Map<number, string>([
  [0x62656572, 'sysfs'],
  [0x01021994, 'tmpfs'],
  [0xef53, 'ext4'],
  [0x9fa0, 'proc'],
  [0x794c7630, 'overlayfs'],
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
]);

function fsName(type: number): string {
  return FS_NAMES.get(type) ?? `filesystem 0x${type.toString(16)}`;
}

export interface EnsurePinDirOptions {
  /** Mounts a bpffs on target. Default: mount(2) "bpffs" type "bpf" with mode=0700. */
  mountBpffs?: (target: string) => void;
  /** The directory nrd may mount a bpffs on by itself (default /sys/fs/bpf). */
  bpffsRoot?: string;
}

export interface PinDirResult {
  pinPath: string;
  /** Set when nrd mounted a bpffs to make the path usable. */
  mounted?: string;
  /** Directories created, outermost first. */
  created: string[];
}

/** The default mount: mount("bpffs", target, "bpf", 0, "mode=0700"), as Cilium's agent does. */
export function mountBpffs(target: string): void {
  libc.mount('bpffs', target, 'bpf', 0, 'mode=0700');
}

/** The filesystem type of path, or undefined when path does not exist. */
function statfsType(path: string): number | undefined {
  try {
    return statfsSync(path).type;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

/** The nearest ancestor of path (path included) that exists, and its filesystem type. */
function nearestExisting(path: string): { path: string; type: number } {
  for (let cur = path; ; cur = dirname(cur)) {
    const type = statfsType(cur);
    if (type !== undefined) return { path: cur, type };
    if (cur === '/') throw new Error('/ does not exist');
  }
}

function within(path: string, root: string): boolean {
  return path === root || path.startsWith(`${root}/`);
}

/** mkdir of one level, mode 0700; an existing directory is fine, anything else there is not. */
function mkdirOne(path: string): boolean {
  try {
    mkdirSync(path, { mode: 0o700 });
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    if (!statSync(path).isDirectory()) throw new Error(`${path} exists and is not a directory`);
    return false;
  }
}

function notBpffs(pinPath: string, found: { path: string; type: number }, fix: string, why?: string): NrdError {
  const where = found.path === pinPath ? pinPath : `its nearest existing directory ${found.path}`;
  const message =
    `datapath.pinPath ${pinPath} is not on a bpf filesystem (${where} is on ${fsName(found.type)})` +
    `${why ? `; ${why}` : ''}; fix: ${fix}`;
  return new NrdError('unavailable', 'pin_path_not_bpffs', message, {
    pinPath,
    checked: found.path,
    filesystem: fsName(found.type),
    fix,
  });
}

/**
 * Makes pinPath (and its maps/, links/, progs/) exist on a bpffs. Throws NrdError
 * 'pin_path_not_bpffs' (kind unavailable) naming the path and the command that fixes it when the
 * path is not on bpffs and nrd cannot mount one there; returns promptly in every case.
 */
export function ensurePinDir(pinPath: string, opts: EnsurePinDirOptions = {}): PinDirResult {
  if (!isAbsolute(pinPath)) {
    throw new NrdError('invalid', 'pin_path_relative', `datapath.pinPath ${JSON.stringify(pinPath)} must be absolute`);
  }
  const path = normalize(pinPath).replace(/(.)\/+$/, '$1');
  const root = opts.bpffsRoot ?? BPFFS_ROOT;
  const result: PinDirResult = { pinPath: path, created: [] };
  let base = nearestExisting(path);
  if (base.type !== BPF_FS_MAGIC && within(path, root)) {
    const fix = `mount -t bpf bpffs ${root}`;
    const rootType = statfsType(root);
    if (rootType === undefined) throw notBpffs(path, base, `mkdir -p ${root} && ${fix}`, `${root} does not exist`);
    if (rootType !== BPF_FS_MAGIC) {
      try {
        (opts.mountBpffs ?? mountBpffs)(root);
      } catch (e) {
        throw notBpffs(path, base, fix, `mounting a bpffs on ${root} failed: ${(e as Error).message}`);
      }
      result.mounted = root;
      base = nearestExisting(path);
    }
  }
  if (base.type !== BPF_FS_MAGIC) {
    throw notBpffs(path, base, `mkdir -p ${path} && mount -t bpf bpffs ${path} (or use a pinPath under ${root})`);
  }
  // Only now, on bpffs, create the missing levels one at a time.
  let cur = base.path;
  for (const part of path.slice(base.path.length).split('/').filter((p) => p !== '')) {
    cur = join(cur, part);
    if (mkdirOne(cur)) result.created.push(cur);
  }
  for (const d of PIN_SUBDIRS) if (mkdirOne(join(path, d))) result.created.push(join(path, d));
  return result;
}

/** True when path exists and lies on a bpf filesystem. */
export function isBpffs(path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/** mkdir of one directory level below an existing bpffs directory (per-interface pin dirs). */
export function ensurePinSubdir(path: string): void {
  mkdirOne(path);
}
