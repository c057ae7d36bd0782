// GET /v1/monitor over a real unix socket: NDJSON streamed with chunked transfer from a fake event
// source (an EventHub fed by hand), filters applied server-side, the subscription dropped when the
// client goes away; GET /v1/policy/:endpoint; and nrdctl monitor against it, in process and as the
// real binary ended by SIGINT (exit 0).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Router } from '../../../daemon/api/router.js';
import { createApiServer, closeUnix, listenUnix, type UnixListener } from '../../../daemon/api/server.js';
import { registerPolicyRoutes } from '../../../daemon/api/policy-routes.js';
import { EventHub, decodeFlowEvent } from '../../../daemon/datapath/events.js';
import { explainEndpoint } from '../../../daemon/datapath/policy.js';
import { silentLogger } from '../../../daemon/lib/log.js';
import { formatEventLine, runMonitor } from '../../../daemon/cli/commands/policy.js';
import { runNrdctl } from '../../../daemon/cli/run.js';
import { droppedRecord } from '../datapath/flow-event-fixture.js';

let dir: string;
let socket: string;
let server: http.Server;
let listener: UnixListener;
const hub = new EventHub();
const names = new Map([[0xaabbccdd, 'db-1']]);
const dropped = () => decodeFlowEvent(droppedRecord(), names);
const forwarded = () => decodeFlowEvent(droppedRecord({ type: 1, reason: 1 }), names);

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nrd-monitor-'));
  socket = join(dir, 'nrd.sock');
  const router = new Router();
  const inputs = {
    localNode: 'n1', synced: true, nodes: [], identities: [],
    policies: [{ name: 'db', selector: { app: 'db' }, ingress: [], egress: [] }],
    endpoints: [{ id: 'db-1', node: 'n1', ips: ['10.244.1.2'], netns: '/run/netns/x', labels: { app: 'db' }, identity: 300 }],
  };
  registerPolicyRoutes(router, { explain: (id) => explainEndpoint(inputs, id), events: hub });
  server = createApiServer(router, silentLogger());
  listener = await listenUnix(server, socket);
});

after(async () => {
  await closeUnix(server, listener);
  rmSync(dir, { recursive: true, force: true });
});

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test('NDJSON stream: chunked, filtered on the server, unsubscribed when the client goes', async () => {
  const lines: string[] = [];
  let headers: http.IncomingHttpHeaders | undefined;
  const req = http.get({ socketPath: socket, path: '/v1/monitor?verdict=dropped' }, (res) => {
    headers = res.headers;
    let buf = '';
    res.on('data', (c: Buffer) => {
      buf += c.toString();
      const parts = buf.split('\n');
      buf = parts.pop()!;
      lines.push(...parts);
    });
  });
  req.on('error', () => undefined);
  await until(() => hub.subscribers === 1 && headers !== undefined, 'the subscription');
  assert.equal(headers!['transfer-encoding'], 'chunked');
  assert.match(headers!['content-type']!, /^application\/x-ndjson/);
  hub.publish(forwarded());
  hub.publish(dropped());
  hub.publish(dropped());
  await until(() => lines.length === 2, 'two lines');
  assert.deepEqual(lines.map((l) => (JSON.parse(l) as { type: string; reason: string }).reason), ['policy', 'policy']);
  assert.equal((JSON.parse(lines[0]!) as { endpoint: string }).endpoint, 'db-1');
  req.destroy();
  await until(() => hub.subscribers === 0, 'the unsubscribe after the client left');
});

test('a bad filter is a 400 with a code, not a stream', async () => {
  let out = '';
  const code = await runNrdctl(['--socket', socket, 'monitor', '--verdict', 'denied'], { stdout: () => undefined, stderr: (s) => (out += s) });
  assert.equal(code, 1);
  assert.match(out, /400 bad_filter/);
});

test('nrdctl policy get: the effective rules; 404 for an unknown endpoint', async () => {
  let out = '';
  assert.equal(await runNrdctl(['--socket', socket, 'policy', 'get', 'db-1'], { stdout: (s) => (out += s), stderr: () => undefined }), 0);
  assert.match(out, /Policies: +db/);
  assert.match(out, /Ingress: enforced, nothing allowed/);
  assert.match(out, /Egress: not enforced/);
  let json = '';
  await runNrdctl(['--socket', socket, '-o', 'json', 'policy', 'get', 'db-1'], { stdout: (s) => (json += s), stderr: () => undefined });
  assert.deepEqual((JSON.parse(json) as { enforcement: unknown }).enforcement, { ingress: true, egress: false });
  assert.equal(await runNrdctl(['--socket', socket, 'policy', 'get', 'nope'], { stdout: () => undefined, stderr: () => undefined }), 1);
});

test('nrdctl monitor in process: one line per event, filter by endpoint, returns 0 when stopped', async () => {
  let out = '';
  const stop = new AbortController();
  const done = runMonitor({ socket, output: 'table', stdout: (s) => (out += s), stderr: (s) => (out += s) }, ['--endpoint', 'db-1'], stop.signal);
  await until(() => hub.subscribers === 1, 'the monitor');
  hub.publish(dropped());
  hub.publish(decodeFlowEvent(droppedRecord({ endpoint: 7 }), names));
  await until(() => out.includes('\n'), 'a line');
  stop.abort();
  assert.equal(await done, 0);
  assert.match(out, /^\S+Z DROPPED \(policy\) db-1 ingress tcp 10\.244\.2\.2:40000 -> 10\.244\.1\.2:5432 ids 301->300 \(\+3 not shown\) len 74\n$/);
  await until(() => hub.subscribers === 0, 'the unsubscribe');
});

test('monitor lines of a service translation, a masquerade and a non-IP drop', () => {
  const svc = Buffer.from(droppedRecord({ type: 3, reason: 1 }));
  Buffer.from([10, 244, 3, 7]).copy(svc, 72);
  svc.writeUInt16BE(8080, 38);
  svc.writeUInt32LE(12, 88);
  svc.writeUInt32LE(34, 92);
  svc.writeUInt32LE(0, 96);
  assert.match(formatEventLine(decodeFlowEvent(svc, names)),
    /^\S+Z TRANSLATED \(service\) db-1 ingress tcp 10\.244\.2\.2:40000 -> 10\.244\.1\.2:5432 => 10\.244\.3\.7:8080 service 12 backend 34 ids 301->300 len 74\n$/);
  const masq = Buffer.from(svc);
  masq[29] = 2;
  masq.writeUInt32LE(0, 88);
  masq.writeUInt32LE(0, 92);
  assert.match(formatEventLine(decodeFlowEvent(masq, names)), / tcp 10\.244\.2\.2:40000 -> 10\.244\.1\.2:5432 => from 10\.244\.3\.7:8080 ids /);
  assert.match(formatEventLine(decodeFlowEvent(droppedRecord({ family: 0, reason: 0 }), names)), / DROPPED \(malformed\) db-1 ingress non-IP ids 301->300 /);
});

test('nrdctl monitor -o json as the real binary: prints events until SIGINT, then exits 0', async () => {
  const bin = fileURLToPath(new URL('../../../daemon/cli/nrdctl.js', import.meta.url));
  const child = spawn(process.execPath, [bin, '--socket', socket, 'monitor', '--verdict', 'dropped', '-o', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  try {
    await until(() => hub.subscribers === 1, 'the nrdctl process to subscribe');
    hub.publish(dropped());
    await until(() => out.includes('\n'), 'its line');
    assert.equal((JSON.parse(out) as { reason: string }).reason, 'policy');
    child.kill('SIGINT');
    assert.equal(await exited, 0);
  } finally {
    if (child.exitCode === null) child.kill('SIGKILL');
  }
  await until(() => hub.subscribers === 0, 'the unsubscribe');
});
