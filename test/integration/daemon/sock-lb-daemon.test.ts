// The socket hooks as the daemon runs them: a real nrd in the sandbox's node namespace with
// services.cgroupPath set to a cgroup this test creates (a child of its own cgroup2 mount, never
// the machine's root cgroup), a service whose backend is a TCP server in the peer namespace, and a
// client process moved into that cgroup: its connect() to VIP:port reaches the backend and
// getpeername() still says VIP:port; a process outside the cgroup is not translated. nrd SIGKILLed
// leaves the pinned links working, and the restarted nrd adopts the same link ids. Root.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { mkdirSync, mkdtempSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NRDCTL, NrdSandbox, PEER_ADDRESS, cleanEnv, runNode, type NrdProcess } from './harness.js';
import type { DatapathView } from '../../../daemon/datapath/subsystem.js';
import { run } from '../../lib/proc.js';
import { waitFor } from '../../lib/wait.js';

const VIP = '10.96.0.20';
const sb = NrdSandbox.use(after, 'socklb');
let nrd: NrdProcess | undefined;
let socket = '';
let cgRoot = '';
let cg = '';
let backend: ReturnType<typeof sb.peer.spawn> | undefined;

// Answers every connection with its name. A peer that closes early (the readiness probe below
// exits on connect) resets the accepted socket: without an 'error' listener that reset is an
// uncaught exception and the backend dies, after which every connection to it is refused.
const SERVER = "require('node:net').createServer((s) => { s.on('error', () => {}); s.end('backend'); }).listen(8080, '0.0.0.0')";
// One connection to VIP:80 from whatever cgroup it runs in; prints what it saw.
const CLIENT = `
const s = require('node:net').connect({ host: process.argv[1], port: 80, timeout: 2000 });
let data = '', peer;
s.on('connect', () => { peer = s.remoteAddress + ':' + s.remotePort; });
s.on('data', (d) => { data += d; });
s.on('end', () => console.log(JSON.stringify({ peer, data })));
s.on('timeout', () => { s.destroy(); console.log(JSON.stringify({ error: 'ETIMEDOUT' })); });
s.on('error', (e) => console.log(JSON.stringify({ error: e.code })));
`;

interface ClientResult { peer?: string; data?: string; error?: string }

async function client(inCgroup: boolean): Promise<ClientResult> {
  // The shell moves itself into the cgroup, then becomes the client: its socket belongs there.
  const enter = inCgroup ? `echo $$ > ${cg}/cgroup.procs && ` : '';
  const r = await sb.node.exec(['sh', '-c', `${enter}exec "$0" -e "$1" ${VIP}`, process.execPath, CLIENT], { env: cleanEnv(), timeoutMs: 20_000 });
  return JSON.parse(r.stdout) as ClientResult;
}

/** GET /v1/datapath over the control socket (a path, so it crosses namespaces). */
function datapathView(): Promise<DatapathView> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: socket, path: '/v1/datapath' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as DatapathView) : reject(new Error(`${res.statusCode}: ${body}`))));
    });
    req.on('error', reject);
    req.end();
  });
}

async function attachedLinks(p: NrdProcess): Promise<number[]> {
  const v = await waitFor(
    async () => {
      const view = await datapathView().catch(() => undefined);
      return view?.sockLb.attached ? view : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 250, what: `socket hooks attached; ${p.describe()}` },
  );
  assert.equal(v.sockLb.cgroup, cg);
  assert.equal(v.sockLb.error, undefined);
  return v.sockLb.linkIds ?? [];
}

before(async () => {
  await sb.build();
  socket = join(sb.dir, 'nrd.sock');
  cgRoot = mkdtempSync(join(tmpdir(), 'nrdt-cg2-'));
  await run(['mount', '-t', 'cgroup2', 'none', cgRoot]);
  // The hooks go on this child only: the mount's root is the machine's own cgroup v2 root.
  cg = join(cgRoot, `nrdt-socklb-${process.pid}`);
  mkdirSync(cg);
  backend = sb.peer.spawn([process.execPath, '-e', SERVER], { env: cleanEnv(), name: 'backend' });
  await waitFor(
    async () => (await sb.node.exec([process.execPath, '-e', `require('node:net').connect(8080, '${PEER_ADDRESS}').on('connect', () => process.exit(0)).on('error', () => process.exit(1))`], { allowFailure: true })).code === 0,
    { timeoutMs: 15_000, intervalMs: 200, what: 'backend listening' },
  );
});

after(async () => {
  await nrd?.kill();
  // The bpffs goes with the sandbox, and with it the pinned links: the child cgroup is then free.
  await sb.teardown();
  if (cg) rmdirSync(cg);
  if (cgRoot) {
    await run(['umount', cgRoot]);
    rmSync(cgRoot, { recursive: true, force: true });
  }
});

test('node processes in services.cgroupPath reach VIP:port; SIGKILL and restart keep the same links', async () => {
  nrd = sb.spawnNrd({ site: sb.site({ socket, metricsPort: null, cgroupPath: cg }) });
  const links = await attachedLinks(nrd);
  assert.equal(links.length, 8, 'one link per hook: connect, sendmsg, recvmsg, getpeername, IPv4 and IPv6');

  const set = await runNode(NRDCTL, ['--socket', socket, 'service', 'set', '--name', 'web', '--vip', VIP, '--port', '80', '--backend', `${PEER_ADDRESS}:8080`]);
  assert.equal(set.code, 0, set.stderr);
  let last: ClientResult | undefined;
  const inside = await waitFor(
    async () => {
      last = await client(true);
      return last.data === 'backend' ? last : undefined;
    },
    { timeoutMs: 30_000, intervalMs: 250, what: `a client in ${cg} served by the backend through ${VIP}:80` },
  ).catch(async (err: Error) => {
    const list = await runNode(NRDCTL, ['--socket', socket, '-o', 'json', 'service', 'list']);
    for (const m of ['nrd_services', 'nrd_backends']) console.log(m, (await run(['bpftool', 'map', 'dump', 'pinned', join(sb.pinPath, 'maps', m)], { allowFailure: true })).stdout.slice(0, 1500));
    console.log((await run(['sh', '-c', `echo TABLES; bpftool map dump pinned ${join(sb.pinPath, 'maps', 'nrd_svc_tables')}; bpftool map show pinned ${join(sb.pinPath, 'maps', 'nrd_svc_tables')}; bpftool prog show pinned ${join(sb.pinPath, 'progs')}/@nrd_sock-*/nrd_sock_connect4; for m in nrd_services nrd_backends nrd_svc_tables; do bpftool map show pinned ${join(sb.pinPath, 'maps')}/$m | head -1; done; bpftool link show pinned ${join(sb.pinPath, 'links/cgroup/nrd_sock_connect4')}; ls -R ${sb.pinPath}`], { allowFailure: true })).stdout);
    throw new Error(`${err.message}; last client: ${JSON.stringify(last)}; services: ${list.stdout}${list.stderr}; ${nrd?.describe() ?? ''}; ${backend?.describe() ?? ''}`);
  });
  assert.equal(inside.peer, `${VIP}:80`, 'getpeername shows the service, not the backend');
  const outside = await client(false);
  assert.equal(outside.data, undefined, `a process outside the cgroup is not translated: ${JSON.stringify(outside)}`);
  assert.ok(outside.error, JSON.stringify(outside));

  nrd.signal('SIGKILL');
  await nrd.exited;
  // No daemon: the pinned links translate on their own.
  assert.deepEqual(await client(true), { peer: `${VIP}:80`, data: 'backend' });

  nrd = sb.spawnNrd({ site: sb.site({ socket, metricsPort: null, cgroupPath: cg }) });
  assert.deepEqual(await attachedLinks(nrd), links, 'the restarted nrd adopts the pinned links');
  assert.deepEqual(await client(true), { peer: `${VIP}:80`, data: 'backend' });
});
