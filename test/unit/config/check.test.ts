// checkConfigCommand: exit 0 on a good file, 78 (EX_CONFIG) with one line per problem otherwise.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { EX_CONFIG, checkConfigCommand } from '../../../daemon/config/index.js';
import { EXAMPLE_FILE, tempDir, writeFile } from './util.js';

function run(file: string, sets: string[] = []): { code: number; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  const code = checkConfigCommand(file, sets, { stdout: (s) => out.push(s), stderr: (s) => err.push(s) });
  return { code, out, err };
}

// The command reads process.env like the daemon does; keep the runner's NRD_* out of these tests.
function withoutNrdEnv<T>(fn: () => T): T {
  const saved = Object.entries(process.env).filter(([k]) => k.startsWith('NRD_'));
  for (const [k] of saved) delete process.env[k];
  try {
    return fn();
  } finally {
    for (const [k, v] of saved) process.env[k] = v;
  }
}

test('EX_CONFIG is 78', () => {
  assert.equal(EX_CONFIG, 78);
});

test('the example passes: exit 0, nothing on stderr', () => {
  const r = withoutNrdEnv(() => run(EXAMPLE_FILE));
  assert.equal(r.code, 0);
  assert.deepEqual(r.err, []);
  assert.deepEqual(r.out, [`${EXAMPLE_FILE}: OK`]);
});

test('each kind of bad input exits 78 with a line naming key and value', (t) => {
  const dir = tempDir(t);
  const cases: [string, string, string][] = [
    ['bad CIDR', 'node: {address: 192.0.2.11}\ncluster: {podCIDRs: [10.244.0.1/16]}\n', 'cluster.podCIDRs[0]: has host bits set: did you mean 10.244.0.0/16? (value: "10.244.0.1/16")'],
    ['unknown key', 'node: {address: 192.0.2.11, adress: 1}\n', 'node.adress: unknown key: did you mean address? (value: 1)'],
    ['peer without asn', 'node: {address: 192.0.2.11}\nbgp: {peers: [{address: 192.0.2.1}]}\n', 'bgp.peers[0].asn: is required: every peer needs its asn (peer 192.0.2.1) (value: none)'],
    ['bad IP', 'node: {address: 192.0.2.256}\n', 'node.address: is not a valid IP address (value: "192.0.2.256")'],
    ['bad ASN', 'node: {address: 192.0.2.11}\nbgp: {asn: 4294967296}\n', 'bgp.asn: must be an integer in 1..4294967295 (value: 4294967296)'],
    ['bad enum', 'node: {address: 192.0.2.11}\nrouting: {mode: fast}\n', 'routing.mode: must be one of: native, vxlan, auto, cross-subnet (value: "fast")'],
  ];
  for (const [name, yaml, line] of cases) {
    const file = writeFile(dir, `${name.replace(/ /g, '-')}.yaml`, yaml);
    const r = withoutNrdEnv(() => run(file));
    assert.equal(r.code, EX_CONFIG, name);
    assert.deepEqual(r.err, [line], name);
    assert.deepEqual(r.out, [], name);
  }
});

test('--set applies before the check, both ways', (t) => {
  const dir = tempDir(t);
  const file = writeFile(dir, 'site.yaml', 'log: {level: info}\n');
  const missing = withoutNrdEnv(() => run(file));
  assert.equal(missing.code, EX_CONFIG);
  assert.deepEqual(missing.err, ['node.address: is required (value: "")']);
  assert.equal(withoutNrdEnv(() => run(file, ['node.address=192.0.2.11'])).code, 0);
  const bad = withoutNrdEnv(() => run(EXAMPLE_FILE, ['bgp.asn=-1']));
  assert.equal(bad.code, EX_CONFIG);
  assert.deepEqual(bad.err, ['bgp.asn: must be an integer in 1..4294967295 (from --set) (value: -1)']);
});

test('a missing file exits 78', (t) => {
  const dir = tempDir(t);
  const r = withoutNrdEnv(() => run(`${dir}/nope.yaml`));
  assert.equal(r.code, EX_CONFIG);
  assert.equal(r.err.length, 1);
  assert.match(r.err[0]!, /^\(file\): cannot read the file \(ENOENT\)/);
});
