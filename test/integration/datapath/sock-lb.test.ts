// Socket-level service LB (bpf/nrd_sock.bpf.c through daemon/datapath/sock.ts) with real sockets:
// a client namespace with plain veth routes to two backend namespaces (each a TCP and a UDP
// server that answer with their name), the service maps seeded through the services-layout codecs,
// the cgroup programs attached to a cgroup the test creates under its own cgroup2 mount. A client
// run inside that cgroup connects to VIP:port and must reach a backend, see VIP:port as the peer,
// spread over both backends, get ECONNREFUSED for a service without backends, and see VIP:port as
// the source of UDP replies; a client outside the cgroup is not translated (no route to the VIP).
// Also: every build variant passes the verifier (knob sets), re-applying adopts, a knob change
// updates the links in place, and a cgroup change moves them. Root.
import { type ChildProcess, spawn } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { objGet, closeFd, linkInfo } from '../../../daemon/datapath/libbpf.js';
import { TypedMap, parseCidr, u32Codec } from '../../../daemon/datapath/maps.js';
import { backendCodec, revNatCodec, svcKeyCodec, svcValueCodec } from '../../../daemon/datapath/services-layout.js';
import { writeTable } from '../../../daemon/datapath/services.js';
import { applySockLb, cgroupId, detachSockLb } from '../../../daemon/datapath/sock.js';
import { BackendState, SVC_F_MAGLEV, SVC_F_NO_BACKEND } from '../../../daemon/services/plan.js';
import { Cleanup, addNetns, mountBpffs, nsExec, run, sh, uniqueName, objectDir } from './env.js';

const M = 7;
const VIP = '10.96.0.10';
const BE = [
  { name: 'b1', ip: '10.0.1.2', local: '10.0.1.1', id: 21 },
  { name: 'b2', ip: '10.0.2.2', local: '10.0.2.1', id: 22 },
];
const BE_UDP = [31, 32];
const SVC = { tcp: 200, udp: 201, empty: 202 };
const ip = (s: string): Buffer => parseCidr(s).addr;

// Answers every TCP connection and every UDP datagram with the backend's name.
const SERVER = `
const net = require('node:net'), dgram = require('node:dgram');
const name = process.argv[1];
net.createServer((s) => { s.end(name); }).listen(8080, '0.0.0.0');
const u = dgram.createSocket('udp4');
u.on('message', (m, r) => u.send(name, r.port, r.address));
u.bind(5353, '0.0.0.0', () => process.stdout.write('ready\\n'));
`;

// Runs the checks from inside whatever cgroup it was started in; prints one JSON line.
const CLIENT = `
const net = require('node:net'), dgram = require('node:dgram');
const [vip, n] = [process.argv[1], Number(process.argv[2])];
function tcp(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: vip, port, timeout: 2000 });
    let data = '', peer;
    s.on('connect', () => { peer = s.remoteAddress + ':' + s.remotePort; });
    s.on('data', (d) => { data += d; });
    s.on('end', () => resolve({ peer, data }));
    s.on('timeout', () => { s.destroy(); resolve({ error: 'ETIMEDOUT' }); });
    s.on('error', (e) => resolve({ error: e.code }));
  });
}
function udp() {
  return new Promise((resolve) => {
    const u = dgram.createSocket('udp4');
    const t = setTimeout(() => { u.close(); resolve({ error: 'ETIMEDOUT' }); }, 2000);
    u.on('message', (m, r) => { clearTimeout(t); u.close(); resolve({ data: String(m), from: r.address + ':' + r.port }); });
    u.on('error', (e) => { clearTimeout(t); u.close(); resolve({ error: e.code }); });
    u.send('hi', 53, vip);
  });
}
(async () => {
  const conns = [];
  for (let i = 0; i < n; i++) conns.push(await tcp(80));
  const refused = await tcp(81);
  const dgrams = [await udp(), await udp()];
  process.stdout.write(JSON.stringify({ conns, refused, dgrams }) + '\\n');
})();
`;

interface ClientResult {
  conns: Array<{ peer?: string; data?: string; error?: string }>;
  refused: { error?: string };
  dgrams: Array<{ data?: string; from?: string; error?: string }>;
}

describe('nrd_sock: socket LB for node processes', () => {
  const cleanup = new Cleanup();
  let pinPath = '';
  let cg = '';
  let cg2 = '';
  let client = '';
  const servers: ChildProcess[] = [];

  before(async () => {
    const ready: Array<Promise<void>> = [];
    pinPath = mountBpffs(cleanup);
    // A test-owned cgroup2 mount: the programs go on a child created here, never on a cgroup of
    // the machine's own hierarchy layout.
    const cgRoot = mkdtempSync(join(tmpdir(), 'nrdt-cg2-'));
    cleanup.add(() => rmSync(cgRoot, { recursive: true, force: true }));
    sh('mount', ['-t', 'cgroup2', 'none', cgRoot]);
    cleanup.add(() => sh('umount', [cgRoot]));
    cg = join(cgRoot, uniqueName('sock'));
    cg2 = join(cgRoot, uniqueName('sock'));
    for (const d of [cg, cg2]) {
      mkdirSync(d);
      cleanup.add(() => rmdirSync(d));
    }
    cleanup.add(() => detachSockLb(pinPath));

    client = addNetns(cleanup, 'sockc');
    nsExec(client, 'ip', ['link', 'set', 'lo', 'up']);
    for (const [i, b] of BE.entries()) {
      const ns = addNetns(cleanup, `sock${b.name}`);
      const host = `nsc${i}`;
      sh('ip', ['link', 'add', host, 'netns', client, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      nsExec(client, 'ip', ['addr', 'add', `${b.local}/24`, 'dev', host]);
      nsExec(client, 'ip', ['link', 'set', host, 'up']);
      nsExec(ns, 'ip', ['addr', 'add', `${b.ip}/24`, 'dev', 'eth0']);
      nsExec(ns, 'ip', ['link', 'set', 'eth0', 'up']);
      nsExec(ns, 'ip', ['link', 'set', 'lo', 'up']);
      const child = spawn('ip', ['netns', 'exec', ns, 'timeout', '120', process.execPath, '-e', SERVER, b.name], { stdio: ['ignore', 'pipe', 'inherit'] });
      servers.push(child);
      ready.push(new Promise((resolve, reject) => {
        child.stdout.once('data', () => resolve());
        child.once('exit', (code) => reject(new Error(`server ${b.name} exited (${code})`)));
      }));
    }
    await Promise.all(ready);
  });

  after(() => {
    for (const s of servers) s.kill();
    cleanup.run();
  });

  it('loads every variant, adopts on re-apply, updates in place on a knob change, moves with the cgroup', () => {
    const base = { pinPath, objectDir, cgroupPath: cg };
    const first = applySockLb({ ...base, lb: { maglevM: M, flags: 0 } });
    assert.equal(first.links.length, 8);
    assert.equal(first.cgroupId, cgroupId(cg).toString());
    const again = applySockLb({ ...base, lb: { maglevM: M, flags: 0 } });
    assert.equal(again.adopted, true);
    assert.deepEqual(again.links.map((l) => [l.linkId, l.updated]), first.links.map((l) => [l.linkId, false]));
    // Variants: random selection (M = 0) and drain-reset; the same links, new programs.
    for (const lb of [{ maglevM: 0, flags: 1 }, { maglevM: 16381, flags: 0 }]) {
      const v = applySockLb({ ...base, lb });
      assert.equal(v.adopted, false);
      assert.deepEqual(v.links.map((l) => l.linkId), first.links.map((l) => l.linkId));
      assert.ok(v.links.every((l) => l.updated));
    }
    const moved = applySockLb({ ...base, cgroupPath: cg2, lb: { maglevM: M, flags: 0 } });
    assert.ok(moved.links.every((l) => !first.links.some((f) => f.linkId === l.linkId)));
    const fd = objGet(join(pinPath, 'links', 'cgroup', 'nrd_sock_connect4'));
    try {
      assert.equal(linkInfo(fd).cgroupId, cgroupId(cg2));
    } finally {
      closeFd(fd);
    }
    const back = applySockLb({ ...base, lb: { maglevM: M, flags: 0 } });
    assert.equal(back.cgroupId, cgroupId(cg).toString());
  });

  it('translates connect/sendmsg in the cgroup and shows VIP:port to the application', () => {
    seed(pinPath);
    const inside = runClient(client, cg, 40);
    const backends = new Map<string, number>();
    for (const c of inside.conns) {
      assert.equal(c.error, undefined, JSON.stringify(c));
      assert.equal(c.peer, `${VIP}:80`);
      backends.set(c.data!, (backends.get(c.data!) ?? 0) + 1);
    }
    assert.deepEqual([...backends.keys()].sort(), ['b1', 'b2'], `spread: ${JSON.stringify([...backends])}`);
    assert.equal(inside.refused.error, 'ECONNREFUSED');
    for (const d of inside.dgrams) {
      assert.equal(d.error, undefined, JSON.stringify(d));
      assert.ok(d.data === 'b1' || d.data === 'b2');
      assert.equal(d.from, `${VIP}:53`);
    }
    console.log(`sock-lb: 40 connections -> ${JSON.stringify(Object.fromEntries(backends))}`);

    const outside = runClient(client, undefined, 1);
    assert.equal(outside.conns[0]!.data, undefined, 'a process outside the cgroup must not be translated');
    assert.ok(outside.conns[0]!.error, JSON.stringify(outside.conns[0]));
    assert.notEqual(outside.refused.error, 'ECONNREFUSED');
  });

  function runClient(ns: string, cgroup: string | undefined, n: number): ClientResult {
    // The shell moves itself into the cgroup, then becomes the client: its sockets belong there.
    const enter = cgroup ? `echo $$ > ${cgroup}/cgroup.procs && ` : '';
    const r = run('ip', ['netns', 'exec', ns, 'sh', '-c', `${enter}exec timeout 60 "$0" -e "$1" ${VIP} ${n}`, process.execPath, CLIENT]);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as ClientResult;
  }

});

function seed(pinPath: string): void {
  const open = (m: string): number => objGet(join(pinPath, 'maps', m));
  const services = new TypedMap(open('nrd_services'), svcKeyCodec, svcValueCodec);
  const backends = new TypedMap(open('nrd_backends'), u32Codec, backendCodec);
  const tables = open('nrd_svc_tables');
  const revnat = new TypedMap(open('nrd_revnat'), u32Codec, revNatCodec);
  for (const [i, b] of BE.entries()) {
    backends.set(b.id, { family: 4, addr: ip(b.ip), port: 8080, proto: 6, state: BackendState.ACTIVE });
    backends.set(BE_UDP[i]!, { family: 4, addr: ip(b.ip), port: 5353, proto: 17, state: BackendState.ACTIVE });
  }
  writeTable(tables, SVC.tcp, Uint32Array.from({ length: M }, (_, s) => BE[s % 2]!.id));
  writeTable(tables, SVC.udp, Uint32Array.from({ length: M }, (_, s) => BE_UDP[s % 2]!));
  const svc = (id: number, port: number, proto: number, flags: number, count: number): void => {
    services.set({ family: 4, addr: ip(VIP), port, proto }, { id, backendCount: count, flags, revNatId: id });
    revnat.set(id, { family: 4, addr: ip(VIP), port });
  };
  svc(SVC.tcp, 80, 6, SVC_F_MAGLEV, 2);
  svc(SVC.udp, 53, 17, SVC_F_MAGLEV, 2);
  svc(SVC.empty, 81, 6, SVC_F_NO_BACKEND | SVC_F_MAGLEV, 0);
}
