// Launcher for Debian's ExaBGP 4.2 inside a test namespace, the tool that sends crafted (also
// malformed) BGP UPDATEs (RFC 4271, generic attributes `attribute [ code flags value ]`): a
// generated config, an env file (root, no CLI pipes, log to a file), a text-API process fed from a
// FIFO the test writes commands into, and a JSON-API process that records what ExaBGP receives
// (parsed UPDATEs with their raw bytes, NOTIFICATIONs, session state changes).
import { appendFile, readFile } from 'node:fs/promises';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run, type ManagedProcess } from './proc.js';
import type { Host } from './netns.js';
import { waitFor } from './wait.js';

export type ExaFamily = 'ipv4' | 'ipv6';

export interface ExaNeighbor {
  /** The peer (nrd) address. */
  address: string;
  /** ExaBGP's own address for this session (must exist in the namespace). */
  localAddress: string;
  localAs: number;
  peerAs: number;
  /** BGP identifier (default localAddress when IPv4). */
  routerId?: string;
  /** Unicast families to negotiate (default ipv4). */
  families?: ExaFamily[];
  /** false: no four-octet AS capability, a two-octet session (RFC 6793 "OLD" speaker). */
  asn4?: boolean;
  /** Hold time in seconds (default 9; ExaBGP sends keepalives at a third). */
  holdTime?: number;
  /** Announce graceful restart (RFC 4724); default off so a reset withdraws at once. */
  gracefulRestart?: boolean;
  /** Pack routes with equal attributes into one UPDATE (default true). */
  groupUpdates?: boolean;
  /** Record UPDATEs ExaBGP receives from this neighbor (default true). */
  receive?: boolean;
}

export interface ExaBgpOptions {
  neighbors: ExaNeighbor[];
  /** Log every packet ExaBGP sends and receives as hex (exabgp.log.packets, DEBUG level). */
  logPackets?: boolean;
}

/** One JSON message ExaBGP's API wrote (encoder json): state, update, notification, … */
export interface ExaEvent {
  type: string;
  neighbor?: {
    address?: { local?: string; peer?: string };
    /** For type "state": connected, up, down. */
    state?: string;
    direction?: 'receive' | 'send';
    message?: {
      /** Raw message (api `packets`): the BGP message type, header and body as 0x-hex. */
      category?: number;
      header?: string;
      body?: string;
      /** Parsed UPDATE (api `parsed`). */
      update?: {
        attribute?: Record<string, unknown>;
        announce?: Record<string, Record<string, unknown>>;
        withdraw?: Record<string, unknown>;
      };
      eor?: { afi: string; safi: string };
    };
    /** For type "notification". */
    notification?: { code: number; subcode: number; data?: string };
  };
  [k: string]: unknown;
}

export interface ExaBgp {
  host: Host;
  process: ManagedProcess;
  dir: string;
  configPath: string;
  logPath: string;
  /**
   * Write one text-API command. Neighbors sharing a peer address are told apart by their local
   * address: "neighbor 192.0.2.1 local-ip 192.0.2.2 announce route 10.244.9.0/24 next-hop self".
   */
  command(line: string): Promise<void>;
  /** Everything the JSON API recorded so far. */
  events(): Promise<ExaEvent[]>;
  /** ExaBGP's log so far. */
  log(): Promise<string>;
  /** Wait until ExaBGP reports the session from `localAddress` up (a state event after `since` events). */
  waitUp(localAddress: string, opts?: { since?: number; timeoutMs?: number }): Promise<void>;
  stop(): Promise<unknown>;
}

function neighborBlock(n: ExaNeighbor, i: number, receive: boolean): string {
  const families = n.families ?? ['ipv4'];
  const caps = [
    n.asn4 === false ? 'asn4 disable;' : 'asn4 enable;',
    n.gracefulRestart ? 'graceful-restart 30;' : '',
  ].filter(Boolean);
  const api = [
    // API block names are global in ExaBGP's config: one pair per neighbor.
    `  api ctl${i} {\n    processes [ ctl ];\n  }`,
    receive
      ? `  api rx${i} {\n    processes [ rx ];\n    neighbor-changes;\n    receive {\n      parsed;\n      packets;\n      update;\n      notification;\n    }\n  }`
      : '',
  ].filter(Boolean);
  return [
    `neighbor ${n.address} {`,
    `  router-id ${n.routerId ?? n.localAddress};`,
    `  local-address ${n.localAddress};`,
    `  local-as ${n.localAs};`,
    `  peer-as ${n.peerAs};`,
    `  hold-time ${n.holdTime ?? 9};`,
    // nrd connects (its retry timer is the test's to set); ExaBGP's own backoff grows to minutes.
    '  passive true;',
    // Routes with the same attributes share an UPDATE (`announce attributes … nlri a b` is one
    // message); false sends one UPDATE per prefix.
    `  group-updates ${n.groupUpdates === false ? 'false' : 'true'};`,
    // Routes are not kept for replay: after a reset, a malformed UPDATE is not sent again.
    '  adj-rib-out false;',
    `  family {\n${families.map((f) => `    ${f} unicast;`).join('\n')}\n  }`,
    `  capability {\n${caps.map((c) => `    ${c}`).join('\n')}\n  }`,
    ...api,
    '}',
  ].join('\n');
}

/** The ExaBGP configuration for `opts`, with helper processes run from `dir`. */
export function exabgpConfig(opts: ExaBgpOptions, dir: string): string {
  return [
    `process ctl {\n  run /bin/sh ${join(dir, 'ctl.sh')};\n  encoder text;\n}`,
    `process rx {\n  run /bin/sh ${join(dir, 'rx.sh')};\n  encoder json;\n}`,
    ...opts.neighbors.map((n, i) => neighborBlock(n, i, n.receive !== false)),
    '',
  ].join('\n\n');
}

function envFile(opts: ExaBgpOptions, logPath: string): string {
  return [
    '[exabgp.daemon]',
    'daemonize = false',
    'user = root',
    'drop = false',
    "pid = ''",
    '[exabgp.log]',
    'enable = true',
    `level = ${opts.logPackets ? 'DEBUG' : 'INFO'}`,
    `destination = '${logPath}'`,
    `packets = ${opts.logPackets ? 'true' : 'false'}`,
    'network = true',
    'message = false',
    '[exabgp.api]',
    // No acks on the helper's stdin (nobody reads it) and no CLI named pipes in /run.
    'ack = false',
    'cli = false',
    'respawn = false',
    'encoder = json',
    '[exabgp.tcp]',
    `bind = '${[...new Set(opts.neighbors.map((n) => n.localAddress))].join(' ')}'`,
    'port = 179',
    '[exabgp.bgp]',
    'openwait = 60',
    '[exabgp.cache]',
    // Parse every received UPDATE afresh (the cache reuses the previous parse for equal bytes).
    'attributes = false',
    '',
  ].join('\n');
}

/** Start ExaBGP in `host`, listening on its neighbors' local addresses (passive: nrd connects). */
export async function startExaBgp(host: Host, opts: ExaBgpOptions): Promise<ExaBgp> {
  const dir = host.topo.tmpdir(`exabgp-${host.name}`);
  const configPath = join(dir, 'exabgp.conf');
  const envPath = join(dir, 'exabgp.env');
  const logPath = join(dir, 'exabgp.log');
  const fifo = join(dir, 'ctl.fifo');
  const rxPath = join(dir, 'rx.jsonl');
  await run(['mkfifo', '-m', '0600', fifo]);
  // The command process holds the FIFO open read-write, so it never sees EOF between the test's
  // writes (each write opens and closes the FIFO) and a writer never blocks.
  const ready = join(dir, 'ctl.ready');
  writeFileSync(join(dir, 'ctl.sh'), `: >'${ready}'\nexec cat 0<>'${fifo}'\n`);
  // Not `exec`: the shell keeps ExaBGP's stdout pipe open (ExaBGP ends a helper whose pipe hangs up).
  writeFileSync(join(dir, 'rx.sh'), `cat >>'${rxPath}'\n`);
  writeFileSync(rxPath, '');
  writeFileSync(configPath, exabgpConfig(opts, dir));
  writeFileSync(envPath, envFile(opts, logPath));

  // Parse-only run first (a config error then fails with ExaBGP's message), in the namespace and
  // with listening off: --test would otherwise try to bind the addresses.
  const check = await host.exec(['exabgp', '--env', envPath, '--test', configPath], {
    allowFailure: true,
    timeoutMs: 30_000,
    env: { ...process.env, exabgp_tcp_bind: '' },
  });
  if (check.code !== 0) {
    throw new Error(`ExaBGP config rejected: ${(check.stdout + check.stderr).trim().slice(-3000)}\n${exabgpConfig(opts, dir)}`);
  }
  const proc = host.spawn(['exabgp', '--env', envPath, configPath], { name: `${host.name}:exabgp` });

  const log = async (): Promise<string> => (existsSync(logPath) ? readFile(logPath, 'utf8') : '');
  const events = async (): Promise<ExaEvent[]> => {
    const text = await readFile(rxPath, 'utf8');
    const out: ExaEvent[] = [];
    for (const line of text.split('\n')) {
      const l = line.trim();
      if (!l.startsWith('{')) continue;
      try {
        out.push(JSON.parse(l) as ExaEvent);
      } catch {
        // A line being written right now: the next read has it whole.
      }
    }
    return out;
  };

  // The helper processes run once the reactor is up: wait for the command one.
  await waitFor(
    async () => {
      if (!proc.running()) throw new Error(`ExaBGP exited: ${proc.describe()}\n${await log()}`);
      return existsSync(ready);
    },
    { timeoutMs: 15_000, intervalMs: 100, what: 'ExaBGP helper processes' },
  ).catch(async (e: Error) => {
    throw new Error(`${e.message}\n${proc.describe()}\n--- log ---\n${(await log()).slice(-4000)}`);
  });

  return {
    host,
    process: proc,
    dir,
    configPath,
    logPath,
    async command(line: string) {
      if (line.includes('\n')) throw new Error('one ExaBGP command per call');
      if (!proc.running()) throw new Error(`ExaBGP exited: ${proc.describe()}`);
      await appendFile(fifo, `${line}\n`);
    },
    events,
    log,
    async waitUp(local, o = {}) {
      await waitFor(
        async () => {
          if (!proc.running()) throw new Error(`ExaBGP exited: ${proc.describe()}`);
          const ev = (await events()).slice(o.since ?? 0);
          return ev.some((e) => e.type === 'state' && e.neighbor?.address?.local === local && e.neighbor.state === 'up');
        },
        { timeoutMs: o.timeoutMs ?? 20_000, intervalMs: 100, what: `ExaBGP session from ${local} up` },
      ).catch(async (e: Error) => {
        throw new Error(`${e.message}\n--- ExaBGP log ---\n${(await log()).slice(-4000)}`);
      });
    },
    stop() {
      return proc.stop(2000);
    },
  };
}
