// NRD_* environment variables and --set flags: precedence file < env < --set, strict parsing.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigText } from '../../../daemon/config/index.js';
import { MINIMAL, issueAt, issuesOf, loadOk } from './util.js';

test('env overrides the file (NRD_BGP_ASN, NRD_LOG_LEVEL)', () => {
  const c = loadOk(`${MINIMAL}bgp: {asn: 64512}\nlog: {level: warn}\n`, { env: { NRD_BGP_ASN: '65001', NRD_LOG_LEVEL: 'debug' } });
  assert.equal(c.bgp.asn, 65001);
  assert.equal(c.log.level, 'debug');
});

test('env fills a required key the file leaves out', () => {
  const c = loadOk('log: {level: info}\n', { env: { NRD_NODE_ADDRESS: '192.0.2.21', NRD_NODE_NAME: 'rack1-n21' } });
  assert.equal(c.node.address, '192.0.2.21');
  assert.equal(c.node.name, 'rack1-n21');
  assert.equal(c.bgp.routerId, '192.0.2.21', 'derived defaults follow the env value');
});

test('env lists, booleans, nested keys and peers', () => {
  const c = loadOk(MINIMAL, {
    env: {
      NRD_CLUSTER_POD_CIDRS: '10.244.0.0/16, fd00:244::/48',
      NRD_CLUSTER_NODE_CIDR_MASK_SIZE_IPV6: '80',
      NRD_BGP_NODE_MESH: 'yes',
      NRD_DATAPATH_MASQUERADE: 'off',
      NRD_BGP_IMPORT_MAX_PREFIX_LENGTH_IPV4: '28',
      NRD_ETCD_ENDPOINTS: '[http://192.0.2.2:2379, http://192.0.2.3:2379]',
      NRD_BGP_PEERS: '[{"address": "192.0.2.1", "asn": 65000, "holdTime": 9}]',
      NRD_DATAPATH_XDP_PREFILTER_DENY: '',
      NRD_ETCD_USERNAME: 'nrd',
      NRD_ETCD_PASSWORD: '123456',
    },
  });
  assert.deepEqual(c.cluster.podCIDRs, ['10.244.0.0/16', 'fd00:244::/48']);
  assert.equal(c.cluster.nodeCIDRMaskSizeIPv6, 80);
  assert.equal(c.bgp.nodeMesh, true);
  assert.equal(c.datapath.masquerade, false);
  assert.equal(c.bgp.import.maxPrefixLength.ipv4, 28);
  assert.deepEqual(c.etcd.endpoints, ['http://192.0.2.2:2379', 'http://192.0.2.3:2379']);
  assert.equal(c.bgp.peers[0]!.asn, 65000);
  assert.equal(c.bgp.peers[0]!.holdTime, 9);
  assert.deepEqual(c.datapath.xdpPrefilter.deny, []);
  assert.equal(c.etcd.password, '123456', 'a numeric-looking password stays text');
});

test('env values are parsed strictly, and the issue names the variable', () => {
  // convict alone would parseInt "65001abc" to 65001 and read "no" as true.
  const issues = issuesOf(MINIMAL, { env: { NRD_BGP_ASN: '65001abc', NRD_BGP_NODE_MESH: 'maybe', NRD_CLUSTER_POD_CIDRS: '10.244.0.0/16,10.1.0.1/16' } });
  const asn = issueAt(issues, 'bgp.asn');
  assert.equal(asn.value, '65001abc');
  assert.match(asn.message, /\(from NRD_BGP_ASN\)$/);
  assert.match(issueAt(issues, 'bgp.nodeMesh').message, /from NRD_BGP_NODE_MESH/);
  const cidr = issueAt(issues, 'cluster.podCIDRs[1]');
  assert.equal(cidr.value, '10.1.0.1/16');
  assert.match(cidr.message, /host bits.*from NRD_CLUSTER_POD_CIDRS/);
});

test('bad peers from NRD_BGP_PEERS are reported per field', () => {
  const issues = issuesOf(MINIMAL, { env: { NRD_BGP_PEERS: '[{address: 192.0.2.1}]' } });
  assert.match(issueAt(issues, 'bgp.peers[0].asn').message, /required.*from NRD_BGP_PEERS/);
  const garbled = issuesOf(MINIMAL, { env: { NRD_BGP_PEERS: '[{address: ' } });
  assert.equal(issueAt(garbled, 'bgp.peers').value, '[{address: ');
});

test('--set overrides env and file; values are YAML scalars', () => {
  const c = loadOk(`${MINIMAL}bgp: {asn: 64512, holdTime: 90}\n`, {
    env: { NRD_BGP_ASN: '65001' },
    sets: [
      'bgp.asn=65002',
      'bgp.holdTime=0',
      'log.level=trace',
      'node.name="quoted-name"',
      'etcd.username=root',
      'etcd.password=000123',
      'bgp.export.med=null',
      'bgp.export.localPref=0x10',
      'bgp.nodeMesh=true',
      'cluster.podCIDRs=[10.244.0.0/16, "fd00:244::/48"]',
      'bgp.peers=[{address: 192.0.2.1, asn: 65000, passive: true}]',
      'api.metrics=',
    ],
  });
  assert.equal(c.bgp.asn, 65002);
  assert.equal(c.bgp.holdTime, 0);
  assert.equal(c.log.level, 'trace');
  assert.equal(c.node.name, 'quoted-name');
  assert.equal(c.etcd.password, '000123');
  assert.equal(c.bgp.export.med, null);
  assert.equal(c.bgp.export.localPref, 16);
  assert.equal(c.bgp.nodeMesh, true);
  assert.deepEqual(c.cluster.podCIDRs, ['10.244.0.0/16', 'fd00:244::/48']);
  assert.equal(c.bgp.peers[0]!.passive, true);
  assert.equal(c.api.metrics, '', 'an empty value disables metrics');
});

test('bad --set flags are issues, never exceptions', () => {
  const issues = issuesOf(MINIMAL, { sets: ['bgp.nope=1', 'garbage', 'bgp=5', 'bgp.asn.deeper=1', '=1', 'bgp.asn=many'] });
  assert.match(issueAt(issues, 'bgp.nope').message, /unknown key \(from --set\)/);
  assert.equal(issues.filter((i) => i.key === '--set').length, 2, 'garbage and =1');
  assert.match(issueAt(issues, 'bgp').message, /is a section/);
  assert.match(issueAt(issues, 'bgp.asn.deeper').message, /unknown key/);
  const asn = issueAt(issues, 'bgp.asn');
  assert.equal(asn.value, 'many');
  assert.match(asn.message, /\(from --set\)$/);
});

test('a --set typo gets a hint', () => {
  const issues = issuesOf(MINIMAL, { sets: ['bgp.holdtime=30'] });
  assert.match(issueAt(issues, 'bgp.holdtime').message, /did you mean holdTime\?/);
});

test('without opts.env, process.env is read', () => {
  const saved = process.env.NRD_BGP_ECMP_MAX;
  process.env.NRD_BGP_ECMP_MAX = '3';
  try {
    const r = loadConfigText(MINIMAL);
    assert.ok(r.ok);
    assert.equal(r.config.bgp.ecmpMax, 3);
  } finally {
    if (saved === undefined) delete process.env.NRD_BGP_ECMP_MAX;
    else process.env.NRD_BGP_ECMP_MAX = saved;
  }
});
