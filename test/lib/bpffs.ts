// bpffs mounts for the lab, the daemon tests and the fabric: nrd's datapath.pinPath must be on a
// bpf filesystem, and this machine has none at /sys/fs/bpf, so each owner mounts its own and
// unmounts it on teardown; temp mounts left by a skipped teardown go in an exit hook. Kernel
// interfaces: mount(8)/umount(8) (`mount -t bpf`), /proc/self/mountinfo, statfs(2) (BPF_FS_MAGIC).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, rmdirSync, statfsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, runSync } from './proc.js';

/** linux/magic.h BPF_FS_MAGIC. */
const BPF_FS_MAGIC = 0xcafe4a11;

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
function mountinfoEscape(path: string): string {
  return path.replace(/[ \t\n\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, '0')}`);
}

/** True when `dir` is a mount point in this process's mount namespace (field 5 of mountinfo). */
export function isMountPoint(dir: string): boolean {
  const want = mountinfoEscape(dir.length > 1 ? dir.replace(/\/+$/, '') : dir);
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .some((l) => l.split(' ')[4] === want);
}

/** True when `path` exists and lies on a bpf filesystem. */
export function isBpffs(path: string): boolean {
  try {
    return statfsSync(path).type === BPF_FS_MAGIC;
  } catch {
    return false;
  }
}

/**
 * Mounts a fresh bpffs on `dir` (created if missing). Refuses a directory that is a mount point
 * already: it would belong to somebody else, and unmounting it later would be a mistake.
 */
export async function mountBpffs(dir: string): Promise<void> {
  mkdirSync(dir, { recursive: true });
  if (isMountPoint(dir)) throw new Error(`${dir} is a mount point already; not mounting a bpffs over it`);
  await run(['mount', '-t', 'bpf', 'bpf', dir]);
}

/**
 * Unmounts the bpffs on `dir` (the pins go with it) and, with removeDir, removes the directory.
 * Call it once the processes that pinned into it are gone. A mount that stays busy is detached
 * lazily, so nothing is left in view. No-op when nothing is mounted there.
 */
export async function unmountBpffs(dir: string, opts: { removeDir?: boolean } = {}): Promise<void> {
  if (isMountPoint(dir)) await run(['umount', dir], { allowFailure: true });
  if (isMountPoint(dir)) await run(['umount', '-l', dir], { allowFailure: true });
  if (isMountPoint(dir)) throw new Error(`bpffs at ${dir} is still mounted`);
  if (opts.removeDir) rmSync(dir, { recursive: true, force: true });
}

/** unmountBpffs for exit hooks, where nothing asynchronous runs any more. */
export function unmountBpffsSync(dir: string, opts: { removeDir?: boolean } = {}): void {
  if (isMountPoint(dir)) runSync(['umount', dir], { allowFailure: true });
  if (isMountPoint(dir)) runSync(['umount', '-l', dir], { allowFailure: true });
  if (isMountPoint(dir)) throw new Error(`bpffs at ${dir} is still mounted`);
  if (opts.removeDir) rmSync(dir, { recursive: true, force: true });
}

/** bpffs mounts of mountTempBpffs() still up: unmounted by the exit hook if a teardown never ran. */
const liveMounts = new Set<string>();
let exitHookInstalled = false;

/** Mounts a fresh bpffs on a new temp dir. The caller unmounts it with unmountTempBpffs(). */
export async function mountTempBpffs(prefix: string): Promise<string> {
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    // Registered after netns.ts's own exit hook (a Topology exists by then), so it runs after the
    // processes are killed: a last resort when a runner timeout or a signal skips the teardown.
    process.on('exit', () => {
      for (const d of liveMounts) {
        try {
          unmountBpffsSync(d, { removeDir: true });
        } catch (err) {
          process.stderr.write(`nrdt: ${String(err)}\n`);
        }
      }
    });
  }
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-bpf-`));
  try {
    await mountBpffs(dir);
  } catch (err) {
    rmdirSync(dir);
    throw err;
  }
  liveMounts.add(dir);
  return dir;
}

/** Unmounts a bpffs from mountTempBpffs() (its pins go with it) and removes the directory. */
export async function unmountTempBpffs(dir: string): Promise<void> {
  await unmountBpffs(dir, { removeDir: true });
  liveMounts.delete(dir);
}
