// nrdctl's routing command: `nrdctl routes [--mode M] [--limit N]` (GET /v1/routes) — per prefix the
// node, the path mode (local/native/direct/vxlan), the next hops and since when — as a table for
// humans or the raw JSON (-o json).
import type { RoutesApiResponse } from '../../routing/api-types.js';
import type { Command, CommandContext } from '../commands.js';
import { apiRequest } from '../client.js';
import { formatDuration, formatJson, formatTable } from '../format.js';

export function formatRouting(body: RoutesApiResponse): string {
  const counts = Object.entries(body.counts)
    .map(([m, n]) => `${n} ${m}`)
    .join(', ');
  const switches = Object.entries(body.switches)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k} ${n}`)
    .join(', ');
  const head =
    `Mode ${body.mode}; VXLAN ${body.vxlan.device}${body.vxlan.mac ? ` (${body.vxlan.mac}, mtu ${body.vxlan.mtu})` : ' (not created)'}\n` +
    `Prefixes: ${counts || 'none'}${switches ? `; switches: ${switches}` : ''}\n\n`;
  const table = formatTable(
    ['prefix', 'node', 'mode', 'next hops', 'since'],
    body.routes.map((r) => [r.prefix, r.node, r.mode, r.nextHops.join(',') || null, `${formatDuration(r.sinceSeconds)} ago`]),
  );
  const foot = body.truncated ? `(${body.routes.length} of ${body.total} prefixes shown; use --limit)\n` : '';
  return head + table + foot;
}

export interface RoutingArgs {
  mode?: string;
  limit?: string;
}

/** `--mode M`, `--mode=M`, `--limit N`. */
export function parseRoutingArgs(args: readonly string[]): RoutingArgs | string {
  const out: RoutingArgs = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const m = /^--(mode|limit)(?:=(.*))?$/.exec(a);
    if (!m) return `unexpected argument "${a}" (use --mode local|native|direct|vxlan, --limit N)`;
    const v = m[2] ?? args[++i];
    if (v === undefined || v === '') return `option --${m[1]} needs a value`;
    out[m[1] as 'mode' | 'limit'] = v;
  }
  return out;
}

export function routingPath(a: RoutingArgs): string {
  const q = new URLSearchParams();
  if (a.mode !== undefined) q.set('mode', a.mode);
  if (a.limit !== undefined) q.set('limit', a.limit);
  const s = q.toString();
  return s ? `/v1/routes?${s}` : '/v1/routes';
}

export async function runRoutes(ctx: CommandContext, args: string[]): Promise<number> {
  const parsed = parseRoutingArgs(args);
  if (typeof parsed === 'string') {
    ctx.stderr(`nrdctl routes: ${parsed}\n`);
    return 2;
  }
  const body = await apiRequest<RoutesApiResponse>(ctx.socket, routingPath(parsed));
  ctx.stdout(ctx.output === 'json' ? formatJson(body) : formatRouting(body));
  return 0;
}

/** Entries for nrdctl's command table (daemon/cli/commands.ts). */
export const routingCommands: Command[] = [
  {
    path: ['routes'],
    args: '[--mode local|native|direct|vxlan] [--limit N]',
    summary: 'routes to other nodes: prefix, node, path mode (native/direct/vxlan), next hops, since when',
    run: runRoutes,
  },
];
