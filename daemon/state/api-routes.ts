// Control-API routes of the cluster state (HTTP+JSON, RFC 9110 status codes): nodes and endpoints
// as this node sees them, services and policies read from and written to etcd (validated first:
// invalid input is a 400 with the reason and nothing is written), and node decommission.
import { ApiError, json, type ApiRequest, type ApiResponse, type Router } from '../api/router.js';
import type { DecommissionResponse, DeleteResponse, EndpointsResponse, NodesResponse, NodeView, PoliciesResponse, ServicesResponse } from './api-types.js';
import { StateError } from './cidr-alloc.js';
import type { ClusterState } from './cluster-state.js';
import { leaf } from './keys.js';
import type { Result } from './records.js';
import { isStoreError } from './store.js';

/** Maps state-layer failures to API errors with stable codes. */
export function apiErrorOf(e: unknown): ApiError | unknown {
  if (e instanceof ApiError) return e;
  if (isStoreError(e)) {
    const code = e.code === 'AUTH' || e.code === 'PERMISSION' ? 'etcd_refused' : 'etcd_unavailable';
    return new ApiError(503, code, `etcd: ${e.code}: ${e.message}${e.maybeApplied ? ' (the write may have been applied; read back before retrying)' : ''}`);
  }
  if (e instanceof StateError) {
    switch (e.code) {
      case 'INVALID':
      case 'BAD_CONFIG':
        return new ApiError(400, 'invalid', e.message);
      case 'NOT_FOUND':
        return new ApiError(404, 'not_found', e.message);
      case 'CIDR_CONFLICT':
        return new ApiError(409, 'conflict', e.message);
      case 'UNAVAILABLE':
        return new ApiError(503, 'unavailable', e.message);
      default:
        return new ApiError(409, e.code.toLowerCase(), e.message);
    }
  }
  return e;
}

/** The body of a PUT, with the name taken from the path when the body has none. */
function namedBody(req: ApiRequest, kind: string): unknown {
  const body = req.body;
  if (body === undefined) throw new ApiError(400, 'invalid', `${kind}: request body is empty (expected a JSON object)`);
  const pathName = req.params.name;
  if (pathName === undefined || typeof body !== 'object' || body === null || Array.isArray(body)) return body;
  const o = body as Record<string, unknown>;
  if (o.name === undefined) return { name: pathName, ...o };
  if (o.name !== pathName) throw new ApiError(400, 'invalid', `${kind}.name: "${String(o.name)}" differs from the name in the path ("${pathName}")`);
  return body;
}

function validated<T>(r: Result<T>): T {
  if (!r.ok) throw new ApiError(400, 'invalid', r.reason);
  return r.value;
}

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
      podCidrs: (claims.get(name) ?? []).sort((a, b) => Number(a.includes(':')) - Number(b.includes(':')) || a.localeCompare(b)),
      alive: alive.has(name),
      self: name === self,
    };
    if (rec?.vtepMac) v.vtepMac = rec.vtepMac;
    if (rec?.asn !== undefined) v.asn = rec.asn;
    if (rec?.version) v.version = rec.version;
    nodes.push(v);
  }
  return { node: self, synced: cs.nodesSynced, nodes };
}

/**
 * Registers the routes; `current()` returns the running ClusterState (undefined before start or
 * while the state layer restarts: 503).
 */
export function registerStateRoutes(router: Router, current: () => ClusterState | undefined, selfName: () => string): void {
  const wrap =
    (fn: (cs: ClusterState, req: ApiRequest) => Promise<ApiResponse> | ApiResponse) =>
    async (req: ApiRequest): Promise<ApiResponse> => {
      const cs = current();
      if (!cs) throw new ApiError(503, 'unavailable', 'the cluster state is not running (starting or restarting)');
      try {
        return await fn(cs, req);
      } catch (e) {
        throw apiErrorOf(e);
      }
    };

  router.get(
    '/v1/nodes',
    wrap((cs) => json(nodesView(cs, selfName()))),
  );
  router.add(
    'POST',
    '/v1/nodes/:name/decommission',
    wrap(async (cs, req) => {
      const name = req.params.name!;
      const force = req.query.get('force') === 'true' || req.query.get('force') === '1';
      const known = nodesView(cs, selfName()).nodes.some((n) => n.name === name);
      if (!known && !force) throw new ApiError(404, 'not_found', `no node ${name} in the cluster state (neither record, liveness nor CIDR)`);
      const freed = await cs.decommission(name, { force });
      return json({ node: name, freedCidrs: freed } satisfies DecommissionResponse);
    }),
  );
  router.get(
    '/v1/endpoints',
    wrap((cs, req) => {
      const node = req.query.get('node');
      const endpoints = cs.endpoints
        .values()
        .filter((e) => node === null || e.node === node)
        .sort((a, b) => a.node.localeCompare(b.node) || a.id.localeCompare(b.id));
      return json({ node: selfName(), synced: cs.endpoints.synced, endpoints } satisfies EndpointsResponse);
    }),
  );

  // Services and policies are read from etcd, not from the watch cache: an operator who just
  // wrote one must see it (read-your-writes), and a refused read says etcd is down.
  router.get(
    '/v1/services',
    wrap(async (cs) => json({ services: (await cs.listServices()).sort((a, b) => a.name.localeCompare(b.name)) } satisfies ServicesResponse)),
  );
  router.get(
    '/v1/services/:name',
    wrap(async (cs, req) => {
      const s = (await cs.listServices()).find((x) => x.name === req.params.name);
      if (!s) throw new ApiError(404, 'not_found', `no service ${req.params.name}`);
      return json(s);
    }),
  );
  const putService = wrap(async (cs, req) => json(validated(await cs.setService(namedBody(req, 'service')))));
  router.add('PUT', '/v1/services', putService);
  router.add('PUT', '/v1/services/:name', putService);
  router.add(
    'DELETE',
    '/v1/services/:name',
    wrap(async (cs, req) => {
      if (!(await cs.deleteService(req.params.name!))) throw new ApiError(404, 'not_found', `no service ${req.params.name}`);
      return json({ deleted: req.params.name! } satisfies DeleteResponse);
    }),
  );

  router.get(
    '/v1/policies',
    wrap(async (cs) => json({ policies: (await cs.listPolicies()).sort((a, b) => a.name.localeCompare(b.name)) } satisfies PoliciesResponse)),
  );
  router.get(
    '/v1/policies/:name',
    wrap(async (cs, req) => {
      const p = (await cs.listPolicies()).find((x) => x.name === req.params.name);
      if (!p) throw new ApiError(404, 'not_found', `no policy ${req.params.name}`);
      return json(p);
    }),
  );
  const putPolicy = wrap(async (cs, req) => json(validated(await cs.setPolicy(namedBody(req, 'policy')))));
  router.add('PUT', '/v1/policies', putPolicy);
  router.add('PUT', '/v1/policies/:name', putPolicy);
  router.add(
    'DELETE',
    '/v1/policies/:name',
    wrap(async (cs, req) => {
      if (!(await cs.deletePolicy(req.params.name!))) throw new ApiError(404, 'not_found', `no policy ${req.params.name}`);
      return json({ deleted: req.params.name! } satisfies DeleteResponse);
    }),
  );
}
