// Test-only agent run inside a network namespace (`ip netns exec NS node agent.js`): drives the real
// netlink KernelPort and the Router from JSON lines on stdin, one reply line per request on stdout:
//   {"id":1,"op":"port","method":"replaceRoute","args":[{...}]}  → {"id":1,"ok":true,"result":…}
//   {"id":2,"op":"router.start","args":[RoutingOptions]}         (also router.setNodes/setBgp/
//   bgpChange/routes/settle/stop, events.start/events.take)
// Errors come back as {"ok":false,"error":{code,errno,call,message}}.
import { createInterface } from 'node:readline';
import { NetlinkKernelPort } from '../../../daemon/kernel/netlink-port.js';
import { Router } from '../../../daemon/routing/router.js';
import type { KernelEvent, KernelPort } from '../../../daemon/kernel/types.js';
import type { BgpRoute, RemoteNode, RoutingOptions } from '../../../daemon/routing/types.js';
import { silentLogger, subsystemLogger } from '../../../daemon/lib/log.js';

interface Request {
  id: number;
  op: string;
  method?: string;
  args?: unknown[];
}

const port = new NetlinkKernelPort();
let router: Router | null = null;
let events: KernelEvent[] | null = null;

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
