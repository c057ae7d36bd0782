// In-memory fake of the state Store port (daemon/state/store.ts) for unit tests: etcd-like
// revisions, txn compares, leases, watches with prevKv and history, compaction, outages and
// lost replies injected on demand. Semantics follow etcd v3 where nrd depends on them.
import {
  StoreError,
  type Compare,
  type GetResult,
  type KV,
  type LeaseHandle,
  type ListResult,
  type Store,
  type TxnOp,
  type TxnResult,
  type WatchEvent,
  type WatchHandle,
  type WatchHandlers,
} from '../../daemon/state/store.js';

interface FakeWatch {
  prefix: string;
  handlers: WatchHandlers;
  dead: boolean;
}

interface FakeLease {
  id: string;
  ttl: number;
  lostCbs: ((err: StoreError) => void)[];
  alive: boolean;
}

export class FakeStore implements Store {
  private data = new Map<string, KV>();
  private history: { revision: number; events: WatchEvent[] }[] = [];
  private watches = new Set<FakeWatch>();
  private leases = new Map<string, FakeLease>();
  private nextLease = 1000;
  revision = 1;
  compactedRevision = 0;
  /** When true every call rejects with UNAVAILABLE and watches die. */
  private down = false;
  /** Injected faults for the next write calls: 'applied' = applied but reply lost. */
  private faults: ('applied' | 'notApplied')[] = [];
  /** Request counters by method. */
  readonly calls: Record<string, number> = {};

  private count(m: string): void {
    this.calls[m] = (this.calls[m] ?? 0) + 1;
  }

  totalCalls(): number {
    return Object.values(this.calls).reduce((a, b) => a + b, 0);
  }

  private checkUp(): void {
    if (this.down) throw new StoreError('UNAVAILABLE', 'fake store is down');
  }

  /** Simulate etcd unreachable: every call fails; live watches get onError. */
  setDown(down: boolean): void {
    this.down = down;
    if (down) this.killWatches(new StoreError('UNAVAILABLE', 'fake store went down'));
  }

  /** The next write fails; with 'applied' it is applied first (a lost reply). */
  injectFault(kind: 'applied' | 'notApplied', times = 1): void {
    for (let i = 0; i < times; i++) this.faults.push(kind);
  }

  /** Drop history up to `rev` (inclusive), like `etcdctl compact`. Watches below it die. */
  compact(rev = this.revision): void {
    this.compactedRevision = rev;
    this.history = this.history.filter((h) => h.revision > rev);
  }

  /** Kill all watches (a disconnect). */
  killWatches(err = new StoreError('UNAVAILABLE', 'fake disconnect')): void {
    for (const w of [...this.watches]) this.endWatch(w, err);
  }

  /** Expire a lease as etcd would: its keys are deleted; holders are told it is lost. */
  expireLease(id: string): void {
    const l = this.leases.get(id);
    if (!l) return;
    this.leases.delete(id);
    l.alive = false;
    const events: WatchEvent[] = [];
    for (const kv of [...this.data.values()]) {
      if (kv.lease === id) events.push(this.deleteKey(kv.key));
    }
    this.commit(events);
    for (const cb of l.lostCbs) cb(new StoreError('LEASE_NOT_FOUND', `lease ${id} expired`));
  }

  /** Tell holders their lease is lost without etcd losing it (the client's verdict). */
  reportLeaseLost(id: string): void {
    const l = this.leases.get(id);
    if (!l) return;
    for (const cb of l.lostCbs) cb(new StoreError('UNAVAILABLE', `lease ${id} keepalive failed`));
  }

  leaseIds(): string[] {
    return [...this.leases.keys()];
  }

  /** Direct read for assertions (no counting, works while down). */
  peek(key: string): KV | undefined {
    return this.data.get(key);
  }

  peekPrefix(prefix: string): KV[] {
    return [...this.data.values()].filter((kv) => kv.key.startsWith(prefix)).sort((a, b) => (a.key < b.key ? -1 : 1));
  }

  /** Direct write for test setup (bumps the revision, notifies watches). */
  seed(key: string, value: string): void {
    this.commit([this.putKey(key, value, '0')]);
  }

  private endWatch(w: FakeWatch, err: StoreError): void {
    if (w.dead) return;
    w.dead = true;
    this.watches.delete(w);
    w.handlers.onError(err);
  }

  private takeFault(): 'applied' | 'notApplied' | undefined {
    return this.faults.shift();
  }

  private putKey(key: string, value: string, lease: string): WatchEvent {
    const rev = this.revision + 1;
    const prev = this.data.get(key);
    const kv: KV = {
      key,
      value,
      createRevision: prev ? prev.createRevision : rev,
      modRevision: rev,
      version: prev ? prev.version + 1 : 1,
      lease,
    };
    this.data.set(key, kv);
    return { type: 'put', kv, ...(prev ? { prev } : {}) };
  }

  private deleteKey(key: string): WatchEvent {
    const prev = this.data.get(key)!;
    this.data.delete(key);
    const kv: KV = { key, value: '', createRevision: 0, modRevision: this.revision + 1, version: 0, lease: '0' };
    return { type: 'delete', kv, prev };
  }

  /** All events of one txn share one revision, as in etcd. */
  private commit(events: WatchEvent[]): void {
    if (events.length === 0) return;
    this.revision++;
    this.history.push({ revision: this.revision, events });
    for (const w of [...this.watches]) {
      const mine = events.filter((e) => e.kv.key.startsWith(w.prefix));
      if (mine.length) w.handlers.onEvents(mine, this.revision);
    }
  }

  private compareOk(c: Compare): boolean {
    const kv = this.data.get(c.key);
    let actual: number | string;
    switch (c.target) {
      case 'version':
        actual = kv?.version ?? 0;
        break;
      case 'mod':
        actual = kv?.modRevision ?? 0;
        break;
      case 'create':
        actual = kv?.createRevision ?? 0;
        break;
      case 'value':
        if (!kv) return false; // etcd: a value compare on a missing key fails
        actual = kv.value;
        break;
    }
    const v = c.value;
    switch (c.op) {
      case '==':
        return actual === v;
      case '!=':
        return actual !== v;
      case '<':
        return actual < v;
      case '>':
        return actual > v;
    }
  }

  private applyOps(ops: TxnOp[]): { events: WatchEvent[]; gets: (KV | null)[] } {
    const events: WatchEvent[] = [];
    const gets: (KV | null)[] = [];
    for (const op of ops) {
      switch (op.type) {
        case 'put': {
          const lease = op.lease ?? '0';
          if (lease !== '0' && !this.leases.has(lease)) throw new StoreError('LEASE_NOT_FOUND', `lease ${lease} not found`);
          events.push(this.putKey(op.key, op.value, lease));
          break;
        }
        case 'delete':
          if (this.data.has(op.key)) events.push(this.deleteKey(op.key));
          break;
        case 'deletePrefix':
          for (const k of [...this.data.keys()]) if (k.startsWith(op.prefix)) events.push(this.deleteKey(k));
          break;
        case 'get': {
          const kv = this.data.get(op.key);
          gets.push(kv ? { ...kv } : null);
          break;
        }
      }
    }
    return { events, gets };
  }

  async get(key: string): Promise<GetResult> {
    this.count('get');
    await Promise.resolve();
    this.checkUp();
    const kv = this.data.get(key);
    return { kv: kv ? { ...kv } : null, revision: this.revision };
  }

  async list(prefix: string): Promise<ListResult> {
    this.count('list');
    await Promise.resolve();
    this.checkUp();
    return { kvs: this.peekPrefix(prefix).map((kv) => ({ ...kv })), revision: this.revision };
  }

  async txn(compares: Compare[], success: TxnOp[], failure: TxnOp[] = []): Promise<TxnResult> {
    this.count('txn');
    await Promise.resolve();
    this.checkUp();
    const fault = this.takeFault();
    if (fault === 'notApplied') throw new StoreError('UNAVAILABLE', 'injected: not applied', { maybeApplied: true });
    const ok = compares.every((c) => this.compareOk(c));
    const { events, gets } = this.applyOps(ok ? success : failure);
    this.commit(events);
    if (fault === 'applied') throw new StoreError('UNAVAILABLE', 'injected: reply lost', { maybeApplied: true });
    return { succeeded: ok, revision: this.revision, gets };
  }

  async put(key: string, value: string, opts: { lease?: string } = {}): Promise<number> {
    this.count('put');
    await Promise.resolve();
    this.checkUp();
    const fault = this.takeFault();
    if (fault === 'notApplied') throw new StoreError('UNAVAILABLE', 'injected: not applied', { maybeApplied: true });
    const { events } = this.applyOps([{ type: 'put', key, value, ...(opts.lease ? { lease: opts.lease } : {}) }]);
    this.commit(events);
    if (fault === 'applied') throw new StoreError('UNAVAILABLE', 'injected: reply lost', { maybeApplied: true });
    return this.revision;
  }

  async delete(key: string): Promise<number> {
    this.count('delete');
    await Promise.resolve();
    this.checkUp();
    const { events } = this.applyOps([{ type: 'delete', key }]);
    this.commit(events);
    return this.revision;
  }

  async grantLease(ttlSeconds: number): Promise<LeaseHandle> {
    this.count('grantLease');
    await Promise.resolve();
    this.checkUp();
    const id = String(this.nextLease++);
    const l: FakeLease = { id, ttl: ttlSeconds, lostCbs: [], alive: true };
    this.leases.set(id, l);
    return {
      id,
      onLost: (cb) => {
        l.lostCbs.push(cb);
      },
      revoke: async () => {
        this.checkUp();
        this.expireLease(id);
      },
      release: () => {
        l.lostCbs = [];
      },
    };
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): WatchHandle {
    this.count('watch');
    const w: FakeWatch = { prefix, handlers, dead: false };
    queueMicrotask(() => {
      if (w.dead) return;
      if (this.down) return this.endWatch(w, new StoreError('UNAVAILABLE', 'fake store is down'));
      if (fromRevision <= this.compactedRevision) {
        return this.endWatch(w, new StoreError('COMPACTED', `required revision ${fromRevision} has been compacted`));
      }
      for (const h of this.history) {
        if (h.revision < fromRevision) continue;
        const mine = h.events.filter((e) => e.kv.key.startsWith(prefix));
        if (mine.length) handlers.onEvents(mine, h.revision);
      }
      this.watches.add(w);
    });
    return {
      cancel: async () => {
        w.dead = true;
        this.watches.delete(w);
      },
    };
  }

  async close(): Promise<void> {
    this.killWatches(new StoreError('CLOSED', 'closed'));
  }
}
