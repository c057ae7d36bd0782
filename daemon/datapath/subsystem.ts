// The datapath subsystem: loads nrd's BPF objects through libbpf, attaches the XDP prefilter to the
// node's uplink (node.interface) with the deny list from datapath.xdpPrefilter.deny, keeps the
// pinned links and maps under datapath.pinPath across restarts, and serves /v1/datapath.
// A datapath that cannot load (no bpffs at pinPath, old kernel, verifier refusal) leaves the node
// routing: the subsystem reports not ready with the failing call and retries, it does not stop nrd.
import type { ConfigChange, NrdConfig } from '../config/index.js';
import type { Subsystem, SubsystemContext } from '../lib/subsystem.js';
import type { Logger } from '../lib/log.js';
import type { ReadinessReporter } from '../lib/health.js';
import { json, type Router } from '../api/router.js';
import { Datapath, type DatapathOptions, type DatapathStatus } from './datapath.js';

const RETRY_MS = 10_000;

export interface DatapathSubsystemDeps {
  router: Router;
  /** Directory holding the built *.bpf.o objects (default: the package's bpf/). */
  objectDir?: string;
}

export function datapathOptions(config: NrdConfig, objectDir?: string): DatapathOptions {
  const opts: DatapathOptions = {
    pinPath: config.datapath.pinPath,
    uplink: config.node.interface,
    deny: config.datapath.xdpPrefilter.deny,
    tcMode: config.datapath.attach,
  };
  if (objectDir !== undefined) opts.objectDir = objectDir;
  return opts;
}

export class DatapathSubsystem implements Subsystem {
  readonly name = 'datapath';
  private log: Logger | undefined;
  private ready: ReadinessReporter | undefined;
  private datapath: Datapath | undefined;
  private config: NrdConfig | undefined;
  private started = false;
  private lastError: string | undefined;
  private retry: NodeJS.Timeout | undefined;

  constructor(private readonly deps: DatapathSubsystemDeps) {}

  start(ctx: SubsystemContext): void {
    this.log = ctx.log;
    this.ready = ctx.ready;
    this.config = ctx.config;
    this.datapath = new Datapath(ctx.log);
    this.deps.router.get('/v1/datapath', () =>
      json({ status: this.datapath?.status() ?? null, stats: this.started ? this.datapath?.stats() : null, lastError: this.lastError ?? null }),
    );
    this.attempt();
  }

  private attempt(): void {
    const dp = this.datapath;
    const config = this.config;
    if (!dp || !config) return;
    this.retry = undefined;
    let status: DatapathStatus;
    try {
      status = this.started ? dp.reconcile(datapathOptions(config, this.deps.objectDir)) : dp.start(datapathOptions(config, this.deps.objectDir));
      this.started = true;
      this.lastError = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
      this.log?.warn({ err }, 'datapath not loaded; retrying');
      this.ready?.({ ready: false, reason: `datapath: ${this.lastError}` });
      this.retry = setTimeout(() => this.attempt(), RETRY_MS);
      this.retry.unref();
      return;
    }
    this.report(status);
  }

  private report(status: DatapathStatus): void {
    if (status.ready) this.ready?.({ ready: true, detail: { attachments: status.attachments.length } });
    else {
      this.ready?.({ ready: false, reason: status.reason ?? 'datapath not attached', detail: status.errors });
      if (!this.retry) {
        this.retry = setTimeout(() => this.attempt(), RETRY_MS);
        this.retry.unref();
      }
    }
  }

  reload(changes: readonly ConfigChange[], next: NrdConfig): void {
    this.config = next;
    const mine = changes.some((c) => c.key.startsWith('datapath.') || c.key === 'node.interface');
    if (!mine) return;
    if (this.retry) clearTimeout(this.retry);
    this.attempt();
  }

  stop(): void {
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    // Links and maps stay pinned: the next start reuses them, traffic is never interrupted.
    if (this.started) this.datapath?.stop();
  }

  status(): unknown {
    return this.datapath?.status() ?? { ready: false };
  }
}
