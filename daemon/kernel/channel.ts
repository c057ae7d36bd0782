// A request/response channel over one NETLINK_ROUTE socket of the npm `netlink` package
// (RawNetlinkSocket): pipelined writes packed many to a datagram, GET requests, serialized dumps,
// and errno-preserving errors. Kernel interface: netlink(7) — NLM_F_ACK, NLMSG_ERROR, NLMSG_DONE.
//
// Batching: requests issued in the same tick are packed into datagrams, and writeMany() encodes a
// whole batch (10k–1M routes) straight into datagrams with one pending record for the batch instead
// of a promise per message; both stay within WRITE_DATAGRAM_MAX (16 KiB, see there why). Only the last message of a
// datagram asks for an ACK; the kernel processes a socket's messages in order and always reports
// an error (NLMSG_ERROR with errno ≠ 0) even without NLM_F_ACK, so any NLMSG_ERROR for sequence s
// (an ACK, or the error of the message that carried the ACK flag) proves that every earlier message
// of the socket was processed, and succeeded unless its own error arrived first. That replaces one
// ACK per route (what `ip -batch` waits for) by one per datagram. Sequence numbers increase in send
// order and are compared in serial arithmetic (RFC 1982 style), so they may wrap.
import { constants as osConstants } from 'node:os';
import { RawNetlinkSocket } from 'netlink';
import { frame, splitMessages, NLMSG_HDRLEN, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_OVERRUN, type RawMessage } from './codec.js';
import { hardenEventSocket } from './socket-opts.js';
import { errnoName, errnoNumber } from '../lib/errno.js';
import { KernelError, type BatchFailure } from './types.js';

export type { BatchFailure } from './types.js';

const NETLINK_ROUTE = 0;

/**
 * Largest datagram of netlink writes: route batches (writeMany, the route writer thread) and the
 * single requests packed per tick. The kernel applies all of a datagram's messages inside one
 * sendmsg with no reschedule point between them; on a kernel without preemption (PREEMPT_NONE,
 * "Dynamic Preempt: none") nothing else runs on that CPU meanwhile — not even a SCHED_RR thread such
 * as the BFD worker (bfd/worker.ts), whose 50 ms transmit timer then fires late and whose peer may
 * declare the session Down. Kernel CPU time per sendmsg while writing 1M /24 routes in a namespace
 * (6.18, 2 cores): p99 115 ms at 256 KiB (~4,000 routes), 39 ms at 64 KiB, 6 ms at 16 KiB (~140
 * routes), 2 ms at 8 KiB, for the same total (2.1 s): more syscalls, the same kernel work. What
 * no size bounds is the fib trie's own resize: the one insert or delete that inflates or halves a
 * large trie node costs up to ~200 ms at 1M routes whatever the datagram holds (BIRD, one route per
 * message, pays it too). Also below SO_SNDBUF − 32, netlink_sendmsg's limit (EMSGSIZE).
 */
export const WRITE_DATAGRAM_MAX = 16 * 1024;

/**
 * Recover an errno from whatever the netlink package threw: an ErrnoException (errno/code set), or
 * its `Request rejected: EEXIST` message string, which drops the number.
 */
export function kernelErrorFrom(err: unknown, call: string): KernelError {
  if (err instanceof KernelError) return err;
  const e = err as { errno?: unknown; code?: unknown; message?: unknown };
  if (typeof e?.errno === 'number') {
    const errno = Math.abs(e.errno);
    return new KernelError(typeof e.code === 'string' ? e.code : errnoName(errno), errno, call);
  }
  const m = /Request rejected: ([A-Z0-9]+)/.exec(String(e?.message ?? err));
  if (m) {
    const name = m[1]!;
    const errno = /^\d+$/.test(name) ? Number(name) : errnoNumber(name) ?? 0;
    return new KernelError(/^\d+$/.test(name) ? errnoName(errno) : name, errno, call);
  }
  return new KernelError('EIO', osConstants.errno.EIO, call, String(e?.message ?? err));
}

type Kind = 'write' | 'get' | 'dump';

interface Pending {
  seq: number;
  kind: Kind;
  call: string;
  parts: RawMessage[];
  interrupted: boolean;
  sent: boolean;
  resolve(parts: RawMessage[]): void;
  reject(e: KernelError): void;
}


interface Batch {
  /** Sequence number of items[0]; item i has first + i. */
  first: number;
  count: number;
  call: string;
  /** Datagrams sent whose ACK has not arrived yet, in send order: sequence ranges. */
  open: Array<{ from: number; to: number }>;
  /** Indices that already carry an error (encode failure or NLMSG_ERROR). */
  failed: Set<number>;
  failures: BatchFailure[];
  resolve(f: BatchFailure[]): void;
}

function batchFail(b: Batch, index: number, error: KernelError): void {
  if (b.failed.has(index)) return;
  b.failed.add(index);
  b.failures.push({ index, error });
}

/** a < b in serial arithmetic (valid while fewer than 2^31 messages are in flight). */
export const before = (a: number, b: number): boolean => ((a - b) | 0) < 0;

/** One datagram of a batch: its bytes and the sequence numbers of its first and last message. */
export interface Datagram {
  buf: Buffer;
  from: number;
  to: number;
  count: number;
}

/**
 * Encode `items` as netlink messages with sequence numbers first, first + 1, … packed into
 * datagrams of up to `limit` bytes; the last message of each asks for the ACK that settles the
 * whole datagram (see the header comment). An item whose size or encoding throws, or whose message
 * alone could exceed `limit` (EMSGSIZE), fails alone: no datagram is ever longer than `limit`.
 */
export function encodeBatch<T>(
  type: number,
  flags: number,
  items: readonly T[],
  encode: (b: Buffer, off: number, item: T) => number,
  maxBytes: (item: T) => number,
  call: string,
  first: number,
  limit: number,
  fail: (index: number, e: KernelError) => void,
  emit: (d: Datagram) => void,
): void {
  const n = items.length;
  let buf = Buffer.allocUnsafe(limit);
  let off = 0;
  let lastStart = -1;
  let dgFirst = 0;
  let dgLast = 0;
  let msgs = 0;
  const send = (): void => {
    buf[lastStart + 6] = (buf[lastStart + 6]! | NLM_F_ACK) & 255;
    emit({ buf: buf.subarray(0, off), from: dgFirst, to: dgLast, count: msgs });
  };
  const f = flags | NLM_F_REQUEST;
  for (let i = 0; i < n; i++) {
    const item = items[i]!;
    let need: number;
    try {
      need = NLMSG_HDRLEN + maxBytes(item);
    } catch (e) {
      fail(i, new KernelError('EINVAL', osConstants.errno.EINVAL, call, e instanceof Error ? e.message : String(e)));
      continue;
    }
    if (need > limit) {
      fail(i, new KernelError('EMSGSIZE', osConstants.errno.EMSGSIZE, call, `a message of up to ${need} bytes exceeds the ${limit}-byte datagram limit`));
      continue;
    }
    if (off + need > limit) {
      send();
      buf = Buffer.allocUnsafe(limit);
      off = 0;
      msgs = 0;
    }
    const seq = (first + i) >>> 0;
    let end: number;
    try {
      end = encode(buf, off + NLMSG_HDRLEN, item);
    } catch (e) {
      fail(i, new KernelError('EINVAL', osConstants.errno.EINVAL, call, e instanceof Error ? e.message : String(e)));
      continue;
    }
    const len = end - off;
    buf.writeUInt32LE(len, off);
    buf.writeUInt16LE(type, off + 4);
    buf.writeUInt16LE(f, off + 6);
    buf.writeUInt32LE(seq, off + 8);
    buf.writeUInt32LE(0, off + 12);
    if (msgs === 0) dgFirst = seq;
    dgLast = seq;
    lastStart = off;
    off = end;
    msgs++;
  }
  if (msgs > 0) send();
}

export interface ChannelOptions {
  /** Multicast groups to join (a notification channel). */
  groups?: number[];
  /** SO_RCVBUF request in bytes. */
  recvBufferSize?: number;
  /** Unmatched messages (notifications). */
  onMessage?(m: RawMessage): void;
  /** A socket error (ENOBUFS: notifications or replies were dropped). */
  onError?(e: KernelError): void;
  /**
   * A notification channel that must survive overflow: NETLINK_NO_ENOBUFS plus a receive buffer of
   * this many bytes forced past rmem_max (see socket-opts.ts). Overflowing notifications are then
   * dropped silently; the owner must resync after it caused many of them.
   */
  overflowSafeRcvbuf?: number;
}

export class NetlinkChannel {
  private readonly sock: RawNetlinkSocket;
  private seq: number;
  private readonly pending = new Map<number, Pending>();
  private readonly batches: Batch[] = [];
  private queue: Buffer[] = [];
  private queueSeqs: number[] = [];
  private flushScheduled = false;
  private dumpChain: Promise<unknown> = Promise.resolve();
  private closed = false;
  private readonly batchDatagram: number;
  /** Largest datagram writeMany packs (a writer on another socket with the same buffers may use it too). */
  get datagramLimit(): number {
    return this.batchDatagram;
  }

  /** Datagrams sent and messages packed: the bench reports them. */
  readonly stats = { datagrams: 0, messages: 0 };
  /** SO_RCVBUFFORCE took effect (overflowSafeRcvbuf channels). */
  rcvbufForced = false;

  constructor(private readonly opts: ChannelOptions = {}) {
    this.sock = new RawNetlinkSocket(NETLINK_ROUTE, {
      recvBufferSize: opts.recvBufferSize ?? 4 * 1024 * 1024,
      sendBufferSize: 1024 * 1024,
    });
    let sndbuf = 0;
    try {
      sndbuf = this.sock.getSendBufferSize();
    } catch {
      sndbuf = 0;
    }
    // netlink_sendmsg refuses a datagram longer than sk_sndbuf - 32 (EMSGSIZE).
    this.batchDatagram = sndbuf > 0 ? Math.min(WRITE_DATAGRAM_MAX, sndbuf - 1024) : WRITE_DATAGRAM_MAX;
    this.seq = (Math.random() * 0x7fffffff) >>> 0 || 1;
    for (const g of opts.groups ?? []) this.sock.addMembership(g);
    if (opts.overflowSafeRcvbuf !== undefined) {
      try {
        this.rcvbufForced = hardenEventSocket(NETLINK_ROUTE, this.sock.address().port, { rcvbufForce: opts.overflowSafeRcvbuf }).rcvbufForced;
      } catch (e) {
        // Without NETLINK_NO_ENOBUFS an overflow aborts the process (netlink@0.3.0): refuse.
        this.sock.close();
        throw e;
      }
    }
    this.sock.on('message', (buf: Buffer) => this.receive(buf));
    this.sock.on('error', (err: unknown) => this.socketError(err));
    // A request socket must not keep the process alive; a subscription is held by its owner.
    if (!opts.groups?.length) this.sock.unref();
  }

  private nextSeq(): number {
    const s = this.seq;
    this.seq = (this.seq + 1) >>> 0;
    return s;
  }

  /** A write (NEW/DEL/SET): resolves once the kernel applied it, rejects with its errno. */
  write(type: number, flags: number, payload: Buffer, call: string): Promise<void> {
    return this.enqueue('write', type, flags | NLM_F_REQUEST, payload, call).then(() => undefined);
  }

  /** A GET of one object: resolves with the reply messages. */
  get(type: number, payload: Buffer, call: string): Promise<RawMessage[]> {
    return this.enqueue('get', type, NLM_F_REQUEST | NLM_F_ACK, payload, call);
  }

  /**
   * Many writes of one message type, encoded by `encode` straight into datagram buffers: one
   * promise for the batch, resolved when the kernel processed every message, with the items that
   * failed (an empty array: all applied). `encode(b, off, item)` writes the payload at b[off..]
   * within `maxBytes(item)` bytes and returns its 4-aligned end; a throw fails that item alone.
   */
  writeMany<T>(
    type: number,
    flags: number,
    items: readonly T[],
    encode: (b: Buffer, off: number, item: T) => number,
    maxBytes: (item: T) => number,
    call: string,
  ): Promise<BatchFailure[]> {
    const n = items.length;
    if (this.closed) {
      const e = new KernelError('EBADF', osConstants.errno.EBADF, call, 'netlink channel closed');
      return Promise.resolve(Array.from({ length: n }, (_, index) => ({ index, error: e })));
    }
    if (n === 0) return Promise.resolve([]);
    // Queued single requests go first, so that send order stays sequence order.
    if (this.queue.length) this.flush();
    const first = this.seq;
    this.seq = (this.seq + n) >>> 0;
    let resolveBatch!: (f: BatchFailure[]) => void;
    const done = new Promise<BatchFailure[]>((r) => (resolveBatch = r));
    const batch: Batch = { first, count: n, call, open: [], failed: new Set(), failures: [], resolve: resolveBatch };
    encodeBatch(type, flags, items, encode, maxBytes, call, first, this.batchDatagram, (i, e) => batchFail(batch, i, e), (d) => {
      const range = { from: d.from, to: d.to };
      batch.open.push(range);
      this.stats.datagrams++;
      this.stats.messages += d.count;
      this.sock.send(d.buf, {}, (err?: unknown) => {
        if (!err) return;
        // Not sent: its messages failed, and no ACK will come for it.
        const e = kernelErrorFrom(err, call);
        for (let s = range.from; !before(range.to, s); s = (s + 1) >>> 0) batchFail(batch, (s - first) >>> 0, e);
        const i = batch.open.indexOf(range);
        if (i >= 0) batch.open.splice(i, 1);
        this.settleBatches();
      });
    });
    this.batches.push(batch);
    this.sock.ref();
    this.settleBatches();
    return done;
  }

  /** A dump; one at a time per socket (the kernel refuses a second with EBUSY); retried if interrupted. */
  dump(type: number, payload: Buffer, call: string): Promise<RawMessage[]> {
    const run = async (): Promise<RawMessage[]> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.enqueue('dump', type, NLM_F_REQUEST | NLM_F_DUMP, payload, call);
        } catch (e) {
          // NLM_F_DUMP_INTR: the table changed during the dump; the result may be inconsistent.
          if (e instanceof KernelError && e.code === 'EINTR' && attempt < 5) continue;
          throw e;
        }
      }
    };
    const p = this.dumpChain.then(run, run);
    this.dumpChain = p.catch(() => undefined);
    return p;
  }

  private enqueue(kind: Kind, type: number, flags: number, payload: Buffer, call: string): Promise<RawMessage[]> {
    if (this.closed) return Promise.reject(new KernelError('EBADF', osConstants.errno.EBADF, call, 'netlink channel closed'));
    return new Promise<RawMessage[]>((resolve, reject) => {
      if (kind === 'dump') {
        // A dump goes alone: its replies are read in recvmsg context, not while the datagram is
        // processed. Queued requests go first so that send order stays sequence order.
        this.flush();
      }
      const seq = this.nextSeq();
      this.pending.set(seq, { seq, kind, call, parts: [], interrupted: false, sent: false, resolve, reject });
      this.sock.ref();
      const msg = frame(type, flags, seq, payload);
      if (kind === 'dump') {
        this.sendDatagram([msg], [seq]);
        return;
      }
      this.queue.push(msg);
      this.queueSeqs.push(seq);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.flushScheduled = false;
    const msgs = this.queue;
    const seqs = this.queueSeqs;
    this.queue = [];
    this.queueSeqs = [];
    let start = 0;
    while (start < msgs.length) {
      let bytes = 0;
      let end = start;
      while (end < msgs.length && (end === start || bytes + msgs[end]!.length <= this.batchDatagram)) bytes += msgs[end++]!.length;
      const chunk = msgs.slice(start, end);
      // The last message of the datagram carries NLM_F_ACK (see the header comment).
      const last = chunk[chunk.length - 1]!;
      last.writeUInt16LE(last.readUInt16LE(6) | NLM_F_ACK, 6);
      this.sendDatagram(chunk, seqs.slice(start, end));
      start = end;
    }
  }

  private sendDatagram(chunk: Buffer[], seqs: number[]): void {
    for (const s of seqs) {
      const p = this.pending.get(s);
      if (p) p.sent = true;
    }
    this.stats.datagrams++;
    this.stats.messages += chunk.length;
    const data = chunk.length === 1 ? chunk[0]! : Buffer.concat(chunk);
    this.sock.send(data, {}, (err?: unknown) => {
      if (!err) return;
      // Earlier datagrams carry their own ACKs; this one's messages failed as a whole.
      for (const s of seqs) this.fail(s, kernelErrorFrom(err, this.pending.get(s)?.call ?? 'send'));
    });
  }

  private fail(seq: number, e: KernelError): void {
    const p = this.pending.get(seq);
    if (!p) return;
    this.pending.delete(seq);
    p.reject(e);
    this.maybeUnref();
  }

  private done(p: Pending): void {
    this.pending.delete(p.seq);
    p.resolve(p.parts);
  }

  private maybeUnref(): void {
    if (this.pending.size === 0 && this.batches.length === 0 && !this.opts.groups?.length && !this.closed) this.sock.unref();
  }

  /** Every message up to and including `seq` has been processed: settle sent writes and batches. */
  private progress(seq: number): void {
    for (const q of this.pending.values()) {
      if (!before(q.seq, seq)) break;
      if (q.kind === 'write' && q.sent) this.done(q);
    }
    for (const b of this.batches) {
      while (b.open.length && !before(seq, b.open[0]!.to)) b.open.shift();
    }
    this.settleBatches();
  }

  /** Resolve the batches none of whose datagrams awaits an ACK. */
  private settleBatches(): void {
    for (let i = 0; i < this.batches.length; ) {
      const b = this.batches[i]!;
      if (b.open.length) {
        i++;
        continue;
      }
      this.batches.splice(i, 1);
      b.resolve(b.failures);
    }
    this.maybeUnref();
  }

  private batchOf(seq: number): Batch | undefined {
    for (const b of this.batches) if (!before(seq, b.first) && before(seq, (b.first + b.count) >>> 0)) return b;
    return undefined;
  }

  private receive(buf: Buffer): void {
    for (const m of splitMessages(buf)) {
      if (m.type === NLMSG_ERROR && m.seq !== 0) {
        const errno = m.payload.length >= 4 ? -m.payload.readInt32LE(0) : osConstants.errno.EIO;
        const p = this.pending.get(m.seq);
        if (p) {
          if (errno !== 0) this.fail(m.seq, new KernelError(errnoName(errno), errno, p.call));
          else if (p.kind !== 'dump') this.done(p);
        } else if (errno !== 0) {
          const b = this.batchOf(m.seq);
          if (b) {
            batchFail(b, (m.seq - b.first) >>> 0, new KernelError(errnoName(errno), errno, b.call));
          }
        }
        // An ACK, or the error of a message that asked for one: everything before it is settled.
        this.progress(m.seq);
        continue;
      }
      const p = m.seq !== 0 ? this.pending.get(m.seq) : undefined;
      if (!p) {
        if (m.type !== NLMSG_ERROR && m.type !== NLMSG_DONE) this.opts.onMessage?.(m);
        continue;
      }
      if (m.flags & NLM_F_DUMP_INTR) p.interrupted = true;
      if (m.type === NLMSG_DONE) {
        if (p.interrupted) this.fail(m.seq, new KernelError('EINTR', osConstants.errno.EINTR, p.call, 'dump interrupted'));
        else this.done(p);
      } else if (m.type === NLMSG_OVERRUN) {
        this.fail(m.seq, new KernelError('EOVERFLOW', osConstants.errno.EOVERFLOW, p.call));
      } else {
        p.parts.push({ ...m, payload: Buffer.from(m.payload) });
      }
    }
    this.maybeUnref();
  }

  private socketError(err: unknown): void {
    const e = kernelErrorFrom(err, 'recvmsg');
    // ENOBUFS on a request socket means replies may be lost: fail everything in flight so callers
    // retry (the reconciler does, it is level-triggered) instead of waiting forever.
    for (const seq of [...this.pending.keys()]) this.fail(seq, e);
    this.failBatches(e);
    this.opts.onError?.(e);
  }

  /** Every message of an unsettled batch whose datagram was not acknowledged gets `e`. */
  private failBatches(e: KernelError): void {
    for (const b of this.batches.splice(0)) {
      for (const r of b.open) {
        for (let s = r.from; !before(r.to, s); s = (s + 1) >>> 0) batchFail(b, (s - b.first) >>> 0, e);
      }
      b.open = [];
      b.resolve(b.failures);
    }
    this.maybeUnref();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const e = new KernelError('EBADF', osConstants.errno.EBADF, 'close', 'netlink channel closed');
    for (const seq of [...this.pending.keys()]) this.fail(seq, e);
    this.failBatches(e);
    this.sock.close();
  }
}
