// nrd's BGP speaker against crafted and malformed UPDATEs sent by a real ExaBGP 4.2 (generic
// attributes `attribute [ code flags value ]`) on live sessions: RFC 7606 treat-as-withdraw
// (ORIGIN, AS_PATH, NEXT_HOP, MED, COMMUNITIES, attribute flags), attribute discard, the first of
// repeated attributes kept (§3 g, via a two-octet RFC 6793 session), a repeated MP_REACH_NLRI
// resetting the session (§3 g), unrecognised optional attributes passed on with the Partial bit
// (RFC 4271 §5) or dropped, the RFC 4271 §6.3 cases, and multicast (SAFI 2) NLRI never negotiated
// being ignored (RFC 4760 §7).
// nrd runs as a child process (speaker-driver) in its namespace; ExaBGP listens in its own.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Topology, type Host } from '../../lib/netns.js';
import { startExaBgp, type ExaBgp, type ExaEvent } from '../../lib/exabgp.js';
import { waitFor } from '../../lib/wait.js';
import { SpeakerProc, siteConfig } from './speaker-harness.js';
import type { PeerView } from '../../../daemon/bgp/speaker.js';

const NRD = '192.0.2.1';
/** eBGP AS 65000, IPv4 + IPv6 unicast: sends the malformed UPDATEs. */
const EXA = '192.0.2.2';
/** iBGP AS 65001, route-reflector client of nrd: sees what nrd passes on. */
const RR = '192.0.2.3';
/** eBGP AS 65002 without the four-octet AS capability: AS4_PATH travels (RFC 6793). */
const OLD = '192.0.2.4';
const EXA6_NH = '2001:db8::2';

/** Present from start to end on EXA's session unless the session itself resets. */
const WITNESS = '10.244.10.0/24';
const WITNESS6 = 'fd00:244:0:9::/64';

let topo: Topology;
let nrdHost: Host;
let exaHost: Host;
let exa: ExaBgp;
let nrd: SpeakerProc;

const send = (from: string, what: string): Promise<void> => exa.command(`neighbor ${NRD} local-ip ${from} ${what}`);

const has = (prefix: string, peer?: string): Promise<boolean> => nrd.hasRoute(prefix.includes(':') ? 'ipv6' : 'ipv4', prefix, peer);

async function waitPresent(prefixes: string[], peer: string, what: string): Promise<void> {
  await waitFor(async () => (await Promise.all(prefixes.map((p) => has(p, peer)))).every(Boolean), { timeoutMs: 10_000, what });
}

async function waitAbsent(prefixes: string[], what: string): Promise<void> {
  await waitFor(async () => !(await Promise.all(prefixes.map((p) => has(p)))).some(Boolean), { timeoutMs: 10_000, what });
}

let marker = 0;
/**
 * UPDATEs of one session are applied in order: once a fresh valid route sent after the case is in
 * the Loc-RIB, the case's UPDATE has been handled too (for cases whose effect is "nothing changed").
 */
async function barrier(from: string): Promise<void> {
  const med = ++marker;
  const prefix = `10.244.${200 + (med % 50)}.0/24`;
  await send(from, `announce route ${prefix} next-hop ${from} med ${med}`);
  await waitFor(
    async () => {
      const r = await nrd.routes(`peer=${from}&prefix=${prefix}`);
      return r.routes[0]?.paths[0]?.med === med;
    },
    { timeoutMs: 10_000, what: `barrier route ${prefix} from ${from}` },
  );
}

const downs = async (local: string): Promise<number> =>
  (await exa.events()).filter((e) => e.type === 'state' && e.neighbor?.address?.local === local && e.neighbor.state === 'down').length;

interface SessionMark {
  downs: number;
  lastError: PeerView['lastError'];
  updates: number;
}

async function mark(peer: string): Promise<SessionMark> {
  const p = await nrd.peer(peer);
  assert.equal(p.state, 'Established');
  return { downs: await downs(peer), lastError: p.lastError, updates: p.updates.received };
}

/** The session was not reset since `m`: no down seen by ExaBGP, no new error at nrd, still up. */
async function assertNoReset(peer: string, m: SessionMark): Promise<void> {
  const p = await nrd.peer(peer);
  assert.equal(p.state, 'Established');
  assert.deepEqual(p.lastError, m.lastError, 'nrd recorded a session error');
  assert.ok(p.updates.received > m.updates, 'nrd saw no UPDATE');
  assert.equal(await downs(peer), m.downs, 'ExaBGP saw the session go down');
  // The witness was never withdrawn.
  const ch = await nrd.changes();
  assert.equal(ch.withdrawn[`1/1 ${WITNESS}`] ?? 0, 0, 'witness route withdrawn');
  assert.equal(ch.table[`1/1 ${WITNESS}`]?.peer, EXA);
}

/** NOTIFICATIONs ExaBGP received from nrd on `local`'s session. */
const notificationsTo = async (local: string): Promise<Array<{ code: number; subcode: number }>> =>
  (await exa.events())
    .filter((e) => e.type === 'notification' && e.neighbor?.direction === 'receive' && e.neighbor.address?.local === local)
    // Each NOTIFICATION comes twice: raw (api `packets`) and parsed; the parsed one has the codes.
    .flatMap((e) => (e.neighbor?.notification ? [e.neighbor.notification] : []));

async function announceBaseline(): Promise<void> {
  await send(EXA, `announce route ${WITNESS} next-hop ${EXA}`);
  await send(EXA, `announce route ${WITNESS6} next-hop ${EXA6_NH}`);
  await waitPresent([WITNESS, WITNESS6], EXA, 'baseline routes from ExaBGP');
}

before(async () => {
  topo = new Topology('nrdt-exa-mal');
  nrdHost = await topo.host('nrd');
  exaHost = await topo.host('exa');
  await topo.link(nrdHost, exaHost, { addrA: [`${NRD}/24`], addrB: [`${EXA}/24`, `${RR}/24`, `${OLD}/24`] });
  exa = await startExaBgp(exaHost, {
    neighbors: [
      { address: NRD, localAddress: EXA, localAs: 65000, peerAs: 65001, families: ['ipv4', 'ipv6'] },
      { address: NRD, localAddress: RR, localAs: 65001, peerAs: 65001 },
      { address: NRD, localAddress: OLD, localAs: 65002, peerAs: 65001, asn4: false },
    ],
  });
  const site = siteConfig({
    address: NRD,
    asn: 65001,
    podCIDRs: ['10.244.1.0/24'],
    stateDir: topo.tmpdir('state'),
    peers: [
      { address: EXA, asn: 65000, families: ['ipv4', 'ipv6'] },
      { address: RR, asn: 65001, families: ['ipv4'], rrClient: true },
      { address: OLD, asn: 65002, families: ['ipv4'] },
    ],
  });
  nrd = await SpeakerProc.start(nrdHost, { site }, topo.tmpdir('sock'));
  for (const p of [EXA, RR, OLD]) {
    await nrd.waitEstablished(p);
    await exa.waitUp(p);
  }
  await announceBaseline();
});

after(async () => {
  await topo?.destroy();
});

/** Announce `prefixes` validly in one UPDATE, then again in one UPDATE carrying `attr`: all must go. */
async function treatAsWithdraw(attr: string, prefixes: string[]): Promise<void> {
  await send(EXA, `announce attributes next-hop ${EXA} nlri ${prefixes.join(' ')}`);
  await waitPresent(prefixes, EXA, `valid ${prefixes.join(' ')}`);
  const m = await mark(EXA);
  await send(EXA, `announce attributes next-hop ${EXA} attribute ${attr} nlri ${prefixes.join(' ')}`);
  await waitAbsent(prefixes, `treat-as-withdraw of ${prefixes.join(' ')} (${attr})`);
  await assertNoReset(EXA, m);
  // All of them travelled in that one malformed UPDATE.
  assert.equal((await nrd.peer(EXA)).updates.received, m.updates + 1);
}

test('(a) bad ORIGIN value, bad ORIGIN length, bad well-known flags: treat-as-withdraw of the whole UPDATE, session stays up', async () => {
  // RFC 7606 §7.1: ORIGIN of the wrong length or an undefined value.
  await treatAsWithdraw('[0x01 0x40 0x05]', ['10.244.21.0/24', '10.244.22.0/24']);
  await treatAsWithdraw('[0x01 0x40 0x0000]', ['10.244.23.0/24', '10.244.24.0/24']);
  // RFC 7606 §3 c: a well-known attribute with the Optional bit set.
  await treatAsWithdraw('[0x01 0xc0 0x00]', ['10.244.25.0/24']);
  // RFC 7606 §7.4 and §7.8: MED and COMMUNITIES of a wrong length.
  await treatAsWithdraw('[0x04 0x80 0x0001]', ['10.244.26.0/24']);
  await treatAsWithdraw('[0x08 0xc0 0x000100]', ['10.244.27.0/24']);
  // Nothing else moved: the IPv6 route of the same session is there too.
  assert.equal(await has(WITNESS6, EXA), true);
});

test('(b) unknown optional transitive attribute is kept and passed on with the Partial bit; a non-transitive one is not', async () => {
  const prefix = '10.244.40.0/24';
  const m = await mark(EXA);
  await send(EXA, `announce route ${prefix} next-hop ${EXA} attribute [0xf1 0xc0 0xdeadbeef] attribute [0xf2 0x80 0x0102]`);
  await waitPresent([prefix], EXA, 'route with unknown optional attributes');
  await assertNoReset(EXA, m);
  // nrd reflects it to its iBGP client RR: find the raw UPDATE ExaBGP received there.
  const nlriHex = '180AF428'; // 24, 10.244.40
  const raw = await waitFor(
    async () =>
      (await exa.events()).find(
        (e: ExaEvent) =>
          e.type === 'update' && e.neighbor?.address?.local === RR && e.neighbor.message?.body?.toUpperCase().endsWith(nlriHex) === true,
      ),
    { timeoutMs: 10_000, what: 'the route passed on to the route-reflector client' },
  );
  const body = (raw.neighbor?.message?.body ?? '').toUpperCase();
  // Flags 0xE0: optional, transitive, partial (RFC 4271 §5: set by a speaker that passes on an
  // attribute it does not recognise); type 0xF1, length 4, the value unchanged.
  assert.match(body, /E0F104DEADBEEF/, `transitive attribute not passed on with the Partial bit: ${body}`);
  // The optional non-transitive one stays here.
  assert.doesNotMatch(body, /F2020102/, `non-transitive attribute passed on: ${body}`);
});

test('(d) repeated AS4_PATH: the first copy counts, later ones are discarded (RFC 7606 §3 g)', async () => {
  // ExaBGP on a two-octet session writes AS_PATH [65002 23456] + AS4_PATH [65002 4200000000] for
  // the path [65002 4200000000]; the generic attribute adds a second AS4_PATH [4200000001].
  const as4 = '[0x11 0xc0 0x0201FA56EA01]';
  // Control: the generic AS4_PATH alone is honoured (RFC 6793 §4.2.3 merge: the AS_PATH head
  // the AS4_PATH lacks, then the AS4_PATH), so a repeat below really carries a different path.
  await send(OLD, `announce route 10.244.34.0/24 next-hop ${OLD} as-path [65002 65010] attribute ${as4}`);
  await send(OLD, `announce route 10.244.33.0/24 next-hop ${OLD} as-path [65002 4200000000] attribute ${as4}`);
  await waitPresent(['10.244.33.0/24', '10.244.34.0/24'], OLD, 'AS4_PATH routes');
  const path = async (p: string): Promise<string | undefined> => (await nrd.routes(`peer=${OLD}&prefix=${p}`)).routes[0]?.paths[0]?.asPath;
  assert.equal(await path('10.244.34.0/24'), '65002 4200000001');
  assert.equal(await path('10.244.33.0/24'), '65002 4200000000');
  assert.equal((await nrd.peer(OLD)).state, 'Established');
  assert.equal(await downs(OLD), 0);
});

test('(d) malformed AS_PATH: overrun, bad segment type, confederation from eBGP, AS 0: treat-as-withdraw', async () => {
  // RFC 7606 §7.2 (and RFC 7607 for AS 0).
  await treatAsWithdraw('[0x02 0x40 0x02030000fde8]', ['10.244.50.0/24', '10.244.51.0/24']);
  await treatAsWithdraw('[0x02 0x40 0x07010000fde8]', ['10.244.52.0/24']);
  await treatAsWithdraw('[0x02 0x40 0x03010000fde8]', ['10.244.53.0/24']);
  await treatAsWithdraw('[0x02 0x40 0x02020000fde800000000]', ['10.244.54.0/24']);
});

test('(e) bad NEXT_HOP (0.0.0.0, multicast): treat-as-withdraw', async () => {
  for (const [nh, prefix] of [
    ['0.0.0.0', '10.244.60.0/24'],
    ['224.0.0.5', '10.244.61.0/24'],
  ] as const) {
    await send(EXA, `announce route ${prefix} next-hop ${EXA}`);
    await waitPresent([prefix], EXA, `valid ${prefix}`);
    const m = await mark(EXA);
    await send(EXA, `announce route ${prefix} next-hop ${nh}`);
    await waitAbsent([prefix], `treat-as-withdraw of ${prefix} with NEXT_HOP ${nh}`);
    await assertNoReset(EXA, m);
  }
});

test(
  '(e) NEXT_HOP that is nrd\'s own address: the route is ignored (RFC 4271 §6.3)',
  async () => {
    const prefix = '10.244.62.0/24';
    const m = await mark(EXA);
    await send(EXA, `announce route ${prefix} next-hop ${NRD}`);
    await barrier(EXA);
    await assertNoReset(EXA, m);
    assert.equal(await has(prefix), false, `route via nrd's own address ${NRD} accepted`);
  },
);

test('attribute discard: malformed AGGREGATOR and ATOMIC_AGGREGATE drop only the attribute, the route stays', async () => {
  // RFC 7606 §7.6, §7.7.
  const m = await mark(EXA);
  await send(EXA, `announce route 10.244.70.0/24 next-hop ${EXA} attribute [0x07 0xc0 0x0000fde8c0]`);
  await send(EXA, `announce route 10.244.71.0/24 next-hop ${EXA} attribute [0x06 0x40 0x01]`);
  await waitPresent(['10.244.70.0/24', '10.244.71.0/24'], EXA, 'routes with discarded attributes');
  await assertNoReset(EXA, m);
});

test('families not negotiated (RFC 4760 §7): a multicast MP_REACH / MP_UNREACH is ignored and never touches the unicast route', async () => {
  // Regression: SAFI 2 NLRI became unicast routes, and their withdrawal deleted ours.
  const m = await mark(EXA);
  const carrier = '10.244.90.0/24';
  // MP_REACH_NLRI: AFI 1, SAFI 2, next hop length 4, 192.0.2.2, reserved 0, NLRI 10.244.10.0/24 (the witness).
  const mpReach = '[0x0e 0x80 0x00010204c000020200180af40a]';
  await send(EXA, `announce route ${carrier} next-hop ${EXA} attribute ${mpReach}`);
  await waitPresent([carrier], EXA, 'unicast route of the UPDATE that carried the multicast NLRI');
  // MP_UNREACH_NLRI: AFI 1, SAFI 2, withdrawn 10.244.10.0/24.
  const mpUnreach = '[0x0f 0x80 0x000102180af40a]';
  await send(EXA, `announce route 10.244.91.0/24 next-hop ${EXA} attribute ${mpUnreach}`);
  await waitPresent(['10.244.91.0/24'], EXA, 'unicast route of the UPDATE that carried the multicast withdrawal');
  await barrier(EXA);
  const ch = await nrd.changes();
  const foreign = [...Object.keys(ch.table), ...Object.keys(ch.withdrawn)].filter((k) => !k.startsWith('1/1 ') && !k.startsWith('2/1 '));
  assert.deepEqual(foreign, [], 'a route of a family never negotiated reached the Loc-RIB');
  const witness = await nrd.routes(`family=ipv4&prefix=${WITNESS}`);
  assert.equal(witness.routes[0]?.paths.length, 1);
  await assertNoReset(EXA, m);
});

test('(d) a repeated MP_REACH_NLRI resets the session with NOTIFICATION 3/1 (RFC 7606 §3 g); the session comes back', async () => {
  const before = await mark(EXA);
  const upEvents = (await exa.events()).length;
  const oldRoute = '10.244.33.0/24';
  assert.equal(await has(oldRoute, OLD), true);
  // ExaBGP writes its own MP_REACH for the route after the generic one (AFI 2 SAFI 1, next hop
  // 2001:db8::2, reserved 0, fd00:244:0:51::/64).
  const mpReach = '[0x0e 0x80 0x0002011020010db80000000000000000000000020040fd00024400000051]';
  await send(EXA, `announce route fd00:244:0:50::/64 next-hop ${EXA6_NH} attribute ${mpReach}`);
  const n = await waitFor(async () => (await notificationsTo(EXA))[0], { timeoutMs: 10_000, what: 'NOTIFICATION at ExaBGP' }).catch(
    async (e: Error) => {
      throw new Error(`${e.message}\npeer: ${JSON.stringify(await nrd.peer(EXA))}\n--- ExaBGP log ---\n${(await exa.log()).slice(-3000)}`);
    },
  );
  assert.deepEqual({ code: n.code, subcode: n.subcode }, { code: 3, subcode: 1 });
  const p = await nrd.peer(EXA);
  assert.equal(p.lastError?.kind, 'notification-sent');
  assert.equal(p.lastError?.notification?.code, 3);
  assert.equal(p.lastError?.notification?.subcode, 1);
  // No graceful restart with this ExaBGP: its routes go at once, nobody else's do.
  await waitFor(async () => ((await nrd.changes()).withdrawn[`1/1 ${WITNESS}`] ?? 0) > 0, { timeoutMs: 10_000, what: 'witness withdrawn by the reset' });
  assert.equal(await has('fd00:244:0:50::/64'), false);
  assert.equal(await has('fd00:244:0:51::/64'), false);
  assert.equal(await has(oldRoute, OLD), true);
  assert.ok((await downs(EXA)) > before.downs);
  // nrd connects again; ExaBGP (adj-rib-out off) does not replay the bad UPDATE.
  await nrd.waitEstablished(EXA);
  await exa.waitUp(EXA, { since: upEvents });
  await announceBaseline();
  await barrier(EXA);
  assert.equal((await notificationsTo(EXA)).length, 1, 'another NOTIFICATION after the reconnect');
});

test('(c) unrecognised well-known attribute: the UPDATE\'s routes are withdrawn, the session stays (nrd departs from RFC 4271 §6.3 like BIRD; see attributes.ts)', async () => {
  const before = (await notificationsTo(EXA)).length;
  const downsBefore = await downs(EXA);
  const prefix = '10.244.80.0/24';
  await send(EXA, `announce route ${prefix} next-hop ${EXA}`);
  await waitFor(() => has(prefix, EXA), { timeoutMs: 10_000, what: `${prefix} learned first` });
  await send(EXA, `announce route ${prefix} next-hop ${EXA} attribute [0xf3 0x40 0x01]`);
  // A valid route right behind it: seen by nrd on the same session means no reset happened.
  const after = '10.244.81.0/24';
  await send(EXA, `announce route ${after} next-hop ${EXA}`);
  await waitFor(() => has(after, EXA), { timeoutMs: 10_000, what: `${after} learned on the same session` });
  assert.equal(await has(prefix), false, `${prefix} withdrawn by the malformed UPDATE`);
  assert.equal((await notificationsTo(EXA)).length, before, 'no NOTIFICATION');
  assert.equal(await downs(EXA), downsBefore, 'no session reset');
});
