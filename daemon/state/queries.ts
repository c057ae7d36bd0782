// Typed queries and commands of the cluster state, as the control API and nrdctl use them: the
// nodes and endpoints as this node sees them, services and policies read from and written to etcd
// (validated first: nothing is written for invalid input), and node decommission. Every failure
// leaves as an NrdError (the one mapping of state-layer and etcd failures is nrdErrorOf); the
// HTTP side of these lives in daemon/api/state-routes.ts.
import { NrdError } from '../lib/errors.js';
import type { DecommissionResponse, EndpointsResponse, NodesResponse, NodeView } from './api-types.js';
import { StateError } from './cidr-alloc.js';
import type { ClusterState } from './cluster-state.js';
import { leaf } from './keys.js';
import type { EndpointSpec } from './ipam.js';
import type { EndpointRecord, PolicyRecord, Result, ServiceRecord } from './records.js';
import { isStoreError } from './store.js';

export interface StateQueries {
  nodes(): NodesResponse;
  /** Endpoints of every node, or of `node` only. */
  endpoints(node?: string): EndpointsResponse;
  /** This node's endpoint records from the watch cache (the endpoints subsystem's view). */
  localEndpoints(): EndpointsResponse;
  /** An endpoint of this node: identity, addresses, reservations and record (idempotent). */
  createEndpoint(spec: Omit<EndpointSpec, 'identity'>): Promise<EndpointRecord>;
  /** Record, reservations and identity reference of an endpoint of this node; false if none. */
  deleteEndpoint(id: string): Promise<boolean>;
  /** Read from etcd, not from the watch cache: an operator who just wrote one sees it. */
  listServices(): Promise<ServiceRecord[]>;
  getService(name: string): Promise<ServiceRecord>;
  setService(input: unknown): Promise<ServiceRecord>;
  deleteService(name: string): Promise<void>;
  listPolicies(): Promise<PolicyRecord[]>;
  getPolicy(name: string): Promise<PolicyRecord>;
  setPolicy(input: unknown): Promise<PolicyRecord>;
  deletePolicy(name: string): Promise<void>;
  /** Free a node's CIDRs, endpoints and addresses (`force`: even when alive or unknown). */
  decommission(node: string, opts: { force: boolean }): Promise<DecommissionResponse>;
}

/** The one mapping of state-layer and etcd failures to domain failures with stable codes. */
export function nrdErrorOf(e: unknown): unknown {
  if (e instanceof NrdError) return e;
  if (isStoreError(e)) {
    const code = e.code === 'AUTH' || e.code === 'PERMISSION' ? 'etcd_refused' : 'etcd_unavailable';
    return new NrdError('unavailable', code, `etcd: ${e.code}: ${e.message}${e.maybeApplied ? ' (the write may have been applied; read back before retrying)' : ''}`);
  }
  if (e instanceof StateError) {
    switch (e.code) {
      case 'INVALID':
      case 'BAD_CONFIG':
        return new NrdError('invalid', 'invalid', e.message);
      case 'NOT_FOUND':
        return new NrdError('not_found', 'not_found', e.message);
      case 'CIDR_CONFLICT':
        return new NrdError('conflict', 'conflict', e.message);
      case 'UNAVAILABLE':
        return new NrdError('unavailable', 'unavailable', e.message);
      default:
        // POOL_EXHAUSTED, CIDR_CONTENTION, IP_EXHAUSTED: the state forbids it now.
        return new NrdError('conflict', e.code.toLowerCase(), e.message);
    }
  }
  return e;
}

const byName = <T extends { name: string }>(a: T, b: T): number => a.name.localeCompare(b.name);
/** IPv4 first, then IPv6, each in text order. */
const byFamily = (a: string, b: string): number => Number(a.includes(':')) - Number(b.includes(':')) || a.localeCompare(b);

export function nodesView(cs: ClusterState, self: string): NodesResponse {
  const claims = new Map<string, string[]>();
  for (const c of cs.cidrs.values()) claims.set(c.node, [...(claims.get(c.node) ?? []), c.cidr]);
  const alive = new Map(cs.alive.entries().map(([k, v]) => [leaf(k), v] as const));
  const records = new Map(cs.nodes.values().map((n) => [n.name, n] as const));
  const names = [...new Set([...records.keys(), ...alive.keys(), ...claims.keys()])].sort();
  const nodes: NodeView[] = [];
  for (const name of names) {
    const rec = records.get(name);
    const v: NodeView = {
      name,
      address: rec?.address ?? alive.get(name)?.address ?? '',
      podCidrs: (claims.get(name) ?? []).sort(byFamily),
      alive: alive.has(name),
      self: name === self,
    };
    if (rec?.vtepMac) v.vtepMac = rec.vtepMac;
    if (rec?.asn !== undefined) v.asn = rec.asn;
    if (rec?.version) v.version = rec.version;
    nodes.push(v);
  }
  const rejected = cs.nodeRejections().map((r) => ({ kind: r.collection, key: r.key, reason: r.reason, message: r.message }));
  return { node: self, synced: cs.nodesSynced, nodes, ...(rejected.length ? { rejected } : {}) };
}

function validated<T>(r: Result<T>): T {
  if (!r.ok) throw new NrdError('invalid', 'invalid', r.reason);
  return r.value;
}

/**
 * Queries over the running ClusterState: `current()` is undefined before start and while the
 * state layer restarts (every call then fails 'unavailable').
 */
export function stateQueries(current: () => ClusterState | undefined, selfName: () => string): StateQueries {
  const run = async <T>(fn: (cs: ClusterState) => Promise<T> | T): Promise<T> => {
    const cs = current();
    if (!cs) throw new NrdError('unavailable', 'unavailable', 'the cluster state is not running (starting or restarting)');
    try {
      return await fn(cs);
    } catch (e) {
      throw nrdErrorOf(e);
    }
  };
  const now = <T>(fn: (cs: ClusterState) => T): T => {
    const cs = current();
    if (!cs) throw new NrdError('unavailable', 'unavailable', 'the cluster state is not running (starting or restarting)');
    return fn(cs);
  };
  const find = <T extends { name: string }>(list: T[], kind: string, name: string): T => {
    const x = list.find((s) => s.name === name);
    if (!x) throw new NrdError('not_found', 'not_found', `no ${kind} ${name}`);
    return x;
  };
  return {
    nodes: () => now((cs) => nodesView(cs, selfName())),
    endpoints: (node) =>
      now((cs) => ({
        node: selfName(),
        synced: cs.endpoints.synced,
        endpoints: cs.endpoints
          .values()
          .filter((e) => node === undefined || e.node === node)
          .sort((a, b) => a.node.localeCompare(b.node) || a.id.localeCompare(b.id)),
      })),
    localEndpoints: () =>
      now((cs) => {
        const self = selfName();
        return { node: self, synced: cs.endpoints.synced, endpoints: cs.endpoints.values().filter((e) => e.node === self) };
      }),
    createEndpoint: (spec) => run((cs) => cs.createEndpoint(spec)),
    deleteEndpoint: (id) => run((cs) => cs.deleteEndpoint(id)),
    listServices: () => run(async (cs) => (await cs.listServices()).sort(byName)),
    getService: (name) => run(async (cs) => find(await cs.listServices(), 'service', name)),
    setService: (input) => run(async (cs) => validated(await cs.setService(input))),
    deleteService: (name) =>
      run(async (cs) => {
        if (!(await cs.deleteService(name))) throw new NrdError('not_found', 'not_found', `no service ${name}`);
      }),
    listPolicies: () => run(async (cs) => (await cs.listPolicies()).sort(byName)),
    getPolicy: (name) => run(async (cs) => find(await cs.listPolicies(), 'policy', name)),
    setPolicy: (input) => run(async (cs) => validated(await cs.setPolicy(input))),
    deletePolicy: (name) =>
      run(async (cs) => {
        if (!(await cs.deletePolicy(name))) throw new NrdError('not_found', 'not_found', `no policy ${name}`);
      }),
    decommission: (name, { force }) =>
      run(async (cs) => {
        // The name becomes etcd keys and key prefixes: it must be a node name before anything else.
        const node = cs.checkNodeName(name);
        const known = nodesView(cs, selfName()).nodes.some((n) => n.name === node);
        if (!known && !force) throw new NrdError('not_found', 'not_found', `no node ${node} in the cluster state (neither record, liveness nor CIDR)`);
        return { node, freedCidrs: await cs.decommission(node, { force }) };
      }),
  };
}
