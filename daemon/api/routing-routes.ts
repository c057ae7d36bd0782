// HTTP mapping of the routing subsystem's query: GET /v1/routes (query string: mode, limit) answers
// the routed prefixes per path mode. The routing module knows nothing of HTTP; the query string is
// parsed and checked here, with the same 400 answers (code "invalid") nrdctl has always seen.
import type { RoutesApiResponse } from '../routing/api-types.js';
import { PATH_MODES as MODES, type PathMode } from '../routing/types.js';
import { NrdError } from '../lib/errors.js';
import { json, type Router } from './router.js';

/** What the routing subsystem offers the API (RoutingSubsystem implements it). */
export interface RoutingQueries {
  routes(q: { mode?: PathMode; limit?: number }): RoutesApiResponse;
}

export function registerRoutingRoutes(router: Router, routing: RoutingQueries): void {
  router.get('/v1/routes', (req) => {
    const q: { mode?: PathMode; limit?: number } = {};
    const mode = req.query.get('mode');
    if (mode !== null) {
      if (!MODES.includes(mode as PathMode)) throw new NrdError('invalid', 'invalid', `mode must be one of ${MODES.join(', ')}; got ${JSON.stringify(mode)}`);
      q.mode = mode as PathMode;
    }
    const limitText = req.query.get('limit');
    if (limitText !== null) {
      const limit = Number(limitText);
      if (!Number.isInteger(limit) || limit < 0) throw new NrdError('invalid', 'invalid', `limit must be a non-negative integer; got ${JSON.stringify(limitText)}`);
      q.limit = limit;
    }
    return json(routing.routes(q));
  });
}
