// docs/config.md is generated from the schema and must not go stale; env names follow one rule.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { CONFIG_LEAVES, PEER_SCHEMA, envName, renderConfigDoc } from '../../../daemon/config/index.js';
import { REPO_ROOT } from './util.js';

const DOC = join(REPO_ROOT, 'docs', 'config.md');

test('docs/config.md is the text generated from the schema', () => {
  const onDisk = readFileSync(DOC, 'utf8');
  const generated = renderConfigDoc();
  if (onDisk !== generated) {
    const a = onDisk.split('\n');
    const b = generated.split('\n');
    const at = a.findIndex((l, i) => l !== b[i]);
    assert.fail(
      `docs/config.md is stale (first difference at line ${at + 1}):\n  file:      ${a[at]}\n  generated: ${b[at]}\n` +
        'regenerate it with: npx tsc -p tsconfig.json && node dist/daemon/config/gen-doc.js',
    );
  }
});

test('the generator script agrees (--check exits 0)', () => {
  const script = join(REPO_ROOT, 'dist', 'daemon', 'config', 'gen-doc.js');
  const r = spawnSync(process.execPath, [script, '--check'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
});

test('every key appears in the reference with its env var', () => {
  const doc = renderConfigDoc();
  for (const [path, leaf] of CONFIG_LEAVES) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${path}\` |`));
    assert.ok(row, `no row for ${path}`);
    assert.ok(row.includes(`\`${leaf.env}\``), `${path}: env ${leaf.env} missing`);
    assert.ok(leaf.doc.length > 10, `${path} needs a real description`);
  }
  for (const k of Object.keys(PEER_SCHEMA)) assert.ok(doc.includes(`\`bgp.peers[].${k}`), `peer field ${k}`);
});

test('env var names: NRD_ + the path in snake case, all distinct', () => {
  assert.equal(envName('bgp.asn'), 'NRD_BGP_ASN');
  assert.equal(envName('log.level'), 'NRD_LOG_LEVEL');
  assert.equal(envName('cluster.podCIDRs'), 'NRD_CLUSTER_POD_CIDRS');
  assert.equal(envName('cluster.nodeCIDRMaskSizeIPv6'), 'NRD_CLUSTER_NODE_CIDR_MASK_SIZE_IPV6');
  assert.equal(envName('etcd.leaseTTL'), 'NRD_ETCD_LEASE_TTL');
  assert.equal(envName('bgp.routerId'), 'NRD_BGP_ROUTER_ID');
  const names = [...CONFIG_LEAVES.values()].map((l) => l.env);
  assert.equal(new Set(names).size, names.length);
  for (const n of names) assert.match(n ?? '', /^NRD_[A-Z0-9_]+$/);
});
