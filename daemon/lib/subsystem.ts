// The contract between the lifecycle (daemon.ts) and each subsystem (state, bgp, routing,
// datapath, api): start, stop that keeps kernel state, idempotent reload, status. Subsystems
// import this, never daemon.ts, so the arrows point down (docs/design.md).
import type { ConfigChange, NrdConfig } from '../config/index.js';
import type { Logger } from './log.js';
import type { ReadinessReporter } from './health.js';

/** What a subsystem receives when it starts. */
export interface SubsystemContext {
  /** The running config (deeply frozen). Later changes arrive through reload(). */
  config: NrdConfig;
  /** A child logger bound to { subsystem: name }. Its level follows log.level reloads. */
  log: Logger;
  /** Reports this subsystem's readiness. It starts not ready ("starting"). Ready means "doing
   * its job with what it has"; say in reason/detail what is missing (which peer, which error). */
  ready: ReadinessReporter;
}

export interface Subsystem {
  readonly name: string;
  /** Brings the subsystem up. A throw aborts the daemon start (already started ones are stopped). */
  start(ctx: SubsystemContext): Promise<void> | void;
  /** Graceful stop. Must leave kernel state (routes, devices, BPF pins) in place: the next start
   * reconciles from it, so a restart does not disturb traffic. */
  stop(): Promise<void> | void;
  /**
   * Applies a config change. Receives every changed key (filter what concerns you) and the whole
   * new config. Must be idempotent: when any subsystem fails, the daemon keeps the old config as
   * the running one, so the next SIGHUP offers the same changes again. Throw to report failure.
   */
  reload?(changes: readonly ConfigChange[], next: NrdConfig): Promise<void> | void;
  /** JSON-serialisable status shown under /v1/status. */
  status(): unknown;
}
