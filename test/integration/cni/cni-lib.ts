// Helpers of the nrd-cni integration tests: the plugin binary run as a runtime runs it (child
// process, CNI_* environment, configuration on stdin), optionally SIGKILLed mid-command; the
// plugin and config directories and the busybox image the runtime tests give podman and containerd.
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, rmdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from '../../lib/proc.js';
import { ROOT } from '../daemon/harness.js';

export const NRD_CNI = join(ROOT, 'dist', 'daemon', 'cni', 'main.js');

export interface PluginRun {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  json: unknown;
}

/** Runs nrd-cni once; `killAfterMs` sends SIGKILL after that long (a runtime or node crash). */
export function runPlugin(env: Record<string, string>, stdin: string, opts: { killAfterMs?: number } = {}): Promise<PluginRun> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [NRD_CNI], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const t = opts.killAfterMs === undefined ? undefined : setTimeout(() => c.kill('SIGKILL'), opts.killAfterMs);
    c.once('error', reject);
    c.once('close', (code, signal) => {
      if (t) clearTimeout(t);
      let parsed: unknown;
      try {
        parsed = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        parsed = undefined;
      }
      resolve({ code, signal, stdout, stderr, json: parsed });
    });
    c.stdin.end(stdin);
  });
}

/**
 * A CNI plugin directory for a runtime: nrd-cni (the compiled entry, made executable: tsc does not
 * set the mode) and Debian's loopback plugin.
 */
export function cniBinDir(dir: string): string {
  const bin = join(dir, 'cni-bin');
  mkdirSync(bin, { recursive: true });
  chmodSync(NRD_CNI, 0o755);
  symlinkSync(NRD_CNI, join(bin, 'nrd-cni'));
  symlinkSync('/usr/lib/cni/loopback', join(bin, 'loopback'));
  return bin;
}

/** Where libcni (podman's CNI backend, ctr --cni) caches ADD results, creating the directories. */
export const CNI_CACHE_DIRS = ['/var/lib/cni/results', '/var/lib/cni'] as const;

/**
 * Notes which of the libcni cache directories exist now; the returned cleanup removes, deepest
 * first, those that did not and are empty again (the runtime deletes its cached results on DEL).
 * What existed before, or still holds something (another test's container), stays.
 */
export function cniCacheCleanup(dirs: readonly string[] = CNI_CACHE_DIRS): () => void {
  const created = dirs.filter((d) => !existsSync(d));
  return () => {
    for (const d of created) {
      try {
        rmdirSync(d);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code !== 'ENOENT' && code !== 'ENOTEMPTY' && code !== 'EEXIST') throw e;
      }
    }
  };
}

/** A CNI config dir holding the example conflist's shape, pointed at one node's nrd socket. */
export function cniConfDir(dir: string, socket: string): string {
  const conf = join(dir, 'net.d');
  mkdirSync(conf, { recursive: true });
  const list = { cniVersion: '1.0.0', name: 'nrd', plugins: [{ type: 'nrd-cni', socket }, { type: 'loopback' }] };
  writeFileSync(join(conf, '10-nrd.conflist'), `${JSON.stringify(list, null, 2)}\n`);
  return conf;
}

/** A tar of a busybox-static root filesystem (no registry, nothing pulled). */
export async function busyboxTar(dir: string): Promise<string> {
  const root = join(dir, 'rootfs');
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'tmp'), { recursive: true });
  copyFileSync('/bin/busybox', join(root, 'bin', 'busybox'));
  chmodSync(join(root, 'bin', 'busybox'), 0o755);
  for (const a of ['sh', 'ping', 'sleep', 'ip', 'cat', 'ls']) symlinkSync('busybox', join(root, 'bin', a));
  const tar = join(dir, 'rootfs.tar');
  await run(['tar', '-C', root, '-cf', tar, '.']);
  return tar;
}
