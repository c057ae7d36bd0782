// Control-API routes of the workload endpoints (HTTP+JSON, RFC 9110 status codes): POST
// /v1/endpoints creates one (the CNI plugin calls the same route), GET/DELETE /v1/endpoints/:name,
// GET /v1/local/endpoints lists this node's endpoints with their host veth and state. (GET
// /v1/endpoints, the etcd records of every node, is the state module's.) The endpoints module
// throws NrdError; the router maps the kind to the status. A second DELETE of the same name is a 404.
import type { EndpointDeleteResponse, EndpointView, LocalEndpointsResponse } from '../endpoints/api-types.js';
import { ApiError, json, type Router } from './router.js';

/** What the routes need of the endpoints subsystem (a fake stands in for it in unit tests). */
export interface EndpointsApi {
  add(body: unknown): Promise<EndpointView>;
  delete(name: string): Promise<void>;
  get(name: string): EndpointView;
  list(): LocalEndpointsResponse;
}

export function registerEndpointsRoutes(router: Router, eps: EndpointsApi): void {
  router.add('POST', '/v1/endpoints', async (req) => {
    if (req.body === undefined) throw new ApiError(400, 'invalid', 'endpoint: request body is empty (expected {name, netns, ifname?, labels?})');
    return json((await eps.add(req.body)) satisfies EndpointView, 201);
  });
  router.get('/v1/endpoints/:name', (req) => json(eps.get(req.params.name!) satisfies EndpointView));
  router.add('DELETE', '/v1/endpoints/:name', async (req) => {
    await eps.delete(req.params.name!);
    return json({ deleted: req.params.name! } satisfies EndpointDeleteResponse);
  });
  router.get('/v1/local/endpoints', () => json(eps.list() satisfies LocalEndpointsResponse));
}
