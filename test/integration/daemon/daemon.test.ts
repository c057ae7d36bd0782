// nrd as systemd runs it, one child process through its life, inside a test network namespace
// with a veth uplink and a test-mounted bpffs: sd_notify READY/STATUS/WATCHDOG on a datagram
// socket the test binds, the datapath subsystem really loading (XDP prefilter on the uplink, pins
// in the test's bpffs), the control API and nrdctl through the unix socket (0600), Prometheus
// metrics from inside the namespace, SIGHUP reloads (log level applied live; a broken file
// rejected and logged while the daemon keeps serving), and SIGTERM (STOPPING=1, exit 0, socket
// removed, pins kept).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, statSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import { join } from 'node:path';
import type { StatusResponse } from '../../../daemon/api/types.js';
import { waitFor } from '../../lib/wait.js';
import { METRICS_PORT, NODE_ADDRESS, NRDCTL, NotifyReceiver, NrdSandbox, UPLINK, runNode, type NrdProcess } from './harness.js';

/** The daemon's subsystems in start order (daemon/main.ts). */
const SUBSYSTEMS = ['api', 'state', 'bgp', 'bfd', 'routing', 'endpoints', 'datapath'];

// Teardown of nrd, namespaces, temp dir and bpffs, registered before anything exists.
const sb = NrdSandbox.use(after, 'daemon');
let notify: NotifyReceiver;
let nrd: NrdProcess;
let socket: string;
const metricsPort = METRICS_PORT;

/** The attachment shape of the datapath subsystem's status (daemon/datapath/attach.ts). */
interface AttachmentView {
  ifname: string;
  hook: string;
  mechanism: string;
  pin: string;
  progId: number;
  progName: string;
}

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

/** Scrapes /metrics from inside the node namespace, where the listener is. */
async function scrape(): Promise<string> {
  const r = await sb.httpGet(metricsPort, '/metrics');
  if (r.status !== 200) throw new Error(`HTTP ${r.status}: ${r.body.slice(0, 200)}`);
  return r.body;
}

async function status(): Promise<StatusResponse> {
  const r = await get('/v1/status');
  assert.equal(r.status, 200, r.body);
  return JSON.parse(r.body) as StatusResponse;
}

before(async () => {
  await sb.build();
  // A nested, not-yet-existing directory: nrd must create it (0755) like RuntimeDirectory would.
  socket = join(sb.dir, 'run', 'nrd', 'nrd.sock');
  // A filesystem socket: an abstract name would live in the root namespace, out of nrd's reach.
  notify = new NotifyReceiver(join(sb.dir, 'notify.sock'));
  nrd = sb.spawnNrd({
    // One deny rule (an address nothing uses): the XDP prefilter is attached only when it has one.
    site: sb.site({ socket, metricsPort, xdpDeny: ['203.0.113.99/32'] }),
    // 200 ms watchdog: WATCHDOG=1 every 100 ms.
    env: { NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: '200000' },
  });
});

after(async () => {
  await nrd?.kill();
  notify?.close();
});

test('sd_notify: READY=1 with a STATUS once the api and datapath subsystems are up', async () => {
  const msg = await notify.waitFor('READY', '1', { timeoutMs: 30_000 }).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}; ${nrd.describe()}`);
  });
  assert.match(msg, new RegExp(`^STATUS=ready \\(${SUBSYSTEMS.join(', ')}\\)$`, 'm'), msg);
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
  assert.equal(statSync(join(sb.dir, 'run', 'nrd')).mode & 0o777, 0o755);
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
  assert.equal(st.config.node.address, NODE_ADDRESS);
  assert.equal(st.config.node.interface, UPLINK);
  assert.equal(st.config.api.socket, socket);
  assert.deepEqual(
    st.subsystems.map((s) => [s.name, s.ready]),
    SUBSYSTEMS.map((n) => [n, true]),
  );
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
  assert.match(t.stdout, /^datapath\s+yes\s/m);
});

test('datapath: the XDP prefilter is attached to the uplink in the namespace, pinned in the test bpffs', async () => {
  const st = await status();
  const dp = st.subsystems.find((s) => s.name === 'datapath');
  assert.ok(dp, JSON.stringify(st.subsystems));
  const view = dp.status as { ready: boolean; attachments: AttachmentView[]; errors: unknown[] };
  assert.equal(view.ready, true, JSON.stringify(view));
  assert.deepEqual(view.errors, []);
  const xdp = view.attachments.find((a) => a.hook === 'xdp');
  assert.ok(xdp, JSON.stringify(view.attachments));
  assert.equal(xdp.ifname, UPLINK);
  assert.ok(xdp.pin.startsWith(join(sb.pinPath, 'links', UPLINK) + '/'), xdp.pin);
  assert.ok(existsSync(xdp.pin), `${xdp.pin} is pinned`);
  for (const m of ['nrd_deny4', 'nrd_deny6', 'nrd_xdp_stats']) assert.ok(existsSync(join(sb.pinPath, 'maps', m)), `map ${m} pinned`);
  // The kernel's view, from the namespace: the uplink runs exactly that program.
  const link = JSON.parse((await sb.node.ip(['-j', 'link', 'show', 'dev', UPLINK])).stdout) as Array<{
    xdp?: { prog?: { id: number; name: string } };
  }>;
  assert.equal(link[0]?.xdp?.prog?.id, xdp.progId, JSON.stringify(link));
  assert.equal(link[0]?.xdp?.prog?.name, xdp.progName);
  // /v1/datapath carries the 64-bit BPF counters (a regression once crashed the daemon here).
  const r = await get('/v1/datapath');
  assert.equal(r.status, 200, r.body);
  const dpView = JSON.parse(r.body) as { stats: { xdp: { pass: { packets: number } } } | null };
  assert.equal(typeof dpView.stats?.xdp.pass.packets, 'number', r.body);
  assert.equal((await get('/healthz')).status, 200, 'still alive');
});

test('metrics: nrd_ names on the configured TCP address', async () => {
  const text = await scrape();
  assert.match(text, /^nrd_up 1$/m);
  assert.match(text, /^nrd_ready 1$/m);
  assert.match(text, /^nrd_subsystem_ready\{subsystem="api"\} 1$/m);
  assert.match(text, /^nrd_subsystem_ready\{subsystem="datapath"\} 1$/m);
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
  writeFileSync(nrd.siteFile, sb.site({ socket, metricsPort, level: 'debug', xdpDeny: ['203.0.113.99/32'] }));
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
  writeFileSync(nrd.siteFile, sb.site({ socket, metricsPort, level: 'debug', xdpDeny: ['203.0.113.99/32'], extra: 'bgp:\n  asn: not-a-number\n' }));
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
  // Same namespace, its own pin directory: were it to get past the API, it must not touch the
  // first one's pins.
  const second = sb.spawnNrd({
    dir: join(sb.dir, 'second'),
    site: sb.site({ socket, metricsPort: null, pinPath: join(sb.bpffs, 'second') }),
  });
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
  const st = await status();
  assert.equal(st.pid, nrd.pid);
  assert.equal(st.ready, true);
});

test('SIGTERM: STOPPING=1, exit 0, socket removed, pins kept; nrdctl then says nrd is not running', async () => {
  const mark = notify.messages.length;
  nrd.signal('SIGTERM');
  await notify.waitFor('STOPPING', '1', { after: mark });
  const exit = await nrd.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, nrd.describe());
  assert.equal(existsSync(socket), false);
  // Restartable at any moment: the prefilter link stays pinned (and attached) for the next nrd.
  assert.ok(existsSync(join(sb.pinPath, 'links', UPLINK)), 'uplink link pins kept');
  const r = await runNode(NRDCTL, ['--socket', socket, 'status']);
  assert.equal(r.code, 3);
  assert.match(r.stderr, /^nrdctl: nrd is not running/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});
