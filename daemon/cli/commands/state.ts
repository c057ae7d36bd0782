// nrdctl's cluster-state commands over the control API: `nodes`, `endpoints`, `service
// set|del|list`, `policy set|del|list`, `node decommission`. Input comes from YAML/JSON files or
// flags and is validated by nrd (one source of truth): a refusal prints nrd's reason and exits 1.
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { DecommissionResponse, DeleteResponse, EndpointsResponse, NodesResponse, PoliciesResponse, ServicesResponse } from '../../state/api-types.js';
import type { PolicyRecord, PolicyRule, ServiceRecord } from '../../state/records.js';
import type { Command, CommandContext } from '../commands.js';
import { apiRequest } from '../client.js';
import { formatJson, formatTable, type OutputFormat } from '../format.js';

const EXIT_USAGE = 2;
const EXIT_ERROR = 1;

interface FlagSpec {
  /** Takes a value (else a boolean switch). */
  value?: boolean;
  multi?: boolean;
  short?: string;
}

export interface ParsedFlags {
  flags: Record<string, string[]>;
  positionals: string[];
  output?: OutputFormat;
}

/**
 * `--name V`, `--name=V`, `-f V`, repeatable flags, switches; a bare `--` is skipped. `-o/--output`
 * is accepted here too, for arguments that reached the command after a `--`.
 */
export function parseFlags(args: readonly string[], spec: Record<string, FlagSpec>): ParsedFlags | string {
  const out: ParsedFlags = { flags: {}, positionals: [] };
  const full: Record<string, FlagSpec> = { output: { value: true, short: 'o' }, ...spec };
  const byShort = new Map(Object.entries(full).flatMap(([n, s]) => (s.short ? [[s.short, n] as const] : [])));
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') continue;
    const long = /^--([a-zA-Z][a-zA-Z-]*)(?:=(.*))?$/.exec(a);
    const short = /^-([a-zA-Z])$/.exec(a);
    const name = long ? long[1]! : short ? byShort.get(short[1]!) : undefined;
    if (!long && !short) {
      out.positionals.push(a);
      continue;
    }
    if (!name || !full[name]) return `unknown option ${a}`;
    const s = full[name]!;
    let v: string | undefined = 'true';
    if (s.value) {
      v = long?.[2] ?? args[++i];
      if (v === undefined) return `option ${a} needs a value`;
    } else if (long?.[2] !== undefined) return `option --${name} takes no value`;
    if (!s.multi && out.flags[name]) return `option --${name} given twice`;
    (out.flags[name] ??= []).push(v);
  }
  const o = out.flags.output?.[0];
  delete out.flags.output;
  if (o !== undefined) {
    if (o !== 'json' && o !== 'table') return `unknown output format "${o}" (use table or json)`;
    out.output = o;
  }
  return out;
}

/** Reads a YAML (or JSON) document from a file, or stdin for "-". */
export function readDocument(file: string): unknown {
  const text = file === '-' ? readFileSync(0, 'utf8') : readFileSync(file, 'utf8');
  return parseYaml(text) as unknown;
}

/** "10.0.0.1:8080", "10.0.0.1", "[fd00::1]:80", "fd00::1" → {ip, port?} (port validated by nrd). */
export function parseBackend(s: string): { ip: string; port?: number } | string {
  const v6 = /^\[([^\]]+)\](?::(.+))?$/.exec(s);
  if (v6) return v6[2] === undefined ? { ip: v6[1]! } : { ip: v6[1]!, port: portOf(v6[2]) };
  const colons = (s.match(/:/g) ?? []).length;
  if (colons === 1) {
    const [ip, port] = s.split(':') as [string, string];
    return { ip, port: portOf(port) };
  }
  if (s === '') return 'empty backend';
  return { ip: s };
}

/** Numbers go to nrd as numbers, anything else as given (so nrd's reason names the bad value). */
function portOf(s: string): number {
  return /^\d+$/.test(s) ? Number(s) : (s as unknown as number);
}

/** The service object from `service set` flags. */
export function serviceFromFlags(f: Record<string, string[]>): Record<string, unknown> | string {
  if (!f.name) return 'service set needs -f FILE or --name (with --vip, --port, [--protocol], [--backend IP[:PORT] ...])';
  const svc: Record<string, unknown> = { name: f.name[0] };
  if (f.vip) svc.vip = f.vip[0];
  if (f.port) svc.port = portOf(f.port[0]!);
  if (f.protocol) svc.protocol = f.protocol[0];
  if (f.backend) {
    const bs: unknown[] = [];
    for (const b of f.backend) {
      const p = parseBackend(b);
      if (typeof p === 'string') return `--backend ${JSON.stringify(b)}: ${p}`;
      bs.push(p);
    }
    svc.backends = bs;
  }
  return svc;
}

function print(ctx: CommandContext, out: OutputFormat | undefined, body: unknown, human: () => string): void {
  ctx.stdout((out ?? ctx.output) === 'json' ? formatJson(body) : human());
}

function usageError(ctx: CommandContext, cmd: string, msg: string): number {
  ctx.stderr(`nrdctl ${cmd}: ${msg}\n`);
  return EXIT_USAGE;
}

const labelText = (l: Record<string, string>): string => Object.entries(l).map(([k, v]) => `${k}=${v}`).join(',') || '{}';

export function formatNodes(b: NodesResponse): string {
  const t = formatTable(
    ['name', 'address', 'alive', 'pod cidrs', 'vtep mac', 'asn'],
    b.nodes.map((n) => [`${n.name}${n.self ? ' (this node)' : ''}`, n.address || null, n.alive ? 'yes' : 'no', n.podCidrs.join(',') || null, n.vtepMac, n.asn]),
  );
  const refused = (b.rejected ?? []).map((r) => `refused ${r.kind} record ${r.key}: ${r.reason}: ${r.message}\n`).join('');
  return `${t}${refused}${b.synced ? '' : '(not synced with etcd yet: the list may be partial)\n'}`;
}

export function formatEndpoints(b: EndpointsResponse): string {
  const t = formatTable(
    ['node', 'id', 'ips', 'mac', 'ifname', 'identity', 'labels'],
    b.endpoints.map((e) => [e.node, e.id, e.ips.join(','), e.mac, e.ifname, e.identity, labelText(e.labels)]),
  );
  return `${t}${b.endpoints.length} endpoint${b.endpoints.length === 1 ? '' : 's'}${b.synced ? '' : ' (not synced with etcd yet)'}\n`;
}

const backendText = (s: ServiceRecord): string => s.backends.map((x) => (x.ip.includes(':') ? `[${x.ip}]:${x.port}` : `${x.ip}:${x.port}`)).join(',');

const hostPort = (ip: string, port: number): string => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`);

/** Backends with their datapath state when this node's datapath holds the service (draining ones included). */
function backendStates(s: ServicesResponse['services'][number]): string {
  if (!s.datapath) return backendText(s);
  return s.datapath.backends.map((x) => `${hostPort(x.ip, x.port)} (${x.state})`).join(',');
}

export function formatServices(b: ServicesResponse): string {
  return formatTable(
    ['name', 'vip', 'port', 'protocol', 'backends'],
    b.services.map((s) => [s.name, s.vip, s.port, s.protocol, backendStates(s) || null]),
  );
}

const ruleText = (rules: PolicyRule[]): string =>
  rules
    .map((r) => {
      const peers = r.peers.map((p) => ('cidr' in p ? p.cidr : labelText(p.labels))).join('|') || 'any';
      const ports = r.ports.map((p) => `${p.protocol}${p.port ? `/${p.port}${p.endPort ? `-${p.endPort}` : ''}` : ''}`).join('|') || 'all';
      return `${peers}:${ports}`;
    })
    .join(' ') || '-';

export function formatPolicies(b: PoliciesResponse): string {
  return formatTable(
    ['name', 'selector', 'ingress', 'egress'],
    b.policies.map((p: PolicyRecord) => [p.name, labelText(p.selector), ruleText(p.ingress), ruleText(p.egress)]),
  );
}

async function runNodes(ctx: CommandContext, args: string[]): Promise<number> {
  const p = parseFlags(args, {});
  if (typeof p === 'string') return usageError(ctx, 'nodes', p);
  if (p.positionals.length) return usageError(ctx, 'nodes', `unexpected argument "${p.positionals[0]}"`);
  const body = await apiRequest<NodesResponse>(ctx.socket, '/v1/nodes');
  print(ctx, p.output, body, () => formatNodes(body));
  return 0;
}

async function runEndpoints(ctx: CommandContext, args: string[]): Promise<number> {
  const p = parseFlags(args, { node: { value: true } });
  if (typeof p === 'string') return usageError(ctx, 'endpoints', p);
  if (p.positionals.length) return usageError(ctx, 'endpoints', `unexpected argument "${p.positionals[0]}"`);
  const q = p.flags.node ? `?node=${encodeURIComponent(p.flags.node[0]!)}` : '';
  const body = await apiRequest<EndpointsResponse>(ctx.socket, `/v1/endpoints${q}`);
  print(ctx, p.output, body, () => formatEndpoints(body));
  return 0;
}

type Kind = 'service' | 'policy';
const PLURAL: Record<Kind, string> = { service: 'services', policy: 'policies' };

/** PUTs each document of `docs` (one object or a list), stopping at the first refusal. */
async function putAll(ctx: CommandContext, kind: Kind, docs: unknown, out: OutputFormat | undefined): Promise<number> {
  const list = Array.isArray(docs) ? docs : [docs];
  if (list.length === 0) {
    ctx.stderr(`nrdctl ${kind} set: the file holds no ${kind}\n`);
    return EXIT_ERROR;
  }
  const done: unknown[] = [];
  for (const doc of list) {
    const name = typeof doc === 'object' && doc !== null && typeof (doc as { name?: unknown }).name === 'string' ? (doc as { name: string }).name : undefined;
    // A name that cannot be a path segment goes in the body only: nrd names the problem.
    const path = name !== undefined && /^[A-Za-z0-9._-]+$/.test(name) ? `/v1/${PLURAL[kind]}/${encodeURIComponent(name)}` : `/v1/${PLURAL[kind]}`;
    done.push(await apiRequest<unknown>(ctx.socket, path, { method: 'PUT', body: doc ?? null }));
  }
  print(ctx, out, done.length === 1 ? done[0] : done, () =>
    done
      .map((d) => {
        const r = d as { name: string } & Partial<ServiceRecord>;
        return kind === 'service' ? `service ${r.name} set: ${r.vip}:${r.port}/${r.protocol}, ${r.backends?.length ?? 0} backend(s)\n` : `policy ${r.name} set\n`;
      })
      .join(''),
  );
  return 0;
}

function loadFile(ctx: CommandContext, kind: Kind, file: string): { ok: true; doc: unknown } | { ok: false } {
  try {
    return { ok: true, doc: readDocument(file) };
  } catch (e) {
    ctx.stderr(`nrdctl ${kind} set: cannot read ${file}: ${(e as Error).message}\n`);
    return { ok: false };
  }
}

async function runServiceSet(ctx: CommandContext, args: string[]): Promise<number> {
  const p = parseFlags(args, {
    file: { value: true, short: 'f' },
    name: { value: true },
    vip: { value: true },
    port: { value: true },
    protocol: { value: true },
    backend: { value: true, multi: true },
  });
  if (typeof p === 'string') return usageError(ctx, 'service set', p);
  if (p.positionals.length) return usageError(ctx, 'service set', `unexpected argument "${p.positionals[0]}"`);
  if (p.flags.file) {
    if (Object.keys(p.flags).length > 1) return usageError(ctx, 'service set', '-f FILE cannot be combined with other flags');
    const r = loadFile(ctx, 'service', p.flags.file[0]!);
    return r.ok ? putAll(ctx, 'service', r.doc, p.output) : EXIT_ERROR;
  }
  const svc = serviceFromFlags(p.flags);
  if (typeof svc === 'string') return usageError(ctx, 'service set', svc);
  return putAll(ctx, 'service', svc, p.output);
}

async function runPolicySet(ctx: CommandContext, args: string[]): Promise<number> {
  const p = parseFlags(args, { file: { value: true, short: 'f' } });
  if (typeof p === 'string') return usageError(ctx, 'policy set', p);
  if (p.positionals.length) return usageError(ctx, 'policy set', `unexpected argument "${p.positionals[0]}"`);
  if (!p.flags.file) return usageError(ctx, 'policy set', 'needs -f FILE (YAML or JSON; "-" for stdin)');
  const r = loadFile(ctx, 'policy', p.flags.file[0]!);
  return r.ok ? putAll(ctx, 'policy', r.doc, p.output) : EXIT_ERROR;
}

function runDel(kind: Kind) {
  return async (ctx: CommandContext, args: string[]): Promise<number> => {
    const p = parseFlags(args, {});
    if (typeof p === 'string') return usageError(ctx, `${kind} del`, p);
    if (p.positionals.length !== 1) return usageError(ctx, `${kind} del`, 'takes one NAME');
    const name = p.positionals[0]!;
    const body = await apiRequest<DeleteResponse>(ctx.socket, `/v1/${PLURAL[kind]}/${encodeURIComponent(name)}`, { method: 'DELETE' });
    print(ctx, p.output, body, () => `${kind} ${body.deleted} deleted\n`);
    return 0;
  };
}

async function runServiceList(ctx: CommandContext, args: string[]): Promise<number> {
  const p = parseFlags(args, {});
  if (typeof p === 'string') return usageError(ctx, 'service list', p);
  const body = await apiRequest<ServicesResponse>(ctx.socket, '/v1/services');
  print(ctx, p.output, body, () => formatServices(body));
  return 0;
}

async function runPolicyList(ctx: CommandContext, args: string[]): Promise<number> {
  const p = parseFlags(args, {});
  if (typeof p === 'string') return usageError(ctx, 'policy list', p);
  const body = await apiRequest<PoliciesResponse>(ctx.socket, '/v1/policies');
  print(ctx, p.output, body, () => formatPolicies(body));
  return 0;
}

async function runDecommission(ctx: CommandContext, args: string[]): Promise<number> {
  const p = parseFlags(args, { force: {} });
  if (typeof p === 'string') return usageError(ctx, 'node decommission', p);
  if (p.positionals.length !== 1) return usageError(ctx, 'node decommission', 'takes one NAME');
  const name = p.positionals[0]!;
  const q = p.flags.force ? '?force=true' : '';
  const body = await apiRequest<DecommissionResponse>(ctx.socket, `/v1/nodes/${encodeURIComponent(name)}/decommission${q}`, { method: 'POST' });
  print(ctx, p.output, body, () => `node ${body.node} decommissioned; freed ${body.freedCidrs.join(', ') || 'no CIDR'}\n`);
  return 0;
}

export const stateCommands: Command[] = [
  { path: ['nodes'], summary: 'nodes of the cluster: address, liveness, pod CIDRs', run: runNodes },
  { path: ['endpoints'], args: '[--node NAME]', summary: 'endpoints in the cluster state', run: runEndpoints },
  {
    path: ['service', 'set'],
    args: '-f FILE | --name N --vip IP --port P [--protocol tcp|udp|sctp] [--backend IP[:PORT] ...]',
    summary: 'create or replace a service (validated by nrd; nothing written when invalid)',
    run: runServiceSet,
  },
  { path: ['service', 'del'], args: 'NAME', summary: 'delete a service', run: runDel('service') },
  { path: ['service', 'list'], summary: 'services in etcd', run: runServiceList },
  { path: ['policy', 'set'], args: '-f FILE', summary: 'create or replace a policy (validated by nrd; nothing written when invalid)', run: runPolicySet },
  { path: ['policy', 'del'], args: 'NAME', summary: 'delete a policy', run: runDel('policy') },
  { path: ['policy', 'list'], summary: 'policies in etcd', run: runPolicyList },
  {
    path: ['node', 'decommission'],
    args: 'NAME [--force]',
    summary: 'free a node\'s pod CIDRs, endpoints and addresses now (refused while it is alive unless --force)',
    run: runDecommission,
  },
];
