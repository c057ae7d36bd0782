// Fair bulk ingest of received UPDATEs into the RIB: per-peer FIFO queues served round-robin, a
// bounded number of prefixes per event-loop turn, and backpressure to the session (a promise that
// pauses reading the peer's socket, so TCP flow control slows the sender). Keepalive and hold
// timers of every session run between turns: one peer sending a million routes cannot starve
// another's 1 s keepalive.
import type { UpdateMessage } from '../types.js';
import { PackedUpdate } from '../wire/packed.js';

/** Prefixes an UPDATE carries (announced + withdrawn, all families): its cost in the RIB. */
export function updateWeight(u: UpdateMessage): number {
  // A packed UPDATE is counted without building its Nlri objects.
  return (u instanceof PackedUpdate ? u.nlriCount : u.nlri.length) + u.withdrawn.length + (u.mpReach?.nlri.length ?? 0) + (u.mpUnreach?.withdrawn.length ?? 0) || 1;
}

interface Queue {
  items: UpdateMessage[];
  head: number;
  /** Resolves the session's pending onUpdate promise once the queue drained below low water. */
  release: (() => void) | null;
}

export interface IngestSchedulerOptions {
  /** Applies one UPDATE of `peer` to the RIB. Throwing drops the message (logged by the caller). */
  apply: (peer: string, u: UpdateMessage) => void;
  /** After a turn that applied something (flush Loc-RIB changes, send Adj-RIB-Out). */
  afterTurn?: () => void;
  onError?: (peer: string, err: unknown) => void;
  prefixesPerTurn?: number;
  highWater?: number;
  /** Defers a turn; setImmediate by default (runs after I/O and timers of the current loop). */
  defer?: (fn: () => void) => void;
}

export class IngestScheduler {
  private readonly queues = new Map<string, Queue>();
  /** Peers with queued work in service order. */
  private ring: string[] = [];
  private scheduled = false;
  private readonly budget: number;
  private readonly highWater: number;
  private readonly lowWater: number;
  private readonly defer: (fn: () => void) => void;
  /** Turns run so far (tests, metrics). */
  turns = 0;

  constructor(private readonly opts: IngestSchedulerOptions) {
    this.budget = Math.max(1, opts.prefixesPerTurn ?? 8192);
    this.highWater = Math.max(1, opts.highWater ?? 64);
    this.lowWater = Math.max(0, Math.floor(this.highWater / 2));
    this.defer = opts.defer ?? ((fn) => void setImmediate(fn));
  }

  /**
   * Queue an UPDATE. Returns a promise when the peer's queue is full: the session stops reading
   * that peer until it resolves.
   */
  push(peer: string, u: UpdateMessage): void | Promise<void> {
    let q = this.queues.get(peer);
    if (!q) this.queues.set(peer, (q = { items: [], head: 0, release: null }));
    if (q.items.length === q.head) this.ring.push(peer);
    q.items.push(u);
    this.schedule();
    if (q.items.length - q.head < this.highWater) return;
    const queue = q;
    return new Promise<void>((resolve) => {
      const prev = queue.release;
      queue.release = () => {
        prev?.();
        resolve();
      };
    });
  }

  /** Discard what is queued for `peer` (session down) and let its session go on. */
  drop(peer: string): void {
    const q = this.queues.get(peer);
    if (!q) return;
    // Its ring entry is skipped (and pruned) by the next turn.
    this.queues.delete(peer);
    q.release?.();
  }

  /** UPDATEs waiting for `peer` (all peers when omitted). */
  pending(peer?: string): number {
    if (peer !== undefined) {
      const q = this.queues.get(peer);
      return q ? q.items.length - q.head : 0;
    }
    let n = 0;
    for (const q of this.queues.values()) n += q.items.length - q.head;
    return n;
  }

  get idle(): boolean {
    return this.pending() === 0;
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.defer(() => this.turn());
  }

  /** One turn: one UPDATE per peer per round, rounds until the prefix budget is spent. */
  turn(): void {
    this.scheduled = false;
    this.turns++;
    let spent = 0;
    let applied = 0;
    while (spent < this.budget && this.ring.length > 0) {
      const ring = this.ring;
      const served: string[] = [];
      let i = 0;
      for (; i < ring.length && spent < this.budget; i++) {
        const peer = ring[i]!;
        const q = this.queues.get(peer);
        if (!q || q.head === q.items.length) continue;
        const u = q.items[q.head]!;
        q.items[q.head++] = undefined as unknown as UpdateMessage; // let the message be collected
        spent += updateWeight(u);
        applied++;
        try {
          this.opts.apply(peer, u);
        } catch (err) {
          this.opts.onError?.(peer, err);
        }
        // apply() may have dropped the peer (max-prefix teardown).
        if (this.queues.get(peer) !== q) continue;
        const left = q.items.length - q.head;
        if (left === 0) {
          q.items = [];
          q.head = 0;
        } else {
          if (q.head > 1024) {
            q.items = q.items.slice(q.head);
            q.head = 0;
          }
          served.push(peer);
        }
        if (q.release && left <= this.lowWater) {
          const r = q.release;
          q.release = null;
          r();
        }
      }
      // Peers not reached in this round go first next time, so none waits behind the others.
      const order = new Set<string>();
      for (const p of [...ring.slice(i), ...served]) {
        const q = this.queues.get(p);
        if (q && q.head < q.items.length) order.add(p);
      }
      this.ring = [...order];
    }
    if (applied > 0) this.opts.afterTurn?.();
    if (this.ring.length > 0) this.schedule();
  }
}
