// nrdctl text output: tables, durations and the human status summary.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatDuration, formatStatus, formatTable } from '../../../daemon/cli/format.js';
import { sampleStatus } from './fixtures.js';


test('table columns are aligned under upper-case headers, missing cells are "-"', () => {
  const t = formatTable(['name', 'ready', 'reason'], [['api', 'yes', undefined], ['datapath', 'no', 'loading']]);
  assert.equal(t, 'NAME      READY  REASON\napi       yes    -\ndatapath  no     loading\n');
});

test('durations read like 1h2m5s', () => {
  assert.equal(formatDuration(0), '0s');
  assert.equal(formatDuration(59), '59s');
  assert.equal(formatDuration(3725), '1h2m5s');
  assert.equal(formatDuration(90061), '1d1h1m1s');
  assert.equal(formatDuration(3600), '1h');
});

test('status summary: node, readiness with reason, config and one row per subsystem', () => {
  const out = formatStatus(sampleStatus());
  const lines = out.split('\n');
  assert.match(lines[0]!, /^Node:\s+node-a \(192\.0\.2\.11 on eth0\)$/);
  assert.match(out, /^State:\s+NOT READY: waiting for bgp: no peer established$/m);
  assert.match(out, /^Version:\s+0\.1\.0, pid 4242, up 1h2m5s$/m);
  assert.match(out, /^BGP:\s+AS 64512, router-id 192\.0\.2\.11, 2 configured peers$/m);
  assert.match(out, /^Reloads:\s+1 applied, 2 rejected$/m);
  assert.match(out, /^SUBSYSTEM\s+READY\s+SINCE\s+REASON$/m);
  assert.match(out, /^api\s+yes\s+2025-01-01T00:00:01\.000Z\s+-$/m);
  assert.match(out, /^bgp\s+no\s+2025-01-01T00:00:01\.000Z\s+no peer established$/m);
});

test('status names the endpoint device (veth, whether netkit exists) and where masquerade runs', () => {
  const base = sampleStatus();
  const st = {
    ...base,
    subsystems: [
      ...base.subsystems,
      { name: 'endpoints', ready: true, since: '2025-01-01T00:00:01.000Z', status: { device: { kind: 'veth', netkit: 'absent (EOPNOTSUPP)' } } },
      { name: 'datapath', ready: true, since: '2025-01-01T00:00:01.000Z', status: { masquerade: { mode: 'nftables', reason: 'datapath.masqueradeBackend is nftables' } } },
    ],
  };
  const out = formatStatus(st);
  assert.match(out, /^Endpoints:\s+veth pairs; netkit absent \(EOPNOTSUPP\)$/m);
  assert.match(out, /^Masquerade:\s+nftables \(datapath\.masqueradeBackend is nftables\)$/m);
  assert.doesNotMatch(formatStatus(base), /Masquerade|Endpoints:/);
});

test('a ready node says ready and omits an empty reload line', () => {
  const out = formatStatus(sampleStatus({ ready: true, status: 'ready (api)', reloads: { applied: 0, unchanged: 0, rejected: 0, failed: 0 } }));
  assert.match(out, /^State:\s+ready$/m);
  assert.doesNotMatch(out, /Reloads/);
});
