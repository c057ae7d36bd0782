// nrd's BGP speaker against a real BIRD 2 top-of-rack router (eBGP) in network namespaces: IPv4
// over an IPv4 session and IPv6 over an IPv6 session, routes both ways and withdrawn, local
// prefixes set at runtime, export policy change (community) without session reset, every
// documented well-known community (RFC 1997, 3765, 7999, 8326) on the route in BIRD, import policy
// change applied by route refresh (RFC 2918), route refresh from BIRD, max-prefix teardown
// (RFC 4486) and restart by reload, TCP MD5 (RFC 2385) match and mismatch, hold timer expiry when
// the link is cut. nrd runs as a child process (speaker-driver) in its namespace.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Topology, type Host } from '../../lib/netns.js';
import { startBird, type Bird, type BirdOptions, type BirdPeer } from '../../lib/bird.js';
import { waitFor, sleep } from '../../lib/wait.js';
import { SpeakerProc, siteConfig } from './speaker-harness.js';
import { runBgpRoutes, runPeers } from '../../../daemon/cli/commands/bgp.js';
import { parseCommunity } from '../../../daemon/bgp/wire/communities.js';
import { documentedWellKnownCommunities } from '../../unit/bgp/policy/documented-communities.js';

const NRD4 = '192.0.2.1';
const TOR4 = '192.0.2.2';
const NRD6 = '2001:db8::1';
const TOR6 = '2001:db8::2';
const NRD_MD5 = '192.0.2.11';
const TOR_MD5 = '192.0.2.12';
const NRD_BAD = '192.0.2.13';
const TOR_BAD = '192.0.2.14';
const KEY = 'nrd-md5-key';

let topo: Topology;
let nrdHost: Host;
let torHost: Host;
let bird: Bird;
let nrd: SpeakerProc;
let birdOpts: BirdOptions;
let site: Record<string, unknown>;

const common = { asn: 65001, localAsn: 65000, holdTime: 3, keepaliveTime: 1, gracefulRestart: true } satisfies Partial<BirdPeer>;

function birdOptions(statics: string[]): BirdOptions {
  return {
    routerId: TOR4,
    asn: 65000,
    staticRoutes: statics,
    peers: [
      { ...common, name: 'tor4', address: NRD4, localAddress: TOR4, families: ['ipv4'] },
      { ...common, name: 'tor6', address: NRD6, localAddress: TOR6, families: ['ipv6'] },
      // BIRD connects to nrd's listener with MD5: nrd is passive for these two.
      { ...common, name: 'md5ok', address: NRD_MD5, localAddress: TOR_MD5, password: KEY, families: ['ipv4'] },
      { ...common, name: 'md5bad', address: NRD_BAD, localAddress: TOR_BAD, password: KEY, families: ['ipv4'] },
    ],
  };
}

const STATICS = ['10.244.9.0/24', '10.244.10.0/24', 'fd00:244:0:9::/64', '203.0.113.0/24'];

function nrdPeers(over: Record<string, Record<string, unknown>> = {}): unknown[] {
  return [
    { address: TOR4, asn: 65000, families: ['ipv4'], ...over[TOR4] },
    { address: TOR6, asn: 65000, families: ['ipv6'], ...over[TOR6] },
    { address: TOR_MD5, asn: 65000, families: ['ipv4'], passive: true, password: KEY },
    { address: TOR_BAD, asn: 65000, families: ['ipv4'], passive: true, password: 'not-the-key' },
  ];
}

function nrdSite(o: { peers?: unknown[]; bgp?: Record<string, unknown> } = {}): Record<string, unknown> {
  return siteConfig({
    address: NRD4,
    asn: 65001,
    // The IPv6 CIDR is set at runtime (as etcd would); the config loader of this tree rejects
    // fd00:244:0:1::/64 as "not inside fd00:244::/48" (reported to the lead).
    podCIDRs: ['10.244.1.0/24'],
    stateDir: topo.tmpdir('state'),
    peers: o.peers ?? nrdPeers(),
    ...(o.bgp ? { bgp: o.bgp } : {}),
  });
}

async function birdHas(prefix: string, proto: string): Promise<Awaited<ReturnType<Bird['routes']>>[number] | undefined> {
  // birdc fails with "Network not found" when the prefix is absent.
  const routes = await bird.routes(`${prefix} protocol ${proto}`).catch(() => []);
  return routes.find((r) => r.prefix === prefix);
}

async function protoSince(name: string): Promise<string> {
  const p = (await bird.protocols()).find((x) => x.name === name);
  if (!p) throw new Error(`no BIRD protocol ${name}`);
  return `${p.state} ${p.since}`;
}

before(async () => {
  topo = new Topology('nrdt-spk-ebgp');
  nrdHost = await topo.host('nrd');
  torHost = await topo.host('tor');
  await topo.link(nrdHost, torHost, {
    addrA: [`${NRD4}/24`, `${NRD_MD5}/24`, `${NRD_BAD}/24`, `${NRD6}/64`],
    addrB: [`${TOR4}/24`, `${TOR_MD5}/24`, `${TOR_BAD}/24`, `${TOR6}/64`],
  });
  birdOpts = birdOptions(STATICS);
  bird = await startBird(torHost, birdOpts);
  site = nrdSite();
  nrd = await SpeakerProc.start(nrdHost, { site }, topo.tmpdir('sock'));
  // The IPv6 CIDR arrives at runtime, as it would from etcd.
  await nrd.setLocalPrefixes('ipv6', ['fd00:244:0:1::/64']);
});

after(async () => {
  await topo?.destroy();
});

test('IPv4 and IPv6 routes flow both ways over eBGP; prefixes outside the cluster are rejected', async () => {
  await nrd.waitEstablished(TOR4);
  await nrd.waitEstablished(TOR6);
  await bird.waitEstablished('tor4');
  await bird.waitEstablished('tor6');
  // nrd's pod CIDRs in BIRD, with nrd as next hop and AS path 65001.
  const r4 = await waitFor(() => birdHas('10.244.1.0/24', 'tor4'), { timeoutMs: 10_000, what: 'nrd IPv4 prefix in BIRD' });
  assert.equal(r4.nexthops[0]?.via, NRD4);
  assert.equal(r4.attrs['BGP.as_path'], '65001');
  const r6 = await waitFor(() => birdHas('fd00:244:0:1::/64', 'tor6'), { timeoutMs: 10_000, what: 'nrd IPv6 prefix in BIRD' });
  assert.equal(r6.nexthops[0]?.via, NRD6);
  // BIRD's statics in nrd's Loc-RIB.
  await waitFor(() => nrd.hasRoute('ipv4', '10.244.9.0/24', TOR4), { timeoutMs: 10_000, what: 'BIRD IPv4 static in nrd' });
  await waitFor(() => nrd.hasRoute('ipv6', 'fd00:244:0:9::/64', TOR6), { timeoutMs: 10_000, what: 'BIRD IPv6 static in nrd' });
  const v4 = await nrd.routes(`peer=${TOR4}&prefix=10.244.9.0/24`);
  const path = v4.routes[0]!.paths[0]!;
  assert.equal(path.best, true);
  assert.equal(path.asPath, '65000');
  assert.deepEqual(path.nextHops, [TOR4]);
  // Outside cluster.podCIDRs: import policy rejects it.
  assert.equal(await nrd.hasRoute('ipv4', '203.0.113.0/24'), false);
  const peer = await nrd.peer(TOR4);
  assert.equal(peer.prefixes.accepted, 2);
  assert.equal(peer.prefixes.advertised, 1);
  assert.deepEqual(peer.families, ['ipv4']);
  // nrdctl's handlers against the same API.
  const out: string[] = [];
  const ctx = { socket: nrd.socket, output: 'table' as const, stdout: (s: string) => out.push(s), stderr: (s: string) => out.push(s) };
  assert.equal(await runPeers(ctx, []), 0);
  assert.match(out.join(''), new RegExp(`${TOR4.replace(/\./g, '\\.')}\\s+65000\\s+ebgp\\s+Established`));
  out.length = 0;
  assert.equal(await runBgpRoutes(ctx, ['--peer', TOR4]), 0);
  assert.match(out.join(''), /10\.244\.9\.0\/24\s+\* 192\.0\.2\.2/);
});

test('a static removed from BIRD is withdrawn from nrd; local prefixes set at runtime reach BIRD', async () => {
  await nrd.waitEstablished(TOR4);
  await waitFor(() => nrd.hasRoute('ipv4', '10.244.10.0/24', TOR4), { timeoutMs: 10_000, what: '10.244.10.0/24 in nrd' });
  birdOpts = birdOptions(STATICS.filter((s) => s !== '10.244.10.0/24' && s !== 'fd00:244:0:9::/64'));
  await bird.reconfigure(birdOpts);
  await waitFor(async () => !(await nrd.hasRoute('ipv4', '10.244.10.0/24')), { timeoutMs: 10_000, what: 'IPv4 withdrawal in nrd' });
  await waitFor(async () => !(await nrd.hasRoute('ipv6', 'fd00:244:0:9::/64')), { timeoutMs: 10_000, what: 'IPv6 withdrawal in nrd' });
  assert.equal(await nrd.hasRoute('ipv4', '10.244.9.0/24', TOR4), true);

  await nrd.setLocalPrefixes('ipv4', ['10.244.1.0/24', '10.244.2.0/24']);
  await waitFor(() => birdHas('10.244.2.0/24', 'tor4'), { timeoutMs: 10_000, what: 'new local prefix in BIRD' });
  await nrd.setLocalPrefixes('ipv4', ['10.244.1.0/24']);
  await waitFor(async () => !(await birdHas('10.244.2.0/24', 'tor4')), { timeoutMs: 10_000, what: 'local prefix withdrawn from BIRD' });
  assert.ok(await birdHas('10.244.1.0/24', 'tor4'));
});

test('export policy change (a community) reaches BIRD without a session reset', async () => {
  await nrd.waitEstablished(TOR4);
  const since = await protoSince('tor4');
  const before = await nrd.peer(TOR4);
  site = nrdSite({ bgp: { export: { communities: ['65001:42'], largeCommunities: ['65001:1:2'] } } });
  const r = await nrd.reload(site);
  assert.ok(r.changes.includes('bgp.export.communities'), JSON.stringify(r));
  const route = await waitFor(
    async () => {
      const x = await birdHas('10.244.1.0/24', 'tor4');
      return x?.attrs['BGP.community']?.includes('(65001,42)') ? x : false;
    },
    { timeoutMs: 10_000, what: 'community on nrd route in BIRD' },
  );
  assert.match(route.attrs['BGP.large_community'] ?? '', /\(65001, 1, 2\)/);
  assert.equal(await protoSince('tor4'), since, 'BIRD session was reset');
  const after = await nrd.peer(TOR4);
  assert.equal(after.state, 'Established');
  assert.ok(after.uptimeSeconds! >= before.uptimeSeconds!, 'nrd session was reset');
  assert.deepEqual(after.lastError, before.lastError);
});

test('every documented well-known community passes check-config and reaches BIRD on the route', async () => {
  // Regression: check-config accepted no-peer and graceful-shutdown, the speaker threw on them;
  // and nrd withheld its own routes tagged no-export / no-advertise from its eBGP peer.
  await nrd.waitEstablished(TOR4);
  const names = documentedWellKnownCommunities();
  site = nrdSite({ bgp: { export: { communities: names } } });
  const r = await nrd.reload(site);
  assert.ok(r.changes.includes('bgp.export.communities'), JSON.stringify(r));
  const pairs = names.map((n) => {
    const v = parseCommunity(n)!;
    return `(${v >>> 16},${v & 0xffff})`;
  });
  const route = await waitFor(
    async () => {
      const x = await birdHas('10.244.1.0/24', 'tor4');
      const c = x?.attrs['BGP.community'] ?? '';
      return pairs.every((p) => c.includes(p)) ? x : false;
    },
    { timeoutMs: 10_000, what: `communities ${names.join(', ')} on nrd's route in BIRD` },
  );
  assert.equal(route.nexthops[0]?.via, NRD4);
  site = nrdSite();
  await nrd.reload(site);
  await waitFor(async () => !((await birdHas('10.244.1.0/24', 'tor4'))?.attrs['BGP.community'] ?? '').includes('65535'), { timeoutMs: 10_000, what: 'communities removed' });
});

test('import policy change is applied by route refresh; BIRD\'s refresh request is answered', async () => {
  await nrd.waitEstablished(TOR4);
  const since = await protoSince('tor4');
  assert.equal(await nrd.hasRoute('ipv4', '203.0.113.0/24'), false);
  const before = await nrd.peer(TOR4);
  site = nrdSite({ bgp: { import: { extraRanges: ['203.0.113.0/24'] } } });
  await nrd.reload(site);
  // The rejected route was not kept: only a ROUTE-REFRESH can bring it back.
  await waitFor(() => nrd.hasRoute('ipv4', '203.0.113.0/24', TOR4), { timeoutMs: 10_000, what: 'refreshed route in nrd' });
  assert.ok((await nrd.peer(TOR4)).updates.received > before.updates.received);
  assert.equal(await protoSince('tor4'), since, 'session was reset');

  // BIRD asks nrd for its routes again (`reload in` sends ROUTE-REFRESH).
  const sent = (await nrd.peer(TOR4)).updates.sent;
  await bird.birdc('reload in tor4');
  await waitFor(async () => (await nrd.peer(TOR4)).updates.sent > sent, { timeoutMs: 10_000, what: 'nrd answering BIRD\'s route refresh' });
  assert.ok(await birdHas('10.244.1.0/24', 'tor4'));
  assert.equal(await protoSince('tor4'), since, 'session was reset');
});

test('TCP MD5: the matching key establishes, a mismatched key never does, readiness names it', async () => {
  await nrd.waitEstablished(TOR_MD5);
  await bird.waitEstablished('md5ok');
  const bad = await nrd.peer(TOR_BAD);
  assert.notEqual(bad.state, 'Established');
  const rd = await nrd.get<{ subsystems: Array<{ ready: boolean; reason?: string }> }>('/test/readiness');
  const reason = rd.subsystems[0]!.reason ?? '';
  assert.equal(rd.subsystems[0]!.ready, false);
  assert.match(reason, new RegExp(`peer ${TOR_BAD.replace(/\./g, '\\.')} \\(AS 65000\\) (Active|Idle|Connect)`));
  assert.doesNotMatch(reason, new RegExp(`peer ${TOR_MD5.replace(/\./g, '\\.')}`));
  // BIRD connects with the right key to an nrd listener holding the wrong one: nrd's kernel drops it.
  const counted = await nrdHost.exec(['nstat', '-az', 'TcpExtTCPMD5Unexpected', 'TcpExtTCPMD5Failure']);
  assert.match(counted.stdout, /TcpExtTCPMD5(Failure|Unexpected)\s+[1-9]/);
});

test('max-prefix teardown closes the session with Cease/1 and a reload with a new limit restarts it', async () => {
  await nrd.waitEstablished(TOR4);
  site = nrdSite({ peers: nrdPeers({ [TOR4]: { maxPrefix: { limit: 1, action: 'teardown' } } }), bgp: { import: { extraRanges: ['203.0.113.0/24'] } } });
  await nrd.reload(site);
  const p = await waitFor(
    async () => {
      const x = await nrd.peer(TOR4);
      return x.stopped ? x : false;
    },
    { timeoutMs: 10_000, what: 'max-prefix teardown' },
  );
  assert.equal(p.lastError?.notification?.code, 6);
  assert.equal(p.lastError?.notification?.subcode, 1);
  assert.equal(await nrd.hasRoute('ipv4', '10.244.9.0/24', TOR4), false);
  const info = await bird.birdc('show protocols all tor4');
  assert.match(info, /Maximum number of prefixes reached|Cease/i);
  // Stays down (RFC 4486: no automatic restart) until the configuration changes.
  await sleep(1500);
  assert.notEqual((await nrd.peer(TOR4)).state, 'Established');
  site = nrdSite({ peers: nrdPeers({ [TOR4]: { maxPrefix: { limit: 100, action: 'teardown' } } }), bgp: { import: { extraRanges: ['203.0.113.0/24'] } } });
  await nrd.reload(site);
  await nrd.waitEstablished(TOR4);
  await waitFor(() => nrd.hasRoute('ipv4', '10.244.9.0/24', TOR4), { timeoutMs: 10_000, what: 'routes back after restart' });
});

test('hold timer expires when the link is cut, routes are withdrawn, the session comes back', async () => {
  await nrd.waitEstablished(TOR4);
  await waitFor(() => nrd.hasRoute('ipv4', '10.244.9.0/24', TOR4), { timeoutMs: 10_000, what: 'route before the cut' });
  const table = `nrdt_spk_${process.pid}`;
  const nft = (args: string[]): Promise<unknown> => torHost.exec(['nft', ...args]);
  await nft(['add', 'table', 'inet', table]);
  try {
    await nft(['add', 'chain', 'inet', table, 'in', '{ type filter hook input priority 0; }']);
    await nft(['add', 'chain', 'inet', table, 'out', '{ type filter hook output priority 0; }']);
    await nft(['add', 'rule', 'inet', table, 'in', 'ip', 'saddr', NRD4, 'ip', 'daddr', TOR4, 'drop']);
    await nft(['add', 'rule', 'inet', table, 'out', 'ip', 'saddr', TOR4, 'ip', 'daddr', NRD4, 'drop']);
    const down = await waitFor(
      async () => {
        const x = await nrd.peer(TOR4);
        return x.state !== 'Established' ? x : false;
      },
      { timeoutMs: 10_000, what: 'hold timer expiry' },
    );
    assert.equal(down.lastError?.notification?.code, 4, JSON.stringify(down.lastError));
    if (down.gracefulRestart.peerNotification) {
      // RFC 8538 on both sides: a hold timer expiry is graceful, the routes stay as stale.
      const r = await nrd.routes('peer=' + TOR4 + '&prefix=10.244.9.0/24');
      assert.equal(r.routes[0]?.paths[0]?.stale, true);
    } else {
      // RFC 4724 alone: after a NOTIFICATION the routes go at once.
      await waitFor(async () => !(await nrd.hasRoute('ipv4', '10.244.9.0/24', TOR4)), { timeoutMs: 5_000, what: 'routes withdrawn' });
    }
    // The other sessions did not notice.
    assert.equal((await nrd.peer(TOR6)).state, 'Established');
  } finally {
    await nft(['delete', 'table', 'inet', table]);
  }
  await nrd.waitEstablished(TOR4, 30_000);
  await waitFor(() => nrd.hasRoute('ipv4', '10.244.9.0/24', TOR4), { timeoutMs: 10_000, what: 'routes back' });
});
