// Each kind of bad input yields an issue naming the key path and the offending value.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatIssue, loadConfigFile } from '../../../daemon/config/index.js';
import { MINIMAL, issueAt, issuesOf, tempDir, writeFile } from './util.js';

interface Case {
  name: string;
  yaml: string;
  key: string;
  value: unknown;
  message: RegExp;
}

const PEER = (extra: string): string => `${MINIMAL}bgp:\n  peers:\n${extra}`;

const CASES: Case[] = [
  { name: 'CIDR with host bits set', yaml: `${MINIMAL}cluster: {podCIDRs: [10.244.1.0/16]}`, key: 'cluster.podCIDRs[0]', value: '10.244.1.0/16', message: /host bits set: did you mean 10\.244\.0\.0\/16\?/ },
  { name: 'CIDR with bad syntax', yaml: `${MINIMAL}cluster: {podCIDRs: [10.244.0.0/16, banana]}`, key: 'cluster.podCIDRs[1]', value: 'banana', message: /not a valid CIDR/ },
  { name: 'CIDR with a length too long', yaml: `${MINIMAL}bgp: {import: {extraRanges: ["fd00::/129"]}}`, key: 'bgp.import.extraRanges[0]', value: 'fd00::/129', message: /prefix length \(0\.\.128\)/ },
  { name: 'CIDR without length', yaml: `${MINIMAL}datapath: {masqueradeExclude: [192.0.2.7]}`, key: 'datapath.masqueradeExclude[0]', value: '192.0.2.7', message: /add the length \(192\.0\.2\.7\/32\)/ },
  { name: 'IPv6 pool with host bits', yaml: `${MINIMAL}cluster: {podCIDRs: ["fd00:244::1/48"]}`, key: 'cluster.podCIDRs[0]', value: 'fd00:244::1/48', message: /did you mean fd00:244::\/48/ },
  { name: 'bad IP', yaml: 'node: {address: 192.0.2.300}', key: 'node.address', value: '192.0.2.300', message: /not a valid IP address/ },
  { name: 'IP with a zone id', yaml: `${MINIMAL}bgp: {listen: {address: "fe80::1%eth0"}}`, key: 'bgp.listen.address', value: 'fe80::1%eth0', message: /not a valid IP address/ },
  { name: 'missing node.address', yaml: 'log: {level: info}', key: 'node.address', value: '', message: /required/ },
  { name: 'IPv6 routerId', yaml: `${MINIMAL}bgp: {routerId: "2001:db8::1"}`, key: 'bgp.routerId', value: '2001:db8::1', message: /IPv4/ },
  { name: 'zero routerId', yaml: `${MINIMAL}bgp: {routerId: 0.0.0.0}`, key: 'bgp.routerId', value: '0.0.0.0', message: /unspecified/ },
  { name: 'routerId needed for an IPv6 node', yaml: 'node: {address: "2001:db8::11"}', key: 'bgp.routerId', value: '', message: /required when node\.address is IPv6/ },
  { name: 'ASN zero', yaml: `${MINIMAL}bgp: {asn: 0}`, key: 'bgp.asn', value: 0, message: /1\.\.4294967295/ },
  { name: 'ASN above 32 bits', yaml: `${MINIMAL}bgp: {asn: 4294967296}`, key: 'bgp.asn', value: 4294967296, message: /1\.\.4294967295/ },
  { name: 'ASN not an integer', yaml: `${MINIMAL}bgp: {asn: 6.5}`, key: 'bgp.asn', value: 6.5, message: /integer/ },
  { name: 'ASN as text', yaml: `${MINIMAL}bgp: {asn: sixty}`, key: 'bgp.asn', value: 'sixty', message: /integer/ },
  { name: 'peer ASN out of range', yaml: PEER('    - {address: 192.0.2.1, asn: -5}\n'), key: 'bgp.peers[0].asn', value: -5, message: /1\.\.4294967295/ },
  { name: "route protocol of FRR's staticd", yaml: `${MINIMAL}routing: {routeProtocol: 196}`, key: 'routing.routeProtocol', value: 196, message: /route protocol of FRR \(zebra\)/ },
  { name: "route protocol of BIRD", yaml: `${MINIMAL}routing: {routeProtocol: 12}`, key: 'routing.routeProtocol', value: 12, message: /route protocol of BIRD/ },
  { name: "route protocol of nrd's endpoints", yaml: `${MINIMAL}routing: {routeProtocol: 221}`, key: 'routing.routeProtocol', value: 221, message: /endpoint routes/ },
  { name: 'unknown top-level key', yaml: `${MINIMAL}bogus: 1`, key: 'bogus', value: 1, message: /^unknown key$/ },
  { name: 'unknown nested key with a hint', yaml: `${MINIMAL}bgp: {holdtime: 30}`, key: 'bgp.holdtime', value: 30, message: /unknown key: did you mean holdTime\?/ },
  { name: 'unknown key deep under a section', yaml: `${MINIMAL}bgp: {gracefulRestart: {restartTime: 60, stale: {x: 1}}}`, key: 'bgp.gracefulRestart.stale', value: { x: 1 }, message: /unknown key/ },
  { name: 'unknown key with a dot in its name', yaml: `${MINIMAL}"bgp.asn": 5`, key: '["bgp.asn"]', value: 5, message: /unknown key/ },
  { name: 'unknown key inside a peer', yaml: PEER('    - {address: 192.0.2.1, asn: 65000, hold: 3}\n'), key: 'bgp.peers[0].hold', value: 3, message: /unknown key/ },
  { name: 'peer without asn', yaml: PEER('    - {address: 192.0.2.1}\n'), key: 'bgp.peers[0].asn', value: undefined, message: /required: every peer needs its asn \(peer 192\.0\.2\.1\)/ },
  { name: 'peer without address', yaml: PEER('    - {asn: 65000}\n'), key: 'bgp.peers[0].address', value: undefined, message: /required/ },
  { name: 'peer that is not a mapping', yaml: PEER('    - 192.0.2.1\n'), key: 'bgp.peers[0]', value: '192.0.2.1', message: /must be a mapping/ },
  { name: 'peers not a list', yaml: `${MINIMAL}bgp: {peers: 192.0.2.1}`, key: 'bgp.peers', value: '192.0.2.1', message: /list of peers/ },
  { name: 'duplicate peer address', yaml: PEER('    - {address: 192.0.2.1, asn: 65000}\n    - {address: 192.0.2.1, asn: 65001}\n'), key: 'bgp.peers[1].address', value: '192.0.2.1', message: /duplicates bgp\.peers\[0\]/ },
  { name: 'duplicate peer address in another IPv6 spelling', yaml: PEER('    - {address: "2001:db8:0::1", asn: 65000}\n    - {address: "2001:DB8::1", asn: 65000}\n'), key: 'bgp.peers[1].address', value: '2001:DB8::1', message: /duplicates/ },
  { name: 'peer with our own address', yaml: PEER('    - {address: 192.0.2.11, asn: 65000}\n'), key: 'bgp.peers[0].address', value: '192.0.2.11', message: /own address/ },
  { name: 'multicast peer', yaml: PEER('    - {address: 224.0.0.5, asn: 65000}\n'), key: 'bgp.peers[0].address', value: '224.0.0.5', message: /unicast/ },
  { name: 'route-reflector client over eBGP', yaml: PEER('    - {address: 192.0.2.1, asn: 65000, rrClient: true}\n'), key: 'bgp.peers[0].rrClient', value: true, message: /iBGP peers only/ },
  { name: 'peer password too long', yaml: PEER(`    - {address: 192.0.2.1, asn: 65000, password: ${'x'.repeat(81)}}\n`), key: 'bgp.peers[0].password', value: '(redacted)', message: /80 bytes/ },
  { name: 'peer max-prefix action', yaml: PEER('    - {address: 192.0.2.1, asn: 65000, maxPrefix: {limit: 10, action: drop}}\n'), key: 'bgp.peers[0].maxPrefix.action', value: 'drop', message: /warn, teardown/ },
  { name: 'peer families', yaml: PEER('    - {address: 192.0.2.1, asn: 65000, families: [ipv4, l2vpn]}\n'), key: 'bgp.peers[0].families[1]', value: 'l2vpn', message: /ipv4 or ipv6/ },
  { name: 'peer multihop', yaml: PEER('    - {address: 192.0.2.1, asn: 65000, multihop: 0}\n'), key: 'bgp.peers[0].multihop', value: 0, message: /1\.\.255/ },
  { name: 'mask size smaller than the pool prefix', yaml: `${MINIMAL}cluster: {podCIDRs: [10.244.0.0/16], nodeCIDRMaskSize: 12}`, key: 'cluster.nodeCIDRMaskSize', value: 12, message: /shorter than the pool 10\.244\.0\.0\/16/ },
  { name: 'IPv6 mask size smaller than the pool prefix', yaml: `${MINIMAL}cluster: {podCIDRs: [10.244.0.0/16, "fd00:244::/48"], nodeCIDRMaskSizeIPv6: 40}`, key: 'cluster.nodeCIDRMaskSizeIPv6', value: 40, message: /fd00:244::\/48/ },
  { name: 'overlapping pools', yaml: `${MINIMAL}cluster: {podCIDRs: [10.244.0.0/16, 10.244.128.0/17]}`, key: 'cluster.podCIDRs[1]', value: '10.244.128.0/17', message: /overlaps cluster\.podCIDRs\[0\]/ },
  { name: 'no pool at all', yaml: `${MINIMAL}cluster: {podCIDRs: []}`, key: 'cluster.podCIDRs', value: [], message: /at least 1/ },
  { name: 'static node CIDR outside the pools', yaml: 'node: {address: 192.0.2.11, podCIDRs: [10.9.0.0/24]}', key: 'node.podCIDRs[0]', value: '10.9.0.0/24', message: /not inside any of cluster\.podCIDRs/ },
  { name: 'bad enum', yaml: `${MINIMAL}routing: {mode: bgp}`, key: 'routing.mode', value: 'bgp', message: /one of: native, vxlan, auto, cross-subnet/ },
  { name: 'bad attach mode', yaml: `${MINIMAL}datapath: {attach: xdp}`, key: 'datapath.attach', value: 'xdp', message: /tcx, tc, auto/ },
  { name: 'bad log level', yaml: `${MINIMAL}log: {level: verbose}`, key: 'log.level', value: 'verbose', message: /trace, debug/ },
  { name: 'bad port', yaml: `${MINIMAL}bgp: {listen: {port: 70000}}`, key: 'bgp.listen.port', value: 70000, message: /1\.\.65535/ },
  { name: 'port zero', yaml: `${MINIMAL}routing: {vxlan: {port: 0}}`, key: 'routing.vxlan.port', value: 0, message: /1\.\.65535/ },
  { name: 'port as text', yaml: `${MINIMAL}bgp: {listen: {port: bgp}}`, key: 'bgp.listen.port', value: 'bgp', message: /integer/ },
  { name: 'VNI out of 24 bits', yaml: `${MINIMAL}routing: {vxlan: {vni: 16777216}}`, key: 'routing.vxlan.vni', value: 16777216, message: /1\.\.16777215/ },
  { name: 'VXLAN device not owned by name', yaml: `${MINIMAL}routing: {vxlan: {device: vxlan0}}`, key: 'routing.vxlan.device', value: 'vxlan0', message: /must start with "nrd"/ },
  { name: 'interface name too long', yaml: 'node: {address: 192.0.2.11, interface: enp0s31f6extralong}', key: 'node.interface', value: 'enp0s31f6extralong', message: /interface name/ },
  { name: 'hold time 2', yaml: `${MINIMAL}bgp: {holdTime: 2}`, key: 'bgp.holdTime', value: 2, message: /0 \(no keepalives\) or an integer in 3\.\.65535/ },
  { name: 'restart time beyond 12 bits', yaml: `${MINIMAL}bgp: {gracefulRestart: {restartTime: 4096}}`, key: 'bgp.gracefulRestart.restartTime', value: 4096, message: /1\.\.4095/ },
  { name: 'boolean as text', yaml: `${MINIMAL}bgp: {nodeMesh: maybe}`, key: 'bgp.nodeMesh', value: 'maybe', message: /true or false/ },
  { name: 'section that is not a mapping', yaml: `${MINIMAL}bgp: 5`, key: 'bgp', value: 5, message: /must be a mapping \(keys: asn, routerId/ },
  { name: 'mapping where a value is expected', yaml: `${MINIMAL}bgp: {asn: {x: {y: 1}}}`, key: 'bgp.asn', value: { x: { y: 1 } }, message: /expects AS number/ },
  { name: 'list where a value is expected', yaml: `${MINIMAL}bgp: {asn: [1]}`, key: 'bgp.asn', value: [1], message: /integer/ },
  { name: 'bad community', yaml: `${MINIMAL}bgp: {export: {communities: ["65000:100", "70000:1"]}}`, key: 'bgp.export.communities[1]', value: '70000:1', message: /each 0\.\.65535/ },
  { name: 'bad large community', yaml: `${MINIMAL}bgp: {export: {largeCommunities: ["1:2"]}}`, key: 'bgp.export.largeCommunities[0]', value: '1:2', message: /global:local1:local2/ },
  { name: 'negative MED', yaml: `${MINIMAL}bgp: {export: {med: -1}}`, key: 'bgp.export.med', value: -1, message: /or null/ },
  { name: 'import max length below the node blocks', yaml: `${MINIMAL}bgp: {import: {maxPrefixLength: {ipv4: 16}}}`, key: 'bgp.import.maxPrefixLength.ipv4', value: 16, message: /would be refused/ },
  { name: 'etcd endpoint scheme', yaml: `${MINIMAL}etcd: {endpoints: ["unix:///run/etcd.sock"]}`, key: 'etcd.endpoints[0]', value: 'unix:///run/etcd.sock', message: /http or https/ },
  { name: 'etcd endpoint with a path', yaml: `${MINIMAL}etcd: {endpoints: ["http://127.0.0.1:2379/v3"]}`, key: 'etcd.endpoints[0]', value: 'http://127.0.0.1:2379/v3', message: /scheme:\/\/host:port only/ },
  { name: 'etcd prefix', yaml: `${MINIMAL}etcd: {prefix: "nrd/"}`, key: 'etcd.prefix', value: 'nrd/', message: /absolute key prefix/ },
  { name: 'etcd cert without key', yaml: `${MINIMAL}etcd: {endpoints: ["https://192.0.2.2:2379"], tls: {cert: /etc/nrd/c.pem}}`, key: 'etcd.tls.key', value: '', message: /required when etcd\.tls\.cert/ },
  { name: 'etcd TLS over http', yaml: `${MINIMAL}etcd: {endpoints: ["http://127.0.0.1:2379"], tls: {ca: /etc/nrd/ca.pem}}`, key: 'etcd.endpoints[0]', value: 'http://127.0.0.1:2379', message: /use https/ },
  { name: 'etcd TLS with the embedded etcd', yaml: `${MINIMAL}etcd: {tls: {ca: /etc/nrd/ca.pem}}`, key: 'etcd.endpoints', value: [], message: /embedded etcd, no TLS/ },
  { name: 'etcd password of the wrong type is redacted', yaml: `${MINIMAL}etcd: {username: root, password: 1234}`, key: 'etcd.password', value: '(redacted)', message: /string/ },
  { name: 'relative path', yaml: 'node: {address: 192.0.2.11, stateDir: var/lib/nrd}', key: 'node.stateDir', value: 'var/lib/nrd', message: /absolute/ },
  { name: 'socket path too long for sun_path', yaml: `${MINIMAL}api: {socket: /${'s'.repeat(110)}}`, key: 'api.socket', value: `/${'s'.repeat(110)}`, message: /107 bytes/ },
  { name: 'metrics without port', yaml: `${MINIMAL}api: {metrics: 127.0.0.1}`, key: 'api.metrics', value: '127.0.0.1', message: /host:port/ },
  { name: 'metrics with a bad IPv6', yaml: `${MINIMAL}api: {metrics: "[::zz]:9469"}`, key: 'api.metrics', value: '[::zz]:9469', message: /IPv6/ },
  { name: 'prefilter that drops pod traffic', yaml: `${MINIMAL}datapath: {xdpPrefilter: {deny: [10.0.0.0/8]}}`, key: 'datapath.xdpPrefilter.deny[0]', value: '10.0.0.0/8', message: /pod traffic/ },
  { name: 'prefilter that drops a peer', yaml: `${MINIMAL}bgp: {peers: [{address: 198.51.100.1, asn: 65000}]}\ndatapath: {xdpPrefilter: {deny: [198.51.100.0/24]}}`, key: 'datapath.xdpPrefilter.deny[0]', value: '198.51.100.0/24', message: /bgp\.peers\[0\]/ },
  { name: 'relative socket-hook cgroup', yaml: `${MINIMAL}services: {cgroupPath: sys/fs/cgroup}`, key: 'services.cgroupPath', value: 'sys/fs/cgroup', message: /absolute path/ },
  { name: 'Maglev table size that is not prime', yaml: `${MINIMAL}services: {maglevTableSize: 16384}`, key: 'services.maglevTableSize', value: 16384, message: /prime/ },
  { name: 'unknown load-balancing algorithm', yaml: `${MINIMAL}services: {algorithm: roundrobin}`, key: 'services.algorithm', value: 'roundrobin', message: /maglev/ },
  { name: 'invalid node name', yaml: 'node: {address: 192.0.2.11, name: "node_1"}', key: 'node.name', value: 'node_1', message: /host name/ },
  { name: 'root that is not a mapping', yaml: '- 1\n- 2\n', key: '(file)', value: [1, 2], message: /mapping of sections/ },
  { name: 'YAML syntax error', yaml: 'node: {address: 192.0.2.11\n', key: '(file)', value: null, message: /invalid YAML/ },
  { name: 'YAML duplicate key', yaml: 'node: {address: 192.0.2.11}\nnode: {address: 192.0.2.12}\n', key: '(file)', value: null, message: /invalid YAML.*[Uu]nique|invalid YAML.*duplicate/ },
];

for (const c of CASES) {
  test(`issue: ${c.name}`, () => {
    const issues = issuesOf(c.yaml);
    const issue = issueAt(issues, c.key);
    assert.deepEqual(issue.value, c.value);
    assert.match(issue.message, c.message);
    const line = formatIssue(issue);
    assert.ok(line.startsWith(`${c.key}: `), line);
    assert.ok(line.endsWith(`(value: ${c.value === undefined ? 'none' : JSON.stringify(c.value)})`), line);
    assert.ok(!line.includes('\n'));
  });
}

test('every issue of a file is reported, not just the first', () => {
  const issues = issuesOf(`
node: {address: 192.0.2.300, extra: 1}
cluster: {podCIDRs: [10.244.1.0/16]}
bgp:
  asn: 0
  holdTime: 1
  peers:
    - {address: 192.0.2.1}
    - {address: 192.0.2.1, asn: 65000}
    - {asn: 65000, typo: 1}
routing: {mode: bgp, vxlan: {port: 0}}
log: {level: loud}
unknown: true
`);
  const keys = issues.map((i) => i.key).sort();
  assert.deepEqual(keys, [
    'bgp.asn',
    'bgp.holdTime',
    'bgp.peers[0].asn',
    'bgp.peers[1].address',
    'bgp.peers[2].address',
    'bgp.peers[2].typo',
    'cluster.podCIDRs[0]',
    'log.level',
    'node.address',
    'node.extra',
    'routing.mode',
    'routing.vxlan.port',
    'unknown',
  ]);
});

test('secrets never appear in issues', () => {
  const issues = issuesOf(`${MINIMAL}etcd: {password: hunter2}\nbgp: {peers: [{address: 192.0.2.1, asn: 65000, password: ${'s3cr3t'.repeat(20)}}]}`);
  const text = issues.map(formatIssue).join('\n');
  assert.ok(!text.includes('hunter2'));
  assert.ok(!text.includes('s3cr3t'));
  issueAt(issues, 'etcd.username');
  issueAt(issues, 'bgp.peers[0].password');
});

test('a missing file and a bad JSON file are issues of the file', (t) => {
  const dir = tempDir(t);
  const r = loadConfigFile(`${dir}/absent.yaml`, { env: {} });
  assert.ok(!r.ok);
  assert.equal(r.issues[0]!.key, '(file)');
  assert.match(r.issues[0]!.message, /ENOENT/);
  const bad = loadConfigFile(writeFile(dir, 'site.json', '{"node": {'), { env: {} });
  assert.ok(!bad.ok);
  assert.match(bad.issues[0]!.message, /invalid JSON/);
});

test('a very long value is cut in the formatted line', () => {
  const issues = issuesOf(`${MINIMAL}bogus: ${'x'.repeat(500)}`);
  const line = formatIssue(issueAt(issues, 'bogus'));
  assert.ok(line.length < 250, line);
  assert.ok(line.includes('…'));
});
