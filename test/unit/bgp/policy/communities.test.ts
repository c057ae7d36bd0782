// One community parser for the site config and the speaker (RFC 1997, RFC 3765, RFC 7999,
// RFC 8326 well-known names). Regression: check-config accepted no-peer and graceful-shutdown
// while the speaker's own parser threw on them. The names come from the schema's doc text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkConfigCommand } from '../../../../daemon/config/index.js';
import { WELL_KNOWN_COMMUNITIES, parseCommunity } from '../../../../daemon/bgp/wire/communities.js';
import { ExportPolicy } from '../../../../daemon/bgp/policy/export.js';
import { documentedWellKnownCommunities } from './documented-communities.js';

test('the documented well-known names are exactly the parser table', () => {
  assert.deepEqual([...documentedWellKnownCommunities()].sort(), [...WELL_KNOWN_COMMUNITIES.keys()].sort());
});

test('every documented name passes check-config and reaches the export policy with its value', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nrd-communities-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const saved = Object.entries(process.env).filter(([k]) => k.startsWith('NRD_'));
  for (const [k] of saved) delete process.env[k];
  t.after(() => {
    for (const [k, v] of saved) process.env[k] = v;
  });
  for (const name of documentedWellKnownCommunities()) {
    const file = join(dir, `${name}.yaml`);
    writeFileSync(file, `node: {address: 192.0.2.11}\nbgp: {export: {communities: [${name}, "65000:7"]}}\n`);
    const err: string[] = [];
    const code = checkConfigCommand(file, [], { stdout: () => {}, stderr: (s) => err.push(s) });
    assert.equal(code, 0, `${name}: ${err.join('\n')}`);
    const value = parseCommunity(name);
    assert.ok(value !== null && value >>> 16 === 0xffff, `${name} is in the well-known range`);
    const policy = new ExportPolicy({ originate: [{ prefix: '10.244.1.0/24', communities: [name, '65000:7'] }] });
    assert.deepEqual(policy.originated()[0]!.attrs.communities, [value, 65000 * 65536 + 7]);
    assert.equal(parseCommunity(name.toUpperCase()), value, 'names are case-insensitive');
  }
});

test('well-known values: RFC 1997, RFC 3765, RFC 7999, RFC 8326', () => {
  assert.equal(parseCommunity('no-export'), 0xffffff01);
  assert.equal(parseCommunity('no-advertise'), 0xffffff02);
  assert.equal(parseCommunity('no-export-subconfed'), 0xffffff03);
  assert.equal(parseCommunity('no-peer'), 0xffffff04);
  assert.equal(parseCommunity('blackhole'), 0xffff029a);
  assert.equal(parseCommunity('graceful-shutdown'), 0xffff0000);
});
