// Entry script of the kill test (chaos-kill.test.ts): one "daemon life" of endpoint churn through a
// real ClusterState on a real etcd, SIGKILLed by the parent at random points. On start it recovers
// as nrd would (endpoint GC for vanished netns, the runtime retrying ADD for live workloads), then
// creates and deletes endpoints until killed, printing one line per finished cycle.
// Workloads are files in NS_DIR: a file exists while its "network namespace" does.
// Args: ENDPOINTS(comma-separated) PREFIX NS_DIR SEED
import { existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ClusterState } from '../../../daemon/state/cluster-state.js';
import { silentLogger } from '../../../daemon/lib/log.js';

export const CHAOS_NODE = 'chaos';
export const CHAOS_POOLS = [
  // A /28 per node: 14 usable addresses for up to 7 live endpoints, so addresses are reused all the time.
  { name: 'ipv4', cidr: '10.250.0.0/24', maskSize: 28 },
  { name: 'ipv6', cidr: 'fd00:250::/64', maskSize: 120 },
];

export function chaosState(endpoints: string[], prefix: string): ClusterState {
  return new ClusterState({
    endpoints,
    prefix,
    node: { name: CHAOS_NODE, address: '192.0.2.77' },
    pools: CHAOS_POOLS,
    leaseTtlSeconds: 5,
    maxBackoffMs: 500,
    netnsExists: (p) => existsSync(p),
    log: silentLogger(),
  });
}

/** Retry an idempotent step until it succeeds (etcd may be busy; the parent kills us anyway). */
async function retry<T>(fn: () => Promise<T>): Promise<T> {
  for (let i = 0; ; i++) {
    try {
      return await fn();
    } catch (e) {
      if (i > 50) throw e;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Recovery at start: GC endpoints whose netns is gone, then re-ADD every live workload. */
export async function recover(cs: ClusterState, nsDir: string): Promise<void> {
  await retry(() => cs.gcEndpoints());
  for (const id of readdirSync(nsDir).sort()) await retry(() => cs.createEndpoint({ id, netns: join(nsDir, id), labels: { app: `a${id.length % 3}` } }));
}

async function main(): Promise<void> {
  const [eps, prefix, nsDir, seedText] = process.argv.slice(2);
  if (!eps || !prefix || !nsDir || !seedText) throw new Error('usage: chaos-child ENDPOINTS PREFIX NS_DIR SEED');
  let seed = Number(seedText) || 1;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  const cs = chaosState(eps.split(','), prefix);
  await cs.start();
  await cs.whenReady(30_000);
  await recover(cs, nsDir);
  process.stdout.write('ready\n');
  for (let i = 0; ; i++) {
    const id = `e${seedText}-${i}`;
    const netns = join(nsDir, id);
    writeFileSync(netns, '');
    const rec = await retry(() => cs.createEndpoint({ id, netns, labels: { app: `a${i % 3}` } }));
    // Keep a few workloads around (at most 6 once this cycle is done), delete the rest.
    const live = readdirSync(nsDir).sort();
    const victims = live.length > 6 ? live.slice(0, live.length - 6) : rnd() < 0.5 ? [rnd() < 0.5 ? id : live[0]!] : [];
    for (const victim of victims) {
      await retry(() => cs.deleteEndpoint(victim));
      rmSync(join(nsDir, victim), { force: true });
    }
    process.stdout.write(`cycle ${id} ${rec.ips.join(',')}\n`);
  }
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((e: unknown) => {
    process.stderr.write(`chaos-child: ${String(e)}\n`);
    process.exit(1);
  });
}
