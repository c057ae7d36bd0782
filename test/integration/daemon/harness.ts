// Test harness for the nrd binary: spawns `node dist/daemon/main.js` as a child with a temp site
// file, collects its JSON log lines, receives its sd_notify datagrams on a socket the test binds,
// and cleans up (process by PID, temp dir, socket) even when the test fails.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as libc from '../../../daemon/lib/libc.js';
import { waitFor } from '../../lib/wait.js';

export const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
export const NRD = join(ROOT, 'dist', 'daemon', 'main.js');
export const NRDCTL = join(ROOT, 'dist', 'daemon', 'cli', 'nrdctl.js');

let seq = 0;

/** A unique name for this test process (namespaces, abstract sockets). */
export function uniqueName(what: string): string {
  return `nrdt-${what}-${process.pid}-${++seq}`;
}

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((res, rej) => {
    s.once('error', rej);
    s.listen({ host: '127.0.0.1', port: 0 }, res);
  });
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

/** Environment for a child nrd: no NRD_* overrides or systemd variables leak in from the runner. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('NRD_') || k === 'NOTIFY_SOCKET' || k.startsWith('WATCHDOG_') || k === 'LISTEN_FDS') continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** A datagram socket bound by the test, standing in for systemd's notify socket. */
export class NotifyReceiver {
  readonly messages: string[] = [];
  private readonly fd: number;
  private readonly buf = Buffer.alloc(4096);
  private closed = false;
  private readonly timer: NodeJS.Timeout;

  constructor(readonly path: string) {
    this.fd = libc.socket(libc.AF_UNIX, libc.SOCK_DGRAM | libc.SOCK_CLOEXEC);
    try {
      libc.bind(this.fd, libc.sockaddrUn(path));
    } catch (err) {
      libc.close(this.fd);
      throw err;
    }
    // Read continuously, as systemd does: the kernel queues only 10 datagrams per socket.
    this.timer = setInterval(() => this.drain(), 20);
    this.timer.unref();
  }

  /** Reads every pending datagram into `messages`. */
  drain(): void {
    if (this.closed) return;
    for (;;) {
      try {
        const n = libc.recv(this.fd, this.buf, libc.MSG_DONTWAIT);
        this.messages.push(this.buf.subarray(0, n).toString());
      } catch (err) {
        if (err instanceof libc.LibcError && err.code === 'EAGAIN') return;
        throw err;
      }
    }
  }

  /** Waits for a datagram carrying field=value (value optional), returns the whole datagram. */
  async waitFor(field: string, value?: string, opts: { timeoutMs?: number; after?: number } = {}): Promise<string> {
    const from = opts.after ?? 0;
    return waitFor(
      () => {
        this.drain();
        return this.messages.slice(from).find((m) => m.split('\n').some((l) => (value === undefined ? l.startsWith(`${field}=`) : l === `${field}=${value}`)));
      },
      { timeoutMs: opts.timeoutMs ?? 15_000, intervalMs: 20, what: `sd_notify ${field}${value === undefined ? '' : `=${value}`} (got ${JSON.stringify(this.messages)})` },
    );
  }

  count(field: string, value: string): number {
    this.drain();
    return this.messages.filter((m) => m.split('\n').includes(`${field}=${value}`)).length;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    libc.close(this.fd);
  }
}

export type LogLine = Record<string, unknown> & { level?: string; msg?: string; subsystem?: string };

export interface NrdOptions {
  /** Site file text (YAML). */
  site: string;
  env?: Record<string, string>;
  args?: string[];
  /** Directory to use (created by the caller); default: a fresh temp dir. */
  dir?: string;
}

/** One nrd child process. */
export class NrdProcess {
  readonly logs: LogLine[] = [];
  /** Lines of stdout that were not JSON, and all of stderr. */
  readonly otherOutput: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(
    readonly child: ChildProcess,
    readonly siteFile: string,
  ) {
    let partial = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      partial += chunk;
      const lines = partial.split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        if (!line.trim()) continue;
        try {
          this.logs.push(JSON.parse(line) as LogLine);
        } catch {
          this.otherOutput.push(line);
        }
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => this.otherOutput.push(chunk));
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /** Waits for a log line matching the predicate; returns it. */
  async waitForLog(pred: (l: LogLine) => boolean, what: string, timeoutMs = 15_000): Promise<LogLine> {
    try {
      return await waitFor(
        () => {
          if (!this.running) throw new Error('nrd exited');
          return this.logs.find(pred);
        },
        { timeoutMs, intervalMs: 20, what },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; ${this.describe()}`);
    }
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running) process.kill(this.pid, sig);
  }

  /** Ends the child if a test left it running (SIGKILL after a grace period). */
  async kill(): Promise<void> {
    if (!this.running) return;
    process.kill(this.pid, 'SIGTERM');
    const t = setTimeout(() => {
      if (this.running) process.kill(this.pid, 'SIGKILL');
    }, 5000);
    await this.exited;
    clearTimeout(t);
  }

  describe(): string {
    return `exit ${JSON.stringify(this.exitInfo)}; stderr/other: ${this.otherOutput.join('').slice(-3000)}; last logs: ${JSON.stringify(this.logs.slice(-10))}`;
  }
}

export function spawnNrd(opts: NrdOptions & { dir: string }): NrdProcess {
  const siteFile = join(opts.dir, 'site.yaml');
  writeFileSync(siteFile, opts.site);
  const child = spawn(process.execPath, [NRD, '--config', siteFile, ...(opts.args ?? [])], {
    env: cleanEnv(opts.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new NrdProcess(child, siteFile);
}

/** A temp dir removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Runs a node script to completion: exit code, stdout, stderr. */
export function runNode(script: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [script, ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.once('error', reject);
    c.once('close', (code) => resolve({ code, stdout, stderr }));
  });
}

/** The minimal site file of these tests: nothing routed, API on a temp socket, metrics on loopback. */
export function siteYaml(o: { socket: string; metricsPort: number | null; level?: string; extra?: string }): string {
  return [
    '# nrd integration test site: only the api subsystem runs',
    'node:',
    '  name: nrdt-node',
    '  address: 192.0.2.11',
    'api:',
    `  socket: ${o.socket}`,
    `  metrics: "${o.metricsPort === null ? '' : `127.0.0.1:${o.metricsPort}`}"`,
    'log:',
    `  level: ${o.level ?? 'info'}`,
    o.extra ?? '',
  ].join('\n');
}
