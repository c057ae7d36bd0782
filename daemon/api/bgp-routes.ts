// HTTP mapping of the BGP subsystem's queries and commands: GET /v1/peers, GET /v1/bgp/routes
// (query string: family, peer, prefix, limit), POST /v1/peers/:address/refresh (RFC 2918 route
// refresh, optional ?family=) and POST /v1/peers/:address/reset. The BGP module knows nothing of
// HTTP: it throws NrdError, which the router maps to 400/404/409/503.
import type { BgpQueries, RoutesQuery } from '../bgp/subsystem.js';
import { familyFromName, IPV4, IPV6 } from '../bgp/speaker/options.js';
import { NrdError } from '../lib/errors.js';
import { json, type Router } from './router.js';

const MAX_LIMIT = 10_000_000;

/** "ipv4", "1/1", "ipv4-unicast" (and the IPv6 forms), as nrdctl and earlier clients send them. */
function familyParam(value: string, message: string): 'ipv4' | 'ipv6' {
  const f = familyFromName(value);
  if (f === IPV4) return 'ipv4';
  if (f === IPV6) return 'ipv6';
  throw new NrdError('invalid', 'bad_family', message);
}

export function registerBgpRoutes(router: Router, bgp: BgpQueries): void {
  router.get('/v1/peers', () => json(bgp.peers()));
  router.get('/v1/bgp/routes', (req) => {
    const q: RoutesQuery = {};
    const family = req.query.get('family');
    if (family) q.family = familyParam(family, `unknown family "${family}" (use ipv4 or ipv6)`);
    const peer = req.query.get('peer');
    if (peer) q.peer = peer;
    const prefix = req.query.get('prefix');
    if (prefix) q.prefix = prefix;
    const limit = req.query.get('limit');
    if (limit !== null) {
      const n = Number(limit);
      if (!Number.isInteger(n) || n < 1 || n > MAX_LIMIT) throw new NrdError('invalid', 'bad_limit', `limit must be an integer 1..${MAX_LIMIT}, got "${limit}"`);
      q.limit = n;
    }
    return json(bgp.routes(q));
  });
  router.add('POST', '/v1/peers/:address/refresh', (req) => {
    const address = req.params.address!;
    const family = req.query.get('family') ?? undefined;
    bgp.refreshPeer(address, family === undefined ? undefined : familyParam(family, `unknown family "${family}"`));
    return json({ refreshed: address });
  });
  router.add('POST', '/v1/peers/:address/reset', (req) => {
    const address = req.params.address!;
    bgp.resetPeer(address);
    return json({ reset: address });
  });
}
