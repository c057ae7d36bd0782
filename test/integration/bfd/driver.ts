// Test entry for nrd's BGP speaker with BFD in a child process inside a test namespace: the bgp and
// bfd subsystems wired as daemon/main.ts wires them (BFD Up → Down resets the BGP peer), the real
// API routes (GET /v1/peers, /v1/bgp/routes, /v1/bfd) on a unix socket the test reaches from the
// root namespace, plus /test/events (BFD state changes and BGP peer-down times, monotonic ms).
import { Registry } from 'prom-client';
import { ReadinessRegistry } from '../../../daemon/lib/health.js';
import { rootLogger, silentLogger } from '../../../daemon/lib/log.js';
import { Router, json } from '../../../daemon/api/router.js';
import { createApiServer, listenUnix } from '../../../daemon/api/server.js';
import { loadConfigObject } from '../../../daemon/config/index.js';
import { BgpSubsystem } from '../../../daemon/bgp/subsystem.js';
import { registerBgpRoutes } from '../../../daemon/api/bgp-routes.js';
import { BfdSubsystem, reactionTo, type BfdStateChange } from '../../../daemon/bfd/subsystem.js';
import { registerBfdRoutes } from '../../../daemon/api/bfd-routes.js';
import { diagName } from '../../../daemon/bfd/packet.js';

export interface BfdDriverSpec {
  site: unknown;
  socket: string;
}

export interface BfdDriverEvents {
  bfd: Array<BfdStateChange & { atMs: number }>;
  bgpResets: Array<{ peer: string; atMs: number }>;
  metrics: string;
}

async function main(): Promise<void> {
  const spec = JSON.parse(process.env.NRDT_BFD ?? '{}') as BfdDriverSpec;
  const r = loadConfigObject(spec.site, { env: {}, hostname: 'nrd-test' });
  if (!r.ok) throw new Error(`site config rejected: ${JSON.stringify(r.issues)}`);
  const config = r.config;
  const log = process.env.NRDT_BFD_LOG ? rootLogger() : silentLogger();
  const readiness = new ReadinessRegistry();
  const router = new Router();
  const metrics = new Registry();
  const bgp = new BgpSubsystem({ metrics, sessionTimers: { idleHoldTime: 1, idleHoldMax: 2, connectRetryMax: 2 } });
  registerBgpRoutes(router, bgp);
  const bfd = new BfdSubsystem({ metrics });
  registerBfdRoutes(router, bfd);
  const events: BfdDriverEvents = { bfd: [], bgpResets: [], metrics: '' };
  bfd.onStateChange((c) => {
    events.bfd.push({ ...c, atMs: performance.now() });
    if (!reactionTo(c).resetBgp) return;
    bgp.resetPeer(c.peer, `BFD session down (${diagName(c.diag)})`);
    events.bgpResets.push({ peer: c.peer, atMs: performance.now() });
  });
  await bgp.start({ config, log: log.child({ subsystem: 'bgp' }), ready: readiness.register('bgp') });
  bfd.start({ config, log: log.child({ subsystem: 'bfd' }), ready: readiness.register('bfd') });
  router.get('/test/events', async () => json({ ...events, metrics: await metrics.metrics() } satisfies BfdDriverEvents));
  // The node mesh as main.ts feeds it from etcd: BGP mesh peers and their BFD sessions.
  router.add('POST', '/test/mesh', (req) => {
    const nodes = (req.body as { nodes: { name: string; address: string }[] }).nodes;
    bgp.setMeshPeers(nodes);
    bfd.setMeshNodes(nodes);
    return json({ ok: true });
  });
  router.get('/test/now', () => json({ nowMs: performance.now(), timeOrigin: performance.timeOrigin }));
  const server = createApiServer(router, log);
  await listenUnix(server, spec.socket);
  process.stdout.write(`ready ${process.pid}\n`);
  process.once('SIGTERM', () => {
    void Promise.all([bfd.stop(), bgp.stop()]).then(() => process.exit(0));
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`bfd driver failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
