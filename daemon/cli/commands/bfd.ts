// nrdctl's BFD command: `nrdctl bfd` (GET /v1/bfd) — per session the peer, what it is for (peer:
// a bgp.peers[] entry, mesh: a node-mesh BGP peer, node: the direct path to a node), hop mode, local and
// remote state, negotiated TX interval and detection time, the last diagnostic and since when —
// as a table for humans or the raw JSON (-o json).
import type { BfdSessionView } from '../../bfd/types.js';
import type { Command, CommandContext } from '../commands.js';
import { apiRequest } from '../client.js';
import { formatJson, formatTable } from '../format.js';

export function formatBfd(body: { sessions: BfdSessionView[] }): string {
  if (body.sessions.length === 0) return 'No BFD sessions.\n';
  return formatTable(
    ['peer', 'purpose', 'node', 'hop', 'state', 'remote', 'tx ms', 'detect ms', 'configured', 'diag', 'remote diag', 'auth', 'since', 'changes'],
    body.sessions.map((s) => [
      s.peer,
      s.purposes.join(','),
      s.node ?? '-',
      s.multihop ? 'multi' : 'single',
      s.state,
      s.remoteState,
      s.txIntervalMs,
      s.detectionTimeMs,
      `${s.configured.minTx}/${s.configured.minRx} ms x${s.configured.multiplier}`,
      s.localDiag,
      s.remoteDiag,
      s.auth,
      s.since,
      s.stateChanges,
    ]),
  );
}

export async function runBfd(ctx: CommandContext, args: string[]): Promise<number> {
  if (args.length > 0) {
    ctx.stderr(`nrdctl bfd: unexpected argument "${args[0]}"\n`);
    return 2;
  }
  const body = await apiRequest<{ sessions: BfdSessionView[] }>(ctx.socket, '/v1/bfd');
  ctx.stdout(ctx.output === 'json' ? formatJson(body) : formatBfd(body));
  return 0;
}

export const bfdCommands: Command[] = [
  {
    path: ['bfd'],
    summary: 'BFD sessions: peer, purpose (peer/mesh/node), state, negotiated intervals, last diagnostic',
    run: runBfd,
  },
];
