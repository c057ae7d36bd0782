// Prometheus metrics of the daemon itself (text exposition format via prom-client): build info,
// up, readiness overall and per subsystem, config reloads, and process metrics, all named nrd_….
import { Registry, Gauge, Counter, collectDefaultMetrics } from 'prom-client';
import type { ReadinessRegistry } from '../lib/health.js';
import type { ReloadResult } from '../lib/status.js';

export interface DaemonMetrics {
  /** The registry later subsystems register their own nrd_… metrics in. */
  registry: Registry;
  reloads: Counter<'result'>;
}

export function createMetrics(opts: { version: string; node: string; readiness: ReadinessRegistry }): DaemonMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'nrd_' });

  const build = new Gauge({
    name: 'nrd_build_info',
    help: 'Always 1; labels carry the nrd version, the node name and the Node.js version.',
    labelNames: ['version', 'node', 'nodejs'],
    registers: [registry],
  });
  build.set({ version: opts.version, node: opts.node, nodejs: process.version }, 1);

  new Gauge({ name: 'nrd_up', help: 'Always 1 while the daemon answers scrapes.', registers: [registry] }).set(1);

  new Gauge({
    name: 'nrd_ready',
    help: '1 when every subsystem reports ready, else 0.',
    registers: [registry],
    collect() {
      this.set(opts.readiness.isReady() ? 1 : 0);
    },
  });

  new Gauge({
    name: 'nrd_subsystem_ready',
    help: '1 when the subsystem reports ready, else 0.',
    labelNames: ['subsystem'],
    registers: [registry],
    collect() {
      // Reset so that an unregistered subsystem's series disappears instead of going stale.
      this.reset();
      for (const s of opts.readiness.snapshot().subsystems) this.set({ subsystem: s.name }, s.ready ? 1 : 0);
    },
  });

  const reloads = new Counter({
    name: 'nrd_config_reloads_total',
    help: 'Config reloads (SIGHUP) by result: applied, unchanged, rejected (bad file), failed (a subsystem could not apply).',
    labelNames: ['result'],
    registers: [registry],
  });
  // Start every series at 0 so rate() and alerts work before the first reload.
  for (const result of ['applied', 'unchanged', 'rejected', 'failed'] satisfies ReloadResult[]) reloads.inc({ result }, 0);

  return { registry, reloads };
}
