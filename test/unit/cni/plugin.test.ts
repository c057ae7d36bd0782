// nrd-cni conformance against a fake nrd: the compiled binary run as a runtime runs it (a child
// process, CNI_* in the environment, the configuration on stdin), against an in-process control API
// on a temp unix socket that records every request. Every command and error path; every stdout is
// checked against the spec's result, error or version shape.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApiError, json, Router } from '../../../daemon/api/router.js';
import { closeUnix, createApiServer, listenUnix, type UnixListener } from '../../../daemon/api/server.js';
import type { EndpointAddBody, EndpointView } from '../../../daemon/endpoints/api-types.js';
import { silentLogger } from '../../../daemon/lib/log.js';
import { endpointName } from '../../../daemon/cni/spec.js';
import { errorIssues, resultIssues, versionIssues } from './schema.js';

const PLUGIN = fileURLToPath(new URL('../../../daemon/cni/main.js', import.meta.url));

let dir: string;
let socket: string;
let server: http.Server;
let listener: UnixListener;
/** The fake nrd's endpoints and the requests it saw. */
const eps = new Map<string, EndpointView>();
const seen: string[] = [];
/** Statuses the fake answers before behaving (e.g. [503, 503] = starting up). */
let failNext: number[] = [];
let ipSeq = 1;

function fakeView(b: EndpointAddBody): EndpointView {
  const n = ipSeq++;
  return { name: b.name, node: 'n1', netns: b.netns, ifname: b.ifname ?? 'eth0', ips: [`10.244.1.${n}`, `fd00:244:0:1::${n}`], gateways: ['169.254.1.1', 'fe80::1'], mac: `0a:00:00:00:00:${n.toString(16).padStart(2, '0')}`, gatewayMac: '02:6e:72:64:00:01', hostIfname: `nrdv${String(n).padStart(11, '0')}`, hostIfindex: 10 + n, identity: 1, labels: b.labels ?? {}, state: 'ready' };
}

function injected(): void {
  const s = failNext.shift();
  if (s !== undefined) throw new ApiError(s, s === 503 ? 'unavailable' : s === 409 ? 'conflict' : 'invalid', `injected ${s}`);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nrd-cni-'));
  socket = join(dir, 'nrd.sock');
  const router = new Router()
    .add('POST', '/v1/endpoints', (req) => {
      seen.push('POST');
      injected();
      const b = req.body as EndpointAddBody;
      if (eps.has(b.name)) throw new ApiError(409, 'conflict', `endpoint ${b.name} exists already`);
      const v = fakeView(b);
      eps.set(b.name, v);
      return json(v, 201);
    })
    .get('/v1/endpoints/:name', (req) => {
      seen.push('GET');
      injected();
      const v = eps.get(req.params.name!);
      if (!v) throw new ApiError(404, 'not_found', 'no such endpoint');
      return json(v);
    })
    .add('DELETE', '/v1/endpoints/:name', (req) => {
      seen.push('DELETE');
      injected();
      if (!eps.delete(req.params.name!)) throw new ApiError(404, 'not_found', 'no such endpoint');
      return json({ deleted: req.params.name });
    })
    .get('/v1/local/endpoints', () => {
      seen.push('LIST');
      injected();
      return json({ node: 'n1', synced: true, endpoints: [...eps.values()] });
    });
  server = createApiServer(router, silentLogger());
  listener = await listenUnix(server, socket);
});

after(async () => {
  await closeUnix(server, listener);
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  eps.clear();
  seen.length = 0;
  failNext = [];
});

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
  json: unknown;
}

/** One plugin invocation, exactly as a runtime makes it. */
function plugin(env: Record<string, string>, stdin: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    const c = spawn(process.execPath, [PLUGIN], { env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    c.once('error', reject);
    c.once('close', (code) => {
      let parsed: unknown;
      try {
        parsed = stdout.trim() ? JSON.parse(stdout) : undefined;
      } catch {
        parsed = undefined;
      }
      resolve({ code, stdout, stderr, json: parsed });
    });
    c.stdin.end(stdin);
  });
}

const CID = 'c0ffee01';
const NETNS = '/proc/self/ns/net'; // exists: the fake nrd never enters it
const cniEnv = (cmd: string, o: Record<string, string> = {}): Record<string, string> => ({ CNI_COMMAND: cmd, CNI_CONTAINERID: CID, CNI_NETNS: NETNS, CNI_IFNAME: 'eth0', CNI_PATH: '/nonexistent', ...o });
const conf = (o: Record<string, unknown> = {}): string => JSON.stringify({ cniVersion: '1.0.0', name: 'nrd', type: 'nrd-cni', socket, ...o });

function assertError(r: Run, code: number): void {
  assert.notEqual(r.code, 0, `exit code for error ${code}: ${r.stdout}`);
  assert.deepEqual(errorIssues(r.json), [], r.stdout);
  assert.equal((r.json as { code: number }).code, code, r.stdout + r.stderr);
}

function assertResult(r: Run): { ips: Array<{ address: string }>; interfaces: Array<{ name: string; sandbox?: string }> } {
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.deepEqual(resultIssues(r.json), [], r.stdout);
  return r.json as { ips: Array<{ address: string }>; interfaces: Array<{ name: string; sandbox?: string }> };
}

test('VERSION: the supported versions, with and without a configuration on stdin', async () => {
  for (const stdin of ['{"cniVersion":"1.0.0"}', '']) {
    const r = await plugin({ CNI_COMMAND: 'VERSION' }, stdin);
    assert.equal(r.code, 0);
    assert.deepEqual(versionIssues(r.json), []);
    assert.ok((r.json as { supportedVersions: string[] }).supportedVersions.includes('1.0.0'));
  }
});

test('ADD: POST with the derived name, netns, ifname and labels; a spec result; repeated ADD returns the same', async () => {
  const r = await plugin(cniEnv('ADD', { CNI_ARGS: 'K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-0' }), conf());
  const res = assertResult(r);
  const v = eps.get(endpointName(CID, 'eth0'))!;
  assert.ok(v, 'endpoint created under the derived name');
  assert.deepEqual(v.labels, { 'cni.nrd.io/network': 'nrd', 'io.kubernetes.pod.namespace': 'prod', 'io.kubernetes.pod.name': 'web-0' });
  assert.deepEqual(res.ips.map((i) => i.address), [`${v.ips[0]}/32`, `${v.ips[1]}/128`]);
  assert.equal(res.interfaces[1]!.sandbox, NETNS);
  seen.length = 0;
  const again = await plugin(cniEnv('ADD'), conf());
  assert.deepEqual(again.json, r.json);
  assert.deepEqual(seen, ['GET'], 'same netns: the existing endpoint, nothing re-created');
});

test('ADD with another netns replaces the endpoint (a crash mid-ADD, then a new sandbox)', async () => {
  await plugin(cniEnv('ADD'), conf());
  const first = eps.get(endpointName(CID, 'eth0'))!;
  seen.length = 0;
  const r = await plugin(cniEnv('ADD', { CNI_NETNS: '/proc/1/ns/net' }), conf());
  assertResult(r);
  assert.deepEqual(seen, ['GET', 'DELETE', 'POST']);
  const now = eps.get(endpointName(CID, 'eth0'))!;
  assert.equal(now.netns, '/proc/1/ns/net');
  assert.notEqual(now.ips[0], first.ips[0]);
});

test('ADD chained: prevResult kept first and extended', async () => {
  const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'lo', sandbox: NETNS }], ips: [{ address: '127.0.0.1/8', interface: 0 }] };
  const res = assertResult(await plugin(cniEnv('ADD'), conf({ prevResult: prev })));
  assert.equal(res.interfaces[0]!.name, 'lo');
  assert.equal(res.ips[0]!.address, '127.0.0.1/8');
  assert.equal(res.interfaces.length, 3);
});

test('ADD retries nrd starting (503) and a delete in flight (409), then succeeds', async () => {
  failNext = [503, 503];
  assertResult(await plugin(cniEnv('ADD'), conf()));
  eps.clear();
  // The first GET answers 409 (a delete in flight): retried.
  failNext = [409];
  assertResult(await plugin(cniEnv('ADD'), conf()));
});

test('errors: nrd not running 11, bad env 4, undecodable config 6, invalid config 7, version 1, nrd refusing 7', async () => {
  assertError(await plugin(cniEnv('ADD'), conf({ socket: join(dir, 'absent.sock') })), 11);
  const refused = join(dir, 'stale.sock');
  writeFileSync(refused, ''); // a file, not a listening socket
  assertError(await plugin(cniEnv('ADD'), conf({ socket: refused })), 11);
  assertError(await plugin(cniEnv('ADD', { CNI_CONTAINERID: '' }), conf()), 4);
  assertError(await plugin(cniEnv('ADD', { CNI_NETNS: '' }), conf()), 4);
  assertError(await plugin(cniEnv('ADD', { CNI_IFNAME: 'x/y' }), conf()), 4);
  assertError(await plugin(cniEnv('BOGUS'), conf()), 4);
  assertError(await plugin(cniEnv('ADD'), '{not json'), 6);
  assertError(await plugin(cniEnv('ADD'), conf({ name: 'has space' })), 7);
  assertError(await plugin(cniEnv('ADD'), conf({ cniVersion: '9.9.9' })), 1);
  failNext = [400];
  assertError(await plugin(cniEnv('ADD'), conf()), 7);
  failNext = [503, 503, 503, 503, 503, 503, 503, 503, 503, 503];
  assertError(await plugin(cniEnv('ADD'), conf()), 11);
  assert.equal(eps.size, 0, 'nothing created by a failed ADD');
});

test('DEL: removes; idempotent for an unknown container; nrd down is success only when the netns is gone', async () => {
  await plugin(cniEnv('ADD'), conf());
  const del = await plugin(cniEnv('DEL'), conf());
  assert.equal(del.code, 0, del.stdout);
  assert.equal(del.stdout, '');
  assert.equal(eps.size, 0);
  assert.equal((await plugin(cniEnv('DEL'), conf())).code, 0, 'second DEL');
  assert.equal((await plugin(cniEnv('DEL', { CNI_NETNS: '' }), conf())).code, 0, 'DEL without netns');
  const down = join(dir, 'absent.sock');
  assert.equal((await plugin(cniEnv('DEL', { CNI_NETNS: join(dir, 'gone-netns') }), conf({ socket: down }))).code, 0);
  assertError(await plugin(cniEnv('DEL'), conf({ socket: down })), 11);
  // DEL of a chained configuration passes with a prevResult.
  const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'eth0', sandbox: NETNS }], ips: [{ address: '10.244.1.9/32', interface: 0 }] };
  assert.equal((await plugin(cniEnv('DEL'), conf({ prevResult: prev }))).code, 0);
});

test('CHECK: passes for the endpoint ADD made with its result as prevResult; fails when it is gone or different', async () => {
  const add = await plugin(cniEnv('ADD'), conf());
  const prevResult = add.json;
  const ok = await plugin(cniEnv('CHECK'), conf({ prevResult }));
  assert.equal(ok.code, 0, ok.stdout);
  assert.equal(ok.stdout, '');
  assertError(await plugin(cniEnv('CHECK', { CNI_NETNS: '/proc/1/ns/net' }), conf({ prevResult })), 101);
  eps.clear();
  assertError(await plugin(cniEnv('CHECK'), conf({ prevResult })), 101);
  assertError(await plugin(cniEnv('CHECK'), conf({ cniVersion: '0.3.1' })), 1);
});

test('GC (1.1): deletes this network\'s CNI endpoints not in valid-attachments, spares others', async () => {
  await plugin(cniEnv('ADD'), conf());
  await plugin(cniEnv('ADD', { CNI_CONTAINERID: 'keepme' }), conf());
  await plugin(cniEnv('ADD', { CNI_CONTAINERID: 'othernet' }), conf({ name: 'other' }));
  eps.set('manual', { ...eps.get(endpointName(CID, 'eth0'))!, name: 'manual' });
  const r = await plugin({ CNI_COMMAND: 'GC', CNI_PATH: '/x' }, conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'keepme', ifname: 'eth0' }] }));
  assert.equal(r.code, 0, r.stdout);
  assert.deepEqual([...eps.keys()].sort(), [endpointName('keepme', 'eth0'), endpointName('othernet', 'eth0'), 'manual'].sort());
});

test('STATUS (1.1): success with nrd up, code 50 when it is not running', async () => {
  assert.equal((await plugin({ CNI_COMMAND: 'STATUS' }, conf({ cniVersion: '1.1.0' }))).code, 0);
  assertError(await plugin({ CNI_COMMAND: 'STATUS' }, conf({ cniVersion: '1.1.0', socket: join(dir, 'absent.sock') })), 50);
});

