// Regression: import policy accepted a peer's route equal to or more specific than the node's own
// advertised prefix (a hijack of our CIDR), and the length cap of bgp.import.maxPrefixLength must
// hold for bgp.import.extraRanges too. Rejected routes are filtered (counted), never a reset.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ImportPolicy } from '../../../../daemon/bgp/policy/import.js';
import { BgpSpeaker } from '../../../../daemon/bgp/speaker.js';
import { buildImportPolicy, type SpeakerOptions } from '../../../../daemon/bgp/speaker/options.js';
import { speakerOptionsFromConfig } from '../../../../daemon/bgp/subsystem.js';
import { loadConfigText } from '../../../../daemon/config/index.js';
import { attrs, peer, update, update6 } from '../rib/helpers.js';

test('own prefixes: equal and more-specific routes are refused, the covering range and neighbours are not', () => {
  const p = new ImportPolicy({ ranges: [{ prefix: '10.244.0.0/16' }, { prefix: 'fd00:244::/48' }], own: ['10.244.1.0/24', 'fd00:244:0:1::/64'] });
  assert.equal(p.acceptsPrefix('10.244.1.0/24'), false);
  assert.equal(p.acceptsPrefix('10.244.1.128/25'), false);
  assert.equal(p.acceptsPrefix('10.244.1.7/32'), false);
  assert.equal(p.acceptsIpv4(0x0af40180, 25), false);
  assert.equal(p.acceptsPrefix('10.244.2.0/24'), true);
  assert.equal(p.acceptsPrefix('10.244.0.0/16'), true, 'the cluster aggregate covers us but does not hijack');
  assert.equal(p.acceptsPrefix('fd00:244:0:1::/64'), false);
  assert.equal(p.acceptsPrefix('fd00:244:0:1:8000::/65'), false);
  assert.equal(p.acceptsPrefix('fd00:244:0:2::/64'), true);
});

test('bgp.import.maxPrefixLength caps extraRanges as well as the cluster ranges', () => {
  const r = loadConfigText(
    'node: {address: 192.0.2.11}\nbgp: {import: {extraRanges: [0.0.0.0/0, "2001:db8::/32"], maxPrefixLength: {ipv4: 24, ipv6: 64}}}\n',
    { env: {}, hostname: 'n1' },
  );
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues));
  const o = speakerOptionsFromConfig(r.config);
  const p = buildImportPolicy(o, [], new Map());
  assert.equal(p.acceptsPrefix('0.0.0.0/0'), true);
  assert.equal(p.acceptsPrefix('203.0.113.0/24'), true);
  assert.equal(p.acceptsPrefix('203.0.113.0/25'), false);
  assert.equal(p.acceptsPrefix('2001:db8:1::/48'), true);
  assert.equal(p.acceptsPrefix('2001:db8:1:2:8000::/65'), false);
});

function speakerOptions(): SpeakerOptions {
  return {
    asn: 65000,
    routerId: '192.0.2.1',
    listen: null,
    holdTime: 90,
    connectRetryTime: 5,
    gracefulRestart: { enabled: false, restartTime: 120, stalePathTime: 360 },
    ecmpMax: 8,
    import: { ranges: ['10.244.0.0/16', 'fd00:244::/48'] },
    export: {},
    peers: [],
  };
}

test('speaker: a peer announcing our own CIDR (set at runtime) or a more-specific is filtered and counted, the session untouched', () => {
  const s = new BgpSpeaker(speakerOptions());
  const rib = s.ribForInspection;
  const a = peer(1);
  rib.peerUp(a, 0);
  // Accepted before the prefix is ours...
  assert.equal(rib.applyUpdate(a.id, update(['10.244.1.0/24'], attrs([65101])), 1).accepted, 1);
  // ...refused once setLocalPrefixes makes it ours (level-triggered input, re-evaluated in place).
  s.setLocalPrefixes('ipv4', ['10.244.1.0/24']);
  s.setLocalPrefixes('ipv6', ['fd00:244:0:1::/64']);
  assert.equal(rib.candidates('1/1', '10.244.1.0/24').filter((p) => p.peer.id === a.id).length, 0);
  const r = rib.applyUpdate(a.id, update(['10.244.1.0/24', '10.244.1.0/25', '10.244.2.0/24'], attrs([65101])), 2);
  assert.deepEqual([r.accepted, r.rejected, r.maxPrefix], [1, 2, null]);
  const r6 = rib.applyUpdate(a.id, update6(['fd00:244:0:1::/64', 'fd00:244:0:2::/64'], attrs([65101], { nextHop: undefined }), ['2001:db8::11']), 3);
  assert.deepEqual([r6.accepted, r6.rejected], [1, 1]);
  assert.equal(rib.isPeerUp(a.id), true);
  // Our own route is still the one in the Loc-RIB for our CIDR.
  assert.equal(rib.selection('1/1', '10.244.1.0/24').best?.peer.type, 'local');
});

test('max-prefix: a peer without a limit gets the default (50000, teardown); 0 turns it off', () => {
  const r = loadConfigText(
    'node: {address: 192.0.2.11}\nbgp: {peers: [{address: 192.0.2.2, asn: 65010}, {address: 192.0.2.3, asn: 65011, maxPrefix: {limit: 0}}]}\n',
    { env: {}, hostname: 'n1' },
  );
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues));
  const o = speakerOptionsFromConfig(r.config);
  assert.deepEqual(o.peers[0]!.maxPrefix, { limit: 50000, action: 'teardown' });
  assert.equal(o.peers[1]!.maxPrefix, undefined);
  const p = buildImportPolicy(o, o.peers, new Map());
  assert.deepEqual(p.maxPrefixFor('192.0.2.2'), { limit: 50000, action: 'teardown' });
  assert.equal(p.maxPrefixFor('192.0.2.3'), undefined);
});

test('max-prefix: node-mesh peers (no peer config of their own) get the same default as configured peers', () => {
  const r = loadConfigText('node: {address: 192.0.2.11}\nbgp: {nodeMesh: true}\n', { env: {}, hostname: 'n1' });
  assert.ok(r.ok, r.ok ? '' : JSON.stringify(r.issues));
  const o = speakerOptionsFromConfig(r.config);
  const schemaDefault = speakerOptionsFromConfig(
    (() => {
      const c = loadConfigText('node: {address: 192.0.2.11}\nbgp: {peers: [{address: 192.0.2.2, asn: 65010}]}\n', { env: {}, hostname: 'n1' });
      assert.ok(c.ok);
      return c.config;
    })(),
  ).peers[0]!.maxPrefix;
  assert.deepEqual(o.meshMaxPrefix, schemaDefault, 'one default for both kinds of peer');
  // Never started (no socket): the peer set the speaker would run with.
  const s = new BgpSpeaker({ ...o, listen: { address: '127.0.0.1', port: 0 } });
  s.setMeshPeers([{ name: 'n2', address: '192.0.2.12' }]);
  const desired = (s as unknown as { desiredPeers(): Map<string, { address: string; maxPrefix?: unknown }> }).desiredPeers();
  const mesh = [...desired.values()].find((p) => p.address === '192.0.2.12');
  assert.deepEqual(mesh?.maxPrefix, { limit: 50000, action: 'teardown' });
});
