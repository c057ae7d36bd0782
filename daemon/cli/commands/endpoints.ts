// nrdctl's workload-endpoint commands over the control API: `endpoint add NAME --netns PATH
// [--labels k=v,…] [--ifname IF]`, `endpoint del NAME`, `endpoint show NAME`, and `endpoints`:
// the etcd records of every node (as before) with, for this node's endpoints, the host veth and
// its state (additive columns; `-o json` adds a `local` list to the same document).
import type { EndpointsResponse } from '../../state/api-types.js';
import type { EndpointDeleteResponse, EndpointView, LocalEndpointsResponse } from '../../endpoints/api-types.js';
import { parseLabelList } from '../../endpoints/model.js';
import type { Command, CommandContext } from '../commands.js';
import { ApiRequestError, apiRequest } from '../client.js';
import { formatJson, formatTable, type OutputFormat } from '../format.js';
import { parseFlags } from './state.js';

const EXIT_USAGE = 2;

function usageError(ctx: CommandContext, cmd: string, msg: string): number {
  ctx.stderr(`nrdctl ${cmd}: ${msg}\n`);
  return EXIT_USAGE;
}

function print(ctx: CommandContext, out: OutputFormat | undefined, body: unknown, human: () => string): void {
  ctx.stdout((out ?? ctx.output) === 'json' ? formatJson(body) : human());
}

const labelText = (l: Record<string, string>): string => Object.entries(l).map(([k, v]) => `${k}=${v}`).join(',') || '{}';

export function formatEndpoint(e: EndpointView): string {
  return [
    `endpoint ${e.name} on ${e.node}: ${e.state}${e.error ? ` (${e.error})` : ''}`,
    `  netns      ${e.netns}`,
    `  interface  ${e.ifname}${e.mac ? ` ${e.mac}` : ''}`,
    `  ips        ${e.ips.join(', ')}`,
    `  gateways   ${e.gateways.join(', ')} (${e.gatewayMac})`,
    `  host veth  ${e.hostIfname}${e.hostIfindex ? ` (ifindex ${e.hostIfindex})` : ''}`,
    `  identity   ${e.identity}`,
    `  labels     ${labelText(e.labels)}`,
  ].join('\n') + '\n';
}

/** The records table of every node plus, for this node's endpoints, the host veth and the state. */
export function formatEndpointsWithLocal(b: EndpointsResponse, local: LocalEndpointsResponse | undefined): string {
  const mine = new Map((local?.endpoints ?? []).map((e) => [e.name, e] as const));
  const rows = b.endpoints.map((e) => {
    const l = e.node === local?.node ? mine.get(e.id) : undefined;
    mine.delete(e.id);
    return [e.node, e.id, e.ips.join(','), e.mac, e.ifname, e.identity, labelText(e.labels), l?.hostIfname, l?.state];
  });
  // Local endpoints whose record the cache does not hold yet (just created).
  for (const l of mine.values()) rows.push([l.node, l.name, l.ips.join(','), l.mac, l.ifname, l.identity, labelText(l.labels), l.hostIfname, l.state]);
  const t = formatTable(['node', 'id', 'ips', 'mac', 'ifname', 'identity', 'labels', 'host if', 'state'], rows);
  return `${t}${rows.length} endpoint${rows.length === 1 ? '' : 's'}${b.synced ? '' : ' (not synced with etcd yet)'}\n`;
}

async function runList(ctx: CommandContext, args: string[]): Promise<number> {
  const p = parseFlags(args, { node: { value: true } });
  if (typeof p === 'string') return usageError(ctx, 'endpoints', p);
  if (p.positionals.length) return usageError(ctx, 'endpoints', `unexpected argument "${p.positionals[0]}"`);
  const q = p.flags.node ? `?node=${encodeURIComponent(p.flags.node[0]!)}` : '';
  const body = await apiRequest<EndpointsResponse>(ctx.socket, `/v1/endpoints${q}`);
  let local: LocalEndpointsResponse | undefined;
  try {
    local = await apiRequest<LocalEndpointsResponse>(ctx.socket, '/v1/local/endpoints');
  } catch (e) {
    // An nrd without the endpoints subsystem (older, or not running it): the records alone.
    if (!(e instanceof ApiRequestError) || (e.status !== 404 && e.status !== 503)) throw e;
  }
  if (local && p.flags.node && p.flags.node[0] !== local.node) local = undefined;
  print(ctx, p.output, local ? { ...body, local: local.endpoints } : body, () => formatEndpointsWithLocal(body, local));
  return 0;
}

async function runAdd(ctx: CommandContext, args: string[]): Promise<number> {
  const p = parseFlags(args, { netns: { value: true }, labels: { value: true }, ifname: { value: true } });
  if (typeof p === 'string') return usageError(ctx, 'endpoint add', p);
  if (p.positionals.length !== 1) return usageError(ctx, 'endpoint add', 'takes one NAME');
  if (!p.flags.netns) return usageError(ctx, 'endpoint add', 'needs --netns PATH (e.g. /run/netns/NAME)');
  const body: Record<string, unknown> = { name: p.positionals[0]!, netns: p.flags.netns[0]! };
  if (p.flags.ifname) body.ifname = p.flags.ifname[0]!;
  if (p.flags.labels) {
    const labels = parseLabelList(p.flags.labels[0]!);
    if (typeof labels === 'string') return usageError(ctx, 'endpoint add', `--labels: ${labels}`);
    body.labels = labels;
  }
  const ep = await apiRequest<EndpointView>(ctx.socket, '/v1/endpoints', { method: 'POST', body, timeoutMs: 30_000 });
  print(ctx, p.output, ep, () => formatEndpoint(ep));
  return 0;
}

async function runDel(ctx: CommandContext, args: string[]): Promise<number> {
  const p = parseFlags(args, {});
  if (typeof p === 'string') return usageError(ctx, 'endpoint del', p);
  if (p.positionals.length !== 1) return usageError(ctx, 'endpoint del', 'takes one NAME');
  const body = await apiRequest<EndpointDeleteResponse>(ctx.socket, `/v1/endpoints/${encodeURIComponent(p.positionals[0]!)}`, { method: 'DELETE', timeoutMs: 30_000 });
  print(ctx, p.output, body, () => `endpoint ${body.deleted} deleted\n`);
  return 0;
}

async function runShow(ctx: CommandContext, args: string[]): Promise<number> {
  const p = parseFlags(args, {});
  if (typeof p === 'string') return usageError(ctx, 'endpoint show', p);
  if (p.positionals.length !== 1) return usageError(ctx, 'endpoint show', 'takes one NAME');
  const ep = await apiRequest<EndpointView>(ctx.socket, `/v1/endpoints/${encodeURIComponent(p.positionals[0]!)}`);
  print(ctx, p.output, ep, () => formatEndpoint(ep));
  return 0;
}

export const endpointCommands: Command[] = [
  { path: ['endpoints'], args: '[--node NAME]', summary: 'endpoints in the cluster state; this node\'s with host veth and state', run: runList },
  {
    path: ['endpoint', 'add'],
    args: 'NAME --netns PATH [--labels k=v,...] [--ifname IF]',
    summary: 'create a workload endpoint: addresses, veth into the namespace, routes, record',
    run: runAdd,
  },
  { path: ['endpoint', 'del'], args: 'NAME', summary: 'delete an endpoint: veth, routes, record, addresses', run: runDel },
  { path: ['endpoint', 'show'], args: 'NAME', summary: 'one endpoint of this node', run: runShow },
];
