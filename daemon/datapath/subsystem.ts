// The datapath subsystem: loads nrd's BPF objects through libbpf, attaches the XDP prefilter to the
// node's uplink (node.interface) with the deny list from datapath.xdpPrefilter.deny, and keeps the
// pinned links and maps under datapath.pinPath across restarts. The libbpf work runs in a worker
// thread (host.ts), so loading and verifying never delays the BGP speaker's keepalives.
// A datapath that cannot load (no bpffs at pinPath and none mountable, old kernel, verifier
// refusal) leaves the node routing: the subsystem reports not ready with the failing call and the
// fix, and retries; it does not stop nrd. Its HTTP view is served by api/datapath-routes.ts.
import type { ConfigChange, NrdConfig } from '../config/index.js';
import type { Subsystem, SubsystemContext } from '../lib/subsystem.js';
import type { Logger } from '../lib/log.js';
import type { ReadinessReporter } from '../lib/health.js';
import type { DatapathOptions, DatapathStats, DatapathStatus } from './datapath.js';
import { type DatapathHost, type DatapathWhere, createDatapathHost } from './host.js';

const RETRY_MS = 10_000;

export interface DatapathSubsystemDeps {
  /** Directory holding the built *.bpf.o objects (default: the package's bpf/). */
  objectDir?: string;
  /** Where libbpf runs (default: a worker thread). */
  where?: DatapathWhere;
}

/** What GET /v1/datapath shows: the manager's status, the counters once loaded, the last error. */
export interface DatapathView {
  status: DatapathStatus | null;
  stats: DatapathStats | null;
  lastError: string | null;
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
  private host: DatapathHost | undefined;
  private config: NrdConfig | undefined;
  private started = false;
  private stopping = false;
  private lastError: string | undefined;
  private lastStatus: DatapathStatus | undefined;
  private retry: NodeJS.Timeout | undefined;
  /** Attempts run one after another; stop() waits for the one in flight. */
  private queue: Promise<void> = Promise.resolve();

  constructor(private readonly deps: DatapathSubsystemDeps = {}) {}

  /**
   * Runs the first attempt and waits for it, so READY=1 reports the datapath as it is; the wait
   * is on the worker, and the event loop (BGP, the API) runs on meanwhile. A failed attempt does
   * not fail the start: the subsystem is not ready with the reason and retries.
   */
  async start(ctx: SubsystemContext): Promise<void> {
    this.log = ctx.log;
    this.ready = ctx.ready;
    this.config = ctx.config;
    this.stopping = false;
    this.host = createDatapathHost(this.deps.where ?? 'worker', ctx.log);
    await this.schedule();
  }

  private schedule(): Promise<void> {
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    this.queue = this.queue.then(() => this.attempt()).catch((err: unknown) => this.log?.error({ err }, 'datapath attempt failed'));
    return this.queue;
  }

  private retryLater(): void {
    if (this.retry || this.stopping) return;
    this.retry = setTimeout(() => void this.schedule(), RETRY_MS);
    this.retry.unref();
  }

  private async attempt(): Promise<void> {
    const host = this.host;
    const config = this.config;
    if (!host || !config || this.stopping) return;
    let status: DatapathStatus;
    try {
      const opts = datapathOptions(config, this.deps.objectDir);
      status = this.started ? await host.reconcile(opts) : await host.start(opts);
      this.started = true;
      this.lastError = undefined;
    } catch (err) {
      this.lastError = (err as Error).message;
      this.log?.warn({ err }, 'datapath not loaded; retrying');
      this.ready?.({ ready: false, reason: `datapath: ${this.lastError}` });
      this.retryLater();
      return;
    }
    this.lastStatus = status;
    if (status.ready) this.ready?.({ ready: true, detail: { attachments: status.attachments.length } });
    else {
      this.ready?.({ ready: false, reason: status.reason ?? 'datapath not attached', detail: status.errors });
      this.retryLater();
    }
  }

  async reload(changes: readonly ConfigChange[], next: NrdConfig): Promise<void> {
    this.config = next;
    const mine = changes.some((c) => c.key.startsWith('datapath.') || c.key === 'node.interface');
    if (mine) await this.schedule();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.retry) clearTimeout(this.retry);
    this.retry = undefined;
    await this.queue;
    // Links and maps stay pinned: the next start reuses them, traffic is never interrupted.
    const host = this.host;
    this.host = undefined;
    if (!host) return;
    if (this.started) await host.stop().catch((err: unknown) => this.log?.warn({ err }, 'datapath stop failed'));
    this.started = false;
    await host.close();
  }

  /** The current view (fresh from the worker): status, counters once loaded, last error. */
  async view(): Promise<DatapathView> {
    const host = this.host;
    if (!host) return { status: null, stats: null, lastError: this.lastError ?? null };
    const status = await host.status();
    const stats = this.started ? await host.stats() : null;
    return { status, stats, lastError: this.lastError ?? null };
  }

  status(): unknown {
    return this.lastStatus ?? { ready: false, ...(this.lastError !== undefined ? { reason: this.lastError } : {}) };
  }
}
