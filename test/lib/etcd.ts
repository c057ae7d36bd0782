// Test harness for a real single-member etcd (Debian's etcd 3.4): temp data dir, optional network
// namespace (`ip netns exec`), health wait, stop/kill/pause/restart by PID to simulate outages.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, openSync, closeSync, readFileSync, existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface StartEtcdOptions {
  /** Run inside this network namespace (must exist); then `host` is required. */
  netns?: string;
  /** Address to listen on; default 127.0.0.1. */
  host?: string;
  /** Client port; default a free loopback port (or 2379 inside a namespace). */
  clientPort?: number;
  /** Peer port; default a free loopback port (or 2380 inside a namespace). */
  peerPort?: number;
  /** Member name; default `nrdt-etcd-<pid>`. */
  name?: string;
  /** Extra etcd flags (TLS, auto-compaction, …). */
  extraArgs?: string[];
  /** Client URL scheme; `https` when extraArgs set up TLS. Default `http`. */
  scheme?: 'http' | 'https';
  /** Health-wait timeout in ms; default 20000. */
  startTimeoutMs?: number;
  /** Directory for the temp data dir, default os.tmpdir(); /dev/shm spares tests the disk's fsync latency. */
  tmpRoot?: string;
  /** Extra args for the etcdctl health probe (e.g. `--cacert=…`) when TLS or auth is on. */
  probeArgs?: string[];
}

export interface EtcdHandle {
  /** Client URLs, e.g. `['http://127.0.0.1:34567']`. */
  readonly endpoints: string[];
  readonly dataDir: string;
  /** Directory holding the data dir and the log file (`etcd.log`). */
  readonly baseDir: string;
  /** PID of the running etcd (changes after restart; 0 while not running). */
  readonly pid: number;
  readonly running: boolean;
  /** Final stop: SIGTERM (SIGKILL after 5 s), then remove the temp directory. */
  stop(): Promise<void>;
  /** Crash: SIGKILL, data kept; `restart()` brings it back on the same ports and data. */
  kill(): Promise<void>;
  /** Graceful stop that keeps the data; `restart()` brings it back. */
  halt(): Promise<void>;
  /** Start again with the same data dir and ports (halting first if running); waits for health. */
  restart(): Promise<void>;
  /** SIGSTOP: etcd stays bound but answers nothing (a hung server, not a refused connection). */
  pause(): void;
  /** SIGCONT after pause(). */
  resume(): void;
  /** Run etcdctl (v3 API) against this member; returns stdout. Throws on non-zero exit. */
  etcdctl(args: string[]): string;
  /** Last lines of etcd's log (for failure messages). */
  logTail(lines?: number): string;
}

const live = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // Last resort when a test forgets stop(): never leave an etcd behind us.
  process.on('exit', () => {
    for (const c of live) {
      try {
        if (c.pid) process.kill(c.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
}

/** A port that was free on 127.0.0.1 a moment ago (a race is possible; startEtcd retries). */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function urlHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

export async function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdHandle> {
  installExitHook();
  if (opts.netns && !opts.host) throw new Error('startEtcd: host is required with netns');
  const host = opts.host ?? '127.0.0.1';
  const scheme = opts.scheme ?? 'http';
  const name = opts.name ?? `nrdt-etcd-${process.pid}`;
  const baseDir = mkdtempSync(join(opts.tmpRoot ?? tmpdir(), 'nrdt-etcd-'));
  const dataDir = join(baseDir, 'data');
  const logPath = join(baseDir, 'etcd.log');
  const timeout = opts.startTimeoutMs ?? 20_000;

  let clientPort = opts.clientPort ?? (opts.netns ? 2379 : 0);
  let peerPort = opts.peerPort ?? (opts.netns ? 2380 : 0);
  let child: ChildProcess | null = null;
  let initialized = false;

  const clientUrl = (): string => `${scheme}://${urlHost(host)}:${clientPort}`;
  const peerUrl = (): string => `http://${urlHost(host)}:${peerPort}`;

  const wrap = (cmd: string, args: string[]): [string, string[]] =>
    opts.netns ? ['ip', ['netns', 'exec', opts.netns, cmd, ...args]] : [cmd, args];

  const etcdctl = (args: string[]): string => {
    const [cmd, full] = wrap('etcdctl', [`--endpoints=${clientUrl()}`, ...(opts.probeArgs ?? []), ...args]);
    const r = spawnSync(cmd, full, { env: { ...process.env, ETCDCTL_API: '3' }, encoding: 'utf8', timeout: 15_000 });
    if (r.status !== 0) throw new Error(`etcdctl ${args.join(' ')} failed (${r.status}): ${r.stderr || r.error}`);
    return r.stdout;
  };

  const logTail = (lines = 30): string => {
    if (!existsSync(logPath)) return '';
    return readFileSync(logPath, 'utf8').split('\n').slice(-lines).join('\n');
  };

  const healthy = async (): Promise<boolean> => {
    if (!opts.netns && scheme === 'http' && !opts.probeArgs) {
      try {
        const ctl = new AbortController();
        const t = setTimeout(() => ctl.abort(), 1000);
        const res = await fetch(`${clientUrl()}/health`, { signal: ctl.signal });
        clearTimeout(t);
        const body = (await res.json()) as { health?: string };
        return body.health === 'true';
      } catch {
        return false;
      }
    }
    try {
      etcdctl(['endpoint', 'health', '--command-timeout=1s']);
      return true;
    } catch {
      return false;
    }
  };

  const launch = async (): Promise<void> => {
    const args = [
      `--name=${name}`,
      `--data-dir=${dataDir}`,
      `--listen-client-urls=${clientUrl()}`,
      `--advertise-client-urls=${clientUrl()}`,
      `--listen-peer-urls=${peerUrl()}`,
      `--initial-advertise-peer-urls=${peerUrl()}`,
      `--initial-cluster=${name}=${peerUrl()}`,
      `--initial-cluster-state=${initialized ? 'existing' : 'new'}`,
      '--initial-cluster-token=nrdt',
      // Single member: short election timings make (re)starts take well under a second.
      '--heartbeat-interval=50',
      '--election-timeout=300',
      '--logger=zap',
      '--log-level=warn',
      ...(opts.extraArgs ?? []),
    ];
    const fd = openSync(logPath, 'a');
    const [cmd, full] = wrap('etcd', args);
    const c = spawn(cmd, full, { stdio: ['ignore', fd, fd], detached: false });
    closeSync(fd);
    live.add(c);
    c.once('exit', () => live.delete(c));
    child = c;
    const deadline = Date.now() + timeout;
    while (Date.now() < deadline) {
      if (c.exitCode !== null || c.signalCode !== null) {
        throw new Error(`etcd exited (${c.exitCode ?? c.signalCode}) during start:\n${logTail()}`);
      }
      if (await healthy()) {
        initialized = true;
        return;
      }
      await sleep(50);
    }
    c.kill('SIGKILL');
    await waitExit(c, 2000);
    throw new Error(`etcd not healthy after ${timeout} ms:\n${logTail()}`);
  };

  const terminate = async (sig: 'SIGTERM' | 'SIGKILL'): Promise<void> => {
    const c = child;
    if (!c) return;
    if (c.signalCode === null && c.exitCode === null) {
      try {
        // A paused process must be continued or SIGTERM waits forever.
        if (c.pid) process.kill(c.pid, 'SIGCONT');
      } catch {
        /* gone */
      }
      c.kill(sig);
      if (!(await waitExit(c, 5000))) {
        c.kill('SIGKILL');
        await waitExit(c, 5000);
      }
    }
    child = null;
  };

  // Free loopback ports can be taken between probe and bind: retry with new ones.
  const pickPorts = opts.clientPort === undefined && opts.peerPort === undefined && !opts.netns;
  for (let attempt = 0; ; attempt++) {
    if (clientPort === 0 || (pickPorts && attempt > 0)) clientPort = await freePort(host);
    if (peerPort === 0 || (pickPorts && attempt > 0)) peerPort = await freePort(host);
    try {
      await launch();
      break;
    } catch (err) {
      await terminate('SIGKILL');
      if (!pickPorts || attempt >= 2) {
        rmSync(baseDir, { recursive: true, force: true });
        throw err;
      }
      rmSync(dataDir, { recursive: true, force: true });
    }
  }

  const handle: EtcdHandle = {
    get endpoints() {
      return [clientUrl()];
    },
    dataDir,
    baseDir,
    get pid() {
      const c = child as ChildProcess | null;
      return c?.pid ?? 0;
    },
    get running() {
      const c = child as ChildProcess | null;
      return c !== null && c.exitCode === null && c.signalCode === null;
    },
    async stop() {
      await terminate('SIGTERM');
      rmSync(baseDir, { recursive: true, force: true });
    },
    async kill() {
      await terminate('SIGKILL');
    },
    async halt() {
      await terminate('SIGTERM');
    },
    async restart() {
      await terminate('SIGTERM');
      await launch();
    },
    pause() {
      const c = child as ChildProcess | null;
      if (c?.pid) process.kill(c.pid, 'SIGSTOP');
    },
    resume() {
      const c = child as ChildProcess | null;
      if (c?.pid) process.kill(c.pid, 'SIGCONT');
    },
    etcdctl,
    logTail,
  };
  return handle;
}
