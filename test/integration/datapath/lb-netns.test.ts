// Services end to end in namespaces: a node namespace with three workload endpoints behind nrdv…
// veths (a client and two backends, set up as endpoint-dp.test.ts does), DatapathSubsystem with
// the endpoint datapath running in the node namespace for the whole test (lb-agent.ts), and the
// service set handed to it as the state subsystem would. The client connects to VIP:port; each
// backend runs a TCP server that answers its own name, so the client sees where DNAT took it.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface, type Interface } from 'node:readline';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ENDPOINT_GATEWAY_MAC, type LocalEndpoint } from '../../../daemon/lib/endpoint-types.js';
import type { ServiceRecord } from '../../../daemon/state/records.js';
import type { BackendStatus, CtRow } from '../../../daemon/datapath/services.js';
import { Cleanup, addEndpointNs, addNetns, mountBpffs, nsExec, objectDir, sh } from './env.js';

const NODE_IP = '198.51.100.1';
const VIP = '10.96.0.10';
const VIP_EMPTY = '10.96.0.11';
const EP = [
  { id: 'client', host: 'nrdv0', ip: '10.244.0.10' },
  { id: 'be-one', host: 'nrdv1', ip: '10.244.0.11' },
  { id: 'be-two', host: 'nrdv2', ip: '10.244.0.12' },
];

/** A child process spoken to one JSON line at a time. */
class LineProc {
  private readonly lines: Interface;
  private readonly queue: string[] = [];
  private waiter: ((l: string) => void) | undefined;
  stderr = '';

  constructor(readonly proc: ChildProcess) {
    this.lines = createInterface({ input: proc.stdout! });
    this.lines.on('line', (l) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(l);
      } else this.queue.push(l);
    });
    proc.stderr!.on('data', (b: Buffer) => void (this.stderr += b.toString()));
  }

  next<T>(ms = 20_000): Promise<T> {
    const l = this.queue.shift();
    if (l !== undefined) return Promise.resolve(JSON.parse(l) as T);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no reply in ${ms} ms; stderr: ${this.stderr}`)), ms);
      this.waiter = (line) => {
        clearTimeout(t);
        resolve(JSON.parse(line) as T);
      };
    });
  }

  async ask<T>(cmd: unknown): Promise<T> {
    this.proc.stdin!.write(JSON.stringify(cmd) + '\n');
    return this.next<T>();
  }
}

function nsNode(ns: string, script: string, arg?: string): ChildProcess {
  return spawn('ip', ['netns', 'exec', ns, process.execPath, script, ...(arg !== undefined ? [arg] : [])], { stdio: ['pipe', 'pipe', 'pipe'] });
}

describe('service load balancing in namespaces', () => {
  const cleanup = new Cleanup();
  let nsN = '';
  const nsE: string[] = [];
  let agent: LineProc;
  let client: LineProc;

  const svc = (backends: string[]): ServiceRecord[] => [
    { name: 'web', vip: VIP, port: 80, protocol: 'tcp', backends: backends.map((ip) => ({ ip, port: 8080 })) },
    { name: 'empty', vip: VIP_EMPTY, port: 80, protocol: 'tcp', backends: [] },
  ];

  before(async () => {
    try {
      const pinPath = join(mountBpffs(cleanup), 'nrd');
      nsN = addNetns(cleanup, 'lbn');
      nsExec(nsN, 'sysctl', ['-qw', 'net.ipv4.ip_forward=1']);
      sh('ip', ['-n', nsN, 'link', 'set', 'lo', 'up']);
      // An uplink for node.address, to a namespace of its own (no traffic leaves the test's namespaces).
      const nsX = addNetns(cleanup, 'lbx');
      sh('ip', ['-n', nsN, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'ext0', 'netns', nsX]);
      sh('ip', ['-n', nsN, 'addr', 'add', `${NODE_IP}/24`, 'dev', 'up0']);
      sh('ip', ['-n', nsN, 'link', 'set', 'up0', 'up']);
      for (const e of EP) nsE.push(addEndpointNs(cleanup, nsN, ENDPOINT_GATEWAY_MAC, e, 'lbw'));
      // Each backend answers its name, then echoes every chunk prefixed with it.
      for (let i = 1; i < EP.length; i++) {
        const name = EP[i]!.id;
        const srv = spawn('ip', ['netns', 'exec', nsE[i]!, process.execPath, '-e',
          `require('net').createServer((s)=>{s.write('${name}\\n');s.on('data',(d)=>s.write('${name}:'+d));s.on('error',()=>{})}).listen(8080,'0.0.0.0')`], { stdio: 'ignore' });
        cleanup.add(() => srv.kill('SIGKILL'));
      }
      const endpoints: LocalEndpoint[] = EP.map((e, i) => {
        const mac = (JSON.parse(sh('ip', ['-n', nsE[i]!, '-j', 'link', 'show', 'eth0'])) as Array<{ address: string }>)[0]!.address;
        const idx = (JSON.parse(sh('ip', ['-n', nsN, '-j', 'link', 'show', e.host])) as Array<{ ifindex: number }>)[0]!.ifindex;
        return { id: e.id, hostIfname: e.host, hostIfindex: idx, mac, ips: [e.ip], identity: 0 };
      });
      const site = {
        node: { name: 'n1', address: NODE_IP, interface: 'up0' },
        cluster: { podCIDRs: ['10.244.0.0/16'] },
        datapath: { pinPath },
        services: { algorithm: 'maglev', drain: 'keep', drainSeconds: 120 },
      };
      const here = (f: string): string => fileURLToPath(new URL(f, import.meta.url));
      const a = nsNode(nsN, here('./lb-agent.js'), JSON.stringify({ site, objectDir, endpoints }));
      cleanup.add(() => a.kill('SIGKILL'));
      agent = new LineProc(a);
      const c = nsNode(nsE[0]!, here('./lb-client.js'));
      cleanup.add(() => c.kill('SIGKILL'));
      client = new LineProc(c);
      const started = await agent.next<{ started: boolean }>(60_000);
      assert.equal(started.started, true, 'datapath not ready');
      // The backends' servers are up once they accept on their own address.
      for (let i = 1; i < EP.length; i++) {
        for (let t = 0; t < 50 && nsExec(nsE[i]!, 'ss', ['-Hltn', 'sport = :8080']).trim() === ''; t++) sh('sleep', ['0.1']);
      }
    } catch (e) {
      cleanup.run();
      throw e;
    }
  });
  after(() => cleanup.run());

  it('spreads 40 connections to VIP:port over every backend (Maglev), both active', async () => {
    assert.deepEqual(await agent.ask({ op: 'services', services: svc([EP[1]!.ip, EP[2]!.ip]) }), { ok: true });
    const r = await client.ask<{ counts?: Record<string, number>; error?: string }>({ op: 'probe', host: VIP, port: 80, n: 40 });
    assert.ok(r.counts, r.error);
    assert.deepEqual(Object.keys(r.counts).sort(), ['be-one', 'be-two'], JSON.stringify(r.counts));
    assert.equal(r.counts['be-one']! + r.counts['be-two']!, 40);
    const st = await agent.ask<Record<string, { id: number; backends: BackendStatus[] }>>({ op: 'status' });
    assert.deepEqual(st.web?.backends.map((b) => `${b.ip} ${b.state}`).sort(), [`${EP[1]!.ip} active`, `${EP[2]!.ip} active`]);
    assert.deepEqual(st.empty?.backends, []);
  });

  it('lists the flows in nrd_ct (forward and reply entry each); the GC keeps live ones; metrics', async () => {
    const open = await client.ask<{ name?: string; error?: string }>({ op: 'open', host: VIP, port: 80 });
    assert.ok(open.name, open.error);
    const rows = await agent.ask<CtRow[]>({ op: 'ct', service: 'web' });
    const mine = rows.filter((x) => x.src.startsWith(`${EP[0]!.ip}:`) || x.dst.startsWith(`${EP[0]!.ip}:`));
    assert.ok(mine.some((x) => x.dir === 'fwd' && x.dst === `${VIP}:80`), JSON.stringify(rows.slice(0, 4)));
    assert.ok(mine.some((x) => x.dir === 'reply'), 'no reply entry');
    const empty = await agent.ask<CtRow[]>({ op: 'ct', service: 'empty' });
    assert.deepEqual(empty, []);
    // The GC keeps live flows (30 s SYN / long established timeouts), and counts them.
    assert.deepEqual(await agent.ask({ op: 'gc' }), { ok: true });
    const m = await agent.ask<{ text: string }>({ op: 'metrics' });
    assert.match(m.text, /nrd_datapath_ct_entries [1-9]/);
    assert.match(m.text, /nrd_datapath_ct_gc_deleted_total 0/);
    assert.match(m.text, /nrd_datapath_services 2/);
    assert.match(m.text, /nrd_datapath_service_backends\{state="active"\} 2/);
    assert.match(m.text, /nrd_datapath_service_last_change_writes \d+/);
  });

  it('a removed backend gets no new connection; an established one keeps working (drain keep)', async () => {
    const open = await client.ask<{ name?: string; error?: string }>({ op: 'open', host: VIP, port: 80 });
    assert.ok(open.name, open.error);
    const gone = EP.find((e) => e.id === open.name)!;
    const stays = EP.find((e) => e.id !== open.name && e.id !== 'client')!;
    assert.deepEqual(await agent.ask({ op: 'services', services: svc([stays.ip]) }), { ok: true });
    const st = await agent.ask<Record<string, { backends: BackendStatus[] }>>({ op: 'status' });
    assert.deepEqual(st.web?.backends.map((b) => `${b.ip} ${b.state}`).sort(), [`${EP[1]!.ip} ${gone === EP[1] ? 'draining' : 'active'}`, `${EP[2]!.ip} ${gone === EP[2] ? 'draining' : 'active'}`]);
    const r = await client.ask<{ counts?: Record<string, number>; error?: string }>({ op: 'probe', host: VIP, port: 80, n: 20 });
    assert.deepEqual(r.counts, { [stays.id]: 20 }, r.error);
    const echo = await client.ask<{ echo?: string; error?: string }>({ op: 'echo', text: 'still-there' });
    assert.equal(echo.echo, `${gone.id}:still-there`, echo.error);
    const m = await agent.ask<{ text: string }>({ op: 'metrics' });
    assert.match(m.text, /nrd_datapath_service_backends\{state="draining"\} 1/);
  });

  it('a service with no backends answers TCP RST: connection refused at once, not a timeout', async () => {
    const r = await client.ask<{ error: string; ms: number }>({ op: 'refused', host: VIP_EMPTY, port: 80 });
    assert.equal(r.error, 'ECONNREFUSED');
    assert.ok(r.ms < 1000, `took ${r.ms} ms`);
  });

  it('ct flush of one service deletes its entries', async () => {
    const before = await agent.ask<CtRow[]>({ op: 'ct', service: 'web' });
    assert.ok(before.length > 0);
    const f = await agent.ask<{ deleted: number }>({ op: 'flush', service: 'web' });
    assert.equal(f.deleted, before.length);
    assert.deepEqual(await agent.ask({ op: 'ct', service: 'web' }), []);
  });
});
