// The example site loads; derived defaults, canonical text and deep freezing of the result.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { readFileSync } from 'node:fs';
import { loadConfigFile, loadConfigObject } from '../../../daemon/config/index.js';
import { EXAMPLE_FILE, MINIMAL, load, loadOk, tempDir, writeFile } from './util.js';

test('config/site.example.yaml passes the check', () => {
  const r = loadConfigFile(EXAMPLE_FILE, { env: {} });
  assert.ok(r.ok, r.ok ? '' : r.issues.map((i) => `${i.key}: ${i.message}`).join('\n'));
  const c = r.config;
  assert.equal(c.node.address, '192.0.2.11');
  assert.deepEqual(c.cluster.podCIDRs, ['10.244.0.0/16', 'fd00:244::/48']);
  assert.equal(c.bgp.peers.length, 2);
  assert.equal(c.bgp.peers[1]!.holdTime, 30, 'per-peer holdTime override');
  assert.equal(c.bgp.peers[0]!.holdTime, 90, 'inherited from bgp.holdTime');
  assert.deepEqual(c.bgp.peers[0]!.families, ['ipv4', 'ipv6'], 'families of the pools');
});

test('defaults: node.name is the host name, routerId and listen.address follow node.address', () => {
  const c = loadConfigObject({ node: { address: '192.0.2.11' } }, { env: {} });
  assert.ok(c.ok);
  assert.equal(c.config.node.name, hostname());
  assert.equal(c.config.bgp.routerId, '192.0.2.11');
  assert.equal(c.config.bgp.listen.address, '192.0.2.11');
  assert.equal(c.config.bgp.listen.port, 179);
  assert.equal(c.config.bgp.asn, 64512);
  assert.equal(c.config.bgp.holdTime, 90);
  assert.equal(c.config.node.stateDir, '/var/lib/nrd');
  assert.equal(c.config.datapath.pinPath, '/sys/fs/bpf/nrd');
  assert.equal(c.config.services.cgroupPath, '/sys/fs/cgroup');
  assert.equal(c.config.api.socket, '/run/nrd/nrd.sock');
  assert.equal(c.config.api.metrics, '127.0.0.1:9469');
  assert.equal(c.config.log.level, 'info');
  assert.equal(c.config.routing.mode, 'auto');
  assert.deepEqual(c.config.routing.vxlan, { vni: 1, port: 4789, device: 'nrd.vxlan', mtu: 0 });
  assert.deepEqual(c.config.etcd.endpoints, [], 'no endpoints: the embedded etcd');
  assert.equal(c.config.bgp.export.med, null);
  assert.deepEqual(c.config.cluster.podCIDRs, ['10.244.0.0/16']);
  assert.deepEqual(c.config.node.podCIDRs, []);
});

test('explicit routerId and listen address win over node.address', () => {
  const c = loadOk(`${MINIMAL}bgp: {routerId: 10.0.0.1, listen: {address: 0.0.0.0, port: 1179}}\n`);
  assert.equal(c.bgp.routerId, '10.0.0.1');
  assert.deepEqual(c.bgp.listen, { address: '0.0.0.0', port: 1179 });
});

test('an IPv6 node with a routerId loads; multihop defaults by session type', () => {
  const c = loadOk(`
node: {address: "2001:db8::11"}
cluster: {podCIDRs: ["FD00:244:0::/48"]}
bgp:
  asn: 64512
  routerId: 192.0.2.11
  peers:
    - {address: "2001:DB8::1", asn: 65000}
    - {address: "2001:db8::2", asn: 64512, rrClient: true}
    - {address: "2001:db8::3", asn: 65001, multihop: 4}
`);
  assert.equal(c.node.address, '2001:db8::11');
  assert.deepEqual(c.cluster.podCIDRs, ['fd00:244::/48'], 'canonical text');
  assert.equal(c.bgp.listen.address, '2001:db8::11');
  assert.equal(c.bgp.peers[0]!.address, '2001:db8::1');
  assert.equal(c.bgp.peers[0]!.multihop, 1, 'eBGP: directly connected');
  assert.equal(c.bgp.peers[1]!.multihop, 255, 'iBGP: across the fabric');
  assert.equal(c.bgp.peers[2]!.multihop, 4);
  assert.deepEqual(c.bgp.peers[0]!.families, ['ipv6']);
});

test('the loaded config is deeply frozen', () => {
  const c = loadConfigFile(EXAMPLE_FILE, { env: {} });
  assert.ok(c.ok);
  const cfg = c.config;
  assert.ok(Object.isFrozen(cfg));
  assert.ok(Object.isFrozen(cfg.bgp));
  assert.ok(Object.isFrozen(cfg.bgp.peers));
  assert.ok(Object.isFrozen(cfg.bgp.peers[0]));
  assert.ok(Object.isFrozen(cfg.bgp.peers[0]!.maxPrefix));
  assert.ok(Object.isFrozen(cfg.cluster.podCIDRs));
  assert.throws(() => {
    (cfg.bgp as { asn: number }).asn = 1;
  }, TypeError);
  assert.throws(() => {
    (cfg.cluster.podCIDRs as string[]).push('10.0.0.0/8');
  }, TypeError);
});

test('the result shares nothing with the input object, and loads do not leak into each other', () => {
  const input = { node: { address: '192.0.2.11' }, cluster: { podCIDRs: ['10.244.0.0/16'] }, bgp: { peers: [{ address: '192.0.2.1', asn: 65000 }] } };
  const a = loadConfigObject(input, { env: {} });
  assert.ok(a.ok);
  assert.ok(!Object.isFrozen(input.cluster.podCIDRs), 'the caller\'s object stays mutable');
  input.cluster.podCIDRs.push('10.0.0.0/8');
  input.bgp.peers[0]!.asn = 1;
  assert.deepEqual(a.config.cluster.podCIDRs, ['10.244.0.0/16']);
  assert.equal(a.config.bgp.peers[0]!.asn, 65000);
  // convict keeps defaults in its schema: a second load must see the pristine defaults.
  const b = loadOk(MINIMAL);
  assert.deepEqual(b.cluster.podCIDRs, ['10.244.0.0/16']);
  assert.deepEqual(b.bgp.peers, []);
});

test('JSON files are read as JSON; empty sections keep their defaults', (t) => {
  const dir = tempDir(t);
  const file = writeFile(dir, 'site.json', JSON.stringify({ node: { address: '192.0.2.12' }, log: { level: 'debug' } }));
  const r = loadConfigFile(file, { env: {} });
  assert.ok(r.ok);
  assert.equal(r.config.log.level, 'debug');
  const c = loadOk(`${MINIMAL}etcd:\nbgp:\n`);
  assert.equal(c.etcd.prefix, '/nrd');
  // A YAML file is the same config as its JSON twin.
  const yamlText = readFileSync(EXAMPLE_FILE, 'utf8');
  const y = load(yamlText);
  assert.ok(y.ok);
});
