// Launcher for a real BIRD 2 router inside a test namespace: generated config (BGP per RFC 4271,
// MD5 per RFC 2385, route reflection per RFC 4456, graceful restart per RFC 4724, add-path per
// RFC 7911), its own control socket, and parsers for `birdc show protocols` / `show route all`.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type ManagedProcess } from './proc.js';
import type { Host } from './netns.js';
import { waitFor } from './wait.js';

/** A BIRD filter for a channel: accept all, reject all, a `where` expression, or a filter body. */
export type BirdFilter = 'all' | 'none' | { where: string } | { filter: string };

export type BirdFamily = 'ipv4' | 'ipv6';

export interface BirdPeer {
  /** Protocol name (a BIRD symbol); default `peer_<address with _>`. */
  name?: string;
  address: string;
  asn: number;
  /** Local AS for this session (default BirdOptions.asn). */
  localAsn?: number;
  /** Source address of the session (BIRD `local <addr> as …`). */
  localAddress?: string;
  /** Peer's port (default 179). */
  port?: number;
  passive?: boolean;
  /** true = multihop with BIRD's default TTL, or a TTL. */
  multihop?: boolean | number;
  /** TCP MD5 key (RFC 2385). */
  password?: string;
  /** iBGP route-reflector client (RFC 4456). */
  rrClient?: boolean;
  /** RFC 4724 graceful restart; a number sets the restart time in seconds. */
  gracefulRestart?: boolean | number;
  /** Hold time in seconds (default BIRD's 240; tests often want 3-9). */
  holdTime?: number;
  keepaliveTime?: number;
  import?: BirdFilter;
  export?: BirdFilter;
  nextHopSelf?: boolean;
  /** RFC 7911 add-path. */
  addPaths?: boolean | 'rx' | 'tx';
  /** Families to negotiate (default the neighbor's address family). */
  families?: BirdFamily[];
  /** Extra lines inside the `protocol bgp` block. */
  extra?: string;
  /** Extra lines inside each channel block. */
  extraChannel?: string;
}

export type BirdStaticRoute = string | { prefix: string; via?: string; blackhole?: boolean };

export interface BirdOptions {
  routerId: string;
  /** Local AS used by every peer unless it sets localAsn. */
  asn: number;
  peers?: BirdPeer[];
  /** Routes to originate (a bare prefix is a blackhole route); exported per peer filter. */
  staticRoutes?: BirdStaticRoute[];
  /**
   * A kernel protocol so that learned routes land in the namespace's FIB (default off). Its
   * export filter defaults to BGP-learned routes only.
   */
  kernel?: boolean | { export?: BirdFilter; learn?: boolean; mergePaths?: boolean };
  /** BIRD `debug protocols all` (noisy; for investigating a failing test). */
  debug?: boolean;
  /** Appended verbatim to the config. */
  extraConfig?: string;
  /** Short BGP retry timers so tests do not wait minutes after a refused connect (default true). */
  fastTimers?: boolean;
  /** Log file; default: BIRD's stderr is captured by the ManagedProcess. */
  logFile?: string;
}

export interface BirdProtocol {
  name: string;
  proto: string;
  table: string;
  state: string;
  since: string;
  info: string;
}

export interface BirdNexthop {
  via?: string;
  dev?: string;
  weight?: number;
}

export interface BirdRoute {
  table: string;
  prefix: string;
  /** unicast, blackhole, unreachable, prohibit, … */
  type: string;
  protocol: string;
  since: string;
  /** `from <addr>` for BGP routes. */
  from?: string;
  /** The best route for the prefix (the `*` mark). */
  primary: boolean;
  preference: number;
  nexthops: BirdNexthop[];
  /** `Type: BGP univ` and every `BGP.xxx: value` line, keyed by name. */
  attrs: Record<string, string>;
}

function sym(s: string): string {
  return s.replace(/[^A-Za-z0-9_]/g, '_');
}

function family(addrOrPrefix: string): BirdFamily {
  return addrOrPrefix.includes(':') ? 'ipv6' : 'ipv4';
}

function quoted(s: string): string {
  if (/["\\\n]/.test(s)) throw new Error(`BIRD string may not contain quotes, backslashes or newlines: ${JSON.stringify(s)}`);
  return `"${s}"`;
}

function filterLine(dir: 'import' | 'export', f: BirdFilter): string {
  if (f === 'all' || f === 'none') return `${dir} ${f};`;
  if ('where' in f) return `${dir} where ${f.where};`;
  return `${dir} filter { ${f.filter} };`;
}

export function peerName(p: BirdPeer): string {
  return p.name ?? `peer_${sym(p.address)}`;
}

/** The BIRD 2 configuration for `opts` (exported for tests and for reading in failure output). */
export function birdConfig(opts: BirdOptions): string {
  const L: string[] = [];
  L.push(`router id ${opts.routerId};`, 'log stderr all;', 'protocol device { scan time 5; }');
  const statics = (opts.staticRoutes ?? []).map((r) => (typeof r === 'string' ? { prefix: r, blackhole: true } : r));
  const families = new Set<BirdFamily>();
  for (const p of opts.peers ?? []) for (const f of p.families ?? [family(p.address)]) families.add(f);
  for (const r of statics) families.add(family(r.prefix));
  for (const f of ['ipv4', 'ipv6'] as const) {
    const mine = statics.filter((r) => family(r.prefix) === f);
    if (!mine.length) continue;
    L.push(`protocol static static_${f.slice(-1)} {`, `  ${f};`);
    for (const r of mine) L.push(`  route ${r.prefix} ${r.via && !r.blackhole ? `via ${r.via}` : 'blackhole'};`);
    L.push('}');
  }
  if (opts.kernel) {
    const k = opts.kernel === true ? {} : opts.kernel;
    for (const f of families.size ? families : new Set<BirdFamily>(['ipv4'])) {
      L.push(`protocol kernel kernel_${f.slice(-1)} {`);
      L.push(`  ${f} { import ${k.learn ? 'all' : 'none'}; ${filterLine('export', k.export ?? { where: 'source = RTS_BGP' })} };`);
      if (k.learn) L.push('  learn;');
      if (k.mergePaths ?? true) L.push('  merge paths on;');
      L.push('  scan time 10;', '}');
    }
  }
  for (const p of opts.peers ?? []) {
    const localAsn = p.localAsn ?? opts.asn;
    L.push(`protocol bgp ${peerName(p)} {`);
    L.push(p.localAddress ? `  local ${p.localAddress} as ${localAsn};` : `  local as ${localAsn};`);
    L.push(`  neighbor ${p.address}${p.port ? ` port ${p.port}` : ''} as ${p.asn};`);
    if (p.passive) L.push('  passive on;');
    if (p.multihop !== undefined && p.multihop !== false) L.push(p.multihop === true ? '  multihop;' : `  multihop ${p.multihop};`);
    if (p.password !== undefined) L.push(`  password ${quoted(p.password)};`);
    if (p.rrClient) L.push('  rr client;');
    if (p.gracefulRestart !== undefined && p.gracefulRestart !== false) {
      L.push('  graceful restart on;');
      if (typeof p.gracefulRestart === 'number') L.push(`  graceful restart time ${p.gracefulRestart};`);
    } else if (p.gracefulRestart === false) L.push('  graceful restart off;');
    if (p.holdTime !== undefined) L.push(`  hold time ${p.holdTime};`);
    if (p.keepaliveTime !== undefined) L.push(`  keepalive time ${p.keepaliveTime};`);
    if (opts.fastTimers ?? true) {
      // BIRD's defaults (connect retry 120 s, error wait 60-300 s) would stall a test whose peer
      // starts a moment after BIRD.
      L.push('  connect delay time 1;', '  connect retry time 2;', '  error wait time 1, 4;');
    }
    if (opts.debug) L.push('  debug all;');
    for (const f of p.families ?? [family(p.address)]) {
      L.push(`  ${f} {`);
      L.push(`    ${filterLine('import', p.import ?? 'all')}`, `    ${filterLine('export', p.export ?? 'all')}`);
      if (p.nextHopSelf) L.push('    next hop self;');
      if (p.addPaths !== undefined && p.addPaths !== false) L.push(`    add paths ${p.addPaths === true ? 'on' : p.addPaths};`);
      if (p.extraChannel) L.push(`    ${p.extraChannel}`);
      L.push('  };');
    }
    if (p.extra) L.push(`  ${p.extra}`);
    L.push('}');
  }
  if (opts.extraConfig) L.push(opts.extraConfig);
  return L.join('\n') + '\n';
}

/** Parse `birdc show protocols` (header line then one row per protocol). */
export function parseProtocols(text: string): BirdProtocol[] {
  const out: BirdProtocol[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('BIRD ') || line.startsWith('Name ') || /^\s/.test(line)) continue;
    const m = /^(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    out.push({ name: m[1]!, proto: m[2]!, table: m[3]!, state: m[4]!, since: m[5]!, info: m[6]!.trim() });
  }
  return out;
}

const ROUTE_HEAD = /^(\S+)?\s+(\S+)\s+\[(\S+) ([^\]\s]+)(?: from (\S+))?\]\s*(\*)?\s*\((\d+)[^)]*\)/;

/** Parse `birdc show route all` into one entry per route (several per prefix when multipath). */
export function parseRoutes(text: string): BirdRoute[] {
  const out: BirdRoute[] = [];
  let table = '';
  let prefix = '';
  let cur: BirdRoute | null = null;
  for (const line of text.split('\n')) {
    if (!line.trim() || line.startsWith('BIRD ')) continue;
    const t = /^Table (\S+):$/.exec(line);
    if (t) {
      table = t[1]!;
      cur = null;
      continue;
    }
    if (line.startsWith('\t')) {
      if (!cur) continue;
      const body = line.trim();
      const via = /^via (\S+)(?: on (\S+))?(?: weight (\d+))?/.exec(body);
      const dev = /^dev (\S+)/.exec(body);
      if (via) {
        const nh: BirdNexthop = { via: via[1]! };
        if (via[2]) nh.dev = via[2];
        if (via[3]) nh.weight = Number(via[3]);
        cur.nexthops.push(nh);
      } else if (dev) cur.nexthops.push({ dev: dev[1]! });
      else {
        const i = body.indexOf(':');
        if (i > 0) cur.attrs[body.slice(0, i)] = body.slice(i + 1).trim();
      }
      continue;
    }
    const m = ROUTE_HEAD.exec(line);
    if (!m) continue;
    if (m[1]) prefix = m[1];
    cur = {
      table,
      prefix,
      type: m[2]!,
      protocol: m[3]!,
      since: m[4]!,
      primary: m[6] === '*',
      preference: Number(m[7]),
      nexthops: [],
      attrs: {},
    };
    if (m[5]) cur.from = m[5];
    out.push(cur);
  }
  return out;
}

export interface Bird {
  readonly host: Host;
  readonly process: ManagedProcess;
  readonly socket: string;
  readonly configPath: string;
  readonly options: BirdOptions;
  /** Run one birdc command; returns its output without the greeting. Throws when birdc fails. */
  birdc(cmd: string): Promise<string>;
  protocols(): Promise<BirdProtocol[]>;
  /** `show route all [args]`, parsed. */
  routes(args?: string): Promise<BirdRoute[]>;
  /** Wait until BGP protocol `name` (or the peer with that address) is Established. */
  waitEstablished(nameOrAddress: string, timeoutMs?: number): Promise<void>;
  /** Write a new config and `configure` BIRD with it (sessions the change does not touch stay up). */
  reconfigure(opts: BirdOptions): Promise<void>;
  /** Stop BIRD by PID (SIGTERM, then SIGKILL). */
  stop(): Promise<void>;
}

/**
 * Start BIRD inside `host` with a generated config in a temp dir of the host's topology, and wait
 * until its control socket answers. The process is tracked by the topology for teardown.
 */
export async function startBird(host: Host, opts: BirdOptions): Promise<Bird> {
  const dir = host.topo.tmpdir(`bird-${host.name}`);
  const socket = join(dir, 'bird.ctl');
  const configPath = join(dir, 'bird.conf');
  const pidFile = join(dir, 'bird.pid');
  let options = opts;
  writeFileSync(configPath, birdConfig(opts));
  // Parse-only run first: a config error then fails with BIRD's own message and line number.
  const check = await run(['bird', '-p', '-c', configPath], { allowFailure: true });
  if (check.code !== 0) throw new Error(`BIRD config rejected: ${check.stderr.trim()}\n${birdConfig(opts)}`);
  const proc = host.spawn(['bird', '-f', '-c', configPath, '-s', socket, '-P', pidFile], {
    name: `${host.name}:bird`,
    logFile: opts.logFile,
  });

  const birdc = async (cmd: string): Promise<string> => {
    // The control socket is a filesystem path, reachable from the root namespace: no netns hop.
    const r = await run(['birdc', '-s', socket, ...cmd.split(/\s+/).filter(Boolean)], { allowFailure: true, timeoutMs: 15_000 });
    const text = r.stdout.replace(/^BIRD [^\n]* ready\.\n/, '');
    if (r.code !== 0) throw new Error(`birdc ${cmd}: ${text.trim() || r.stderr.trim()}`);
    return text;
  };

  await waitFor(
    async () => {
      if (!proc.running()) throw new Error(`BIRD exited: ${proc.describe()}`);
      return (await birdc('show status')).includes('Daemon is up and running');
    },
    { timeoutMs: 10_000, what: `BIRD in ${host.ns} to answer on ${socket}` },
  ).catch((err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${proc.describe()}`);
  });

  const protocols = async (): Promise<BirdProtocol[]> => parseProtocols(await birdc('show protocols'));
  const resolveName = (nameOrAddress: string): string => {
    const p = (options.peers ?? []).find((x) => x.address === nameOrAddress || peerName(x) === nameOrAddress);
    return p ? peerName(p) : nameOrAddress;
  };

  return {
    host,
    process: proc,
    socket,
    configPath,
    get options() {
      return options;
    },
    birdc,
    protocols,
    async routes(args = '') {
      return parseRoutes(await birdc(`show route all ${args}`));
    },
    async waitEstablished(nameOrAddress, timeoutMs = 30_000) {
      const name = resolveName(nameOrAddress);
      try {
        await waitFor(
          async () => {
            if (!proc.running()) throw new Error('BIRD exited');
            const p = (await protocols()).find((x) => x.name === name);
            if (!p) throw new Error(`no protocol ${name}`);
            return p.state === 'up' && p.info.startsWith('Established');
          },
          { timeoutMs, intervalMs: 100, what: `BIRD ${host.name} protocol ${name} Established` },
        );
      } catch (err) {
        const detail = await birdc(`show protocols all ${name}`).catch((e: unknown) => String(e));
        throw new Error(`${err instanceof Error ? err.message : String(err)}\n${detail}\n${proc.describe()}`);
      }
    },
    async reconfigure(next) {
      writeFileSync(configPath, birdConfig(next));
      const out = await birdc('configure');
      if (!/Reconfigured|Reconfiguration in progress/.test(out)) throw new Error(`BIRD configure: ${out.trim()}`);
      options = next;
    },
    async stop() {
      await proc.stop();
    },
  };
}
