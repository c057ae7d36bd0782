// Benchmark: failover of nrd when a node's BGP path is lost at the top-of-rack router (BIRD
// `disable` of the session: NOTIFICATION, withdraw to the other nodes), in a namespace fabric
// (test/lib/fabric.ts). Measured per round:
//   failover time  `birdc disable` → the VXLAN route in the FIB (ip -ts monitor route timestamps),
//                  on the remote node (withdraw path) and on the cut node (session-down path);
//   packets lost   ping -i 0.01 pod → pod during failover and during failback (enable → native
//                  again after the hold-down).
// Baseline in the same run and fabric: two nodes running BIRD as a plain BGP speaker (routes
// exported to the kernel, like static routes towards the ToR: no fallback path). For them the
// same cut is a withdrawal (route removed from the FIB) and the pod traffic is lost for as long
// as the session stays down. Ratios compare packets lost over the same outage.
// Root. Usage: node failover.bench.js [--rounds N] [--outage-ms MS] [--hold-down S]
import { Fabric, RouteMonitor, VXLAN_DEVICE, startPing, type FabricNode } from '../../test/lib/fabric.js';
import { sleep, waitFor } from '../../test/lib/wait.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : dflt;
};
const ROUNDS = arg('--rounds', 3);
const OUTAGE_MS = arg('--outage-ms', 3000);
const HOLD_DOWN_S = arg('--hold-down', 2);
const PING_INTERVAL_S = 0.01;

/** `[2026-11-24T22:16:03.123456] …` → epoch ms (ip prints local time with microseconds). */
function monitorTime(line: string): number | undefined {
  const m = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?\]/.exec(line);
  if (!m) return undefined;
  const base = new Date(m[1]!).getTime();
  return base + (m[2] ? Number(m[2]) * 1000 : 0);
}

/** Time of the first monitor line for `prefix` that satisfies `pred`, or undefined. */
function firstEvent(lines: readonly string[], prefix: string, pred: (body: string) => boolean): number | undefined {
  for (const l of lines) {
    const body = l.replace(/^\[[^\]]*\]\s*/, '');
    const bare = body.replace(/^Deleted /, '');
    if (!bare.startsWith(`${prefix} `)) continue;
    if (pred(body)) return monitorTime(l);
  }
  return undefined;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};
const fmt = (x: number, d = 1): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

async function kernelVia(n: FabricNode, prefix: string): Promise<'vxlan' | 'native' | 'none'> {
  const r = await n.kernelRoute(prefix);
  if (!r) return 'none';
  const devs = r.nexthops?.length ? r.nexthops.map((h) => h.dev) : [r.dev];
  return devs.includes(VXLAN_DEVICE) ? 'vxlan' : 'native';
}

interface NrdRound {
  remoteFailoverMs: number;
  cutFailoverMs: number;
  lostFailover: number;
  sentFailover: number;
  lostFailback: number;
  sentFailback: number;
  failbackMs: number;
}

interface BirdRound {
  withdrawMs: number;
  lostOutage: number;
  sentOutage: number;
  lostRecovery: number;
  recoveryMs: number;
}

async function main(): Promise<void> {
  // Torn down in the finally below (and by the topology's exit hook on a signal).
  const fabric = Fabric.use(() => undefined, {
    tag: 'bench-failover',
    tors: 1,
    mode: 'auto',
    holdDown: HOLD_DOWN_S,
    nodes: [
      { podCIDR: '10.244.1.0/24' },
      { podCIDR: '10.244.2.0/24' },
      { speaker: 'bird', podCIDR: '10.244.201.0/24' },
      { speaker: 'bird', podCIDR: '10.244.202.0/24' },
    ],
  });
  try {
    await fabric.build();
    await fabric.addPods();
    await fabric.waitSessions();
    const [a, b, ba, bb] = fabric.nodes as [FabricNode, FabricNode, FabricNode, FabricNode];
    const tor = fabric.tors[0]!.bird;
    await Promise.all([a.waitReady(), b.waitReady()]);
    await waitFor(async () => (await kernelVia(a, b.cidr!)) === 'native' && (await kernelVia(b, a.cidr!)) === 'native', {
      timeoutMs: 30_000,
      what: 'nrd nodes native to each other',
    });
    await waitFor(async () => (await kernelVia(ba, bb.cidr!)) === 'native', { timeoutMs: 30_000, what: 'BIRD nodes routes' });

    const nrdRounds: NrdRound[] = [];
    const birdRounds: BirdRound[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // --- nrd: cut b's session at the ToR.
      {
        const monA = new RouteMonitor(a.host);
        const monB = new RouteMonitor(b.host);
        await monA.ready();
        const ping = startPing(a.pod!.host, b.pod!.ip, { intervalS: PING_INTERVAL_S });
        await sleep(500);
        const t0 = Date.now();
        await tor.birdc(`disable ${b.protocol}`);
        await waitFor(async () => (await kernelVia(a, b.cidr!)) === 'vxlan' && (await kernelVia(b, a.cidr!)) === 'vxlan', {
          timeoutMs: 20_000,
          intervalMs: 20,
          what: 'both sides on VXLAN',
        });
        const rest = OUTAGE_MS - (Date.now() - t0);
        if (rest > 0) await sleep(rest);
        const f = await ping.stop();
        const back = startPing(a.pod!.host, b.pod!.ip, { intervalS: PING_INTERVAL_S });
        const t1 = Date.now();
        await tor.birdc(`enable ${b.protocol}`);
        await waitFor(async () => (await kernelVia(a, b.cidr!)) === 'native' && (await kernelVia(b, a.cidr!)) === 'native', {
          timeoutMs: 60_000,
          intervalMs: 20,
          what: 'both sides native again',
        });
        const failbackMs = Date.now() - t1;
        await sleep(500);
        const g = await back.stop();
        const la = await monA.stop();
        const lb = await monB.stop();
        const isVx = (body: string): boolean => !body.startsWith('Deleted') && body.includes(`dev ${VXLAN_DEVICE}`);
        const ta = firstEvent(la, b.cidr!, isVx);
        const tb = firstEvent(lb, a.cidr!, isVx);
        nrdRounds.push({
          remoteFailoverMs: ta !== undefined ? ta - t0 : NaN,
          cutFailoverMs: tb !== undefined ? tb - t0 : NaN,
          lostFailover: f.lost,
          sentFailover: f.sent,
          lostFailback: g.lost,
          sentFailback: g.sent,
          failbackMs,
        });
      }
      // --- baseline: cut bb's session at the ToR; BIRD nodes have no fallback path.
      {
        const mon = new RouteMonitor(ba.host);
        await mon.ready();
        const ping = startPing(ba.pod!.host, bb.pod!.ip, { intervalS: PING_INTERVAL_S });
        await sleep(500);
        const t0 = Date.now();
        await tor.birdc(`disable ${bb.protocol}`);
        await waitFor(async () => (await kernelVia(ba, bb.cidr!)) === 'none', { timeoutMs: 20_000, intervalMs: 20, what: 'BIRD node route withdrawn' });
        const rest = OUTAGE_MS - (Date.now() - t0);
        if (rest > 0) await sleep(rest);
        const f = await ping.stop();
        const back = startPing(ba.pod!.host, bb.pod!.ip, { intervalS: PING_INTERVAL_S });
        const t1 = Date.now();
        await tor.birdc(`enable ${bb.protocol}`);
        await waitFor(async () => (await kernelVia(ba, bb.cidr!)) === 'native', { timeoutMs: 60_000, intervalMs: 20, what: 'BIRD node route back' });
        const recoveryMs = Date.now() - t1;
        await sleep(500);
        const g = await back.stop();
        const lines = await mon.stop();
        const tw = firstEvent(lines, bb.cidr!, (body) => body.startsWith('Deleted'));
        birdRounds.push({ withdrawMs: tw !== undefined ? tw - t0 : NaN, lostOutage: f.lost, sentOutage: f.sent, lostRecovery: g.lost, recoveryMs });
      }
      process.stdout.write(
        `round ${round + 1}/${ROUNDS}: nrd failover ${fmt(nrdRounds[round]!.remoteFailoverMs)} ms (remote) / ${fmt(nrdRounds[round]!.cutFailoverMs)} ms (cut node), ` +
          `lost ${nrdRounds[round]!.lostFailover} + ${nrdRounds[round]!.lostFailback}; BIRD withdraw ${fmt(birdRounds[round]!.withdrawMs)} ms, lost ${birdRounds[round]!.lostOutage} + ${birdRounds[round]!.lostRecovery}\n`,
      );
    }

    const m = <T>(rs: T[], k: keyof T): number => median(rs.map((r) => r[k] as unknown as number));
    const nrdLost = m(nrdRounds, 'lostFailover') + m(nrdRounds, 'lostFailback');
    const birdLost = m(birdRounds, 'lostOutage') + m(birdRounds, 'lostRecovery');
    const ms = (pkts: number): string => `${fmt(pkts * PING_INTERVAL_S * 1000, 0)} ms`;
    console.log(`\nfailover: BGP session of one node disabled at the ToR for ~${OUTAGE_MS} ms, hold-down ${HOLD_DOWN_S} s, ping every ${PING_INTERVAL_S * 1000} ms; median of ${ROUNDS} rounds`);
    console.log(`  nrd   path lost → VXLAN route in the FIB: ${fmt(m(nrdRounds, 'remoteFailoverMs'))} ms on the remote node (withdraw), ${fmt(m(nrdRounds, 'cutFailoverMs'))} ms on the cut node (session down)`);
    console.log(`  nrd   packets lost: failover ${m(nrdRounds, 'lostFailover')} of ${m(nrdRounds, 'sentFailover')} (≈${ms(m(nrdRounds, 'lostFailover'))}), failback ${m(nrdRounds, 'lostFailback')} of ${m(nrdRounds, 'sentFailback')} (enable → native in ${fmt(m(nrdRounds, 'failbackMs'), 0)} ms)`);
    console.log(`  BIRD  path lost → route withdrawn from the FIB: ${fmt(m(birdRounds, 'withdrawMs'))} ms (no fallback)`);
    console.log(`  BIRD  packets lost: outage ${m(birdRounds, 'lostOutage')} of ${m(birdRounds, 'sentOutage')} (≈${ms(m(birdRounds, 'lostOutage'))}), recovery ${m(birdRounds, 'lostRecovery')} (enable → route back in ${fmt(m(birdRounds, 'recoveryMs'), 0)} ms)`);
    console.log(`  ratio packets lost, BIRD/static-like baseline ÷ nrd: ${nrdLost > 0 ? fmt(birdLost / nrdLost, 1) + 'x' : `∞ (nrd lost none, baseline ${birdLost})`}`);
    console.log(`  ratio reaction time, nrd failover ÷ BIRD withdraw: ${fmt(m(nrdRounds, 'remoteFailoverMs') / m(birdRounds, 'withdrawMs'), 2)}x`);
  } finally {
    await fabric.teardown();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
