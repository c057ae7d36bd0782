// The endpoint datapath's pure parts: the desired-set diff (map writes, attaches, detaches for a
// change of the endpoint set), the masquerade port-range choice, the nftables ruleset text and
// the NAT map GC decision.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { LocalEndpoint } from '../../../daemon/lib/endpoint-types.js';
import { type CurrentEndpoints, desiredEndpoints, endpointNumericId, planEndpoints } from '../../../daemon/datapath/endpoints.js';
import { choosePortRange, nftDeleteScript, nftRuleset, parseLocalPortRange, planNatGc } from '../../../daemon/datapath/masquerade.js';
import { CtState, NatDir, type Nat4Entry, type Nat4Key } from '../../../daemon/datapath/endpoint-layout.js';
import { nodeIp6 } from '../../../daemon/datapath/subsystem.js';
import { type NrdConfig, loadConfigText } from '../../../daemon/config/index.js';

const ep = (id: string, n: number, ips: string[]): LocalEndpoint => ({
  id, hostIfname: `nrdv${n}`, hostIfindex: 100 + n, mac: `02:00:00:00:00:0${n}`, ips, identity: 0,
});
const none: CurrentEndpoints = { eps: [], ifs: [], stats: [], pinned: new Set() };

function applied(eps: LocalEndpoint[]): CurrentEndpoints {
  const d = desiredEndpoints(eps);
  return {
    eps: [...d.eps.values()].map((e) => [e.key, e.value] as const),
    ifs: [...d.ifs],
    stats: [...d.ifs.keys()],
    pinned: new Set(d.ifnames.keys()),
  };
}

describe('endpoint plan', () => {
  it('a new dual-stack endpoint: two address entries, one interface entry, one attach', () => {
    const p = planEndpoints(desiredEndpoints([ep('a', 1, ['10.244.0.5', 'fd00::5'])]), none);
    assert.equal(p.setEps.length, 2);
    assert.deepEqual(p.setEps.map((e) => e.key.family).sort(), [4, 6]);
    assert.equal(p.setIfs.length, 1);
    const [ifindex, v] = p.setIfs[0]!;
    assert.equal(ifindex, 101);
    assert.equal(v.flags, 3);
    assert.deepEqual([...v.ip4], [10, 244, 0, 5]);
    assert.equal(v.id, endpointNumericId('a'));
    assert.deepEqual(p.attach, ['nrdv1']);
    assert.deepEqual([p.deleteEps, p.deleteIfs, p.detach], [[], [], []]);
  });

  it('the same set again writes nothing (a restart changes nothing)', () => {
    const eps = [ep('a', 1, ['10.244.0.5']), ep('b', 2, ['10.244.0.6'])];
    const p = planEndpoints(desiredEndpoints(eps), applied(eps));
    assert.deepEqual([p.setEps, p.setIfs, p.deleteEps, p.deleteIfs, p.deleteStats, p.detach], [[], [], [], [], [], []]);
    assert.deepEqual(p.attach, ['nrdv1', 'nrdv2']);
  });

  it('an endpoint gone: its entries, counters and link go; a changed MAC is rewritten', () => {
    const before = [ep('a', 1, ['10.244.0.5']), ep('b', 2, ['10.244.0.6'])];
    const after = [{ ...ep('a', 1, ['10.244.0.5']), mac: '02:00:00:00:00:aa' }];
    const p = planEndpoints(desiredEndpoints(after), applied(before));
    assert.equal(p.setEps.length, 1);
    assert.deepEqual([...p.setEps[0]!.value.mac], [2, 0, 0, 0, 0, 0xaa]);
    assert.deepEqual(p.deleteEps.map((k) => [...k.addr]), [[10, 244, 0, 6]]);
    assert.deepEqual(p.deleteIfs, [102]);
    assert.deepEqual(p.deleteStats, [102]);
    assert.deepEqual(p.detach, ['nrdv2']);
    assert.deepEqual(p.attach, ['nrdv1']);
  });

  it('a pinned link whose veth is no longer wanted is detached even without map entries', () => {
    const p = planEndpoints(desiredEndpoints([]), { ...none, pinned: new Set(['nrdv9']) });
    assert.deepEqual(p.detach, ['nrdv9']);
  });

  it('refuses a second endpoint claiming an address or a veth, keeping the first', () => {
    const d = desiredEndpoints([ep('a', 1, ['10.244.0.5']), ep('b', 2, ['10.244.0.5']), { ...ep('c', 1, ['10.244.0.7']) }]);
    assert.equal(d.eps.size, 1);
    assert.equal(d.conflicts.length, 2);
    assert.match(d.conflicts[0]!, /^b: /);
    assert.match(d.conflicts[1]!, /^c: nrdv1 .* already belongs to a/);
  });
});

describe('masquerade port range', () => {
  it('Linux default 32768-60999 gives 61000-65535', () => {
    assert.deepEqual(choosePortRange(parseLocalPortRange('32768\t60999\n')), { min: 61000, max: 65535 });
  });
  it('a host range reaching the top leaves the room below it', () => {
    assert.deepEqual(choosePortRange([40000, 65535]), { min: 1024, max: 39999 });
  });
  it('no room on either side is an error naming the sysctl', () => {
    assert.throws(() => choosePortRange([1500, 65000]), /ip_local_port_range 1500-65000/);
  });
  it('refuses an unparsable range', () => {
    assert.throws(() => parseLocalPortRange('nope'), /cannot parse/);
  });
});

describe('node IPv6 address for masquerade', () => {
  const config = (address: string): NrdConfig => {
    const r = loadConfigText(`node: {address: "${address}"}\nbgp: {routerId: 192.0.2.1}\n`, { env: {}, hostname: 'n1' });
    assert.ok(r.ok);
    return r.config;
  };
  const addr = (address: string, scopeid = 0) =>
    ({ address, netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6' as const, mac: '02:00:00:00:00:01', internal: false, cidr: `${address}/64`, scopeid });
  const ifaces = { up0: [addr('fe80::1', 2), addr('2001:db8:1::10')], other: [addr('2001:db8:9::9')] };
  it('is node.address when that is IPv6', () => {
    assert.equal(nodeIp6(config('2001:db8:7::7'), 'up0', ifaces), '2001:db8:7::7');
  });
  it('is the uplink\'s global address (never its link-local) when node.address is IPv4', () => {
    assert.equal(nodeIp6(config('192.0.2.10'), 'up0', ifaces), '2001:db8:1::10');
    assert.equal(nodeIp6(config('192.0.2.10'), 'up0', { up0: [addr('fe80::1', 2)] }), undefined);
    assert.equal(nodeIp6(config('192.0.2.10'), undefined, ifaces), undefined);
  });
});

describe('nftables ruleset', () => {
  it('replaces table inet nrd as a whole, masquerading pool sources to outside destinations', () => {
    assert.equal(nftRuleset({ pools4: ['10.244.0.0/16'], exclude4: ['192.168.0.0/16'], pools6: ['fd00:244::/48'], exclude6: ['2001:db8::/32'] }), [
      'table inet nrd',
      'delete table inet nrd',
      'table inet nrd {',
      '\tset pools4 {',
      '\t\ttype ipv4_addr',
      '\t\tflags interval',
      '\t\telements = { 10.244.0.0/16 }',
      '\t}',
      '\tset nonat4 {',
      '\t\ttype ipv4_addr',
      '\t\tflags interval',
      '\t\tauto-merge',
      '\t\telements = { 10.244.0.0/16, 192.168.0.0/16 }',
      '\t}',
      '\tset pools6 {',
      '\t\ttype ipv6_addr',
      '\t\tflags interval',
      '\t\telements = { fd00:244::/48 }',
      '\t}',
      '\tset nonat6 {',
      '\t\ttype ipv6_addr',
      '\t\tflags interval',
      '\t\tauto-merge',
      '\t\telements = { fd00:244::/48, 2001:db8::/32 }',
      '\t}',
      '\tchain postrouting {',
      '\t\ttype nat hook postrouting priority srcnat; policy accept;',
      '\t\tip saddr @pools4 ip daddr != @nonat4 masquerade',
      '\t\tip6 saddr @pools6 ip6 daddr != @nonat6 masquerade',
      '\t}',
      '}',
      '',
    ].join('\n'));
  });
  it('no pool: the table exists without a rule', () => {
    assert.doesNotMatch(nftRuleset({ pools4: [], exclude4: [] }), /masquerade|elements/);
  });
  it('IPv4-only pools: no ip6 rule; IPv6-only pools: no ip rule', () => {
    assert.doesNotMatch(nftRuleset({ pools4: ['10.244.0.0/16'], exclude4: [] }), /ip6 saddr/);
    const v6 = nftRuleset({ pools4: [], exclude4: [], pools6: ['fd00:244::/48'] });
    assert.match(v6, /\tip6 saddr @pools6 ip6 daddr != @nonat6 masquerade\n/);
    assert.doesNotMatch(v6, /\tip saddr/);
  });
  it('delete touches only the nrd table', () => {
    assert.equal(nftDeleteScript(), 'table inet nrd\ndelete table inet nrd\n');
  });
});

describe('NAT map GC', () => {
  const S = 1_000_000_000n;
  const out = (sport: number): Nat4Key => ({ saddr: Buffer.from([10, 244, 0, 5]), daddr: Buffer.from([203, 0, 113, 1]), sport, dport: 80, proto: 6, dir: NatDir.OUT });
  const node = Buffer.from([198, 51, 100, 1]);
  const flow = (sport: number, port: number, state: number, outSeen: bigint, replySeen: bigint): Array<[Nat4Key, Nat4Entry]> => [
    [out(sport), { addr: node, port, state, flags: 0, lastSeenNs: outSeen, createdNs: 0n }],
    [{ saddr: Buffer.from([203, 0, 113, 1]), daddr: node, sport: 80, dport: port, proto: 6, dir: NatDir.REPLY },
      { addr: Buffer.from([10, 244, 0, 5]), port: sport, state, flags: 0, lastSeenNs: replySeen, createdNs: 0n }],
  ];
  it('deletes both entries of an idle flow, keeps a live one by its newest direction', () => {
    const now = 10_000n * S;
    const entries = [
      ...flow(1000, 61001, CtState.CLOSED, now - 11n * S, now - 11n * S), // closed, idle 11 s > 10 s
      ...flow(1001, 61002, CtState.EST, now - 8000n * S, now - 5n * S),   // replies keep it alive
      ...flow(1002, 61003, CtState.SYN, now - 61n * S, now - 61n * S),    // never answered
    ];
    const r = planNatGc(entries, now);
    assert.equal(r.flows, 2);
    assert.deepEqual(r.delete.map((k) => `${k.dir}:${k.dir === NatDir.OUT ? k.sport : k.dport}`).sort(), ['0:1000', '0:1002', '1:61001', '1:61003']);
  });
});
