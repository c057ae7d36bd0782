// The typed message protocol between the datapath subsystem (main thread) and the datapath worker
// (worker_threads, datapath/worker.ts), which runs every libbpf call: bpf_object__load and the
// verifier take hundreds of milliseconds per object and must not hold up BGP keepalives.
// Messages cross by structured clone (bigint counters included); errors cross as WireError and are
// rebuilt as NrdError when they were one, so readiness reasons and API codes survive the hop.
import type { CtRow, WireServiceOp } from './services.js';
import type { SockReply, SockRequest } from './sock.js';
import type { PolicyApplyArgs } from './policy.js';
import type { EventStats, EventsStartResult } from './events.js';
import { NrdError, type FailureKind } from '../lib/errors.js';
import type { DatapathOptions, DatapathStats, DatapathStatus } from './datapath.js';

/** Every request the worker serves: what it carries and what its reply carries. */
export interface DatapathOps {
  start: { args: DatapathOptions; result: DatapathStatus };
  reconcile: { args: DatapathOptions | null; result: DatapathStatus };
  status: { args: null; result: DatapathStatus };
  stats: { args: null; result: DatapathStats };
  stop: { args: { detach?: boolean }; result: null };
  natGc: { args: null; result: { deletedFlows: number; deletedEntries: number; entries: number } };
  /** Service load balancing (services.ts): map writes, and the nrd_ct connection table. */
  servicesApply: { args: { pinPath: string; ops: WireServiceOp[] }; result: number };
  ctList: { args: { pinPath: string }; result: CtRow[] };
  ctFlush: { args: { pinPath: string; serviceId?: number }; result: number };
  ctGc: { args: { pinPath: string }; result: { deleted: number; entries: number } };
  /** Socket LB for node processes (sock.ts): cgroup links of nrd_sock. */
  sock: { args: SockRequest; result: SockReply };
  /** Identity policy (policy.ts): map writes, then the revision bump. */
  policyApply: { args: PolicyApplyArgs; result: number };
  /** Flow events (events.ts): drain nrd_events in the worker, batches arrive as 'events' messages. */
  eventsStart: { args: { pinPath: string }; result: EventsStartResult };
  eventsStop: { args: null; result: null };
  eventStats: { args: { pinPath: string }; result: EventStats };
}

export type DatapathOp = keyof DatapathOps;

export type DatapathRequest = { [K in DatapathOp]: { id: number; op: K; args: DatapathOps[K]['args'] } }[DatapathOp];

export interface WireError {
  name: string;
  message: string;
  /** Set when the error was an NrdError. */
  kind?: FailureKind;
  /** NrdError code or errno code (BpfError, LibcError, Node's fs errors). */
  code?: string;
  detail?: unknown;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Worker → main thread. */
export type WorkerMessage =
  | { type: 'reply'; id: number; ok: true; result: DatapathOps[DatapathOp]['result'] }
  | { type: 'reply'; id: number; ok: false; error: WireError }
  | { type: 'log'; level: LogLevel; obj: Record<string, unknown>; msg?: string }
  /** Flow-event records drained from the ring buffer in one round (72 bytes each, concatenated). */
  | { type: 'events'; batch: Uint8Array };

export function toWireError(e: unknown): WireError {
  if (e instanceof NrdError) return { name: e.name, message: e.message, kind: e.kind, code: e.code, detail: e.detail };
  if (e instanceof Error) {
    const code = (e as { code?: unknown }).code;
    return { name: e.name, message: e.message, ...(typeof code === 'string' ? { code } : {}) };
  }
  return { name: 'Error', message: String(e) };
}

export function fromWireError(w: WireError): Error {
  if (w.kind !== undefined && w.code !== undefined) return new NrdError(w.kind, w.code, w.message, w.detail);
  const e = new Error(w.message) as Error & { code?: string };
  e.name = w.name;
  if (w.code !== undefined) e.code = w.code;
  return e;
}

/** Log fields made cloneable: an Error becomes { type, message, code }. */
export function toWireLogFields(obj: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(obj)) {
    out[k] = v instanceof Error ? { type: v.name, message: v.message, code: (v as { code?: unknown }).code } : v;
  }
  return out;
}
