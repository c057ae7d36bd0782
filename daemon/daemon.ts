// Daemon lifecycle: ordered subsystem start and reverse stop, readiness aggregation reported to
// systemd with sd_notify(3) (READY, STATUS, WATCHDOG, RELOADING, STOPPING), and SIGHUP reloads
// that apply a config diff through each subsystem without restarting anything unchanged.
import { diffConfig, formatIssue, type ConfigChange, type LoadResult, type NrdConfig } from './config/index.js';
import type { Logger, LogLevel } from './lib/log.js';
import type { ReadinessRegistry, ReadinessReporter, ReadinessSnapshot } from './lib/health.js';
import type { Notifier } from './lib/sdnotify.js';
import { monotonicUsec } from './lib/libc.js';
import type { ConfigSummary, ReloadInfo, ReloadResult, StatusResponse } from './lib/status.js';
import type { Subsystem, SubsystemContext } from './lib/subsystem.js';

export type { Subsystem, SubsystemContext } from './lib/subsystem.js';

export interface DaemonOptions {
  config: NrdConfig;
  /** Path of the site file, for status and logs. */
  configFile: string;
  /** Re-reads the site file with the same env and --set overrides as at start (SIGHUP). */
  loadConfig: () => LoadResult;
  version: string;
  /** The root logger: its level is the process-wide level (children inherit it). */
  log: Logger;
  notifier: Notifier;
  readiness: ReadinessRegistry;
  /** Send WATCHDOG=1 every this many ms (half of $WATCHDOG_USEC); undefined: no watchdog. */
  watchdogMs?: number;
  /** Upper bound on one subsystem's stop(), so a hung stop cannot hold the unit in deactivating. */
  stopTimeoutMs?: number;
  now?: () => number;
}

type Phase = 'new' | 'starting' | 'running' | 'stopping' | 'stopped';

export type ReloadListener = (info: ReloadInfo) => void;

// Values of these keys never reach logs or the API.
const SECRET_KEY = /password|secret|token/i;

function redact(change: ConfigChange): ConfigChange {
  return SECRET_KEY.test(change.key) ? { key: change.key, from: '<redacted>', to: '<redacted>' } : change;
}

function describeChange(c: ConfigChange): string {
  return `${c.key}: ${JSON.stringify(c.from)} -> ${JSON.stringify(c.to)}`;
}

export function summarizeConfig(config: NrdConfig, file: string, loadedAt: string): ConfigSummary {
  return {
    file,
    loadedAt,
    node: { name: config.node.name, address: config.node.address, interface: config.node.interface },
    bgp: {
      asn: config.bgp.asn,
      routerId: config.bgp.routerId,
      peers: config.bgp.peers.length,
      nodeMesh: config.bgp.nodeMesh,
    },
    routing: { mode: config.routing.mode },
    etcd: { endpoints: [...config.etcd.endpoints], prefix: config.etcd.prefix },
    api: { socket: config.api.socket, metrics: config.api.metrics },
    logLevel: config.log.level,
  };
}

export class Daemon {
  private readonly subsystems: Subsystem[] = [];
  private readonly started: Subsystem[] = [];
  private readonly reloadListeners = new Set<ReloadListener>();
  private readonly now: () => number;
  private readonly startedAt: number;
  private config: NrdConfig;
  private loadedAt: string;
  private phase: Phase = 'new';
  private readySent = false;
  private lastStatus = '';
  private watchdog: NodeJS.Timeout | undefined;
  private unsubscribeReadiness: (() => void) | undefined;
  private stopping: Promise<void> | undefined;
  // Reloads run one at a time, in signal order, and never during start.
  private reloadChain: Promise<unknown> = Promise.resolve();
  private readonly reloadCounts: Record<ReloadResult, number> = { applied: 0, unchanged: 0, rejected: 0, failed: 0 };
  private lastReload: ReloadInfo | undefined;

  constructor(private readonly opts: DaemonOptions) {
    this.now = opts.now ?? Date.now;
    this.startedAt = this.now();
    this.config = opts.config;
    this.loadedAt = new Date(this.startedAt).toISOString();
  }

  /** Adds a subsystem; subsystems start in the order added and stop in reverse. */
  add(sub: Subsystem): this {
    if (this.phase !== 'new') throw new Error(`cannot add subsystem ${sub.name} after start`);
    if (this.subsystems.some((s) => s.name === sub.name)) throw new Error(`subsystem ${sub.name} added twice`);
    this.subsystems.push(sub);
    return this;
  }

  onReload(listener: ReloadListener): () => void {
    this.reloadListeners.add(listener);
    return () => this.reloadListeners.delete(listener);
  }

  runningConfig(): NrdConfig {
    return this.config;
  }

  async start(): Promise<void> {
    if (this.phase !== 'new') throw new Error(`daemon already ${this.phase}`);
    this.phase = 'starting';
    const log = this.opts.log;
    this.unsubscribeReadiness = this.opts.readiness.onChange((snap) => this.onReadiness(snap));
    this.startWatchdog();
    // Register every subsystem up front, so /readyz is truthful while later ones wait their turn.
    const reporters = new Map(this.subsystems.map((s) => [s.name, this.opts.readiness.register(s.name, { ready: false, reason: 'not started yet' })]));
    const startP = (async () => {
      for (const sub of this.subsystems) {
        const ready = reporters.get(sub.name)!;
        ready({ ready: false, reason: 'starting' });
        const sublog = log.child({ subsystem: sub.name });
        const t0 = this.now();
        sublog.info('starting');
        try {
          await sub.start({ config: this.config, log: sublog, ready });
        } catch (err) {
          sublog.error({ err }, 'start failed');
          this.started.push(sub); // a half-started subsystem gets a chance to release what it took
          await this.stop(`start of ${sub.name} failed`);
          throw err;
        }
        this.started.push(sub);
        sublog.info({ ms: this.now() - t0 }, 'started');
      }
    })();
    this.reloadChain = startP.catch(() => undefined);
    await startP;
    this.phase = 'running';
    log.info({ subsystems: this.subsystems.map((s) => s.name), status: this.opts.readiness.summary() }, 'nrd running');
    this.onReadiness(this.opts.readiness.snapshot());
  }

  /** Graceful stop (SIGTERM/SIGINT): STOPPING=1, subsystems in reverse order, kernel state kept. */
  stop(reason = 'signal'): Promise<void> {
    if (this.stopping) return this.stopping;
    this.stopping = (async () => {
      this.phase = 'stopping';
      const log = this.opts.log;
      log.info({ reason }, 'stopping');
      this.opts.notifier.notify({ STOPPING: 1, STATUS: `stopping (${reason})` });
      this.stopWatchdog();
      this.unsubscribeReadiness?.();
      const limit = this.opts.stopTimeoutMs ?? 10_000;
      for (const sub of [...this.started].reverse()) {
        let timer: NodeJS.Timeout | undefined;
        try {
          await Promise.race([
            Promise.resolve(sub.stop()),
            new Promise((_, reject) => {
              timer = setTimeout(() => reject(new Error(`stop did not finish within ${limit} ms`)), limit);
            }),
          ]);
          log.info({ subsystem: sub.name }, 'stopped');
        } catch (err) {
          // Keep going: the others still deserve a clean stop.
          log.error({ subsystem: sub.name, err }, 'stop failed');
        } finally {
          clearTimeout(timer);
        }
      }
      this.started.length = 0;
      this.phase = 'stopped';
      log.info('nrd stopped');
    })();
    return this.stopping;
  }

  /** SIGHUP: re-read the site file, validate, diff, apply. Queued behind start and earlier reloads. */
  reload(): Promise<ReloadInfo> {
    const p = this.reloadChain.then(() => this.doReload());
    this.reloadChain = p.catch(() => undefined);
    return p;
  }

  private async doReload(): Promise<ReloadInfo> {
    const log = this.opts.log;
    if (this.phase !== 'running') {
      log.warn({ phase: this.phase }, 'reload ignored: daemon not running');
      return this.finishReload('rejected', [`daemon is ${this.phase}`]);
    }
    // RELOADING=1 only once READY=1 was sent: systemd takes the READY=1 that ends a reload as
    // the end of start-up otherwise.
    const announce = this.readySent;
    if (announce) this.opts.notifier.notify({ RELOADING: 1, MONOTONIC_USEC: monotonicUsec(), STATUS: 'reloading configuration' });
    try {
      log.info({ file: this.opts.configFile }, 'reloading configuration');
      let result: LoadResult;
      try {
        result = this.opts.loadConfig();
      } catch (err) {
        log.error({ err, file: this.opts.configFile }, 'config reload rejected: cannot read the file; keeping the running config');
        return this.finishReload('rejected', [String(err instanceof Error ? err.message : err)]);
      }
      if (!result.ok) {
        const lines = result.issues.map(formatIssue);
        for (const line of lines) log.error({ file: this.opts.configFile }, `config issue: ${line}`);
        log.error({ file: this.opts.configFile, issues: result.issues.length }, 'config reload rejected; keeping the running config');
        return this.finishReload('rejected', lines);
      }
      const next = result.config;
      const changes = diffConfig(this.config, next).map(redact);
      if (changes.length === 0) {
        log.info('config reloaded: no changes');
        return this.finishReload('unchanged', []);
      }
      log.info({ changes }, `config changed: ${changes.map((c) => c.key).join(', ')}`);
      if (next.log.level !== this.config.log.level) {
        // Children created without their own level inherit the root's through the prototype
        // chain, so this reaches every subsystem and peer logger at once.
        log.level = next.log.level as LogLevel;
        log.info({ logLevel: next.log.level }, 'log level changed');
      }
      const failures: string[] = [];
      for (const sub of this.started) {
        if (!sub.reload) continue;
        try {
          await sub.reload(changes, next);
        } catch (err) {
          log.error({ subsystem: sub.name, err }, 'subsystem could not apply the config change');
          failures.push(`${sub.name}: ${err instanceof Error ? err.message : String(err)}`);
        }
      }
      if (failures.length > 0) {
        // The old config stays the running one, so the next SIGHUP offers the same changes again.
        log.error({ failures }, 'config reload failed in part; keeping the running config for the next reload');
        return this.finishReload('failed', [...changes.map(describeChange), ...failures]);
      }
      this.config = next;
      this.loadedAt = new Date(this.now()).toISOString();
      log.info({ changes: changes.length }, 'config reload applied');
      return this.finishReload('applied', changes.map(describeChange));
    } finally {
      if (announce) {
        this.lastStatus = this.opts.readiness.summary();
        this.opts.notifier.notify({ READY: 1, STATUS: this.lastStatus });
      }
    }
  }

  private finishReload(result: ReloadResult, messages: string[]): ReloadInfo {
    const info: ReloadInfo = { at: new Date(this.now()).toISOString(), result, messages };
    this.reloadCounts[result]++;
    this.lastReload = info;
    for (const l of this.reloadListeners) l(info);
    return info;
  }

  status(): StatusResponse {
    const snap = this.opts.readiness.snapshot();
    const byName = new Map(this.subsystems.map((s) => [s.name, s]));
    const out: StatusResponse = {
      node: this.config.node.name,
      version: this.opts.version,
      pid: process.pid,
      startedAt: new Date(this.startedAt).toISOString(),
      uptimeSeconds: Math.floor((this.now() - this.startedAt) / 1000),
      ready: this.phase === 'running' && snap.ready,
      status: this.phase === 'running' ? this.opts.readiness.summary() : this.phase,
      config: summarizeConfig(this.config, this.opts.configFile, this.loadedAt),
      reloads: { ...this.reloadCounts },
      subsystems: snap.subsystems.map((s) => {
        let status: unknown;
        try {
          status = byName.get(s.name)?.status();
        } catch (err) {
          status = { error: err instanceof Error ? err.message : String(err) };
        }
        return status === undefined ? s : { ...s, status };
      }),
    };
    if (this.lastReload) out.lastReload = this.lastReload;
    return out;
  }

  private onReadiness(snap: ReadinessSnapshot): void {
    if (this.phase !== 'running') return;
    const summary = this.opts.readiness.summary();
    const fields: Record<string, string | number> = {};
    if (summary !== this.lastStatus) {
      fields.STATUS = summary;
      this.lastStatus = summary;
      this.opts.log.info({ ready: snap.ready, notReady: snap.subsystems.filter((s) => !s.ready).map((s) => s.name) }, `status: ${summary}`);
    }
    // READY=1 means "started and serving", sent once every subsystem has started, whether or not
    // each is fully ready: a node whose fabric or etcd is down keeps routing with what it has
    // (etcd down is not network down), and must not be killed by systemd's start timeout for it.
    // STATUS= and /readyz say what is missing.
    if (!this.readySent) {
      fields.READY = 1;
      fields.STATUS = summary;
      this.lastStatus = summary;
      this.readySent = true;
      this.opts.log.info('ready');
    }
    if (Object.keys(fields).length > 0) this.opts.notifier.notify(fields);
  }

  private startWatchdog(): void {
    const ms = this.opts.watchdogMs;
    if (!ms) return;
    this.opts.log.info({ intervalMs: ms }, 'systemd watchdog enabled');
    this.opts.notifier.notify({ WATCHDOG: 1 });
    // A blocked event loop stops these pings, which is exactly what the watchdog should notice.
    this.watchdog = setInterval(() => this.opts.notifier.notify({ WATCHDOG: 1 }), ms);
    this.watchdog.unref();
  }

  private stopWatchdog(): void {
    if (this.watchdog) clearInterval(this.watchdog);
    this.watchdog = undefined;
  }
}
