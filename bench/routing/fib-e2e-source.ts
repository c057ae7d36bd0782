// Pieces of the end-to-end FIB benchmark: the route source that writes pre-encoded UPDATEs
// (RFC 4271, ~800 IPv4 prefixes each) at socket speed, and the cheap probes of a target
// namespace — the main table's route count from /proc/<pid>/net/fib_triestat (the kernel walks
// its trie; no netlink dump of a million routes per poll) and a process's RSS from /proc.
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { Framer, encodeMessage, keepaliveBytes, packUpdates, endOfRib } from '../../daemon/bgp/wire/index.js';
import type { OpenMessage, SessionContext } from '../../daemon/bgp/types.js';

/** Fabric addresses of the two namespaces (TEST-NET-1, inside the namespaces only). */
export const SOURCE = '192.0.2.1';
export const TARGET = '192.0.2.2';
export const SOURCE_AS = 65100;
export const TARGET_AS = 65000;
/** Where the injected prefixes live: 2^20 /24s, so 1M distinct routes (accepted by nrd as an extra range). */
export const INJECT_RANGE = '64.0.0.0/4';

const ctx: SessionContext = { fourOctetAs: true, extendedMessage: false, addPathReceive: new Set(), addPathSend: new Set(), peerType: 'ebgp' };

/** n distinct /24s inside INJECT_RANGE. */
export function prefixes(n: number): string[] {
  if (n > 1 << 20) throw new Error(`at most ${1 << 20} routes fit in ${INJECT_RANGE} as /24s`);
  const out = new Array<string>(n);
  for (let i = 0; i < n; i++) out[i] = `${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`;
  return out;
}

function openBytes(holdTime: number): Uint8Array {
  const m: OpenMessage = {
    type: 'open',
    version: 4,
    myAs: SOURCE_AS,
    holdTime,
    bgpId: SOURCE,
    capabilities: { multiprotocol: [{ afi: 1, safi: 1 }], routeRefresh: true, enhancedRouteRefresh: false, extendedMessage: false, fourOctetAs: SOURCE_AS, unknown: [] },
  };
  return encodeMessage(m, ctx);
}

/** One JSON line on stdout: how the injector reports to the benchmark (epoch ms). */
export interface InjectorEvent {
  encoded?: number;
  connect?: number;
  /** The target's OPEN and KEEPALIVE arrived: the session is Established. */
  up?: number;
  /** Every UPDATE and the End-of-RIB were handed to the kernel. */
  written?: number;
  messages?: number;
  /** A new largest gap between two messages from the target since Established, ms (its keepalives on time?). */
  gap?: number;
  error?: string;
}

function emit(e: InjectorEvent): void {
  process.stdout.write(`${JSON.stringify(e)}\n`);
}

/**
 * The injector role (run inside the source namespace): encodes n prefixes into UPDATEs first, then
 * connects to the target, completes the OPEN exchange and writes them all plus End-of-RIB in one
 * go. Keeps the session up (and drains what the target sends) until it is killed. It offers
 * `holdTime` (the target sends a KEEPALIVE every third of it) and reports the largest gap between
 * two messages of the target: a target whose event loop stalls sends its keepalives late.
 */
export async function runInjector(n: number, holdTime = 240): Promise<void> {
  const attrs = { origin: 0 as const, asPath: [{ type: 2 as const, asns: [SOURCE_AS] }], nextHop: SOURCE };
  const all = prefixes(n);
  const msgs: Uint8Array[] = [];
  for (let i = 0; i < all.length; i += 800) msgs.push(...packUpdates(attrs, all.slice(i, i + 800).map((prefix) => ({ prefix })), ctx, '1/1'));
  msgs.push(endOfRib(1, 1));
  const blob = Buffer.concat(msgs);
  emit({ encoded: Date.now(), messages: msgs.length });
  const s = net.connect({ host: TARGET, port: 179, localAddress: SOURCE });
  const f = new Framer();
  let up = false;
  s.on('error', (err) => {
    emit({ error: err.message });
    process.exit(1);
  });
  s.on('connect', () => {
    emit({ connect: Date.now() });
    s.setNoDelay(true);
    s.write(openBytes(holdTime));
  });
  let last = 0;
  let gap = 0;
  s.on('data', (d: Buffer) => {
    f.push(d);
    for (const r of f) {
      if (up) {
        const now = Date.now();
        if (now - last > gap) emit({ gap: (gap = now - last) });
        last = now;
      }
      if (!r.ok) {
        emit({ error: r.error.reason });
        process.exit(1);
      }
      const type = r.frame[18];
      if (type === 1) s.write(keepaliveBytes());
      else if (type === 3) {
        emit({ error: `NOTIFICATION ${r.frame[19]}/${r.frame[20]}` });
        process.exit(1);
      } else if (type === 4 && !up) {
        up = true;
        last = Date.now();
        emit({ up: last });
        s.write(blob, () => emit({ written: Date.now() }));
      }
    }
  });
  s.on('close', () => {
    emit({ error: 'session closed by the target' });
    process.exit(1);
  });
  // Our own keepalives every third of the hold time we offered (the target may not accept less).
  setInterval(() => s.write(keepaliveBytes()), Math.max(1000, (holdTime * 1000) / 3));
}

/** Parsed injector events from its captured stdout. */
export function injectorEvents(output: string): InjectorEvent[] {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as InjectorEvent);
}

/**
 * Routes in the main table (id 254) of the network namespace of process `pid`, from
 * /proc/<pid>/net/fib_triestat ("Prefixes:" counts the route aliases of the trie). The kernel
 * walks its trie in a few ms at 1M routes, against seconds for an `ip route show` dump.
 */
export function mainTableRoutes(pid: number): number {
  const text = readFileSync(`/proc/${pid}/net/fib_triestat`, 'utf8');
  const i = text.indexOf('\nMain:\n');
  if (i < 0) return 0;
  const m = /Prefixes:\s+(\d+)/.exec(text.slice(i));
  return m ? Number(m[1]) : 0;
}

/** VmRSS and VmHWM (peak RSS) of a process, in bytes. */
export function memoryOf(pid: number): { rss: number; peak: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (k: string): number => Number(new RegExp(`${k}:\\s+(\\d+) kB`).exec(s)?.[1] ?? 0) * 1024;
  return { rss: kb('VmRSS'), peak: kb('VmHWM') };
}
