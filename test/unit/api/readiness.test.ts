// Readiness registry and /readyz: overall readiness, reasons in start order, change events.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadinessRegistry, type ReadinessSnapshot } from '../../../daemon/lib/health.js';
import { Router } from '../../../daemon/api/router.js';
import { registerCoreRoutes } from '../../../daemon/api/routes.js';
import type { StatusResponse } from '../../../daemon/api/types.js';

const fixed = () => new Date('2025-01-01T00:00:00Z');

test('nothing registered is not ready; all registered and ready is ready', () => {
  const r = new ReadinessRegistry(fixed);
  assert.equal(r.isReady(), false);
  const api = r.register('api');
  const bgp = r.register('bgp');
  assert.equal(r.isReady(), false);
  api({ ready: true });
  assert.equal(r.isReady(), false);
  bgp({ ready: true });
  assert.equal(r.isReady(), true);
  bgp({ ready: false, reason: 'peer 192.0.2.1 in Active: ECONNREFUSED' });
  assert.equal(r.isReady(), false);
  assert.deepEqual(r.notReady().map((s) => [s.name, s.reason]), [['bgp', 'peer 192.0.2.1 in Active: ECONNREFUSED']]);
});

test('summary names each waiting subsystem with its reason, in registration order', () => {
  const r = new ReadinessRegistry(fixed);
  const a = r.register('api');
  r.register('state', { ready: false, reason: 'etcd unreachable' });
  r.register('bgp');
  assert.equal(r.summary(), 'waiting for api: starting; state: etcd unreachable; bgp: starting');
  a({ ready: true });
  assert.equal(r.summary(), 'waiting for state: etcd unreachable; bgp: starting');
});

test('listeners fire on readiness or reason changes, not on detail-only updates', () => {
  const r = new ReadinessRegistry(fixed);
  const seen: ReadinessSnapshot[] = [];
  r.onChange((s) => seen.push(s));
  const api = r.register('api');
  api({ ready: true, detail: { n: 1 } });
  api({ ready: true, detail: { n: 2 } });
  api({ ready: false, reason: 'x' });
  assert.equal(seen.length, 3);
  assert.deepEqual(r.get('api')?.detail, undefined);
});

test('registering a name twice or setting an unknown one is a bug', () => {
  const r = new ReadinessRegistry(fixed);
  r.register('api');
  assert.throws(() => r.register('api'), /twice/);
  assert.throws(() => r.set('bgp', { ready: true }), /unknown/);
});

test('/readyz: 503 naming the subsystem and reason, then 200', async () => {
  const readiness = new ReadinessRegistry(fixed);
  const router = new Router();
  registerCoreRoutes(router, { readiness, status: () => ({}) as StatusResponse });
  readiness.register('api', { ready: true });
  const bgp = readiness.register('bgp', { ready: false, reason: 'no peer established', detail: { peers: 1 } });
  let r = await router.handle({ method: 'GET', url: '/readyz', body: '' });
  assert.equal(r.status, 503);
  assert.deepEqual(r.body, { ready: false, notReady: [{ name: 'bgp', reason: 'no peer established', detail: { peers: 1 } }] });
  bgp({ ready: true });
  r = await router.handle({ method: 'GET', url: '/readyz', body: '' });
  assert.deepEqual(r, { status: 200, body: { ready: true, notReady: [] } });
  r = await router.handle({ method: 'GET', url: '/healthz', body: '' });
  assert.deepEqual(r, { status: 200, body: { ok: true } });
});
