// The pure core of nrd-cni: CNI_* parsing, network configuration checks with the spec's error codes,
// endpoint naming (readable, hashed when too long), labels, and the ADD result (alone and chained)
// checked against the spec's result shape.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { EndpointView } from '../../../daemon/endpoints/api-types.js';
import { isValidEndpointId } from '../../../daemon/state/records.js';
import { buildResult, checkIssues, CNI_ERR, CniFailure, endpointLabels, endpointName, parseCniArgs, parseEnv, parseNetConf } from '../../../daemon/cni/spec.js';
import { resultIssues } from './schema.js';

const codeOf = (fn: () => unknown): number => {
  try {
    fn();
  } catch (e) {
    if (e instanceof CniFailure) return e.code;
    throw e;
  }
  assert.fail('expected a CniFailure');
};

const CID = 'a'.repeat(64);
const env = (o: Record<string, string | undefined>): NodeJS.ProcessEnv => ({ CNI_COMMAND: 'ADD', CNI_CONTAINERID: CID, CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_PATH: '/opt/cni/bin', ...o });
const conf = (o: Record<string, unknown> = {}): string => JSON.stringify({ cniVersion: '1.0.0', name: 'nrd', type: 'nrd-cni', ...o });

const view: EndpointView = {
  name: endpointName(CID, 'eth0'),
  node: 'n1',
  netns: '/run/netns/x',
  ifname: 'eth0',
  ips: ['10.244.1.5', 'fd00:244:0:1::5'],
  gateways: ['169.254.1.1', 'fe80::1'],
  mac: '0a:00:00:00:00:01',
  gatewayMac: '02:6e:72:64:00:01',
  hostIfname: 'nrdv0123456789a',
  hostIfindex: 7,
  identity: 3,
  labels: {},
  state: 'ready',
};

test('env: every required variable is checked per command, with code 4 naming it', () => {
  assert.equal(parseEnv(env({})).containerId, CID);
  assert.equal(codeOf(() => parseEnv(env({ CNI_COMMAND: undefined }))), CNI_ERR.invalidEnv);
  assert.equal(codeOf(() => parseEnv(env({ CNI_COMMAND: 'FROB' }))), CNI_ERR.invalidEnv);
  assert.equal(codeOf(() => parseEnv(env({ CNI_CONTAINERID: '' }))), CNI_ERR.invalidEnv);
  assert.equal(codeOf(() => parseEnv(env({ CNI_CONTAINERID: '-bad' }))), CNI_ERR.invalidEnv);
  assert.equal(codeOf(() => parseEnv(env({ CNI_NETNS: undefined }))), CNI_ERR.invalidEnv);
  assert.equal(codeOf(() => parseEnv(env({ CNI_NETNS: 'relative' }))), CNI_ERR.invalidEnv);
  assert.equal(codeOf(() => parseEnv(env({ CNI_IFNAME: 'a/b' }))), CNI_ERR.invalidEnv);
  assert.equal(codeOf(() => parseEnv(env({ CNI_IFNAME: 'x'.repeat(16) }))), CNI_ERR.invalidEnv);
  // DEL may come without a namespace (it is gone); VERSION, GC and STATUS need no container.
  assert.equal(parseEnv(env({ CNI_COMMAND: 'DEL', CNI_NETNS: undefined })).netns, '');
  assert.equal(parseEnv({ CNI_COMMAND: 'VERSION' }).command, 'VERSION');
  assert.equal(parseEnv({ CNI_COMMAND: 'GC' }).command, 'GC');
  assert.deepEqual(parseCniArgs('IgnoreUnknown=1;K8S_POD_NAME=web-0;EMPTY='), { IgnoreUnknown: '1', K8S_POD_NAME: 'web-0', EMPTY: '' });
  assert.equal(codeOf(() => parseCniArgs('novalue')), CNI_ERR.invalidEnv);
});

test('netconf: decode failure 6, invalid config 7, unsupported version 1, commands gated by version', () => {
  assert.equal(codeOf(() => parseNetConf('{', 'ADD')), CNI_ERR.decode);
  assert.equal(codeOf(() => parseNetConf('[1]', 'ADD')), CNI_ERR.decode);
  assert.equal(codeOf(() => parseNetConf(conf({ cniVersion: undefined }), 'ADD')), CNI_ERR.invalidConfig);
  assert.equal(codeOf(() => parseNetConf(conf({ name: 'bad name' }), 'ADD')), CNI_ERR.invalidConfig);
  assert.equal(codeOf(() => parseNetConf(conf({ type: '' }), 'ADD')), CNI_ERR.invalidConfig);
  assert.equal(codeOf(() => parseNetConf(conf({ socket: 'rel.sock' }), 'ADD')), CNI_ERR.invalidConfig);
  assert.equal(codeOf(() => parseNetConf(conf({ labels: { 'bad key!': 'v' } }), 'ADD')), CNI_ERR.invalidConfig);
  assert.equal(codeOf(() => parseNetConf(conf({ prevResult: { ips: 'x' } }), 'ADD')), CNI_ERR.invalidConfig);
  assert.equal(codeOf(() => parseNetConf(conf({ cniVersion: '2.0.0' }), 'ADD')), CNI_ERR.incompatibleVersion);
  assert.equal(codeOf(() => parseNetConf(conf({ cniVersion: '0.3.1' }), 'CHECK')), CNI_ERR.incompatibleVersion);
  assert.equal(codeOf(() => parseNetConf(conf(), 'GC')), CNI_ERR.incompatibleVersion);
  assert.equal(parseNetConf(conf(), 'ADD').socket, '/run/nrd/nrd.sock');
  assert.equal(parseNetConf(conf({ socket: '/tmp/x.sock', unknownPluginKey: 1 }), 'ADD').socket, '/tmp/x.sock');
  assert.deepEqual(parseNetConf(conf({ cniVersion: '1.1.0', 'cni.dev/valid-attachments': [{ containerID: 'c1', ifname: 'eth0' }] }), 'GC').validAttachments, [{ containerID: 'c1', ifname: 'eth0' }]);
});

test('endpoint name: readable within the endpoint name rule, hashed beyond it, distinct per ifname', () => {
  const n = endpointName(CID, 'eth0');
  assert.equal(n, `cni:${CID}:eth0`);
  assert.ok(isValidEndpointId(n));
  assert.notEqual(endpointName(CID, 'eth1'), n);
  const long = 'b'.repeat(200);
  const h = endpointName(long, 'eth0');
  assert.match(h, /^cnih:[0-9a-f]{40}$/);
  assert.ok(isValidEndpointId(h));
  assert.equal(endpointName(long, 'eth0'), h, 'stable');
  assert.notEqual(endpointName(long, 'eth1'), h);
});

test('labels: network, K8S pod args, args.cni.labels and runtimeConfig.labels; bad values are left out, not fatal', () => {
  const c = parseNetConf(conf({ labels: { tier: 'front' }, args: { cni: { labels: [{ key: 'app', value: 'web' }, { key: 'bad', value: 'not ok!' }] } }, runtimeConfig: { labels: { team: 'a' } } }), 'ADD');
  const l = endpointLabels(c, { K8S_POD_NAMESPACE: 'prod', K8S_POD_NAME: 'web-0' });
  assert.deepEqual(l.labels, { tier: 'front', 'cni.nrd.io/network': 'nrd', 'io.kubernetes.pod.namespace': 'prod', 'io.kubernetes.pod.name': 'web-0', app: 'web', team: 'a' });
  assert.equal(l.dropped.length, 1);
});

test('result: interfaces (host veth, workload with sandbox), /32 and /128 with gateways, default routes; conforms to the spec', () => {
  const r = buildResult(view, parseNetConf(conf({ dns: { nameservers: ['10.0.0.53'] } }), 'ADD'));
  assert.deepEqual(resultIssues(r), []);
  assert.deepEqual(r.interfaces, [
    { name: 'nrdv0123456789a', mac: '02:6e:72:64:00:01' },
    { name: 'eth0', mac: '0a:00:00:00:00:01', sandbox: '/run/netns/x' },
  ]);
  assert.deepEqual(r.ips, [
    { address: '10.244.1.5/32', gateway: '169.254.1.1', interface: 1 },
    { address: 'fd00:244:0:1::5/128', gateway: 'fe80::1', interface: 1 },
  ]);
  assert.deepEqual(r.routes, [
    { dst: '0.0.0.0/0', gw: '169.254.1.1' },
    { dst: '::/0', gw: 'fe80::1' },
  ]);
  assert.deepEqual(r.dns, { nameservers: ['10.0.0.53'] });
  // The schema check itself must catch a broken result.
  assert.notDeepEqual(resultIssues({ ...r, ips: [{ address: '10.0.0.1', interface: 9 }] }), []);
});

test('result chained: prevResult entries first, our interface index counts them; 0.4.0 carries ip version', () => {
  const prev = { cniVersion: '1.0.0', interfaces: [{ name: 'lo', sandbox: '/run/netns/x' }], ips: [{ address: '127.0.0.1/8', interface: 0 }], routes: [{ dst: '0.0.0.0/0', gw: '10.9.9.9' }], dns: { domain: 'example' } };
  const r = buildResult(view, parseNetConf(conf({ prevResult: prev }), 'ADD'));
  assert.deepEqual(resultIssues(r), []);
  assert.equal(r.interfaces!.length, 3);
  assert.equal(r.ips![0]!.address, '127.0.0.1/8');
  assert.equal(r.ips![1]!.interface, 2);
  // An existing default route of the family stays the previous plugin's.
  assert.deepEqual(r.routes, [{ dst: '0.0.0.0/0', gw: '10.9.9.9' }, { dst: '::/0', gw: 'fe80::1' }]);
  assert.deepEqual(r.dns, { domain: 'example' });
  const old = buildResult(view, parseNetConf(conf({ cniVersion: '0.4.0' }), 'ADD'));
  assert.deepEqual(old.ips!.map((i) => i.version), ['4', '6']);
});

test('check: a state, netns, ifname, address or MAC mismatch is reported; a match is not', () => {
  const c = parseNetConf(conf({ prevResult: buildResult(view, parseNetConf(conf(), 'ADD')) }), 'CHECK');
  const e = parseEnv(env({ CNI_COMMAND: 'CHECK' }));
  assert.deepEqual(checkIssues(view, e, c), []);
  assert.equal(checkIssues({ ...view, state: 'no-link' }, e, c).length, 1);
  assert.equal(checkIssues({ ...view, netns: '/run/netns/y' }, e, c).length, 1);
  assert.equal(checkIssues({ ...view, ips: ['10.244.1.6', 'fd00:244:0:1::5'] }, e, c).length, 1);
  assert.equal(checkIssues({ ...view, mac: '0a:00:00:00:00:02' }, e, c).length, 1);
});
