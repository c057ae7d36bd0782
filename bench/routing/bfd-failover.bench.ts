// Benchmark: failover of nrd when a node's link to its top-of-rack router fails silently, with BFD
// (RFC 5880/5881, 300 ms × 3 on both ends) against the BGP hold timer alone, in one namespace
// fabric and one run (test/lib/fabric.ts). The cut (link-cut.ts) drops every frame on the ToR's
// interface towards the node, both ways: no TCP reset, no NOTIFICATION, no carrier change, so
// only BFD or the hold timer notices. The BGP hold time is 9 s on both ends (BIRD keepalive 1 s,
// nrd keepalive 3 s) so that the hold-timer side finishes in seconds; with a production hold time
// of 90 s or more its figures scale with it, BFD's do not. The nodes also share an underlay router,
// so VXLAN between them works while the ToR link is cut. Measured per round and pair:
//   failover time  cut → the VXLAN route in the FIB (ip -ts monitor route), on the cut node (its
//                  own BFD or hold timer) and on the remote node (the ToR's, then the withdraw);
//   pings lost     ping -i 0.1 pod → pod from the cut until both ends are on VXLAN (+1 s).
// Pairs: n1 → n2 with BFD, n3 → n4 without; rounds alternate between them. Prints medians and
// ratios, writes bench/results/bfd-failover.json. Root.
// Usage: node bfd-failover.bench.js [--rounds N] [--hold-time S]
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { Fabric, ROOT, RouteMonitor, VXLAN_DEVICE, startPing, type FabricNode } from '../../test/lib/fabric.js';
import { addUnderlayRouter, cutTorLink, healTorLink, underlaySite } from '../../test/lib/link-cut.js';
import { sleep, waitFor } from '../../test/lib/wait.js';

const args = process.argv.slice(2);
const arg = (name: string, dflt: number): number => {
  const i = args.indexOf(name);
  return i >= 0 && args[i + 1] !== undefined ? Number(args[i + 1]) : dflt;
};
const ROUNDS = arg('--rounds', 3);
const HOLD_TIME_S = arg('--hold-time', 9);
const HOLD_DOWN_S = 2;
const PING_INTERVAL_S = 0.1;
const BFD = { intervalMs: 300, multiplier: 3 };
const RESULTS = join(ROOT, 'bench', 'results', 'bfd-failover.json');

/** `[2026-11-24T22:16:03.123456] …` → epoch ms (ip prints local time with microseconds). */
function monitorTime(line: string): number | undefined {
  const m = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?\]/.exec(line);
  if (!m) return undefined;
  return new Date(m[1]!).getTime() + (m[2] ? Number(m[2]) * 1000 : 0);
}

/** Time of the first monitor line that puts `prefix` on the VXLAN device, or undefined. */
function firstVxlan(lines: readonly string[], prefix: string): number | undefined {
  for (const l of lines) {
    const body = l.replace(/^\[[^\]]*\]\s*/, '');
    if (body.startsWith(`${prefix} `) && body.includes(`dev ${VXLAN_DEVICE}`)) return monitorTime(l);
  }
  return undefined;
}

async function via(n: FabricNode, prefix: string): Promise<'vxlan' | 'native' | 'none'> {
  const r = await n.kernelRoute(prefix);
  if (!r) return 'none';
  const devs = r.nexthops?.length ? r.nexthops.map((h) => h.dev) : [r.dev];
  return devs.includes(VXLAN_DEVICE) ? 'vxlan' : 'native';
}

interface Round {
  cutNodeMs: number;
  remoteNodeMs: number;
  lost: number;
  sent: number;
}

const median = (xs: number[]): number => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  return s.length ? s[Math.floor((s.length - 1) / 2)]! : NaN;
};
const fmt = (x: number, d = 0): string => (Number.isFinite(x) ? x.toFixed(d) : 'n/a');

/** One cut of b's ToR link while a's pod pings b's pod; heals and waits for native again. */
async function round(fabric: Fabric, a: FabricNode, b: FabricNode): Promise<Round> {
  const monA = new RouteMonitor(a.host);
  const monB = new RouteMonitor(b.host);
  await monA.ready();
  const ping = startPing(a.pod!.host, b.pod!.ip, { intervalS: PING_INTERVAL_S });
  let r: Round;
  let pinging = true;
  try {
    await sleep(500);
    const t0 = Date.now();
    await cutTorLink(fabric, b);
    await waitFor(async () => (await via(a, b.cidr!)) === 'vxlan' && (await via(b, a.cidr!)) === 'vxlan', {
      timeoutMs: HOLD_TIME_S * 1000 + 20_000,
      intervalMs: 20,
      what: `${a.name} and ${b.name} on VXLAN after the cut`,
    });
    await sleep(1000);
    const counts = await ping.stop();
    pinging = false;
    const [la, lb] = [await monA.stop(), await monB.stop()];
    const ta = firstVxlan(la, b.cidr!);
    const tb = firstVxlan(lb, a.cidr!);
    r = { cutNodeMs: tb !== undefined ? tb - t0 : NaN, remoteNodeMs: ta !== undefined ? ta - t0 : NaN, lost: counts.lost, sent: counts.sent };
  } finally {
    await healTorLink(fabric, b);
    if (pinging) await ping.stop().catch(() => undefined);
  }
  await fabric.tors[0]!.bird.waitEstablished(b.protocol, 60_000);
  await waitFor(async () => (await via(a, b.cidr!)) === 'native' && (await via(b, a.cidr!)) === 'native', {
    timeoutMs: 60_000,
    intervalMs: 100,
    what: `${a.name} and ${b.name} native again`,
  });
  return r;
}

async function main(): Promise<void> {
  const fabric = Fabric.use(() => undefined, {
    tag: 'bench-bfd',
    tors: 1,
    mode: 'auto',
    holdDown: HOLD_DOWN_S,
    holdTime: HOLD_TIME_S,
    start: false,
    bfd: BFD,
    nodes: [1, 2, 3, 4].map((i) => ({ site: underlaySite(i), bfd: i <= 2 })),
  });
  try {
    await fabric.build();
    const [n1, n2, n3, n4] = fabric.nodes as [FabricNode, FabricNode, FabricNode, FabricNode];
    await addUnderlayRouter(fabric, fabric.nodes);
    for (const n of fabric.nodes) await n.start();
    await fabric.addPods();
    await fabric.waitSessions();
    await Promise.all(fabric.nodes.map((n) => n.waitReady()));
    for (const [a, b] of [[n1, n2], [n3, n4]] as const) {
      await waitFor(async () => (await via(a, b.cidr!)) === 'native' && (await via(b, a.cidr!)) === 'native', { timeoutMs: 30_000, what: `${a.name} ↔ ${b.name} native` });
    }
    const bfd: Round[] = [];
    const hold: Round[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      bfd.push(await round(fabric, n1, n2));
      hold.push(await round(fabric, n3, n4));
      const [x, y] = [bfd[i]!, hold[i]!];
      console.log(
        `round ${i + 1}/${ROUNDS}: BFD cut node ${fmt(x.cutNodeMs)} ms, remote ${fmt(x.remoteNodeMs)} ms, lost ${x.lost}/${x.sent}; ` +
          `hold timer cut node ${fmt(y.cutNodeMs)} ms, remote ${fmt(y.remoteNodeMs)} ms, lost ${y.lost}/${y.sent}`,
      );
    }
    const m = (rs: Round[], k: keyof Round): number => median(rs.map((r) => r[k]));
    const worst = (rs: Round[]): number => median(rs.map((r) => Math.max(r.cutNodeMs, r.remoteNodeMs)));
    const ratio = (x: number, y: number): string => (y > 0 ? `${fmt(x / y, 1)}x` : `n/a (${fmt(x)} vs ${fmt(y)})`);
    console.log(`\nBFD failover: silent cut of a node's ToR link (nftables drop both ways), BFD ${BFD.intervalMs} ms × ${BFD.multiplier} vs BGP hold time ${HOLD_TIME_S} s; ping -i ${PING_INTERVAL_S} pod → pod; median of ${ROUNDS} rounds`);
    console.log(`  BFD         cut → VXLAN: ${fmt(m(bfd, 'cutNodeMs'))} ms on the cut node, ${fmt(m(bfd, 'remoteNodeMs'))} ms on the remote node; pings lost ${m(bfd, 'lost')}`);
    console.log(`  hold timer  cut → VXLAN: ${fmt(m(hold, 'cutNodeMs'))} ms on the cut node, ${fmt(m(hold, 'remoteNodeMs'))} ms on the remote node; pings lost ${m(hold, 'lost')}`);
    console.log(`  ratio failover time (both ends on VXLAN), hold timer ÷ BFD: ${ratio(worst(hold), worst(bfd))}`);
    console.log(`  ratio pings lost, hold timer ÷ BFD: ${ratio(m(hold, 'lost'), m(bfd, 'lost'))}`);
    const okTime = worst(bfd) < 1000;
    const okLoss = m(bfd, 'lost') < 10;
    console.log(`  target BFD < 1000 ms: ${okTime ? 'met' : 'MISSED'}; fewer than 10 pings lost: ${okLoss ? 'met' : 'MISSED'}`);
    mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
    writeFileSync(
      RESULTS,
      JSON.stringify(
        {
          bench: 'routing/bfd-failover',
          date: new Date().toISOString(),
          machine: { kernel: release(), cpus: cpus().length, quiet: false, note: 'shared machine, other jobs running' },
          params: { rounds: ROUNDS, bfd: BFD, holdTimeS: HOLD_TIME_S, holdDownS: HOLD_DOWN_S, pingIntervalS: PING_INTERVAL_S },
          medians: {
            bfd: { cutNodeMs: m(bfd, 'cutNodeMs'), remoteNodeMs: m(bfd, 'remoteNodeMs'), bothMs: worst(bfd), pingsLost: m(bfd, 'lost') },
            holdTimer: { cutNodeMs: m(hold, 'cutNodeMs'), remoteNodeMs: m(hold, 'remoteNodeMs'), bothMs: worst(hold), pingsLost: m(hold, 'lost') },
          },
          ratios: { failoverHoldOverBfd: worst(hold) / worst(bfd), pingsLostHoldOverBfd: m(bfd, 'lost') > 0 ? m(hold, 'lost') / m(bfd, 'lost') : null },
          targets: { bfdUnder1s: okTime, bfdUnder10PingsLost: okLoss },
          rounds: { bfd, holdTimer: hold },
        },
        null,
        2,
      ) + '\n',
    );
    console.log(`results: ${RESULTS}`);
  } finally {
    await fabric.teardown();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
