// The narrow key-value port nrd's cluster state needs from etcd v3 (range, txn, lease, watch),
// with typed errors; implemented by etcd-store.ts (npm etcd3) and by test/lib/fake-store.ts.

/** One key as etcd returns it. Revisions are numbers: etcd's int64 stays far below 2^53 here. */
export interface KV {
  key: string;
  value: string;
  createRevision: number;
  modRevision: number;
  version: number;
  /** Lease id as a decimal string, '0' when none. */
  lease: string;
}

export interface ListResult {
  kvs: KV[];
  /** Store revision at which the list was taken; watch from revision + 1. */
  revision: number;
}

export interface GetResult {
  kv: KV | null;
  revision: number;
}

export type CompareTarget = 'version' | 'mod' | 'create' | 'value';
export type CompareOp = '==' | '!=' | '<' | '>';

export interface Compare {
  key: string;
  target: CompareTarget;
  op: CompareOp;
  /** number for version/mod/create, string for value. */
  value: number | string;
}

export type TxnOp =
  | { type: 'put'; key: string; value: string; lease?: string }
  | { type: 'delete'; key: string }
  | { type: 'deletePrefix'; prefix: string }
  | { type: 'get'; key: string };

export interface TxnResult {
  succeeded: boolean;
  revision: number;
  /** For each `get` op of the branch that ran, in order: the key or null. */
  gets: (KV | null)[];
}

export interface WatchEvent {
  type: 'put' | 'delete';
  kv: KV;
  /** Previous value (watch created with prevKv); absent when etcd had none. */
  prev?: KV;
}

export interface WatchHandlers {
  /** Events of one revision batch; `revision` is the header revision of the response. */
  onEvents(events: WatchEvent[], revision: number): void;
  /**
   * The watch is dead (compaction, disconnect, cancel by the server). Called at most once; the
   * caller re-lists and starts a new watch. After this no onEvents call follows.
   */
  onError(err: StoreError): void;
}

export interface WatchHandle {
  cancel(): Promise<void>;
}

export interface LeaseHandle {
  /** Lease id (decimal string), usable in put ops. */
  readonly id: string;
  /**
   * Called once when the client concludes the lease is lost (keepalive failing past its TTL, or
   * etcd says it is gone). That is the client's verdict, not etcd's: re-grant and re-assert.
   */
  onLost(cb: (err: StoreError) => void): void;
  revoke(): Promise<void>;
  /** Stop keepalives without revoking (the keys expire after the TTL). */
  release(): void;
}

export type StoreErrorCode =
  | 'UNAVAILABLE' // cannot reach etcd, or the request timed out
  | 'COMPACTED' // a watch or read asked for a revision that etcd compacted away
  | 'LEASE_NOT_FOUND'
  | 'AUTH' // authentication failed
  | 'PERMISSION' // authenticated but not allowed
  | 'CLOSED' // the client was closed
  | 'INVALID' // etcd rejected the request as malformed (a bug on our side)
  | 'UNKNOWN';

/** Every failure of the port is one of these; `maybeApplied` marks writes whose reply was lost. */
export class StoreError extends Error {
  readonly code: StoreErrorCode;
  /** True when a write may have been applied although no reply arrived (timeout, reset). */
  readonly maybeApplied: boolean;
  constructor(code: StoreErrorCode, message: string, opts: { maybeApplied?: boolean; cause?: unknown } = {}) {
    super(message, opts.cause !== undefined ? { cause: opts.cause } : undefined);
    this.name = 'StoreError';
    this.code = code;
    this.maybeApplied = opts.maybeApplied ?? false;
  }
}

export function isStoreError(e: unknown, code?: StoreErrorCode): e is StoreError {
  return e instanceof StoreError && (code === undefined || e.code === code);
}

/** The port. All methods reject only with StoreError. */
export interface Store {
  get(key: string): Promise<GetResult>;
  list(prefix: string): Promise<ListResult>;
  txn(compares: Compare[], success: TxnOp[], failure?: TxnOp[]): Promise<TxnResult>;
  put(key: string, value: string, opts?: { lease?: string }): Promise<number>;
  delete(key: string): Promise<number>;
  grantLease(ttlSeconds: number): Promise<LeaseHandle>;
  /** Watch a prefix from a revision (inclusive), with previous values. */
  watch(prefix: string, fromRevision: number, handlers: WatchHandlers): WatchHandle;
  close(): Promise<void>;
}

/** Shorthand compares. */
export const absent = (key: string): Compare => ({ key, target: 'version', op: '==', value: 0 });
export const present = (key: string): Compare => ({ key, target: 'version', op: '>', value: 0 });
export const modIs = (key: string, rev: number): Compare => ({ key, target: 'mod', op: '==', value: rev });
