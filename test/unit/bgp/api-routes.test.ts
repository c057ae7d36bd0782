// The BGP routes of the control API (daemon/api/bgp-routes.ts) over a fake BgpQueries: paths,
// query-string parsing, JSON bodies, and each NrdError's HTTP status and stable code (the same
// as when the subsystem published them itself: nrdctl relies on them).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router } from '../../../daemon/api/router.js';
import { registerBgpRoutes } from '../../../daemon/api/bgp-routes.js';
import type { BgpQueries, RoutesQuery } from '../../../daemon/bgp/subsystem.js';
import { NrdError } from '../../../daemon/lib/errors.js';

function setup(running = true) {
  const calls: unknown[] = [];
  const down = (): never => {
    throw new NrdError('unavailable', 'bgp_not_running', 'the BGP speaker is not running');
  };
  const known = (a: string): void => {
    if (a !== '192.0.2.2') throw new NrdError('not_found', 'unknown_peer', `no BGP peer ${a}`);
  };
  const bgp: BgpQueries = {
    peers: () => (running ? { asn: 65001, routerId: '192.0.2.1', peers: [] } : down()),
    routes: (q: RoutesQuery) => {
      if (!running) down();
      calls.push(q);
      return { total: 0, truncated: false, routes: [] };
    },
    refreshPeer: (a, f) => {
      if (!running) down();
      known(a);
      calls.push(['refresh', a, f]);
    },
    resetPeer: (a) => {
      if (!running) down();
      known(a);
      calls.push(['reset', a]);
    },
  };
  const router = new Router();
  registerBgpRoutes(router, bgp);
  const req = (method: string, url: string) => router.handle({ method, url, body: '' });
  return { req, calls };
}

const code = (body: unknown): string | undefined => (body as { error?: { code: string } }).error?.code;

test('GET /v1/peers and /v1/bgp/routes pass the parsed query; bad family and limit are 400', async () => {
  const { req, calls } = setup();
  assert.deepEqual((await req('GET', '/v1/peers')).body, { asn: 65001, routerId: '192.0.2.1', peers: [] });
  const ok = await req('GET', '/v1/bgp/routes?family=ipv6&peer=192.0.2.2&prefix=fd00::/64&limit=5');
  assert.equal(ok.status, 200);
  assert.deepEqual(calls, [{ family: 'ipv6', peer: '192.0.2.2', prefix: 'fd00::/64', limit: 5 }]);
  const f = await req('GET', '/v1/bgp/routes?family=ipx');
  assert.deepEqual([f.status, code(f.body)], [400, 'bad_family']);
  const l = await req('GET', '/v1/bgp/routes?limit=0');
  assert.deepEqual([l.status, code(l.body)], [400, 'bad_limit']);
});

test('refresh and reset: 200 with the address, 404 unknown_peer, 400 bad_family, 503 bgp_not_running', async () => {
  const { req, calls } = setup();
  assert.deepEqual((await req('POST', '/v1/peers/192.0.2.2/refresh?family=ipv4')).body, { refreshed: '192.0.2.2' });
  assert.deepEqual((await req('POST', '/v1/peers/192.0.2.2/reset')).body, { reset: '192.0.2.2' });
  assert.deepEqual(calls, [['refresh', '192.0.2.2', 'ipv4'], ['reset', '192.0.2.2']]);
  const u = await req('POST', '/v1/peers/192.0.2.9/reset');
  assert.deepEqual([u.status, code(u.body)], [404, 'unknown_peer']);
  const b = await req('POST', '/v1/peers/192.0.2.2/refresh?family=x');
  assert.deepEqual([b.status, code(b.body)], [400, 'bad_family']);
  const down = setup(false);
  for (const [m, p] of [['GET', '/v1/peers'], ['GET', '/v1/bgp/routes'], ['POST', '/v1/peers/192.0.2.2/refresh']] as const) {
    const r = await down.req(m, p);
    assert.deepEqual([r.status, code(r.body)], [503, 'bgp_not_running'], p);
  }
});
