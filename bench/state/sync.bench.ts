// Benchmark of the cluster-state reflectors on a real etcd 3.4: initial sync of 10k endpoints and
// 1k services against a plain `etcdctl get --prefix` of the same keys in the same run (ratio),
// and etcd requests per endpoint created. Run: node dist/bench/state/sync.bench.js
import { spawnSync } from 'node:child_process';
import { startEtcd } from '../../test/lib/etcd.js';
import { EtcdStore } from '../../daemon/state/etcd-store.js';
import { Reflector } from '../../daemon/state/reflector.js';
import { EndpointIpam } from '../../daemon/state/ipam.js';
import { Keys } from '../../daemon/state/keys.js';
import { decodeEndpoint, decodeService } from '../../daemon/state/records.js';
import type { Store } from '../../daemon/state/store.js';

const ENDPOINTS = Number(process.env.NRD_BENCH_ENDPOINTS ?? 10_000);
const SERVICES = Number(process.env.NRD_BENCH_SERVICES ?? 1_000);

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
      const eps = new Reflector(store, { name: 'endpoints', prefix: keys.endpoints, decode: (_k, v) => decodeEndpoint(v) });
      const svcs = new Reflector(store, { name: 'services', prefix: keys.services, decode: (_k, v) => decodeService(v) });
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
  } finally {
    await store.close();
    await etcd.stop();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
