// Benchmark of RIB memory (RFC 4271 §3.2 Adj-RIB-In + Loc-RIB): heap and RSS bytes per route after
// GC for a full IPv4 table from one eBGP peer, and the same table from two peers (two candidates
// per prefix). UPDATEs are generated one at a time and dropped, as the session would.
// --compare DIR measures another build of the RIB too (see rib-ingest.bench.ts), each in its own process.
// Usage: node --expose-gc dist/bench/bgp/rib-memory.bench.js [--routes 1000000] [--compare DIR]
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { benchPeer, benchRib, otherRib, updateOf, ATTRIBUTE_SETS, PREFIXES_PER_UPDATE, type BenchRib } from './rib-ingest.bench.js';
import type { PeerInfo } from '../../daemon/bgp/rib/peer.js';

const gcFn = (globalThis as { gc?: () => void }).gc;
if (!gcFn) {
  console.error('run node with --expose-gc');
  process.exit(2);
}
const gc: () => void = gcFn;

function arg(name: string, def: number): number {
  const i = process.argv.indexOf(name);
  return i >= 0 ? Number(process.argv[i + 1]) : def;
}

function settle(): { heap: number; rss: number } {
  for (let i = 0; i < 3; i++) gc();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

function feed(rib: BenchRib, peer: PeerInfo, routes: number, setOffset: number): void {
  // A wall-clock time like the session's Date.now(): not a small integer.
  const now = Date.now();
  rib.peerUp(peer, 0);
  for (let first = 0, m = 0; first < routes; first += PREFIXES_PER_UPDATE, m++) {
    const u = updateOf(first, Math.min(PREFIXES_PER_UPDATE, routes - first), (m + setOffset) % ATTRIBUTE_SETS, peer);
    rib.applyUpdate(peer.id, u, now);
  }
  rib.flushChanges();
}

function measure(make: () => BenchRib, label: string, peers: number, routes: number): void {
  const before = settle();
  const rib = make();
  let delivered = 0;
  rib.subscribe({ onRouteChanges: (c) => void (delivered += c.length) });
  for (let p = 1; p <= peers; p++) feed(rib, benchPeer(p), routes, p * 7);
  const after = settle();
  if (rib.locRibSize('1/1') !== routes || delivered < routes) throw new Error('RIB incomplete');
  const heap = (after.heap - before.heap) / routes;
  const rss = (after.rss - before.rss) / routes;
  const rssTotal = after.rss / routes;
  console.log(
    `${label}${peers} peer(s) × ${routes} routes: heap ${heap.toFixed(0)} B/prefix, RSS growth ${rss.toFixed(0)} B/prefix, process RSS ${rssTotal.toFixed(0)} B/prefix (${(after.rss / 2 ** 20).toFixed(0)} MiB)`,
  );
  // Keep the RIB alive until measured.
  if (rib.locRibSize('1/1') < 0) console.log(rib);
}

const routes = arg('--routes', 1_000_000);
const cmpAt = process.argv.indexOf('--compare');
const cmpDir = cmpAt >= 0 ? process.argv[cmpAt + 1]! : null;
if (process.argv.includes('--peers')) {
  if (process.argv.includes('--other') && cmpDir) measure(await otherRib(cmpDir), 'compared: ', arg('--peers', 1), routes);
  else measure(benchRib, '', arg('--peers', 1), routes);
} else {
  // One fresh process per case, so RSS of one case is not left over in the next.
  const self = fileURLToPath(import.meta.url);
  for (const peers of [1, 2]) {
    for (const other of cmpDir ? [false, true] : [false]) {
      const args = [...process.execArgv, self, '--routes', String(routes), '--peers', String(peers)];
      if (other) args.push('--compare', cmpDir!, '--other');
      execFileSync(process.execPath, args, { stdio: 'inherit' });
    }
  }
}
