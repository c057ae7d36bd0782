// Test-only agent run inside a network namespace (`ip netns exec NS node agent.js`): drives the real
// netlink KernelPort and the Router from JSON lines on stdin, one reply line per request on stdout:
//   {"id":1,"op":"port","method":"replaceRoute","args":[{...}]}  → {"id":1,"ok":true,"result":…}
//   {"id":2,"op":"router.start","args":[RoutingOptions]}         (also router.setNodes/setBgp/
//   bgpChange/routes/settle/stop, events.start/events.take/events.count, bulk.routes, router.bgpBulk,
//   owners.routing/owners.endpoints: one reconcile of each owner over the same port)
// Errors come back as {"ok":false,"error":{code,errno,call,message}}.
import { createInterface } from 'node:readline';
import { NetlinkKernelPort } from '../../../daemon/kernel/netlink-port.js';
import { Router } from '../../../daemon/routing/router.js';
import type { KernelEvent, KernelPort } from '../../../daemon/kernel/types.js';
import type { BgpRoute, RemoteNode, RoutingOptions } from '../../../daemon/routing/types.js';
import { silentLogger, subsystemLogger } from '../../../daemon/lib/log.js';
import { Reconciler, type DesiredState } from '../../../daemon/kernel/reconciler.js';
import { EndpointKernelOwner, type EndpointKernelSpec } from '../../../daemon/kernel/endpoint-owner.js';
import { ROUTING_MARK } from '../../../daemon/kernel/owners.js';

interface Request {
  id: number;
  op: string;
  method?: string;
  args?: unknown[];
}

const port = new NetlinkKernelPort();
let router: Router | null = null;
let events: KernelEvent[] | null = null;
// Two owners of kernel objects over the one port, as in nrd (made on first use).
let routingOwner: Reconciler | null = null;
let endpointOwner: EndpointKernelOwner | null = null;

/** The i-th of up to 131072 distinct /25 prefixes in 10.0.0.0/8. */
function bulkPrefix(i: number): string {
  return `10.${(i >> 9) & 255}.${(i >> 1) & 255}.${(i & 1) * 128}/25`;
}

function reply(o: object): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

async function handle(req: Request): Promise<unknown> {
  const a = req.args ?? [];
  switch (req.op) {
    case 'port': {
      const m = req.method as keyof KernelPort;
      const fn = port[m] as unknown as (...x: unknown[]) => Promise<unknown>;
      if (typeof fn !== 'function') throw new Error(`no port method ${String(m)}`);
      return fn.apply(port, a);
    }
    case 'events.start':
      events = [];
      port.subscribe((e) => events?.push(e));
      return true;
    case 'events.take': {
      const out = events ?? [];
      events = [];
      return out;
    }
    case 'events.count': {
      // How many events arrived, and the route events for one prefix (large runs: no full list).
      const all = events ?? [];
      events = [];
      return { total: all.length, matching: all.filter((e) => e.kind === 'route' && e.route.dst === a[0]) };
    }
    case 'bulk.routes': {
      // N /25 routes in 10.0.0.0/8 via `gateway`, in one replaceRoutes batch; returns the failures.
      const n = a[0] as number;
      const routes = Array.from({ length: n }, (_, i) => ({
        family: 4 as const,
        dst: bulkPrefix(i),
        table: 254,
        protocol: 220,
        type: 'unicast' as const,
        nextHops: [{ gateway: a[1] as string }],
      }));
      return (await port.replaceRoutes(routes)).length;
    }
    case 'router.bgpBulk': {
      // N Loc-RIB changes, one applyBgpChange each (the incremental path), as BGP delivers them.
      const n = a[0] as number;
      for (let i = 0; i < n; i++) router!.applyBgpChange({ prefix: bulkPrefix(i), nextHops: [a[1] as string] });
      return true;
    }
    case 'router.start': {
      const opts = a[0] as RoutingOptions;
      const log = process.env.NRDT_AGENT_LOG ? subsystemLogger('routing') : silentLogger();
      router = new Router(port, opts, { log, reconciler: { resyncIntervalMs: Number(a[1] ?? 60_000), debounceMs: 5 } });
      return router.start();
    }
    case 'router.setNodes':
      router!.setNodes(a[0] as RemoteNode[], (a[1] as boolean | undefined) ?? true);
      return true;
    case 'router.setBgp':
      router!.setBgpRoutes(a[0] as BgpRoute[], (a[1] as boolean | undefined) ?? true);
      return true;
    case 'router.bgpChange':
      router!.applyBgpChange(a[0] as BgpRoute);
      return true;
    case 'router.routes':
      return router!.routes();
    case 'router.settle':
      // Let the coalesced recompute and the debounce fire, then run once more to report.
      await new Promise((r) => setTimeout(r, 30));
      return router!.reconciler.runNow();
    case 'owners.routing': {
      routingOwner ??= new Reconciler(port, { mark: ROUTING_MARK, log: silentLogger(), resyncIntervalMs: 0 });
      routingOwner.setSynced(a[1] as boolean);
      routingOwner.setDesired(a[0] as DesiredState);
      return routingOwner.runOnce();
    }
    case 'owners.endpoints': {
      endpointOwner ??= new EndpointKernelOwner(port, { log: silentLogger(), reconciler: { resyncIntervalMs: 0 } });
      endpointOwner.setEndpoints(a[0] as EndpointKernelSpec[], a[1] as boolean);
      return endpointOwner.runNow();
    }
    case 'router.switches':
      return Object.fromEntries(router!.switches);
    case 'router.stop':
      router?.stop();
      return true;
    case 'exit':
      setImmediate(() => {
        port.close();
        process.exit(0);
      });
      return true;
    default:
      throw new Error(`unknown op ${req.op}`);
  }
}

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let req: Request;
  try {
    req = JSON.parse(line) as Request;
  } catch {
    return;
  }
  handle(req).then(
    (result) => reply({ id: req.id, ok: true, result: result ?? null }),
    (e: unknown) => {
      const err = e as { code?: string; errno?: number; call?: string; message?: string };
      reply({ id: req.id, ok: false, error: { code: err.code, errno: err.errno, call: err.call, message: err.message ?? String(e) } });
    },
  );
});
rl.on('close', () => {
  router?.stop();
  port.close();
  process.exit(0);
});
process.on('SIGTERM', () => {
  // Like nrd: stop without touching the kernel; routes outlive the process.
  router?.stop();
  port.close();
  process.exit(0);
});
reply({ id: 0, ok: true, result: 'ready' });
