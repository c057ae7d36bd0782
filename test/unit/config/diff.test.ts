// diffConfig: leaf-level changes, peers matched by address, secrets redacted.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diffConfig, type NrdConfig } from '../../../daemon/config/index.js';
import { loadOk } from './util.js';

const base = (peers: string, extra = ''): NrdConfig =>
  loadOk(`node: {address: 192.0.2.11}\nlog: {level: info}\n${extra}bgp:\n  peers:\n${peers}`);

const P1 = '    - {address: 192.0.2.1, asn: 65000, password: one}\n';
const P2 = '    - {address: 192.0.2.2, asn: 65000}\n';

test('identical configs have no changes', () => {
  assert.deepEqual(diffConfig(base(P1 + P2), base(P1 + P2)), []);
});

test('reordering peers changes nothing', () => {
  assert.deepEqual(diffConfig(base(P1 + P2), base(P2 + P1)), []);
});

test('a changed log level is one leaf change', () => {
  const a = base(P1);
  const b = loadOk(`node: {address: 192.0.2.11}\nlog: {level: debug}\nbgp:\n  peers:\n${P1}`);
  assert.deepEqual(diffConfig(a, b), [{ key: 'log.level', from: 'info', to: 'debug' }]);
});

test('a change to one peer names that peer and field only', () => {
  const a = base(P1 + P2);
  const b = base(P1 + '    - {address: 192.0.2.2, asn: 65000, holdTime: 30}\n');
  assert.deepEqual(diffConfig(a, b), [{ key: 'bgp.peers[192.0.2.2].holdTime', from: 90, to: 30 }]);
});

test('a changed global hold time shows on the inheriting peers too', () => {
  const a = base(P2);
  const b = loadOk(`node: {address: 192.0.2.11}\nlog: {level: info}\nbgp:\n  holdTime: 30\n  peers:\n${P2}`);
  assert.deepEqual(diffConfig(a, b), [
    { key: 'bgp.holdTime', from: 90, to: 30 },
    { key: 'bgp.peers[192.0.2.2].holdTime', from: 90, to: 30 },
  ]);
});

test('added and removed peers; passwords are redacted', () => {
  const a = base(P1);
  const b = base(P2);
  const d = diffConfig(a, b);
  assert.equal(d.length, 2);
  assert.equal(d[0]!.key, 'bgp.peers[192.0.2.1]');
  assert.equal(d[0]!.to, null);
  assert.equal((d[0]!.from as { password: string }).password, '(redacted)');
  assert.equal(d[1]!.key, 'bgp.peers[192.0.2.2]');
  assert.equal(d[1]!.from, null);
  assert.equal((d[1]!.to as { asn: number }).asn, 65000);
  const pw = diffConfig(a, base('    - {address: 192.0.2.1, asn: 65000, password: two}\n'));
  assert.deepEqual(pw, [{ key: 'bgp.peers[192.0.2.1].password', from: '(redacted)', to: '(redacted)' }]);
  const etcd = diffConfig(base(P2, 'etcd: {username: u, password: a}\n'), base(P2, 'etcd: {username: u, password: b}\n'));
  assert.deepEqual(etcd, [{ key: 'etcd.password', from: '(redacted)', to: '(redacted)' }]);
});

test('lists other than peers compare whole; nested leaves by path', () => {
  const a = base(P2);
  const b = loadOk(`node: {address: 192.0.2.11}\nlog: {level: info}\ncluster: {podCIDRs: [10.244.0.0/16, "fd00:244::/48"]}\nrouting: {vxlan: {vni: 7}}\nbgp:\n  peers:\n${P2}`);
  const d = diffConfig(a, b);
  assert.deepEqual(
    d.find((c) => c.key === 'cluster.podCIDRs'),
    { key: 'cluster.podCIDRs', from: ['10.244.0.0/16'], to: ['10.244.0.0/16', 'fd00:244::/48'] },
  );
  assert.deepEqual(d.find((c) => c.key === 'routing.vxlan.vni'), { key: 'routing.vxlan.vni', from: 1, to: 7 });
  // The new pool family also changes the peer's derived families: the session must renegotiate.
  assert.deepEqual(d.find((c) => c.key === 'bgp.peers[192.0.2.2].families'), {
    key: 'bgp.peers[192.0.2.2].families',
    from: ['ipv4'],
    to: ['ipv4', 'ipv6'],
  });
  assert.equal(d.length, 3);
});
