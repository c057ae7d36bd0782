// nrdctl's BGP commands: `nrdctl peers` (GET /v1/peers) and `nrdctl bgp routes [--peer P]
// [--family F] [--prefix X]` (GET /v1/bgp/routes), as tables for humans or raw JSON (-o json).
import type { PeersResponse, PeerView, RoutesResponse } from '../../bgp/speaker/api-types.js';
import type { Command, CommandContext } from '../commands.js';
import { apiRequest } from '../client.js';
import { formatDuration, formatJson, formatTable } from '../format.js';

/** "NOTIFICATION received: Cease/Administrative Shutdown" or the error text. */
function lastError(p: PeerView): string | undefined {
  if (p.stopped) return `stopped: ${p.stopped}`;
  const e = p.lastError;
  if (!e) return undefined;
  if (e.notification) {
    const dir = e.kind === 'notification-received' ? 'received' : 'sent';
    const msg = e.notification.shutdownMessage ? ` "${e.notification.shutdownMessage}"` : '';
    return `${dir} ${e.notification.name}${msg}`;
  }
  return e.text;
}

export function formatPeers(body: PeersResponse): string {
  const head = `BGP AS ${body.asn}, router id ${body.routerId}, ${body.peers.length} peer${body.peers.length === 1 ? '' : 's'}\n\n`;
  if (body.peers.length === 0) return head;
  return (
    head +
    formatTable(
      ['peer', 'as', 'type', 'state', 'uptime', 'rcvd', 'accepted', 'adv', 'stale', 'last error'],
      body.peers.map((p) => [
        p.description ? `${p.address} (${p.description})` : p.address,
        p.asn,
        p.source === 'mesh' ? `${p.type}/mesh` : p.type,
        p.state,
        p.uptimeSeconds === null ? null : formatDuration(p.uptimeSeconds),
        p.prefixes.received,
        p.prefixes.accepted,
        p.prefixes.advertised,
        p.prefixes.stale || null,
        lastError(p),
      ]),
    )
  );
}

export function formatRoutes(body: RoutesResponse): string {
  const rows: Array<Array<string | number | null>> = [];
  for (const r of body.routes) {
    r.paths.forEach((p, i) => {
      const mark = p.best ? '*' : p.ecmp ? '=' : ' ';
      const flags = [p.stale ? 'stale' : '', p.communities?.join(' ') ?? '', p.largeCommunities?.join(' ') ?? ''].filter(Boolean).join(' ');
      rows.push([
        i === 0 ? r.prefix : '',
        `${mark} ${p.peer}`,
        p.nextHops.join(',') || null,
        p.asPath || null,
        p.localPref ?? null,
        p.med ?? null,
        formatDuration(p.ageSeconds),
        flags || null,
      ]);
    });
  }
  const table = formatTable(['prefix', 'from', 'next hop', 'as path', 'lpref', 'med', 'age', 'flags'], rows);
  const foot = body.truncated ? `(${body.routes.length} of ${body.total} prefixes shown; use --limit)\n` : `${body.total} prefix${body.total === 1 ? '' : 'es'}\n`;
  return `${table}${foot}`;
}

export interface RoutesArgs {
  peer?: string;
  family?: string;
  prefix?: string;
  limit?: string;
}

/** `--peer P`, `--peer=P`, `--family F`, `--prefix X`, `--limit N`, or a bare peer address. */
export function parseRoutesArgs(args: readonly string[]): RoutesArgs | string {
  const out: RoutesArgs = {};
  const names = ['peer', 'family', 'prefix', 'limit'] as const;
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(a);
    if (m) {
      const name = names.find((n) => n === m[1]);
      if (!name) return `unknown option ${a} (use --peer, --family, --prefix, --limit)`;
      const v = m[2] ?? args[++i];
      if (v === undefined || v === '') return `option --${name} needs a value`;
      out[name] = v;
    } else if (out.peer === undefined) out.peer = a;
    else return `unexpected argument "${a}"`;
  }
  return out;
}

export function routesPath(a: RoutesArgs): string {
  const q = new URLSearchParams();
  if (a.peer !== undefined) q.set('peer', a.peer);
  if (a.family !== undefined) q.set('family', a.family);
  if (a.prefix !== undefined) q.set('prefix', a.prefix);
  if (a.limit !== undefined) q.set('limit', a.limit);
  const s = q.toString();
  return s ? `/v1/bgp/routes?${s}` : '/v1/bgp/routes';
}

export async function runPeers(ctx: CommandContext, args: string[]): Promise<number> {
  if (args.length > 0) {
    ctx.stderr(`nrdctl peers: unexpected argument "${args[0]}"\n`);
    return 2;
  }
  const body = await apiRequest<PeersResponse>(ctx.socket, '/v1/peers');
  ctx.stdout(ctx.output === 'json' ? formatJson(body) : formatPeers(body));
  return 0;
}

export async function runBgpRoutes(ctx: CommandContext, args: string[]): Promise<number> {
  const parsed = parseRoutesArgs(args);
  if (typeof parsed === 'string') {
    ctx.stderr(`nrdctl bgp routes: ${parsed}\n`);
    return 2;
  }
  const body = await apiRequest<RoutesResponse>(ctx.socket, routesPath(parsed));
  ctx.stdout(ctx.output === 'json' ? formatJson(body) : formatRoutes(body));
  return 0;
}

/** Entries for nrdctl's command table (daemon/cli/commands.ts). */
export const bgpCommands: Command[] = [
  {
    path: ['peers'],
    summary: 'BGP peers: state, uptime, prefixes received/accepted/advertised, last error',
    run: runPeers,
  },
  {
    path: ['bgp', 'routes'],
    args: '[--peer P] [--family ipv4|ipv6] [--prefix X] [--limit N]',
    summary: 'BGP routes in the Loc-RIB (best *, ECMP =), optionally from one peer',
    run: runBgpRoutes,
  },
];
