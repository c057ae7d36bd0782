// nrdctl's command table: each subcommand is a path of words ("status", later "peers",
// "bgp routes"), a one-line summary, and a run function over the shared request/format helpers.
import type { StatusResponse } from '../api/types.js';
import { apiRequest } from './client.js';
import { formatJson, formatStatus, type OutputFormat } from './format.js';
import { routingCommands } from './commands/routing.js';
import { stateCommands } from './commands/state.js';
import { bgpCommands } from './commands/bgp.js';
import { endpointCommands } from './commands/endpoints.js';
import { bfdCommands } from './commands/bfd.js';
import { policyCommands } from './commands/policy.js';
import { ctCommands } from './commands/ct.js';

export interface CommandContext {
  socket: string;
  output: OutputFormat;
  stdout: (s: string) => void;
  stderr: (s: string) => void;
}

export interface Command {
  /** Words that select the command, e.g. ['bgp', 'routes']. */
  path: string[];
  summary: string;
  /** Extra usage after the command words, e.g. '[ADDRESS]'. */
  args?: string;
  /** Returns the exit code. Transport errors (daemon not running) are handled by the caller. */
  run(ctx: CommandContext, args: string[]): Promise<number>;
}

/** Fetches a JSON document and prints it raw (-o json) or through a formatter (-o table). */
export async function show<T>(ctx: CommandContext, path: string, format: (body: T) => string): Promise<number> {
  const body = await apiRequest<T>(ctx.socket, path);
  ctx.stdout(ctx.output === 'json' ? formatJson(body) : format(body));
  return 0;
}

export const commands: Command[] = [
  {
    path: ['status'],
    summary: 'summary of the node: readiness per subsystem, config, version',
    run: (ctx) => show<StatusResponse>(ctx, '/v1/status', formatStatus),
  },
  // `endpoints` is the endpoints module's: the records table plus this node's veths and states.
  ...stateCommands.filter((c) => c.path.join(' ') !== 'endpoints'),
  ...endpointCommands,
  ...bgpCommands,
  ...routingCommands,
  ...bfdCommands,
  ...policyCommands,
  ...ctCommands,
];

/** The command whose path is the longest prefix of the positional words, and the rest as args. */
export function findCommand(table: readonly Command[], words: string[]): { command: Command; args: string[] } | undefined {
  let best: Command | undefined;
  for (const c of table) {
    if (c.path.length > words.length) continue;
    if (c.path.every((w, i) => words[i] === w) && (!best || c.path.length > best.path.length)) best = c;
  }
  return best ? { command: best, args: words.slice(best.path.length) } : undefined;
}
