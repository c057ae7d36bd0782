// nrd-cni against a real nrd: nrd in a test node namespace with a test etcd (the daemon harness),
// workload namespaces made by the test, the plugin binary driven as a runtime drives it. Every
// command and the error paths with real effects (nrd not running, a netns that is gone), results
// checked against the spec's shapes and against the kernel (eth0 inside the workload, the host veth)
// and etcd; then ADD/DEL cycles with SIGKILLs of the plugin and of nrd leave no veth, reservation
// or record behind.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { endpointName } from '../../../daemon/cni/spec.js';
import { apiRequest } from '../../../daemon/cli/client.js';
import type { EndpointView } from '../../../daemon/endpoints/api-types.js';
import { run } from '../../lib/proc.js';
import { waitFor } from '../../lib/wait.js';
import { NRDCTL, NrdSandbox, runNode, type NrdProcess } from '../daemon/harness.js';
import { errorIssues, resultIssues } from '../../unit/cni/schema.js';
import { runPlugin, type PluginRun } from './cni-lib.js';

const sb = NrdSandbox.use(after, 'cni');
let nrd: NrdProcess;
let socket: string;
let site: string;
const workloads: string[] = [];

const POOLS = 'cluster:\n  podCIDRs: [10.244.0.0/16, "fd00:244::/48"]\n';

async function startNrd(): Promise<void> {
  nrd = sb.spawnNrd({ site });
  await waitFor(
    async () => {
      const l = await runNode(NRDCTL, ['--socket', socket, 'status', '-o', 'json']);
      return l.code === 0 && (JSON.parse(l.stdout) as { subsystems?: Array<{ name: string; ready: boolean }> }).subsystems?.find((s) => s.name === 'endpoints')?.ready ? true : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 100, what: 'nrd with its endpoints subsystem ready' },
  );
}

async function workload(tag: string): Promise<{ name: string; path: string }> {
  const name = `${sb.topo.prefix}-${process.pid}-w${tag}`;
  await run(['ip', 'netns', 'add', name]);
  workloads.push(name);
  return { name, path: `/run/netns/${name}` };
}

const conf = (o: Record<string, unknown> = {}): string => JSON.stringify({ cniVersion: '1.0.0', name: 'nrd', type: 'nrd-cni', socket, ...o });
const env = (cmd: string, cid: string, netns: string, o: Record<string, string> = {}): Record<string, string> => ({ CNI_COMMAND: cmd, CNI_CONTAINERID: cid, CNI_NETNS: netns, CNI_IFNAME: 'eth0', CNI_PATH: '/usr/lib/cni', ...o });

async function hostVeths(): Promise<string[]> {
  const out = (await sb.node.ip(['-o', 'link', 'show'])).stdout;
  return [...out.matchAll(/^\d+: (nrdv[0-9a-f]+)[@:]/gm)].map((m) => m[1]!);
}

function etcdKeys(prefix: string): string[] {
  return sb.etcd!.etcdctl(['get', '--prefix', prefix, '--keys-only']).split('\n').filter(Boolean);
}

function assertError(r: PluginRun, code: number): void {
  assert.notEqual(r.code, 0, r.stdout);
  assert.deepEqual(errorIssues(r.json), [], r.stdout);
  assert.equal((r.json as { code: number }).code, code, r.stdout + r.stderr);
}

before(async () => {
  await sb.build();
  socket = join(sb.dir, 'nrd.sock');
  site = sb.site({ socket, metricsPort: null, extra: POOLS });
  await startNrd();
});

after(async () => {
  await nrd?.kill();
  for (const w of workloads) await run(['ip', 'netns', 'del', w], { allowFailure: true });
});

test('ADD, CHECK, DEL against nrd: spec result matching the kernel and etcd; DEL leaves nothing and is idempotent', async () => {
  const w = await workload('a');
  const cid = 'f'.repeat(64);
  const add = await runPlugin(env('ADD', cid, w.path, { CNI_ARGS: 'K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-0' }), conf());
  assert.equal(add.code, 0, add.stdout + add.stderr);
  assert.deepEqual(resultIssues(add.json), [], add.stdout);
  const res = add.json as { interfaces: Array<{ name: string; mac: string; sandbox?: string }>; ips: Array<{ address: string; gateway: string; interface: number }>; routes: Array<{ dst: string }> };
  const [hostIf, eth0] = res.interfaces;
  assert.equal(eth0!.name, 'eth0');
  assert.equal(eth0!.sandbox, w.path);
  assert.deepEqual(res.ips.map((i) => [i.gateway, i.interface]), [['169.254.1.1', 1], ['fe80::1', 1]]);
  assert.deepEqual(res.routes.map((r) => r.dst), ['0.0.0.0/0', '::/0']);
  // The result says what the kernel has.
  const inside = JSON.parse((await run(['ip', '-n', w.name, '-j', 'addr', 'show', 'dev', 'eth0'])).stdout) as Array<{ address: string; addr_info: Array<{ local: string; prefixlen: number; scope: string }> }>;
  assert.equal(inside[0]!.address, eth0!.mac);
  assert.deepEqual(inside[0]!.addr_info.filter((a) => a.scope === 'global').map((a) => `${a.local}/${a.prefixlen}`).sort(), res.ips.map((i) => i.address).sort());
  assert.deepEqual(await hostVeths(), [hostIf!.name]);
  const name = endpointName(cid, 'eth0');
  assert.equal(etcdKeys('/nrd/v1/endpoints/').length, 1);
  assert.ok(etcdKeys('/nrd/v1/endpoints/')[0]!.endsWith(`/${name}`));
  const ep = await apiRequest<EndpointView>(socket, `/v1/endpoints/${encodeURIComponent(name)}`);
  assert.deepEqual(ep.labels, { 'cni.nrd.io/network': 'nrd', 'io.kubernetes.pod.namespace': 'prod', 'io.kubernetes.pod.name': 'web-0' });

  const check = await runPlugin(env('CHECK', cid, w.path), conf({ prevResult: add.json }));
  assert.equal(check.code, 0, check.stdout);
  const again = await runPlugin(env('ADD', cid, w.path), conf());
  assert.deepEqual(again.json, add.json, 'a repeated ADD returns the same attachment');

  const del = await runPlugin(env('DEL', cid, w.path), conf({ prevResult: add.json }));
  assert.equal(del.code, 0, del.stdout);
  assert.equal(del.stdout, '');
  assert.deepEqual(await hostVeths(), []);
  assert.deepEqual(etcdKeys('/nrd/v1/endpoints/'), []);
  assert.deepEqual(etcdKeys('/nrd/v1/ips/'), []);
  assert.equal((await runPlugin(env('DEL', cid, w.path), conf())).code, 0, 'second DEL');
  assertError(await runPlugin(env('CHECK', cid, w.path), conf({ prevResult: add.json })), 101);
});

test('DEL after the workload namespace is gone; ADD into a missing netns is refused and leaves nothing', async () => {
  const w = await workload('b');
  const add = await runPlugin(env('ADD', 'gone1', w.path), conf());
  assert.equal(add.code, 0, add.stdout);
  await run(['ip', 'netns', 'del', w.name]);
  const del = await runPlugin(env('DEL', 'gone1', w.path), conf());
  assert.equal(del.code, 0, del.stdout);
  assertError(await runPlugin(env('ADD', 'gone2', w.path), conf()), 7);
  await waitFor(async () => ((await hostVeths()).length === 0 && etcdKeys('/nrd/v1/endpoints/').length === 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 100, what: 'nothing left' });
  assert.deepEqual(etcdKeys('/nrd/v1/ips/'), []);
});

test(`ADD/DEL cycles with SIGKILL of the plugin and of nrd (restarted) leave no veth, reservation or record`, async () => {
  const CYCLES = Number(process.env.NRD_CNI_CYCLES ?? 200);
  // ~0.9 s a cycle on a loaded 2-core machine (an nrd restart every 25 cycles): 200 fit in the
  // budget; a much slower machine runs fewer rather than hit the runner's 5-minute test timeout.
  const budgetMs = 240_000;
  const pool = await Promise.all([0, 1, 2, 3].map((i) => workload(`c${i}`)));
  let rand = 12345;
  const rnd = (n: number): number => ((rand = (rand * 1103515245 + 12345) & 0x7fffffff) % n);
  const started = Date.now();
  let done = 0;
  let pluginKills = 0;
  let nrdKills = 0;
  /** Runs a command until it succeeds (nrd back, no kill), as a runtime's retry would. */
  const settle = async (cmd: 'ADD' | 'DEL', cid: string, netns: string): Promise<void> => {
    for (let i = 0; i < 200; i++) {
      const r = await runPlugin(env(cmd, cid, netns), conf());
      if (r.code === 0) return;
      const code = (r.json as { code?: number } | undefined)?.code;
      assert.equal(code, 11, `${cmd} ${cid}: only "try again later" is acceptable here: ${r.stdout}${r.stderr}`);
      await new Promise((res) => setTimeout(res, 200));
    }
    assert.fail(`${cmd} ${cid} never succeeded`);
  };
  for (let i = 0; i < CYCLES && Date.now() - started < budgetMs; i++) {
    const w = pool[i % pool.length]!;
    const cid = `churn${i}`;
    const killNrd = i % 25 === 12;
    const killPlugin = !killNrd && rnd(3) === 0;
    if (killNrd) {
      const p = runPlugin(env('ADD', cid, w.path), conf());
      await new Promise((res) => setTimeout(res, 20 + rnd(150)));
      nrd.signal('SIGKILL');
      await nrd.exited;
      nrdKills++;
      await p;
      await startNrd();
    } else if (killPlugin) {
      pluginKills++;
      await runPlugin(env('ADD', cid, w.path), conf(), { killAfterMs: 30 + rnd(200) });
    }
    // The runtime's view after a crash: ADD again (must clean up or reuse), then DEL.
    await settle('ADD', cid, w.path);
    if (rnd(4) === 0) {
      pluginKills++;
      await runPlugin(env('DEL', cid, w.path), conf(), { killAfterMs: 20 + rnd(150) });
    }
    await settle('DEL', cid, w.path);
    done++;
  }
  process.stdout.write(`# cni churn: ${done} ADD/DEL cycles in ${Date.now() - started} ms, ${pluginKills} plugin kills, ${nrdKills} nrd kills\n`);
  assert.ok(done >= 100, `only ${done} cycles ran`);
  assert.ok(nrdKills >= 1);
  // Nothing left: nrd has finished every request it accepted (they are serialised), so look now.
  await waitFor(async () => ((await hostVeths()).length === 0 ? true : undefined), { timeoutMs: 10_000, intervalMs: 100, what: `no nrdv veth (have ${(await hostVeths()).join(' ')})` });
  assert.deepEqual(etcdKeys('/nrd/v1/endpoints/'), []);
  assert.deepEqual(etcdKeys('/nrd/v1/ips/'), []);
  for (const w of pool) assert.doesNotMatch((await run(['ip', '-n', w.name, '-o', 'link'])).stdout, /eth0/);
});

test('ADD with nrd not running: "try again later" (11)', async () => {
  const w = await workload('d');
  nrd.signal('SIGKILL');
  await nrd.exited;
  try {
    assertError(await runPlugin(env('ADD', 'down1', w.path), conf()), 11);
  } finally {
    await startNrd();
  }
  assert.deepEqual(etcdKeys('/nrd/v1/endpoints/'), []);
});
