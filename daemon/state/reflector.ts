// Watch-with-resync of one etcd prefix (a "collection"): list, watch from revision + 1 with prevKv;
// on compaction, disconnect or any watch error re-list and mark-and-sweep, paced by backoff with
// jitter and a shared re-list rate limit. Consumers get typed change batches and a synced signal.
// Every value is admitted by `decode` first: a refused one is treated as absent, remembered with
// its reason (rejections()), reported (onReject) and logged at most once per value written.
import type { Logger } from '../lib/log.js';
import { backoffDelay, sleep, TokenBucket, type BackoffOptions } from './backoff.js';
import { isStoreError, StoreError, type KV, type Store, type WatchEvent } from './store.js';
import { sweep } from './sweep.js';

export type Change<T> =
  | { type: 'upsert'; key: string; value: T; prev?: T }
  | { type: 'delete'; key: string; prev: T };

export interface CollectionHealth {
  name: string;
  /** A full listing has been applied at least once. */
  synced: boolean;
  /** The last list/watch is working. */
  connected: boolean;
  /** When the current trouble started (ms since epoch), if any. */
  troubleSince?: number;
  /** Failed attempts since the last success. */
  retries: number;
  lastError?: string;
  /** The error that started the current trouble (readiness names it: it stays while the trouble lasts). */
  troubleError?: string;
  /** Re-lists done since start (the first list included). */
  lists: number;
  revision: number;
}

/**
 * A decoded value, or why it was refused. `note`: accepted with a part dropped (reported like a
 * refusal, e.g. a liveness key whose address is unusable still says the node is alive).
 */
export type Decoded<T> = { ok: true; value: T; note?: Rejection } | ({ ok: false } & Rejection);

export interface Rejection {
  /** Stable code (a metric label). */
  reason: string;
  message: string;
}

/** Log lines about refused records per collection per minute, at most (the rest are counted). */
const REJECT_LOGS_PER_MINUTE = 10;

export interface ReflectorOptions<T> {
  name: string;
  prefix: string;
  /** Admit a value: the record, or why not (skipped, as if absent). */
  decode: (key: string, raw: string) => Decoded<T>;
  /** Called once per refused value written (not again on re-lists of the same value). */
  onReject?: (collection: string, reason: string) => void;
  /** Shared across the process's collections. */
  limiter?: TokenBucket;
  backoff?: BackoffOptions;
  log?: Logger;
  now?: () => number;
}

export class Reflector<T> {
  readonly name: string;
  readonly prefix: string;
  private readonly storeRef: Store | (() => Store);
  private readonly opts: ReflectorOptions<T>;
  private readonly raw = new Map<string, string>();
  private readonly view = new Map<string, T>();
  private readonly listeners = new Set<(changes: Change<T>[]) => void>();
  private readonly syncWaiters: (() => void)[] = [];
  private abort = new AbortController();
  private running = false;
  private loopDone: Promise<void> = Promise.resolve();
  private h: CollectionHealth;
  private readonly rejected = new Map<string, Rejection>();
  private rejectLog = { windowStart: 0, logged: 0, suppressed: 0 };

  /** `store` may be a getter when the store is created after the reflector (late connect). */
  constructor(store: Store | (() => Store), opts: ReflectorOptions<T>) {
    this.storeRef = store;
    this.opts = opts;
    this.name = opts.name;
    this.prefix = opts.prefix;
    this.h = { name: opts.name, synced: false, connected: false, retries: 0, lists: 0, revision: 0 };
  }

  private get store(): Store {
    return typeof this.storeRef === 'function' ? this.storeRef() : this.storeRef;
  }

  /** Subscribe to change batches; returns an unsubscribe function. */
  onChange(fn: (changes: Change<T>[]) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** Resolves once the first full listing is applied. */
  whenSynced(): Promise<void> {
    if (this.h.synced) return Promise.resolve();
    return new Promise((r) => this.syncWaiters.push(r));
  }

  get synced(): boolean {
    return this.h.synced;
  }

  health(): CollectionHealth {
    return { ...this.h };
  }

  get(key: string): T | undefined {
    return this.view.get(key);
  }

  entries(): [string, T][] {
    return [...this.view.entries()];
  }

  values(): T[] {
    return [...this.view.values()];
  }

  get size(): number {
    return this.view.size;
  }

  /** Keys whose current value was refused (or accepted in part), with the reason. */
  rejections(): ({ key: string } & Rejection)[] {
    return [...this.rejected.entries()].sort(([a], [b]) => a.localeCompare(b)).map(([key, r]) => ({ key, ...r }));
  }

  private reject(key: string, r: Rejection): void {
    this.rejected.set(key, { reason: r.reason, message: r.message });
    this.opts.onReject?.(this.name, r.reason);
    // Anyone who can write to etcd can write many bad keys: the log stays readable.
    const now = this.now();
    const l = this.rejectLog;
    if (now - l.windowStart >= 60_000) {
      if (l.suppressed > 0) this.opts.log?.warn({ collection: this.name, suppressed: l.suppressed }, 'more records refused (not logged one by one)');
      this.rejectLog = { windowStart: now, logged: 0, suppressed: 0 };
    }
    if (this.rejectLog.logged >= REJECT_LOGS_PER_MINUTE) {
      this.rejectLog.suppressed++;
      return;
    }
    this.rejectLog.logged++;
    this.opts.log?.warn({ collection: this.name, key, reason: r.reason, detail: r.message }, 'record from etcd refused; treated as absent');
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    this.abort = new AbortController();
    this.loopDone = this.loop();
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.running = false;
    this.abort.abort();
    await this.loopDone;
  }

  /** Force a re-list now (e.g. after etcd came back); harmless if already watching. */
  kick(): void {
    this.kickFn?.();
  }
  private kickFn: (() => void) | null = null;

  private now(): number {
    return (this.opts.now ?? Date.now)();
  }

  private emit(changes: Change<T>[]): void {
    if (changes.length === 0) return;
    for (const fn of this.listeners) {
      try {
        fn(changes);
      } catch (e) {
        // A consumer bug must not kill the watch loop of every other consumer.
        this.opts.log?.error({ err: e, collection: this.name }, 'state consumer threw');
      }
    }
  }

  private setKv(kv: KV, out: Change<T>[]): void {
    if (this.raw.get(kv.key) === kv.value) return;
    this.raw.set(kv.key, kv.value);
    const prev = this.view.get(kv.key);
    const d = this.opts.decode(kv.key, kv.value);
    this.rejected.delete(kv.key);
    if (!d.ok) {
      this.reject(kv.key, d);
      if (prev !== undefined) {
        this.view.delete(kv.key);
        out.push({ type: 'delete', key: kv.key, prev });
      }
      return;
    }
    if (d.note) this.reject(kv.key, d.note);
    const value = d.value;
    this.view.set(kv.key, value);
    out.push(prev === undefined ? { type: 'upsert', key: kv.key, value } : { type: 'upsert', key: kv.key, value, prev });
  }

  private deleteKey(key: string, out: Change<T>[]): void {
    if (!this.raw.delete(key)) return;
    this.rejected.delete(key);
    const prev = this.view.get(key);
    this.view.delete(key);
    if (prev !== undefined) out.push({ type: 'delete', key, prev });
  }

  private applyList(kvs: KV[]): void {
    const { upserts, deletes } = sweep(this.raw, kvs);
    const out: Change<T>[] = [];
    for (const kv of upserts) this.setKv(kv, out);
    for (const k of deletes) this.deleteKey(k, out);
    this.emit(out);
  }

  private applyEvents(events: WatchEvent[]): void {
    const out: Change<T>[] = [];
    for (const ev of events) {
      if (ev.type === 'put') this.setKv(ev.kv, out);
      else this.deleteKey(ev.kv.key, out);
    }
    this.emit(out);
  }

  private trouble(err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    const text = isStoreError(e) ? `${e.code}: ${e.message}` : e.message;
    if (this.h.connected || this.h.troubleSince === undefined) {
      this.h.troubleSince = this.now();
      this.h.troubleError = text;
    }
    this.h.connected = false;
    this.h.retries++;
    this.h.lastError = text;
  }

  /** Watch until it dies; resolves with the error. */
  private watchUntilError(fromRevision: number): Promise<StoreError> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (err: StoreError): void => {
        if (done) return;
        done = true;
        this.kickFn = null;
        this.abort.signal.removeEventListener('abort', onAbort);
        void handle.cancel();
        resolve(err);
      };
      const onAbort = (): void => finish(new StoreError('CLOSED', 'reflector stopped'));
      const handle = this.store.watch(this.prefix, fromRevision, {
        onEvents: (events, revision) => {
          if (done) return;
          this.applyEvents(events);
          this.h.revision = Math.max(this.h.revision, revision);
        },
        onError: (err) => finish(err),
      });
      this.kickFn = () => finish(new StoreError('UNAVAILABLE', 'resync requested'));
      this.abort.signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private async loop(): Promise<void> {
    const signal = this.abort.signal;
    const backoff = this.opts.backoff ?? { baseMs: 200, maxMs: 10_000 };
    let attempt = 0;
    while (!signal.aborted) {
      if (attempt > 0) await sleep(backoffDelay(attempt, backoff), signal);
      if (signal.aborted) break;
      await this.opts.limiter?.take(signal);
      if (signal.aborted) break;
      let listed: { kvs: KV[]; revision: number };
      try {
        // Raced with stop(): a call on a closed or hung client may never settle.
        listed = await Promise.race([
          this.store.list(this.prefix),
          new Promise<never>((_, rej) => signal.addEventListener('abort', () => rej(new StoreError('CLOSED', 'reflector stopped')), { once: true })),
        ]);
      } catch (e) {
        if (signal.aborted) break;
        this.trouble(e);
        attempt++;
        continue;
      }
      if (signal.aborted) break;
      this.h.lists++;
      this.applyList(listed.kvs);
      this.h.revision = listed.revision;
      this.h.connected = true;
      this.h.retries = 0;
      delete this.h.troubleSince;
      delete this.h.troubleError;
      if (!this.h.synced) {
        this.h.synced = true;
        for (const w of this.syncWaiters.splice(0)) w();
      }
      // Resume right after the listing: watch events are the revisions after it.
      const started = this.now();
      const err = await this.watchUntilError(listed.revision + 1);
      if (signal.aborted) break;
      this.opts.log?.info({ collection: this.name, code: err.code, err: err.message }, 'watch ended, re-listing');
      this.trouble(err);
      // A watch that ran a while starts the backoff afresh; one that dies at once keeps growing it.
      attempt = this.now() - started > 5000 ? 1 : attempt + 1;
    }
  }
}
