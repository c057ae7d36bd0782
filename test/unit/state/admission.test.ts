// Admission of records read from etcd (daemon/state/admission.ts): which node addresses, MACs,
// ASNs, CIDR claims and endpoint addresses are refused, and with which stable reason.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { admitAlive, admitCidrClaim, admitEndpoint, admitNode, underlayProblem, type AdmissionRules } from '../../../daemon/state/admission.js';
import { Keys } from '../../../daemon/state/keys.js';

const K = new Keys('/nrd/v1');
const rules: AdmissionRules = {
  pools: [
    { name: 'ipv4', cidr: '10.244.0.0/16', maskSize: 24 },
    { name: 'ipv6', cidr: 'fd00:244::/48', maskSize: 64 },
  ],
};
const reason = (a: { ok: boolean; reason?: string }): string => (a.ok ? 'ok' : a.reason!);

test('underlay addresses: unicast in any routable range passes; unspecified, loopback, link-local, multicast, mapped, pod pool refused', () => {
  for (const good of ['192.0.2.1', '10.0.0.1', '203.0.113.9', '2001:db8::1', 'fd12::1']) assert.equal(underlayProblem(good, rules), null, good);
  for (const bad of ['not-an-ip', '', '0.0.0.0', '0.1.2.3', '127.0.0.1', '169.254.1.1', '224.0.0.5', '239.1.1.1', '255.255.255.255', '240.0.0.1', '::', '::1', '::ffff:192.0.2.1', 'fe80::1', 'ff02::1', '10.244.3.4', 'fd00:244::5']) {
    assert.notEqual(underlayProblem(bad, rules), null, bad);
  }
});

test('node records: name matches key and is a host name; address, vtepMac, asn checked', () => {
  const rec = (o: Record<string, unknown>): string => JSON.stringify({ name: 'n2', address: '192.0.2.2', podCidrs: [], version: 'v', capabilities: [], ...o });
  assert.equal(reason(admitNode(K.node('n2'), rec({ vtepMac: '02:00:00:00:00:02', asn: 64512 }), rules)), 'ok');
  assert.equal(reason(admitNode(K.node('n2'), '{not json', rules)), 'malformed');
  assert.equal(reason(admitNode(K.node('n3'), rec({}), rules)), 'bad_name');
  assert.equal(reason(admitNode(K.node('a_b'), rec({ name: 'a_b' }), rules)), 'bad_name');
  assert.equal(reason(admitNode(K.node('n2'), rec({ address: 'not-an-ip' }), rules)), 'bad_address');
  assert.equal(reason(admitNode(K.node('n2'), rec({ address: '0.0.0.0' }), rules)), 'bad_address');
  for (const mac of ['01:00:5e:00:00:01', '00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff', '02:00:00:00:00', 'AA:00:00:00:00:01', 7]) {
    assert.equal(reason(admitNode(K.node('n2'), rec({ vtepMac: mac }), rules)), 'bad_mac', String(mac));
  }
  for (const asn of [0, -1, 1.5, 4294967296, '64512']) assert.equal(reason(admitNode(K.node('n2'), rec({ asn }), rules)), 'bad_asn', String(asn));
});

test('CIDR claims: one node-sized block of the pool the key names; anything else refused with its reason', () => {
  const v = JSON.stringify({ node: 'n2', at: 'x' });
  const claim = (pool: string, cidr: string): string => reason(admitCidrClaim(K, K.cidr(pool, cidr), v, rules));
  assert.equal(claim('ipv4', '10.244.2.0/24'), 'ok');
  assert.equal(claim('ipv6', 'fd00:244:0:7::/64'), 'ok');
  assert.equal(claim('ipv4', '0.0.0.0/0'), 'outside_pool');
  assert.equal(claim('ipv4', '10.0.0.0/8'), 'outside_pool');
  assert.equal(claim('ipv4', '192.168.1.0/24'), 'outside_pool');
  assert.equal(claim('ipv6', '10.244.2.0/24'), 'outside_pool');
  assert.equal(claim('ipv4', '10.244.2.0/23'), 'wrong_mask');
  assert.equal(claim('ipv4', '10.244.2.128/25'), 'wrong_mask');
  assert.equal(claim('ipv4', '10.244.2.1/24'), 'bad_cidr');
  assert.equal(claim('ipv6', 'FD00:244:0:7::/64'), 'bad_cidr');
  assert.equal(claim('ipv4', 'garbage'), 'bad_cidr');
  assert.equal(claim('ipv9', '10.244.2.0/24'), 'bad_key');
  assert.equal(reason(admitCidrClaim(K, K.cidr('ipv4', '10.244.2.0/24'), JSON.stringify({ node: 'x/y' }), rules)), 'bad_name');
});

test('endpoints: addresses inside a pod pool, node and id matching the key; liveness keeps the key but drops a bad address', () => {
  const ep = (ips: string[]): string => JSON.stringify({ id: 'e1', node: 'n2', ips, netns: '/x', labels: {} });
  assert.equal(reason(admitEndpoint(K.endpoint('n2', 'e1'), ep(['10.244.2.5', 'fd00:244:0:2::5']), rules)), 'ok');
  assert.equal(reason(admitEndpoint(K.endpoint('n2', 'e1'), ep(['192.168.0.5']), rules)), 'outside_pool');
  assert.equal(reason(admitEndpoint(K.endpoint('n3', 'e1'), ep(['10.244.2.5']), rules)), 'bad_name');
  assert.deepEqual(admitAlive(K.aliveKey('n2'), JSON.stringify({ address: '192.0.2.2' }), rules), { value: { address: '192.0.2.2' } });
  const bad = admitAlive(K.aliveKey('n2'), JSON.stringify({ address: '127.0.0.1' }), rules);
  assert.deepEqual(bad.value, {});
  assert.equal(bad.rejected?.reason, 'bad_address');
});
