// The BFD worker thread: UDP sockets and timers off the main event loop, so that a busy RIB (a
// million-route UPDATE burst, a FIB reconcile) never delays a transmission or a detection timer
// into a false Down. Runs BfdRuntime (runtime.ts) over real sockets and reports state changes and
// snapshots to the main thread (subsystem.ts) by postMessage.
//
// Sockets (RFC 5881 §4, RFC 5883 §2):
//   - receive: UDP 3784 (single-hop) and 4784 (multihop), IPv4 and IPv6, one socket each;
//   - send: one socket per session, bound to a source port from 49152–65535 kept for the
//     session's lifetime, TTL / hop limit 255.
// GTSM for single-hop (RFC 5881 §5: "MUST discard" a packet whose received TTL is not 255): nrd
// sets IP_MINTTL 255 (IPV6_MINHOPCOUNT 255) on the 3784 socket, so the kernel drops lower TTLs
// before they reach the socket. RFC says check the received TTL / nrd has the kernel check it:
// Node's dgram cannot deliver IP_RECVTTL control messages, and a recvmsg(2) loop through FFI
// would need its own poller thread; the socket option gives the same verdict with no extra code
// in the receive path. The multihop socket has no TTL floor (RFC 5883 §2 leaves it to
// configuration; nrd peers are at most `multihop` hops away and authenticated if it matters).
import { createSocket, type Socket } from 'node:dgram';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { isIPv6 } from 'node:net';
import { setThreadNice, setThreadRealtime, trySetsockoptInt } from '../lib/libc.js';
import { pinThread } from '../lib/cpu-split.js';
import { BfdRuntime, type Transport, type UsClock } from './runtime.js';
import type { BfdSessionSpec, FromWorker, ToWorker } from './types.js';

export const PORT_SINGLE_HOP = 3784;
export const PORT_MULTIHOP = 4784;
const SRC_PORT_MIN = 49152;
const SRC_PORT_MAX = 65535;
const IPPROTO_IP = 0;
const IP_MINTTL = 21;
const IPPROTO_IPV6 = 41;
const IPV6_MINHOPCOUNT = 73;

/** The fd of a bound dgram socket: libuv's handle, reached without the deprecated `_handle` getter. */
function dgramFd(s: Socket): number {
  const sym = Object.getOwnPropertySymbols(s).find((x) => x.description === 'state symbol');
  const state = sym ? (s as unknown as Record<symbol, { handle?: { fd?: number } }>)[sym] : undefined;
  const fd = state?.handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('dgram socket has no file descriptor');
  return fd;
}

function bindSocket(s: Socket, port: number, address: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    s.once('error', onError);
    s.bind({ port, address, exclusive: true }, () => {
      s.off('error', onError);
      resolve();
    });
  });
}

export interface WorkerOptions {
  /** Ports (tests and benches may move them; production uses the RFC ports). */
  singleHopPort?: number;
  multihopPort?: number;
  /** Bind address of the receive sockets: '' = any. */
  listen?: string;
  /** SCHED_RR priority of the worker thread (default 10); null: do not ask for it. */
  realtime?: number | null;
  /** Nice value when SCHED_RR is refused (default -20); null leaves it as it is. */
  nice?: number | null;
}

export const WORKER_RT_PRIORITY = 10;
export const WORKER_NICE = -20;

/**
 * A thread of its own is not enough on a busy machine: a runnable thread may wait for a CPU longer
 * than a 150 ms detection time while the RIB, the route writer, the kernel (which does not preempt
 * itself on kernels built with preemption off) and other processes take both cores. A 1M-route
 * ingest on a loaded 2-core machine saw 900 ms gaps between nrd's packets at nice -20, 80 ms as
 * SCHED_RR (BIRD's BFD thread: 150 ms in the same run). So the worker asks for SCHED_RR (priority
 * 10: above every normal thread, below the kernel's own real-time threads; the kernel's RT
 * throttling keeps 5 % of each CPU for the rest), else nice -20. Its work per wakeup is a packet or
 * two. Returns what it got, e.g. "rr:10", "nice:-20", "default".
 */
function raisePriority(opts: Required<WorkerOptions>, warn: (m: string) => void): string {
  const why: string[] = [];
  if (opts.realtime !== null) {
    try {
      setThreadRealtime(opts.realtime);
      return `rr:${opts.realtime}`;
    } catch (err) {
      why.push(`SCHED_RR ${opts.realtime}: ${(err as Error).message}`);
    }
  }
  if (opts.nice !== null) {
    try {
      setThreadNice(opts.nice);
      if (why.length) warn(`BFD thread runs at nice ${opts.nice}, not real-time (${why.join('; ')}): allow it with CAP_SYS_NICE or LimitRTPRIO=${opts.realtime} and RestrictRealtime=no`);
      return `nice:${opts.nice}`;
    } catch (err) {
      why.push(`nice ${opts.nice}: ${(err as Error).message}`);
    }
  }
  if (why.length) warn(`BFD thread keeps the default priority (${why.join('; ')}): a busy machine may delay its packets into a false Down`);
  return 'default';
}

/** The thread on a CPU of its own, away from the route writer (lib/cpu-split.ts): " cpu:N" or "". */
function pinToBfdCpu(warn: (m: string) => void): string {
  // Run in-thread (a test), it would pin the whole program's main thread.
  if (isMainThread) return '';
  try {
    const cpus = pinThread('bfd');
    return cpus ? ` cpu:${cpus.join(',')}` : '';
  } catch (err) {
    warn(`BFD thread not pinned to a CPU apart from the route writer (${(err as Error).message}): a long route write may delay its packets`);
    return '';
  }
}

class SocketTransport implements Transport {
  private readonly tx = new Map<string, Socket>();
  private nextPort = SRC_PORT_MIN + Math.floor(Math.random() * 1000);
  constructor(
    private readonly opts: Required<WorkerOptions>,
    private readonly onError: (peer: string, err: Error) => void,
  ) {}

  /** Opens a session's send socket (before the session's first packet). */
  async open(spec: BfdSessionSpec): Promise<void> {
    const k = `${spec.multihop}/${spec.peer}`;
    if (this.tx.has(k)) return;
    const v6 = isIPv6(spec.peer);
    for (let tries = 0; tries < 64; tries++) {
      const port = this.nextPort;
      this.nextPort = port >= SRC_PORT_MAX ? SRC_PORT_MIN : port + 1;
      const s = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6 });
      try {
        await bindSocket(s, port, v6 ? '::' : '0.0.0.0');
      } catch {
        s.close();
        continue;
      }
      s.setTTL(255);
      s.on('error', (err) => this.onError(spec.peer, err));
      // Nothing is expected on the send socket; drain whatever arrives.
      s.on('message', () => undefined);
      this.tx.set(k, s);
      return;
    }
    throw new Error(`no free UDP source port in ${SRC_PORT_MIN}-${SRC_PORT_MAX} for BFD to ${spec.peer}`);
  }

  close(spec: BfdSessionSpec): void {
    const k = `${spec.multihop}/${spec.peer}`;
    this.tx.get(k)?.close();
    this.tx.delete(k);
  }

  send(spec: BfdSessionSpec, bytes: Uint8Array): void {
    const s = this.tx.get(`${spec.multihop}/${spec.peer}`);
    if (!s) return; // removed meanwhile
    s.send(bytes, spec.multihop ? this.opts.multihopPort : this.opts.singleHopPort, spec.peer);
  }

  closeAll(): void {
    for (const s of this.tx.values()) s.close();
    this.tx.clear();
  }
}

const usClock: UsClock = {
  nowUs: () => Math.round(performance.now() * 1000),
  setTimer: (fn, us) => setTimeout(fn, Math.ceil(us / 1000)),
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
  wallTime: () => new Date().toISOString(),
  afterIo: (fn) => void setImmediate(fn),
};

/** The worker's body: sockets, runtime, messages. Exported for an in-thread test run. */
export async function runWorker(port: { postMessage(m: FromWorker): void; on(ev: 'message', fn: (m: ToWorker) => void): void }, options: WorkerOptions = {}): Promise<void> {
  const opts: Required<WorkerOptions> = { singleHopPort: PORT_SINGLE_HOP, multihopPort: PORT_MULTIHOP, listen: '', realtime: WORKER_RT_PRIORITY, nice: WORKER_NICE, ...options };
  const post = (m: FromWorker): void => port.postMessage(m);
  const warn = (message: string): void => post({ type: 'error', peer: null, message });
  const sched = raisePriority(opts, warn) + pinToBfdCpu(warn);
  const transport = new SocketTransport(opts, (peer, err) => post({ type: 'error', peer, message: err.message }));
  const runtime = new BfdRuntime(transport, usClock, post);
  const rx: Socket[] = [];
  const described: string[] = [];
  for (const [family, multihop] of [['udp4', false], ['udp6', false], ['udp4', true], ['udp6', true]] as const) {
    const v6 = family === 'udp6';
    const addr = opts.listen && isIPv6(opts.listen) === v6 ? opts.listen : opts.listen ? null : v6 ? '::' : '0.0.0.0';
    if (addr === null) continue;
    const s = createSocket({ type: family, ipv6Only: v6 });
    const p = multihop ? opts.multihopPort : opts.singleHopPort;
    try {
      await bindSocket(s, p, addr);
    } catch (err) {
      s.close();
      // No IPv6 in this namespace is no reason to fail IPv4 BFD.
      if (v6) continue;
      throw err;
    }
    if (!multihop) {
      const ok = v6 ? trySetsockoptInt(dgramFd(s), IPPROTO_IPV6, IPV6_MINHOPCOUNT, 255) : trySetsockoptInt(dgramFd(s), IPPROTO_IP, IP_MINTTL, 255);
      if (!ok) throw new Error(`cannot set ${v6 ? 'IPV6_MINHOPCOUNT' : 'IP_MINTTL'} 255 on the single-hop BFD socket`);
    }
    s.on('message', (msg, rinfo) => runtime.receive(new Uint8Array(msg.buffer, msg.byteOffset, msg.length), rinfo.address.replace(/^::ffff:/, ''), multihop));
    s.on('error', (err) => post({ type: 'error', peer: null, message: err.message }));
    rx.push(s);
    described.push(`${family}:${addr}:${p}${multihop ? '' : ' minttl 255'}`);
  }
  let specs: BfdSessionSpec[] = [];
  let queue = Promise.resolve();
  port.on('message', (m) => {
    queue = queue.then(async () => {
      if (m.type === 'configure') {
        const keep = new Set(m.sessions.map((s) => `${s.multihop}/${s.peer}`));
        for (const s of m.sessions) {
          try {
            await transport.open(s);
          } catch (err) {
            post({ type: 'error', peer: s.peer, message: (err as Error).message });
          }
        }
        runtime.configure(m.sessions);
        for (const s of specs) if (!keep.has(`${s.multihop}/${s.peer}`)) transport.close(s);
        specs = m.sessions;
      } else if (m.type === 'snapshot') {
        post({ type: 'snapshot', id: m.id, sessions: runtime.sessions() });
      } else if (m.type === 'shutdown') {
        runtime.shutdown();
        // Let the AdminDown packets leave before the sockets close.
        await new Promise((r) => setTimeout(r, 20));
        transport.closeAll();
        for (const s of rx) s.close();
        post({ type: 'closed' });
      }
    });
  });
  post({ type: 'ready', sockets: described, sched });
}

if (!isMainThread && parentPort && (workerData as { kind?: string } | null)?.kind === 'nrd-bfd') {
  const p = parentPort;
  runWorker(p as unknown as Parameters<typeof runWorker>[0], (workerData as { options?: WorkerOptions }).options ?? {}).catch((err: unknown) => {
    p.postMessage({ type: 'error', peer: null, message: `BFD worker failed to start: ${(err as Error).message}` } satisfies FromWorker);
    process.exit(1);
  });
}
