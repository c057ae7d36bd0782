// The BFD subsystem on the main thread: turns bgp.peers[].bfd into session specs, runs the worker
// thread (worker.ts) that owns the sockets and timers, relays its state changes to listeners (the
// BGP hook in main.ts: RFC 5882 §3.2, a session going Down tears its BGP session down at once),
// and publishes nrd_bfd_session_state / nrd_bfd_state_changes_total and GET /v1/bfd
// (daemon/api/bfd-routes.ts).
//
// Only a transition from Up to Down is reported as a failure: RFC 5882 §3.2 says a session that
// goes AdminDown on the remote side (diag 7, or the peer's AdminDown state) does not mean the path
// failed, so nrd does not reset BGP for it, and nrd itself stops with AdminDown so that its peers
// keep their BGP sessions (and graceful restart keeps the routes) across a restart.
import { Worker } from 'node:worker_threads';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ConfigChange, NrdConfig } from '../config/index.js';
import type { Logger } from '../lib/log.js';
import type { Subsystem, SubsystemContext } from '../lib/subsystem.js';
import type { ReadinessReporter } from '../lib/health.js';
import { NrdError } from '../lib/errors.js';
import { STATE, diagName, type BfdState } from './packet.js';
import type { BfdSessionSpec, BfdSessionView, FromWorker, ToWorker } from './types.js';
import type { WorkerOptions } from './worker.js';

export interface BfdStateChange {
  peer: string;
  from: BfdState;
  to: BfdState;
  diag: number;
  /** The peer's state when this change happened: AdminDown means the peer took the session down on purpose. */
  remoteState: BfdState;
}

/** RFC 5882 §3.2: Up → Down is a path failure unless the peer signalled AdminDown. */
export function isPathFailure(c: BfdStateChange): boolean {
  return c.from === 'Up' && c.to === 'Down' && c.remoteState !== 'AdminDown';
}

/** The queries the control API maps to HTTP. */
export interface BfdQueries {
  /** Throws NrdError unavailable/bfd_not_running when no session is configured. */
  sessions(): Promise<{ sessions: BfdSessionView[] }>;
}

/** Session specs of the peers with bfd.enabled (multihop when the peer is more than one hop away). */
export function sessionSpecs(c: NrdConfig): BfdSessionSpec[] {
  return c.bgp.peers
    .filter((p) => p.bfd.enabled)
    .map((p) => {
      const s: BfdSessionSpec = { peer: p.address, multihop: p.multihop > 1, minTx: p.bfd.minTx, minRx: p.bfd.minRx, multiplier: p.bfd.multiplier };
      if (p.bfd.auth.type !== 'none') s.auth = { type: p.bfd.auth.type, keyId: p.bfd.auth.keyId, key: p.bfd.auth.key };
      return s;
    });
}

export interface BfdSubsystemDeps {
  metrics: Registry;
  /** Ports and listen address of the worker's sockets (tests). */
  worker?: WorkerOptions;
}

export class BfdSubsystem implements Subsystem, BfdQueries {
  readonly name = 'bfd';
  private worker: Worker | null = null;
  private log: Logger | undefined;
  private ready: ReadinessReporter | undefined;
  private specs: BfdSessionSpec[] = [];
  private readonly states = new Map<string, BfdState>();
  private readonly listeners = new Set<(c: BfdStateChange) => void>();
  private readonly pending = new Map<number, (s: BfdSessionView[]) => void>();
  private nextId = 1;
  private closed: (() => void) | null = null;
  private stopping = false;
  private readonly changes: Counter<'peer' | 'to'>;

  constructor(private readonly deps: BfdSubsystemDeps) {
    const self = this;
    new Gauge({
      name: 'nrd_bfd_session_state',
      help: 'BFD session state per peer (RFC 5880 numbering): 0 AdminDown, 1 Down, 2 Init, 3 Up.',
      labelNames: ['peer'],
      registers: [deps.metrics],
      collect() {
        this.reset();
        for (const [peer, st] of self.states) this.set({ peer }, STATE[st]);
      },
    });
    this.changes = new Counter({ name: 'nrd_bfd_state_changes_total', help: 'BFD session state changes, per peer and new state.', labelNames: ['peer', 'to'], registers: [deps.metrics] });
  }

  /** Called on every state change; `from: 'Up', to: 'Down'` is a path failure. */
  onStateChange(fn: (c: BfdStateChange) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  start(ctx: SubsystemContext): void {
    this.log = ctx.log;
    this.ready = ctx.ready;
    this.apply(sessionSpecs(ctx.config));
  }

  reload(changes: readonly ConfigChange[], next: NrdConfig): void {
    if (!changes.some((c) => c.key.startsWith('bgp.peers'))) return;
    this.apply(sessionSpecs(next));
  }

  private apply(specs: BfdSessionSpec[]): void {
    this.specs = specs;
    const peers = new Set(specs.map((s) => s.peer));
    for (const p of [...this.states.keys()]) if (!peers.has(p)) this.states.delete(p);
    for (const s of specs) if (!this.states.has(s.peer)) this.states.set(s.peer, 'Down');
    if (specs.length > 0 && !this.worker) this.spawn();
    this.post({ type: 'configure', sessions: specs });
    this.report();
  }

  private spawn(): void {
    const w = new Worker(new URL('./worker.js', import.meta.url), { workerData: { kind: 'nrd-bfd', options: this.deps.worker ?? {} } });
    this.worker = w;
    w.on('message', (m: FromWorker) => this.onMessage(m));
    w.on('error', (err) => this.log?.error({ err }, 'BFD worker failed'));
    w.on('exit', (code) => {
      if (this.worker !== w) return;
      this.worker = null;
      if (this.stopping) return;
      // A dead worker means no BFD at all: start another (sessions restart from Down).
      this.log?.error({ code }, 'BFD worker exited; starting a new one');
      setTimeout(() => {
        if (!this.stopping && !this.worker && this.specs.length > 0) {
          this.spawn();
          this.post({ type: 'configure', sessions: this.specs });
        }
      }, 1000).unref();
    });
  }

  private post(m: ToWorker): void {
    this.worker?.postMessage(m);
  }

  private onMessage(m: FromWorker): void {
    switch (m.type) {
      case 'ready':
        this.log?.info({ sockets: m.sockets }, 'BFD sockets open');
        break;
      case 'state': {
        this.states.set(m.peer, m.to);
        this.changes.inc({ peer: m.peer, to: m.to });
        const fields = { peer: m.peer, from: m.from, to: m.to, diag: diagName(m.diag) };
        if (m.from === 'Up') this.log?.warn(fields, 'BFD session left Up');
        else this.log?.info(fields, 'BFD session state change');
        for (const fn of this.listeners) fn({ peer: m.peer, from: m.from, to: m.to, diag: m.diag, remoteState: m.remoteState });
        this.report();
        break;
      }
      case 'snapshot':
        this.pending.get(m.id)?.(m.sessions);
        this.pending.delete(m.id);
        break;
      case 'error':
        this.log?.warn({ peer: m.peer ?? undefined, error: m.message }, 'BFD error');
        break;
      case 'closed':
        this.closed?.();
        break;
    }
  }

  private report(): void {
    const notUp = [...this.states].filter(([, s]) => s !== 'Up').map(([peer, state]) => ({ peer, state }));
    // BFD never holds readiness back: BGP's readiness already names a peer that is not Established.
    this.ready?.({ ready: true, detail: { sessions: this.states.size, notUp } });
  }

  async sessions(): Promise<{ sessions: BfdSessionView[] }> {
    const w = this.worker;
    if (!w) throw new NrdError('unavailable', 'bfd_not_running', 'no BFD session is configured (bgp.peers[].bfd.enabled)');
    const id = this.nextId++;
    const views = await new Promise<BfdSessionView[]>((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new NrdError('unavailable', 'bfd_not_answering', 'the BFD worker did not answer within 2 s'));
      }, 2000);
      this.pending.set(id, (s) => {
        clearTimeout(t);
        resolve(s);
      });
      w.postMessage({ type: 'snapshot', id } satisfies ToWorker);
    });
    return { sessions: views };
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const w = this.worker;
    if (!w) return;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 1000);
      this.closed = () => {
        clearTimeout(t);
        resolve();
      };
      w.postMessage({ type: 'shutdown' } satisfies ToWorker);
    });
    this.worker = null;
    await w.terminate();
  }

  status(): unknown {
    return { running: this.worker !== null, sessions: Object.fromEntries(this.states) };
  }
}
