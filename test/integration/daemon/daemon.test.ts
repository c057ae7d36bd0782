// nrd as systemd runs it, one child process through its life: sd_notify READY/STATUS/WATCHDOG
// on a datagram socket the test binds, the control API and nrdctl through the unix socket (0600),
// Prometheus metrics, SIGHUP reloads (log level applied live; a broken file rejected and logged
// while the daemon keeps serving), and SIGTERM (STOPPING=1, exit 0, socket removed).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import type { StatusResponse } from '../../../daemon/api/types.js';
import { waitFor } from '../../lib/wait.js';
import {
  NRDCTL,
  NotifyReceiver,
  freePort,
  runNode,
  siteYaml,
  spawnNrd,
  tempDir,
  uniqueName,
  type NrdProcess,
} from './harness.js';

let tmp: ReturnType<typeof tempDir>;
let notify: NotifyReceiver;
let nrd: NrdProcess;
let socket: string;
let metricsPort: number;

function get(path: string): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath: socket, path }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      })
      .on('error', reject);
  });
}

function scrape(): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port: metricsPort, path: '/metrics' }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d: string) => (body += d));
        res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode}`))));
      })
      .on('error', reject);
  });
}

async function status(): Promise<StatusResponse> {
  const r = await get('/v1/status');
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body) as StatusResponse;
}

before(async () => {
  tmp = tempDir('nrdt-daemon');
  // A nested, not-yet-existing directory: nrd must create it (0755) like RuntimeDirectory would.
  socket = join(tmp.dir, 'run', 'nrd', 'nrd.sock');
  metricsPort = await freePort();
  notify = new NotifyReceiver(`@${uniqueName('notify')}`);
  nrd = spawnNrd({
    dir: tmp.dir,
    site: siteYaml({ socket, metricsPort }),
    // 200 ms watchdog: WATCHDOG=1 every 100 ms.
    env: { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '200000' },
  });
});

after(async () => {
  await nrd?.kill();
  notify?.close();
  tmp?.cleanup();
});

test('sd_notify: READY=1 with a STATUS once the api subsystem is up', async () => {
  const msg = await notify.waitFor('READY', '1');
  assert.match(msg, /^STATUS=ready \(api\)$/m, msg);
  assert.equal(notify.count('READY', '1'), 1, 'READY=1 is sent once');
});

test('sd_notify: WATCHDOG=1 keeps coming at half of WATCHDOG_USEC', async () => {
  await notify.waitFor('WATCHDOG', '1');
  const before = notify.count('WATCHDOG', '1');
  await waitFor(() => notify.count('WATCHDOG', '1') >= before + 3, { timeoutMs: 5000, what: 'three more WATCHDOG=1' });
});

test('the control socket is 0600 in a 0755 directory nrd created', () => {
  const st = statSync(socket);
  assert.ok(st.isSocket());
  assert.equal(st.mode & 0o777, 0o600);
  assert.equal(statSync(join(tmp.dir, 'run', 'nrd')).mode & 0o777, 0o755);
});

test('API: /healthz, /readyz and /v1/status; errors are JSON', async () => {
  assert.deepEqual(JSON.parse((await get('/healthz')).body), { ok: true });
  const ready = await get('/readyz');
  assert.equal(ready.status, 200);
  assert.deepEqual(JSON.parse(ready.body), { ready: true, notReady: [] });
  const st = await status();
  assert.equal(st.node, 'nrdt-node');
  assert.equal(st.ready, true);
  assert.equal(st.pid, nrd.pid);
  assert.equal(st.config.node.address, '192.0.2.11');
  assert.equal(st.config.api.socket, socket);
  assert.deepEqual(st.subsystems.map((s) => [s.name, s.ready]), [['api', true]]);
  const missing = await get('/v1/nope');
  assert.equal(missing.status, 404);
  assert.equal(JSON.parse(missing.body).error.code, 'not_found');
});

test('nrdctl status -o json round-trips through the socket; the table names the node', async () => {
  const j = await runNode(NRDCTL, ['--socket', socket, 'status', '-o', 'json']);
  assert.equal(j.code, 0, j.stderr);
  const body = JSON.parse(j.stdout) as StatusResponse;
  assert.equal(body.node, 'nrdt-node');
  assert.equal(body.pid, nrd.pid);
  const t = await runNode(NRDCTL, ['status'], { NRD_SOCKET: socket });
  assert.equal(t.code, 0, t.stderr);
  assert.match(t.stdout, /^Node:\s+nrdt-node \(192\.0\.2\.11/m);
  assert.match(t.stdout, /^State:\s+ready$/m);
  assert.match(t.stdout, /^api\s+yes\s/m);
});

test('metrics: nrd_ names on the configured TCP address', async () => {
  const text = await scrape();
  assert.match(text, /^nrd_up 1$/m);
  assert.match(text, /^nrd_ready 1$/m);
  assert.match(text, /^nrd_subsystem_ready\{subsystem="api"\} 1$/m);
  assert.match(text, /^nrd_build_info\{version="[^"]+",node="nrdt-node",nodejs="v\d+/m);
  assert.match(text, /^nrd_config_reloads_total\{result="applied"\} 0$/m);
  assert.match(text, /^nrd_process_resident_memory_bytes \d+/m);
  const foreign = text.split('\n').filter((l) => l && !l.startsWith('#') && !l.startsWith('nrd_'));
  assert.deepEqual(foreign, [], 'every metric is named nrd_…');
});

test('SIGHUP with log.level debug: applied without restart, debug lines appear', async () => {
  const isApiDebug = (l: { msg?: string; level?: string }) => l.level === 'debug' && l.msg === 'api request';
  await get('/healthz');
  assert.equal(nrd.logs.some(isApiDebug), false, 'no debug lines at info level');
  const notifyMark = notify.messages.length;
  writeFileSync(nrd.siteFile, siteYaml({ socket, metricsPort, level: 'debug' }));
  nrd.signal('SIGHUP');
  const applied = await nrd.waitForLog((l) => l.msg === 'config reload applied', 'reload applied');
  assert.equal(applied.level, 'info');
  const changed = nrd.logs.find((l) => typeof l.msg === 'string' && l.msg.startsWith('config changed'));
  assert.ok(changed, 'the diff is logged');
  assert.deepEqual(changed.changes, [{ key: 'log.level', from: 'info', to: 'debug' }]);
  await get('/healthz');
  await nrd.waitForLog(isApiDebug, 'a debug line after the reload');
  // systemd reload protocol: RELOADING=1 with MONOTONIC_USEC, then READY=1.
  const reloading = await notify.waitFor('RELOADING', '1', { after: notifyMark });
  assert.match(reloading, /^MONOTONIC_USEC=\d+$/m);
  await notify.waitFor('READY', '1', { after: notifyMark });
  const st = await status();
  assert.equal(st.pid, nrd.pid, 'same process');
  assert.equal(st.config.logLevel, 'debug');
  assert.equal(st.lastReload?.result, 'applied');
  assert.match(await scrape(), /^nrd_config_reloads_total\{result="applied"\} 1$/m);
});

test('SIGHUP with a broken file: rejected with key and value logged, running config kept', async () => {
  writeFileSync(nrd.siteFile, siteYaml({ socket, metricsPort, level: 'debug', extra: 'bgp:\n  asn: not-a-number\n' }));
  nrd.signal('SIGHUP');
  await nrd.waitForLog((l) => typeof l.msg === 'string' && l.msg.startsWith('config reload rejected'), 'reload rejected');
  const issue = nrd.logs.find((l) => l.level === 'error' && typeof l.msg === 'string' && l.msg.startsWith('config issue:'));
  assert.ok(issue, 'each issue is logged');
  assert.match(issue.msg!, /bgp\.asn/);
  assert.match(issue.msg!, /not-a-number/);
  const st = await status();
  assert.equal(st.pid, nrd.pid);
  assert.equal(st.ready, true);
  assert.equal(st.config.logLevel, 'debug', 'the running config stays');
  assert.equal(st.lastReload?.result, 'rejected');
  assert.equal(st.reloads.rejected, 1);
  assert.match(await scrape(), /^nrd_config_reloads_total\{result="rejected"\} 1$/m);
});

test('a second nrd on the same socket is refused and the first keeps serving', { timeout: 20_000 }, async () => {
  const other = tempDir('nrdt-daemon2');
  try {
    const second = spawnNrd({ dir: other.dir, site: siteYaml({ socket, metricsPort: null }) });
    try {
      const exit = await second.exited;
      assert.equal(exit.code, 1, second.describe());
      assert.ok(
        second.logs.some((l) => l.level === 'fatal' && JSON.stringify(l).includes('NRD_API_SOCKET_IN_USE')),
        second.describe(),
      );
    } finally {
      await second.kill();
    }
  } finally {
    other.cleanup();
  }
  assert.equal((await status()).pid, nrd.pid);
});

test('SIGTERM: STOPPING=1, exit 0, socket removed; nrdctl then says nrd is not running', async () => {
  const mark = notify.messages.length;
  nrd.signal('SIGTERM');
  await notify.waitFor('STOPPING', '1', { after: mark });
  const exit = await nrd.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, nrd.describe());
  assert.equal(existsSync(socket), false);
  const r = await runNode(NRDCTL, ['--socket', socket, 'status']);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /^nrdctl: nrd is not running/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});
