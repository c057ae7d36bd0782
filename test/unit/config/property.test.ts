// Property tests: no input, however garbled, makes the loader throw; it yields issues or a config.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import { parse, stringify } from 'yaml';
import { CONFIG_LEAVES, formatIssue, loadConfigObject, loadConfigText, type LoadResult } from '../../../daemon/config/index.js';
import { INTERNAL_ERROR } from '../../../daemon/config/load.js';
import { EXAMPLE_FILE } from './util.js';

function assertWellFormed(r: LoadResult): void {
  if (r.ok) {
    assert.ok(Object.isFrozen(r.config) && Object.isFrozen(r.config.bgp.peers));
    return;
  }
  assert.ok(r.issues.length > 0);
  for (const i of r.issues) {
    assert.equal(typeof i.key, 'string');
    assert.equal(typeof i.message, 'string');
    assert.ok(i.message.length > 0);
    assert.ok(!i.message.startsWith(INTERNAL_ERROR), i.message);
    const line = formatIssue(i);
    assert.ok(!line.includes('\n'), line);
  }
}

const yamlish = fc
  .array(
    fc.oneof(
      fc.constantFrom('node:', 'bgp:', 'peers:', '- ', '  ', '\n', ':', '{', '}', '[', ']', ',', '"', "'", '&a ', '*a', '!!str ', '!foo ', '---', '#', '~', 'null', 'true', '__proto__:', 'constructor:', 'asn: ', 'address: ', '10.244.0.0/16', '192.0.2.1', '4294967296', '-1', '0x10', '.inf', 'a.b:', '? ', '|', '>', '%YAML 1.2'),
      fc.string({ maxLength: 6 }),
    ),
    { maxLength: 40 },
  )
  .map((parts) => parts.join(''));

test('random YAML-ish text never throws', () => {
  fc.assert(
    fc.property(yamlish, (text) => {
      assertWellFormed(loadConfigText(text, { env: {}, hostname: 'n1' }));
    }),
    { numRuns: 300 },
  );
});

test('random JSON values in every place of the document never throw', () => {
  fc.assert(
    fc.property(fc.anything({ maxDepth: 4 }), (v) => {
      assertWellFormed(loadConfigObject(v, { env: {}, hostname: 'n1' }));
      assertWellFormed(loadConfigObject({ node: { address: '192.0.2.11' }, bgp: v }, { env: {}, hostname: 'n1' }));
      assertWellFormed(loadConfigObject({ node: { address: '192.0.2.11' }, bgp: { peers: [v, { address: '192.0.2.1', asn: 1, maxPrefix: v }] } }, { env: {}, hostname: 'n1' }));
    }),
    { numRuns: 150 },
  );
});

const leafPaths = [...CONFIG_LEAVES.keys()];
const example = parse(readFileSync(EXAMPLE_FILE, 'utf8')) as Record<string, unknown>;

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const segs = path.split('.');
  let cur: Record<string, unknown> = obj;
  for (const s of segs.slice(0, -1)) {
    if (cur[s] === null || typeof cur[s] !== 'object' || Array.isArray(cur[s])) cur[s] = {};
    cur = cur[s] as Record<string, unknown>;
  }
  cur[segs[segs.length - 1]!] = value;
}

test('the example with random values at random keys never throws, through YAML too', () => {
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.constantFrom(...leafPaths, 'bgp.peers.0', 'node.extra', 'bgp.listen'), fc.jsonValue({ maxDepth: 3 })), { minLength: 1, maxLength: 4 }),
      (edits) => {
        const doc = structuredClone(example);
        for (const [path, value] of edits) setPath(doc, path, value);
        assertWellFormed(loadConfigObject(doc, { env: {}, hostname: 'n1' }));
        assertWellFormed(loadConfigText(stringify(doc), { env: {}, hostname: 'n1' }));
      },
    ),
    { numRuns: 150 },
  );
});

test('random env values and --set flags never throw', () => {
  const envNames = [...CONFIG_LEAVES.values()].map((l) => l.env!);
  fc.assert(
    fc.property(
      fc.dictionary(fc.constantFrom(...envNames), fc.oneof(fc.string({ maxLength: 12 }), yamlish), { maxKeys: 4 }),
      fc.array(fc.oneof(fc.string({ maxLength: 20 }), fc.tuple(fc.constantFrom(...leafPaths, 'bgp', 'x.y', '__proto__.x', 'constructor.prototype.x'), yamlish).map(([k, v]) => `${k}=${v}`)), { maxLength: 4 }),
      (env, sets) => {
        assertWellFormed(loadConfigText('node: {address: 192.0.2.11}\n', { env, sets, hostname: 'n1' }));
      },
    ),
    { numRuns: 150 },
  );
  assert.equal(({} as Record<string, unknown>).x, undefined, 'no prototype pollution');
});
