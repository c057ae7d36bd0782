// Benchmark of RIB ingest (RFC 4271 §9 Adj-RIB-In → Loc-RIB → change stream): a full IPv4 table
// in pre-decoded 800-prefix UPDATEs from one eBGP peer, applied and then flushed to a subscriber,
// against a baseline of plain Map.set of the same prefix strings measured in the same run.
// Usage: node dist/bench/bgp/rib-ingest.bench.js [--routes 1000000] [--repeat 3] [--flush-every 0]
import { pathToFileURL } from 'node:url';
import { Rib } from '../../daemon/bgp/rib/rib.js';
import type { PeerInfo } from '../../daemon/bgp/rib/peer.js';
import type { RouteChange } from '../../daemon/bgp/rib/changes.js';
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
  return new Rib({
    localAsn: LOCAL_AS,
    routerId: '192.0.2.1',
    importPolicy: new ImportPolicy({ ranges: [{ prefix: '0.0.0.0/0', maxLength: 32 }] }),
    exportPolicy: new ExportPolicy({ originate: [] }),
  });
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

function baseline(msgs: readonly UpdateMessage[]): number {
  const t0 = process.hrtime.bigint();
  const m = new Map<string, Nlri>();
  for (const u of msgs) for (const n of u.nlri) m.set(n.prefix, n);
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  if (m.size === 0) throw new Error('empty baseline');
  return ms;
}

interface RibRun {
  ingestMs: number;
  flushMs: number;
  delivered: number;
}

function ribRun(msgs: readonly UpdateMessage[], peer: PeerInfo, flushEvery: number): RibRun {
  const rib = benchRib();
  let delivered = 0;
  rib.subscribe({ onRouteChanges: (c: readonly RouteChange[]) => void (delivered += c.length) });
  rib.peerUp(peer, 0);
  let flushMs = 0;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < msgs.length; i++) {
    rib.applyUpdate(peer.id, msgs[i]!, 1);
    if (flushEvery > 0 && (i + 1) % flushEvery === 0) rib.flushChanges();
  }
  const t1 = process.hrtime.bigint();
  rib.flushChanges();
  const t2 = process.hrtime.bigint();
  const ingestMs = Number(t1 - t0) / 1e6;
  flushMs += Number(t2 - t1) / 1e6;
  if (rib.locRibSize('1/1') !== msgs.reduce((n, u) => n + u.nlri.length, 0)) throw new Error('Loc-RIB incomplete');
  return { ingestMs, flushMs, delivered };
}

function main(): void {
  const routes = arg('--routes', 1_000_000);
  const repeat = arg('--repeat', 3);
  const flushEvery = arg('--flush-every', 0);
  const peer = benchPeer(1);
  const msgs = buildTable(routes, peer);
  console.log(`RIB ingest: ${routes} IPv4 prefixes, ${msgs.length} UPDATEs of ≤${PREFIXES_PER_UPDATE}, ${ATTRIBUTE_SETS} attribute sets, one eBGP peer` +
    (flushEvery > 0 ? `, flush every ${flushEvery} UPDATEs` : ', one flush at the end'));
  let bestMap = Infinity;
  let best: RibRun | null = null;
  for (let r = 0; r < repeat; r++) {
    gc();
    const mapMs = baseline(msgs);
    gc();
    const run = ribRun(msgs, peer, flushEvery);
    if (run.delivered !== routes) throw new Error(`flush delivered ${run.delivered} changes, expected ${routes}`);
    const total = run.ingestMs + run.flushMs;
    console.log(
      `  run ${r + 1}: Map.set ${mapMs.toFixed(0)} ms | RIB ingest ${run.ingestMs.toFixed(0)} ms + flush ${run.flushMs.toFixed(0)} ms = ${total.toFixed(0)} ms | ratio ${(total / mapMs).toFixed(2)}`,
    );
    bestMap = Math.min(bestMap, mapMs);
    if (!best || total < best.ingestMs + best.flushMs) best = run;
  }
  const total = best!.ingestMs + best!.flushMs;
  console.log(`best: Map.set ${bestMap.toFixed(0)} ms (${((bestMap * 1e6) / routes).toFixed(0)} ns/route)`);
  console.log(
    `best: RIB ${total.toFixed(0)} ms (${((total * 1e6) / routes).toFixed(0)} ns/route; ingest ${best!.ingestMs.toFixed(0)} + flush ${best!.flushMs.toFixed(0)})`,
  );
  console.log(`ratio RIB/Map.set: ${(total / bestMap).toFixed(2)}`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
