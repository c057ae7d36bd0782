// kill -9 of nrd in the middle of a TCP transfer between two workload endpoints on two nodes: the
// endpoint datapath (tc programs on the host veths, maps and links pinned on bpffs) and the kernel
// routes keep forwarding while no daemon runs, and the restarted daemon adopts all of it.
// One BIRD ToR, etcd, two nodes running nrd (native routes over BGP); one endpoint per node made
// with `nrdctl endpoint add`; iperf3 between them, first a 12 s baseline, then 12 s with nrd on
// the client's node killed (SIGKILL) at t≈3 s and restarted at once. Checked: no 1-s interval
// without bytes, retransmissions within the baseline's plus a margin, and on both nodes the same
// nrd/nrd-ep routes and the same tcx link and program ids on the endpoint veths afterwards.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { EndpointView } from '../../../daemon/endpoints/api-types.js';
import { Fabric, type FabricNode } from '../../lib/fabric.js';
import type { Host } from '../../lib/netns.js';
import { run, type ManagedProcess } from '../../lib/proc.js';
import { sleep, waitFor } from '../../lib/wait.js';
import { waitAllReady, waitPath } from './helpers.js';

const SECONDS = 12;
const KILL_AT_MS = 3000;
const PORT = 5201;
/**
 * The transfer is paced (iperf3 -b): an unpaced flow saturates the 2-core machine, and the losses
 * of an overloaded CPU (thousands of retransmissions, varying widely between runs) would hide the
 * ones a datapath stall causes. At this rate a healthy path retransmits next to nothing.
 */
const RATE = '400M';
/**
 * Retransmissions allowed above the baseline run: 50 segments or half the baseline, whichever is
 * more. Two runs on a shared 2-core machine differ by a few dozen retransmissions on their own;
 * a stall of the datapath (packets dropped for the hundreds of ms a restart takes) costs hundreds.
 */
const retransMargin = (baseline: number): number => Math.max(50, Math.ceil(baseline / 2));

const fabric = Fabric.use(after, { tag: 'e2erul', tors: 1, mode: 'native', nodes: [{}, {}] });

interface Ep {
  host: Host;
  node: FabricNode;
  view: EndpointView;
  ip: string;
}

let n1: FabricNode;
let n2: FabricNode;
let client: Ep;
let server: Ep;
let iperfServer: ManagedProcess | undefined;

async function addEndpoint(node: FabricNode, name: string): Promise<Ep> {
  const host = await fabric.topo.host(name);
  const view = await node.nrdctl<EndpointView>(['endpoint', 'add', name, '--netns', `/run/netns/${host.ns}`]);
  const ip = view.ips.find((a) => !a.includes(':'));
  assert.ok(ip, `${name}: no IPv4 address: ${JSON.stringify(view)}`);
  return { host, node, view, ip };
}

/** The node's routes of nrd (proto 220 "nrd") and of its endpoints (proto 221 "nrd-ep"), both families. */
async function ownedRoutes(node: FabricNode): Promise<string> {
  const lines: string[] = [];
  for (const fam of ['-4', '-6']) {
    const r = await node.host.ip([fam, 'route', 'show', 'table', 'all']);
    lines.push(...r.stdout.split('\n').filter((l) => /\bproto (nrd|nrd-ep|220|221)\b/.test(l)));
  }
  return lines.sort().join('\n');
}

/**
 * The endpoint datapath's pinned links on the node (links/<ifname>/ep_ingress on the host veths,
 * dev_ingress/dev_egress on the uplink) with their link and program ids. The XDP prefilter is
 * left out: it is reloaded at every start by design.
 */
async function endpointAttachments(node: FabricNode): Promise<string> {
  const root = join(node.pinPath, 'links');
  const out: string[] = [];
  for (const ifname of readdirSync(root)) {
    for (const pin of readdirSync(join(root, ifname))) {
      if (!/^(ep|dev)_/.test(pin)) continue;
      const r = await run(['bpftool', '-j', 'link', 'show', 'pinned', join(root, ifname, pin)]);
      const l = JSON.parse(r.stdout) as { id: number; prog_id: number };
      out.push(`${ifname}/${pin} link ${l.id} prog ${l.prog_id}`);
    }
  }
  return out.sort().join('\n');
}

interface IperfResult {
  intervals: Array<{ sum: { start: number; bytes: number } }>;
  end: { sum_sent: { bytes: number; retransmits?: number } };
}

function startClient(): ManagedProcess {
  return client.host.spawn(['iperf3', '-c', server.ip, '-p', String(PORT), '-t', String(SECONDS), '-b', RATE, '-i', '1', '-J', '--connect-timeout', '3000'], {
    name: `${client.host.name}:iperf3`,
    captureBytes: 1024 * 1024,
  });
}

async function finish(proc: ManagedProcess): Promise<IperfResult> {
  const exit = await Promise.race([proc.exited, sleep((SECONDS + 15) * 1000).then(() => undefined)]);
  if (!exit) await proc.stop();
  const out = proc.output();
  const json = out.slice(out.indexOf('{'), out.lastIndexOf('}') + 1);
  let r: IperfResult & { error?: string };
  try {
    r = JSON.parse(json) as IperfResult & { error?: string };
  } catch {
    throw new Error(`iperf3 output is not JSON (exit ${JSON.stringify(exit)}):\n${out.slice(0, 2000)}`);
  }
  assert.equal(r.error, undefined, `iperf3: ${r.error}`);
  assert.equal(exit?.code, 0, `iperf3 exit ${JSON.stringify(exit)}`);
  return r;
}

const summary = (r: IperfResult): string =>
  `${r.intervals.map((i) => `${i.sum.start.toFixed(0)}s:${(i.sum.bytes / 1e6).toFixed(1)}MB`).join(' ')} retransmits=${r.end.sum_sent.retransmits}`;

let baseline: IperfResult;

before(async () => {
  await fabric.build();
  [n1, n2] = fabric.nodes as [FabricNode, FabricNode];
  await Promise.all(fabric.nodes.map((n) => n.waitCidr()));
  await fabric.waitSessions();
  await waitAllReady(fabric.nodes);
  client = await addEndpoint(n1, 'rulc');
  server = await addEndpoint(n2, 'ruls');
  await waitPath(n1, n2, 'native');
  await waitPath(n2, n1, 'native');
  await waitFor(() => client.host.ping(server.ip), { timeoutMs: 15_000, intervalMs: 200, what: `ping ${client.ip} → ${server.ip}` });
  iperfServer = server.host.spawn(['iperf3', '-s', '-p', String(PORT)], { name: `${server.host.name}:iperf3-s` });
  // iperf3 buffers its banner when stdout is not a terminal: ask the socket table instead.
  await waitFor(async () => (await server.host.exec(['ss', '-Hltn', `sport = :${PORT}`])).stdout.includes(`:${PORT}`),
    { timeoutMs: 5000, intervalMs: 50, what: 'iperf3 server listening' });
});

after(async () => {
  await iperfServer?.stop();
});

test(`baseline: ${SECONDS} s of iperf3 between endpoints on two nodes without a restart`, async () => {
  baseline = await finish(startClient());
  assert.ok(baseline.intervals.length >= SECONDS, summary(baseline));
  assert.ok(baseline.intervals.every((i) => i.sum.bytes > 0), `a stalled interval without a restart: ${summary(baseline)}`);
  console.log(`baseline: ${summary(baseline)}`);
});

test('kill -9 of nrd on the client\'s node at t≈3 s, restarted at once: no stall, no extra retransmissions, nothing changed', async () => {
  assert.ok(baseline, 'the baseline run must have passed');
  const routesBefore = await Promise.all([ownedRoutes(n1), ownedRoutes(n2)]);
  const attachBefore = await Promise.all([endpointAttachments(n1), endpointAttachments(n2)]);
  assert.match(attachBefore[0]!, new RegExp(client.view.hostIfname), `n1: the client's veth has nrd's program:\n${attachBefore[0]}`);
  assert.match(attachBefore[1]!, new RegExp(server.view.hostIfname), `n2: the server's veth has nrd's program:\n${attachBefore[1]}`);

  const proc = startClient();
  await sleep(KILL_AT_MS);
  const oldPid = n1.nrd!.pid;
  await n1.stop('SIGKILL');
  await n1.start();
  assert.notEqual(n1.nrd!.pid, oldPid);
  const r = await finish(proc);
  await n1.waitReady();
  console.log(`with kill -9: ${summary(r)}`);

  assert.ok(r.intervals.length >= SECONDS, summary(r));
  const stalled = r.intervals.filter((i) => i.sum.bytes === 0);
  assert.deepEqual(stalled.map((i) => i.sum.start), [], `1-s intervals without a byte: ${summary(r)}`);
  const base = baseline.end.sum_sent.retransmits ?? 0;
  const now = r.end.sum_sent.retransmits ?? 0;
  assert.ok(now <= base + retransMargin(base), `retransmits ${now} > baseline ${base} + ${retransMargin(base)}:\n${summary(r)}\nbaseline ${summary(baseline)}`);

  assert.deepEqual(await Promise.all([ownedRoutes(n1), ownedRoutes(n2)]), routesBefore, 'nrd/nrd-ep routes on n1, n2 before vs after');
  assert.deepEqual(await Promise.all([endpointAttachments(n1), endpointAttachments(n2)]), attachBefore, 'endpoint veth attachments (link and program ids)');
});
