// Batched netlink writes from a worker thread: the main thread encodes each batch into datagrams
// (channel.ts encodeBatch, the same bytes the in-thread channel sends) and hands them to
// route-writer-worker.ts, whose socket send makes the kernel apply them. A million routes cost
// the kernel seconds inside sendmsg; on the main thread that time would be taken from BGP
// (keepalives, UPDATE parsing), here it runs beside it. Same contract as NetlinkChannel.writeMany.
import { Worker } from 'node:worker_threads';
import { encodeBatch, kernelErrorFrom } from './channel.js';
import { errnoName } from '../lib/errno.js';
import { KernelError, type BatchFailure } from './types.js';
import type { WriterReply, WriterRequest } from './route-writer-worker.js';

interface Pending {
  first: number;
  call: string;
  open: number;
  failed: Set<number>;
  failures: BatchFailure[];
  resolve(f: BatchFailure[]): void;
}

/** Mark every message of seq range [from, to] of batch b failed with e (those not failed already). */
function failRange(b: Pending, from: number, to: number, e: KernelError): void {
  for (let s = from; ((to - s) | 0) >= 0; s = (s + 1) >>> 0) {
    const index = (s - b.first) >>> 0;
    if (b.failed.has(index)) continue;
    b.failed.add(index);
    b.failures.push({ index, error: e });
  }
}

export class RouteWriter {
  private readonly worker: Worker;
  private seq = (Math.random() * 0x7fffffff) >>> 0 || 1;
  private nextId = 1;
  /** Datagrams handed to the thread and not settled yet, by id. */
  private readonly datagrams = new Map<number, { b: Pending; from: number; to: number }>();
  private dead: KernelError | undefined;
  readonly stats = { datagrams: 0, messages: 0 };

  constructor(private readonly limit: number) {
    this.worker = new Worker(new URL('./route-writer-worker.js', import.meta.url));
    this.worker.unref();
    this.worker.on('message', (r: WriterReply) => this.settle(r));
    this.worker.on('error', (err: unknown) => this.die(kernelErrorFrom(err, 'route writer')));
    this.worker.on('exit', () => this.die(new KernelError('EIO', 5, 'route writer', 'route writer thread exited')));
  }

  /** The writer can take batches (its thread has not failed). */
  get usable(): boolean {
    return this.dead === undefined;
  }

  writeMany<T>(type: number, flags: number, items: readonly T[], encode: (b: Buffer, off: number, item: T) => number, maxBytes: (item: T) => number, call: string): Promise<BatchFailure[]> {
    const n = items.length;
    if (this.dead) {
      const e = this.dead;
      return Promise.resolve(Array.from({ length: n }, (_, index) => ({ index, error: e })));
    }
    if (n === 0) return Promise.resolve([]);
    const first = this.seq;
    this.seq = (this.seq + n) >>> 0;
    return new Promise<BatchFailure[]>((resolve) => {
      const b: Pending = { first, call, open: 0, failed: new Set(), failures: [], resolve };
      const fail = (index: number, error: KernelError): void => {
        if (b.failed.has(index)) return;
        b.failed.add(index);
        b.failures.push({ index, error });
      };
      encodeBatch(type, flags, items, encode, maxBytes, call, first, this.limit, fail, (d) => {
        const id = this.nextId++;
        b.open++;
        this.datagrams.set(id, { b, from: d.from, to: d.to });
        this.stats.datagrams++;
        this.stats.messages += d.count;
        // Transferred, not copied, when the datagram owns its buffer (encodeBatch allocates one each).
        const own = d.buf.byteOffset === 0 ? d.buf : Buffer.from(d.buf);
        const msg: WriterRequest = { id, bytes: own.buffer as ArrayBuffer, length: own.length, from: d.from, to: d.to };
        this.worker.postMessage(msg, [msg.bytes]);
      });
      if (b.open === 0) resolve(b.failures);
      else this.worker.ref();
    });
  }

  private settle(r: WriterReply): void {
    const d = this.datagrams.get(r.id);
    if (!d) return;
    this.datagrams.delete(r.id);
    const b = d.b;
    for (const [seq, errno] of r.errors) failRange(b, seq, seq, new KernelError(errnoName(errno), errno, b.call));
    // Not sent: none of its messages was applied.
    if (r.sendError) failRange(b, d.from, d.to, kernelErrorFrom(r.sendError, b.call));
    if (--b.open === 0) b.resolve(b.failures);
    if (this.datagrams.size === 0) this.worker.unref();
  }

  /** The thread failed: every open datagram failed with it; later batches fail at once (the port falls back). */
  private die(e: KernelError): void {
    if (this.dead) return;
    this.dead = e;
    const open = [...this.datagrams.values()];
    this.datagrams.clear();
    for (const d of open) {
      failRange(d.b, d.from, d.to, e);
      if (--d.b.open === 0) d.b.resolve(d.b.failures);
    }
  }

  close(): void {
    this.die(new KernelError('EBADF', 9, 'route writer', 'route writer closed'));
    void this.worker.terminate();
  }
}
