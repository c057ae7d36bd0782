// Benchmark of RIB ingest (RFC 4271 §9 Adj-RIB-In → Loc-RIB → change stream): a full IPv4 table
// in pre-decoded 800-prefix UPDATEs from one eBGP peer, applied and then flushed to a subscriber,
// against a baseline of plain Map.set of the same prefix strings measured in the same run.
// Wall time and process CPU time are both printed: on a shared machine CPU time is the steadier.
// --peers 2 adds a second peer sending the same table after the first (every prefix then runs the
// decision process); the baseline then sets each prefix twice.
// --compare DIR also runs another build of the RIB in the same run (DIR holds its compiled
// daemon/bgp/{rib,policy}, e.g. an earlier commit built elsewhere) and prints this/that.
// Usage: node --expose-gc dist/bench/bgp/rib-ingest.bench.js [--routes 1000000] [--repeat 3]
//        [--flush-every 0] [--peers 1] [--compare DIR]
import { pathToFileURL } from 'node:url';
import { PerformanceObserver, performance } from 'node:perf_hooks';
import { Rib } from '../../daemon/bgp/rib/rib.js';
import type { PeerInfo } from '../../daemon/bgp/rib/peer.js';
import { ImportPolicy } from '../../daemon/bgp/policy/import.js';
import { ExportPolicy } from '../../daemon/bgp/policy/export.js';
import type { Nlri, PathAttributes, UpdateMessage } from '../../daemon/bgp/types.js';

export const PREFIXES_PER_UPDATE = 800;
export const ATTRIBUTE_SETS = 300;
const LOCAL_AS = 65000;

export function benchPeer(n: number): PeerInfo {
  return {
    id: `192.0.2.${10 + n}`,
    address: `192.0.2.${10 + n}`,
    asn: 65100 + n,
    localAsn: LOCAL_AS,
    routerId: `198.51.100.${10 + n}`,
    type: 'ebgp',
    rrClient: false,
    families: ['1/1'],
    nextHopSelf: { ipv4: '192.0.2.1' },
  };
}

export function benchRib(): Rib {
  return new Rib(ribOptions(ImportPolicy, ExportPolicy));
}

/** What the benchmark uses of a RIB, so another build of it can run side by side. */
export interface BenchRib {
  subscribe(sub: { onRouteChanges(c: readonly unknown[]): void }): unknown;
  peerUp(info: PeerInfo, now: number): void;
  applyUpdate(peerId: string, u: UpdateMessage, now: number): unknown;
  flushChanges(): number;
  locRibSize(family: '1/1'): number;
}

function ribOptions(
  Import: new (o: { ranges: { prefix: string; maxLength: number }[] }) => unknown,
  Export: new (o: { originate: [] }) => unknown,
) {
  return {
    localAsn: LOCAL_AS,
    routerId: '192.0.2.1',
    importPolicy: new Import({ ranges: [{ prefix: '0.0.0.0/0', maxLength: 32 }] }) as ImportPolicy,
    exportPolicy: new Export({ originate: [] }) as ExportPolicy,
  };
}

export async function otherRib(dir: string): Promise<() => BenchRib> {
  const root = pathToFileURL(`${dir.replace(/\/$/, '')}/daemon/bgp/`).href;
  const rib = (await import(`${root}rib/rib.js`)) as { Rib: new (o: object) => BenchRib };
  const imp = (await import(`${root}policy/import.js`)) as { ImportPolicy: new (o: { ranges: { prefix: string; maxLength: number }[] }) => unknown };
  const exp = (await import(`${root}policy/export.js`)) as { ExportPolicy: new (o: { originate: [] }) => unknown };
  return () => new rib.Rib(ribOptions(imp.ImportPolicy, exp.ExportPolicy));
}

/** Route i: a /24 from 1.0.0.0 upwards (distinct for i < 2^24). */
export function prefixOf(i: number): string {
  const a = 0x01000000 + i * 256;
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.0/24`;
}

/**
 * Attribute set k as a decoder would build it: a fresh object per UPDATE (nothing shared between
 * messages), AS paths of 2–6 hops through the peer's AS, some MEDs and communities.
 */
export function attributesOf(k: number, peerAsn: number, nextHop: string): PathAttributes {
  const asns = [peerAsn];
  for (let h = 0; h < 1 + (k % 5); h++) asns.push(64512 + ((k * 7 + h * 13) % 1000));
  const a: PathAttributes = { origin: (k % 3) as 0 | 1 | 2, asPath: [{ type: 2, asns }], nextHop };
  if (k % 4 === 0) a.med = k;
  if (k % 2 === 0) a.communities = [(peerAsn << 16) >>> 0 | k, 0xfde80000 + (k % 50)].map((c) => c >>> 0);
  return a;
}

/** One UPDATE of the table: prefixes [first, first+count) with attribute set `set`. */
export function updateOf(first: number, count: number, set: number, peer: PeerInfo): UpdateMessage {
  const nlri: Nlri[] = new Array<Nlri>(count);
  for (let j = 0; j < count; j++) nlri[j] = { prefix: prefixOf(first + j) };
  return { type: 'update', withdrawn: [], attrs: attributesOf(set, peer.asn, peer.address), nlri };
}

export function buildTable(routes: number, peer: PeerInfo, setOffset = 0): UpdateMessage[] {
  const out: UpdateMessage[] = [];
  for (let first = 0, m = 0; first < routes; first += PREFIXES_PER_UPDATE, m++) {
    out.push(updateOf(first, Math.min(PREFIXES_PER_UPDATE, routes - first), (m + setOffset) % ATTRIBUTE_SETS, peer));
  }
  return out;
}

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

/** GC pauses (start ms, duration ms) as reported by the runtime, to split them by phase. */
const gcPauses: [number, number][] = [];
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) gcPauses.push([e.startTime, e.duration]);
}).observe({ entryTypes: ['gc'] });

function gcBetween(from: number, to: number): number {
  let ms = 0;
  for (const [start, d] of gcPauses) if (start >= from && start < to) ms += d;
  return ms;
}

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

function baseline(tables: readonly (readonly UpdateMessage[])[]): { ms: number; cpu: number } {
  const c0 = cpuMs();
  const t0 = process.hrtime.bigint();
  const m = new Map<string, Nlri>();
  for (const msgs of tables) for (const u of msgs) for (const n of u.nlri) m.set(n.prefix, n);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (m.size === 0) throw new Error('empty baseline');
  return { ms, cpu: cpuMs() - c0 };
}

interface RibRun {
  ingestMs: number;
  flushMs: number;
  cpu: number;
  delivered: number;
  from: number;
  to: number;
}

function ribRun(make: () => BenchRib, tables: readonly (readonly UpdateMessage[])[], peers: readonly PeerInfo[], flushEvery: number): RibRun {
  const rib = make();
  let delivered = 0;
  rib.subscribe({ onRouteChanges: (c: readonly unknown[]) => void (delivered += c.length) });
  for (const p of peers) rib.peerUp(p, 0);
  // A wall-clock time like the session's Date.now(): not a small integer.
  const now = Date.now();
  const from = performance.now();
  const c0 = cpuMs();
  const t0 = process.hrtime.bigint();
  for (let t = 0; t < tables.length; t++) {
    const msgs = tables[t]!;
    const id = peers[t]!.id;
    for (let i = 0; i < msgs.length; i++) {
      rib.applyUpdate(id, msgs[i]!, now);
      if (flushEvery > 0 && (i + 1) % flushEvery === 0) rib.flushChanges();
    }
  }
  const t1 = process.hrtime.bigint();
  rib.flushChanges();
  const t2 = process.hrtime.bigint();
  const cpu = cpuMs() - c0;
  if (rib.locRibSize('1/1') !== tables[0]!.reduce((n, u) => n + u.nlri.length, 0)) throw new Error('Loc-RIB incomplete');
  return { ingestMs: Number(t1 - t0) / 1e6, flushMs: Number(t2 - t1) / 1e6, cpu, delivered, from, to: performance.now() };
}

async function main(): Promise<void> {
  const routes = arg('--routes', 1_000_000);
  const repeat = arg('--repeat', 3);
  const flushEvery = arg('--flush-every', 0);
  const peerCount = arg('--peers', 1);
  const peers = Array.from({ length: peerCount }, (_, i) => benchPeer(i + 1));
  const cmpAt = process.argv.indexOf('--compare');
  const other = cmpAt >= 0 ? await otherRib(process.argv[cmpAt + 1]!) : null;
  let bestOther: RibRun | null = null;
  const tables = peers.map((p, i) => buildTable(routes, p, i * 7));
  console.log(
    `RIB ingest: ${routes} IPv4 prefixes, ${tables[0]!.length} UPDATEs of ≤${PREFIXES_PER_UPDATE}, ${ATTRIBUTE_SETS} attribute sets, ${peerCount} eBGP peer(s)` +
      (flushEvery > 0 ? `, flush every ${flushEvery} UPDATEs` : ', one flush at the end'),
  );
  let bestMap = { ms: Infinity, cpu: Infinity };
  let best: RibRun | null = null;
  for (let r = 0; r < repeat; r++) {
    gc();
    const m0 = performance.now();
    const map = baseline(tables);
    const m1 = performance.now();
    gc();
    const run = ribRun(benchRib, tables, peers, flushEvery);
    if (peerCount === 1 && run.delivered !== routes) throw new Error(`flush delivered ${run.delivered} changes, expected ${routes}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const total = run.ingestMs + run.flushMs;
    console.log(
      `  run ${r + 1}: Map.set ${map.ms.toFixed(0)} ms (cpu ${map.cpu.toFixed(0)}, GC ${gcBetween(m0, m1).toFixed(0)}) | ` +
        `RIB ingest ${run.ingestMs.toFixed(0)} + flush ${run.flushMs.toFixed(0)} = ${total.toFixed(0)} ms (cpu ${run.cpu.toFixed(0)}, GC ${gcBetween(run.from, run.to).toFixed(0)}) | ` +
        `ratio wall ${(total / map.ms).toFixed(2)} cpu ${(run.cpu / map.cpu).toFixed(2)}`,
    );
    if (map.ms < bestMap.ms) bestMap = map;
    if (!best || total < best.ingestMs + best.flushMs) best = run;
    if (other) {
      gc();
      const o = ribRun(other, tables, peers, flushEvery);
      await new Promise((resolve) => setTimeout(resolve, 50));
      const ot = o.ingestMs + o.flushMs;
      console.log(
        `         compared RIB ingest ${o.ingestMs.toFixed(0)} + flush ${o.flushMs.toFixed(0)} = ${ot.toFixed(0)} ms (cpu ${o.cpu.toFixed(0)}, GC ${gcBetween(o.from, o.to).toFixed(0)}) | ` +
          `this/compared wall ${(total / ot).toFixed(2)} cpu ${(run.cpu / o.cpu).toFixed(2)}`,
      );
      if (!bestOther || ot < bestOther.ingestMs + bestOther.flushMs) bestOther = o;
    }
  }
  const total = best!.ingestMs + best!.flushMs;
  const n = routes * peerCount;
  console.log(`best: Map.set ${bestMap.ms.toFixed(0)} ms (${((bestMap.ms * 1e6) / n).toFixed(0)} ns/route, cpu ${bestMap.cpu.toFixed(0)} ms)`);
  console.log(
    `best: RIB ${total.toFixed(0)} ms (${((total * 1e6) / n).toFixed(0)} ns/route; ingest ${best!.ingestMs.toFixed(0)} + flush ${best!.flushMs.toFixed(0)}; cpu ${best!.cpu.toFixed(0)} ms)`,
  );
  console.log(`ratio RIB/Map.set: wall ${(total / bestMap.ms).toFixed(2)}, cpu ${(best!.cpu / bestMap.cpu).toFixed(2)}`);
  if (bestOther) {
    const ot = bestOther.ingestMs + bestOther.flushMs;
    console.log(
      `best compared: ${ot.toFixed(0)} ms (ingest ${bestOther.ingestMs.toFixed(0)} + flush ${bestOther.flushMs.toFixed(0)}; cpu ${bestOther.cpu.toFixed(0)} ms); ` +
        `ratio this/compared: wall ${(total / ot).toFixed(2)}, cpu ${(best!.cpu / bestOther.cpu).toFixed(2)}; compared/Map.set wall ${(ot / bestMap.ms).toFixed(2)}`,
    );
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
