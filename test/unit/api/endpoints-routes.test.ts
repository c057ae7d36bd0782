// The endpoints' HTTP mapping over a fake subsystem: POST 201 with the endpoint, NrdError kinds to
// 400/404/409/503, an empty body refused before the subsystem is called, DELETE and GET by name,
// GET /v1/local/endpoints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router } from '../../../daemon/api/router.js';
import { registerEndpointsRoutes, type EndpointsApi } from '../../../daemon/api/endpoints-routes.js';
import type { EndpointView } from '../../../daemon/endpoints/api-types.js';
import { NrdError } from '../../../daemon/lib/errors.js';

const view = (name: string): EndpointView => ({
  name,
  node: 'n1',
  netns: '/run/netns/w',
  ifname: 'eth0',
  ips: ['10.244.1.2'],
  gateways: ['169.254.1.1'],
  mac: '02:00:00:00:00:01',
  gatewayMac: '02:6e:72:64:00:01',
  hostIfname: 'nrdv0123456789a',
  hostIfindex: 4,
  identity: 1,
  labels: {},
  state: 'ready',
});

function setup() {
  const calls: string[] = [];
  const api: EndpointsApi = {
    add: async (body) => {
      calls.push(`add ${JSON.stringify(body)}`);
      const name = (body as { name?: string }).name;
      if (name === 'taken') throw new NrdError('conflict', 'conflict', 'endpoint taken exists already');
      if (name === 'bad') throw new NrdError('invalid', 'invalid', 'endpoint.name: bad');
      if (name === 'down') throw new NrdError('unavailable', 'unavailable', 'etcd down');
      return view(name ?? '?');
    },
    delete: async (name) => {
      calls.push(`del ${name}`);
      if (name !== 'a') throw new NrdError('not_found', 'not_found', `no endpoint ${name}`);
    },
    get: (name) => {
      if (name !== 'a') throw new NrdError('not_found', 'not_found', `no endpoint ${name}`);
      return view('a');
    },
    list: () => ({ node: 'n1', synced: true, endpoints: [view('a')] }),
  };
  const router = new Router();
  registerEndpointsRoutes(router, api);
  const req = async (method: 'GET' | 'POST' | 'DELETE', url: string, body = '') => {
    const r = await router.handle({ method, url, body });
    return { status: r.status, body: r.body as Record<string, unknown> };
  };
  return { req, calls };
}

test('POST /v1/endpoints: 201 with the endpoint; kinds map to 400, 409, 503', async () => {
  const { req, calls } = setup();
  const ok = await req('POST', '/v1/endpoints', JSON.stringify({ name: 'a', netns: '/run/netns/w' }));
  assert.equal(ok.status, 201);
  assert.equal(ok.body.hostIfname, 'nrdv0123456789a');
  assert.equal((await req('POST', '/v1/endpoints', JSON.stringify({ name: 'bad' }))).status, 400);
  const c = await req('POST', '/v1/endpoints', JSON.stringify({ name: 'taken' }));
  assert.equal(c.status, 409);
  assert.deepEqual(c.body, { error: { code: 'conflict', message: 'endpoint taken exists already' } });
  assert.equal((await req('POST', '/v1/endpoints', JSON.stringify({ name: 'down' }))).status, 503);
  const n = calls.length;
  assert.equal((await req('POST', '/v1/endpoints')).status, 400);
  assert.equal(calls.length, n, 'an empty body never reaches the subsystem');
});

test('DELETE and GET /v1/endpoints/:name; GET /v1/local/endpoints', async () => {
  const { req } = setup();
  assert.deepEqual((await req('DELETE', '/v1/endpoints/a')).body, { deleted: 'a' });
  assert.equal((await req('DELETE', '/v1/endpoints/b')).status, 404);
  assert.equal((await req('GET', '/v1/endpoints/a')).body.name, 'a');
  assert.equal((await req('GET', '/v1/endpoints/zz')).status, 404);
  const l = await req('GET', '/v1/local/endpoints');
  assert.equal(l.status, 200);
  assert.equal((l.body.endpoints as unknown[]).length, 1);
});
