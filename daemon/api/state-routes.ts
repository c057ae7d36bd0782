// Control-API routes of the cluster state (HTTP+JSON, RFC 9110 status codes): nodes and endpoints
// as this node sees them, services and policies read from and written to etcd (invalid input is a
// 400 with the reason and nothing is written), and node decommission. The state module answers
// through its typed queries and throws NrdError; the router maps the kind to the status.
import type { DecommissionResponse, DeleteResponse, EndpointsResponse, PoliciesResponse, ServiceDatapathView, ServicesResponse } from '../state/api-types.js';
import type { StateQueries } from '../state/queries.js';
import { ApiError, json, type ApiRequest, type Router } from './router.js';

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

/** This node's datapath view of the services, by name (the datapath subsystem's serviceStatus). */
export type ServiceDatapathSource = () => ReadonlyMap<string, ServiceDatapathView>;

export function registerStateRoutes(router: Router, state: StateQueries, datapathServices?: ServiceDatapathSource): void {
  router.get('/v1/nodes', () => json(state.nodes()));
  router.add('POST', '/v1/nodes/:name/decommission', async (req) => {
    const force = req.query.get('force') === 'true' || req.query.get('force') === '1';
    return json((await state.decommission(req.params.name!, { force })) satisfies DecommissionResponse);
  });
  router.get('/v1/endpoints', (req) => json(state.endpoints(req.query.get('node') ?? undefined) satisfies EndpointsResponse));

  // Each record as in etcd plus, additively, what this node's datapath does with it.
  router.get('/v1/services', async () => {
    const dp = datapathServices?.() ?? new Map<string, ServiceDatapathView>();
    const services = (await state.listServices()).map((s) => {
      const v = dp.get(s.name);
      return v ? { ...s, datapath: v } : s;
    });
    return json({ services } satisfies ServicesResponse);
  });
  router.get('/v1/services/:name', async (req) => json(await state.getService(req.params.name!)));
  const putService = async (req: ApiRequest) => json(await state.setService(namedBody(req, 'service')));
  router.add('PUT', '/v1/services', putService);
  router.add('PUT', '/v1/services/:name', putService);
  router.add('DELETE', '/v1/services/:name', async (req) => {
    await state.deleteService(req.params.name!);
    return json({ deleted: req.params.name! } satisfies DeleteResponse);
  });

  router.get('/v1/policies', async () => json({ policies: await state.listPolicies() } satisfies PoliciesResponse));
  router.get('/v1/policies/:name', async (req) => json(await state.getPolicy(req.params.name!)));
  const putPolicy = async (req: ApiRequest) => json(await state.setPolicy(namedBody(req, 'policy')));
  router.add('PUT', '/v1/policies', putPolicy);
  router.add('PUT', '/v1/policies/:name', putPolicy);
  router.add('DELETE', '/v1/policies/:name', async (req) => {
    await state.deletePolicy(req.params.name!);
    return json({ deleted: req.params.name! } satisfies DeleteResponse);
  });
}
