// Node registry and CIDR reclaim: the node record (ownership, no lease) is separate from the
// liveness key (short lease). A dead node's CIDRs, endpoints and addresses are freed only after
// its liveness key has been gone longer than a grace period on two checks, or by decommission.
import type { Logger } from '../lib/log.js';
import { StateError } from './cidr-alloc.js';
import type { Keys } from './keys.js';
import { decodeCidrClaim, type NodeRecord } from './records.js';
import { absent, modIs, type Compare, type Store, type TxnOp } from './store.js';

/**
 * Pure core of the reclaim decision. Time is the observer's own clock from the moment it first
 * saw the node without liveness (never a timestamp written by another machine: clocks skew).
 */
export class ReclaimTracker {
  private readonly deadSince = new Map<string, number>();
  private readonly pastGrace = new Map<string, number>();

  constructor(private readonly graceMs: number) {}

  /**
   * One check. `owners` = nodes holding CIDRs; `alive` = nodes with a liveness key. Returns the
   * nodes whose liveness has been gone past the grace period on this check and the previous one.
   */
  observe(now: number, owners: Iterable<string>, alive: ReadonlySet<string>): string[] {
    const out: string[] = [];
    const seen = new Set<string>();
    for (const n of owners) {
      if (seen.has(n)) continue;
      seen.add(n);
      if (alive.has(n)) {
        this.deadSince.delete(n);
        this.pastGrace.delete(n);
        continue;
      }
      const since = this.deadSince.get(n) ?? now;
      this.deadSince.set(n, since);
      if (now - since < this.graceMs) continue;
      const count = (this.pastGrace.get(n) ?? 0) + 1;
      this.pastGrace.set(n, count);
      if (count >= 2) out.push(n);
    }
    for (const n of [...this.deadSince.keys()]) {
      if (!seen.has(n)) {
        this.deadSince.delete(n);
        this.pastGrace.delete(n);
      }
    }
    return out.sort();
  }

  forget(node: string): void {
    this.deadSince.delete(node);
    this.pastGrace.delete(node);
  }
}

/**
 * Free everything a node holds in one transaction, guarded by "its liveness key is absent" and
 * "its CIDR keys are unchanged" so a node that came back, or a concurrent reclaim, wins.
 * Returns the CIDRs freed (empty when the guard failed or there was nothing).
 */
export async function reclaimNode(store: Store, keys: Keys, node: string, opts: { force?: boolean; log?: Logger } = {}): Promise<string[]> {
  const aliveKey = keys.aliveKey(node);
  const { kv: alive } = await store.get(aliveKey);
  if (alive && !opts.force) throw new StateError('CIDR_CONFLICT', `node ${node} is alive (liveness key present); refusing to free its CIDRs`);
  const listed = await store.list(keys.cidrs);
  const mine = listed.kvs.filter((kv) => decodeCidrClaim(kv.value)?.node === node);
  const compares: Compare[] = mine.map((kv) => modIs(kv.key, kv.modRevision));
  if (!opts.force) compares.push(absent(aliveKey));
  const ops: TxnOp[] = [
    ...mine.map((kv): TxnOp => ({ type: 'delete', key: kv.key })),
    { type: 'delete', key: keys.node(node) },
    { type: 'deletePrefix', prefix: keys.nodeEndpoints(node) },
    { type: 'deletePrefix', prefix: keys.nodeIps(node) },
  ];
  if (opts.force) ops.push({ type: 'delete', key: aliveKey });
  const r = await store.txn(compares, ops);
  if (!r.succeeded) {
    opts.log?.info({ node }, 'reclaim guard failed (node came back or changed); nothing freed');
    return [];
  }
  const cidrs = mine.map((kv) => keys.parseCidrKey(kv.key)?.cidr ?? kv.key);
  opts.log?.warn({ node, cidrs }, 'node reclaimed');
  return cidrs;
}

export function nodeRecordEqual(a: NodeRecord, b: NodeRecord): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
