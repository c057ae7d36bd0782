// Request bodies the API refuses before any handler runs: too large (413) and nested too deeply
// (400), both through the router alone and through the HTTP server on a unix socket.
// Regression: a deeply nested valid JSON body reached the handler, whose recursive walk threw
// RangeError (Maximum call stack size exceeded) and the API answered 500.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as http from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { MAX_BODY_BYTES, MAX_BODY_DEPTH, Router, json, nestsDeeperThan } from '../../../daemon/api/router.js';
import { createApiServer, closeUnix, listenUnix, type UnixListener } from '../../../daemon/api/server.js';
import { silentLogger } from '../../../daemon/lib/log.js';

// What a careless handler does: walk the body recursively.
const depthOf = (x: unknown): number =>
  x !== null && typeof x === 'object' ? 1 + Math.max(0, ...Object.values(x as object).map(depthOf)) : 0;

let calls = 0;
function router(): Router {
  return new Router().add('POST', '/v1/echo', (req) => {
    calls++;
    return json({ depth: depthOf(req.body) });
  });
}

const nested = (n: number): string => '['.repeat(n) + ']'.repeat(n);
const post = (body: string) => router().handle({ method: 'POST', url: '/v1/echo', body });

test('nesting: a very deep valid body is 400 with the reason, the handler never runs', async () => {
  calls = 0;
  for (const body of [nested(100_000), nested(5_000), nested(MAX_BODY_DEPTH + 1), '{"a":'.repeat(20_000), '['.repeat(100_000)]) {
    const r = await post(body);
    assert.equal(r.status, 400, body.slice(0, 20));
    assert.deepEqual(r.body, {
      error: { code: 'bad_request', message: `request body nests arrays/objects deeper than ${MAX_BODY_DEPTH} levels` },
    });
  }
  assert.equal(calls, 0);
});

test('nesting: up to the limit the handler gets the body; brackets in strings do not count', async () => {
  calls = 0;
  assert.deepEqual(await post(nested(MAX_BODY_DEPTH)), { status: 200, body: { depth: MAX_BODY_DEPTH } });
  const inString = JSON.stringify({ s: '['.repeat(1000) + '\\"{{{' });
  assert.deepEqual(await post(inString), { status: 200, body: { depth: 1 } });
  assert.equal(calls, 2);
});

test('nestsDeeperThan agrees with the parsed depth of any JSON value', () => {
  fc.assert(
    fc.property(fc.jsonValue({ maxDepth: 12 }), fc.integer({ min: 0, max: 14 }), (v, max) => {
      const text = JSON.stringify(v);
      assert.equal(nestsDeeperThan(text, max), depthOf(v) > max);
    }),
  );
});

test('size: the router alone refuses a body above the limit with 413', async () => {
  calls = 0;
  const r = await post(JSON.stringify('x'.repeat(MAX_BODY_BYTES)));
  assert.equal(r.status, 413);
  assert.deepEqual(r.body, { error: { code: 'payload_too_large', message: `request body above ${MAX_BODY_BYTES} bytes` } });
  assert.equal(calls, 0);
});

// Through the HTTP server on a unix socket.
let dir: string;
let server: http.Server;
let listener: UnixListener;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'nrd-api-limits-'));
  server = createApiServer(router(), silentLogger());
  listener = await listenUnix(server, join(dir, 'nrd.sock'));
});

after(async () => {
  await closeUnix(server, listener);
  rmSync(dir, { recursive: true, force: true });
});

interface Reply {
  status: number;
  body: unknown;
}

/** POSTs `chunks` (one write each; chunked when `length` is absent). */
function send(chunks: string[], headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: listener.path, path: '/v1/echo', method: 'POST', headers }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode!, body: JSON.parse(text) as unknown }));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
}

test('server: deep body 400, normal body 200', async () => {
  calls = 0;
  const deep = await send([nested(100_000)]);
  assert.equal(deep.status, 400);
  const ok = await send(['[[1]]']);
  assert.deepEqual(ok, { status: 200, body: { depth: 2 } });
  assert.equal(calls, 1);
});

test('server: 413 from Content-Length before the body is read, and from a chunked body', async () => {
  calls = 0;
  // Announces 5 MiB and sends only a few bytes: the answer must not wait for the rest.
  const announced = await send(['[1'], { 'content-length': String(5 << 20) });
  assert.equal(announced.status, 413);
  const chunk = 'x'.repeat(256 << 10);
  const chunked = await send(['"', ...Array.from({ length: 5 }, () => chunk), '"']);
  assert.equal(chunked.status, 413);
  assert.deepEqual(chunked.body, { error: { code: 'payload_too_large', message: `request body above ${MAX_BODY_BYTES} bytes` } });
  assert.equal(calls, 0);
  // The server still answers afterwards.
  assert.equal((await send(['[]'])).status, 200);
});
