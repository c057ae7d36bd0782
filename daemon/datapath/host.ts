// Where the datapath's libbpf work runs, behind one asynchronous interface: in a worker thread
// (the daemon's default: loading and verifying objects must not delay BGP keepalives on the main
// event loop) or inline on the main thread (the old way, kept for the keepalive-gap benchmark and
// for callers that have nothing else to serve).
import { Worker } from 'node:worker_threads';
import { Datapath, type DatapathLog, type DatapathOptions, type DatapathStats, type DatapathStatus } from './datapath.js';
import { type DatapathOp, type DatapathOps, type DatapathRequest, type WorkerMessage, fromWireError } from './protocol.js';
import { ServiceMapWriter } from './services.js';
import { type SockReply, type SockRequest, serveSock } from './sock.js';
import { PolicyMapWriter } from './policy.js';
import { EventsWorker } from './events.js';

export type DatapathWhere = 'worker' | 'main-thread';

export interface DatapathHost {
  readonly where: DatapathWhere;
  start(options: DatapathOptions): Promise<DatapathStatus>;
  reconcile(options?: DatapathOptions): Promise<DatapathStatus>;
  status(): Promise<DatapathStatus>;
  stats(): Promise<DatapathStats>;
  /** Closes the objects; with detach also removes links and pins (see Datapath.stop). */
  stop(opts?: { detach?: boolean }): Promise<void>;
  /** Deletes expired masquerade flows from the NAT map. */
  natGc(): Promise<DatapathOps['natGc']['result']>;
  /** Service maps and the nrd_ct connection table (services.ts), over the pinned maps. */
  lb<K extends LbOp>(op: K, args: DatapathOps[K]['args']): Promise<DatapathOps[K]['result']>;
  /** Identity policy writes and the flow-event ring buffer (policy.ts, events.ts). */
  policy<K extends PolicyOp>(op: K, args: DatapathOps[K]['args']): Promise<DatapathOps[K]['result']>;
  /** Where flow-event batches go (one listener; the latest set wins). */
  onEvents(cb: (batch: Uint8Array) => void): void;
  /** Socket LB: attach nrd_sock to a cgroup, or detach it (sock.ts). */
  sock(r: SockRequest): Promise<SockReply>;
  /** Releases the host (ends the worker). Pins and links stay. */
  close(): Promise<void>;
}

export type LbOp = 'servicesApply' | 'ctList' | 'ctFlush' | 'ctGc';
export type PolicyOp = 'policyApply' | 'eventsStart' | 'eventsStop' | 'eventStats';

/** Serves the policy and event requests on whichever thread holds libbpf. */
export class PolicyEventsServer {
  private readonly writers = new Map<string, PolicyMapWriter>();
  readonly events: EventsWorker;

  constructor(post: (batch: Uint8Array) => void) {
    this.events = new EventsWorker(post);
  }

  serve<K extends PolicyOp>(op: K, args: DatapathOps[K]['args']): DatapathOps[K]['result'] {
    type R = DatapathOps[K]['result'];
    switch (op) {
      case 'policyApply': {
        const a = args as DatapathOps['policyApply']['args'];
        let w = this.writers.get(a.pinPath);
        if (!w) this.writers.set(a.pinPath, (w = new PolicyMapWriter(a.pinPath)));
        return w.apply(a) as R;
      }
      case 'eventsStart': return this.events.start((args as DatapathOps['eventsStart']['args']).pinPath) as R;
      case 'eventStats': return this.events.stats((args as DatapathOps['eventStats']['args']).pinPath) as R;
      default:
        this.events.stop();
        return null as R;
    }
  }

  close(): void {
    this.events.stop();
    for (const w of this.writers.values()) w.close();
    this.writers.clear();
  }
}

export function createDatapathHost(where: DatapathWhere, log?: DatapathLog): DatapathHost {
  return where === 'worker' ? new WorkerDatapathHost(log) : new InlineDatapathHost(log);
}

/** The old way: libbpf on the calling (main) thread; every call blocks the event loop. */
export class InlineDatapathHost implements DatapathHost {
  readonly where = 'main-thread';
  private readonly dp: Datapath;

  constructor(log?: DatapathLog) {
    this.dp = new Datapath(log);
  }

  async start(options: DatapathOptions): Promise<DatapathStatus> {
    return this.dp.start(options);
  }
  async reconcile(options?: DatapathOptions): Promise<DatapathStatus> {
    return this.dp.reconcile(options);
  }
  async status(): Promise<DatapathStatus> {
    return this.dp.status();
  }
  async stats(): Promise<DatapathStats> {
    return this.dp.stats();
  }
  async stop(opts: { detach?: boolean } = {}): Promise<void> {
    this.dp.stop(opts);
  }
  async natGc(): Promise<DatapathOps['natGc']['result']> {
    return this.dp.natGc();
  }
  async sock(r: SockRequest): Promise<SockReply> {
    return serveSock(r);
  }
  private readonly writers = new Map<string, ServiceMapWriter>();
  async lb<K extends LbOp>(op: K, args: DatapathOps[K]['args']): Promise<DatapathOps[K]['result']> {
    const a = args as DatapathOps[LbOp]['args'];
    let w = this.writers.get(a.pinPath);
    if (!w) this.writers.set(a.pinPath, (w = new ServiceMapWriter(a.pinPath)));
    const now = process.hrtime.bigint();
    const r = op === 'servicesApply' ? w.apply((a as DatapathOps['servicesApply']['args']).ops)
      : op === 'ctList' ? w.ctList(now)
        : op === 'ctFlush' ? w.ctFlush((a as DatapathOps['ctFlush']['args']).serviceId)
          : w.ctGc(now);
    return r as DatapathOps[K]['result'];
  }
  private eventsCb: ((batch: Uint8Array) => void) | undefined;
  private readonly pol = new PolicyEventsServer((b) => this.eventsCb?.(b));
  async policy<K extends PolicyOp>(op: K, args: DatapathOps[K]['args']): Promise<DatapathOps[K]['result']> {
    return this.pol.serve(op, args);
  }
  onEvents(cb: (batch: Uint8Array) => void): void {
    this.eventsCb = cb;
  }
  async close(): Promise<void> {
    for (const w of this.writers.values()) w.close();
    this.pol.close();
  }
}

interface Pending {
  resolve: (v: DatapathOps[DatapathOp]['result']) => void;
  reject: (e: Error) => void;
}

/**
 * libbpf in a worker thread (datapath/worker.js). Requests are answered in order; a worker that
 * dies fails the pending requests with the reason, and the next request starts a new worker
 * (whose Datapath reuses the pins: the same path as a daemon restart).
 */
export class WorkerDatapathHost implements DatapathHost {
  readonly where = 'worker';
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private eventsCb: ((batch: Uint8Array) => void) | undefined;

  constructor(private readonly log?: DatapathLog) {}

  private spawn(): Worker {
    const w = new Worker(new URL('./worker.js', import.meta.url));
    w.on('message', (m: WorkerMessage) => this.onMessage(m));
    w.on('error', (err) => this.fail(w, err));
    w.on('exit', (code) => this.fail(w, new Error(`datapath worker exited (code ${code})`)));
    w.unref();
    return w;
  }

  private onMessage(m: WorkerMessage): void {
    if (m.type === 'log') {
      this.log?.[m.level](m.obj, m.msg);
      return;
    }
    if (m.type === 'events') {
      this.eventsCb?.(m.batch);
      return;
    }
    const p = this.pending.get(m.id);
    if (!p) return;
    this.pending.delete(m.id);
    if (this.pending.size === 0) this.worker?.unref();
    if (m.ok) p.resolve(m.result);
    else p.reject(fromWireError(m.error));
  }

  private fail(w: Worker, err: Error): void {
    if (this.worker !== w) return;
    this.worker = undefined;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }

  private call<K extends DatapathOp>(op: K, args: DatapathOps[K]['args']): Promise<DatapathOps[K]['result']> {
    this.worker ??= this.spawn();
    const id = this.nextId++;
    // Referenced while a reply is due, so a caller awaiting it keeps the process alive.
    this.worker.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as Pending['resolve'], reject });
      this.worker!.postMessage({ id, op, args } as DatapathRequest);
    });
  }

  start(options: DatapathOptions): Promise<DatapathStatus> {
    return this.call('start', options);
  }
  reconcile(options?: DatapathOptions): Promise<DatapathStatus> {
    return this.call('reconcile', options ?? null);
  }
  status(): Promise<DatapathStatus> {
    return this.call('status', null);
  }
  stats(): Promise<DatapathStats> {
    return this.call('stats', null);
  }
  async stop(opts: { detach?: boolean } = {}): Promise<void> {
    await this.call('stop', opts);
  }
  natGc(): Promise<DatapathOps['natGc']['result']> {
    return this.call('natGc', null);
  }
  lb<K extends LbOp>(op: K, args: DatapathOps[K]['args']): Promise<DatapathOps[K]['result']> {
    return this.call(op, args);
  }
  sock(r: SockRequest): Promise<SockReply> {
    return this.call('sock', r);
  }
  policy<K extends PolicyOp>(op: K, args: DatapathOps[K]['args']): Promise<DatapathOps[K]['result']> {
    return this.call(op, args);
  }
  onEvents(cb: (batch: Uint8Array) => void): void {
    this.eventsCb = cb;
  }
  async close(): Promise<void> {
    const w = this.worker;
    if (!w) return;
    this.fail(w, new Error('datapath worker closed'));
    await w.terminate();
  }
}
