// nrd's BFD (RFC 5880, single-hop RFC 5881) against BIRD 2's `bfd` protocol with `bfd on` on its BGP
// session, in network namespaces: sessions come Up (plain and meticulous keyed SHA1), the intervals
// negotiate to 300 ms × 3, and a silent link cut (nftables drops UDP 3784 and TCP 179 in BIRD's
// namespace: no reset, no NOTIFICATION) takes nrd's BFD Down within 3 × 300 ms (plus margin for a
// loaded CI machine) and the BGP session with it, long before the 9 s hold time. nrd runs as a
// child process (driver.ts) in its namespace.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Topology, type Host } from '../../lib/netns.js';
import { startBird, type Bird } from '../../lib/bird.js';
import { BfdNrd, bfdSite, cutLink, healLink } from './harness.js';
import { formatBfd } from '../../../daemon/cli/commands/bfd.js';
import type { BfdSessionView } from '../../../daemon/bfd/types.js';

const NRD = '192.0.2.1';
const TOR = '192.0.2.2';
const NRD_AUTH = '192.0.2.5';
const TOR_AUTH = '192.0.2.6';
const KEY = 'nrd-bfd-key';

let topo: Topology;
let nrdHost: Host;
let torHost: Host;
let bird: Bird;
let nrd: BfdNrd;

before(async () => {
  topo = new Topology('nrdt-bfd-bird');
  nrdHost = await topo.host('nrd');
  torHost = await topo.host('tor');
  await topo.link(nrdHost, torHost, { addrA: [`${NRD}/30`], addrB: [`${TOR}/30`] });
  await topo.link(nrdHost, torHost, { addrA: [`${NRD_AUTH}/30`], addrB: [`${TOR_AUTH}/30`], nameB: 'authlink' });
  bird = await startBird(torHost, {
    routerId: TOR,
    asn: 65000,
    staticRoutes: ['10.244.9.0/24'],
    peers: [
      { name: 'tor', address: NRD, localAddress: TOR, asn: 65001, holdTime: 9, keepaliveTime: 3, extra: 'bfd on;' },
      { name: 'torauth', address: NRD_AUTH, localAddress: TOR_AUTH, asn: 65001, holdTime: 9, keepaliveTime: 3, extra: 'bfd on;' },
    ],
    extraConfig: `
protocol bfd {
  interface "authlink" { interval 300 ms; multiplier 3; authentication meticulous keyed sha1; password "${KEY}" { id 3; }; };
  interface "*" { interval 300 ms; multiplier 3; };
}
`,
  });
  const bfd = { enabled: true, minTx: 300, minRx: 300, multiplier: 3 };
  nrd = await BfdNrd.start(
    nrdHost,
    {
      site: bfdSite({
        address: NRD,
        asn: 65001,
        podCIDRs: ['10.244.1.0/24'],
        stateDir: topo.tmpdir('state'),
        peers: [
          { address: TOR, asn: 65000, families: ['ipv4'], bfd },
          { address: TOR_AUTH, asn: 65000, families: ['ipv4'], bfd: { ...bfd, auth: { type: 'meticulous-keyed-sha1', keyId: 3, key: KEY } } },
        ],
      }),
    },
    topo.tmpdir('sock'),
  );
});

after(async () => {
  await topo?.destroy();
});

test('BFD sessions with BIRD come Up (plain and meticulous keyed SHA1) at 300 ms × 3', async () => {
  for (const peer of [TOR, TOR_AUTH]) {
    const s: BfdSessionView = await nrd.waitBfd(peer, 'Up');
    assert.equal(s.remoteState, 'Up');
    assert.notEqual(s.remoteDiscriminator, 0);
    assert.equal(s.remoteDetectMult, 3);
  }
  // The Poll Sequence after Up has ended and both sides run at 300 ms.
  const s = await nrd.waitBfd(TOR, 'Up');
  assert.equal(s.txIntervalMs, 300);
  assert.equal(s.detectionTimeMs, 900);
  assert.equal((await nrd.session(TOR_AUTH))?.auth, 'meticulous-keyed-sha1');
  const text = await bird.birdc('show bfd sessions');
  assert.match(text, new RegExp(`${NRD.replace(/\./g, '\\.')}\\s+\\S+\\s+Up`));
  assert.match(text, new RegExp(`${NRD_AUTH.replace(/\./g, '\\.')}\\s+\\S+\\s+Up`));
  assert.match(formatBfd({ sessions: [s] }), /192\.0\.2\.2\s+peer\s+-\s+single\s+Up\s+Up\s+300\s+900/);
  await nrd.waitBgp(TOR, 'Established');
  await nrd.waitBgp(TOR_AUTH, 'Established');
});

test('silent link cut: BFD Down within 3 × 300 ms and the BGP session with it', async () => {
  await nrd.waitBgp(TOR, 'Established');
  await nrd.waitBfd(TOR, 'Up');
  const before = (await nrd.events()).bfd.length;
  const cutAt = await nrd.nowMs();
  await cutLink(torHost);
  try {
    await nrd.waitBfd(TOR, 'Down', 5000);
    const ev = (await nrd.events()).bfd.slice(before).find((e) => e.peer === TOR && e.to === 'Down');
    assert.ok(ev, 'a Down event');
    assert.equal(ev.diag, 1, 'Control Detection Time Expired');
    const took = ev.atMs - cutAt;
    // 900 ms detection time after the last packet received before the cut; margin for load.
    assert.ok(took <= 900 + 400, `BFD Down ${took.toFixed(0)} ms after the cut`);
    process.stdout.write(`# BFD Down ${took.toFixed(0)} ms after the cut\n`);
    const events = await nrd.events();
    const reset = events.bgpResets.find((r) => r.peer === TOR && r.atMs >= ev.atMs);
    assert.ok(reset, 'BGP peer reset on BFD Down');
    assert.notEqual(await nrd.bgpState(TOR), 'Established');
    // Two Downs: AdminDown → Down when the session started, and the cut.
    assert.match(events.metrics, /nrd_bfd_state_changes_total\{peer="192\.0\.2\.2",purpose="peer",to="Down"\} 2/);
    assert.match(events.metrics, /nrd_bfd_session_state\{peer="192\.0\.2\.2",purpose="peer"\} 1/);
  } finally {
    await healLink(torHost);
  }
  // Everything comes back after the cut heals.
  await nrd.waitBfd(TOR, 'Up', 20_000);
  await nrd.waitBgp(TOR, 'Established', 30_000);
});
