// Test harness for the nrd binary: runs `node dist/daemon/main.js` inside a network namespace the
// test creates (a veth uplink named as node.interface carrying node.address, a bpffs the test
// mounts as datapath.pinPath), collects its JSON log lines, receives its sd_notify datagrams on a
// filesystem socket the test binds (abstract names are per network namespace), and cleans up
// (processes by PID, namespaces, the bpffs mount, temp dirs) even when the test fails.
// Kernel interfaces: iproute2 (`ip netns exec`), bpffs mounts (test/lib/bpffs.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as libc from '../../../daemon/lib/libc.js';
import { Topology, type AfterRegistrar, type Host } from '../../lib/netns.js';
import { mountTempBpffs, unmountTempBpffs } from '../../lib/bpffs.js';
import { waitFor } from '../../lib/wait.js';
import { startEtcd, type EtcdHandle } from '../../lib/etcd.js';
import { collectJsonLines } from '../../lib/lines.js';

export const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
export const NRD = join(ROOT, 'dist', 'daemon', 'main.js');
export const NRDCTL = join(ROOT, 'dist', 'daemon', 'cli', 'nrdctl.js');

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
  /** Directory for the site file; default: the sandbox's temp dir. */
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
    collectJsonLines(child.stdout!, this.logs, this.otherOutput);
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

/** A temp dir removed by the returned cleanup. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface RunNodeResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a node script to completion in the ROOT network namespace: for nrdctl only, which talks to
 * nrd through the unix socket file (a path, so it crosses namespaces). nrd itself runs in a
 * sandbox (NrdSandbox.runNode).
 */
export function runNode(script: string, args: string[], env: Record<string, string> = {}): Promise<RunNodeResult> {
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

export interface SiteOptions {
  socket: string;
  /** Port of the metrics listener on 127.0.0.1 inside the namespace; null disables it. */
  metricsPort: number | null;
  /** node.interface: the uplink inside the namespace. */
  uplink: string;
  /** datapath.pinPath: a directory on a bpffs. */
  pinPath: string;
  /** node.stateDir (the state subsystem keeps its embedded etcd there when one is used). */
  stateDir?: string;
  /** etcd.endpoints; absent: the embedded etcd nrd starts itself. */
  etcdEndpoints?: readonly string[];
  level?: string;
  /** datapath.xdpPrefilter.deny (the prefilter is attached only when it has a rule). */
  xdpDeny?: readonly string[];
  /** services.cgroupPath: a cgroup the test owns, or "" (default). Never nrd's default, the
   *  machine's root cgroup: every process on this machine would get the test's socket hooks. */
  cgroupPath?: string;
  extra?: string;
}

/**
 * The site file of these tests: api and datapath run (XDP prefilter on the uplink), nothing is
 * routed; API on a temp socket, metrics on the namespace's loopback.
 */
export function siteYaml(o: SiteOptions): string {
  return [
    '# nrd integration test site: api + datapath in a test namespace, nothing routed',
    'node:',
    '  name: nrdt-node',
    `  address: ${NODE_ADDRESS}`,
    `  interface: ${o.uplink}`,
    ...(o.stateDir ? [`  stateDir: ${o.stateDir}`] : []),
    ...(o.etcdEndpoints ? ['etcd:', `  endpoints: [${o.etcdEndpoints.map((e) => JSON.stringify(e)).join(', ')}]`] : []),
    'datapath:',
    `  pinPath: ${o.pinPath}`,
    ...(o.xdpDeny ? [`  xdpPrefilter: {deny: [${o.xdpDeny.map((c) => JSON.stringify(c)).join(', ')}]}`] : []),
    'services:',
    `  cgroupPath: ${JSON.stringify(o.cgroupPath ?? '')}`,
    'api:',
    `  socket: ${o.socket}`,
    `  metrics: "${o.metricsPort === null ? '' : `127.0.0.1:${o.metricsPort}`}"`,
    'log:',
    `  level: ${o.level ?? 'info'}`,
    o.extra ?? '',
  ].join('\n');
}

/** node.address of the test node, on its uplink (TEST-NET-1, inside the namespaces only). */
export const NODE_ADDRESS = '192.0.2.11';
/** The other end of the uplink, in a peer namespace (a future BGP peer). */
export const PEER_ADDRESS = '192.0.2.1';
/** node.interface of the test node. */
export const UPLINK = 'eth0';
/** Metrics port inside the node namespace: the namespace is fresh, so any fixed port is free. */
export const METRICS_PORT = 9464;

/** The temp bpffs helpers, for the benches that build on this harness. */
export { mountTempBpffs, unmountTempBpffs };

/**
 * Where nrd runs in these tests: a node namespace whose uplink (a veth named UPLINK carrying
 * NODE_ADDRESS) leads to a peer namespace, a bpffs for datapath.pinPath, and a temp dir for the
 * site file, the control socket and the notify socket. teardown() runs from the hook given to
 * use(), after the test passes or fails.
 */
export class NrdSandbox {
  /** Temp dir (owned by the topology) for site files and sockets. */
  dir = '';
  /** Mount point of the test's bpffs. */
  bpffs = '';
  /** The etcd of the sandbox, inside the node namespace on the default endpoint 127.0.0.1:2379. */
  etcd: EtcdHandle | undefined;
  private node_: Host | undefined;
  private peer_: Host | undefined;
  private tornDown: Promise<void> | undefined;

  private constructor(readonly topo: Topology) {}

  /**
   * A sandbox whose teardown is registered on `hook` (node:test's `after` at file level, or a
   * TestContext) before anything is created; build() creates it, typically in before(). A hook
   * registered from inside a running before() would run at once, hence the two steps.
   */
  static use(hook: AfterRegistrar, tag: string): NrdSandbox {
    const sb = new NrdSandbox(new Topology(`nrdt-${tag}`));
    const fn = (): Promise<void> => sb.teardown();
    if (typeof hook === 'function') hook(fn);
    else hook.after(fn);
    return sb;
  }

  /** Creates the namespaces, the veth uplink, the temp dir and the bpffs. */
  async build(): Promise<void> {
    this.dir = this.topo.tmpdir('run');
    this.node_ = await this.topo.host('node');
    this.peer_ = await this.topo.host('peer');
    await this.topo.link(this.node_, this.peer_, {
      nameA: UPLINK,
      nameB: 'eth0',
      addrA: `${NODE_ADDRESS}/24`,
      addrB: `${PEER_ADDRESS}/24`,
    });
    this.bpffs = await mountTempBpffs(this.topo.prefix);
    // The state subsystem's etcd, inside the node namespace; site files name it in etcd.endpoints.
    this.etcd = await startEtcd({ netns: this.node_.ns, host: '127.0.0.1', name: `${this.topo.prefix}-etcd` });
  }

  /** The namespace nrd runs in. */
  get node(): Host {
    if (!this.node_) throw new Error('sandbox not built');
    return this.node_;
  }

  /** The far end of the uplink (PEER_ADDRESS): where a test's BGP peer would run. */
  get peer(): Host {
    if (!this.peer_) throw new Error('sandbox not built');
    return this.peer_;
  }

  /** datapath.pinPath of the nrd under test (a directory on the test's bpffs). */
  get pinPath(): string {
    return join(this.bpffs, 'nrd');
  }

  /** The test site file with this sandbox's uplink and pin path. */
  site(o: Omit<SiteOptions, 'uplink' | 'pinPath'> & { pinPath?: string }): string {
    return siteYaml({ uplink: UPLINK, pinPath: this.pinPath, stateDir: join(this.dir, 'state'), ...(this.etcd ? { etcdEndpoints: this.etcd.endpoints } : {}), ...o });
  }

  /** Starts nrd inside the node namespace (`ip netns exec NS node main.js --config …`). */
  spawnNrd(opts: NrdOptions): NrdProcess {
    const dir = opts.dir ?? this.dir;
    mkdirSync(dir, { recursive: true });
    const siteFile = join(dir, 'site.yaml');
    writeFileSync(siteFile, opts.site);
    const mp = this.node.spawn([process.execPath, NRD, '--config', siteFile, ...(opts.args ?? [])], {
      env: cleanEnv(opts.env),
      name: 'nrd',
      captureBytes: 4096,
    });
    return new NrdProcess(mp.child, siteFile);
  }

  /** Runs a node script (nrd check-config, a failing start, …) to completion inside the node namespace. */
  async runNode(script: string, args: string[], env: Record<string, string> = {}): Promise<RunNodeResult> {
    const r = await this.node.exec([process.execPath, script, ...args], { env: cleanEnv(env), allowFailure: true });
    return { code: r.code, stdout: r.stdout, stderr: r.stderr };
  }

  /** An HTTP GET on 127.0.0.1:port inside the node namespace (the metrics listener lives there). */
  async httpGet(port: number, path: string): Promise<{ status: number; body: string }> {
    const script =
      'fetch(process.argv[1]).then(async (r) => process.stdout.write(JSON.stringify({ status: r.status, body: await r.text() })),' +
      ' (e) => { process.stderr.write(String(e && e.cause || e)); process.exit(1); })';
    const r = await this.node.exec([process.execPath, '-e', script, `http://127.0.0.1:${port}${path}`], {
      env: cleanEnv(),
      allowFailure: true,
      timeoutMs: 10_000,
    });
    if (r.code !== 0) throw new Error(`GET ${path} on 127.0.0.1:${port} in ${this.node.ns}: ${r.stderr.trim() || `exit ${r.code}`}`);
    return JSON.parse(r.stdout) as { status: number; body: string };
  }

  /**
   * Kills what runs in the namespaces, deletes them and the temp dir, then unmounts the bpffs
   * (last, once no nrd can pin into it any more). Safe to call twice.
   */
  teardown(): Promise<void> {
    this.tornDown ??= (async () => {
      try {
        await this.etcd?.stop().catch((err: unknown) => process.stderr.write(`nrdt: etcd stop: ${String(err)}\n`));
        await this.topo.destroy();
      } finally {
        if (this.bpffs) await unmountTempBpffs(this.bpffs);
      }
    })();
    return this.tornDown;
  }
}
