// nrdctl's policy and flow-event commands: `nrdctl policy get ENDPOINT` (GET /v1/policy/:endpoint,
// the effective rules of an endpoint) and `nrdctl monitor [--endpoint X] [--verdict V] [--type T]`
// (GET /v1/monitor, NDJSON streamed until Ctrl-C; one line per flow event, or the raw JSON
// objects with -o json). Ctrl-C is the normal way out of monitor: exit code 0.
import type { EndpointPolicyView, RuleView } from '../../datapath/policy.js';
import type { FlowEvent } from '../../datapath/events.js';
import type { Command, CommandContext } from '../commands.js';
import { apiRequest, streamRequest } from '../client.js';
import { formatJson, formatTable } from '../format.js';

const PROTO_NAMES: Record<number, string> = { 1: 'icmp', 6: 'tcp', 17: 'udp', 58: 'icmpv6', 132: 'sctp' };

function rulesText(title: string, enforced: boolean, rules: RuleView[]): string {
  if (!enforced) return `${title}: not enforced (all allowed)\n`;
  if (rules.length === 0) return `${title}: enforced, nothing allowed\n`;
  return `${title}: enforced, allowed:\n` + formatTable(['policy', 'peers', 'identities', 'ports'], rules.map((r) => [
    r.policy, r.peers.join('; '), r.identities.length ? r.identities.join(',') : '-', r.ports.join(', '),
  ])).replace(/^/gm, '  ');
}

export function formatPolicyView(v: EndpointPolicyView): string {
  const labels = Object.entries(v.labels).map(([k, x]) => `${k}=${x}`).join(',') || '(none)';
  return [
    `Endpoint:  ${v.endpoint} (node ${v.node}, identity ${v.identity ?? 'none'})`,
    `Labels:    ${labels}`,
    `Policies:  ${v.policies.length ? v.policies.join(', ') : '(none select it)'}`,
    `Map:       ${v.mapEntries === null ? 'not on this node, or not applied yet' : `${v.mapEntries} entries in nrd_policy`}`,
    '',
  ].join('\n') + rulesText('Ingress', v.enforcement.ingress, v.ingress) + rulesText('Egress', v.enforcement.egress, v.egress);
}

const hostPort = (family: number, ip: string, port: number): string => (port ? (family === 6 ? `[${ip}]:${port}` : `${ip}:${port}`) : ip);

/**
 * One line per event: time, verdict and reason, endpoint and direction, the flow (as sent, before
 * any translation), then what applies: the translation (=> new address, service and backend ids),
 * identities, drops of the flow not reported since its previous event, length.
 */
export function formatEventLine(e: FlowEvent): string {
  const ep = e.endpoint === null ? '-' : `${e.endpoint}${e.dir ? ` ${e.dir}` : ''}`;
  const parts = [e.time, `${e.type.toUpperCase()} (${e.reason})`, ep];
  if (e.family === 0) {
    parts.push('non-IP');
  } else {
    parts.push(PROTO_NAMES[e.proto] ?? `proto-${e.proto}`, `${hostPort(e.family, e.src, e.sport)} -> ${hostPort(e.family, e.dst, e.dport)}`);
  }
  if (e.translated) {
    const to = hostPort(e.family, e.translated.addr, e.translated.port);
    parts.push(e.reason === 'masquerade' ? `=> from ${to}` : `=> ${to}`);
  }
  if (e.serviceId) parts.push(`service ${e.serviceId}${e.backendId ? ` backend ${e.backendId}` : ''}`);
  if (e.srcIdentity || e.dstIdentity) parts.push(`ids ${e.srcIdentity}->${e.dstIdentity}`);
  if (e.suppressed) parts.push(`(+${e.suppressed} not shown)`);
  parts.push(`len ${e.len}`);
  return parts.join(' ') + '\n';
}

export async function runPolicyGet(ctx: CommandContext, args: string[]): Promise<number> {
  if (args.length !== 1) {
    ctx.stderr('usage: nrdctl policy get ENDPOINT\n');
    return 2;
  }
  const body = await apiRequest<EndpointPolicyView>(ctx.socket, `/v1/policy/${encodeURIComponent(args[0]!)}`);
  ctx.stdout(ctx.output === 'json' ? formatJson(body) : formatPolicyView(body));
  return 0;
}

/** Parses monitor's options into the query string; a string is a usage error. */
export function monitorQuery(args: string[]): URLSearchParams | string {
  const q = new URLSearchParams();
  for (let i = 0; i < args.length; i++) {
    const m = /^--(endpoint|verdict|type)(?:=(.*))?$/.exec(args[i]!);
    if (!m) return `unexpected argument "${args[i]}"`;
    const v = m[2] ?? args[++i];
    if (v === undefined || v === '') return `option --${m[1]} needs a value`;
    q.set(m[1]!, v);
  }
  return q;
}

/** Streams until `signal` aborts (Ctrl-C by default) or the daemon ends the stream. */
export async function runMonitor(ctx: CommandContext, args: string[], signal?: AbortSignal): Promise<number> {
  const q = monitorQuery(args);
  if (typeof q === 'string') {
    ctx.stderr(`nrdctl monitor: ${q}\nusage: nrdctl monitor [--endpoint ID] [--verdict forwarded|dropped|translated] [--type REASON|TYPE]\n`);
    return 2;
  }
  let stop: AbortController | undefined;
  const onSigint = (): void => stop?.abort();
  if (!signal) {
    stop = new AbortController();
    signal = stop.signal;
    process.once('SIGINT', onSigint);
  }
  try {
    const qs = q.toString();
    await streamRequest(ctx.socket, `/v1/monitor${qs ? `?${qs}` : ''}`, (line) => {
      ctx.stdout(ctx.output === 'json' ? JSON.stringify(line) + '\n' : formatEventLine(line as FlowEvent));
    }, signal);
  } finally {
    process.off('SIGINT', onSigint);
  }
  return 0;
}

export const policyCommands: Command[] = [
  {
    path: ['policy', 'get'],
    args: 'ENDPOINT',
    summary: 'effective policy of an endpoint: selecting policies, enforcement, allowed peers and ports',
    run: runPolicyGet,
  },
  {
    path: ['monitor'],
    args: '[--endpoint ID] [--verdict V] [--type T]',
    summary: 'flow events of the datapath, one line each, until Ctrl-C',
    run: (ctx, args) => runMonitor(ctx, args),
  },
];
