// Services, identity policy and flow events end to end across two nodes running nrd (one BIRD
// ToR, etcd, native routes between the nodes). Everything is driven the way an operator drives
// it: `nrdctl endpoint add --labels`, `nrdctl service set`, `nrdctl policy set -f`, `nrdctl ct
// list`, `nrdctl policy get`, `nrdctl monitor --verdict dropped -o json`.
// Checked: a VIP spreads 40 connections from a client on n1 over backends on both nodes; a
// backend removed from the record takes no new connection (and shows as draining or is gone);
// nrd_ct holds the service's flows; `nrdctl monitor --endpoint other -o json` shows the service
// translation of a connection (VIP:port => backend) and, for a service without backends, the
// no_backend drop (the client gets a RST). A policy selecting app=db that admits TCP 5432 from app=web
// only: web→db:5432 connects (replies pass), other→db:5432 and web→db:5433 do not, db→web (no
// egress rule selects db, and web is selected by nothing) works; `policy get` shows the rule;
// the drop is a flow event with reason policy and the 5-tuple. With web also isolated (an egress
// policy to db:5432), replies still pass both enforced ends and db → web stops. Deleting the
// policies opens db again.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { EndpointView } from '../../../daemon/endpoints/api-types.js';
import type { EndpointPolicyView } from '../../../daemon/datapath/policy.js';
import type { FlowEvent } from '../../../daemon/datapath/events.js';
import type { CtListResponse } from '../../../daemon/api/ct-routes.js';
import type { ServicesResponse } from '../../../daemon/state/api-types.js';
import { Fabric, NRDCTL, POD_POOL, ROOT, type FabricNode } from '../../lib/fabric.js';
import type { Host } from '../../lib/netns.js';
import { spawnProcess, type ManagedProcess } from '../../lib/proc.js';
import { waitFor } from '../../lib/wait.js';
import { waitAllReady, waitPath } from './helpers.js';
import { waitPing } from './endpoint-helpers.js';

const VIP = '10.96.0.10';
const VIP_PORT = 80;
const BACKEND_PORT = 8080;
const DB_PORT = 5432;
const OTHER_PORT = 5433;
const WEB_PORT = 8000;

const fabric = Fabric.use(after, { tag: 'e2esvc', tors: 1, mode: 'native', pools: [POD_POOL], nodes: [{}, {}] });

interface Ep {
  name: string;
  host: Host;
  node: FabricNode;
  ip: string;
}

// A server that answers every connection with its own name and closes: the client learns which
// backend it reached without any state shared between them; then it echoes (connections kept open
// to it show whether their bytes still get through). A port written eNNNN only echoes.
const NAME_SERVER = `
const net = require('net');
const [name, ...ports] = process.argv.slice(1);
let up = 0;
for (const p of ports) {
  const echo = p.startsWith('e');
  net.createServer((c) => { c.on('error', () => {}); if (!echo) c.write(name + '\\n'); c.pipe(c); })
    .listen({ host: '0.0.0.0', port: Number(echo ? p.slice(1) : p) }, () => { if (++up === ports.length) console.log('LISTENING'); });
}
`;

// One connection kept open: a byte every 100 ms, and a line "ECHOED n" for every byte back.
const KEEPALIVE = `
const net = require('net');
const [addr, port] = process.argv.slice(1);
let n = 0;
const c = net.connect({ host: addr, port: Number(port) }, () => { console.log('CONNECTED'); setInterval(() => c.write('x'), 100); });
c.on('data', (d) => { n += d.length; console.log('ECHOED ' + n); });
c.on('error', (e) => { console.log('ERROR ' + e.message); process.exit(4); });
`;
const ECHO_PORT = 5434;

// Connections to addr:port until one reaches the backend named \`want\` (its first line); that one
// is kept open like KEEPALIVE (echo servers: bytes after the name come back).
const PINNED = `
const net = require('net');
const [addr, port, want] = process.argv.slice(1);
let tries = 0;
const attempt = () => {
  if (++tries > 60) { console.log('NEVER ' + want); process.exit(5); }
  const c = net.connect({ host: addr, port: Number(port) });
  let buf = '', n = -1;
  c.on('data', (d) => {
    if (n >= 0) { n += d.length; console.log('ECHOED ' + n); return; }
    buf += d;
    if (!buf.includes('\\n')) return;
    if (buf.trim() !== want) { c.destroy(); attempt(); return; }
    n = 0; console.log('PINNED ' + want); setInterval(() => c.write('x'), 100);
  });
  c.on('error', (e) => { console.log('ERROR ' + e.message); process.exit(4); });
};
attempt();
`;

// N connections one after the other, each with a short connect timeout; one result per
// connection: the name the server sent, or TIMEOUT / ERROR <code>.
const PROBE = `
const net = require('net');
const [addr, port, n, to] = process.argv.slice(1);
const one = () => new Promise((resolve) => {
  let data = '';
  const c = net.connect({ host: addr, port: Number(port) });
  const t = setTimeout(() => { c.destroy(); resolve('TIMEOUT'); }, Number(to));
  c.on('data', (d) => { data += d; if (data.includes('\\n')) { clearTimeout(t); c.destroy(); resolve(data.trim()); } });
  c.on('end', () => { clearTimeout(t); resolve(data.trim() || 'EMPTY'); });
  c.on('error', (e) => { clearTimeout(t); resolve('ERROR ' + (e.code || e.message)); });
});
(async () => { const out = []; for (let i = 0; i < Number(n); i++) out.push(await one()); console.log(JSON.stringify(out)); })();
`;

const servers: ManagedProcess[] = [];
let n1: FabricNode;
let n2: FabricNode;
let web: Ep;
let other: Ep;
let db: Ep;
const backends: Ep[] = [];

async function addEp(node: FabricNode, name: string, labels: string): Promise<Ep> {
  const host = await fabric.topo.host(name);
  const ep = await node.nrdctl<EndpointView>(['endpoint', 'add', name, '--netns', `/run/netns/${host.ns}`, '--labels', labels]).catch((e: unknown) => {
    throw new Error(`nrdctl endpoint add ${name} on ${node.name}: ${String(e)}\n${node.describe()}`);
  });
  const ip = ep.ips.find((a) => !a.includes(':'));
  assert.ok(ip, `${name}: no IPv4 address in ${JSON.stringify(ep)}`);
  return { name, host, node, ip };
}

async function serve(ep: Ep, ports: (number | string)[]): Promise<void> {
  const proc = ep.host.spawn([process.execPath, '-e', NAME_SERVER, ep.name, ...ports.map(String)], { name: `${ep.name}:srv`, captureBytes: 16 * 1024 });
  servers.push(proc);
  await waitFor(() => proc.output().includes('LISTENING') || (!proc.running() ? Promise.reject(new Error(`server ${ep.name} exited: ${proc.output()}`)) : false), {
    timeoutMs: 10_000,
    intervalMs: 50,
    what: `server in ${ep.name}`,
  });
}

/** `count` sequential connections from `from` to addr:port; what each one got. */
async function probe(from: Ep, addr: string, port: number, count = 1, timeoutMs = 1000): Promise<string[]> {
  const r = await from.host.exec([process.execPath, '-e', PROBE, addr, String(port), String(count), String(timeoutMs)], { timeoutMs: count * timeoutMs + 10_000 });
  return JSON.parse(r.stdout.trim()) as string[];
}

const tally = (xs: string[]): Record<string, number> => xs.reduce<Record<string, number>>((m, x) => ({ ...m, [x]: (m[x] ?? 0) + 1 }), {});

before(async () => {
  await fabric.build();
  [n1, n2] = fabric.nodes as [FabricNode, FabricNode];
  await Promise.all(fabric.nodes.map((n) => n.waitCidr()));
  await fabric.waitSessions();
  await waitAllReady(fabric.nodes);
  await waitPath(n1, n2, 'native');
  await waitPath(n2, n1, 'native');
  web = await addEp(n1, 'web', 'app=web');
  other = await addEp(n1, 'other', 'app=other');
  db = await addEp(n2, 'db', 'app=db');
  backends.push(await addEp(n1, 'be1', 'app=be'), await addEp(n2, 'be2', 'app=be'), await addEp(n2, 'be3', 'app=be'));
  await serve(web, [WEB_PORT]);
  await serve(db, [DB_PORT, OTHER_PORT, `e${ECHO_PORT}`]);
  for (const b of backends) await serve(b, [BACKEND_PORT]);
  await waitPing(web.host, db.ip, 'web → db');
});

after(async () => {
  for (const s of servers) await s.stop(1000).catch(() => undefined);
});

async function services(node: FabricNode): Promise<ServicesResponse['services']> {
  return (await node.nrdctl<ServicesResponse>(['service', 'list'])).services;
}

async function setService(bes: Ep[]): Promise<void> {
  await n1.nrdctl(['service', 'set', '--name', 'echo', '--vip', VIP, '--port', String(VIP_PORT), '--protocol', 'tcp', ...bes.flatMap((b) => ['--backend', `${b.ip}:${BACKEND_PORT}`])]);
}

/** Flow events printed by an `nrdctl monitor -o json` process. */
const monitorEvents = (monitor: ManagedProcess): FlowEvent[] =>
  monitor
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as FlowEvent);

test('service: a VIP spreads connections over backends on both nodes; a removed backend takes no new one; nrd_ct holds the flows; translation and no-backend events', async () => {
  const monitor = spawnProcess([process.execPath, NRDCTL, '--socket', n1.socket, 'monitor', '--endpoint', 'other', '-o', 'json'], {
    name: 'n1:monitor',
    cwd: ROOT,
    captureBytes: 512 * 1024,
  });
  servers.push(monitor);
  await setService(backends);
  await waitFor(
    async () => {
      const s = (await services(n1)).find((x) => x.name === 'echo');
      return s?.datapath?.backends.filter((b) => b.state === 'active').length === 3;
    },
    { timeoutMs: 15_000, intervalMs: 200, what: 'n1 datapath holds service echo with 3 active backends' },
  );
  const got = await probe(other, VIP, VIP_PORT, 40, 2000);
  const t = tally(got);
  for (const b of backends) assert.ok((t[b.name] ?? 0) >= 1, `40 connections to ${VIP}:${VIP_PORT}: ${JSON.stringify(t)}`);
  assert.equal(got.length, 40);
  assert.equal((t.be1 ?? 0) + (t.be2 ?? 0) + (t.be3 ?? 0), 40, `every connection reached a backend: ${JSON.stringify(t)}`);

  const ct = await n1.nrdctl<CtListResponse>(['ct', 'list']);
  const mine = ct.entries.filter((e) => e.service === 'echo');
  assert.ok(mine.length > 0, `nrdctl ct list shows flows of echo: ${JSON.stringify(ct.entries.slice(0, 5))}`);
  assert.ok(
    // Addresses are shown with their ports: the forward entry is client → VIP, the reply entry
    // backend → client.
    mine.some((e) => e.dir === 'fwd' && e.src.startsWith(`${other.ip}:`) && e.dst === `${VIP}:${VIP_PORT}`),
    `a forward flow of the client ${other.ip} to the VIP: ${JSON.stringify(mine.slice(0, 5))}`,
  );
  assert.ok(
    mine.some((e) => e.dir === 'reply' && backends.some((b) => e.src === `${b.ip}:${BACKEND_PORT}`) && e.dst.startsWith(`${other.ip}:`)),
    `a reply entry backend → client: ${JSON.stringify(mine.slice(0, 5))}`,
  );

  // Remove be3: no new connection may reach it once the datapath has the new record, while a
  // connection it already serves keeps working (draining).
  const gone = backends[2]!;
  const pinned = other.host.spawn([process.execPath, '-e', PINNED, VIP, String(VIP_PORT), gone.name], { name: 'other:pinned', captureBytes: 64 * 1024 });
  servers.push(pinned);
  const echoed = (): number => Number(/ECHOED (\d+)\s*$/.exec(pinned.output())?.[1] ?? 0);
  await waitFor(() => echoed() >= 3 || (!pinned.running() ? Promise.reject(new Error(pinned.describe())) : false), { timeoutMs: 15_000, intervalMs: 50, what: `a connection to ${gone.name} through the VIP` });
  await setService(backends.slice(0, 2));
  await waitFor(
    async () => {
      const s = (await services(n1)).find((x) => x.name === 'echo');
      const b = s?.datapath?.backends.find((x) => x.ip === gone.ip);
      return s?.backends.length === 2 && (b === undefined || b.state === 'draining');
    },
    { timeoutMs: 15_000, intervalMs: 200, what: `n1: ${gone.name} draining or gone from echo` },
  );
  const e0 = echoed();
  await waitFor(() => echoed() >= e0 + 5, { timeoutMs: 3000, intervalMs: 50, what: `the connection to ${gone.name} (draining) still echoes: ${pinned.output().slice(-300)}` });
  await pinned.stop(500);
  const after2 = tally(await probe(other, VIP, VIP_PORT, 40, 2000));
  assert.equal(after2[gone.name] ?? 0, 0, `after removing ${gone.name}: ${JSON.stringify(after2)}`);
  assert.equal((after2.be1 ?? 0) + (after2.be2 ?? 0), 40, JSON.stringify(after2));
  assert.ok((after2.be1 ?? 0) >= 1 && (after2.be2 ?? 0) >= 1, JSON.stringify(after2));
  await n1.nrdctl(['service', 'del', 'echo']);

  // The service translation of other's connections, as flow events of n1 (other's node).
  const xl = await waitFor(
    () => monitorEvents(monitor).find((e) => e.type === 'translated' && e.reason === 'service' && e.src === other.ip && e.dst === VIP && e.dport === VIP_PORT),
    { timeoutMs: 5000, intervalMs: 100, what: `flow event: translation of ${other.ip} → ${VIP}:${VIP_PORT}` },
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${monitor.describe()}`);
  });
  assert.ok(backends.some((b) => xl.translated?.addr === b.ip) && xl.translated?.port === BACKEND_PORT, JSON.stringify(xl));
  assert.ok(xl.serviceId > 0 && xl.backendId > 0 && xl.endpoint === 'other' && xl.dir === 'egress', JSON.stringify(xl));
  assert.ok(monitorEvents(monitor).every((e) => e.endpoint === 'other'), 'only other\'s events with --endpoint other');
  assert.ok(monitorEvents(monitor).every((e) => e.type !== 'forwarded'), 'no forwarded events by default (datapath.flowEvents.forwarded)');

  // A service without backends: the client's SYN is answered with a RST, a no_backend drop event.
  await n1.nrdctl(['service', 'set', '--name', 'empty', '--vip', VIP, '--port', String(VIP_PORT + 1), '--protocol', 'tcp']);
  await waitFor(async () => (await services(n1)).find((x) => x.name === 'empty')?.datapath !== undefined, {
    timeoutMs: 15_000, intervalMs: 200, what: 'n1 datapath holds service empty',
  });
  assert.deepEqual(await probe(other, VIP, VIP_PORT + 1), ['ERROR ECONNREFUSED'], 'a service without backend refuses at once');
  const nb = await waitFor(
    () => monitorEvents(monitor).find((e) => e.type === 'dropped' && e.reason === 'no_backend' && e.src === other.ip && e.dst === VIP && e.dport === VIP_PORT + 1),
    { timeoutMs: 5000, intervalMs: 100, what: `flow event: no_backend drop of ${other.ip} → ${VIP}:${VIP_PORT + 1}` },
  ).catch((err: unknown) => {
    throw new Error(`${(err as Error).message}\n${monitor.describe()}`);
  });
  assert.ok(nb.serviceId > 0 && nb.serviceId !== xl.serviceId, JSON.stringify(nb));
  await n1.nrdctl(['service', 'del', 'empty']);
  monitor.signal('SIGINT');
});

test('policy: db admits TCP 5432 from app=web only; replies pass; db → web unaffected; flow event of the drop; deleting the policy opens db again', async () => {
  // Before the policy: everything connects.
  assert.deepEqual(await probe(other, db.ip, DB_PORT), ['db'], 'other → db:5432 before the policy');

  // A connection other → db established before the policy: the policy's revision bump makes
  // the datapath check it again, and nothing admits it, so its bytes stop getting through.
  const keep = other.host.spawn([process.execPath, '-e', KEEPALIVE, db.ip, String(ECHO_PORT)], { name: 'other:keepalive', captureBytes: 64 * 1024 });
  servers.push(keep);
  const echoed = (): number => Number(/ECHOED (\d+)\s*$/.exec(keep.output())?.[1] ?? 0);
  await waitFor(() => echoed() >= 3, { timeoutMs: 5000, intervalMs: 50, what: `other → db:${ECHO_PORT} echoes: ${keep.output().slice(-500)}` });

  const monitor = spawnProcess([process.execPath, NRDCTL, '--socket', n2.socket, 'monitor', '--verdict', 'dropped', '-o', 'json'], {
    name: 'n2:monitor',
    cwd: ROOT,
    captureBytes: 256 * 1024,
  });
  try {
    const file = join(fabric.dir, 'db-policy.json');
    writeFileSync(file, JSON.stringify({ name: 'db-from-web', selector: { app: 'db' }, ingress: [{ from: [{ labels: { app: 'web' } }], ports: [{ port: DB_PORT, protocol: 'tcp' }] }] }));
    await n1.nrdctl(['policy', 'set', '-f', file]);
    // Applied on n2 (db's node): the effective rules and their map entries.
    const view = await waitFor(
      async () => {
        const v = await n2.nrdctl<EndpointPolicyView>(['policy', 'get', 'db']);
        return v.applied && v.enforcement.ingress && v.ingress.length > 0 ? v : undefined;
      },
      { timeoutMs: 15_000, intervalMs: 200, what: 'n2: policy of db applied' },
    );
    assert.deepEqual(view.policies, ['db-from-web']);
    assert.equal(view.enforcement.egress, false, JSON.stringify(view));
    assert.deepEqual(view.ingress[0]!.peers, ['labels app=web'], JSON.stringify(view));
    assert.deepEqual(view.ingress[0]!.ports, [`tcp/${DB_PORT}`], JSON.stringify(view));
    assert.ok((view.mapEntries ?? 0) > 0, JSON.stringify(view));

    // The denied connection first (a timeout of ~1 s, not a hang), then the allowed ones.
    // The established connection: no more bytes back once the policy is in force.
    const e0 = echoed();
    await new Promise((r) => setTimeout(r, 700));
    const e1 = echoed();
    await new Promise((r) => setTimeout(r, 700));
    assert.equal(echoed(), e1, `other → db:${ECHO_PORT} (established before the policy) still echoes after it: ${e0} → ${e1} → ${echoed()}`);
    await keep.stop(500);

    // A drop, not a refusal: the server listens on both ports, so only the datapath can make
    // the SYN go unanswered.
    assert.deepEqual(await probe(other, db.ip, DB_PORT), ['TIMEOUT'], 'other → db:5432 must be dropped');
    assert.deepEqual(await probe(web, db.ip, DB_PORT), ['db'], 'web → db:5432 allowed, the reply came back');
    assert.deepEqual(await probe(web, db.ip, OTHER_PORT), ['TIMEOUT'], 'web → db:5433 must be dropped');
    assert.deepEqual(await probe(db, web.ip, WEB_PORT), ['web'], 'db → web: db has no egress enforcement, web no ingress');

    // The drop, as a flow event of n2 with the 5-tuple.
    const events = (): FlowEvent[] => monitorEvents(monitor);
    const drop = await waitFor(
      () => events().find((e) => e.type === 'dropped' && e.reason === 'policy' && e.src === other.ip && e.dst === db.ip && e.dport === DB_PORT),
      { timeoutMs: 5000, intervalMs: 100, what: `flow event: drop of ${other.ip} → ${db.ip}:${DB_PORT}` },
    ).catch((err: unknown) => {
      throw new Error(`${(err as Error).message}\n${monitor.describe()}`);
    });
    assert.equal(drop.proto, 6);
    assert.equal(drop.dir, 'ingress');
    assert.equal(drop.endpoint, 'db');
    assert.ok(drop.sport > 0, JSON.stringify(drop));
    assert.ok(events().every((e) => e.type === 'dropped'), 'only drops with --verdict dropped');
    assert.ok(events().some((e) => e.dport === OTHER_PORT && e.src === web.ip), `drop of web → db:${OTHER_PORT}: ${monitor.output().slice(-2000)}`);
  } finally {
    monitor.signal('SIGINT');
    const ex = await Promise.race([monitor.exited, new Promise<null>((r) => setTimeout(() => r(null), 5000))]);
    if (ex === null) await monitor.stop(1000);
    assert.deepEqual(ex, { code: 0, signal: null }, `nrdctl monitor after SIGINT: ${monitor.describe()}`);
  }

  // Both ends enforced: web gets an egress policy (to db:5432 only), which also isolates its
  // ingress. web → db:5432 then needs its replies admitted by web's ingress as a known flow, and
  // db → web (no rule admits it) is dropped.
  const webFile = join(fabric.dir, 'web-policy.json');
  writeFileSync(webFile, JSON.stringify({ name: 'web-to-db', selector: { app: 'web' }, egress: [{ to: [{ labels: { app: 'db' } }], ports: [{ port: DB_PORT, protocol: 'tcp' }] }] }));
  await n1.nrdctl(['policy', 'set', '-f', webFile]);
  await waitFor(
    async () => {
      const v = await n1.nrdctl<EndpointPolicyView>(['policy', 'get', 'web']);
      return v.applied && v.enforcement.ingress && v.enforcement.egress;
    },
    { timeoutMs: 15_000, intervalMs: 200, what: 'n1: policy of web applied' },
  );
  assert.deepEqual(await probe(web, db.ip, DB_PORT), ['db'], 'web → db:5432 with both ends enforced: request and reply pass');
  assert.deepEqual(await probe(db, web.ip, WEB_PORT), ['TIMEOUT'], 'db → web once web is isolated');
  assert.deepEqual(await probe(web, backends[0]!.ip, BACKEND_PORT), ['TIMEOUT'], 'web → be1: not in web egress rules');
  await n1.nrdctl(['policy', 'del', 'web-to-db']);

  await n1.nrdctl(['policy', 'del', 'db-from-web']);
  await waitFor(async () => !(await n2.nrdctl<EndpointPolicyView>(['policy', 'get', 'db'])).enforcement.ingress, {
    timeoutMs: 15_000,
    intervalMs: 200,
    what: 'n2: db not enforced after the delete',
  });
  assert.deepEqual(await probe(other, db.ip, DB_PORT), ['db'], 'other → db:5432 after the policy is gone');
});
