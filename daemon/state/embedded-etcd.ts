// Embedded default: with no etcd endpoints configured, nrd starts and supervises a local
// single-member etcd (Debian's `etcd` binary) on loopback with its data in nrd's state directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../lib/log.js';
import { backoffDelay, sleep } from './backoff.js';

export interface EmbeddedEtcdOptions {
  dataDir: string;
  name: string;
  clientPort?: number;
  peerPort?: number;
  binary?: string;
  log?: Logger;
}

export interface EmbeddedHealth {
  endpoint: string;
  dataDir: string;
  pid: number | null;
  running: boolean;
  restarts: number;
  lastExit?: string;
}

/** util-linux setpriv, to give etcd a parent-death signal (see spawnOnce). */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p));

export class EmbeddedEtcd {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restarts = 0;
  private lastExit: string | undefined;

  constructor(private readonly o: EmbeddedEtcdOptions) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.o.clientPort ?? 2379}`;
  }

  get logFile(): string {
    return join(this.o.dataDir, '..', 'etcd.log');
  }

  /**
   * Spawn etcd and return its client endpoints at once: the caller's clients retry until it
   * answers, so a slow or broken etcd never holds up the daemon's start.
   */
  launch(): string[] {
    mkdirSync(this.o.dataDir, { recursive: true, mode: 0o700 });
    this.stopping = false;
    this.spawnOnce();
    return [this.endpoint];
  }

  /** Start etcd and wait until it answers /health; returns the client endpoints. */
  async start(timeoutMs = 30_000): Promise<string[]> {
    const eps = this.launch();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await this.healthy()) return eps;
      await sleep(100);
    }
    throw new Error(`embedded etcd not healthy after ${timeoutMs} ms (log: ${this.logFile})`);
  }

  async healthy(): Promise<boolean> {
    try {
      const res = await fetch(`${this.endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      return ((await res.json()) as { health?: string }).health === 'true';
    } catch {
      return false;
    }
  }

  health(): EmbeddedHealth {
    const c = this.child;
    return {
      endpoint: this.endpoint,
      dataDir: this.o.dataDir,
      pid: c?.pid ?? null,
      running: !!c && c.exitCode === null && c.signalCode === null,
      restarts: this.restarts,
      ...(this.lastExit ? { lastExit: this.lastExit } : {}),
    };
  }

  private spawnOnce(): void {
    const peer = `http://127.0.0.1:${this.o.peerPort ?? 2380}`;
    const args = [
      `--name=${this.o.name}`,
      `--data-dir=${this.o.dataDir}`,
      `--listen-client-urls=${this.endpoint}`,
      `--advertise-client-urls=${this.endpoint}`,
      `--listen-peer-urls=${peer}`,
      `--initial-advertise-peer-urls=${peer}`,
      `--initial-cluster=${this.o.name}=${peer}`,
      // Single member: keep history bounded without an operator.
      '--auto-compaction-mode=periodic',
      '--auto-compaction-retention=1h',
      '--logger=zap',
      '--log-level=warn',
    ];
    const bin = this.o.binary ?? 'etcd';
    // With a parent-death signal the etcd dies with nrd even on SIGKILL, so the next nrd does not
    // find the port and the data dir's lock held by an orphan. (Under systemd the unit's cgroup
    // is killed anyway; this covers manual runs and tests.)
    const [cmd, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];
    const fd = openSync(this.logFile, 'a');
    const c = spawn(cmd, argv, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.child = c;
    c.once('error', (err) => this.o.log?.error({ err }, 'embedded etcd could not be started'));
    c.once('exit', (code, sig) => {
      this.lastExit = sig ? `signal ${sig}` : `exit ${code}`;
      if (this.stopping) return;
      this.restarts++;
      this.o.log?.error({ code, sig, restarts: this.restarts, log: this.logFile }, 'embedded etcd exited; restarting');
      // Supervise: restart with backoff. The daemon keeps serving from cached state meanwhile.
      void sleep(backoffDelay(this.restarts, { baseMs: 500, maxMs: 30_000 })).then(() => {
        if (!this.stopping) this.spawnOnce();
      });
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}
