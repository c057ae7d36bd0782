// Endpoint create/delete cycles on a real etcd with the "daemon" really killed: a child process
// (chaos-child.ts) churns endpoints through ClusterState and is SIGKILLed at random points, round
// after round (sometimes before it is even ready); each new life recovers as nrd does. At the end
// everything is counted from etcd: no leaked and no duplicate address, reservations and endpoint
// records agree exactly, identity references name only existing endpoints.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startEtcd } from '../../lib/etcd.js';
import { EtcdStore } from '../../../daemon/state/etcd-store.js';
import { Keys } from '../../../daemon/state/keys.js';
import { CHAOS_NODE, chaosState, recover } from './chaos-child.js';
import { onLines } from '../../lib/lines.js';

/** Cycles to reach (create + maybe delete each), and the time budget that may end the run first. */
const CYCLES = 1000;
const BUDGET_MS = 60_000;
/** Fewer than this in the budget means something is wrong (a 2-core machine under load does ~600). */
const MIN_CYCLES = 150;
const PREFIX = '/chaos/v1';
const CHILD = fileURLToPath(new URL('./chaos-child.js', import.meta.url));

test(`${CYCLES} endpoint cycles with the daemon process SIGKILLed at random points: no leaked, no duplicate address`, { timeout: BUDGET_MS + 60_000 }, async (t) => {
  // etcd on tmpfs: the disk's fsync latency would halve the cycles that fit in the budget.
  const etcd = await startEtcd(existsSync('/dev/shm') ? { tmpRoot: '/dev/shm' } : {});
  t.after(() => etcd.stop());
  const nsDir = mkdtempSync(join(tmpdir(), 'nrdt-chaos-ns-'));
  t.after(() => rmSync(nsDir, { recursive: true, force: true }));
  let seed = 7;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  let cycles = 0;
  let rounds = 0;
  let killedBeforeReady = 0;
  const t0 = Date.now();
  while (cycles < CYCLES && Date.now() - t0 < BUDGET_MS) {
    rounds++;
    const child = spawn(process.execPath, [CHILD, etcd.endpoints.join(','), PREFIX, nsDir, String(rounds)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let ready = false;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    const readyP = new Promise<void>((resolve) => {
      onLines(child.stdout, (l) => {
        if (l === 'ready') {
          ready = true;
          resolve();
        } else if (l.startsWith('cycle ')) cycles++;
      });
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    try {
      if (rnd() < 0.1) {
        // Die during start: registration, recovery GC or re-ADD may be half done.
        await new Promise((r) => setTimeout(r, Math.floor(rnd() * 400)));
        if (!ready) killedBeforeReady++;
      } else {
        // The 30 s timer is cleared once the race is decided: one left running per round kept the
        // file's process alive for up to 30 s after its test had passed.
        let timer: NodeJS.Timeout | undefined;
        const early = await Promise.race([readyP.then(() => 'ready'), exited.then(() => 'exit'),
          new Promise((r) => (timer = setTimeout(() => r('timeout'), 30_000)))]).finally(() => clearTimeout(timer));
        assert.equal(early, 'ready', `child round ${rounds} did not get ready: ${stderr}`);
        // Starting a life costs about a second (module load, connect, register): let each one
        // churn a while, then kill it at a random point of a cycle.
        await new Promise((r) => setTimeout(r, 50 + Math.floor(rnd() * 2500)));
      }
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    assert.equal(stderr, '', `child round ${rounds} failed`);
  }
  t.diagnostic(`${cycles} cycles in ${rounds} lives (${killedBeforeReady} killed before ready) in ${Date.now() - t0} ms`);
  assert.ok(cycles >= MIN_CYCLES, `only ${cycles} cycles in the time budget`);

  // A last, clean life: recovery only.
  const cs = chaosState(etcd.endpoints, PREFIX);
  await cs.start();
  try {
    await cs.whenReady(30_000);
    await recover(cs, nsDir);
  } finally {
    await cs.stop();
  }

  // Count from etcd.
  const store = new EtcdStore({ endpoints: etcd.endpoints });
  t.after(() => store.close());
  const keys = new Keys(PREFIX);
  const eps = (await store.list(keys.nodeEndpoints(CHAOS_NODE))).kvs.map((kv) => JSON.parse(kv.value) as { id: string; ips: string[]; identity?: number });
  const res = (await store.list(keys.nodeIps(CHAOS_NODE))).kvs.map((kv) => ({ ip: kv.key.slice(keys.nodeIps(CHAOS_NODE).length), ep: (JSON.parse(kv.value) as { endpoint: string }).endpoint }));
  const workloads = readdirSync(nsDir).sort();
  assert.deepEqual(eps.map((e) => e.id).sort(), workloads, 'one endpoint per live workload, none for dead ones');
  const allIps = eps.flatMap((e) => e.ips);
  assert.equal(new Set(allIps).size, allIps.length, `duplicate address: ${JSON.stringify(eps)}`);
  assert.equal(allIps.length, eps.length * 2, 'one IPv4 and one IPv6 address each');
  assert.deepEqual(
    res.map((r) => `${r.ip}=${r.ep}`).sort(),
    eps.flatMap((e) => e.ips.map((ip) => `${ip}=${e.id}`)).sort(),
    'reservations are exactly the live endpoints\' addresses (no leak)',
  );
  const ids = (await store.list(keys.identities)).kvs.map((kv) => JSON.parse(kv.value) as { id: number; refs: Record<string, string[]> });
  const epIds = new Set(eps.map((e) => e.id));
  for (const idr of ids) for (const ref of idr.refs[CHAOS_NODE] ?? []) assert.ok(epIds.has(ref), `identity ${idr.id} still referenced by gone endpoint ${ref}`);
  for (const e of eps) assert.ok(ids.some((i) => i.id === e.identity && (i.refs[CHAOS_NODE] ?? []).includes(e.id)), `endpoint ${e.id} identity ${e.identity} missing its reference`);
  // The node kept one CIDR per family through every life.
  assert.equal((await store.list(keys.cidrs)).kvs.length, 2);
});
