// Messages between the BFD worker thread (worker.ts) and the main thread (subsystem.ts), and the
// session view the control API shows (GET /v1/bfd). Plain data: they cross postMessage.
import type { BfdState } from './packet.js';

/**
 * What a session is for: `peer` a bgp.peers[] entry (Down resets its BGP session), `mesh` a
 * node-mesh BGP peer (bgp.nodeMeshBfd: the same), `node` the direct path to another node
 * (routing.bfd: Down moves that node to VXLAN).
 */
export type BfdPurpose = 'peer' | 'mesh' | 'node';

export interface BfdSessionSpec {
  /** The peer's address: also the session key (one session per peer and hop mode). */
  peer: string;
  /** RFC 5883 multihop (UDP 4784, any TTL) instead of RFC 5881 single-hop (3784, TTL 255). */
  multihop: boolean;
  /** Milliseconds (the config unit); the session works in microseconds. */
  minTx: number;
  minRx: number;
  multiplier: number;
  auth?: { type: 'keyed-sha1' | 'meticulous-keyed-sha1'; keyId: number; key: string };
  /** Why the session runs (one session may serve several: a static peer that is also a node). */
  purposes: BfdPurpose[];
  /** The node's name (mesh and node sessions). */
  node?: string;
}

export type ToWorker =
  | { type: 'configure'; sessions: BfdSessionSpec[] }
  | { type: 'snapshot'; id: number }
  /** AdminDown to every peer (they keep their BGP sessions, RFC 5882 §3.2), then close. */
  | { type: 'shutdown' };

export interface BfdSessionView {
  peer: string;
  multihop: boolean;
  purposes: BfdPurpose[];
  node?: string;
  state: BfdState;
  remoteState: BfdState;
  localDiscriminator: number;
  remoteDiscriminator: number;
  /** Name of bfd.LocalDiag: why the session last went down. */
  localDiag: string;
  remoteDiag: string;
  /** Milliseconds, as configured / as negotiated now. */
  configured: { minTx: number; minRx: number; multiplier: number };
  txIntervalMs: number;
  detectionTimeMs: number;
  remoteDetectMult: number;
  polling: boolean;
  auth: string;
  /** Wall-clock ISO time of the last state change. */
  since: string;
  stateChanges: number;
  packets: { rx: number; tx: number; rxDiscarded: number; lastDiscard: string | null };
}

export type FromWorker =
  /** sched: the worker thread's scheduling ("rr:10", "nice:-20" or "default", then " cpu:N" when pinned). */
  | { type: 'ready'; sockets: string[]; sched: string }
  | { type: 'state'; peer: string; multihop: boolean; from: BfdState; to: BfdState; diag: number; remoteState: BfdState; at: string }
  | { type: 'snapshot'; id: number; sessions: BfdSessionView[] }
  | { type: 'error'; peer: string | null; message: string }
  | { type: 'closed' };
