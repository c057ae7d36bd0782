// Keeps one etcd lease (v3 LeaseGrant/LeaseKeepAlive) and the keys this node hangs on it (its
// liveness). A lease reported lost is the client's verdict, not etcd's: re-grant and re-assert
// the keys when etcd answers; nothing else is torn down.
import type { Logger } from '../lib/log.js';
import { backoffDelay, sleep, type BackoffOptions } from './backoff.js';
import { isStoreError, type LeaseHandle, type Store } from './store.js';

export interface LeaseHealth {
  state: 'granting' | 'ok' | 'reasserting';
  leaseId?: string;
  troubleSince?: number;
  retries: number;
  lastError?: string;
  /** Leases granted since start (1 in a quiet life). */
  grants: number;
}

export class LeaseKeeper {
  private readonly owned = new Map<string, string>();
  private lease: LeaseHandle | null = null;
  private dirty = true;
  private wake: (() => void) | null = null;
  private abort = new AbortController();
  private loopDone: Promise<void> = Promise.resolve();
  private running = false;
  private h: LeaseHealth = { state: 'granting', retries: 0, grants: 0 };
  private readonly assertedListeners = new Set<() => void>();

  constructor(
    private readonly store: Store,
    private readonly ttlSeconds: number,
    private readonly opts: { log?: Logger; backoff?: BackoffOptions; now?: () => number } = {},
  ) {}

  /** Keep `key` = `value` on the lease (re-put whenever the lease is re-granted). */
  own(key: string, value: string): void {
    if (this.owned.get(key) === value) return;
    this.owned.set(key, value);
    this.poke();
  }

  disown(key: string): void {
    this.owned.delete(key);
  }

  /** Called after every successful (re-)assertion of all owned keys. */
  onAsserted(fn: () => void): () => void {
    this.assertedListeners.add(fn);
    return () => this.assertedListeners.delete(fn);
  }

  health(): LeaseHealth {
    return { ...this.h, ...(this.lease ? { leaseId: this.lease.id } : {}) };
  }

  get leaseId(): string | undefined {
    return this.lease?.id;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    this.loopDone = this.loop();
  }

  /** Stop keepalives; with `revoke` the owned keys disappear now instead of after the TTL. */
  async stop(revoke = false): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.abort.abort();
    this.poke();
    await this.loopDone;
    const l = this.lease;
    this.lease = null;
    if (l) {
      if (revoke) await l.revoke().catch(() => l.release());
      else l.release();
    }
  }

  private poke(): void {
    this.dirty = true;
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private trouble(e: unknown): void {
    if (this.h.troubleSince === undefined) this.h.troubleSince = this.now();
    this.h.retries++;
    this.h.lastError = isStoreError(e) ? `${e.code}: ${e.message}` : String(e);
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    const backoff = this.opts.backoff ?? { baseMs: 200, maxMs: 5000 };
    let attempt = 0;
    while (!signal.aborted) {
      if (attempt > 0) await sleep(backoffDelay(attempt, backoff), signal);
      if (signal.aborted) break;
      if (!this.lease) {
        this.h.state = 'granting';
        try {
          const l = await this.store.grantLease(this.ttlSeconds);
          if (signal.aborted) {
            l.release();
            break;
          }
          this.lease = l;
          this.h.grants++;
          this.dirty = true;
          l.onLost((err) => {
            if (this.lease !== l) return;
            this.opts.log?.warn({ lease: l.id, err: err.message }, 'lease lost; re-granting and re-asserting own keys');
            l.release();
            this.lease = null;
            this.trouble(err);
            this.poke();
          });
        } catch (e) {
          this.trouble(e);
          attempt++;
          continue;
        }
      }
      if (this.dirty) {
        this.h.state = 'reasserting';
        this.dirty = false;
        const lease = this.lease!;
        try {
          for (const [k, v] of [...this.owned]) await this.store.put(k, v, { lease: lease.id });
        } catch (e) {
          this.dirty = true;
          this.trouble(e);
          if (isStoreError(e, 'LEASE_NOT_FOUND') && this.lease === lease) {
            lease.release();
            this.lease = null;
          }
          attempt++;
          continue;
        }
        if (this.lease !== lease) continue; // lost while writing: go round again
        this.h.state = 'ok';
        this.h.retries = 0;
        delete this.h.troubleSince;
        delete this.h.lastError;
        attempt = 0;
        for (const fn of this.assertedListeners) fn();
      }
      if (!this.dirty && this.lease) await new Promise<void>((r) => (this.wake = r));
    }
  }
}
