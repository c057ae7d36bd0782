// The Store port over etcd v3 gRPC (npm etcd3): KV range/txn/put/delete, leases, watches with prevKv;
// every call has a deadline and every failure becomes a typed StoreError.
//
// Traps of etcd3 this shell neutralises (docs/design.md lists them with the other package traps):
// - its global retry policy re-sends a txn whose reply was lost, so a create-if-absent that did
//   succeed looks failed; and its per-host circuit breaker keeps failing for 5 s after etcd is back.
//   Both are replaced by a pass-through policy: retries, backoff and the lost-reply re-read belong
//   to the callers, who know whether a request is idempotent.
// - unary calls have no deadline by default: a stopped (SIGSTOP) etcd hangs them forever.
// - a Watcher reconnects by itself from a revision it bumped on `connected`, which can skip events;
//   and a compacted watcher emits `error` and stops. Here any disconnect or error ends the watch
//   (onError) and the reflector re-lists, so nothing is ever silently skipped.
import { readFileSync } from 'node:fs';
import {
  Etcd3,
  type IOptions,
  type IKeyValue,
  type ICompare,
  type IRequestOp,
  type Watcher,
  type Lease,
  CompareResult,
  CompareTarget,
  EtcdLeaseInvalidError,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  GRPCUnauthenticatedError,
  GRPCInvalidArgumentError,
  GRPCOutOfRangeError,
  ClientClosedError,
} from 'etcd3';
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
} from './store.js';

export interface EtcdStoreOptions {
  endpoints: string[];
  /** PEM file paths (or contents) for TLS; client cert/key for mutual TLS. */
  tls?: { ca?: string | Buffer; cert?: string | Buffer; key?: string | Buffer };
  auth?: { username: string; password: string };
  /** Deadline of every unary request (ms). Default 5000. */
  requestTimeoutMs?: number;
  /** Dial timeout (ms). Default 3000. */
  dialTimeoutMs?: number;
}

type Policy = NonNullable<NonNullable<IOptions['faultHandling']>['global']>;

/** A policy that just runs the call: no retry, no circuit breaker (see the header). */
function passthroughPolicy(): Policy {
  const noEvent = (): { dispose(): void } => ({ dispose() {} });
  const p = {
    execute<T>(fn: (ctx: { signal: AbortSignal }) => PromiseLike<T> | T, signal?: AbortSignal): Promise<T> {
      return Promise.resolve().then(() => fn({ signal: signal ?? new AbortController().signal }));
    },
    onSuccess: noEvent,
    onFailure: noEvent,
  };
  // The interface also carries a phantom `_altReturn` type member that exists only for TypeScript.
  return p as unknown as Policy;
}

function pem(v: string | Buffer | undefined): Buffer | undefined {
  if (v === undefined) return undefined;
  if (Buffer.isBuffer(v)) return v;
  return v.includes('-----BEGIN') ? Buffer.from(v) : readFileSync(v);
}

const WRITE = true;
const READ = false;

/** Map anything etcd3 or grpc throws to a StoreError. */
export function toStoreError(e: unknown, isWrite: boolean): StoreError {
  if (e instanceof StoreError) return e;
  const err = e instanceof Error ? e : new Error(String(e));
  const msg = err.message;
  if (e instanceof ClientClosedError) return new StoreError('CLOSED', msg, { cause: e });
  if (e instanceof EtcdLeaseInvalidError || /lease not found/i.test(msg))
    return new StoreError('LEASE_NOT_FOUND', msg, { cause: e });
  if (e instanceof EtcdAuthenticationFailedError || e instanceof EtcdInvalidAuthTokenError || e instanceof GRPCUnauthenticatedError)
    return new StoreError('AUTH', msg, { cause: e });
  if (e instanceof EtcdPermissionDeniedError) return new StoreError('PERMISSION', msg, { cause: e });
  if (/compacted/i.test(msg) || e instanceof GRPCOutOfRangeError) return new StoreError('COMPACTED', msg, { cause: e });
  if (e instanceof GRPCInvalidArgumentError) return new StoreError('INVALID', msg, { cause: e });
  // Connection refused before anything was sent cannot have been applied; anything else
  // (deadline, reset, cancelled) on a write may have been.
  const refused = /ECONNREFUSED|No connection established|failed to connect/i.test(msg);
  return new StoreError('UNAVAILABLE', msg, { cause: e, maybeApplied: isWrite && !refused });
}

function kvOf(k: IKeyValue): KV {
  return {
    key: k.key.toString(),
    value: k.value.toString(),
    createRevision: Number(k.create_revision),
    modRevision: Number(k.mod_revision),
    version: Number(k.version),
    lease: String(k.lease ?? '0'),
  };
}

/** etcd's range end for "all keys with this prefix". */
export function prefixEnd(prefix: string): Buffer {
  const b = Buffer.from(prefix);
  for (let i = b.length - 1; i >= 0; i--) {
    if (b[i]! < 0xff) {
      const end = Buffer.from(b.subarray(0, i + 1));
      end[i] = end[i]! + 1;
      return end;
    }
  }
  return Buffer.from([0]);
}

const cmpResult: Record<Compare['op'], CompareResult> = {
  '==': CompareResult.Equal,
  '!=': CompareResult.NotEqual,
  '<': CompareResult.Less,
  '>': CompareResult.Greater,
};

function compareOf(c: Compare): ICompare {
  const base: ICompare = { key: Buffer.from(c.key), result: cmpResult[c.op] };
  switch (c.target) {
    case 'version':
      return { ...base, target: CompareTarget.Version, version: Number(c.value) };
    case 'mod':
      return { ...base, target: CompareTarget.Mod, mod_revision: Number(c.value) };
    case 'create':
      return { ...base, target: CompareTarget.Create, create_revision: Number(c.value) };
    case 'value':
      return { ...base, target: CompareTarget.Value, value: Buffer.from(String(c.value)) };
  }
}

function requestOf(op: TxnOp): IRequestOp {
  switch (op.type) {
    case 'put':
      return { request_put: { key: Buffer.from(op.key), value: Buffer.from(op.value), lease: op.lease ?? '0' } };
    case 'delete':
      return { request_delete_range: { key: Buffer.from(op.key) } };
    case 'deletePrefix':
      return { request_delete_range: { key: Buffer.from(op.prefix), range_end: prefixEnd(op.prefix) } };
    case 'get':
      return { request_range: { key: Buffer.from(op.key) } };
  }
}

export class EtcdStore implements Store {
  private readonly client: Etcd3;
  private closed = false;

  constructor(opts: EtcdStoreOptions) {
    const timeout = opts.requestTimeoutMs ?? 5000;
    const options: IOptions = {
      hosts: opts.endpoints,
      dialTimeout: opts.dialTimeoutMs ?? 3000,
      faultHandling: { global: passthroughPolicy(), host: () => passthroughPolicy() },
      // Streams (watch, lease keepalive) must not get a deadline; unary calls must.
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
      grpcOptions: {
        'grpc.initial_reconnect_backoff_ms': 200,
        'grpc.max_reconnect_backoff_ms': 2000,
        // Detect a hung (not closed) connection; etcd's default minimum ping interval is 5 s.
        'grpc.keepalive_time_ms': 10_000,
        'grpc.keepalive_timeout_ms': 5_000,
      },
    };
    if (opts.tls) {
      const ca = pem(opts.tls.ca);
      options.credentials = {
        // No CA given: null makes grpc use the system CAs (an empty buffer would trust nothing).
        rootCertificate: ca ?? (null as unknown as Buffer),
        ...(opts.tls.key ? { privateKey: pem(opts.tls.key) } : {}),
        ...(opts.tls.cert ? { certChain: pem(opts.tls.cert) } : {}),
      };
    }
    if (opts.auth) options.auth = { username: opts.auth.username, password: opts.auth.password };
    this.client = new Etcd3(options);
  }

  async get(key: string): Promise<GetResult> {
    try {
      const r = await this.client.kv.range({ key: Buffer.from(key) });
      return { kv: r.kvs.length ? kvOf(r.kvs[0]!) : null, revision: Number(r.header.revision) };
    } catch (e) {
      throw toStoreError(e, READ);
    }
  }

  async list(prefix: string): Promise<ListResult> {
    try {
      const r = await this.client.kv.range({ key: Buffer.from(prefix), range_end: prefixEnd(prefix) });
      return { kvs: r.kvs.map(kvOf), revision: Number(r.header.revision) };
    } catch (e) {
      throw toStoreError(e, READ);
    }
  }

  async txn(compares: Compare[], success: TxnOp[], failure: TxnOp[] = []): Promise<TxnResult> {
    try {
      const r = await this.client.kv.txn({
        compare: compares.map(compareOf),
        success: success.map(requestOf),
        failure: failure.map(requestOf),
      });
      const ran = r.succeeded ? success : failure;
      const gets: (KV | null)[] = [];
      ran.forEach((op, i) => {
        if (op.type !== 'get') return;
        const kvs = r.responses[i]?.response_range?.kvs ?? [];
        gets.push(kvs.length ? kvOf(kvs[0]!) : null);
      });
      return { succeeded: r.succeeded, revision: Number(r.header.revision), gets };
    } catch (e) {
      throw toStoreError(e, WRITE);
    }
  }

  async put(key: string, value: string, opts: { lease?: string } = {}): Promise<number> {
    try {
      const r = await this.client.kv.put({ key: Buffer.from(key), value: Buffer.from(value), lease: opts.lease ?? '0' });
      return Number(r.header.revision);
    } catch (e) {
      throw toStoreError(e, WRITE);
    }
  }

  async delete(key: string): Promise<number> {
    try {
      const r = await this.client.kv.deleteRange({ key: Buffer.from(key) });
      return Number(r.header.revision);
    } catch (e) {
      throw toStoreError(e, WRITE);
    }
  }

  async grantLease(ttlSeconds: number): Promise<LeaseHandle> {
    const lease: Lease = this.client.lease(ttlSeconds, { autoKeepAlive: true });
    let lostCb: ((err: StoreError) => void) | null = null;
    let lostErr: StoreError | null = null;
    lease.on('lost', (err) => {
      if (lostErr) return;
      lostErr = toStoreError(err, READ);
      lostCb?.(lostErr);
    });
    let id: string;
    try {
      id = await lease.grant();
    } catch (e) {
      lease.release();
      throw toStoreError(e, WRITE);
    }
    return {
      id,
      onLost(cb) {
        lostCb = cb;
        if (lostErr) cb(lostErr);
      },
      async revoke() {
        try {
          await lease.revoke();
        } catch (e) {
          throw toStoreError(e, WRITE);
        }
      },
      release() {
        lease.release();
      },
    };
  }

  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): WatchHandle {
    let dead = false;
    let watcher: Watcher | null = null;
    const fail = (err: StoreError): void => {
      if (dead) return;
      dead = true;
      handlers.onError(err);
      void watcher?.cancel().catch(() => undefined);
    };
    this.client
      .watch()
      .prefix(prefix)
      .startRevision(String(fromRevision))
      .withPreviousKV()
      .create()
      .then((w) => {
        watcher = w;
        if (dead) {
          void w.cancel().catch(() => undefined);
          return;
        }
        w.on('data', (res) => {
          if (dead) return;
          const events: WatchEvent[] = res.events.map((ev) => ({
            type: ev.type === 'Delete' || String(ev.type) === '1' ? 'delete' : 'put',
            kv: kvOf(ev.kv),
            ...(ev.prev_kv ? { prev: kvOf(ev.prev_kv) } : {}),
          }));
          if (events.length) handlers.onEvents(events, Number(res.header.revision));
        });
        w.on('disconnected', (err) => fail(toStoreError(err, READ)));
        w.on('error', (err) => {
          // etcd3 drops the response's compact_revision and etcd 3.4 sends no cancel_reason for
          // compaction, so a server-side cancel is reported as one (the remedy, re-list, is the same).
          const e = toStoreError(err, READ);
          fail(/Watcher canceled/.test(e.message) && e.code === 'UNAVAILABLE' ? new StoreError('COMPACTED', `${e.message}(compacted or refused by etcd)`, { cause: err }) : e);
        });
        w.on('end', () => fail(new StoreError('UNAVAILABLE', 'watch ended')));
      })
      .catch((e: unknown) => fail(toStoreError(e, READ)));
    return {
      cancel: async () => {
        dead = true;
        if (watcher) await watcher.cancel().catch(() => undefined);
      },
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.client.close();
  }
}
