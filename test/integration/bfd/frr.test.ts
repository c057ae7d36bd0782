// nrd's BFD (RFC 5880, single-hop RFC 5881) against FRR 8.4's bfdd, started by hand in the ToR
// namespace with a temp config, pid and vty socket dir (never the system service; no zebra: a peer
// without an interface needs none): the session comes Up at 300 ms × 3, FRR's `shutdown` of the
// peer (AdminDown) takes nrd's session Down with diag 3 without resetting BGP (RFC 5882 §3.2),
// and a silent link cut (nftables in FRR's namespace) takes it Down with diag 1 within 3 × 300 ms.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Topology, type Host } from '../../lib/netns.js';
import { run } from '../../lib/proc.js';
import { waitFor } from '../../lib/wait.js';
import { BfdNrd, bfdSite, cutLink, healLink } from './harness.js';

const NRD = '192.0.2.1';
const TOR = '192.0.2.2';
const BFDD = '/usr/lib/frr/bfdd';

let topo: Topology;
let nrdHost: Host;
let torHost: Host;
let nrd: BfdNrd;
let vty: string;

async function vtysh(...cmds: string[]): Promise<string> {
  const r = await torHost.exec(['vtysh', '--vty_socket', vty, ...cmds.flatMap((c) => ['-c', c])]);
  return r.stdout;
}

before(async () => {
  topo = new Topology('nrdt-bfd-frr');
  nrdHost = await topo.host('nrd');
  torHost = await topo.host('tor');
  await topo.link(nrdHost, torHost, { addrA: [`${NRD}/30`], addrB: [`${TOR}/30`] });
  const dir = topo.tmpdir('frr');
  vty = join(dir, 'vty');
  mkdirSync(vty);
  const { uid, gid } = await frrIds();
  // bfdd drops privileges to frr: its pid, vty and control sockets live in dirs it owns.
  chownSync(dir, uid, gid);
  chownSync(vty, uid, gid);
  const conf = join(dir, 'frr.conf');
  writeFileSync(conf, `bfd\n peer ${NRD} local-address ${TOR}\n  receive-interval 300\n  transmit-interval 300\n  detect-multiplier 3\n !\n!\n`);
  torHost.spawn([BFDD, '-f', conf, '-i', join(dir, 'bfdd.pid'), '--vty_socket', vty, '--bfdctl', join(dir, 'bfdd.sock'), '-z', join(dir, 'zserv.api'), '-A', '127.0.0.1', '-P', '0', '--log', 'stdout'], {
    name: 'tor:bfdd',
  });
  nrd = await BfdNrd.start(
    nrdHost,
    {
      site: bfdSite({
        address: NRD,
        asn: 65001,
        podCIDRs: ['10.244.1.0/24'],
        stateDir: topo.tmpdir('state'),
        // No BGP speaker on the FRR side: the BGP session stays Connect/Active; BFD is what is tested.
        peers: [{ address: TOR, asn: 65000, families: ['ipv4'], bfd: { enabled: true, minTx: 300, minRx: 300, multiplier: 3 } }],
      }),
    },
    topo.tmpdir('sock'),
  );
});

async function frrIds(): Promise<{ uid: number; gid: number }> {
  const r = await run(['id', 'frr']);
  const uid = Number(/uid=(\d+)/.exec(r.stdout)?.[1]);
  const gid = Number(/gid=(\d+)/.exec(r.stdout)?.[1]);
  if (!Number.isInteger(uid) || !Number.isInteger(gid)) throw new Error(`no frr user: ${r.stdout}`);
  return { uid, gid };
}

after(async () => {
  await topo?.destroy();
});

test('BFD session with FRR bfdd comes Up at 300 ms × 3', async () => {
  const s = await nrd.waitBfd(TOR, 'Up');
  assert.equal(s.remoteDetectMult, 3);
  await waitFor(async () => (await nrd.session(TOR))?.txIntervalMs === 300 && (await nrd.session(TOR))?.polling === false, { timeoutMs: 5000, what: 'poll sequence done' });
  assert.equal((await nrd.session(TOR))?.detectionTimeMs, 900);
  const peers = await waitFor(async () => {
    const out = await vtysh('show bfd peers brief');
    return out.includes(NRD) && /\bup\b/.test(out) ? out : undefined;
  }, { timeoutMs: 10_000, what: 'FRR sees the session up' });
  assert.match(peers, new RegExp(NRD.replace(/\./g, '\\.')));
});

test('FRR shuts the peer down (AdminDown): nrd goes Down, diag 3, and does not reset BGP for it', async () => {
  await nrd.waitBfd(TOR, 'Up');
  const before = (await nrd.events()).bgpResets.length;
  await vtysh('configure terminal', 'bfd', `peer ${NRD} local-address ${TOR}`, 'shutdown');
  const s = await nrd.waitBfd(TOR, 'Down', 5000);
  assert.equal(s.localDiag, 'NeighborSignaledSessionDown');
  assert.equal(s.remoteState, 'AdminDown');
  assert.equal((await nrd.events()).bgpResets.length, before, 'RFC 5882 §3.2: AdminDown is no path failure');
  await vtysh('configure terminal', 'bfd', `peer ${NRD} local-address ${TOR}`, 'no shutdown');
  await nrd.waitBfd(TOR, 'Up', 10_000);
});

test('silent link cut: nrd BFD Down (diag 1) within 3 × 300 ms', async () => {
  await nrd.waitBfd(TOR, 'Up');
  const n = (await nrd.events()).bfd.length;
  const cutAt = await nrd.nowMs();
  await cutLink(torHost);
  try {
    await nrd.waitBfd(TOR, 'Down', 5000);
    const ev = (await nrd.events()).bfd.slice(n).find((e) => e.to === 'Down');
    assert.ok(ev);
    assert.equal(ev.diag, 1);
    const took = ev.atMs - cutAt;
    process.stdout.write(`# BFD Down ${took.toFixed(0)} ms after the cut\n`);
    assert.ok(took <= 900 + 400, `BFD Down ${took.toFixed(0)} ms after the cut`);
    assert.equal((await nrd.events()).bgpResets.filter((r) => r.atMs >= ev.atMs).length, 1, 'BGP peer reset');
  } finally {
    await healLink(torHost);
  }
  await nrd.waitBfd(TOR, 'Up', 20_000);
});
