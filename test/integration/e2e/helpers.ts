// Assertions shared by the e2e tests: what a node's kernel (protocol-220 routes) and its control
// API (/v1/routes) say about the path to a remote node's pod CIDR, waited for with polling.
import assert from 'node:assert/strict';
import { ROUTE_PROTOCOL, VXLAN_DEVICE, routeDevs, routeGateways, type ApiRoute, type FabricNode, type KernelRoute } from '../../lib/fabric.js';
import { waitFor } from '../../lib/wait.js';

export type Path = 'native' | 'direct' | 'vxlan';

export interface PathSeen {
  kernel: KernelRoute;
  api: ApiRoute;
}

/** Does the kernel route implement the path (protocol 220, right devices/gateways)? */
function kernelSays(r: KernelRoute | undefined, path: Path, gateways?: readonly string[]): boolean {
  if (!r) return false;
  if (String(r.protocol) !== String(ROUTE_PROTOCOL) && r.protocol !== 'nrd') return false;
  const devs = routeDevs(r);
  if (path === 'vxlan') return devs.length > 0 && devs.every((d) => d === VXLAN_DEVICE);
  if (devs.includes(VXLAN_DEVICE)) return false;
  if (gateways) return JSON.stringify(routeGateways(r)) === JSON.stringify([...gateways].sort());
  return true;
}

/**
 * Wait until `node` reaches `remote`'s CIDR by `path` in the kernel and in /v1/routes (with the
 * given next hops for native/direct). Fails with both views and the daemon's log tail.
 */
export async function waitPath(node: FabricNode, remote: FabricNode, path: Path, opts: { gateways?: string[]; timeoutMs?: number } = {}): Promise<PathSeen> {
  const prefix = remote.cidr;
  assert.ok(prefix, `${remote.name} has no CIDR yet`);
  let last: { kernel?: KernelRoute; api?: ApiRoute } = {};
  try {
    return await waitFor(
      async () => {
        const kernel = await node.kernelRoute(prefix);
        const api = (await node.apiRoutes()).find((r) => r.prefix === prefix);
        last = { ...(kernel ? { kernel } : {}), ...(api ? { api } : {}) };
        if (!kernelSays(kernel, path, opts.gateways)) return false;
        if (!api || api.mode !== path) return false;
        if (opts.gateways && JSON.stringify([...api.nextHops].sort()) !== JSON.stringify([...opts.gateways].sort())) return false;
        return { kernel: kernel!, api };
      },
      { timeoutMs: opts.timeoutMs ?? 20_000, intervalMs: 100, what: `${node.name}: ${prefix} (${remote.name}) ${path}${opts.gateways ? ` via ${opts.gateways.join(',')}` : ''}` },
    );
  } catch (err) {
    throw new Error(
      `${(err as Error).message}\nkernel: ${JSON.stringify(last.kernel)}\napi: ${JSON.stringify(last.api)}\n` +
        `BGP view: ${JSON.stringify(await node.api(`/v1/bgp/routes?prefix=${encodeURIComponent(prefix)}`).catch((e: unknown) => String(e)))}\n` +
        `ip route show proto 220:\n${await node.nrdRoutesText().catch((e: unknown) => String(e))}\n${node.describe()}`,
    );
  }
}

/** Wait until every pod of `nodes` answers a ping from every other one. */
export async function pingMesh(nodes: readonly FabricNode[], timeoutMs = 15_000): Promise<void> {
  for (const a of nodes) {
    for (const b of nodes) {
      if (a === b) continue;
      await waitFor(() => a.pod!.host.ping(b.pod!.ip), { timeoutMs, intervalMs: 200, what: `ping ${a.name} pod ${a.pod!.ip} → ${b.name} pod ${b.pod!.ip}` }).catch(
        async (err: unknown) => {
          throw new Error(`${(err as Error).message}\n${a.name} routes:\n${await a.nrdRoutesText()}\n${b.name} routes:\n${await b.nrdRoutesText()}`);
        },
      );
    }
  }
}

/** The own CIDR of a node is a protocol-220 blackhole in its kernel (no loops to the fabric). */
export async function assertOwnBlackhole(n: FabricNode): Promise<void> {
  const r = await waitFor(
    async () => (await n.kernelRoutes(['proto', String(ROUTE_PROTOCOL), 'type', 'blackhole'])).find((x) => x.dst === n.cidr),
    { timeoutMs: 10_000, what: `${n.name}: blackhole ${n.cidr} proto 220` },
  );
  assert.equal(r.type, 'blackhole');
}

/** Wait for `n`'s daemon to say ready; then the node's state is synced. */
export async function waitAllReady(nodes: readonly FabricNode[], timeoutMs = 45_000): Promise<void> {
  await Promise.all(nodes.map((n) => n.waitReady(timeoutMs)));
}
