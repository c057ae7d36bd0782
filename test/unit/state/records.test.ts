// Unit tests of record validation (daemon/state/records.ts): invalid input gets a reason naming
// the field and value; valid input is normalised.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validatePolicy, validateService, canonicalLabels } from '../../../daemon/state/records.js';

function reason(r: { ok: boolean; reason?: string }): string {
  assert.equal(r.ok, false);
  return r.reason!;
}

test('service validation', () => {
  const ok = validateService({ name: 'web', vip: '10.96.0.10', port: 80, protocol: 'TCP', backends: [{ ip: '10.244.1.2' }, { ip: '10.244.2.3', port: 8080 }] });
  assert.ok(ok.ok);
  if (ok.ok) {
    assert.equal(ok.value.protocol, 'tcp');
    assert.deepEqual(ok.value.backends, [{ ip: '10.244.1.2', port: 80 }, { ip: '10.244.2.3', port: 8080 }]);
  }
  assert.match(reason(validateService({ name: 'Web!', vip: '10.96.0.10', port: 80 })), /service\.name: "Web!" is not a valid name/);
  assert.match(reason(validateService({ name: 'web', vip: '10.96.0.300', port: 80 })), /service\.vip: "10\.96\.0\.300" is not an IP/);
  assert.match(reason(validateService({ name: 'web', vip: '10.96.0.1', port: 70000 })), /service\.port: port must be an integer 1-65535, got 70000/);
  assert.match(reason(validateService({ name: 'web', vip: '10.96.0.1', port: 80, protocol: 'icmp' })), /protocol must be one of/);
  assert.match(reason(validateService({ name: 'web', vip: '10.96.0.1', port: 80, backends: [{ ip: 'fd00::1' }] })), /backends\[0\]\.ip: fd00::1 is not of the VIP's address family/);
  assert.match(reason(validateService({ name: 'web', vip: '10.96.0.1', port: 80, vipp: 1 })), /unknown field "vipp"/);
  assert.match(reason(validateService('web')), /expected an object/);
});

test('policy validation', () => {
  const ok = validatePolicy({
    name: 'db-ingress',
    selector: { app: 'db' },
    ingress: [{ from: [{ labels: { app: 'web' } }, { cidr: '192.0.2.0/24' }], ports: [{ port: 5432 }] }],
    egress: [{ to: [{ cidr: 'fd00:244::/48' }] }],
  });
  assert.ok(ok.ok, ok.ok ? '' : ok.reason);
  assert.match(reason(validatePolicy({ name: 'p', ingress: [] })), /policy\.selector: required/);
  assert.match(reason(validatePolicy({ name: 'p', selector: {}, ingress: [{ from: [{ cidr: '10.0.0.1/8' }] }] })), /policy\.ingress\[0\]\.from\[0\]\.cidr: .*host bits set/);
  assert.match(reason(validatePolicy({ name: 'p', selector: {}, ingress: [{ from: [{ labels: {}, cidr: '10.0.0.0/8' }] }] })), /exactly one of labels or cidr/);
  assert.match(reason(validatePolicy({ name: 'p', selector: {}, egress: [{ to: [], ports: [{ port: 90, endPort: 80 }] }] })), /endPort: 80 is below port 90/);
  assert.match(reason(validatePolicy({ name: 'p', selector: { 'bad key!': 'x' } })), /label key "bad key!" is invalid/);
});

test('canonical labels ignore insertion order', () => {
  assert.equal(canonicalLabels({ b: '2', a: '1' }), canonicalLabels({ a: '1', b: '2' }));
  assert.equal(canonicalLabels({ a: '1', b: '2' }), 'a=1,b=2');
});
