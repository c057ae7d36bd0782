// Child processes of the services benchmark (services.bench.ts), one per role, each started inside
// a namespace with `ip netns exec` and spoken to one JSON line per stdin line:
//   agent   DatapathSubsystem in nrd's node namespace for the whole run (as lb-agent.ts in the
//           service integration test): `services` installs a set through the datapath worker;
//           `change` applies one service change and times it (see below);
//   client  in a client endpoint's namespace: N sequential connect/request/close rounds to VIP:port,
//           each timed on its own, answers median and p99;
//   restore in the iptables node namespace: one timed iptables-restore (--noflush or not) of a file,
//           spawned from here so the figure is what kube-proxy pays (exec + restore), without the
//           cost of entering the namespace;
//   server  in a backend's namespace: answers each request line and closes when the client does.
import { connect } from 'node:net';
import { createServer } from 'node:net';
import { spawnSync } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { Registry } from 'prom-client';
import { loadConfigObject } from '../../daemon/config/index.js';
import type { LocalEndpoint } from '../../daemon/lib/endpoint-types.js';
import { silentLogger } from '../../daemon/lib/log.js';
import { DatapathSubsystem } from '../../daemon/datapath/subsystem.js';
import { type ServicesApplier, type ServicesDatapath, type WireServiceOp, ServiceMapWriter } from '../../daemon/datapath/services.js';
import type { ServiceRecord } from '../../daemon/state/records.js';

const reply = (v: unknown): void => void process.stdout.write(JSON.stringify(v) + '\n');

async function serve(handle: (cmd: unknown) => Promise<unknown>): Promise<void> {
  for await (const line of createInterface({ input: process.stdin })) {
    try {
      reply(await handle(JSON.parse(line)));
    } catch (e) {
      reply({ error: (e as Error).message });
    }
  }
}

interface AgentStart {
  site: Record<string, unknown>;
  objectDir: string;
  endpoints: LocalEndpoint[];
  pinPath: string;
}
type AgentCommand =
  | { op: 'services'; services: ServiceRecord[] }
  | { op: 'change'; services: ServiceRecord[]; via: 'direct' | 'worker' }
  | { op: 'exit' };

async function agent(start: AgentStart): Promise<void> {
  const r = loadConfigObject(start.site, { env: {} });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  const sub = new DatapathSubsystem({ objectDir: start.objectDir, metrics: new Registry() });
  sub.setEndpoints(start.endpoints);
  await sub.start({ config: r.config, log: silentLogger(), ready: () => {} });
  reply({ started: (await sub.view()).status?.ready ?? false });
  // The subsystem's ServicesDatapath and its applier are private; the bench reaches them to time
  // the map writes alone (TS privacy only, nothing else changes in the datapath).
  const services = (): ServicesDatapath => {
    const s = (sub as unknown as { services?: ServicesDatapath }).services;
    if (!s) throw new Error('service maps not pinned yet');
    return s;
  };
  const slot = services() as unknown as { applier: ServicesApplier };
  const workerApplier = slot.applier;
  // The same writer the datapath worker runs, on this thread: timing it shows the map writes
  // without the worker round trip.
  const direct = new ServiceMapWriter(start.pinPath, Date.now, { maintain: false });
  await serve(async (cmd) => {
    const c = cmd as AgentCommand;
    if (c.op === 'exit') {
      direct.close();
      await sub.stop();
      process.exit(0);
    }
    if (c.op === 'services') {
      const t0 = performance.now();
      await sub.setServices(c.services);
      const s = services();
      if (s.lastError) throw new Error(s.lastError);
      return { ms: performance.now() - t0, writes: s.metrics.lastApplyWrites };
    }
    let writesMs = 0;
    let ops = 0;
    // Two writers of the same maps (this one and the worker's): this one reads the spare tables
    // again before its change, untimed, so it never takes a table the worker gave a service.
    if (c.via === 'direct') direct.resync();
    slot.applier = {
      applyServiceOps: async (o: WireServiceOp[]): Promise<number> => {
        ops = o.length;
        const t = performance.now();
        const n = c.via === 'direct' ? direct.apply(o) : await workerApplier.applyServiceOps(o);
        writesMs = performance.now() - t;
        return n;
      },
    };
    try {
      const t0 = performance.now();
      await sub.setServices(c.services);
      const totalMs = performance.now() - t0;
      const s = services();
      if (s.lastError) throw new Error(s.lastError);
      return { totalMs, writesMs, writes: s.metrics.lastApplyWrites, ops };
    } finally {
      slot.applier = workerApplier;
    }
  });
}

function pct(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))]!;
}

/** One connection: connect, send a request line, read the reply, close first, wait for close. */
function once(host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const s = connect({ host, port });
    s.setTimeout(3000, () => s.destroy(new Error('timeout')));
    s.on('connect', () => s.write('GET\n'));
    s.once('data', () => s.end());
    s.on('error', reject);
    s.on('close', (hadError) => {
      if (!hadError) resolve(Number(process.hrtime.bigint() - t0) / 1e6);
    });
  });
}

async function client(): Promise<void> {
  await serve(async (cmd) => {
    const c = cmd as { host: string; port: number; n: number };
    const ms: number[] = [];
    let failed = 0;
    for (let i = 0; i < c.n; i++) {
      try {
        ms.push(await once(c.host, c.port));
      } catch {
        if (++failed > c.n / 100) throw new Error(`${failed} connections failed`);
      }
    }
    ms.sort((a, b) => a - b);
    return { medianMs: pct(ms, 0.5), p99Ms: pct(ms, 0.99), failed };
  });
}

async function restore(): Promise<void> {
  await serve(async (cmd) => {
    const c = cmd as { file: string; noflush: boolean };
    const fd = openSync(c.file, 'r');
    try {
      const t0 = performance.now();
      const r = spawnSync('iptables-restore', [...(c.noflush ? ['--noflush'] : []), '--counters'], { stdio: [fd, 'ignore', 'pipe'], encoding: 'utf8' });
      const ms = performance.now() - t0;
      if (r.status !== 0) throw new Error(`iptables-restore failed (${r.status}): ${r.stderr}`);
      return { ms };
    } finally {
      closeSync(fd);
    }
  });
}

function server(): void {
  createServer((s) => {
    s.on('error', () => {});
    s.on('data', () => s.write('ok\n'));
    s.on('end', () => s.end());
  }).listen(8080, '0.0.0.0', () => reply({ listening: true }));
}

const mode = process.argv[2];
if (mode === 'agent') await agent(JSON.parse(process.argv[3] ?? '{}') as AgentStart);
else if (mode === 'client') await client();
else if (mode === 'restore') await restore();
else if (mode === 'server') server();
else throw new Error(`unknown mode ${mode ?? ''}`);
