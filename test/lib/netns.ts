// Topology builder for tests and the lab: hosts are network namespaces, joined by veth pairs and
// bridges, with processes run inside them; teardown kills by PID, deletes the namespaces and temp
// dirs, even when a test fails. Kernel interfaces: iproute2 (`ip netns`, `ip -n NS link/addr/route`),
// sysctl. Nothing is ever created in the root namespace: veths are created inside the namespaces.
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  run,
  runSync,
  spawnProcess,
  killPid,
  killPidSync,
  pidAlive,
  sleepSync,
  type ManagedProcess,
  type RunOptions,
  type RunResult,
  type SpawnOptions,
} from './proc.js';
import { sleep } from './wait.js';

const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;
const NAME_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Linux interface names are at most 15 bytes (IFNAMSIZ 16 with the NUL) and have no '/' or spaces. */
export function checkIfName(name: string): string {
  if (!IFNAME_RE.test(name)) throw new Error(`invalid interface name ${JSON.stringify(name)} (1-15 chars of [A-Za-z0-9_.-])`);
  return name;
}

export interface RouteOptions {
  via?: string;
  dev?: string;
  metric?: number;
  table?: number;
  onlink?: boolean;
  src?: string;
}

/** One host of a topology: a network namespace and what runs inside it. */
export class Host {
  private nextIf = 0;

  constructor(
    readonly topo: Topology,
    /** Short name given by the test ("node1", "tor"). */
    readonly name: string,
    /** Network namespace name (under /run/netns). */
    readonly ns: string,
  ) {}

  /** `ip -n NS <args>` */
  ip(args: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return run(['ip', '-n', this.ns, ...args], opts);
  }

  /** Run a command inside the namespace (`ip netns exec NS argv…`) and collect its output. */
  exec(argv: readonly string[], opts?: RunOptions): Promise<RunResult> {
    return run(['ip', 'netns', 'exec', this.ns, ...argv], opts);
  }

  /** The argv that runs `argv` inside this namespace (for launchers that spawn themselves). */
  wrap(argv: readonly string[]): string[] {
    return ['ip', 'netns', 'exec', this.ns, ...argv];
  }

  /**
   * Start a long-running process inside the namespace, tracked by the topology so destroy() stops
   * it. `ip netns exec` execs the command in place, so the PID is the command's own.
   */
  spawn(argv: readonly string[], opts: SpawnOptions = {}): ManagedProcess {
    return this.topo.track(spawnProcess(this.wrap(argv), { ...opts, name: opts.name ?? `${this.name}:${argv[0]}` }));
  }

  /** A fresh interface name for this host: eth0, eth1, … */
  allocIfName(): string {
    return `eth${this.nextIf++}`;
  }

  async addAddress(ifname: string, cidr: string): Promise<void> {
    await this.ip(['addr', 'add', cidr, 'dev', checkIfName(ifname)]);
  }

  async setUp(ifname: string): Promise<void> {
    await this.ip(['link', 'set', checkIfName(ifname), 'up']);
  }

  /** `ip route replace PREFIX [via GW] [dev IF] …` inside the namespace. */
  async addRoute(prefix: string, opts: RouteOptions = {}): Promise<void> {
    const args = ['route', 'replace', prefix];
    if (opts.via) args.push('via', opts.via);
    if (opts.dev) args.push('dev', checkIfName(opts.dev));
    if (opts.src) args.push('src', opts.src);
    if (opts.metric !== undefined) args.push('metric', String(opts.metric));
    if (opts.table !== undefined) args.push('table', String(opts.table));
    if (opts.onlink) args.push('onlink');
    if (prefix.includes(':')) args.unshift('-6');
    await this.ip(args);
  }

  /** Set a namespaced sysctl (net.*), e.g. sysctl('net.ipv4.ip_forward', 1). */
  async sysctl(key: string, value: string | number): Promise<void> {
    if (!/^[A-Za-z0-9_./-]+$/.test(key)) throw new Error(`invalid sysctl key ${JSON.stringify(key)}`);
    await this.exec(['sysctl', '-q', '-w', `${key}=${value}`]);
  }

  /** `ip -j route show` (IPv4 main table unless args say otherwise), parsed. */
  async routes(args: readonly string[] = []): Promise<Array<Record<string, unknown>>> {
    const r = await this.ip(['-j', 'route', 'show', ...args]);
    return r.stdout.trim() ? (JSON.parse(r.stdout) as Array<Record<string, unknown>>) : [];
  }

  /** One ICMP echo to `address`, true when answered within timeoutS seconds. */
  async ping(address: string, opts: { count?: number; timeoutS?: number } = {}): Promise<boolean> {
    const r = await this.exec(
      ['ping', '-n', '-q', '-c', String(opts.count ?? 1), '-W', String(opts.timeoutS ?? 1), address],
      { allowFailure: true },
    );
    return r.code === 0;
  }
}

export interface LinkOptions {
  /** Interface name in host A (default: next ethN of A). */
  nameA?: string;
  /** Interface name in host B (default: next ethN of B). */
  nameB?: string;
  /** Address(es) with prefix length for A's end, e.g. '192.0.2.1/24'. */
  addrA?: string | string[];
  addrB?: string | string[];
  mtu?: number;
  /** MAC addresses, when a test needs stable ones. */
  macA?: string;
  macB?: string;
}

export interface Link {
  a: Host;
  b: Host;
  ifA: string;
  ifB: string;
}

export interface TopologyOptions {
  /**
   * Namespace names `<prefix>-<host>` instead of `<prefix>-<pid>-<n>-<host>`: for the lab, which is
   * a singleton whose namespaces an operator types by hand. Tests keep the unique form.
   */
  stableNames?: boolean;
  /** SIGTERM → SIGKILL grace for spawned processes on destroy (default 3000 ms). */
  graceMs?: number;
}

/** What a topology owns, as plain data: written to the lab's state file, checked by tests. */
export interface TopologyState {
  prefix: string;
  namespaces: string[];
  processes: Array<{ pid: number; startTime: number | null; name: string }>;
  dirs: string[];
}

const live = new Set<Topology>();
let hooksInstalled = false;

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  // Last resort: a test runner timeout, Ctrl-C or an uncaught error must not leave namespaces
  // and daemons behind. Only synchronous work runs in an 'exit' listener.
  process.on('exit', () => destroyAllSync());
  for (const [sig, num] of [
    ['SIGINT', 2],
    ['SIGTERM', 15],
    ['SIGHUP', 1],
  ] as const) {
    process.once(sig, () => {
      destroyAllSync();
      process.exit(128 + num);
    });
  }
}

/** Destroy every live topology of this process, synchronously. */
export function destroyAllSync(): void {
  for (const t of [...live]) {
    try {
      t.destroySync();
    } catch (err) {
      process.stderr.write(`nrdt: teardown of ${t.prefix} failed: ${String(err)}\n`);
    }
  }
}

let uniq = 0;

/** A set of hosts (network namespaces), links, processes and temp dirs torn down together. */
export class Topology {
  readonly prefix: string;
  private readonly opts: TopologyOptions;
  private readonly hosts = new Map<string, Host>();
  private readonly nsNames: string[] = [];
  private readonly procs: ManagedProcess[] = [];
  private readonly dirs: string[] = [];
  private destroying: Promise<void> | null = null;
  private destroyed = false;

  constructor(prefix: string, opts: TopologyOptions = {}) {
    if (!NAME_RE.test(prefix)) throw new Error(`invalid topology prefix ${JSON.stringify(prefix)}`);
    this.prefix = prefix;
    this.opts = opts;
    installHooks();
    live.add(this);
  }

  private assertOpen(): void {
    if (this.destroying || this.destroyed) throw new Error(`topology ${this.prefix} is destroyed`);
  }

  /** Create a host: a new network namespace with loopback up. */
  async host(name: string): Promise<Host> {
    this.assertOpen();
    if (!NAME_RE.test(name)) throw new Error(`invalid host name ${JSON.stringify(name)}`);
    if (this.hosts.has(name)) throw new Error(`host ${name} exists already in ${this.prefix}`);
    const ns = this.opts.stableNames ? `${this.prefix}-${name}` : `${this.prefix}-${process.pid}-${uniq++}-${name}`;
    const h = new Host(this, name, ns);
    this.hosts.set(name, h);
    // Recorded only once `ip netns add` succeeded: a name clash must never make us delete a
    // namespace somebody else created.
    await run(['ip', 'netns', 'add', ns]);
    this.nsNames.push(ns);
    await h.ip(['link', 'set', 'lo', 'up']);
    return h;
  }

  /** The host named `name` (throws if unknown). */
  get(name: string): Host {
    const h = this.hosts.get(name);
    if (!h) throw new Error(`no host ${name} in ${this.prefix}`);
    return h;
  }

  allHosts(): Host[] {
    return [...this.hosts.values()];
  }

  /**
   * Join two hosts with a veth pair, created directly inside A's namespace with its peer placed in
   * B's, then addressed and brought up.
   */
  async link(a: Host, b: Host, opts: LinkOptions = {}): Promise<Link> {
    this.assertOpen();
    if (a === b) throw new Error('link: both ends in the same host; use two hosts');
    const ifA = checkIfName(opts.nameA ?? a.allocIfName());
    const ifB = checkIfName(opts.nameB ?? b.allocIfName());
    const args = ['link', 'add', ifA];
    if (opts.macA) args.push('address', opts.macA);
    if (opts.mtu) args.push('mtu', String(opts.mtu));
    args.push('type', 'veth', 'peer', 'name', ifB);
    if (opts.macB) args.push('address', opts.macB);
    if (opts.mtu) args.push('mtu', String(opts.mtu));
    args.push('netns', b.ns);
    await a.ip(args);
    for (const [h, ifn, addrs] of [
      [a, ifA, opts.addrA],
      [b, ifB, opts.addrB],
    ] as const) {
      for (const cidr of addrs === undefined ? [] : Array.isArray(addrs) ? addrs : [addrs]) {
        await h.ip([...(cidr.includes(':') ? ['-6'] : []), 'addr', 'add', cidr, 'dev', ifn, ...(cidr.includes(':') ? ['nodad'] : [])]);
      }
      await h.setUp(ifn);
    }
    return { a, b, ifA, ifB };
  }

  /** A Linux bridge inside `host` enslaving `members` (interfaces of that host), optionally addressed. */
  async bridge(host: Host, name: string, members: readonly string[], opts: { addr?: string | string[] } = {}): Promise<string> {
    this.assertOpen();
    checkIfName(name);
    // STP off (the default) so ports forward at once; no multicast snooping surprises for ND.
    await host.ip(['link', 'add', name, 'type', 'bridge', 'stp_state', '0', 'mcast_snooping', '0']);
    for (const m of members) await host.ip(['link', 'set', checkIfName(m), 'master', name]);
    const addrs = opts.addr === undefined ? [] : Array.isArray(opts.addr) ? opts.addr : [opts.addr];
    for (const cidr of addrs) await host.addAddress(name, cidr);
    await host.setUp(name);
    for (const m of members) await host.setUp(m);
    return name;
  }

  /** Track a process so destroy() stops it. Returns it for chaining. */
  track(p: ManagedProcess): ManagedProcess {
    this.procs.push(p);
    if (this.destroying || this.destroyed) {
      // Spawned during teardown: stop it rather than leak it.
      void p.stop(0);
    }
    return p;
  }

  /** A temp directory removed on destroy. */
  tmpdir(label = 'tmp'): string {
    this.assertOpen();
    const d = mkdtempSync(join(tmpdir(), `${this.prefix}-${label}-`));
    this.dirs.push(d);
    return d;
  }

  /** Register an existing directory for removal on destroy (the lab's run dir). */
  ownDir(dir: string): void {
    this.dirs.push(dir);
  }

  /** What this topology owns right now. */
  state(): TopologyState {
    return {
      prefix: this.prefix,
      namespaces: [...this.nsNames],
      processes: this.procs.map((p) => ({ pid: p.pid, startTime: p.startTime, name: p.name })),
      dirs: [...this.dirs],
    };
  }

  get isDestroyed(): boolean {
    return this.destroyed;
  }

  /**
   * Stop every tracked process (SIGTERM, SIGKILL after the grace), kill what else still runs in
   * our namespaces, delete the namespaces and temp dirs. Safe to call twice; the second call waits
   * for the first.
   */
  destroy(): Promise<void> {
    if (!this.destroying) this.destroying = this.doDestroy();
    return this.destroying;
  }

  private async doDestroy(): Promise<void> {
    const errors: string[] = [];
    const grace = this.opts.graceMs ?? 3000;
    await Promise.all(this.procs.map((p) => p.stop(grace).catch((e: unknown) => errors.push(String(e)))));
    // Processes a tracked process forked, or that other launchers (etcd.ts) started in our
    // namespaces: they live in namespaces we created, so they are ours to end.
    for (const ns of this.nsNames) {
      for (const pid of await nsPids(ns)) await killPid(pid, { graceMs: 1000 });
    }
    for (const ns of this.nsNames) {
      const r = await run(['ip', 'netns', 'del', ns], { allowFailure: true });
      if (r.code !== 0 && existsSync(`/run/netns/${ns}`)) errors.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
    }
    // Namespace teardown is asynchronous in the kernel (veths vanish a moment later); wait briefly
    // so a test asserting "nothing left" right after destroy sees a clean system.
    for (let i = 0; i < 50 && this.nsNames.some((ns) => existsSync(`/run/netns/${ns}`)); i++) await sleep(20);
    for (const d of this.dirs) {
      try {
        rmSync(d, { recursive: true, force: true });
      } catch (e) {
        errors.push(`rm ${d}: ${String(e)}`);
      }
    }
    this.destroyed = true;
    live.delete(this);
    if (errors.length) throw new Error(`teardown of ${this.prefix} incomplete:\n${errors.join('\n')}`);
  }

  /** Blocking destroy for exit hooks. */
  destroySync(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    live.delete(this);
    destroyStateSync(this.state(), this.opts.graceMs ?? 1000);
  }

  /** Forget this topology without tearing it down (it is handed over, e.g. to a lab keeper). */
  release(): void {
    live.delete(this);
  }
}

/** PIDs of the processes in namespace `ns` (`ip netns pids`). */
export async function nsPids(ns: string): Promise<number[]> {
  const r = await run(['ip', 'netns', 'pids', ns], { allowFailure: true });
  if (r.code !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid);
}

function nsPidsSync(ns: string): number[] {
  const r = runSync(['ip', 'netns', 'pids', ns], { allowFailure: true });
  if (r.code !== 0) return [];
  return r.stdout
    .split(/\s+/)
    .filter(Boolean)
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 1 && n !== process.pid);
}

/**
 * Tear down what a TopologyState records, synchronously: recorded processes (only if their start
 * time still matches), the processes left in the recorded namespaces, the namespaces, the dirs.
 * The lab's `down` uses it when its keeper process is gone.
 */
export function destroyStateSync(state: TopologyState, graceMs = 1000): void {
  const procs = state.processes.filter((p) => pidAlive(p.pid, p.startTime));
  for (const p of procs) {
    try {
      process.kill(p.pid, 'SIGCONT');
      process.kill(p.pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline && procs.some((p) => pidAlive(p.pid, p.startTime))) sleepSync(10);
  for (const p of procs) if (pidAlive(p.pid, p.startTime)) killPidSync(p.pid, { graceMs: 0, startTime: p.startTime });
  for (const ns of state.namespaces) {
    if (!existsSync(`/run/netns/${ns}`)) continue;
    for (const pid of nsPidsSync(ns)) killPidSync(pid, { graceMs: 500 });
    runSync(['ip', 'netns', 'del', ns], { allowFailure: true });
  }
  for (const d of state.dirs) rmSync(d, { recursive: true, force: true });
}

/** Something that registers a teardown hook: node:test's `after`, or a TestContext (`t`). */
export type AfterRegistrar = ((fn: () => unknown) => void) | { after(fn: () => unknown): void };

/**
 * A topology destroyed by the given node:test hook, so teardown runs when the test passes, fails
 * or throws: `const topo = useTopology(t, 'bgp')` or `useTopology(after, 'bgp')` at file level.
 */
export function useTopology(hook: AfterRegistrar, tag: string, opts: TopologyOptions = {}): Topology {
  const topo = new Topology(`nrdt-${tag}`, opts);
  const fn = (): Promise<void> => topo.destroy();
  if (typeof hook === 'function') hook(fn);
  else hook.after(fn);
  return topo;
}

/** Run `body` with a fresh topology and destroy it afterwards, whatever happens. */
export async function withTopology<T>(tag: string, body: (topo: Topology) => Promise<T>, opts: TopologyOptions = {}): Promise<T> {
  const topo = new Topology(`nrdt-${tag}`, opts);
  try {
    return await body(topo);
  } finally {
    await topo.destroy();
  }
}

/** Namespace names (under /run/netns) that start with `prefix`. */
export async function listNamespaces(prefix: string): Promise<string[]> {
  const r = await run(['ip', 'netns', 'list'], { allowFailure: true });
  return r.stdout
    .split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter((n) => n.startsWith(prefix));
}
