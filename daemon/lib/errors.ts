// Domain failures with stable codes, independent of any transport: the domain modules (bgp, state,
// routing, datapath) throw NrdError; the control API (daemon/api) alone maps `kind` to an HTTP
// status. See docs/design.md, "Arrows point down".

export type FailureKind =
  /** The request or input is malformed or violates a rule (HTTP 400). */
  | 'invalid'
  /** The named object does not exist (HTTP 404). */
  | 'not_found'
  /** The object exists or the state forbids the change (HTTP 409). */
  | 'conflict'
  /** A dependency (etcd, the speaker, the kernel) cannot serve the request now (HTTP 503). */
  | 'unavailable';

export class NrdError extends Error {
  constructor(
    readonly kind: FailureKind,
    /** Stable machine code, e.g. 'unknown_peer', 'pool_exhausted'. */
    readonly code: string,
    message: string,
    readonly detail?: unknown,
  ) {
    super(message);
    this.name = 'NrdError';
  }
}

export function isNrdError(e: unknown): e is NrdError {
  return e instanceof NrdError;
}
