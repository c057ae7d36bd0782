// The lab in short mode (root): up → every node's nrdctl status answers, its node.interface is
// its real uplink and its datapath loads into the lab's bpffs → down → nothing left (namespaces,
// processes, state dir, the bpffs mount, pins). Needs the built daemon and CLI (dist/daemon).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labUp, labDown, labStatus, makePlan, probeNode, type LabOptions } from '../../lab/lab.js';
import { siteFile, REPO_ROOT } from '../../lab/plan.js';
import { isBpffs, isMountPoint, unmountBpffs } from '../../lab/bpffs.js';
import { listNamespaces } from '../../lib/netns.js';
import { pidAlive, run } from '../../lib/proc.js';
import { waitFor } from '../../lib/wait.js';

const base = mkdtempSync(join(tmpdir(), 'nrdt-lab-'));
const lines: string[] = [];
const opts: LabOptions = {
  name: `nrdlt${process.pid}`,
  stateDir: join(base, 'run'),
  configDir: join(base, 'config'),
  nodes: 3,
  short: true,
  out: (l) => lines.push(l),
};

after(async () => {
  // Whatever happened above, leave nothing behind.
  await labDown(opts).catch(() => undefined);
  // A bpffs that down could not unmount must not be emptied by the rm below while mounted.
  const pinRoot = makePlan(opts).pinRoot;
  if (isMountPoint(pinRoot) && isBpffs(pinRoot)) await unmountBpffs(pinRoot).catch(() => undefined);
  if (!isMountPoint(pinRoot)) rmSync(base, { recursive: true, force: true });
});

test('every generated lab site file passes nrd check-config', async () => {
  const plan = makePlan(opts);
  mkdirSync(plan.configDir, { recursive: true });
  for (const n of plan.nodes) {
    const file = join(plan.configDir, `${n.name}.check.yaml`);
    writeFileSync(file, siteFile(plan, n));
    const r = await run([process.execPath, join(REPO_ROOT, 'dist/daemon/main.js'), 'check-config', file], { allowFailure: true });
    assert.equal(r.code, 0, `check-config ${n.name}: ${r.stdout}${r.stderr}`);
  }
});

test('lab up (short): all nodes report; down leaves nothing', { timeout: 120_000 }, async () => {
  const report = await labUp(opts).catch((err: unknown) => {
    throw new Error(`${err instanceof Error ? err.message : String(err)}\n${lines.join('\n')}`);
  });
  assert.equal(report.ok, true, `lab not up:\n${lines.join('\n')}`);
  assert.equal(report.nodes.length, 3);
  for (const n of report.nodes) {
    assert.equal(n.answered, true, `${n.name}: ${n.summary}`);
    assert.equal(n.status?.node, n.name, `${n.name} reports node ${String(n.status?.node)}`);
  }
  const state = report.state;
  assert.ok(state, 'no state file');
  assert.equal((await listNamespaces(`${opts.name}-`)).length, 5);

  // The lab's own bpffs, mounted before the nodes started, under the state dir.
  const plan = makePlan(opts);
  assert.equal(state.bpffs, plan.pinRoot);
  assert.equal(isMountPoint(plan.pinRoot), true, `${plan.pinRoot} is not mounted`);
  assert.equal(isBpffs(plan.pinRoot), true, `${plan.pinRoot} is not a bpffs`);
  for (const n of plan.nodes) {
    // node.interface is the node's real uplink: the veth holding its address in its namespace.
    const r = report.nodes.find((x) => x.name === n.name)!;
    const cfg = r.status?.config as { node?: { interface?: string } } | undefined;
    assert.equal(cfg?.node?.interface, n.interface, `${n.name} node.interface`);
    const addrs = JSON.parse((await run(['ip', '-n', n.ns, '-j', 'addr', 'show', 'dev', n.interface])).stdout) as Array<{
      link_type?: string;
      addr_info?: Array<{ local?: string }>;
    }>;
    assert.ok(addrs[0]?.addr_info?.some((a) => a.local === n.address), `${n.address} on ${n.ns}/${n.interface}: ${JSON.stringify(addrs)}`);
    // The datapath loads into the lab's bpffs: ready, with its links pinned under the node's pin path.
    const nodeState = state.nodes.find((x) => x.name === n.name)!;
    await waitFor(
      async () => (await probeNode(nodeState)).subsystems.find((x) => x.name === 'datapath')?.ready,
      { timeoutMs: 30_000, intervalMs: 250, what: `${n.name} datapath ready` },
    );
    assert.equal(existsSync(join(n.pinPath, 'links', n.interface)), true, `${n.name}: no pinned link under ${n.pinPath}`);
  }

  // A second up reports the running lab instead of building another.
  lines.length = 0;
  const again = await labUp(opts);
  assert.ok(lines.some((l) => l.includes('already up')), lines.join('\n'));
  assert.equal(again.nodes.length, 3);
  lines.length = 0;
  assert.equal((await labStatus(opts)).ok, true);
  // The table has one readiness column per subsystem, and every node's datapath is ready.
  const table = lines.join('\n').split('\n');
  const header = table.find((l) => l.startsWith('NODE'));
  assert.ok(header, lines.join('\n'));
  const cols = header.split(/\s+/);
  const dpCol = cols.indexOf('DATAPATH');
  assert.ok(cols.includes('API') && dpCol > 0, header);
  for (const n of plan.nodes) {
    const row = table.find((l) => l.startsWith(`${n.name} `));
    assert.ok(row, `${n.name} row in\n${lines.join('\n')}`);
    assert.equal(row.split(/\s+/)[dpCol], 'yes', row);
  }

  const pids = [
    state.keeper,
    ...state.topology.processes,
    ...(state.etcd ? [state.etcd.process] : []),
    ...state.nodes.flatMap((n) => (n.process ? [n.process] : [])),
  ];
  assert.equal(await labDown(opts), true);
  assert.deepEqual(await listNamespaces(`${opts.name}-`), []);
  for (const p of pids) assert.equal(pidAlive(p.pid, p.startTime), false, `pid ${p.pid} still alive`);
  assert.equal(existsSync(opts.stateDir!), false, 'state dir left');
  assert.equal(isMountPoint(state.pinRoot), false, 'bpffs still mounted');
  assert.equal(existsSync(state.pinRoot), false, 'pin dir left');
  if (state.etcd) assert.equal(existsSync(state.etcd.baseDir), false, 'etcd data dir left');
  for (const f of state.configFiles) assert.equal(existsSync(f), false, `${f} left`);
  assert.equal(await labDown(opts), false, 'second down finds nothing');
});
