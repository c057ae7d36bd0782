// nrdctl's cluster-state commands against a real nrd (in a test network namespace, with a real etcd
// on the namespace's default endpoint): bad service/policy input is refused, nrd's reason is
// printed, the exit code is non-zero and etcd's revision does not move; good input lands in etcd;
// nodes, endpoints and decommission answer; the state metrics are exported.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { METRICS_PORT, NRDCTL, NrdSandbox, runNode, type NrdProcess } from '../daemon/harness.js';
import type { NodesResponse } from '../../../daemon/state/api-types.js';
import { waitFor } from '../../lib/wait.js';

const sb = NrdSandbox.use(after, 'statectl');
let nrd: NrdProcess;
let socket: string;

before(async () => {
  await sb.build();
  socket = join(sb.dir, 'nrd.sock');
  nrd = sb.spawnNrd({ site: sb.site({ socket, metricsPort: METRICS_PORT }) });
});

after(async () => {
  await nrd?.kill();
});

/** etcd's current revision (moves on every write anywhere). */
function revision(): number {
  return (JSON.parse(sb.etcd!.etcdctl(['get', '/nrd/', '--prefix', '--keys-only', '-w', 'json'])) as { header: { revision: number } }).header.revision;
}

/** nrdctl as an operator types it: global options, command words, the command's own flags. */
function ctl(words: string[], args: string[] = [], json = false): ReturnType<typeof runNode> {
  return runNode(NRDCTL, ['--socket', socket, ...(json ? ['-o', 'json'] : []), ...words, ...args]);
}

test('nrd starts with the state subsystem ready: own CIDR claimed in etcd, node listed', async () => {
  const nodes = await waitFor(
    async () => {
      const r = await ctl(['nodes'], [], true);
      if (r.code !== 0) return undefined;
      const body = JSON.parse(r.stdout) as NodesResponse;
      // Readiness is waited for, not sampled: the liveness key is written by the lease keeper
      // after the record and the claim, so a loaded machine can show the node alive a bit later.
      return body.synced && body.nodes.some((n) => n.self && n.alive && n.podCidrs.length === 1) ? body : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 200, what: `nrdctl nodes shows this node alive with a CIDR; ${nrd.describe()}` },
  );
  const self = nodes.nodes.find((n) => n.self)!;
  assert.equal(self.name, 'nrdt-node');
  assert.equal(self.alive, true);
  assert.match(self.podCidrs[0]!, /^10\.244\.\d+\.0\/24$/);
  assert.match(sb.etcd!.etcdctl(['get', '/nrd/v1/cidrs/', '--prefix', '--print-value-only']), /"node":"nrdt-node"/);
  const table = await ctl(['nodes']);
  assert.match(table.stdout, /^nrdt-node \(this node\)\s+192\.0\.2\.11\s+yes\s+10\.244\./m);
});

test('bad service and policy input through nrdctl: refused, reason printed, non-zero exit, etcd unchanged', async () => {
  const good = join(sb.dir, 'web.yaml');
  writeFileSync(good, 'name: web\nvip: 10.96.0.10\nport: 80\nprotocol: tcp\nbackends:\n  - {ip: 10.244.1.2, port: 8080}\n');
  const ok = await ctl(['service', 'set'], ['-f', good]);
  assert.equal(ok.code, 0, ok.stderr);
  const rev = revision();
  const cases: Array<{ words: string[]; args: string[]; reason: RegExp }> = [
    { words: ['service', 'set'], args: ['--name', 'web', '--vip', '10.96.0.300', '--port', '80'], reason: /service\.vip: "10\.96\.0\.300" is not an IP address/ },
    { words: ['service', 'set'], args: ['--name', 'dns', '--vip', '10.96.0.53', '--port', '53', '--protocol', 'icmp'], reason: /service\.protocol: protocol must be one of tcp, udp, sctp, got "icmp"/ },
    { words: ['service', 'set'], args: ['--name', 'v6', '--vip', '10.96.0.6', '--port', '80', '--backend', '[fd00::1]:80'], reason: /service\.backends\[0\]\.ip: fd00::1 is not of the VIP's address family/ },
    { words: ['service', 'set'], args: ['--name', 'Bad_Name', '--vip', '10.96.0.7', '--port', '80'], reason: /service\.name: "Bad_Name" is not a valid name/ },
  ];
  const badSvc = join(sb.dir, 'bad-svc.yaml');
  writeFileSync(badSvc, 'name: web\nvip: 10.96.0.10\nport: 80\nweight: 3\n');
  cases.push({ words: ['service', 'set'], args: ['-f', badSvc], reason: /service: unknown field "weight"/ });
  const badPol = join(sb.dir, 'bad-pol.yaml');
  writeFileSync(badPol, 'name: db\nselector: {app: db}\ningress:\n  - from: [{cidr: 10.0.0.0/33}]\n    ports: [{port: 5432}]\n');
  cases.push({ words: ['policy', 'set'], args: ['-f', badPol], reason: /policy\.ingress\[0\]\.from\[0\]\.cidr: .*prefix length/ });
  const badPorts = join(sb.dir, 'bad-ports.yaml');
  writeFileSync(badPorts, 'name: db\nselector: {app: db}\negress:\n  - to: [{labels: {app: web}}]\n    ports: [{port: 9000, endPort: 8000}]\n');
  cases.push({ words: ['policy', 'set'], args: ['-f', badPorts], reason: /policy\.egress\[0\]\.ports\[0\]\.endPort: 8000 is below port 9000/ });
  for (const c of cases) {
    const r = await ctl(c.words, c.args);
    assert.equal(r.code, 1, `${c.args.join(' ')}: exit ${r.code}; ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /nrd answered 400 invalid: /, r.stderr);
    assert.match(r.stderr, c.reason);
    assert.equal(r.stdout, '');
  }
  assert.equal(revision(), rev, 'etcd revision unchanged: nothing was written');
  const list = await ctl(['service', 'list'], [], true);
  // The record as stored; the datapath's view (additive `datapath` field) is there once the
  // service reached the BPF maps, with the same backend active.
  const services = JSON.parse(list.stdout).services as Array<Record<string, unknown> & { datapath?: { backends: Array<{ ip: string; port: number; state: string }> } }>;
  assert.deepEqual(services.map(({ datapath: _dp, ...rec }) => rec), [{ name: 'web', vip: '10.96.0.10', port: 80, protocol: 'tcp', backends: [{ ip: '10.244.1.2', port: 8080 }] }]);
  for (const s of services) {
    if (s.datapath) assert.deepEqual(s.datapath.backends.map((b) => [b.ip, b.port, b.state]), [['10.244.1.2', 8080, 'active']]);
  }
});

test('policy set/list/del, service del, endpoints, decommission of an unknown node (404)', async () => {
  const pol = join(sb.dir, 'pol.yaml');
  writeFileSync(pol, 'name: db\nselector: {app: db}\ningress:\n  - from: [{labels: {app: web}}, {cidr: 192.0.2.0/24}]\n    ports: [{port: 5432}]\n');
  const set = await ctl(['policy', 'set'], ['-f', pol]);
  assert.equal(set.code, 0, set.stderr);
  assert.match(sb.etcd!.etcdctl(['get', '/nrd/v1/policies/db', '--print-value-only']), /"selector":\{"app":"db"\}/);
  const list = await ctl(['policy', 'list']);
  assert.match(list.stdout, /^db\s+app=db\s+app=web\|192\.0\.2\.0\/24:tcp\/5432\s+-$/m);
  assert.equal((await ctl(['policy', 'del', 'db'])).code, 0);
  const gone = await ctl(['policy', 'del', 'db']);
  assert.equal(gone.code, 1);
  assert.match(gone.stderr, /404 not_found: no policy db/);
  assert.equal((await ctl(['service', 'del', 'web'])).code, 0);
  const eps = await ctl(['endpoints'], [], true);
  assert.equal(eps.code, 0, eps.stderr);
  assert.deepEqual(JSON.parse(eps.stdout).endpoints, []);
  const dec = await ctl(['node', 'decommission', 'ghost']);
  assert.equal(dec.code, 1);
  assert.match(dec.stderr, /404 not_found: no node ghost/);
});

test('state metrics are exported', async () => {
  const m = await sb.httpGet(METRICS_PORT, '/metrics');
  assert.equal(m.status, 200);
  assert.match(m.body, /^nrd_etcd_up 1$/m);
  assert.match(m.body, /^nrd_cidr_allocated\{family="ipv4"\} 1$/m);
  assert.match(m.body, /^nrd_etcd_requests_total\{op="txn",result="ok"\} \d+$/m);
  assert.match(m.body, /^nrd_subsystem_ready\{subsystem="state"\} 1$/m);
});

test('records refused on admission (real etcd, real nrd): a default-route claim, blocks outside the pool or of the wrong size and a node at "not-an-ip" are skipped, the good node still flows; a decommission name with "/" is a 400', async () => {
  const put = (key: string, value: unknown): void => void sb.etcd!.etcdctl(['put', key, JSON.stringify(value)]);
  const node = (name: string, address: string): Record<string, unknown> => ({ name, address, podCidrs: [], version: 'x', capabilities: [] });
  put('/nrd/v1/nodes/peer2', node('peer2', '192.0.2.12'));
  put('/nrd/v1/cidrs/ipv4/10.244.77.0_24', { node: 'peer2', at: 'x' });
  put('/nrd/v1/cidrs/ipv4/0.0.0.0_0', { node: 'peer2', at: 'x' });
  put('/nrd/v1/cidrs/ipv4/198.51.100.0_24', { node: 'peer2', at: 'x' });
  put('/nrd/v1/cidrs/ipv4/10.244.80.0_23', { node: 'peer2', at: 'x' });
  put('/nrd/v1/nodes/peer3', node('peer3', 'not-an-ip'));
  put('/nrd/v1/cidrs/ipv4/10.244.78.0_24', { node: 'peer3', at: 'x' });
  const body = await waitFor(
    async () => {
      const r = await ctl(['nodes'], [], true);
      const b = r.code === 0 ? (JSON.parse(r.stdout) as NodesResponse) : undefined;
      return b && (b.rejected ?? []).length >= 4 && b.nodes.some((n) => n.name === 'peer2') ? b : undefined;
    },
    { timeoutMs: 20_000, intervalMs: 200, what: `nrdctl nodes lists peer2 and the refused records; ${nrd.describe()}` },
  );
  assert.deepEqual(body.nodes.find((n) => n.name === 'peer2')?.podCidrs, ['10.244.77.0/24']);
  const refused = new Map((body.rejected ?? []).map((r) => [r.key, r.reason]));
  assert.equal(refused.get('/nrd/v1/cidrs/ipv4/0.0.0.0_0'), 'outside_pool');
  assert.equal(refused.get('/nrd/v1/cidrs/ipv4/198.51.100.0_24'), 'outside_pool');
  assert.equal(refused.get('/nrd/v1/cidrs/ipv4/10.244.80.0_23'), 'wrong_mask');
  assert.equal(refused.get('/nrd/v1/nodes/peer3'), 'bad_address');
  const table = await ctl(['nodes']);
  assert.match(table.stdout, /^refused cidrs record \/nrd\/v1\/cidrs\/ipv4\/0\.0\.0\.0_0: outside_pool: /m);
  // The good claim reaches the kernel of nrd's namespace; the default route through peer2 never does.
  await waitFor(async () => ((await sb.node.exec(['ip', '-4', 'route', 'show', '10.244.77.0/24'])).stdout.trim() !== '' ? true : undefined), {
    timeoutMs: 15_000,
    intervalMs: 200,
    what: 'route to peer2\'s CIDR',
  });
  const routes = (await sb.node.exec(['ip', '-4', 'route', 'show'])).stdout;
  assert.doesNotMatch(routes, /^default via 192\.0\.2\.12/m, routes);
  assert.doesNotMatch(routes, /198\.51\.100\.0\/24|10\.244\.78\.0\/24|10\.244\.80\.0\/23/, routes);
  const m = await sb.httpGet(METRICS_PORT, '/metrics');
  assert.match(m.body, /^nrd_state_rejected_records_total\{kind="cidrs",reason="outside_pool"\} 2$/m);
  assert.match(m.body, /^nrd_state_rejected_records_total\{kind="nodes",reason="bad_address"\} 1$/m);

  const rev = revision();
  const dec = await ctl(['node', 'decommission', 'peer2/x'], ['--force']);
  assert.equal(dec.code, 1);
  assert.match(dec.stderr, /400 invalid: node name/);
  assert.equal(revision(), rev, 'nothing written');
});
