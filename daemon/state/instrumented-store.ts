// A Store decorator that reports every etcd request (op and outcome) to a callback, so the daemon
// can count them as nrd_etcd_requests_total{op,result} whatever Store implementation is used.
import { isStoreError, type LeaseHandle, type Store, type WatchHandle, type WatchHandlers } from './store.js';

export type RequestOp = 'get' | 'list' | 'txn' | 'put' | 'delete' | 'lease_grant' | 'watch';
/** 'ok'; 'conflict' for a txn whose compares failed; else the StoreError code in lower case. */
export type RequestResult = string;
export type RequestObserver = (op: RequestOp, result: RequestResult) => void;

function resultOf(e: unknown): RequestResult {
  return isStoreError(e) ? e.code.toLowerCase() : 'unknown';
}

export class InstrumentedStore implements Store {
  constructor(
    readonly inner: Store,
    private readonly observe: RequestObserver,
  ) {}

  private async run<T>(op: RequestOp, fn: () => Promise<T>, judge: (v: T) => RequestResult = () => 'ok'): Promise<T> {
    try {
      const v = await fn();
      this.observe(op, judge(v));
      return v;
    } catch (e) {
      this.observe(op, resultOf(e));
      throw e;
    }
  }

  get(key: string) {
    return this.run('get', () => this.inner.get(key));
  }
  list(prefix: string) {
    return this.run('list', () => this.inner.list(prefix));
  }
  txn(...a: Parameters<Store['txn']>) {
    return this.run('txn', () => this.inner.txn(...a), (r) => (r.succeeded ? 'ok' : 'conflict'));
  }
  put(key: string, value: string, opts?: { lease?: string }) {
    return this.run('put', () => this.inner.put(key, value, opts));
  }
  delete(key: string) {
    return this.run('delete', () => this.inner.delete(key));
  }
  grantLease(ttlSeconds: number): Promise<LeaseHandle> {
    return this.run('lease_grant', () => this.inner.grantLease(ttlSeconds));
  }
  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): WatchHandle {
    this.observe('watch', 'ok');
    return this.inner.watch(prefix, fromRevision, {
      onEvents: (ev, rev) => handlers.onEvents(ev, rev),
      onError: (err) => {
        // A watch ending is counted once, with its reason (compacted, unavailable, …).
        this.observe('watch', resultOf(err));
        handlers.onError(err);
      },
    });
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
