// The lab in short mode (root): up → every node's nrdctl status answers, its node.interface is
// its real uplink and its datapath loads into the lab's bpffs; each node (own AS) routes every
// other node's pod CIDR natively (BGP through the BIRD ToR, which installs them in its FIB), and
// every pod answers pings from every other pod and from the ToR → down → nothing left (namespaces
// with the pods, processes, state dir, the bpffs mount, pins). The report's service lines show a
// pod's connections to the VIP answered by backends on two nodes, its policy lines web→db
// connected and other→db denied (with the drop's flow event); the format is checked without a
// lab. Needs the built daemon and CLI.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync, rmSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labUp, labDown, makePlan, probeNode, type LabOptions } from '../../lab/lab.js';
import { siteFile, REPO_ROOT, NODE_ASN_BASE, POD_GATEWAY, EXT_ADDRESS } from '../../lab/plan.js';
import { parsePing, formatPings, type MasqResult, type NodeEndpoints, type TorRoute } from '../../lab/report.js';
import type { RouteEntryView } from '../../../daemon/routing/api-types.js';
import type { LabState } from '../../lab/state.js';
import { formatApps, type AppsReport } from '../../lab/report-apps.js';
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
  // All at once: each check-config is a Node start, and the lab test has a time budget.
  await Promise.all(
    plan.nodes.map(async (n) => {
      const file = join(plan.configDir, `${n.name}.check.yaml`);
      writeFileSync(file, siteFile(plan, n));
      const r = await run([process.execPath, join(REPO_ROOT, 'dist/daemon/main.js'), 'check-config', file], { allowFailure: true });
      assert.equal(r.code, 0, `check-config ${n.name}: ${r.stdout}${r.stderr}`);
    }),
  );
});

test('ping summary parsing and the matrix mark failures', () => {
  const ok = '--- 10.244.45.10 ping statistics ---\n3 packets transmitted, 3 received, 0% packet loss, time 405ms\nrtt min/avg/max/mdev = 0.098/0.142/0.227/0.059 ms\n';
  assert.deepEqual(parsePing(ok), { sent: 3, received: 3, rttMs: 0.142 });
  const lost = '3 packets transmitted, 0 received, 100% packet loss, time 2040ms\n';
  assert.deepEqual(parsePing(lost), { sent: 3, received: 0, rttMs: null });
  const s = {
    nodes: [
      { name: 'node1', pod: { ns: 'a', cidr: '10.244.1.0/24', ip: '10.244.1.10', hostIf: 'pod0', podIf: 'eth0' } },
      { name: 'node2', pod: { ns: 'b', cidr: '10.244.2.0/24', ip: '10.244.2.10', hostIf: 'pod0', podIf: 'eth0' } },
    ],
  } as unknown as LabState;
  const text = formatPings(s, [
    { from: 'node1', fromAddress: '10.244.1.10', to: 'node2', toAddress: '10.244.2.10', ok: true, sent: 3, received: 3, rttMs: 0.1 },
    { from: 'node2', fromAddress: '10.244.2.10', to: 'node1', toAddress: '10.244.1.10', ok: false, sent: 3, received: 0, rttMs: null, detail: 'x' },
  ]);
  assert.match(text, /^node1 pod 10\.244\.1\.10\s+-\s+ok 0\.100 ms$/m, text);
  assert.match(text, /^node2 pod 10\.244\.2\.10\s+FAIL\s+-$/m, text);
  assert.match(text, /^FAIL node2 \(10\.244\.2\.10\) → node1 \(10\.244\.1\.10\): x$/m, text);
  assert.match(text, /^1\/2 pings answered/m, text);
});

test('the service and policy lines: answers per backend, each pair with the policy\'s verdict', () => {
  const a: AppsReport = {
    service: {
      vip: '10.96.0.10', port: 80, client: 'node1-other', clientNode: 'node1', probes: 30, ok: true,
      backends: [
        { address: '10.244.1.10:8080', pod: 'node1-pod', node: 'node1', answered: 18 },
        { address: '10.244.2.10:8080', pod: 'node2-pod', node: 'node2', answered: 12 },
      ],
      counts: { 'node1-pod': 18, 'node2-pod': 12 },
    },
    policyName: 'db-from-web',
    policy: [
      { from: 'node1-pod', fromApp: 'web', fromNode: 'node1', to: 'node2-db', toNode: 'node2', expected: 'allowed', got: 'node2-db', verdict: 'allowed', ok: true, dropEvent: false },
      { from: 'node1-other', fromApp: 'other', fromNode: 'node1', to: 'node2-db', toNode: 'node2', expected: 'denied', got: 'TIMEOUT', verdict: 'denied', ok: true, dropEvent: true },
      { from: 'node2-pod', fromApp: 'web', fromNode: 'node2', to: 'node2-db', toNode: 'node2', expected: 'allowed', got: 'TIMEOUT', verdict: 'denied', ok: false, dropEvent: false },
    ],
    ok: false,
  };
  const text = formatApps(a);
  assert.match(text, /^== service 10\.96\.0\.10:80: /m, text);
  assert.match(text, /^  from node1-other \(node1\): 30 connections$/m, text);
  assert.match(text, /^  10\.244\.1\.10:8080\s+node1-pod\s+node1\s+18\/30$/m, text);
  assert.match(text, /^  ok: 2 of 2 backends answered \(on 2 nodes\)$/m, text);
  assert.match(text, /^  node1-pod \(node1\)\s+web\s+node2-db:5432 \(node2\)\s+allowed\s+connected \(node2-db\)\s+-\s+ok$/m, text);
  assert.match(text, /^  node1-other \(node1\)\s+other\s+node2-db:5432 \(node2\)\s+denied\s+denied \(TIMEOUT\)\s+yes\s+ok$/m, text);
  assert.match(text, /^  node2-pod .*FAIL$/m, text);
  assert.match(text, /^  2\/3 pairs as the policy says/m, text);
});

test('lab up (short): pods ping across nodes over native routes; down leaves nothing', { timeout: 150_000 }, async () => {
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
  // tor, etcd, the external host, three nodes, their three web pods, node1's other and node3's db.
  assert.equal((await listNamespaces(`${opts.name}-`)).length, 11);
  const out = lines.join('\n');

  // Each node in its own AS, peering with the ToR's AS 65000, Established, one prefix out and the
  // other nodes' two in (the ToR's re-advertisements survive the AS-path loop check).
  const traffic = report.traffic;
  assert.ok(traffic, `no traffic report:\n${out}`);
  for (const [i, n] of traffic.nodes.entries()) {
    assert.equal(n.asn, NODE_ASN_BASE + i + 1, n.name);
    assert.equal(n.peers?.asn, n.asn, `${n.name} runs AS ${String(n.peers?.asn)}`);
    const tor = n.peers?.peers.find((p) => p.address === '192.0.2.1');
    assert.ok(tor, `${n.name}: no ToR peer\n${out}`);
    assert.equal(tor.asn, 65000);
    assert.equal(tor.state, 'Established', `${n.name}: ${JSON.stringify(tor)}`);
    assert.equal(tor.prefixes.advertised, 1, `${n.name} advertised`);
    assert.equal(tor.prefixes.accepted, 2, `${n.name} accepted`);
  }

  // Pods: one endpoint per node made by nrd, addressed from the node's own CIDR, masqueraded to
  // the node's address towards the external host.
  for (const n of state.nodes) {
    assert.ok(n.pod, `${n.name} has no pod`);
    const [base, len] = n.pod.cidr.split('/') as [string, string];
    assert.equal(len, '24');
    assert.equal(n.pod.ip.split('.').slice(0, 3).join('.'), base.split('.').slice(0, 3).join('.'), `${n.pod.ip} from ${n.pod.cidr}`);
    assert.match(n.pod.hostIf, /^nrdv/, 'nrd made the veth');
    const name = n.name;
    const ip = n.pod.ip;
    const eps: NodeEndpoints | undefined = traffic.endpoints.find((e) => e.node === name);
    const own: NodeEndpoints['endpoints'][number] | undefined = eps?.endpoints.find((e) => e.name === `${name}-pod`);
    assert.deepEqual(own && [own.ips.includes(ip), own.state], [true, 'ready'], `${name} endpoints: ${JSON.stringify(eps)}`);
    const extra = { node1: [`${name}-other`], node3: [`${name}-db`] }[name] ?? [];
    assert.deepEqual(eps?.endpoints.map((e) => e.name).sort(), [`${name}-pod`, ...extra].sort(), `${name} endpoints`);
    const m: MasqResult | undefined = traffic.masquerade.find((x) => x.from === name);
    assert.equal(m?.seen, n.address, `${EXT_ADDRESS} saw ${n.name}'s pod as ${String(m?.seen)}: ${JSON.stringify(m)}`);
    const self = traffic.nodes.find((x) => x.name === n.name)!;
    assert.ok(self.routes?.routes.some((r) => r.prefix === n.pod!.cidr && r.mode === 'local'), `${n.name} does not hold ${n.pod.cidr} as local`);
    const podRoutes = (await run(['ip', '-n', n.pod.ns, '-j', 'route', 'show'])).stdout;
    assert.ok((JSON.parse(podRoutes) as Array<{ dst: string; gateway?: string }>).some((r) => r.dst === 'default' && r.gateway === POD_GATEWAY), podRoutes);
  }

  // Native routes: every node reaches every other node's CIDR through BGP (auto, the default
  // mode, once the hold-down is over), and the report's route tables say so.
  for (const n of traffic.nodes) {
    assert.equal(n.routes?.mode, 'auto', `${n.name} routing.mode`);
    for (const other of state.nodes.filter((x) => x.name !== n.name)) {
      const r: RouteEntryView | undefined = n.routes!.routes.find((x) => x.prefix === other.pod!.cidr);
      assert.ok(r && r.mode === 'native', `${n.name} → ${other.pod!.cidr}: ${JSON.stringify(r)}\n${out}`);
      assert.equal(r.node, other.name);
      assert.deepEqual(r.nextHops, [other.address], `${n.name} → ${other.name} next hops`);
      const row = new RegExp(`^\\s+${other.pod!.cidr.replace(/\./g, '\\.')}\\s+${other.name}\\s+native\\s+${other.address.replace(/\./g, '\\.')}`, 'm');
      assert.match(out, row, `report lacks the native row ${n.name} → ${other.name}`);
    }
  }
  assert.match(out, /routing\.mode auto .*nrd's default/, out);
  assert.match(out, /remote pod CIDRs: 6 native/, out);

  // The ToR installed every pod CIDR in its FIB (BIRD kernel protocol), via the owning node.
  for (const n of state.nodes) {
    const r: TorRoute | undefined = traffic.tor.find((x) => x.prefix === n.pod!.cidr);
    assert.deepEqual(r?.nextHops, [n.address], `ToR route for ${n.pod!.cidr}: ${JSON.stringify(traffic.tor)}`);
  }

  // Traffic: every pod answered every other pod and the ToR.
  assert.equal(traffic.pings.length, 3 * 2 + 3, JSON.stringify(traffic.pings));
  for (const p of traffic.pings) assert.equal(p.ok, true, `ping ${p.from} → ${p.to} (${p.toAddress}): ${p.detail}\n${out}`);
  assert.equal(traffic.pingsOk, true);
  assert.match(out, /^9\/9 pings answered/m, out);

  // The service: 30 connections from node1-other, every one answered by an app=web backend, on at
  // least two nodes. The policy: every web pod reaches node3-db, node1-other does not (dropped,
  // and the monitor on node3 saw it).
  const apps = report.apps;
  assert.ok(apps?.service, `no service report:\n${out}`);
  assert.equal(apps.service.client, 'node1-other');
  assert.equal(apps.service.backends.length, 3, JSON.stringify(apps.service));
  assert.equal(apps.service.backends.reduce((n, b) => n + b.answered, 0), 30, JSON.stringify(apps.service));
  assert.ok(new Set(apps.service.backends.filter((b) => b.answered > 0).map((b) => b.node)).size >= 2, JSON.stringify(apps.service));
  assert.match(out, /^== service 10\.96\.0\.10:80: /m, out);
  assert.match(out, /^  ok: \d of 3 backends answered/m, out);
  const pairs = Object.fromEntries(apps.policy.map((p) => [p.from, p]));
  assert.deepEqual(Object.keys(pairs).sort(), ['node1-other', 'node1-pod', 'node2-pod', 'node3-pod'], JSON.stringify(apps.policy));
  for (const w of ['node1-pod', 'node2-pod', 'node3-pod']) assert.equal(pairs[w]?.got, 'node3-db', `${w} → db: ${JSON.stringify(pairs[w])}`);
  assert.equal(pairs['node1-other']?.got, 'TIMEOUT', JSON.stringify(pairs['node1-other']));
  assert.equal(pairs['node1-other']?.dropEvent, true, `no drop event for other → db:\n${out}`);
  assert.match(out, /^  4\/4 pairs as the policy says/m, out);
  assert.equal(apps.ok, true);

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

  // A second up reports the running lab (labStatus: the table and the report, pings included)
  // instead of building another.
  lines.length = 0;
  const again = await labUp(opts);
  assert.ok(lines.some((l) => l.includes('already up')), lines.join('\n'));
  assert.equal(again.nodes.length, 3);
  assert.equal(again.ok, true, lines.join('\n'));
  assert.equal(again.traffic?.pingsOk, true, 'status pings again');
  assert.match(lines.join('\n'), /^node1\s+AS 64601\s/m, 'status reprints the report');
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

  const servers = state.nodes.flatMap((n) => [n.pod, ...(n.extraPods ?? [])].flatMap((p) => (p?.server ? [p.server] : [])));
  assert.equal(servers.length, 5, 'a name server recorded per pod');
  const pids = [
    state.keeper,
    ...state.topology.processes,
    ...(state.etcd ? [state.etcd.process] : []),
    ...state.nodes.flatMap((n) => (n.process ? [n.process] : [])),
    ...servers,
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
