// Benchmark of the cluster state on a real etcd 3.4: initial sync of 10k endpoints and 1k services
// against a plain `etcdctl get --prefix` of the same keys in the same run (ratio); memory (RSS) of a
// process holding a synced ClusterState with those records; endpoint created on node A → event
// seen on node B (p50/p99); etcd requests per endpoint created.
// Run: node --expose-gc dist/bench/state/sync.bench.js
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ClusterState } from '../../daemon/state/cluster-state.js';
import { silentLogger } from '../../daemon/lib/log.js';
import { startEtcd } from '../../test/lib/etcd.js';
import { EtcdStore } from '../../daemon/state/etcd-store.js';
import { Reflector } from '../../daemon/state/reflector.js';
import { EndpointIpam } from '../../daemon/state/ipam.js';
import { Keys } from '../../daemon/state/keys.js';
import { admitEndpoint, admitService } from '../../daemon/state/admission.js';
import type { Store } from '../../daemon/state/store.js';

const ENDPOINTS = Number(process.env.NRD_BENCH_ENDPOINTS ?? 10_000);
const SERVICES = Number(process.env.NRD_BENCH_SERVICES ?? 1_000);
const LATENCY_SAMPLES = Number(process.env.NRD_BENCH_LATENCY_SAMPLES ?? 300);

const mib = (b: number): string => (b / 1024 / 1024).toFixed(1);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

/**
 * Child mode: a fresh process (as the daemon would be) starts a ClusterState over the populated
 * prefix and reports its time to ready and its memory, against its own baseline after imports.
 */
async function rssChild(endpoint: string, prefix: string): Promise<void> {
  global.gc?.();
  const base = process.memoryUsage();
  const cs = new ClusterState({
    endpoints: [endpoint],
    prefix,
    node: { name: 'bench-rss', address: '192.0.2.200' },
    pools: [{ name: 'ipv4', cidr: '10.240.0.0/12', maskSize: 24 }],
    requestTimeoutMs: 30_000,
    log: silentLogger(),
  });
  const s = process.hrtime.bigint();
  await cs.start();
  await cs.whenReady(120_000);
  const readyMs = Number(process.hrtime.bigint() - s) / 1e6;
  global.gc?.();
  const m = process.memoryUsage();
  process.stdout.write(JSON.stringify({ readyMs, endpoints: cs.endpoints.size, services: cs.services.size, baseRss: base.rss, rss: m.rss, baseHeap: base.heapUsed, heap: m.heapUsed }) + '\n');
  await cs.stop();
}

/** Endpoint created through node A's ClusterState → upsert seen by node B's reflector. */
async function latency(endpoint: string): Promise<void> {
  const mk = (name: string, address: string): ClusterState =>
    new ClusterState({ endpoints: [endpoint], prefix: '/bench-ab', node: { name, address }, pools: [{ name: 'ipv4', cidr: '10.241.0.0/16', maskSize: 20 }], log: silentLogger() });
  const a = mk('node-a', '192.0.2.201');
  const b = mk('node-b', '192.0.2.202');
  await Promise.all([a.start(), b.start()]);
  try {
    await Promise.all([a.whenReady(), b.whenReady()]);
    const waiting = new Map<string, (t: bigint) => void>();
    b.endpoints.onChange((changes) => {
      const t = process.hrtime.bigint();
      for (const c of changes) if (c.type === 'upsert') waiting.get(c.value.id)?.(t);
    });
    const endToEnd: number[] = [];
    const afterReply: number[] = [];
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const id = `lat${i}`;
      const seen = new Promise<bigint>((r) => waiting.set(id, r));
      const t0 = process.hrtime.bigint();
      await a.createEndpoint({ id, netns: '/x', labels: { app: `l${i % 5}` } });
      const t1 = process.hrtime.bigint();
      const t2 = await seen;
      waiting.delete(id);
      endToEnd.push(Number(t2 - t0) / 1e6);
      afterReply.push(Math.max(0, Number(t2 - t1) / 1e6));
    }
    endToEnd.sort((x, y) => x - y);
    afterReply.sort((x, y) => x - y);
    const f = (v: number): string => v.toFixed(2);
    console.log(
      `A→B endpoint event latency over ${LATENCY_SAMPLES} creates: p50 ${f(percentile(endToEnd, 50))} ms, p99 ${f(percentile(endToEnd, 99))} ms ` +
        `(from the create call on A, identity + IPAM included); after A's reply: p50 ${f(percentile(afterReply, 50))} ms, p99 ${f(percentile(afterReply, 99))} ms`,
    );
  } finally {
    await Promise.all([a.stop({ revokeLiveness: true }), b.stop({ revokeLiveness: true })]);
  }
}

/** Counts calls by method on a Store. */
function counting(inner: Store): { store: Store; calls: Record<string, number> } {
  const calls: Record<string, number> = {};
  const store = Object.create(inner) as Store;
  for (const m of ['get', 'list', 'txn', 'put', 'delete', 'grantLease', 'watch'] as const) {
    const orig = inner[m].bind(inner) as (...a: unknown[]) => unknown;
    (store as unknown as Record<string, unknown>)[m] = (...a: unknown[]) => {
      calls[m] = (calls[m] ?? 0) + 1;
      return orig(...a);
    };
  }
  return { store, calls };
}

async function main(): Promise<void> {
  const etcd = await startEtcd({ extraArgs: ['--quota-backend-bytes=4294967296'] });
  const store = new EtcdStore({ endpoints: etcd.endpoints, requestTimeoutMs: 30_000 });
  try {
    const keys = new Keys('/bench');
    const t0 = Date.now();
    const writes: Promise<unknown>[] = [];
    for (let i = 0; i < ENDPOINTS; i++) {
      const node = `node-${i % 100}`;
      const rec = { id: `ep${i}`, node, ips: [`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`], netns: `/var/run/netns/ep${i}`, labels: { app: `a${i % 50}` }, identity: 256 + (i % 50) };
      writes.push(store.put(keys.endpoint(node, rec.id), JSON.stringify(rec)));
      if (writes.length >= 200) await Promise.all(writes.splice(0));
    }
    for (let i = 0; i < SERVICES; i++) {
      const svc = { name: `svc-${i}`, vip: `10.96.${i >> 8}.${i & 255}`, port: 80, protocol: 'tcp', backends: [{ ip: '10.0.0.1', port: 8080 }] };
      writes.push(store.put(keys.service(svc.name), JSON.stringify(svc)));
      if (writes.length >= 200) await Promise.all(writes.splice(0));
    }
    await Promise.all(writes);
    console.log(`populated ${ENDPOINTS} endpoints + ${SERVICES} services in ${Date.now() - t0} ms`);

    // Peer: etcdctl get --prefix of the same keys (process start included, as an operator sees it).
    const ctl = (prefix: string): number => {
      const s = process.hrtime.bigint();
      const r = spawnSync('etcdctl', [`--endpoints=${etcd.endpoints[0]}`, 'get', '--prefix', prefix], { env: { ...process.env, ETCDCTL_API: '3' }, maxBuffer: 1 << 30 });
      if (r.status !== 0) throw new Error(String(r.stderr));
      return Number(process.hrtime.bigint() - s) / 1e6;
    };
    const runs = 3;
    let best = Infinity;
    let bestCtl = Infinity;
    let heapDelta = 0;
    for (let i = 0; i < runs; i++) {
      bestCtl = Math.min(bestCtl, ctl(keys.endpoints) + ctl(keys.services));
      global.gc?.();
      const heap0 = process.memoryUsage().heapUsed;
      const s = process.hrtime.bigint();
      const eps = new Reflector(store, { name: 'endpoints', prefix: keys.endpoints, decode: (k, v) => admitEndpoint(k, v, { pools: [{ name: 'ipv4', cidr: '10.0.0.0/8', maskSize: 24 }] }) });
      const svcs = new Reflector(store, { name: 'services', prefix: keys.services, decode: (k, v) => admitService(k, v) });
      eps.start();
      svcs.start();
      await Promise.all([eps.whenSynced(), svcs.whenSynced()]);
      const ms = Number(process.hrtime.bigint() - s) / 1e6;
      best = Math.min(best, ms);
      heapDelta = process.memoryUsage().heapUsed - heap0;
      if (eps.size !== ENDPOINTS || svcs.size !== SERVICES) throw new Error(`synced ${eps.size}/${svcs.size}`);
      await Promise.all([eps.stop(), svcs.stop()]);
    }
    console.log(`initial sync (decode + index) best of ${runs}: ${best.toFixed(1)} ms; etcdctl get --prefix: ${bestCtl.toFixed(1)} ms; ratio nrd/etcdctl = ${(best / bestCtl).toFixed(2)}`);
    console.log(`heap held by the synced collections: ~${(heapDelta / 1024 / 1024).toFixed(1)} MiB (${((heapDelta / (ENDPOINTS + SERVICES)) | 0)} B/record)`);

    const { store: counted, calls } = counting(store);
    const ipam = new EndpointIpam(counted, keys, 'bench-node', ['10.250.0.0/16'], { netnsExists: () => true });
    await ipam.create({ id: 'warmup', netns: '/x' }); // first create lists the node's reservations
    for (const k of Object.keys(calls)) delete calls[k];
    const N = 200;
    for (let i = 0; i < N; i++) await ipam.create({ id: `new${i}`, netns: '/x', labels: { app: 'b' } });
    const total = Object.values(calls).reduce((a, b) => a + b, 0);
    console.log(`etcd requests per endpoint created: ${(total / N).toFixed(2)} (${JSON.stringify(calls)}; identity acquisition adds 2 when the label set exists)`);

    // Memory of a daemon-like process holding a synced ClusterState over the same keys.
    const child = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--rss-child', etcd.endpoints[0]!, '/bench'], { encoding: 'utf8', maxBuffer: 1 << 20 });
    if (child.status !== 0) throw new Error(`rss child failed: ${child.stderr}`);
    const m = JSON.parse(child.stdout.trim().split('\n').pop()!) as { readyMs: number; endpoints: number; services: number; baseRss: number; rss: number; baseHeap: number; heap: number };
    console.log(
      `ClusterState in a fresh process: ready (all 7 collections listed, node registered) in ${m.readyMs.toFixed(0)} ms with ${m.endpoints} endpoints + ${m.services} services; ` +
        `RSS ${mib(m.rss)} MiB (${mib(m.baseRss)} MiB after imports, +${mib(m.rss - m.baseRss)} MiB), heap +${mib(m.heap - m.baseHeap)} MiB ` +
        `(${(((m.rss - m.baseRss) / (m.endpoints + m.services)) | 0)} B RSS/record)`,
    );

    await latency(etcd.endpoints[0]!);
  } finally {
    await store.close();
    await etcd.stop();
  }
}

const entry = process.argv[2] === '--rss-child' ? rssChild(process.argv[3]!, process.argv[4]!) : main();
entry.catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
