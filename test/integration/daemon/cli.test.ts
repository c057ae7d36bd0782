// The nrd command line without a running daemon: check-config (0 for the shipped example, 78 with
// key and value for bad files), a bad file at start (78, one line per issue), --version, usage.
// Every nrd runs inside a test network namespace (NrdSandbox), like the daemon tests' nrd.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { NRD, NrdSandbox, ROOT, tempDir, type RunNodeResult } from './harness.js';

const sb = NrdSandbox.use(after, 'cli');

before(async () => {
  await sb.build();
});

function runNode(script: string, args: string[]): Promise<RunNodeResult> {
  return sb.runNode(script, args);
}

const EX_CONFIG = 78;

test('check-config accepts config/site.example.yaml', async () => {
  const r = await runNode(NRD, ['check-config', join(ROOT, 'config', 'site.example.yaml')]);
  assert.equal(r.code, 0, r.stderr);
});

test('check-config: exit 78 and a line naming the key and the value of each problem', async (t) => {
  const tmp = tempDir('nrdt-check');
  t.after(tmp.cleanup);
  const file = join(tmp.dir, 'bad.yaml');
  writeFileSync(file, 'node:\n  address: 192.0.2.11\ncluster:\n  podCIDRs: [10.244.0.0/33]\nbgp:\n  asn: not-a-number\n');
  const r = await runNode(NRD, ['check-config', file]);
  assert.equal(r.code, EX_CONFIG, r.stderr);
  const lines = r.stderr.trim().split('\n');
  const asn = lines.find((l) => l.includes('bgp.asn'));
  assert.ok(asn, r.stderr);
  assert.match(asn, /not-a-number/);
  const cidr = lines.find((l) => l.includes('cluster.podCIDRs'));
  assert.ok(cidr, r.stderr);
  assert.match(cidr, /10\.244\.0\.0\/33/);
});

test('check-config honours --set', async (t) => {
  const tmp = tempDir('nrdt-check');
  t.after(tmp.cleanup);
  const file = join(tmp.dir, 'site.yaml');
  writeFileSync(file, sb.site({ socket: join(tmp.dir, 'nrd.sock'), metricsPort: null }));
  assert.equal((await runNode(NRD, ['check-config', file])).code, 0);
  const r = await runNode(NRD, ['check-config', file, '--set', 'bgp.asn=0']);
  assert.equal(r.code, EX_CONFIG, r.stderr);
  assert.match(r.stderr, /bgp\.asn/);
});

test('nrd --config with a bad file: exit 78, issues one per line, nothing started', async (t) => {
  const tmp = tempDir('nrdt-badstart');
  t.after(tmp.cleanup);
  const file = join(tmp.dir, 'site.yaml');
  const socket = join(tmp.dir, 'nrd.sock');
  writeFileSync(file, sb.site({ socket, metricsPort: null, extra: 'bgp:\n  asn: not-a-number\n  bogusKey: 1\n' }));
  const r = await runNode(NRD, ['--config', file]);
  assert.equal(r.code, EX_CONFIG, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.match(lines[0]!, /is not a valid site config/);
  assert.ok(lines.some((l) => l.includes('bgp.asn') && l.includes('not-a-number')), r.stderr);
  assert.ok(lines.some((l) => l.includes('bogusKey')), r.stderr);
  assert.equal(r.stdout, '', 'no daemon log: it never started');
});

test('nrd --version, --help, and usage errors (64)', async () => {
  const v = await runNode(NRD, ['--version']);
  assert.equal(v.code, 0);
  assert.match(v.stdout, /^nrd \d+\.\d+\.\d+\n$/);
  const h = await runNode(NRD, ['--help']);
  assert.equal(h.code, 0);
  assert.match(h.stdout, /nrd check-config FILE/);
  assert.equal((await runNode(NRD, [])).code, 64);
  assert.equal((await runNode(NRD, ['--bogus'])).code, 64);
  assert.equal((await runNode(NRD, ['check-config'])).code, 64);
});
