// nrdctl end to end against an in-process control API on a temp unix socket: JSON and table
// output, the "nrd is not running" exit code, usage errors and API errors.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Router, json } from '../../../daemon/api/router.js';
import { createApiServer, closeUnix, listenUnix, SocketInUseError, type UnixListener } from '../../../daemon/api/server.js';
import { silentLogger } from '../../../daemon/lib/log.js';
import { EXIT_API_ERROR, EXIT_NOT_RUNNING, EXIT_OK, EXIT_USAGE, runNrdctl } from '../../../daemon/cli/run.js';
import { findCommand, commands } from '../../../daemon/cli/commands.js';
import { sampleStatus } from './fixtures.js';
import * as libc from '../../../daemon/lib/libc.js';

let dir: string;
let socket: string;
let server: http.Server;
let listener: UnixListener;
const status = sampleStatus();

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nrdctl-'));
  socket = join(dir, 'run', 'nrd.sock');
  const router = new Router().get('/v1/status', () => json(status));
  server = createApiServer(router, silentLogger());
  listener = await listenUnix(server, socket);
});

after(async () => {
  await closeUnix(server, listener);
  rmSync(dir, { recursive: true, force: true });
});

/** Leaves a socket file nobody listens on, the way a killed daemon does (libuv would unlink it
 * on a clean close, so bind it through libc). */
function staleSocket(path: string): void {
  const SOCK_STREAM = 1;
  const fd = libc.socket(libc.AF_UNIX, SOCK_STREAM | libc.SOCK_CLOEXEC);
  try {
    libc.bind(fd, libc.sockaddrUn(path));
  } finally {
    libc.close(fd);
  }
}

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runNrdctl(argv, { stdout: (s) => (out += s), stderr: (s) => (err += s) }, env);
  return { code, out, err };
}

test('the socket is 0600 in a 0755 directory it created', () => {
  assert.equal(statSync(socket).mode & 0o777, 0o600);
  assert.equal(statSync(join(dir, 'run')).mode & 0o777, 0o755);
  assert.ok(statSync(socket).isSocket());
});

test('status -o json prints the API object unchanged', async () => {
  const r = await run(['--socket', socket, 'status', '-o', 'json']);
  assert.equal(r.code, EXIT_OK, r.err);
  assert.deepEqual(JSON.parse(r.out), status);
});

test('status prints the human summary by default; NRD_SOCKET selects the socket', async () => {
  const r = await run(['status'], { NRD_SOCKET: socket });
  assert.equal(r.code, EXIT_OK, r.err);
  assert.match(r.out, /^Node:\s+node-a/);
  assert.match(r.out, /^bgp\s+no/m);
});

test('daemon not running (no socket file): one clear line, exit 3', async () => {
  const r = await run(['--socket', join(dir, 'absent.sock'), 'status']);
  assert.equal(r.code, EXIT_NOT_RUNNING);
  assert.equal(r.out, '');
  assert.equal(r.err.trim().split('\n').length, 1);
  assert.match(r.err, /nrd is not running .*absent\.sock.*ENOENT/);
});

test('daemon not running (stale socket, nobody listening): exit 3 with ECONNREFUSED', async () => {
  const stale = join(dir, 'stale.sock');
  staleSocket(stale);
  const r = await run(['--socket', stale, 'status']);
  assert.equal(r.code, EXIT_NOT_RUNNING, r.err);
  assert.match(r.err, /nrd is not running .*ECONNREFUSED/);
});

test('listenUnix replaces a stale socket and refuses a live one', async () => {
  const path = join(dir, 'takeover.sock');
  staleSocket(path);
  const s1 = createApiServer(new Router(), silentLogger());
  const l1 = await listenUnix(s1, path);
  try {
    const s2 = createApiServer(new Router(), silentLogger());
    await assert.rejects(listenUnix(s2, path), SocketInUseError);
  } finally {
    await closeUnix(s1, l1);
  }
  assert.throws(() => statSync(path), /ENOENT/);
});

test('an API error is reported with its code, exit 1', async () => {
  const extra = [
    ...commands,
    { path: ['peers'], summary: 'x', run: async (ctx: { socket: string }) => {
      const { apiRequest } = await import('../../../daemon/cli/client.js');
      await apiRequest(ctx.socket, '/v1/peers');
      return 0;
    } },
  ];
  let err = '';
  const code = await runNrdctl(['--socket', socket, 'peers'], { stdout: () => undefined, stderr: (s) => (err += s) }, {}, extra);
  assert.equal(code, EXIT_API_ERROR);
  assert.match(err, /404 not_found: no such endpoint: \/v1\/peers/);
});

test('usage errors exit 2: no command, unknown command, bad -o, unknown flag', async () => {
  for (const argv of [[], ['frobnicate'], ['status', '-o', 'yaml'], ['--bogus', 'status']]) {
    const r = await run(['--socket', socket, ...argv]);
    assert.equal(r.code, EXIT_USAGE, `argv ${argv.join(' ')}: ${r.err}`);
  }
  const h = await run(['--help']);
  assert.equal(h.code, EXIT_OK);
  assert.match(h.out, /^  status\s+summary of the node/m);
});

test('the longest command path wins', () => {
  const table = [
    { path: ['bgp'], summary: '', run: async () => 0 },
    { path: ['bgp', 'routes'], summary: '', run: async () => 0 },
  ];
  assert.deepEqual(findCommand(table, ['bgp', 'routes', '10.0.0.0/8'])?.args, ['10.0.0.0/8']);
  assert.equal(findCommand(table, ['bgp', 'routes'])?.command.path.length, 2);
  assert.equal(findCommand(table, ['bgp'])?.command.path.length, 1);
  assert.equal(findCommand(table, ['routes']), undefined);
});
