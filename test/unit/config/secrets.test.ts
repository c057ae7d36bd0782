// Secrets never appear in a config issue, whatever shape they are written in: check-config's
// lines and the daemon's reload log show "(redacted)" for sensitive keys, and still name the key.
// Regression: a password written as a YAML mapping (`password: {a: hunter2}`) was echoed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EX_CONFIG, checkConfigCommand, formatIssue, loadConfigText } from '../../../daemon/config/index.js';
import { keyIsSecret } from '../../../daemon/config/redact.js';
import { MINIMAL, load, tempDir, writeFile } from './util.js';

const SECRET = 'hunter2-s3cr3t';

/** Every line check-config would print for this YAML (with an empty environment). */
function lines(yaml: string, opts: { sets?: string[]; env?: Record<string, string> } = {}): string[] {
  const r = load(yaml, opts);
  assert.ok(!r.ok, `expected issues for:\n${yaml}`);
  return r.issues.map(formatIssue);
}

function assertHidden(out: string[], key: string, what: string): void {
  for (const l of out) assert.ok(!l.includes(SECRET), `${what}: secret printed: ${l}`);
  assert.ok(out.some((l) => l.startsWith(`${key}: `)), `${what}: no line names ${key}:\n${out.join('\n')}`);
}

// The shapes a secret can take in YAML: every one must stay hidden at every sensitive key.
const SHAPES: [string, string][] = [
  ['mapping', `{a: ${SECRET}}`],
  ['nested mapping', `{a: {b: [${SECRET}]}}`],
  ['list', `[${SECRET}]`],
  ['list of mappings', `[{x: ${SECRET}}]`],
  ['number-looking', '31415926'],
  ['boolean', 'true'],
  ['too long string', `"${SECRET}${'x'.repeat(90)}"`],
];

test('etcd.password of any type is redacted and named', () => {
  // etcd.password has no length limit: a long string is valid there.
  for (const [shape, v] of SHAPES.filter(([shape]) => shape !== 'too long string')) {
    const out = lines(`${MINIMAL}etcd: {username: root, password: ${v}}\n`);
    assertHidden(out, 'etcd.password', shape);
    if (v.includes(SECRET)) assert.ok(out.some((l) => l.startsWith('etcd.password: ') && l.endsWith('(value: "(redacted)")')), shape);
  }
});

test('a peer password of any type is redacted, in any entry of bgp.peers', () => {
  for (const [shape, v] of SHAPES) {
    const yaml = `${MINIMAL}bgp:\n  peers:\n    - {address: 192.0.2.1, asn: 65000}\n    - {address: 192.0.2.2, asn: 65000, password: ${v}}\n`;
    assertHidden(lines(yaml), 'bgp.peers[1].password', shape);
  }
});

test('the same through NRD_BGP_PEERS, NRD_ETCD_PASSWORD and --set', () => {
  const peers = `[{address: 192.0.2.1, asn: 65000, password: {x: ${SECRET}}}]`;
  assertHidden(lines(MINIMAL, { env: { NRD_BGP_PEERS: peers } }), 'bgp.peers[0].password', 'env peers');
  assertHidden(lines(MINIMAL, { sets: [`bgp.peers=${peers}`] }), 'bgp.peers[0].password', '--set peers');
  assertHidden(lines(`${MINIMAL}etcd: {username: root}\n`, { env: { NRD_ETCD_PASSWORD: `[${SECRET}]`, NRD_ETCD_DIAL_TIMEOUT: '1' } }), 'etcd.dialTimeout', 'env password');
});

test('a secret inside a value shown for another key is redacted field by field', () => {
  const cases: [string, string][] = [
    // A section written as a list: the value is shown, its password field is not.
    [`${MINIMAL}etcd: [{username: root, password: ${SECRET}}]\n`, 'etcd'],
    // bgp.peers written as one mapping instead of a list.
    [`${MINIMAL}bgp: {peers: {address: 192.0.2.1, asn: 65000, password: ${SECRET}}}\n`, 'bgp.peers'],
    // A peer entry that is itself a list.
    [`${MINIMAL}bgp: {peers: [[{address: 192.0.2.1, asn: 65000, password: ${SECRET}}]]}\n`, 'bgp.peers[0]'],
    // The whole file is a list.
    [`- {etcd: {password: ${SECRET}}}\n`, '(file)'],
  ];
  for (const [yaml, key] of cases) {
    const out = lines(yaml);
    assertHidden(out, key, key);
    assert.ok(out.some((l) => l.startsWith(`${key}: `) && l.includes('"(redacted)"')), `${key}:\n${out.join('\n')}`);
  }
  // Fields that are not secret stay visible: the operator still sees what was written.
  const shown = lines(`${MINIMAL}etcd: [{username: root, password: ${SECRET}}]\n`).find((l) => l.startsWith('etcd: '))!;
  assert.match(shown, /"username":"root"/);
});

test('a mistyped secret key is redacted too, and private key material anywhere', () => {
  assertHidden(lines(`${MINIMAL}etcd: {username: root, pasword: ${SECRET}}\n`), 'etcd.pasword', 'typo in file');
  assertHidden(lines(MINIMAL, { sets: [`etcd.passwd=${SECRET}`] }), 'etcd.passwd', 'typo in --set');
  const pem = `"-----BEGIN PRIVATE KEY-----\\n${SECRET}\\n-----END PRIVATE KEY-----"`;
  assertHidden(lines(`${MINIMAL}etcd: {tls: {key: ${pem}}}\n`), 'etcd.tls.key', 'PEM pasted as a path');
});

test('non-secret values are still printed: key and value', () => {
  assert.deepEqual(lines(`${MINIMAL}etcd: {tls: {key: relative.pem}}\n`), ['etcd.tls.key: must be an absolute path (value: "relative.pem")']);
  assert.deepEqual(lines(`${MINIMAL}etcd: {prefix: {a: 1}}\n`), ['etcd.prefix: expects key prefix, got a mapping (value: {"a":1})']);
});

test('keyIsSecret follows the schema, then the name', () => {
  assert.equal(keyIsSecret('etcd.password'), true);
  assert.equal(keyIsSecret('bgp.peers[3].password'), true);
  assert.equal(keyIsSecret('bgp.peers[3].password[0]'), true);
  assert.equal(keyIsSecret('etcd.password.a'), true);
  assert.equal(keyIsSecret('etcd.tls.key'), false); // a path, declared and not sensitive
  assert.equal(keyIsSecret('bgp.peers[0].address'), false);
  assert.equal(keyIsSecret('bgp.peers'), false);
  assert.equal(keyIsSecret('etcd.token'), true);
});

test('invalid JSON does not quote the text around the error', () => {
  const r = loadConfigText(`{"node": {"address": "192.0.2.11"}, "etcd": {"password": ${SECRET}}}`, { env: {}, json: true });
  assert.ok(!r.ok);
  const out = r.issues.map(formatIssue);
  assert.equal(out.length, 1);
  // V8 quotes about ten characters on each side of the error: the start of the secret.
  assert.ok(!out[0]!.includes(SECRET.slice(0, 7)), out[0]);
  assert.match(out[0]!, /^\(file\): invalid JSON: /);
});

test('a password read as a YAML alias is not named in the error', () => {
  const r = loadConfigText(`${MINIMAL}etcd: {username: root, password: *${SECRET}}\n`, { env: {} });
  assert.ok(!r.ok);
  const out = r.issues.map(formatIssue);
  assert.ok(out.every((l) => !l.includes(SECRET)), out.join('\n'));
  assert.match(out[0]!, /^\(file\): invalid YAML: Unresolved alias/);
});

test('check-config: exit 78, the key named, the mapping secret not printed', (t) => {
  const dir = tempDir(t);
  const file = writeFile(dir, 'site.yaml', `${MINIMAL}etcd: {username: root, password: {a: ${SECRET}}}\nbgp: {peers: [{address: 192.0.2.1, asn: 65000, password: {x: ${SECRET}}}]}\n`);
  const err: string[] = [];
  const saved = Object.entries(process.env).filter(([k]) => k.startsWith('NRD_'));
  for (const [k] of saved) delete process.env[k];
  let code: number;
  try {
    code = checkConfigCommand(file, [], { stdout: () => {}, stderr: (s) => err.push(s) });
  } finally {
    for (const [k, v] of saved) process.env[k] = v;
  }
  assert.equal(code, EX_CONFIG);
  assert.deepEqual(err, [
    'etcd.password: expects string, got a mapping (value: "(redacted)")',
    'bgp.peers[0].password: expects string, got a mapping (value: "(redacted)")',
  ]);
});
