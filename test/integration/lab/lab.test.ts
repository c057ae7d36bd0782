// The lab in short mode (root): up → every node's nrdctl status answers → down → nothing left
// (namespaces, processes, state dir, pins). Needs the built daemon and CLI (dist/daemon).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labUp, labDown, labStatus, makePlan, type LabOptions } from '../../lab/lab.js';
import { siteFile, REPO_ROOT } from '../../lab/plan.js';
import { listNamespaces } from '../../lib/netns.js';
import { pidAlive, run } from '../../lib/proc.js';

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
  rmSync(base, { recursive: true, force: true });
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

  // A second up reports the running lab instead of building another.
  lines.length = 0;
  const again = await labUp(opts);
  assert.ok(lines.some((l) => l.includes('already up')), lines.join('\n'));
  assert.equal(again.nodes.length, 3);
  assert.equal((await labStatus(opts)).ok, true);

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
  assert.equal(existsSync(state.pinRoot), false, 'pin dir left');
  if (state.etcd) assert.equal(existsSync(state.etcd.baseDir), false, 'etcd data dir left');
  for (const f of state.configFiles) assert.equal(existsSync(f), false, `${f} left`);
  assert.equal(await labDown(opts), false, 'second down finds nothing');
});
