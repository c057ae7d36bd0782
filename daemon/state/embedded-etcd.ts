// Embedded default: with no etcd endpoints configured, nrd starts and supervises a local
// single-member etcd (Debian's `etcd` binary) with its data in nrd's state directory, reachable
// only through unix sockets inside that directory (never on TCP).
//
// Why no TCP: etcd here has no auth and no TLS, so anything that can connect can write node
// records and CIDR claims, which nrd turns into kernel routes. On 127.0.0.1 that is every local
// user. A unix socket in a 0700 directory owned by root is reachable by root alone: the kernel
// checks search permission on the directory before connect(2) reaches the socket.
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, closeSync, existsSync, mkdirSync, openSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import type { Logger } from '../lib/log.js';
import { backoffDelay, sleep } from './backoff.js';

export interface EmbeddedEtcdOptions {
  /** nrd's state directory (node.stateDir): made 0700; holds the sockets, etcd/ and etcd.log. */
  stateDir: string;
  name: string;
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

/**
 * Socket file names, relative to the state directory (etcd's working directory). etcd 3.4 parses
 * every listen URL as "scheme://host:port" and refuses a path, and its unix listener binds the
 * "host:port" text itself as a path relative to its working directory: hence the ":0" suffix,
 * which is part of the file name, not a port.
 */
const CLIENT_SOCKET = 'etcd.sock:0';
/**
 * The peer URL must exist even for a single member. A unix socket in the same directory keeps
 * every etcd listener off TCP; the raft peer protocol could not write client keys anyway (peers
 * exchange raft messages and snapshots, there is no KV API on it), but a port that accepts
 * nothing useful is still one more thing for an auditor to explain.
 */
const PEER_SOCKET = 'etcd-peer.sock:0';

/** sun_path is 108 bytes on Linux, NUL included. */
const MAX_SOCKET_PATH = 107;

export class EmbeddedEtcd {
  private child: ChildProcess | null = null;
  private stopping = false;
  private restarts = 0;
  private lastExit: string | undefined;
  private restartTimer: NodeJS.Timeout | undefined;

  constructor(private readonly o: EmbeddedEtcdOptions) {}

  /** Absolute path of the client socket. */
  get socketPath(): string {
    return join(this.o.stateDir, CLIENT_SOCKET);
  }

  /** The client endpoint as the etcd3 client (grpc-js) dials it. */
  get endpoint(): string {
    return `unix://${this.socketPath}`;
  }

  get dataDir(): string {
    return join(this.o.stateDir, 'etcd');
  }

  get logFile(): string {
    return join(this.o.stateDir, 'etcd.log');
  }

  /**
   * Spawn etcd and return its client endpoints at once: the caller's clients retry until it
   * answers, so a slow or broken etcd never holds up the daemon's start.
   */
  launch(): string[] {
    if (this.socketPath.length > MAX_SOCKET_PATH) {
      throw new Error(`node.stateDir ${this.o.stateDir} is too long for the embedded etcd's unix socket (${this.socketPath} exceeds ${MAX_SOCKET_PATH} bytes)`);
    }
    this.securePrivateDir();
    mkdirSync(this.dataDir, { recursive: true, mode: 0o700 });
    this.stopping = false;
    this.spawnOnce();
    return [this.endpoint];
  }

  /** The state directory is nrd's alone: created 0700, tightened to 0700 if it was looser. */
  private securePrivateDir(): void {
    mkdirSync(this.o.stateDir, { recursive: true, mode: 0o700 });
    const mode = statSync(this.o.stateDir).mode & 0o777;
    if (mode !== 0o700) {
      chmodSync(this.o.stateDir, 0o700);
      this.o.log?.warn({ stateDir: this.o.stateDir, was: mode.toString(8) }, 'node.stateDir was reachable by other users; set to 0700 (it holds the embedded etcd socket)');
    }
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

  /** etcd's /health over the client socket (the HTTP gateway shares it with gRPC). */
  healthy(): Promise<boolean> {
    return new Promise((resolve) => {
      const req = request({ socketPath: this.socketPath, path: '/health', timeout: 1000 }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => {
          try {
            resolve((JSON.parse(body) as { health?: string }).health === 'true');
          } catch {
            resolve(false);
          }
        });
      });
      req.on('timeout', () => req.destroy());
      req.on('error', () => resolve(false));
      req.end();
    });
  }

  health(): EmbeddedHealth {
    const c = this.child;
    return {
      endpoint: this.endpoint,
      dataDir: this.dataDir,
      pid: c?.pid ?? null,
      running: !!c && c.exitCode === null && c.signalCode === null,
      restarts: this.restarts,
      ...(this.lastExit ? { lastExit: this.lastExit } : {}),
    };
  }

  private spawnOnce(): void {
    const client = `unix://${CLIENT_SOCKET}`;
    const peer = `unix://${PEER_SOCKET}`;
    // Go's listen(2) on a unix path fails when the file exists: remove what a dead etcd left.
    // Only here, where no child of ours is running, so a live socket is never pulled away.
    for (const s of [CLIENT_SOCKET, PEER_SOCKET]) rmSync(join(this.o.stateDir, s), { force: true });
    const args = [
      `--name=${this.o.name}`,
      `--data-dir=${this.dataDir}`,
      `--listen-client-urls=${client}`,
      `--advertise-client-urls=${client}`,
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
    // find the data dir's lock held by an orphan. (Under systemd the unit's cgroup is killed
    // anyway; this covers manual runs and tests.)
    const [cmd, argv] = SETPRIV ? [SETPRIV, ['--pdeathsig', 'KILL', '--', bin, ...args]] : [bin, args];
    const fd = openSync(this.logFile, 'a', 0o600);
    // The working directory is the state directory: the socket names above are relative to it.
    const c = spawn(cmd, argv, { stdio: ['ignore', fd, fd], cwd: this.o.stateDir });
    closeSync(fd);
    this.child = c;
    c.once('error', (err) => this.o.log?.error({ err }, 'embedded etcd could not be started'));
    c.once('exit', (code, sig) => {
      this.lastExit = sig ? `signal ${sig}` : `exit ${code}`;
      if (this.stopping) return;
      this.restarts++;
      this.o.log?.error({ code, sig, restarts: this.restarts, log: this.logFile }, 'embedded etcd exited; restarting');
      // Supervise: restart with backoff. The daemon keeps serving from cached state meanwhile.
      this.restartTimer = setTimeout(
        () => {
          this.restartTimer = undefined;
          if (!this.stopping) this.spawnOnce();
        },
        backoffDelay(this.restarts, { baseMs: 500, maxMs: 30_000 }),
      );
    });
  }

  async stop(): Promise<void> {
    this.stopping = true;
    // A pending restart would otherwise keep the process alive and spawn an etcd after stop.
    if (this.restartTimer) clearTimeout(this.restartTimer);
    this.restartTimer = undefined;
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    const exited = new Promise<void>((r) => c.once('exit', () => r()));
    c.kill('SIGTERM');
    const t = setTimeout(() => c.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(t);
  }
}
