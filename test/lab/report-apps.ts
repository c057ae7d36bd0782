// The lab's service and policy, as seen from the pods: SERVICE_PROBES connections from one pod
// (app=other on the first node) to the VIP, counted per backend that answered (each pod's server
// answers its name); then one connection from every other pod to the app=db pod on DB_PORT, each
// compared with what the policy says (app=web connects, anything else is dropped), while
// `nrdctl monitor --verdict dropped` on the db pod's node catches the drops. Collection is I/O;
// formatting is pure.
import { join } from 'node:path';
import type { ServicesResponse } from '../../daemon/state/api-types.js';
import type { EndpointPolicyView } from '../../daemon/datapath/policy.js';
import type { FlowEvent } from '../../daemon/datapath/events.js';
import { run, spawnProcess } from '../lib/proc.js';
import { sleep, waitFor } from '../lib/wait.js';
import { DB_PORT, REPO_ROOT, SERVICE_PROBES } from './plan.js';
import type { LabNodeState, LabPodState, LabState } from './state.js';

const NRDCTL = join(REPO_ROOT, 'dist', 'daemon', 'cli', 'nrdctl.js');
/** A SYN the policy drops gets no answer: a short timeout tells it apart quickly. */
const CONNECT_TIMEOUT_MS = 1000;

/** N sequential connections, each with a short connect timeout: the name each one got, or TIMEOUT / ERROR <code>. */
const PROBE = `const net = require('net'); const [addr, port, n, to] = process.argv.slice(1);
const one = () => new Promise((resolve) => { let data = ''; const c = net.connect({ host: addr, port: Number(port) });
  const t = setTimeout(() => { c.destroy(); resolve('TIMEOUT'); }, Number(to));
  c.on('data', (d) => { data += d; if (data.includes('\\n')) { clearTimeout(t); c.destroy(); resolve(data.trim()); } });
  c.on('end', () => { clearTimeout(t); resolve(data.trim() || 'EMPTY'); });
  c.on('error', (e) => { clearTimeout(t); resolve('ERROR ' + (e.code || e.message)); }); });
(async () => { const out = []; for (let i = 0; i < Number(n); i++) out.push(await one()); console.log(JSON.stringify(out)); })();`;

export interface LabPod {
  node: LabNodeState;
  pod: LabPodState;
  name: string;
  app: string;
}

export interface ServiceResult {
  vip: string;
  port: number;
  client: string;
  clientNode: string;
  /** The backends the service record lists, with the pod and node each one is. */
  backends: Array<{ address: string; pod: string; node: string; answered: number }>;
  /** Answers per pod name, plus TIMEOUT / ERROR … for connections nothing answered. */
  counts: Record<string, number>;
  probes: number;
  /** Every connection answered by a backend, and at least two backends answered. */
  ok: boolean;
  detail?: string;
}

export interface PolicyPair {
  from: string;
  fromApp: string;
  fromNode: string;
  to: string;
  toNode: string;
  expected: 'allowed' | 'denied';
  /** What the connection got: the server's name, TIMEOUT, ERROR … */
  got: string;
  verdict: 'allowed' | 'denied';
  ok: boolean;
  /** A `dropped` flow event (reason policy) of this pair was seen on the target's node. */
  dropEvent: boolean;
}

export interface AppsReport {
  service?: ServiceResult;
  policy: PolicyPair[];
  policyName?: string;
  policyError?: string;
  /** The service spreads over ≥ 2 backends and every pair's verdict is the policy's. */
  ok: boolean;
}

/** Every pod of the lab with its node and app label. */
export function labPods(s: LabState): LabPod[] {
  return s.nodes.flatMap((node) =>
    [...(node.pod ? [node.pod] : []), ...(node.extraPods ?? [])].map((pod) => ({ node, pod, name: pod.name ?? `${node.name}-pod`, app: pod.labels?.app ?? '' })),
  );
}

async function nrdctlJson<T>(socket: string, args: string[]): Promise<T> {
  const r = await run([process.execPath, NRDCTL, '--socket', socket, ...args, '-o', 'json'], { allowFailure: true, timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`nrdctl ${args.join(' ')}: ${(r.stderr || r.stdout).trim()}`);
  return JSON.parse(r.stdout) as T;
}

async function probe(from: LabPod, addr: string, port: number, count: number): Promise<string[]> {
  const r = await run(['ip', 'netns', 'exec', from.pod.ns, process.execPath, '-e', PROBE, addr, String(port), String(count), String(CONNECT_TIMEOUT_MS)], {
    allowFailure: true,
    timeoutMs: count * CONNECT_TIMEOUT_MS + 10_000,
  });
  if (r.code !== 0) return [`ERROR client exit ${r.code}: ${r.stderr.trim().slice(0, 120)}`];
  return JSON.parse(r.stdout.trim()) as string[];
}

async function collectService(s: LabState, pods: LabPod[]): Promise<ServiceResult | undefined> {
  const svc = s.service;
  const client = pods.find((p) => p.app === 'other') ?? pods[0];
  if (!svc || !client) return undefined;
  const backends = svc.backends.map((address) => {
    const p = pods.find((x) => `${x.pod.ip}:${svc.backendPort}` === address);
    return { address, pod: p?.name ?? '?', node: p?.node.name ?? '?', answered: 0 };
  });
  const base = { vip: svc.vip, port: svc.port, client: client.name, clientNode: client.node.name, backends, counts: {}, probes: 0, ok: false };
  // The record reaches the client node's datapath through etcd: wait for every backend to be active there.
  try {
    await waitFor(
      async () => {
        const list = await nrdctlJson<ServicesResponse>(client.node.socket, ['service', 'list']);
        const d = list.services.find((x) => x.name === svc.name)?.datapath;
        return d !== undefined && d.backends.filter((b) => b.state === 'active').length === svc.backends.length;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: `${client.node.name}'s datapath to hold service ${svc.name} with ${svc.backends.length} active backends` },
    );
  } catch (err) {
    return { ...base, detail: err instanceof Error ? err.message : String(err) };
  }
  const got = await probe(client, svc.vip, svc.port, SERVICE_PROBES);
  const counts: Record<string, number> = {};
  for (const g of got) counts[g] = (counts[g] ?? 0) + 1;
  for (const b of backends) b.answered = counts[b.pod] ?? 0;
  const answered = backends.reduce((n, b) => n + b.answered, 0);
  const spread = backends.filter((b) => b.answered > 0).length;
  return { ...base, backends, counts, probes: got.length, ok: got.length === SERVICE_PROBES && answered === got.length && spread >= 2 };
}

async function collectPolicy(s: LabState, pods: LabPod[]): Promise<Pick<AppsReport, 'policy' | 'policyError'>> {
  const db = pods.find((p) => p.app === 'db');
  if (!s.policy || !db) return { policy: [], policyError: 'no policy or no app=db pod recorded' };
  try {
    await waitFor(
      async () => {
        const v = await nrdctlJson<EndpointPolicyView>(db.node.socket, ['policy', 'get', db.name]);
        return v.applied && v.enforcement.ingress;
      },
      { timeoutMs: 20_000, intervalMs: 250, what: `${db.node.name}: policy of ${db.name} applied` },
    );
  } catch (err) {
    return { policy: [], policyError: err instanceof Error ? err.message : String(err) };
  }
  const monitor = spawnProcess([process.execPath, NRDCTL, '--socket', db.node.socket, 'monitor', '--verdict', 'dropped', '-o', 'json'], {
    name: `${db.node.name}:monitor`,
    cwd: REPO_ROOT,
    captureBytes: 256 * 1024,
  });
  const events = (): FlowEvent[] =>
    monitor
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as FlowEvent);
  try {
    // The monitor subscribes asynchronously; a short head start so the drops are not missed.
    await sleep(300);
    const pairs = await Promise.all(
      pods
        .filter((p) => p !== db)
        .map(async (from): Promise<PolicyPair> => {
          const [got = 'ERROR no result'] = await probe(from, db.pod.ip, DB_PORT, 1);
          const expected = from.app === 'web' ? 'allowed' : 'denied';
          const verdict = got === db.name ? 'allowed' : 'denied';
          return { from: from.name, fromApp: from.app, fromNode: from.node.name, to: db.name, toNode: db.node.name, expected, got, verdict, ok: expected === verdict, dropEvent: false };
        }),
    );
    const isDrop = (p: PolicyPair, e: FlowEvent): boolean => {
      const src = pods.find((x) => x.name === p.from)!.pod.ip;
      return e.type === 'dropped' && e.reason === 'policy' && e.src === src && e.dst === db.pod.ip && e.dport === DB_PORT;
    };
    // Events arrive a moment after the drop; wait a little for the denied pairs' ones.
    await waitFor(() => pairs.filter((p) => p.verdict === 'denied').every((p) => events().some((e) => isDrop(p, e))), {
      timeoutMs: 3000,
      intervalMs: 100,
      what: 'drop events',
    }).catch(() => undefined);
    for (const p of pairs) p.dropEvent = events().some((e) => isDrop(p, e));
    return { policy: pairs };
  } finally {
    await monitor.stop(1000).catch(() => undefined);
  }
}

export async function collectApps(s: LabState): Promise<AppsReport> {
  const pods = labPods(s);
  const service = await collectService(s, pods);
  const pol = await collectPolicy(s, pods);
  const ok = service?.ok === true && !pol.policyError && pol.policy.length > 0 && pol.policy.every((p) => p.ok);
  return { ...(service ? { service } : {}), ...pol, ...(s.policy ? { policyName: s.policy.name } : {}), ok };
}

/** Left-aligned columns, two spaces apart, indented; the last column is not padded. */
function columns(rows: string[][], indent = '  '): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

export function formatApps(a: AppsReport): string {
  const out: string[] = [];
  const svc = a.service;
  out.push('', `== service ${svc ? `${svc.vip}:${svc.port}` : ''}: connections from one pod, per backend that answered ==`);
  if (!svc) out.push('  no service recorded');
  else {
    out.push(`  from ${svc.client} (${svc.clientNode}): ${svc.probes} connections`);
    if (svc.detail) out.push(`  FAIL ${svc.detail}`);
    const rows = [['BACKEND', 'POD', 'NODE', 'ANSWERED']];
    for (const b of svc.backends) rows.push([b.address, b.pod, b.node, `${b.answered}/${svc.probes}`]);
    out.push(columns(rows));
    const stray = Object.entries(svc.counts).filter(([k]) => !svc.backends.some((b) => b.pod === k));
    if (stray.length) out.push(`  not answered by a backend: ${stray.map(([k, c]) => `${k} ×${c}`).join(', ')}`);
    const spread = svc.backends.filter((b) => b.answered > 0).length;
    out.push(`  ${svc.ok ? 'ok' : 'FAIL'}: ${spread} of ${svc.backends.length} backends answered (on ${new Set(svc.backends.filter((b) => b.answered > 0).map((b) => b.node)).size} nodes)`);
  }
  out.push('', `== policy ${a.policyName ?? ''}: app=db admits TCP ${DB_PORT} from app=web only ==`);
  if (a.policyError) out.push(`  FAIL ${a.policyError}`);
  else {
    const rows = [['FROM', 'APP', 'TO', 'POLICY SAYS', 'GOT', 'DROP EVENT', '']];
    for (const p of a.policy) {
      rows.push([`${p.from} (${p.fromNode})`, p.fromApp, `${p.to}:${DB_PORT} (${p.toNode})`, p.expected, p.verdict === 'allowed' ? `connected (${p.got})` : `denied (${p.got})`, p.dropEvent ? 'yes' : '-', p.ok ? 'ok' : 'FAIL']);
    }
    out.push(columns(rows));
    const ok = a.policy.filter((p) => p.ok).length;
    out.push(`  ${ok}/${a.policy.length} pairs as the policy says (DROP EVENT: nrdctl monitor --verdict dropped on the db node)`);
  }
  return out.join('\n');
}
