// HTTP mapping of identity policy and flow events: GET /v1/policy/:endpoint (the effective rules of
// one endpoint: which policies select it, per-direction enforcement, allowed peers and ports) and
// GET /v1/monitor?endpoint=&verdict=&type= (flow events as NDJSON, chunked, one JSON object per
// line, until the client goes away). The datapath modules know nothing of HTTP.
import type { EndpointPolicyView } from '../datapath/policy.js';
import { type EventSource, EventFilterError, parseEventFilter } from '../datapath/events.js';
import { ApiError, json, streamResponse, type Router } from './router.js';

export interface PolicyQueries {
  explain(endpoint: string): EndpointPolicyView | undefined;
  readonly events: EventSource;
}

export function registerPolicyRoutes(router: Router, q: PolicyQueries): void {
  router.get('/v1/policy/:endpoint', (req) => {
    const view = q.explain(req.params.endpoint!);
    if (!view) throw new ApiError(404, 'not_found', `no endpoint ${req.params.endpoint} in the cluster state`);
    return json(view);
  });
  router.get('/v1/monitor', (req) => {
    let filter;
    try {
      filter = parseEventFilter(req.query);
    } catch (e) {
      if (e instanceof EventFilterError) throw new ApiError(400, e.code, e.message);
      throw e;
    }
    return streamResponse({
      contentType: 'application/x-ndjson; charset=utf-8',
      open: (sink) => q.events.subscribe(filter, (ev) => void sink.write(JSON.stringify(ev) + '\n')),
    });
  });
}
