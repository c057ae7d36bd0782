// Embedded default: with no etcd endpoints configured, nrd starts and supervises a local
// single-member etcd (Debian's `etcd` binary) on loopback with its data in nrd's state directory.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, openSync, closeSync } from 'node:fs';
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

export class EmbeddedEtcd {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restarts = 0;

  constructor(private readonly o: EmbeddedEtcdOptions) {}

  get endpoint(): string {
    return `http://127.0.0.1:${this.o.clientPort ?? 2379}`;
  }

  /** Start etcd and wait until it answers /health; returns the client endpoints. */
  async start(timeoutMs = 30_000): Promise<string[]> {
    mkdirSync(this.o.dataDir, { recursive: true, mode: 0o700 });
    this.spawnOnce();
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (await this.healthy()) return [this.endpoint];
      await sleep(100);
    }
    throw new Error(`embedded etcd not healthy after ${timeoutMs} ms (log: ${join(this.o.dataDir, '..', 'etcd.log')})`);
  }

  private async healthy(): Promise<boolean> {
    try {
      const res = await fetch(`${this.endpoint}/health`, { signal: AbortSignal.timeout(1000) });
      return ((await res.json()) as { health?: string }).health === 'true';
    } catch {
      return false;
    }
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
    const fd = openSync(join(this.o.dataDir, '..', 'etcd.log'), 'a');
    const c = spawn(this.o.binary ?? 'etcd', args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.child = c;
    c.once('exit', (code, sig) => {
      if (this.stopping) return;
      this.restarts++;
      this.o.log?.error({ code, sig, restarts: this.restarts }, 'embedded etcd exited; restarting');
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
