// A request/response channel over one NETLINK_ROUTE socket of the npm `netlink` package
// (RawNetlinkSocket): pipelined writes packed many to a datagram, GET requests, serialized dumps,
// and errno-preserving errors. Kernel interface: netlink(7) — NLM_F_ACK, NLMSG_ERROR, NLMSG_DONE.
//
// Batching: requests issued in the same tick are packed into datagrams of up to ~32 KiB. Only the
// last message of a datagram asks for an ACK; the kernel processes a datagram's messages in order
// and always reports an error (NLMSG_ERROR with errno ≠ 0) even without NLM_F_ACK, so the ACK of the
// last message proves every earlier message of the socket succeeded unless its own error arrived
// first. That replaces one ACK per route (what `ip -batch` waits for) by one per datagram.
import { constants as osConstants } from 'node:os';
import { RawNetlinkSocket } from 'netlink';
import { frame, splitMessages, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NLMSG_DONE, NLMSG_ERROR, NLMSG_OVERRUN, type RawMessage } from './codec.js';
import { KernelError } from './types.js';

const NETLINK_ROUTE = 0;
const MAX_DATAGRAM = 32 * 1024;

const ERRNO_NAMES = new Map<number, string>(Object.entries(osConstants.errno).map(([k, v]) => [v, k]));

export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `E${errno}`;
}

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
    const errno = /^\d+$/.test(name) ? Number(name) : (osConstants.errno as Record<string, number>)[name] ?? 0;
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

export interface ChannelOptions {
  /** Multicast groups to join (a notification channel). */
  groups?: number[];
  /** SO_RCVBUF request in bytes. */
  recvBufferSize?: number;
  /** Unmatched messages (notifications). */
  onMessage?(m: RawMessage): void;
  /** A socket error (ENOBUFS: notifications or replies were dropped). */
  onError?(e: KernelError): void;
}

export class NetlinkChannel {
  private readonly sock: RawNetlinkSocket;
  private seq: number;
  private readonly pending = new Map<number, Pending>();
  private queue: Buffer[] = [];
  private queueSeqs: number[] = [];
  private flushScheduled = false;
  private dumpChain: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** Datagrams sent and messages packed: the bench reports them. */
  readonly stats = { datagrams: 0, messages: 0 };

  constructor(private readonly opts: ChannelOptions = {}) {
    this.sock = new RawNetlinkSocket(NETLINK_ROUTE, {
      recvBufferSize: opts.recvBufferSize ?? 4 * 1024 * 1024,
      sendBufferSize: 1024 * 1024,
    });
    this.seq = (Math.random() * 0x7fffffff) >>> 0 || 1;
    for (const g of opts.groups ?? []) this.sock.addMembership(g);
    this.sock.on('message', (buf: Buffer) => this.receive(buf));
    this.sock.on('error', (err: unknown) => this.socketError(err));
    // A request socket must not keep the process alive; a subscription is held by its owner.
    if (!opts.groups?.length) this.sock.unref();
  }

  private nextSeq(): number {
    const s = this.seq;
    this.seq = (this.seq % 0xfffffffe) + 1;
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
    const seq = this.nextSeq();
    return new Promise<RawMessage[]>((resolve, reject) => {
      this.pending.set(seq, { seq, kind, call, parts: [], interrupted: false, sent: false, resolve, reject });
      this.sock.ref();
      const msg = frame(type, flags, seq, payload);
      if (kind === 'dump') {
        // A dump goes alone: its replies are read in recvmsg context, not while the datagram is processed.
        this.flush();
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
      while (end < msgs.length && (end === start || bytes + msgs[end]!.length <= MAX_DATAGRAM)) bytes += msgs[end++]!.length;
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
    if (this.pending.size === 0 && !this.opts.groups?.length && !this.closed) this.sock.unref();
  }

  private receive(buf: Buffer): void {
    for (const m of splitMessages(buf)) {
      const p = m.seq !== 0 ? this.pending.get(m.seq) : undefined;
      if (!p) {
        if (m.type !== NLMSG_ERROR && m.type !== NLMSG_DONE) this.opts.onMessage?.(m);
        continue;
      }
      if (m.flags & NLM_F_DUMP_INTR) p.interrupted = true;
      if (m.type === NLMSG_ERROR) {
        const errno = m.payload.length >= 4 ? -m.payload.readInt32LE(0) : osConstants.errno.EIO;
        if (errno !== 0) {
          this.fail(m.seq, new KernelError(errnoName(errno), errno, p.call));
          continue;
        }
        // An ACK: this message and every earlier write on the socket succeeded.
        for (const q of [...this.pending.values()]) {
          if (q === p) break;
          if (q.kind === 'write' && q.sent) this.done(q);
        }
        this.done(p);
      } else if (m.type === NLMSG_DONE) {
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
    this.opts.onError?.(e);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const seq of [...this.pending.keys()]) this.fail(seq, new KernelError('EBADF', osConstants.errno.EBADF, 'close', 'netlink channel closed'));
    this.sock.close();
  }
}
