// Which BFD sessions nrd runs (daemon/bfd/specs.ts): bgp.peers[].bfd (single-hop one hop away,
// multihop else), bgp.nodeMeshBfd (multihop to every mesh node but self and static peers, only with
// bgp.nodeMesh), routing.bfd (single-hop to the direct nodes, only in the modes that use direct
// paths), one session per address and hop mode serving several purposes with the first's
// parameters; and the config errors of the new blocks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigObject, type NrdConfig } from '../../../daemon/config/index.js';
import { sessionSpecs } from '../../../daemon/bfd/specs.js';
import { reactionTo, type BfdStateChange } from '../../../daemon/bfd/subsystem.js';
import type { BfdState } from '../../../daemon/bfd/packet.js';

function load(extra: Record<string, unknown>): ReturnType<typeof loadConfigObject> {
  return loadConfigObject({ node: { name: 'n1', address: '192.0.2.1', stateDir: '/tmp/nrdt-unused' }, cluster: { podCIDRs: ['10.244.0.0/16'] }, ...extra }, { env: {} });
}
function config(extra: Record<string, unknown>): NrdConfig {
  const r = load(extra);
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

const MESH = [
  { name: 'n1', address: '192.0.2.1' },
  { name: 'n2', address: '192.0.2.2' },
  { name: 'n9', address: '198.51.100.9' },
  { name: 'tor', address: '192.0.2.254' },
];
const DIRECT = [{ name: 'n2', address: '192.0.2.2' }];

test('defaults: no session at all', () => {
  assert.deepEqual(sessionSpecs(config({}), { mesh: MESH, direct: DIRECT }), []);
});

test('peer, mesh and node sessions, merged per address and hop mode', () => {
  const c = config({
    bgp: {
      nodeMesh: true,
      nodeMeshBfd: { enabled: true, minTx: 200, minRx: 200, multiplier: 4, auth: { type: 'keyed-sha1', keyId: 2, key: 'k' } },
      peers: [
        { address: '192.0.2.254', asn: 65000, bfd: { enabled: true } },
        { address: '192.0.2.2', asn: 65002, bfd: { enabled: true, minTx: 50, minRx: 50 } },
      ],
    },
    routing: { mode: 'cross-subnet', bfd: { enabled: true, minTx: 100, minRx: 100 } },
  });
  const specs = sessionSpecs(c, { mesh: MESH, direct: [...DIRECT, { name: 'n3', address: '192.0.2.3' }] });
  const by = new Map(specs.map((s) => [`${s.multihop ? 'mh' : 'sh'}/${s.peer}`, s]));
  assert.deepEqual([...by.keys()].sort(), ['mh/198.51.100.9', 'sh/192.0.2.2', 'sh/192.0.2.254', 'sh/192.0.2.3'].sort());
  assert.deepEqual(by.get('sh/192.0.2.254')!.purposes, ['peer'], 'a static peer shadows its mesh node');
  // n2 is an eBGP static peer (single-hop) and a direct node: one session, the peer's parameters.
  assert.deepEqual(by.get('sh/192.0.2.2'), { peer: '192.0.2.2', multihop: false, minTx: 50, minRx: 50, multiplier: 3, purposes: ['peer', 'node'], node: 'n2' });
  // …and a mesh node too, but mesh sessions are multihop (iBGP): a separate session.
  assert.equal(by.get('mh/192.0.2.2'), undefined, 'static peer 192.0.2.2 shadows the mesh node n2');
  assert.deepEqual(by.get('mh/198.51.100.9'), {
    peer: '198.51.100.9',
    multihop: true,
    minTx: 200,
    minRx: 200,
    multiplier: 4,
    auth: { type: 'keyed-sha1', keyId: 2, key: 'k' },
    purposes: ['mesh'],
    node: 'n9',
  });
  assert.deepEqual(by.get('sh/192.0.2.3')!.purposes, ['node']);
  assert.equal(by.get('sh/192.0.2.3')!.minTx, 100);
});

test('mesh sessions only with bgp.nodeMesh; node sessions only in modes with direct paths; never to self', () => {
  const mesh = config({ bgp: { nodeMeshBfd: { enabled: true } } });
  assert.deepEqual(sessionSpecs(mesh, { mesh: MESH, direct: [] }), []);
  const withMesh = config({ bgp: { nodeMesh: true, nodeMeshBfd: { enabled: true } } });
  assert.deepEqual(
    sessionSpecs(withMesh, { mesh: MESH, direct: [] }).map((s) => s.peer),
    ['192.0.2.2', '198.51.100.9', '192.0.2.254'],
  );
  for (const mode of ['native', 'vxlan']) assert.deepEqual(sessionSpecs(config({ routing: { mode, bfd: { enabled: true } } }), { mesh: [], direct: DIRECT }), [], mode);
  const auto = config({ routing: { mode: 'auto', bfd: { enabled: true } } });
  assert.deepEqual(sessionSpecs(auto, { mesh: [], direct: [...DIRECT, { name: 'n1', address: '192.0.2.1' }] }).map((s) => s.peer), ['192.0.2.2']);
});

test('config: an auth type without a key names the key', () => {
  for (const [extra, key] of [
    [{ routing: { bfd: { enabled: true, auth: { type: 'keyed-sha1' } } } }, 'routing.bfd.auth.key'],
    [{ bgp: { nodeMeshBfd: { auth: { type: 'meticulous-keyed-sha1' } } } }, 'bgp.nodeMeshBfd.auth.key'],
  ] as const) {
    const r = load(extra);
    assert.equal(r.ok, false);
    if (!r.ok) assert.ok(r.issues.some((i) => i.key === key && /required/.test(i.message)), JSON.stringify(r.issues));
  }
  const r = load({ routing: { bfd: { minTx: 5 } } });
  assert.equal(r.ok, false);
  if (!r.ok) assert.ok(r.issues.some((i) => i.key === 'routing.bfd.minTx'), JSON.stringify(r.issues));
});

test('reactionTo: peer and mesh Down reset BGP, node Down takes the direct path away and Up gives it back; AdminDown is no failure', () => {
  const c = (purposes: BfdStateChange['purposes'], from: BfdState, to: BfdState, remoteState: BfdState = 'Up'): BfdStateChange => ({ peer: '192.0.2.2', multihop: false, purposes, from, to, diag: 1, remoteState });
  assert.deepEqual(reactionTo(c(['peer'], 'Up', 'Down')), { resetBgp: true });
  assert.deepEqual(reactionTo(c(['mesh'], 'Up', 'Down')), { resetBgp: true });
  assert.deepEqual(reactionTo(c(['node'], 'Up', 'Down')), { resetBgp: false, directDown: true });
  assert.deepEqual(reactionTo(c(['peer', 'node'], 'Up', 'Down')), { resetBgp: true, directDown: true });
  assert.deepEqual(reactionTo(c(['node'], 'Init', 'Up')), { resetBgp: false, directDown: false });
  assert.deepEqual(reactionTo(c(['node'], 'Up', 'Down', 'AdminDown')), { resetBgp: false }, 'a restarting peer is no path failure');
  assert.deepEqual(reactionTo(c(['node'], 'AdminDown', 'Down')), { resetBgp: false }, 'a session starting is nothing');
  assert.deepEqual(reactionTo(c(['peer'], 'Init', 'Up')), { resetBgp: false });
});
