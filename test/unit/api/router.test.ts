// Control API router: dispatch, path parameters, and the JSON error contract (404/405/400/500).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ApiError, Router, json } from '../../../daemon/api/router.js';

function router(): Router {
  return new Router()
    .get('/healthz', () => json({ ok: true }))
    .get('/v1/peers/:address', (req) => json({ address: req.params.address, q: req.query.get('q') }))
    .add('POST', '/v1/echo', (req) => json({ got: req.body }, 201))
    .get('/v1/teapot', () => {
      throw new ApiError(418, 'teapot', 'short and stout', { spout: true });
    })
    .get('/v1/crash', () => {
      throw new Error('boom');
    });
}

const get = (url: string, body = '') => router().handle({ method: 'GET', url, body });

test('a registered GET answers 200 with its body', async () => {
  assert.deepEqual(await get('/healthz'), { status: 200, body: { ok: true } });
});

test('path parameters are decoded and the query string is available', async () => {
  const r = await get('/v1/peers/fd00%3A%3A1?q=x');
  assert.equal(r.status, 200);
  assert.deepEqual(r.body, { address: 'fd00::1', q: 'x' });
});

test('unknown path: 404 with {error:{code,message}}', async () => {
  const r = await get('/v1/nothing');
  assert.equal(r.status, 404);
  assert.deepEqual(r.body, { error: { code: 'not_found', message: 'no such endpoint: /v1/nothing' } });
});

test('known path, wrong method: 405 with an Allow header', async () => {
  const r = await router().handle({ method: 'DELETE', url: '/healthz', body: '' });
  assert.equal(r.status, 405);
  assert.equal(r.headers?.allow, 'GET, HEAD');
  assert.equal((r.body as { error: { code: string } }).error.code, 'method_not_allowed');
});

test('HEAD is served by the GET handler', async () => {
  const r = await router().handle({ method: 'HEAD', url: '/healthz', body: '' });
  assert.equal(r.status, 200);
});

test('a body that is not JSON: 400 naming the problem, handler not called', async () => {
  let called = false;
  const r = await new Router()
    .add('POST', '/v1/x', () => {
      called = true;
      return json({});
    })
    .handle({ method: 'POST', url: '/v1/x', body: '{"a":' });
  assert.equal(r.status, 400);
  assert.equal((r.body as { error: { code: string } }).error.code, 'bad_request');
  assert.equal(called, false);
});

test('a JSON body reaches the handler parsed', async () => {
  const r = await router().handle({ method: 'POST', url: '/v1/echo', body: '{"a":[1,2]}' });
  assert.deepEqual(r, { status: 201, body: { got: { a: [1, 2] } } });
});

test('ApiError keeps its status, code and detail; other throws are 500 with the message', async () => {
  assert.deepEqual(await get('/v1/teapot'), {
    status: 418,
    body: { error: { code: 'teapot', message: 'short and stout', detail: { spout: true } } },
  });
  assert.deepEqual(await get('/v1/crash'), { status: 500, body: { error: { code: 'internal', message: 'boom' } } });
});

test('registering the same method and pattern twice is refused', () => {
  assert.throws(() => new Router().get('/a/:x', () => json(1)).get('/a/:y', () => json(2)), /registered twice/);
});

test('property: any request to an unregistered path is a 404 error body, never a throw', async () => {
  const r = router();
  await fc.assert(
    fc.asyncProperty(fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'HEAD', 'BREW'), fc.webPath(), fc.string(), async (method, path, body) => {
      fc.pre(!/^\/(healthz|v1)(\/|$)/.test(path));
      const res = await r.handle({ method, url: path.startsWith('/') ? path : `/${path}`, body });
      assert.ok(res.status === 404 || res.status === 400, `status ${res.status} for ${path}`);
      const err = (res.body as { error: { code: string; message: string } }).error;
      assert.equal(typeof err.code, 'string');
      assert.equal(typeof err.message, 'string');
    }),
    { numRuns: 300 },
  );
});
