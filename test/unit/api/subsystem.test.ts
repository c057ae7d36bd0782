// The api subsystem on real sockets in a temp dir: serves the router and metrics, moves either
// listener on reload (new one first, old one removed), and reports its readiness.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as net from 'node:net';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry, Gauge } from 'prom-client';
import { loadConfigObject, diffConfig, type NrdConfig } from '../../../daemon/config/index.js';
import { ApiSubsystem } from '../../../daemon/api/subsystem.js';
import { Router, json } from '../../../daemon/api/router.js';
import { silentLogger } from '../../../daemon/lib/log.js';
import type { Readiness } from '../../../daemon/lib/health.js';

function config(socket: string, metrics: string): NrdConfig {
  const r = loadConfigObject({ node: { address: '192.0.2.11' }, api: { socket, metrics } }, { env: {} });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((res) => s.listen({ host: '127.0.0.1', port: 0 }, res));
  const port = (s.address() as net.AddressInfo).port;
  await new Promise<void>((res) => s.close(() => res()));
  return port;
}

function get(opts: http.RequestOptions): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ ...opts, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

test('serves, moves the socket and the metrics listener on reload, and stops cleanly', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nrd-apisub-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const registry = new Registry();
  new Gauge({ name: 'nrd_test_gauge', help: 'test', registers: [registry] }).set(7);
  const router = new Router().get('/v1/ping', () => json({ pong: true }));
  const api = new ApiSubsystem({ router, metrics: registry });
  const reports: Readiness[] = [];
  const a = join(dir, 'a.sock');
  const b = join(dir, 'sub', 'b.sock');
  const c1 = config(a, '');
  await api.start({ config: c1, log: silentLogger(), ready: (r) => reports.push(r) });
  t.after(() => api.stop());
  assert.equal(reports.at(-1)?.ready, true);
  assert.deepEqual(JSON.parse((await get({ socketPath: a, path: '/v1/ping' })).body), { pong: true });
  assert.deepEqual(api.status(), { socket: a, metrics: null, routes: 1 });

  // Move the socket and turn metrics on.
  const c2 = config(b, `127.0.0.1:${await freePort()}`);
  await api.reload(diffConfig(c1, c2), c2);
  assert.equal(existsSync(a), false, 'old socket removed');
  assert.deepEqual(JSON.parse((await get({ socketPath: b, path: '/v1/ping' })).body), { pong: true });
  const st = api.status() as { metrics: string };
  const port = Number(st.metrics.split(':').at(-1));
  assert.ok(port > 0);
  const m = await get({ host: '127.0.0.1', port, path: '/metrics' });
  assert.equal(m.status, 200);
  assert.match(m.body, /^nrd_test_gauge 7$/m);
  assert.equal((await get({ host: '127.0.0.1', port, path: '/other' })).status, 404);

  // Metrics off again.
  const c3 = config(b, '');
  await api.reload(diffConfig(c2, c3), c3);
  await assert.rejects(get({ host: '127.0.0.1', port, path: '/metrics' }), /ECONNREFUSED/);

  await api.stop();
  assert.equal(existsSync(b), false, 'socket removed on stop');
});

// Regression: GET /v1/datapath returned 64-bit BPF counters as bigint; JSON.stringify threw
// outside any handler and the unhandled rejection took the whole daemon down.
test('bigint values in a response are sent as JSON numbers or strings, never crash the server', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nrd-apibig-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const router = new Router()
    .get('/v1/counters', () => json({ small: 42n, huge: 2n ** 64n - 1n }))
    .get('/v1/cyclic', () => {
      const o: Record<string, unknown> = {};
      o.self = o;
      return json(o);
    });
  const api = new ApiSubsystem({ router, metrics: new Registry() });
  const sock = join(dir, 'a.sock');
  await api.start({ config: config(sock, ''), log: silentLogger(), ready: () => undefined });
  t.after(() => api.stop());
  const r = await get({ socketPath: sock, path: '/v1/counters' });
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { small: 42, huge: '18446744073709551615' });
  const c = await get({ socketPath: sock, path: '/v1/cyclic' });
  assert.equal(c.status, 500);
  assert.match(c.body, /not serialisable/);
  assert.equal((await get({ socketPath: sock, path: '/v1/counters' })).status, 200, 'still serving');
});
