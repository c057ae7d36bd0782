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
import { Fabric, RouteMonitor, VXLAN_DEVICE, parsePing, type FabricNode } from '../../test/lib/fabric.js';
import type { Host } from '../../test/lib/netns.js';
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

interface PingResult {
  sent: number;
  received: number;
  lost: number;
  /** Longest time without a reply (ms), run start and stop included: the interruption the pod saw. */
  maxGapMs: number;
}

/**
 * ping -D -i INTERVAL in the background until stop(). Per-reply timestamps give the longest gap,
 * which counts the outage even when ping slows down on ICMP errors (it does on "net unreachable").
 */
function pingRun(from: Host, to: string): { stop(): Promise<PingResult> } {
  const proc = from.spawn(['ping', '-n', '-D', '-i', String(PING_INTERVAL_S), '-W', '1', to], { name: `${from.name}:ping`, captureBytes: 4 * 1024 * 1024 });
  const startedAt = Date.now();
  return {
    async stop() {
      const stoppedAt = Date.now();
      proc.signal('SIGINT');
      await proc.exited;
      const out = proc.output();
      // The run's start and end bound the gaps: an outage that outlasts the run counts in full.
      const replies = [...out.matchAll(/^\[(\d+\.\d+)\] \d+ bytes from/gm)].map((m) => Number(m[1]) * 1000);
      const times = [startedAt, ...replies, stoppedAt];
      let maxGapMs = 0;
      for (let i = 1; i < times.length; i++) maxGapMs = Math.max(maxGapMs, times[i]! - times[i - 1]!);
      return { ...parsePing(out), maxGapMs };
    },
  };
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
  gapFailoverMs: number;
  lostFailback: number;
  sentFailback: number;
  gapFailbackMs: number;
  /** enable at the ToR → session Established again. */
  establishedMs: number;
  /** enable at the ToR → both sides native again (includes the hold-down). */
  failbackMs: number;
}

interface BirdRound {
  withdrawMs: number;
  lostOutage: number;
  sentOutage: number;
  gapOutageMs: number;
  lostRecovery: number;
  establishedMs: number;
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
        const ping = pingRun(a.pod!.host, b.pod!.ip);
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
        const back = pingRun(a.pod!.host, b.pod!.ip);
        const t1 = Date.now();
        await tor.birdc(`enable ${b.protocol}`);
        await tor.waitEstablished(b.protocol, 60_000);
        const establishedMs = Date.now() - t1;
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
          gapFailoverMs: f.maxGapMs,
          lostFailback: g.lost,
          sentFailback: g.sent,
          gapFailbackMs: g.maxGapMs,
          establishedMs,
          failbackMs,
        });
      }
      // --- baseline: cut bb's session at the ToR; BIRD nodes have no fallback path.
      {
        const mon = new RouteMonitor(ba.host);
        await mon.ready();
        const ping = pingRun(ba.pod!.host, bb.pod!.ip);
        await sleep(500);
        const t0 = Date.now();
        await tor.birdc(`disable ${bb.protocol}`);
        await waitFor(async () => (await kernelVia(ba, bb.cidr!)) === 'none', { timeoutMs: 20_000, intervalMs: 20, what: 'BIRD node route withdrawn' });
        const rest = OUTAGE_MS - (Date.now() - t0);
        if (rest > 0) await sleep(rest);
        const f = await ping.stop();
        const back = pingRun(ba.pod!.host, bb.pod!.ip);
        const t1 = Date.now();
        await tor.birdc(`enable ${bb.protocol}`);
        await tor.waitEstablished(bb.protocol, 60_000);
        const establishedMs = Date.now() - t1;
        await waitFor(async () => (await kernelVia(ba, bb.cidr!)) === 'native', { timeoutMs: 60_000, intervalMs: 20, what: 'BIRD node route back' });
        const recoveryMs = Date.now() - t1;
        await sleep(500);
        const g = await back.stop();
        const lines = await mon.stop();
        const tw = firstEvent(lines, bb.cidr!, (body) => body.startsWith('Deleted'));
        birdRounds.push({
          withdrawMs: tw !== undefined ? tw - t0 : NaN,
          lostOutage: f.lost,
          sentOutage: f.sent,
          gapOutageMs: f.maxGapMs,
          lostRecovery: g.lost,
          establishedMs,
          recoveryMs,
        });
      }
      process.stdout.write(
        `round ${round + 1}/${ROUNDS}: nrd failover ${fmt(nrdRounds[round]!.remoteFailoverMs)} ms (remote) / ${fmt(nrdRounds[round]!.cutFailoverMs)} ms (cut node), ` +
          `lost ${nrdRounds[round]!.lostFailover} + ${nrdRounds[round]!.lostFailback}, gap ${fmt(nrdRounds[round]!.gapFailoverMs, 0)} ms; ` +
          `BIRD withdraw ${fmt(birdRounds[round]!.withdrawMs)} ms, lost ${birdRounds[round]!.lostOutage} + ${birdRounds[round]!.lostRecovery}, gap ${fmt(birdRounds[round]!.gapOutageMs, 0)} ms\n`,
      );
    }

    const m = <T>(rs: T[], k: keyof T): number => median(rs.map((r) => r[k] as unknown as number));
    const nrdLost = m(nrdRounds, 'lostFailover') + m(nrdRounds, 'lostFailback');
    const birdLost = m(birdRounds, 'lostOutage') + m(birdRounds, 'lostRecovery');
    const ratio = (x: number, y: number): string => (y > 0 ? `${fmt(x / y, 1)}x` : `∞ (${fmt(x, 0)} vs 0)`);
    console.log(`\nfailover: BGP session of one node disabled at the ToR for ~${OUTAGE_MS} ms, hold-down ${HOLD_DOWN_S} s, ping -i ${PING_INTERVAL_S} pod → pod; median of ${ROUNDS} rounds`);
    console.log(`  nrd   path lost → VXLAN route in the FIB: ${fmt(m(nrdRounds, 'remoteFailoverMs'))} ms on the remote node (withdraw), ${fmt(m(nrdRounds, 'cutFailoverMs'))} ms on the cut node (session down)`);
    console.log(`  nrd   failover: lost ${m(nrdRounds, 'lostFailover')} of ${m(nrdRounds, 'sentFailover')}, longest reply gap ${fmt(m(nrdRounds, 'gapFailoverMs'), 0)} ms`);
    console.log(`  nrd   failback: lost ${m(nrdRounds, 'lostFailback')} of ${m(nrdRounds, 'sentFailback')}, longest reply gap ${fmt(m(nrdRounds, 'gapFailbackMs'), 0)} ms; enable → Established ${fmt(m(nrdRounds, 'establishedMs'), 0)} ms, → native ${fmt(m(nrdRounds, 'failbackMs'), 0)} ms`);
    console.log(`  BIRD  path lost → route withdrawn from the FIB: ${fmt(m(birdRounds, 'withdrawMs'))} ms (BGP only: no fallback)`);
    console.log(`  BIRD  outage: lost ${m(birdRounds, 'lostOutage')} of ${m(birdRounds, 'sentOutage')} (ping slows down on ICMP unreachable), longest reply gap ${fmt(m(birdRounds, 'gapOutageMs'), 0)} ms`);
    console.log(`  BIRD  recovery: lost ${m(birdRounds, 'lostRecovery')}; enable → Established ${fmt(m(birdRounds, 'establishedMs'), 0)} ms, → route back ${fmt(m(birdRounds, 'recoveryMs'), 0)} ms`);
    console.log(`  ratio interruption (longest reply gap), BIRD baseline ÷ nrd failover: ${ratio(m(birdRounds, 'gapOutageMs'), m(nrdRounds, 'gapFailoverMs'))}`);
    console.log(`  ratio packets lost (outage + recovery), BIRD baseline ÷ nrd: ${ratio(birdLost, nrdLost)}`);
    console.log(`  ratio reaction time, nrd path lost → VXLAN ÷ BIRD path lost → withdrawn: ${fmt(m(nrdRounds, 'remoteFailoverMs') / m(birdRounds, 'withdrawMs'), 2)}x`);
    console.log(`  ratio re-establish time after enable, nrd ÷ BIRD: ${fmt(m(nrdRounds, 'establishedMs') / m(birdRounds, 'establishedMs'), 2)}x`);
  } finally {
    await fabric.teardown();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
