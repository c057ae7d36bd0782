// Process helpers for tests and the lab: run a command (argv, never a shell string), spawn a
// long-running process with its output captured, and stop processes by PID (SIGTERM, then SIGKILL).
// Linux /proc interface: /proc/<pid>/stat start time guards against signalling a recycled PID.
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { sleep } from './wait.js';

export interface RunOptions {
  /** Kill the command after this many ms (default 30000). */
  timeoutMs?: number;
  /** Text written to stdin. */
  input?: string;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Return a non-zero exit instead of throwing. */
  allowFailure?: boolean;
}

export interface RunResult {
  /** Exit status; null when killed by a signal. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** A command that exited non-zero; carries its argv and output so test failures explain themselves. */
export class CommandError extends Error {
  readonly code = 'NRDT_COMMAND_FAILED';
  constructor(
    readonly argv: readonly string[],
    readonly result: RunResult,
  ) {
    const status = result.code !== null ? `exit ${result.code}` : `signal ${result.signal}`;
    super(`${argv.join(' ')}: ${status}${result.stderr ? `: ${result.stderr.trim()}` : ''}`);
    this.name = 'CommandError';
  }
}

/** Run argv[0] with argv[1..] (no shell) and collect its output. Throws CommandError on failure. */
export function run(argv: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
  if (argv.length === 0) throw new Error('run: empty argv');
  return new Promise((resolve, reject) => {
    const child = execFile(
      argv[0]!,
      argv.slice(1),
      {
        timeout: opts.timeoutMs ?? 30_000,
        maxBuffer: 256 * 1024 * 1024,
        env: opts.env,
        cwd: opts.cwd,
        encoding: 'utf8',
        killSignal: 'SIGKILL',
      },
      (err, stdout, stderr) => {
        const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals | null }) | null;
        if (e && typeof e.code === 'string') {
          // Spawn failure (ENOENT, …): not an exit status.
          reject(e);
          return;
        }
        const result: RunResult = {
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout,
          stderr,
        };
        if (result.code !== 0 && !opts.allowFailure) reject(new CommandError(argv, result));
        else resolve(result);
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

/** Synchronous run, for process-exit hooks where nothing asynchronous runs any more. */
export function runSync(argv: readonly string[], opts: RunOptions = {}): RunResult {
  if (argv.length === 0) throw new Error('runSync: empty argv');
  const r = spawnSync(argv[0]!, argv.slice(1), {
    timeout: opts.timeoutMs ?? 30_000,
    maxBuffer: 256 * 1024 * 1024,
    env: opts.env,
    cwd: opts.cwd,
    encoding: 'utf8',
    input: opts.input,
    killSignal: 'SIGKILL',
  });
  if (r.error && (r.error as NodeJS.ErrnoException).code !== 'ETIMEDOUT') throw r.error;
  const result: RunResult = { code: r.status, signal: r.signal, stdout: r.stdout ?? '', stderr: r.stderr ?? '' };
  if (result.code !== 0 && !opts.allowFailure) throw new CommandError(argv, result);
  return result;
}

/** Process start time in clock ticks since boot (field 22 of /proc/<pid>/stat), or null if gone. */
export function procStartTime(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // comm (field 2) may contain spaces and parentheses: fields after the last ')' are fixed.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // rest[0] is field 3 (state); field 22 is rest[19].
    if (rest[0] === 'Z') return null;
    const v = Number(rest[19]);
    return Number.isFinite(v) ? v : null;
  } catch {
    return null;
  }
}

/**
 * True when `pid` runs (not a zombie) and, if `startTime` is given, is still the same process we
 * recorded, not a recycled PID.
 */
export function pidAlive(pid: number, startTime?: number | null): boolean {
  if (!Number.isInteger(pid) || pid <= 1) return false;
  const st = procStartTime(pid);
  if (st === null) return false;
  return startTime === undefined || startTime === null || st === startTime;
}

function signalPid(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    /* already gone */
  }
}

/**
 * Stop a process we started, by PID: SIGTERM, wait up to graceMs, then SIGKILL. With `startTime`,
 * a PID that now belongs to another process is left alone.
 */
export async function killPid(pid: number, opts: { graceMs?: number; startTime?: number | null } = {}): Promise<void> {
  if (!pidAlive(pid, opts.startTime)) return;
  signalPid(pid, 'SIGCONT'); // a stopped process would sit on SIGTERM forever
  signalPid(pid, 'SIGTERM');
  const deadline = Date.now() + (opts.graceMs ?? 3000);
  while (Date.now() < deadline) {
    if (!pidAlive(pid, opts.startTime)) return;
    await sleep(20);
  }
  if (pidAlive(pid, opts.startTime)) signalPid(pid, 'SIGKILL');
  const hard = Date.now() + 2000;
  while (Date.now() < hard && pidAlive(pid, opts.startTime)) await sleep(10);
}

/** Synchronous sleep for exit hooks. */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** killPid for exit hooks: same protocol, blocking. */
export function killPidSync(pid: number, opts: { graceMs?: number; startTime?: number | null } = {}): void {
  if (!pidAlive(pid, opts.startTime)) return;
  signalPid(pid, 'SIGCONT');
  signalPid(pid, 'SIGTERM');
  const deadline = Date.now() + (opts.graceMs ?? 1000);
  while (Date.now() < deadline && pidAlive(pid, opts.startTime)) sleepSync(10);
  if (pidAlive(pid, opts.startTime)) signalPid(pid, 'SIGKILL');
}

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** Name for messages (default argv[0]). */
  name?: string;
  /** Append stdout and stderr to this file instead of capturing them in memory. */
  logFile?: string;
  /** Bytes of output kept in memory when capturing (default 64 KiB, the tail is kept). */
  captureBytes?: number;
}

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A long-running child process with its output tail and a PID-based stop. */
export class ManagedProcess {
  readonly pid: number;
  readonly name: string;
  readonly argv: readonly string[];
  /** /proc start time, recorded so a later kill by PID cannot hit a recycled PID. */
  readonly startTime: number | null;
  readonly exited: Promise<ExitInfo>;
  private exitInfo: ExitInfo | null = null;
  private captured = '';

  constructor(
    readonly child: ChildProcess,
    argv: readonly string[],
    opts: SpawnOptions,
  ) {
    if (child.pid === undefined) throw new Error(`spawn ${argv.join(' ')}: no pid`);
    this.pid = child.pid;
    this.argv = argv;
    this.name = opts.name ?? argv[0] ?? 'process';
    this.startTime = procStartTime(this.pid);
    const limit = opts.captureBytes ?? 64 * 1024;
    const keep = (chunk: Buffer | string): void => {
      this.captured += chunk.toString();
      if (this.captured.length > limit) this.captured = this.captured.slice(-limit);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
  }

  /** True until the process has exited. */
  running(): boolean {
    return this.exitInfo === null;
  }

  /** Exit status once exited, else null. */
  exit(): ExitInfo | null {
    return this.exitInfo;
  }

  /** The tail of the captured stdout+stderr (empty when output goes to a log file). */
  output(): string {
    return this.captured;
  }

  signal(sig: NodeJS.Signals): void {
    if (this.running()) signalPid(this.pid, sig);
  }

  /** SIGTERM, then SIGKILL after graceMs; resolves once the process has exited. */
  async stop(graceMs = 3000): Promise<ExitInfo> {
    if (!this.running()) return this.exitInfo!;
    signalPid(this.pid, 'SIGCONT');
    signalPid(this.pid, 'SIGTERM');
    const timer = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
    if ((await Promise.race([this.exited, timer])) === 'timeout') {
      signalPid(this.pid, 'SIGKILL');
    }
    return this.exited;
  }

  /** Blocking stop for exit hooks. */
  stopSync(graceMs = 1000): void {
    if (!this.running()) return;
    killPidSync(this.pid, { graceMs, startTime: this.startTime });
  }

  /** Describe the process for failure messages: argv, exit status and output tail. */
  describe(): string {
    const st = this.exitInfo ? ` exited ${this.exitInfo.code ?? this.exitInfo.signal}` : ` pid ${this.pid} running`;
    const out = this.captured.trim();
    return `${this.name}${st} (${this.argv.join(' ')})${out ? `\n--- output tail ---\n${out.slice(-4000)}` : ''}`;
  }
}

/**
 * Start a long-running process in its own process group (so a terminal's Ctrl-C reaches our
 * cleanup first, and the cleanup decides the order of stops).
 */
export function spawnProcess(argv: readonly string[], opts: SpawnOptions = {}): ManagedProcess {
  if (argv.length === 0) throw new Error('spawnProcess: empty argv');
  let fd: number | undefined;
  if (opts.logFile) fd = openSync(opts.logFile, 'a');
  try {
    const child = spawn(argv[0]!, argv.slice(1), {
      env: opts.env,
      cwd: opts.cwd,
      detached: true,
      stdio: fd !== undefined ? ['ignore', fd, fd] : ['ignore', 'pipe', 'pipe'],
    });
    // spawn reports ENOENT through 'error'; without a listener it would crash the process.
    child.on('error', () => undefined);
    if (child.pid === undefined) {
      throw new Error(`cannot start ${argv.join(' ')}`);
    }
    return new ManagedProcess(child, argv, opts);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
