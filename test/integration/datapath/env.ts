// Test environment for datapath integration tests: a private bpffs mount on a temp dir, network
// namespaces with unique names, and the ns-agent child process. Everything created is registered
// for cleanup, which runs even when a test fails.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export function sh(cmd: string, args: string[]): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs a command and returns its exit status without throwing. */
export function run(cmd: string, args: string[]): { status: number; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

let seq = 0;
export function uniqueName(tag: string): string {
  return `nrdt-${tag}-${process.pid}-${seq++}`;
}

/** Cleanup actions run in reverse order; each failure is collected, none stops the others. */
export class Cleanup {
  private readonly steps: Array<() => void> = [];

  add(fn: () => void): void {
    this.steps.push(fn);
  }

  run(): void {
    const errors: unknown[] = [];
    for (const fn of this.steps.splice(0).reverse()) {
      try {
        fn();
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length) throw new AggregateError(errors, 'cleanup failed');
  }
}

/** Mounts a private bpffs on a fresh temp dir (never the machine's /sys/fs/bpf). */
export function mountBpffs(cleanup: Cleanup): string {
  const dir = mkdtempSync(join(tmpdir(), 'nrdt-bpffs-'));
  cleanup.add(() => rmSync(dir, { recursive: true, force: true }));
  sh('mount', ['-t', 'bpf', 'bpf', dir]);
  cleanup.add(() => sh('umount', [dir]));
  return dir;
}

export function addNetns(cleanup: Cleanup, tag: string): string {
  const name = uniqueName(tag);
  sh('ip', ['netns', 'add', name]);
  cleanup.add(() => sh('ip', ['netns', 'del', name]));
  return name;
}

/** `ip netns exec ns <cmd...>` */
export function nsExec(ns: string, cmd: string, args: string[]): string {
  return sh('ip', ['netns', 'exec', ns, cmd, ...args]);
}

export function nsRun(ns: string, cmd: string, args: string[]): { status: number; stdout: string; stderr: string } {
  return run('ip', ['netns', 'exec', ns, cmd, ...args]);
}

const agentPath = fileURLToPath(new URL('./ns-agent.js', import.meta.url));

/** Runs the Datapath agent as a fresh node process inside ns; returns its parsed JSON output. */
export function agent<T>(ns: string, command: unknown): T {
  const r = run('ip', ['netns', 'exec', ns, process.execPath, agentPath, JSON.stringify(command)]);
  if (r.status !== 0) throw new Error(`ns-agent failed (${r.status}): ${r.stderr}`);
  return JSON.parse(r.stdout) as T;
}

/** The built object directory (bpf/ at the repository root). */
export const objectDir = fileURLToPath(new URL('../../../../bpf/', import.meta.url));

/**
 * A workload namespace behind a veth `host` in the node namespace, set up as the endpoints
 * subsystem does: host side MAC = the gateway MAC, a /32 route to the endpoint, the endpoint's /32
 * address and a default route via 169.254.1.1 onlink (no proxy_arp: nrd_endpoint answers ARP).
 */
export function addEndpointNs(cleanup: Cleanup, nsN: string, gwMac: string, e: { host: string; ip: string }, tag = 'epw'): string {
  const ns = addNetns(cleanup, tag);
  sh('ip', ['-n', nsN, 'link', 'add', e.host, 'address', gwMac, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
  sh('ip', ['-n', nsN, 'link', 'set', e.host, 'up']);
  nsExec(nsN, 'sysctl', ['-qw', `net.ipv4.conf.${e.host}.proxy_arp=0`]);
  sh('ip', ['-n', nsN, 'route', 'add', `${e.ip}/32`, 'dev', e.host]);
  sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  sh('ip', ['-n', ns, 'addr', 'add', `${e.ip}/32`, 'dev', 'eth0']);
  sh('ip', ['-n', ns, 'route', 'add', '169.254.1.1', 'dev', 'eth0', 'scope', 'link']);
  sh('ip', ['-n', ns, 'route', 'add', 'default', 'via', '169.254.1.1', 'dev', 'eth0', 'onlink']);
  return ns;
}
