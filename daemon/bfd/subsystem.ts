// The BFD subsystem on the main thread: turns bgp.peers[].bfd, bgp.nodeMeshBfd and routing.bfd
// into session specs (specs.ts; the mesh and direct nodes come from main.ts), runs the worker
// thread (worker.ts) that owns the sockets and timers, relays its state changes to listeners
// (main.ts: RFC 5882 §3.2, a peer or mesh session going Down tears its BGP session down at once; a
// node session going Down makes the direct path to that node unusable), and publishes
// nrd_bfd_session_state / nrd_bfd_state_changes_total and GET /v1/bfd (daemon/api/bfd-routes.ts).
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
import type { BfdPurpose, BfdSessionSpec, BfdSessionView, FromWorker, ToWorker } from './types.js';
import { NO_TARGETS, sessionKey, sessionSpecs, type BfdNodeTarget, type BfdTargets } from './specs.js';
import type { WorkerOptions } from './worker.js';

export interface BfdStateChange {
  peer: string;
  multihop: boolean;
  /** What the session is for (peer, mesh: reset BGP; node: the direct path's liveness). */
  purposes: BfdPurpose[];
  node?: string;
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

export { sessionSpecs };

const purposeLabel = (s: BfdSessionSpec): string => s.purposes.join(',');

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
  private config: NrdConfig | undefined;
  private targets: BfdTargets = NO_TARGETS;
  /** State per session key (sessionKey), with the spec it was reported for. */
  private readonly states = new Map<string, { spec: BfdSessionSpec; state: BfdState }>();
  private readonly listeners = new Set<(c: BfdStateChange) => void>();
  private readonly pending = new Map<number, (s: BfdSessionView[]) => void>();
  private nextId = 1;
  private closed: (() => void) | null = null;
  private stopping = false;
  /** The worker thread's scheduling as it reported it (status). */
  private sched: string | null = null;
  private readonly changes: Counter<'peer' | 'purpose' | 'to'>;

  constructor(private readonly deps: BfdSubsystemDeps) {
    const self = this;
    new Gauge({
      name: 'nrd_bfd_session_state',
      help: 'BFD session state per peer (RFC 5880 numbering): 0 AdminDown, 1 Down, 2 Init, 3 Up.',
      labelNames: ['peer', 'purpose'],
      registers: [deps.metrics],
      collect() {
        this.reset();
        for (const { spec, state } of self.states.values()) this.set({ peer: spec.peer, purpose: purposeLabel(spec) }, STATE[state]);
      },
    });
    this.changes = new Counter({
      name: 'nrd_bfd_state_changes_total',
      help: 'BFD session state changes, per peer, purpose (peer, mesh, node; comma-separated when a session serves several) and new state.',
      labelNames: ['peer', 'purpose', 'to'],
      registers: [deps.metrics],
    });
  }

  /** Called on every state change; `from: 'Up', to: 'Down'` is a path failure. */
  onStateChange(fn: (c: BfdStateChange) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  start(ctx: SubsystemContext): void {
    this.log = ctx.log;
    this.ready = ctx.ready;
    this.config = ctx.config;
    this.apply(sessionSpecs(ctx.config, this.targets));
  }

  reload(changes: readonly ConfigChange[], next: NrdConfig): void {
    this.config = next;
    if (!changes.some((c) => /^(bgp\.(peers|nodeMesh)|routing\.(bfd|mode)|node\.address)/.test(c.key))) return;
    this.apply(sessionSpecs(next, this.targets));
  }

  /** The node-mesh peers (every other node in etcd): multihop sessions with bgp.nodeMeshBfd. */
  setMeshNodes(nodes: readonly BfdNodeTarget[]): void {
    this.setTargets({ ...this.targets, mesh: [...nodes] });
  }

  /** The nodes a direct path reaches (routing): single-hop sessions with routing.bfd. */
  setDirectNodes(nodes: readonly BfdNodeTarget[]): void {
    this.setTargets({ ...this.targets, direct: [...nodes] });
  }

  private setTargets(t: BfdTargets): void {
    this.targets = t;
    if (!this.config) return;
    const next = sessionSpecs(this.config, t);
    if (JSON.stringify(next) !== JSON.stringify(this.specs)) this.apply(next);
  }

  private apply(specs: BfdSessionSpec[]): void {
    this.specs = specs;
    const keys = new Map(specs.map((s) => [sessionKey(s.peer, s.multihop), s]));
    for (const k of [...this.states.keys()]) if (!keys.has(k)) this.states.delete(k);
    for (const [k, s] of keys) this.states.set(k, { spec: s, state: this.states.get(k)?.state ?? 'Down' });
    if (specs.length === 0 && !this.worker) {
      this.report();
      return;
    }
    if (!this.worker) this.spawn();
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
        this.sched = m.sched;
        this.log?.info({ sockets: m.sockets, sched: m.sched }, 'BFD sockets open');
        break;
      case 'state': {
        const entry = this.states.get(sessionKey(m.peer, m.multihop));
        if (!entry) break; // removed meanwhile
        entry.state = m.to;
        const spec = entry.spec;
        this.changes.inc({ peer: m.peer, purpose: purposeLabel(spec), to: m.to });
        const fields = { peer: m.peer, multihop: m.multihop, purposes: spec.purposes, node: spec.node, from: m.from, to: m.to, diag: diagName(m.diag) };
        if (m.from === 'Up') this.log?.warn(fields, 'BFD session left Up');
        else this.log?.info(fields, 'BFD session state change');
        const change: BfdStateChange = { peer: m.peer, multihop: m.multihop, purposes: [...spec.purposes], from: m.from, to: m.to, diag: m.diag, remoteState: m.remoteState };
        if (spec.node !== undefined) change.node = spec.node;
        for (const fn of this.listeners) fn(change);
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
    const notUp = [...this.states.values()].filter((e) => e.state !== 'Up').map((e) => ({ peer: e.spec.peer, purposes: e.spec.purposes, state: e.state }));
    // BFD never holds readiness back: BGP's readiness already names a peer that is not Established.
    this.ready?.({ ready: true, detail: { sessions: this.states.size, notUp } });
  }

  async sessions(): Promise<{ sessions: BfdSessionView[] }> {
    const w = this.worker;
    if (!w) throw new NrdError('unavailable', 'bfd_not_running', 'no BFD session is configured (bgp.peers[].bfd, bgp.nodeMeshBfd or routing.bfd enabled)');
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
    return { running: this.worker !== null, sched: this.sched, sessions: Object.fromEntries([...this.states].map(([k, e]) => [k, { purposes: e.spec.purposes, state: e.state }])) };
  }
}

/** What a state change asks of the rest of nrd (main.ts carries it out). */
export interface BfdReaction {
  /** Reset the BGP session with the peer (peer and mesh sessions, RFC 5882 §3.2). */
  resetBgp: boolean;
  /** The direct path to this node's underlay: down (true), usable again (false), unchanged (undefined). */
  directDown?: boolean;
}

/** Up → Down (not AdminDown) resets BGP (peer, mesh) and takes the direct path away (node); Up gives it back. */
export function reactionTo(c: BfdStateChange): BfdReaction {
  const failed = isPathFailure(c);
  const r: BfdReaction = { resetBgp: failed && (c.purposes.includes('peer') || c.purposes.includes('mesh')) };
  if (c.purposes.includes('node') && (failed || c.to === 'Up')) r.directDown = failed;
  return r;
}
