// HTTP mapping of the BFD subsystem's query: GET /v1/bfd answers every BFD session (RFC 5880) with
// its state, negotiated intervals and last diagnostic. The BFD module knows nothing of HTTP.
import type { BfdQueries } from '../bfd/subsystem.js';
import { json, type Router } from './router.js';

export function registerBfdRoutes(router: Router, bfd: BfdQueries): void {
  router.get('/v1/bfd', async () => json(await bfd.sessions()));
}
