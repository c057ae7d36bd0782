#!/usr/bin/env node
// The nrd lab: `node dist/test/lab/lab.js [up|down|status]` (npm run lab [-- down|status]).
// `up` starts a keeper process (fabric.ts) that builds a fabric in network namespaces (a pod per
// node, an endpoint made by nrd, and an external host behind the ToR), waits until every node is
// ready (nrdctl status -o json) and routes every other node's pod CIDR (/v1/routes), pings every
// pod from every other pod and from the ToR, connects every pod to the external host, prints the
// endpoints, routes and results (report.ts) and leaves the lab up; it fails when a ping or the
// masquerade check does. Every pod is labelled and runs a name server; the report then counts a
// pod's connections to the service VIP per backend and tries each pod against the app=db pod, and
// `up` fails unless the service spreads over two backends and each pair gets the policy's verdict.
// `down` removes it by PID and name
// from the state file, then unmounts the lab's bpffs; `status` prints the table and the report again.
import { existsSync, mkdirSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { destroyStateSync, listNamespaces } from '../lib/netns.js';
import { pidAlive, run, killPid } from '../lib/proc.js';
import { sleep, waitFor } from '../lib/wait.js';
import { REPO_ROOT, makePlan, type LabOptions, type LabPlan } from './plan.js';
import { readState, type LabNodeState, type LabState } from './state.js';
import { isBpffs, isMountPoint, unmountBpffs } from './bpffs.js';
import { runKeeper } from './fabric.js';
import { collectApps, formatApps, type AppsReport } from './report-apps.js';
import { collectRouting, collectTraffic, formatTraffic, missingRoutes, pendingNative, type NodeRouting, type TrafficReport } from './report.js';

export { makePlan, type LabOptions } from './plan.js';
export type { LabState } from './state.js';

const NRDCTL = join(REPO_ROOT, 'dist', 'daemon', 'cli', 'nrdctl.js');
const MAIN = join(REPO_ROOT, 'dist', 'daemon', 'main.js');

export interface NodeReport {
  name: string;
  ns: string;
  address: string;
  pid: number | null;
  /** The daemon process is alive. */
  running: boolean;
  /** nrdctl status answered with a JSON object. */
  answered: boolean;
  ready: boolean;
  /** One line: the daemon's status line, or why nrdctl failed. */
  summary: string;
  /** Each subsystem's readiness as /v1/status lists it (empty when nrdctl did not answer). */
  subsystems: Array<{ name: string; ready: boolean; reason?: string }>;
  /** The raw `nrdctl status -o json` object when it answered. */
  status?: Record<string, unknown>;
}

export interface LabReport {
  /** Every node answered (and, outside short mode, is ready), routes every other pod, and every ping was answered. */
  ok: boolean;
  name: string;
  nodes: NodeReport[];
  state: LabState | null;
  /** Routes, peers, ToR FIB and the ping matrix; absent when the lab never got that far. */
  traffic?: TrafficReport;
  /** Remote pod CIDRs some node still had no route for when `up` stopped waiting. */
  missing?: Array<{ node: string; prefix: string; owner: string }>;
  /** The service's spread over its backends and the policy's allowed and denied pairs. */
  apps?: AppsReport;
}

function printer(opts: LabOptions): (line: string) => void {
  return opts.out ?? ((line: string) => process.stdout.write(line + '\n'));
}

function keeperAlive(s: LabState): boolean {
  return pidAlive(s.keeper.pid, s.keeper.startTime);
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/** The subsystems list of a /v1/status body, tolerating shapes from other nrd versions. */
function subsystemsOf(status: Record<string, unknown>): NodeReport['subsystems'] {
  const list = Array.isArray(status.subsystems) ? (status.subsystems as unknown[]) : [];
  const out: NodeReport['subsystems'] = [];
  for (const s of list) {
    if (!s || typeof s !== 'object') continue;
    const { name, ready, reason } = s as Record<string, unknown>;
    if (typeof name !== 'string') continue;
    out.push({ name, ready: ready === true, ...(typeof reason === 'string' ? { reason } : {}) });
  }
  return out;
}

/** Ask one node's daemon for its status through nrdctl, as an operator would. */
export async function probeNode(node: LabNodeState): Promise<NodeReport> {
  const pid = node.process?.pid ?? null;
  const running = node.process ? pidAlive(node.process.pid, node.process.startTime) : false;
  const base = { name: node.name, ns: node.ns, address: node.address, pid, running, subsystems: [] };
  const r = await run([process.execPath, NRDCTL, '--socket', node.socket, 'status', '-o', 'json'], {
    allowFailure: true,
    timeoutMs: 10_000,
  }).catch((err: unknown) => ({ code: -1, stdout: '', stderr: String(err), signal: null }));
  if (r.code === 0) {
    try {
      const status = JSON.parse(r.stdout) as Record<string, unknown>;
      if (status && typeof status === 'object') {
        const line = typeof status.status === 'string' ? status.status : '';
        return {
          ...base,
          answered: true,
          ready: status.ready === true,
          summary: line || 'answered',
          subsystems: subsystemsOf(status),
          status,
        };
      }
    } catch {
      /* falls through to "not JSON" */
    }
    return { ...base, answered: false, ready: false, summary: `nrdctl printed no JSON object: ${r.stdout.slice(0, 80)}` };
  }
  const why = (r.stderr.trim().split('\n')[0] ?? '') || `nrdctl exit ${r.code}`;
  return { ...base, answered: false, ready: false, summary: running ? why : `nrd not running (${why})` };
}

/**
 * The status table printed by `up` and `status`: NRDCTL says whether the control socket answered,
 * READY is the node's overall readiness, then one column per subsystem (in the order nrd starts
 * them, as /v1/status lists them; '-' where a node does not report it), then the status line,
 * which names what a node waits for.
 */
export function formatTable(reports: NodeReport[]): string {
  const names: string[] = [];
  for (const r of reports) for (const s of r.subsystems) if (!names.includes(s.name)) names.push(s.name);
  const rows = [
    ['NODE', 'NETNS', 'ADDRESS', 'PID', 'NRDCTL', 'READY', ...names.map((n) => n.toUpperCase()), 'STATUS'],
    ...reports.map((r) => [
      r.name,
      r.ns,
      r.address,
      r.pid === null ? '-' : String(r.pid),
      r.answered ? 'up' : 'down',
      r.ready ? 'yes' : 'no',
      ...names.map((n) => {
        const s = r.subsystems.find((x) => x.name === n);
        return s === undefined ? '-' : s.ready ? 'yes' : 'no';
      }),
      r.summary,
    ]),
  ];
  // The last column (the status line) is not padded: it is as long as it needs to be.
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  return rows.map((row) => row.map((c, i) => (i === row.length - 1 ? c : c.padEnd(widths[i]!))).join('  ')).join('\n');
}

/** Remove what a lab state records; safe on a partial or stale state. */
async function teardown(plan: LabPlan, s: LabState, say: (l: string) => void): Promise<void> {
  if (keeperAlive(s)) {
    say(`stopping lab keeper (pid ${s.keeper.pid})`);
    // The keeper's SIGTERM hook stops nrd, BIRD and etcd and deletes the namespaces.
    await killPid(s.keeper.pid, { startTime: s.keeper.startTime, graceMs: 20_000 });
  }
  // Belt and braces (a keeper killed with SIGKILL tears nothing down): everything recorded.
  const procs = [...s.topology.processes];
  if (s.etcd) procs.push({ ...s.etcd.process, name: 'etcd' });
  destroyStateSync({ ...s.topology, processes: procs }, 3000);
  // Only now, with every nrd gone, the bpffs: its pins go with it. Only a bpffs that the state
  // records is unmounted, never whatever else might be mounted there.
  if (s.bpffs && isMountPoint(s.bpffs) && isBpffs(s.bpffs)) {
    say(`unmounting the lab bpffs at ${s.bpffs}`);
    await unmountBpffs(s.bpffs);
  }
  if (!isMountPoint(s.pinRoot)) rmSync(s.pinRoot, { recursive: true, force: true });
  for (const f of s.configFiles) rmSync(f, { force: true });
  rmSync(plan.stateDir, { recursive: true, force: true });
}

/** `down`: remove the lab recorded in the state file. Returns false when no lab was recorded. */
export async function labDown(opts: LabOptions = {}): Promise<boolean> {
  const plan = makePlan(opts);
  const say = printer(opts);
  const s = readState(plan.stateFile);
  if (!s) {
    const stray = await listNamespaces(`${plan.name}-`);
    say(
      stray.length
        ? `no lab state in ${plan.stateFile}, but namespaces ${stray.join(', ')} exist; not touching what is not recorded`
        : `no lab ${plan.name} is up`,
    );
    return false;
  }
  await teardown(plan, s, say);
  const left = (await listNamespaces(`${plan.name}-`)).filter((ns) => s.topology.namespaces.includes(ns));
  if (left.length) throw new Error(`lab ${plan.name}: namespaces left after down: ${left.join(', ')}`);
  say(`lab ${plan.name} is down`);
  return true;
}

/** `status`: probe every node of the recorded lab once and print the table. */
export async function labStatus(opts: LabOptions = {}): Promise<LabReport> {
  const plan = makePlan(opts);
  const say = printer(opts);
  const s = readState(plan.stateFile);
  if (!s) {
    say(`no lab ${plan.name} is up (no ${plan.stateFile})`);
    return { ok: false, name: plan.name, nodes: [], state: null };
  }
  if (!keeperAlive(s)) say(`lab keeper (pid ${s.keeper.pid}) is gone: the lab is broken; run down`);
  const nodes = await Promise.all(s.nodes.map(probeNode));
  say(formatTable(nodes));
  if (s.podsError) say(`pods: ${s.podsError}`);
  const traffic = await collectTraffic(s);
  say(formatTraffic(s, traffic));
  const missing = missingRoutes(s, traffic.nodes);
  for (const m of missing) say(`${m.node} has no route to ${m.prefix} (${m.owner})`);
  const apps = await collectApps(s);
  say(formatApps(apps));
  return {
    ok: keeperAlive(s) && nodes.every((n) => n.answered) && s.pods === 'ready' && missing.length === 0 && traffic.pingsOk && traffic.masqueradeOk && apps.ok,
    name: plan.name,
    nodes,
    state: s,
    traffic,
    missing,
    apps,
  };
}

function startKeeper(plan: LabPlan, opts: LabOptions): void {
  mkdirSync(plan.logDir, { recursive: true });
  const fd = openSync(join(plan.logDir, 'keeper.log'), 'a');
  try {
    const keeperOpts: LabOptions = { ...opts };
    delete keeperOpts.out;
    const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '__keeper', JSON.stringify(keeperOpts)], {
      detached: true,
      stdio: ['ignore', fd, fd],
      cwd: REPO_ROOT,
    });
    child.on('error', () => undefined);
    child.unref();
  } finally {
    closeSync(fd);
  }
}

/**
 * `up`: build the lab and wait for its nodes. When a lab is already up, report it instead of
 * building a second one. Returns ok when every node answered (and, outside short mode, is ready).
 */
export async function labUp(opts: LabOptions = {}): Promise<LabReport> {
  const plan = makePlan(opts);
  const say = printer(opts);
  const prev = readState(plan.stateFile);
  if (prev && keeperAlive(prev)) {
    say(`lab ${plan.name} is already up (keeper pid ${prev.keeper.pid}); \`npm run lab -- down\` removes it`);
    return labStatus(opts);
  }
  if (prev) {
    say(`removing the leftovers of a previous lab ${plan.name} (its keeper is gone)`);
    await teardown(plan, prev, say);
  }
  const stray = await listNamespaces(`${plan.name}-`);
  if (stray.length) throw new Error(`namespaces ${stray.join(', ')} exist but no lab state records them; remove them by hand`);
  if (isMountPoint(plan.pinRoot)) throw new Error(`${plan.pinRoot} is mounted but no lab state records it; unmount it by hand`);
  if (!existsSync(MAIN)) throw new Error(`${MAIN} is missing: build first (npx tsc -p tsconfig.json)`);

  say(`starting lab ${plan.name}: ToR (BIRD, AS 65000), etcd, ${plan.nodes.length} nrd nodes; logs in ${plan.logDir}`);
  const t0 = Date.now();
  startKeeper(plan, opts);
  let s: LabState;
  try {
    s = await waitFor(
      () => {
        const st = readState(plan.stateFile);
        if (st && !keeperAlive(st)) throw new Error('lab keeper exited');
        return st && st.phase !== 'building' ? st : undefined;
      },
      { timeoutMs: 60_000, intervalMs: 100, what: 'the lab fabric to be built' },
    );
  } catch (err) {
    say(`lab build did not finish: ${err instanceof Error ? err.message : String(err)}\n${tail(join(plan.logDir, 'keeper.log'))}`);
    const st = readState(plan.stateFile);
    if (st) await teardown(plan, st, say);
    throw err;
  }
  if (s.phase === 'failed') {
    say(`lab build failed: ${s.error}\n--- keeper log ---\n${tail(s.keeperLog)}`);
    await teardown(plan, s, say);
    throw new Error(`lab build failed: ${s.error}`);
  }
  say(`fabric up in ${((Date.now() - t0) / 1000).toFixed(1)} s; waiting for the nodes (${plan.short ? 'API answers' : 'ready'})`);

  const want = (r: NodeReport): boolean => (plan.short ? r.answered : r.ready);
  let reports: NodeReport[] = [];
  const deadline = Date.now() + plan.readyTimeoutMs;
  for (;;) {
    reports = await Promise.all(s.nodes.map(probeNode));
    if (reports.every(want)) break;
    const dead = reports.filter((r) => !r.running);
    if (dead.length || Date.now() >= deadline) break;
    await sleep(500);
  }
  say(formatTable(reports));
  const logs = (names: string[], why: (n: LabNodeState) => string): void => {
    for (const node of s.nodes.filter((n) => names.includes(n.name))) say(`--- ${node.name}: ${why(node)}; log ${node.logFile} ---\n${tail(node.logFile)}`);
  };
  if (!reports.every(want)) {
    logs(
      reports.filter((x) => !want(x)).map((r) => r.name),
      (n) => reports.find((r) => r.name === n.name)!.summary,
    );
    say(`lab ${plan.name} is up but not every node is ${plan.short ? 'answering' : 'ready'}; \`npm run lab -- down\` removes it`);
    return { ok: false, name: plan.name, nodes: reports, state: readState(plan.stateFile) };
  }

  // The pods: the keeper builds them once each node has claimed its CIDR.
  const withPods = await waitFor(
    () => {
      const st = readState(plan.stateFile);
      if (st && !keeperAlive(st)) throw new Error('lab keeper exited');
      return st && st.pods !== 'waiting' ? st : undefined;
    },
    { timeoutMs: plan.readyTimeoutMs, intervalMs: 200, what: 'the keeper to build the pods' },
  ).catch((err: unknown) => {
    say(`pods not built: ${err instanceof Error ? err.message : String(err)}\n--- keeper log ---\n${tail(s.keeperLog)}`);
    return undefined;
  });
  if (!withPods || withPods.pods !== 'ready') {
    if (withPods?.podsError) say(`pods failed: ${withPods.podsError}\n--- keeper log ---\n${tail(withPods.keeperLog)}`);
    say(`lab ${plan.name} is up without pods; \`npm run lab -- down\` removes it`);
    return { ok: false, name: plan.name, nodes: reports, state: withPods ?? readState(plan.stateFile) };
  }
  s = withPods;
  say(`pods: ${s.nodes.map((n) => `${n.name} ${n.pod!.ip}`).join(', ')}; waiting for every node to route every other node's pod CIDR`);

  // Convergence: every node has a path to every other node's CIDR (BGP, direct or VXLAN), and no
  // route is still on its way to native (auto holds a better path down for
  // routing.failoverHoldDown; a node whose BGP sync came before the other nodes' announcements
  // starts on direct). The report then shows where nrd settles, as an operator would find it.
  let routing: NodeRouting[] = [];
  let missing: ReturnType<typeof missingRoutes> = [];
  let pending: ReturnType<typeof pendingNative> = [];
  let usableAt: number | undefined;
  const convergeDeadline = Date.now() + plan.convergeTimeoutMs;
  for (;;) {
    routing = await collectRouting(s);
    missing = missingRoutes(s, routing);
    pending = pendingNative(routing);
    if (!missing.length && usableAt === undefined) {
      usableAt = Date.now();
      say(`every node routes every other pod CIDR (${((usableAt - t0) / 1000).toFixed(1)} s after start)`);
      if (pending.length) {
        say(
          `${pending.length} of them ${[...new Set(pending.map((p) => p.mode))].join('/')} while BGP has a native path: waiting out ` +
            `routing.failoverHoldDown (default 30 s): ${pending.map((p) => `${p.node} ${p.prefix}`).join(', ')}`,
        );
      }
    }
    if ((!missing.length && !pending.length) || Date.now() >= convergeDeadline) break;
    await sleep(500);
  }
  const converged = missing.length === 0;
  const secs = ((Date.now() - t0) / 1000).toFixed(1);
  if (converged && !pending.length) say(`routes settled ${secs} s after start; pinging`);
  else if (converged) say(`${pending.length} routes still held down on their way to native ${secs} s after start; pinging anyway`);
  const traffic = await collectTraffic(s, routing);
  say(formatTraffic(s, traffic));
  for (const m of missing) say(`${m.node} has no route to ${m.prefix} (${m.owner}) after ${plan.convergeTimeoutMs / 1000} s`);
  if (!converged) logs([...new Set(missing.map((m) => m.node))], () => 'routes missing');
  const apps = await collectApps(s);
  say(formatApps(apps));
  const ok = converged && traffic.pingsOk && traffic.masqueradeOk && apps.ok;
  if (ok) {
    say(`lab ${plan.name} is up and routes pod traffic (${((Date.now() - t0) / 1000).toFixed(1)} s). Try: node ${NRDCTL} --socket ${s.nodes[0]!.socket} routes`);
    say('`npm run lab -- down` removes it');
  } else {
    say(`lab ${plan.name} is up but does not route every pod, spread the service or enforce the policy (see above); \`npm run lab -- down\` removes it`);
  }
  return { ok, name: plan.name, nodes: reports, state: s, traffic, missing, apps };
}

/** Run one lab action as the CLI does; returns the process exit code. */
export async function runLab(action: 'up' | 'down' | 'status', opts: LabOptions = {}): Promise<number> {
  switch (action) {
    case 'up':
      return (await labUp(opts)).ok ? 0 : 1;
    case 'down':
      await labDown(opts);
      return 0;
    case 'status':
      return (await labStatus(opts)).ok ? 0 : 1;
  }
}

const USAGE = `Usage: node dist/test/lab/lab.js [up|down|status] [--nodes N] [--short] [--name NAME] [--state-dir DIR]
  up      build the lab (default), wait for the routes, ping pod to pod, try the service and the
          policy, print the report; exit 1 when a ping fails, the service answers from fewer than
          two backends or a pod pair's verdict is not the policy's. Reports the running lab instead when one is up already
  down    remove the lab: processes by PID, namespaces (pods included) by name, the bpffs, files
  status  print each node's nrdctl status (one readiness column per subsystem) and the report again
`;

async function cli(argv: string[]): Promise<number> {
  if (argv[0] === '__keeper') {
    await runKeeper(makePlan(JSON.parse(argv[1] ?? '{}') as LabOptions));
    return -1; // keep running
  }
  const opts: LabOptions = {};
  let action: 'up' | 'down' | 'status' = 'up';
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === 'up' || a === 'down' || a === 'status') action = a;
    else if (a === '--short') opts.short = true;
    else if (a === '--nodes') opts.nodes = Number(argv[++i]);
    else if (a === '--name') opts.name = argv[++i];
    else if (a === '--state-dir') opts.stateDir = argv[++i];
    else if (a === '-h' || a === '--help') {
      process.stdout.write(USAGE);
      return 0;
    } else {
      process.stderr.write(`lab: unknown argument ${JSON.stringify(a)}\n${USAGE}`);
      return 64;
    }
  }
  if (process.getuid?.() !== 0) {
    process.stderr.write('lab: needs root (network namespaces)\n');
    return 77;
  }
  return runLab(action, opts);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  cli(process.argv.slice(2)).then(
    (code) => {
      if (code >= 0) process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`lab: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
