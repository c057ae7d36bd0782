// Daemon lifecycle with fake subsystems and a recording notifier: start order and reverse stop,
// READY once everything started (ready or not: STATUS says what is missing), the reload protocol (applied,
// unchanged, rejected, failed) and what reaches systemd at each step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfigObject, type LoadResult, type NrdConfig, type ConfigChange } from '../../../daemon/config/index.js';
import { Daemon, type Subsystem, type SubsystemContext } from '../../../daemon/daemon.js';
import { ReadinessRegistry } from '../../../daemon/lib/health.js';
import { silentLogger } from '../../../daemon/lib/log.js';
import type { Notifier } from '../../../daemon/lib/sdnotify.js';

function config(over: Record<string, unknown> = {}): NrdConfig {
  const r = loadConfigObject({ node: { name: 'n1', address: '192.0.2.11' }, api: { socket: '/nonexistent/nrd.sock', metrics: '' }, ...over }, { env: {} });
  if (!r.ok) throw new Error(JSON.stringify(r.issues));
  return r.config;
}

class RecordingNotifier implements Notifier {
  readonly enabled = true;
  readonly sent: Array<Record<string, string>> = [];
  notify(fields: Record<string, string | number | bigint>): boolean {
    this.sent.push(Object.fromEntries(Object.entries(fields).map(([k, v]) => [k, String(v)])));
    return true;
  }
  close(): void {}
  has(key: string, value?: string): boolean {
    return this.sent.some((m) => key in m && (value === undefined || m[key] === value));
  }
}

class FakeSub implements Subsystem {
  ctx: SubsystemContext | undefined;
  reloads: Array<readonly ConfigChange[]> = [];
  constructor(
    readonly name: string,
    private readonly events: string[],
    private readonly opts: { readyAtStart?: boolean; failStart?: boolean; failReload?: boolean } = {},
  ) {}
  start(ctx: SubsystemContext): void {
    this.ctx = ctx;
    this.events.push(`start ${this.name}`);
    if (this.opts.failStart) throw new Error(`${this.name} cannot start`);
    if (this.opts.readyAtStart !== false) ctx.ready({ ready: true });
  }
  stop(): void {
    this.events.push(`stop ${this.name}`);
  }
  reload(changes: readonly ConfigChange[]): void {
    this.reloads.push(changes);
    if (this.opts.failReload) throw new Error(`${this.name} cannot apply`);
  }
  status(): unknown {
    return { fake: this.name };
  }
}

function daemon(load: () => LoadResult, subs: Subsystem[], cfg = config()) {
  const notifier = new RecordingNotifier();
  const readiness = new ReadinessRegistry();
  const log = silentLogger();
  const d = new Daemon({ config: cfg, configFile: '/etc/nrd/site.yaml', loadConfig: load, version: '0.0.0-test', log, notifier, readiness });
  for (const s of subs) d.add(s);
  return { d, notifier, readiness, log };
}

test('subsystems start in order, stop in reverse; READY=1 once all started, STATUS names what is not ready; STOPPING=1 on stop', async () => {
  const events: string[] = [];
  const late = new FakeSub('bgp', events, { readyAtStart: false });
  const { d, notifier } = daemon(() => ({ ok: true, config: config() }), [new FakeSub('api', events), new FakeSub('state', events), late]);
  await d.start();
  assert.deepEqual(events, ['start api', 'start state', 'start bgp']);
  // Started and serving: systemd gets READY=1 even though bgp has no peer yet (a node whose
  // fabric is down must not be killed by the start timeout); readiness still says why.
  assert.equal(notifier.sent.filter((m) => m.READY === '1').length, 1);
  assert.ok(notifier.sent.some((m) => m.READY === '1' && m.STATUS === 'waiting for bgp: starting'));
  assert.equal(d.status().ready, false);
  assert.match(d.status().status, /waiting for bgp: starting/);
  late.ctx!.ready({ ready: false, reason: 'no peer established' });
  assert.ok(notifier.sent.some((m) => m.STATUS === 'waiting for bgp: no peer established'));
  late.ctx!.ready({ ready: true });
  assert.equal(notifier.sent.filter((m) => m.READY === '1').length, 1, 'READY=1 is sent once');
  assert.equal(d.status().ready, true);
  assert.deepEqual(d.status().subsystems.map((s) => s.status), [{ fake: 'api' }, { fake: 'state' }, { fake: 'bgp' }]);
  await d.stop('test');
  assert.deepEqual(events.slice(3), ['stop bgp', 'stop state', 'stop api']);
  assert.ok(notifier.has('STOPPING', '1'));
});

test('while earlier subsystems start, later ones are already listed as not started', async () => {
  const events: string[] = [];
  let seen: string | undefined;
  const { d, readiness } = daemon(() => ({ ok: true, config: config() }), [
    {
      name: 'api',
      start(ctx: SubsystemContext) {
        ctx.ready({ ready: true });
        seen = readiness.summary();
      },
      stop() {},
      status: () => ({}),
    },
    new FakeSub('bgp', events),
  ]);
  await d.start();
  assert.equal(seen, 'waiting for bgp: not started yet');
  assert.equal(readiness.isReady(), true);
  await d.stop();
});

test('a failed start stops what was started, in reverse, and rethrows', async () => {
  const events: string[] = [];
  const { d, notifier } = daemon(() => ({ ok: true, config: config() }), [
    new FakeSub('api', events),
    new FakeSub('state', events, { failStart: true }),
    new FakeSub('bgp', events),
  ]);
  await assert.rejects(d.start(), /state cannot start/);
  assert.deepEqual(events, ['start api', 'start state', 'stop state', 'stop api']);
  assert.equal(notifier.has('READY'), false);
});

test('reload: applied changes reach every subsystem, the log level follows, systemd sees RELOADING then READY', async () => {
  const events: string[] = [];
  let next = config();
  const api = new FakeSub('api', events);
  const { d, notifier, log } = daemon(() => ({ ok: true, config: next }), [api]);
  await d.start();
  const mark = notifier.sent.length;
  assert.equal((await d.reload()).result, 'unchanged');
  next = config({ log: { level: 'debug' }, bgp: { asn: 65001 } });
  const info = await d.reload();
  assert.equal(info.result, 'applied');
  assert.equal(log.level, 'debug');
  assert.deepEqual(api.reloads[0]!.map((c) => c.key).sort(), ['bgp.asn', 'log.level']);
  assert.equal(d.runningConfig().bgp.asn, 65001);
  const after = notifier.sent.slice(mark);
  const reloading = after.findIndex((m) => m.RELOADING === '1');
  assert.ok(reloading >= 0 && /^\d+$/.test(after[reloading]!.MONOTONIC_USEC ?? ''), JSON.stringify(after));
  assert.ok(after.slice(reloading).some((m) => m.READY === '1'));
  assert.deepEqual(d.status().reloads, { applied: 1, unchanged: 1, rejected: 0, failed: 0 });
  await d.stop();
});

test('reload: a bad file is rejected with its issues and the running config stays', async () => {
  const { d } = daemon(() => ({ ok: false, issues: [{ key: 'bgp.asn', value: 'x', message: 'must be an AS number' }] }), [new FakeSub('api', [])]);
  await d.start();
  const before = d.runningConfig();
  const info = await d.reload();
  assert.equal(info.result, 'rejected');
  assert.equal(info.messages.length, 1);
  assert.match(info.messages[0]!, /bgp\.asn/);
  assert.match(info.messages[0]!, /"x"/);
  assert.equal(d.runningConfig(), before);
  await d.stop();
});

test('reload: a subsystem that cannot apply makes it "failed" and the old config is kept for a retry', async () => {
  const next = config({ bgp: { asn: 65001 } });
  const { d } = daemon(() => ({ ok: true, config: next }), [new FakeSub('api', []), new FakeSub('bgp', [], { failReload: true })]);
  await d.start();
  const info = await d.reload();
  assert.equal(info.result, 'failed');
  assert.ok(info.messages.some((m) => m.includes('bgp: bgp cannot apply')));
  assert.equal(d.runningConfig().bgp.asn, 64512);
  await d.stop();
});

test('a reload while subsystems are still starting waits: no RELOADING before the start-up READY=1 (systemd would take its READY as start-up done)', async () => {
  const events: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const slow: Subsystem = {
    name: 'bgp',
    async start(ctx: SubsystemContext) {
      await gate;
      ctx.ready({ ready: true });
    },
    stop() {},
    status: () => ({}),
  };
  const { d, notifier } = daemon(() => ({ ok: true, config: config({ bgp: { asn: 65001 } }) }), [new FakeSub('api', events), slow]);
  const started = d.start();
  const reloaded = d.reload();
  assert.equal(notifier.has('RELOADING'), false);
  assert.equal(notifier.has('READY'), false, 'not started yet');
  release();
  await started;
  await reloaded;
  // The reload waited for the start; RELOADING=1, if any, comes only after the start-up READY=1.
  const firstReady = notifier.sent.findIndex((m) => m.READY === '1');
  const firstReloading = notifier.sent.findIndex((m) => m.RELOADING === '1');
  assert.ok(firstReady >= 0);
  assert.ok(firstReloading === -1 || firstReloading > firstReady, JSON.stringify(notifier.sent));
  await d.stop();
});

test('passwords never appear in the logged or reported diff', async () => {
  const { d } = daemon(() => ({ ok: true, config: config({ etcd: { username: 'u', password: 'hunter2' } }) }), [new FakeSub('api', [])], config({ etcd: { username: 'u', password: 'old' } }));
  await d.start();
  const info = await d.reload();
  assert.equal(info.result, 'applied');
  assert.doesNotMatch(JSON.stringify(info), /hunter2|old"/);
  await d.stop();
});
