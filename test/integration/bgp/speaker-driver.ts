// Test entry for nrd's BGP speaker in a child process (inside a test namespace): starts the bgp
// subsystem from a site config object given as JSON in $NRDT_SPEAKER, and serves the control API
// (GET /v1/peers, /v1/bgp/routes) plus test-only routes on a unix socket the test process can reach
// from the root namespace. A child process so that tests can kill -9 it (graceful restart).
import { ReadinessRegistry } from '../../../daemon/lib/health.js';
import { silentLogger, rootLogger } from '../../../daemon/lib/log.js';
import { Router, json, ApiError } from '../../../daemon/api/router.js';
import { createApiServer, listenUnix } from '../../../daemon/api/server.js';
import { diffConfig, loadConfigObject, type NrdConfig } from '../../../daemon/config/index.js';
import { BgpSubsystem } from '../../../daemon/bgp/subsystem.js';
import { registerBgpRoutes } from '../../../daemon/api/bgp-routes.js';
import { Registry } from 'prom-client';
import type { RouteChange } from '../../../daemon/bgp/speaker.js';

export interface DriverSpec {
  /** Raw site config (as a YAML file would hold it). */
  site: unknown;
  /** Unix socket of the control API. */
  socket: string;
  /** GR R bit. */
  restarting?: boolean;
  /**
   * Keep the Loc-RIB change log behind /test/changes (default true). The ingest benchmark turns it
   * off: at a million routes this test-only table costs as much as the speaker itself.
   */
  recordChanges?: boolean;
}

export interface DriverChanges {
  /** "family prefix" → times the prefix was withdrawn from the Loc-RIB. */
  withdrawn: Record<string, number>;
  /** "family prefix" → current best path peer and stale mark. */
  table: Record<string, { peer: string; stale: boolean }>;
}

function load(site: unknown): NrdConfig {
  const r = loadConfigObject(site, { env: {}, hostname: 'nrd-test' });
  if (!r.ok) throw new Error(`site config rejected: ${JSON.stringify(r.issues)}`);
  return r.config;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.env.NRDT_SPEAKER ?? '{}') as DriverSpec;
  let config = load(spec.site);
  const log = process.env.NRDT_SPEAKER_LOG ? rootLogger() : silentLogger();
  const readiness = new ReadinessRegistry();
  const router = new Router();
  const deps: ConstructorParameters<typeof BgpSubsystem>[0] = {
    metrics: new Registry(),
    sessionTimers: { idleHoldTime: 1, idleHoldMax: 2, connectRetryMax: 2 },
  };
  if (spec.restarting !== undefined) deps.restarting = spec.restarting;
  const bgp = new BgpSubsystem(deps);
  registerBgpRoutes(router, bgp);
  const metrics = deps.metrics;
  const ready = readiness.register('bgp');
  await bgp.start({ config, log, ready });
  const speaker = bgp.speaker!;

  const withdrawn: Record<string, number> = {};
  const table: Record<string, { peer: string; stale: boolean }> = {};
  const record = (changes: readonly RouteChange[]): void => {
    for (const c of changes) {
      const k = `${c.family} ${c.prefix}`;
      if (c.best) table[k] = { peer: c.best.peer.id, stale: c.best.stale };
      else {
        delete table[k];
        withdrawn[k] = (withdrawn[k] ?? 0) + 1;
      }
    }
  };
  if (spec.recordChanges !== false) speaker.onRouteChange(record, { replay: true });
  // Stale marks change without a Loc-RIB change event: refresh them on read.
  const currentTable = (): DriverChanges['table'] => {
    const out: DriverChanges['table'] = {};
    for (const fam of ['1/1', '2/1'] as const) {
      for (const [prefix, sel] of speaker.ribForInspection.bestRoutes(fam)) {
        if (sel.best) out[`${fam} ${prefix}`] = { peer: sel.best.peer.id, stale: sel.best.stale };
      }
    }
    return out;
  };

  router.get('/test/readiness', () => json(readiness.snapshot()));
  router.get('/test/changes', () => json({ withdrawn, table: currentTable() } satisfies DriverChanges));
  router.get('/test/metrics', async () => json({ text: await metrics.metrics() }));
  router.add('POST', '/test/local-prefixes', (req) => {
    const b = req.body as { family: 'ipv4' | 'ipv6'; prefixes: string[] };
    speaker.setLocalPrefixes(b.family, b.prefixes);
    return json({ ok: true });
  });
  router.add('POST', '/test/reload', async (req) => {
    const next = load((req.body as { site: unknown }).site);
    const changes = diffConfig(config, next);
    try {
      await bgp.reload(changes, next);
    } catch (err) {
      throw new ApiError(500, 'reload_failed', String(err));
    }
    config = next;
    return json({ changes: changes.map((c) => c.key) });
  });
  router.add('POST', '/test/mesh', (req) => {
    speaker.setMeshPeers((req.body as { nodes: { name: string; address: string }[] }).nodes);
    return json({ ok: true });
  });

  const server = createApiServer(router, log);
  await listenUnix(server, spec.socket);
  process.stdout.write(`ready ${process.pid}\n`);
  process.once('SIGTERM', () => {
    void bgp.stop().then(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`speaker driver failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
