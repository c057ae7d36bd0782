// The endpoints' pure core: host interface names (stable, owner-marked, within IFNAMSIZ), add
// request validation (every refusal names the field), label lists from nrdctl, and the desired sets
// handed to the endpoint owner and to the datapath.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { NrdError } from '../../../daemon/lib/errors.js';
import { ENDPOINT_MARK, linkOwnerByName } from '../../../daemon/kernel/owners.js';
import { endpointMtu, hostIfName, ifnameIssue, kernelSpecs, localEndpoints, parseLabelList, validateAddRequest, type KnownEndpoint } from '../../../daemon/endpoints/model.js';
import type { EndpointRecord } from '../../../daemon/state/records.js';

test('hostIfName: "nrdv" + 11 hex digits of SHA-256, the same on every call and node', () => {
  assert.match(hostIfName('web-1'), /^nrdv[0-9a-f]{11}$/);
  assert.equal(hostIfName('web-1'), hostIfName('web-1'));
  assert.notEqual(hostIfName('web-1'), hostIfName('web-2'));
});

test('hostIfName: a golden value (changing it orphans every endpoint of an upgraded node)', () => {
  assert.equal(hostIfName('a'), 'nrdvca978112ca1');
});

test('hostIfName: property — at most 15 bytes, owned by the endpoint mark, for any valid id', () => {
  fc.assert(
    fc.property(fc.stringMatching(/^[A-Za-z0-9._:-]{1,128}$/), (id) => {
      const n = hostIfName(id);
      assert.ok(Buffer.byteLength(n) <= 15);
      assert.equal(linkOwnerByName(n)?.owner, ENDPOINT_MARK.owner);
    }),
  );
});

const refuses = (body: unknown, re: RegExp): void => {
  assert.throws(() => validateAddRequest(body), (e: unknown) => e instanceof NrdError && e.kind === 'invalid' && re.test(e.message));
};

test('validateAddRequest: defaults and accepted input', () => {
  assert.deepEqual(validateAddRequest({ name: 'web-1', netns: '/run/netns/w1' }), { name: 'web-1', netns: '/run/netns/w1', ifname: 'eth0', labels: {} });
  assert.deepEqual(validateAddRequest({ name: 'c:0a', netns: '/proc/1/ns/net', ifname: 'net0', labels: { app: 'web' } }), {
    name: 'c:0a',
    netns: '/proc/1/ns/net',
    ifname: 'net0',
    labels: { app: 'web' },
  });
});

test('validateAddRequest: each refusal names the field', () => {
  refuses(null, /expected a JSON object/);
  refuses([], /expected a JSON object/);
  refuses({ netns: '/run/netns/x' }, /endpoint\.name: required/);
  refuses({ name: 'a/b', netns: '/run/netns/x' }, /endpoint\.name: "a\/b" is invalid/);
  refuses({ name: 'x'.repeat(129), netns: '/run/netns/x' }, /endpoint\.name/);
  refuses({ name: 'a' }, /endpoint\.netns: required/);
  refuses({ name: 'a', netns: 'run/netns/x' }, /not an absolute path/);
  refuses({ name: 'a', netns: '/x', ifname: 'way-too-long-name' }, /endpoint\.ifname/);
  refuses({ name: 'a', netns: '/x', ifname: 'e/0' }, /endpoint\.ifname/);
  refuses({ name: 'a', netns: '/x', ifname: 'lo' }, /loopback/);
  refuses({ name: 'a', netns: '/x', ifname: 7 }, /endpoint\.ifname/);
  refuses({ name: 'a', netns: '/x', labels: { 'bad key': 'v' } }, /label/);
  refuses({ name: 'a', netns: '/x', extra: 1 }, /unknown field "extra"/);
});

test('ifnameIssue: kernel interface-name rules', () => {
  for (const ok of ['eth0', 'net.1', 'a_b-c', 'x'.repeat(15)]) assert.equal(ifnameIssue(ok), undefined, ok);
  for (const bad of ['', 'x'.repeat(16), 'a b', 'a:b', '.', '..', 'lo']) assert.ok(ifnameIssue(bad), bad);
});

test('parseLabelList: k=v lists; malformed or repeated keys are refused', () => {
  assert.deepEqual(parseLabelList('app=web,tier=front'), { app: 'web', tier: 'front' });
  assert.deepEqual(parseLabelList(''), {});
  assert.deepEqual(parseLabelList('a='), { a: '' });
  assert.equal(typeof parseLabelList('novalue'), 'string');
  assert.equal(typeof parseLabelList('=v'), 'string');
  assert.equal(typeof parseLabelList('a=1,a=2'), 'string');
});

const rec = (id: string, ips: string[], extra: Partial<EndpointRecord> = {}): EndpointRecord => ({ id, node: 'n1', ips, netns: `/run/netns/${id}`, labels: {}, mac: '02:00:00:00:00:01', ...extra });

test('kernelSpecs: one spec per endpoint with a link: host routes and pinned neighbours, sorted', () => {
  const eps: KnownEndpoint[] = [
    { record: rec('b', ['10.244.1.3', 'fd00::3']), hostIf: hostIfName('b'), hostIfindex: 7 },
    { record: rec('a', ['10.244.1.2']), hostIf: hostIfName('a'), hostIfindex: 6 },
    { record: rec('c', ['10.244.1.4']), hostIf: hostIfName('c'), hostIfindex: 0 },
  ];
  const specs = kernelSpecs(eps);
  assert.deepEqual(
    specs.map((s) => s.hostIf),
    [hostIfName('a'), hostIfName('b')].sort(),
  );
  const b = specs.find((s) => s.hostIf === hostIfName('b'))!;
  assert.deepEqual(b.addresses, ['10.244.1.3', 'fd00::3']);
  assert.deepEqual(b.neighbours, [
    { ip: '10.244.1.3', mac: '02:00:00:00:00:01' },
    { ip: 'fd00::3', mac: '02:00:00:00:00:01' },
  ]);
});

test('localEndpoints: the datapath contract, only endpoints with a link and a MAC, sorted by id', () => {
  const { mac: _mac, ...noMac } = rec('z', ['10.244.1.9']);
  const eps: KnownEndpoint[] = [
    { record: rec('b', ['10.244.1.3'], { identity: 12 }), hostIf: hostIfName('b'), hostIfindex: 7 },
    { record: rec('a', ['10.244.1.2']), hostIf: hostIfName('a'), hostIfindex: 6 },
    { record: rec('c', ['10.244.1.4']), hostIf: hostIfName('c'), hostIfindex: 0 },
    { record: noMac, hostIf: hostIfName('z'), hostIfindex: 9 },
  ];
  assert.deepEqual(localEndpoints(eps), [
    { id: 'a', hostIfname: hostIfName('a'), hostIfindex: 6, mac: '02:00:00:00:00:01', ips: ['10.244.1.2'], identity: 0 },
    { id: 'b', hostIfname: hostIfName('b'), hostIfindex: 7, mac: '02:00:00:00:00:01', ips: ['10.244.1.3'], identity: 12 },
  ]);
});

test('endpointMtu: configured > native uplink > VXLAN MTU (configured, else uplink - 50/70)', () => {
  const base = { configured: 0, vxlanMtu: 0, uplinkMtu: 1500, underlayFamily: 4 as const };
  assert.equal(endpointMtu({ ...base, mode: 'native' }), 1500);
  for (const mode of ['vxlan', 'auto', 'cross-subnet'] as const) {
    assert.equal(endpointMtu({ ...base, mode }), 1450, mode);
    assert.equal(endpointMtu({ ...base, mode, underlayFamily: 6 }), 1430, mode);
    assert.equal(endpointMtu({ ...base, mode, vxlanMtu: 1400 }), 1400, mode);
    assert.equal(endpointMtu({ ...base, mode, uplinkMtu: undefined }), undefined, mode);
    assert.equal(endpointMtu({ ...base, mode, uplinkMtu: undefined, vxlanMtu: 1400 }), 1400, mode);
  }
  assert.equal(endpointMtu({ ...base, mode: 'native', vxlanMtu: 1400 }), 1500, 'native never encapsulates');
  assert.equal(endpointMtu({ ...base, mode: 'native', uplinkMtu: 9000 }), 9000);
  assert.equal(endpointMtu({ ...base, mode: 'auto', configured: 1280 }), 1280);
  assert.equal(endpointMtu({ ...base, mode: 'native', configured: 1280, uplinkMtu: undefined }), 1280);
});

test('endpointMtu: property — in a mode that may encapsulate, a full-size packet always fits into VXLAN', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1280, max: 65535 }), fc.constantFrom(4 as const, 6 as const), fc.constantFrom('vxlan' as const, 'auto' as const, 'cross-subnet' as const), (uplink, fam, mode) => {
      const m = endpointMtu({ configured: 0, vxlanMtu: 0, uplinkMtu: uplink, underlayFamily: fam, mode })!;
      assert.ok(m + (fam === 4 ? 50 : 70) <= uplink);
    }),
  );
});
