// Prometheus metrics of the cluster-state layer (prom-client): etcd reachability and requests,
// re-lists, lease re-grants, endpoint address allocations, pod-CIDR claims per family, and records
// refused on admission.
import { Counter, Gauge, type Registry } from 'prom-client';
import type { ClusterState } from './cluster-state.js';
import type { RequestOp, RequestResult } from './instrumented-store.js';
import { parseCidr, subnetCount } from './ipnet.js';
import type { PoolConfig } from './cidr-alloc.js';

export interface StateMetrics {
  /** Counts one etcd request (wired as ClusterState's onRequest). */
  request(op: RequestOp, result: RequestResult): void;
  /** Counts one record refused on admission (wired as ClusterState's onReject). */
  rejected(kind: string, reason: string): void;
  /** The instance whose counters the collectors read (replaced when the state layer restarts). */
  attach(cs: ClusterState | undefined, pools: PoolConfig[]): void;
}

/**
 * Counters that live in ClusterState (lists per collection, lease grants, allocations) are read at
 * scrape time and added as deltas, so they keep counting up across a state-layer restart.
 */
export function createStateMetrics(registry: Registry): StateMetrics {
  let cs: ClusterState | undefined;
  let pools: PoolConfig[] = [];
  let seenLists = new Map<string, number>();
  let seenGrants = 0;
  let seenAllocs = 0;

  new Gauge({
    name: 'nrd_etcd_up',
    help: '1 when every watched etcd collection is listed and watching (etcd answers), else 0.',
    registers: [registry],
    collect() {
      const up = cs !== undefined && cs.status().collections.every((c) => c.connected);
      this.set(up ? 1 : 0);
    },
  });

  const requests = new Counter({
    name: 'nrd_etcd_requests_total',
    help: 'etcd requests by operation (get, list, txn, put, delete, lease_grant, watch) and result (ok; conflict: a txn whose compares failed; else the error: unavailable, compacted, auth, …). A watch counts once when started (ok) and once when it ends (the reason).',
    labelNames: ['op', 'result'],
    registers: [registry],
  });

  const rejected = new Counter({
    name: 'nrd_state_rejected_records_total',
    help: 'Records read from etcd and refused before use (treated as absent), by kind (the collection: nodes, alive, cidrs, endpoints, identities, services, policies) and reason (malformed, bad_name, bad_address, bad_mac, bad_asn, bad_key, bad_cidr, outside_pool, wrong_mask, invalid). Counted once per value written; `nrdctl nodes` lists the refused node records.',
    labelNames: ['kind', 'reason'],
    registers: [registry],
  });

  new Counter({
    name: 'nrd_etcd_relists_total',
    help: 'Re-lists of a watched collection after its watch ended (compaction, disconnect, error); the first listing is not counted.',
    labelNames: ['collection'],
    registers: [registry],
    collect() {
      if (!cs) return;
      for (const c of cs.status().collections) {
        const relists = Math.max(0, c.lists - 1);
        const prev = seenLists.get(c.name) ?? 0;
        if (relists > prev) this.inc({ collection: c.name }, relists - prev);
        else this.inc({ collection: c.name }, 0);
        seenLists.set(c.name, Math.max(prev, relists));
      }
    },
  });

  new Counter({
    name: 'nrd_etcd_lease_regrants_total',
    help: 'Liveness leases granted again after the previous one was reported lost.',
    registers: [registry],
    collect() {
      if (!cs) return;
      const regrants = Math.max(0, cs.status().lease.grants - 1);
      if (regrants > seenGrants) this.inc(regrants - seenGrants);
      seenGrants = Math.max(seenGrants, regrants);
    },
  });

  new Counter({
    name: 'nrd_ipam_allocations_total',
    help: 'Endpoints given addresses from this node\'s pod CIDRs (a retried create that finds its endpoint is not counted).',
    registers: [registry],
    collect() {
      if (!cs) return;
      const n = cs.ipamAllocations();
      if (n > seenAllocs) this.inc(n - seenAllocs);
      seenAllocs = Math.max(seenAllocs, n);
    },
  });

  new Gauge({
    name: 'nrd_cidr_allocated',
    help: 'Node pod CIDRs claimed in the cluster pool of the family (as this node\'s watch sees them).',
    labelNames: ['family'],
    registers: [registry],
    collect() {
      this.reset();
      if (!cs) return;
      const counts: Record<string, number> = {};
      for (const p of pools) counts[p.name] = 0;
      for (const c of cs.cidrs.values()) if (c.pool in counts) counts[c.pool]!++;
      for (const [family, n] of Object.entries(counts)) this.set({ family }, n);
    },
  });

  new Gauge({
    name: 'nrd_cidr_pool_size',
    help: 'Node pod CIDRs the cluster pool of the family can hold (compare with nrd_cidr_allocated).',
    labelNames: ['family'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of pools) {
        const n = subnetCount(parseCidr(p.cidr), p.maskSize);
        this.set({ family: p.name }, Number(n > BigInt(Number.MAX_SAFE_INTEGER) ? BigInt(Number.MAX_SAFE_INTEGER) : n));
      }
    },
  });

  return {
    request(op, result) {
      requests.inc({ op, result });
    },
    rejected(kind, reason) {
      rejected.inc({ kind, reason });
    },
    attach(next, nextPools) {
      if (next !== cs) {
        // A new instance counts from zero: its first listing and first lease are not re-counted.
        seenLists = new Map();
        seenGrants = 0;
        seenAllocs = 0;
      }
      cs = next;
      pools = nextPools;
    },
  };
}
