// nrdctl's service connection-table commands over the control API: `ct list [--service NAME]`
// (GET /v1/ct: each flow's forward and reply entry, its backend and TCP state) and `ct flush
// [--service NAME]` (DELETE /v1/ct). For debugging the load balancer: which backend a
// connection went to, and starting flows over after a change.
import type { CtFlushResponse, CtListResponse } from '../../api/ct-routes.js';
import type { Command, CommandContext } from '../commands.js';
import { apiRequest } from '../client.js';
import { formatJson, formatTable } from '../format.js';
import { parseFlags } from './state.js';

const EXIT_USAGE = 2;

function usageError(ctx: CommandContext, cmd: string, msg: string): number {
  ctx.stderr(`nrdctl ${cmd}: ${msg}\n`);
  return EXIT_USAGE;
}

export function formatCt(b: CtListResponse): string {
  const t = formatTable(
    ['service', 'dir', 'proto', 'source', 'destination', 'backend', 'state', 'age', 'idle'],
    b.entries.map((e) => [e.service ?? `#${e.serviceId}`, e.dir, e.protocol, e.src, e.dst, e.backendId, e.state, `${e.ageSeconds}s`, `${e.idleSeconds}s`]),
  );
  return `${t}${b.entries.length} entr${b.entries.length === 1 ? 'y' : 'ies'}\n`;
}

function query(flags: Record<string, string[]>): string {
  return flags.service ? `?service=${encodeURIComponent(flags.service[0]!)}` : '';
}

async function runList(ctx: CommandContext, args: string[]): Promise<number> {
  const p = parseFlags(args, { service: { value: true } });
  if (typeof p === 'string') return usageError(ctx, 'ct list', p);
  if (p.positionals.length) return usageError(ctx, 'ct list', `unexpected argument "${p.positionals[0]}"`);
  const body = await apiRequest<CtListResponse>(ctx.socket, `/v1/ct${query(p.flags)}`);
  ctx.stdout((p.output ?? ctx.output) === 'json' ? formatJson(body) : formatCt(body));
  return 0;
}

async function runFlush(ctx: CommandContext, args: string[]): Promise<number> {
  const p = parseFlags(args, { service: { value: true } });
  if (typeof p === 'string') return usageError(ctx, 'ct flush', p);
  if (p.positionals.length) return usageError(ctx, 'ct flush', `unexpected argument "${p.positionals[0]}"`);
  const body = await apiRequest<CtFlushResponse>(ctx.socket, `/v1/ct${query(p.flags)}`, { method: 'DELETE' });
  ctx.stdout((p.output ?? ctx.output) === 'json' ? formatJson(body) : `${body.deleted} entr${body.deleted === 1 ? 'y' : 'ies'} deleted\n`);
  return 0;
}

export const ctCommands: Command[] = [
  { path: ['ct', 'list'], args: '[--service NAME]', summary: 'service connections in the datapath (nrd_ct): backend, state, age', run: runList },
  { path: ['ct', 'flush'], args: '[--service NAME]', summary: 'delete service connections (all, or one service\'s)', run: runFlush },
];
