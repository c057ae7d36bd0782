// What the lab routed: each node's routes (prefix, remote node, path mode, next hops) and BGP
// peers from its control API (/v1/routes, /v1/peers), the ToR's kernel routes (BIRD's kernel
// protocol export, `ip -j route show proto bird`), and a ping matrix between the pods (and from
// the ToR to every pod) with ICMP echo (ping(8)), the endpoints nrd made on each node (`nrdctl
// endpoints`), and one TCP connection from every pod to the external host, which answers the
// source address it saw: the node's address when masquerade works. Collection is I/O; formatting
// is pure.
import { join } from 'node:path';
import type { EndpointView } from '../../daemon/endpoints/api-types.js';
import { run } from '../lib/proc.js';
import { getBgpRoutes, getPeers, getRoutes, type BgpRoutesResponse, type PeersResponse, type RoutesApiResponse } from './api.js';
import type { LabNodeState, LabPodState, LabState } from './state.js';
import { REPO_ROOT, TOR_ADDRESS } from './plan.js';

const NRDCTL = join(REPO_ROOT, 'dist', 'daemon', 'cli', 'nrdctl.js');

export interface NodeRouting {
  name: string;
  asn: number;
  address: string;
  pod?: LabPodState;
  routes?: RoutesApiResponse;
  peers?: PeersResponse;
  /** The BGP Loc-RIB, to tell a route held down on its way to native from one with no BGP path. */
  bgp?: BgpRoutesResponse;
  /** Why routes or peers are missing (the API did not answer). */
  error?: string;
}

/** A route of the ToR's FIB that BIRD installed (a learned pod CIDR). */
export interface TorRoute {
  prefix: string;
  nextHops: string[];
  dev: string;
}

export interface PingResult {
  /** Source: a node name (its pod) or 'tor'. */
  from: string;
  fromAddress: string;
  /** Destination node (its pod). */
  to: string;
  toAddress: string;
  ok: boolean;
  sent: number;
  received: number;
  /** Average round-trip time of the answered echoes. */
  rttMs: number | null;
  /** Why it failed (ping's last line, or the error). */
  detail?: string;
}

/** A node's local endpoints as `nrdctl endpoints -o json` lists them. */
export interface NodeEndpoints {
  node: string;
  endpoints: EndpointView[];
  error?: string;
}

/** One pod's connection to the external host: the source address it saw. */
export interface MasqResult {
  from: string;
  podAddress: string;
  /** The node's address: what the external host must see. */
  expected: string;
  /** What the external host answered (undefined: no answer). */
  seen?: string;
  ok: boolean;
  detail?: string;
}

export interface TrafficReport {
  nodes: NodeRouting[];
  tor: TorRoute[];
  torError?: string;
  pings: PingResult[];
  /** Every pod answered every other pod and the ToR, and there are pods to test. */
  pingsOk: boolean;
  endpoints: NodeEndpoints[];
  masquerade: MasqResult[];
  /** Every pod reached the external host, which saw the pod's node address. */
  masqueradeOk: boolean;
}

const PING_COUNT = 3;

/** Routes and peers of every node, as the node's API reports them right now. */
export async function collectRouting(s: LabState): Promise<NodeRouting[]> {
  return Promise.all(
    s.nodes.map(async (n): Promise<NodeRouting> => {
      const base: NodeRouting = { name: n.name, asn: n.asn, address: n.address, ...(n.pod ? { pod: n.pod } : {}) };
      try {
        const [routes, peers, bgp] = await Promise.all([getRoutes(n.socket), getPeers(n.socket), getBgpRoutes(n.socket)]);
        return { ...base, routes, peers, bgp };
      } catch (err) {
        return { ...base, error: err instanceof Error ? err.message : String(err) };
      }
    }),
  );
}

/**
 * The remote pod CIDRs a node does not route yet (no entry, or one with no usable path): empty
 * once the node reaches every other node's pod. Nodes without a pod have nothing to reach.
 */
export function missingRoutes(s: LabState, nodes: NodeRouting[]): Array<{ node: string; prefix: string; owner: string }> {
  const out: Array<{ node: string; prefix: string; owner: string }> = [];
  for (const n of nodes) {
    for (const other of s.nodes) {
      if (other.name === n.name || !other.pod) continue;
      const r = n.routes?.routes.find((x) => x.prefix === other.pod!.cidr);
      const usable = r && (r.mode === 'native' || r.mode === 'direct' || r.mode === 'vxlan') && r.nextHops.length > 0;
      if (!usable) out.push({ node: n.name, prefix: other.pod.cidr, owner: other.name });
    }
  }
  return out;
}

/**
 * Routes that will still change by themselves: routing.mode auto (or native) with a BGP best path
 * for the prefix, but the route is not native yet. nrd holds a better path down for
 * routing.failoverHoldDown before moving to it, so a node that saw its BGP sync before the other
 * nodes' announcements starts on 'direct' and moves to 'native' that much later.
 */
export function pendingNative(nodes: NodeRouting[]): Array<{ node: string; prefix: string; mode: string }> {
  const out: Array<{ node: string; prefix: string; mode: string }> = [];
  for (const n of nodes) {
    if (!n.routes || !n.bgp || (n.routes.mode !== 'auto' && n.routes.mode !== 'native')) continue;
    for (const r of n.routes.routes) {
      if (r.mode === 'native' || r.mode === 'local') continue;
      const best = n.bgp.routes.find((b) => b.prefix === r.prefix)?.paths.find((p) => p.best && p.peer !== 'local');
      if (best && best.nextHops.some((h) => h && h !== n.address)) out.push({ node: n.name, prefix: r.prefix, mode: r.mode });
    }
  }
  return out;
}

/** `ip -j route` entries of the ToR's FIB that BIRD owns. */
export async function collectTorRoutes(torNs: string): Promise<TorRoute[]> {
  const r = await run(['ip', '-n', torNs, '-j', 'route', 'show', 'proto', 'bird'], { timeoutMs: 5000 });
  const list = r.stdout.trim() ? (JSON.parse(r.stdout) as Array<Record<string, unknown>>) : [];
  return list.map((e) => {
    const hops = Array.isArray(e.nexthops) ? (e.nexthops as Array<Record<string, unknown>>) : [e];
    return {
      prefix: String(e.dst),
      nextHops: hops.map((h) => (typeof h.gateway === 'string' ? h.gateway : '')).filter(Boolean),
      dev: [...new Set(hops.map((h) => (typeof h.dev === 'string' ? h.dev : '')).filter(Boolean))].join(','),
    };
  });
}

/** Parse ping(8)'s summary: "3 packets transmitted, 3 received, …" and "rtt min/avg/max/mdev = a/b/c/d ms". */
export function parsePing(text: string): { sent: number; received: number; rttMs: number | null } {
  const counts = /(\d+) packets transmitted, (\d+) (?:packets )?received/.exec(text);
  const rtt = /= [\d.]+\/([\d.]+)\/[\d.]+\/[\d.]+ ms/.exec(text);
  return {
    sent: counts ? Number(counts[1]) : 0,
    received: counts ? Number(counts[2]) : 0,
    rttMs: rtt ? Number(rtt[1]) : null,
  };
}

async function ping(ns: string, from: string, fromAddress: string, to: LabNodeState): Promise<PingResult> {
  const target = to.pod!.ip;
  const base = { from, fromAddress, to: to.name, toAddress: target };
  try {
    const r = await run(['ip', 'netns', 'exec', ns, 'ping', '-n', '-q', '-c', String(PING_COUNT), '-i', '0.2', '-W', '1', target], {
      allowFailure: true,
      timeoutMs: 10_000,
    });
    const p = parsePing(r.stdout);
    const ok = r.code === 0 && p.received > 0;
    const last = (r.stdout + r.stderr).trim().split('\n').filter(Boolean).slice(-1)[0] ?? `exit ${r.code}`;
    return { ...base, ...p, ok, ...(ok ? {} : { detail: last }) };
  } catch (err) {
    return { ...base, ok: false, sent: 0, received: 0, rttMs: null, detail: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * Ping every pod from every other pod, and every pod from the ToR (whose only way to a pod is the
 * route BIRD installed from BGP). All at once: each is a few echoes 200 ms apart.
 */
export async function pingMatrix(s: LabState): Promise<PingResult[]> {
  const withPods = s.nodes.filter((n) => n.pod);
  const jobs: Array<Promise<PingResult>> = [];
  for (const src of withPods) {
    for (const dst of withPods) if (dst !== src) jobs.push(ping(src.pod!.ns, src.name, src.pod!.ip, dst));
  }
  if (s.tor) for (const dst of withPods) jobs.push(ping(s.tor.ns, 'tor', TOR_ADDRESS, dst));
  return Promise.all(jobs);
}

/** `nrdctl endpoints -o json` on every node: the endpoints nrd made there. */
export async function collectEndpoints(s: LabState): Promise<NodeEndpoints[]> {
  return Promise.all(s.nodes.map(async (n): Promise<NodeEndpoints> => {
    const r = await run([process.execPath, NRDCTL, '--socket', n.socket, 'endpoints', '-o', 'json'], { allowFailure: true, timeoutMs: 10_000 });
    if (r.code !== 0) return { node: n.name, endpoints: [], error: (r.stderr || r.stdout).trim().split('\n')[0] ?? `exit ${r.code}` };
    const j = JSON.parse(r.stdout) as { local?: EndpointView[] };
    return { node: n.name, endpoints: j.local ?? [] };
  }));
}

/** A TCP client: connects to host:port and prints what it is sent (the external host's answer). */
const WHOAMI_CLIENT = `const s = require('net').connect(Number(process.argv[2]), process.argv[1]); let d = '';
s.setTimeout(3000, () => { console.error('timeout'); process.exit(1); });
s.on('data', (b) => { d += b; }); s.on('end', () => { process.stdout.write(d); process.exit(0); });
s.on('error', (e) => { console.error(e.message); process.exit(1); });`;

/** From every pod, one connection to the external host: which source address arrived there. */
export async function masqueradeChecks(s: LabState): Promise<MasqResult[]> {
  const ext = s.ext;
  if (!ext) return [];
  return Promise.all(s.nodes.filter((n) => n.pod).map(async (n): Promise<MasqResult> => {
    const base = { from: n.name, podAddress: n.pod!.ip, expected: n.address };
    const r = await run(['ip', 'netns', 'exec', n.pod!.ns, process.execPath, '-e', WHOAMI_CLIENT, ext.address, String(ext.port)], {
      allowFailure: true,
      timeoutMs: 10_000,
    });
    const seen = r.code === 0 ? r.stdout.trim() : undefined;
    const ok = seen === n.address;
    return { ...base, ...(seen !== undefined ? { seen } : {}), ok, ...(r.code !== 0 ? { detail: r.stderr.trim() || `exit ${r.code}` } : {}) };
  }));
}

/** Collect everything the report shows. */
export async function collectTraffic(s: LabState, nodes?: NodeRouting[]): Promise<TrafficReport> {
  const torRoutes = async (): Promise<{ routes: TorRoute[]; error?: string }> => {
    if (!s.tor) return { routes: [], error: 'no ToR recorded' };
    try {
      return { routes: await collectTorRoutes(s.tor.ns) };
    } catch (err) {
      return { routes: [], error: err instanceof Error ? err.message : String(err) };
    }
  };
  const [routing, tor, pings, endpoints, masquerade] = await Promise.all([
    nodes ? Promise.resolve(nodes) : collectRouting(s), torRoutes(), pingMatrix(s), collectEndpoints(s), masqueradeChecks(s),
  ]);
  return {
    nodes: routing,
    tor: tor.routes,
    ...(tor.error !== undefined ? { torError: tor.error } : {}),
    pings,
    pingsOk: pings.length > 0 && s.nodes.every((n) => n.pod) && pings.every((p) => p.ok),
    endpoints,
    masquerade,
    masqueradeOk: masquerade.length > 0 && masquerade.length === s.nodes.length && masquerade.every((m) => m.ok),
  };
}

/** Left-aligned columns, two spaces apart; the last column is not padded. */
export function columns(rows: string[][], indent = ''): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => indent + r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n');
}

function ago(s: number): string {
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.floor(s / 60)}m`;
  return `${Math.floor(s / 3600)}h`;
}

/** A next hop with the lab host it belongs to: the remote node itself, or the ToR. */
function hopLabel(hop: string, nodes: NodeRouting[]): string {
  const who = nodes.find((x) => x.address === hop)?.name ?? (hop === TOR_ADDRESS ? 'tor' : undefined);
  return who ? `${hop} (${who})` : hop;
}

function nodeSection(n: NodeRouting, all: NodeRouting[]): string[] {
  const out: string[] = [];
  const pod = n.pod ? `pod ${n.pod.ip} (CIDR ${n.pod.cidr})` : 'no pod yet';
  out.push(`${n.name}  AS ${n.asn}  ${n.address}  ${pod}${n.routes ? `  routing.mode ${n.routes.mode}` : ''}`);
  if (n.error) {
    out.push(`  API did not answer: ${n.error}`);
    return out;
  }
  const rt = n.routes!;
  const pending = pendingNative([n]);
  const rows = [['PREFIX', 'NODE', 'MODE', 'NEXT HOPS', 'SINCE']];
  const sorted = [...rt.routes].sort((a, b) => (a.node ?? '').localeCompare(b.node ?? '') || a.prefix.localeCompare(b.prefix));
  for (const r of sorted) {
    const hops = r.nextHops.map((h) => hopLabel(h, all));
    const held = pending.some((p) => p.prefix === r.prefix);
    rows.push([r.prefix, r.node ?? (r.mode === 'local' ? '(self)' : '-'), held ? `${r.mode} (native held down)` : r.mode, hops.join(', ') || '-', ago(r.sinceSeconds)]);
  }
  out.push(columns(rows, '  '));
  const counts = Object.entries(rt.counts)
    .map(([m, c]) => `${c} ${m}`)
    .join(', ');
  const sw = Object.entries(rt.switches)
    .map(([k, c]) => `${k} ×${c}`)
    .join(', ');
  out.push(`  ${counts || 'no routes'}; path switches: ${sw || 'none'}`);
  const peers = n.peers!;
  const prow = [['PEER', 'AS', 'TYPE', 'STATE', 'UPTIME', 'RECEIVED', 'ACCEPTED', 'ADVERTISED', 'LAST ERROR']];
  for (const p of peers.peers) {
    prow.push([
      p.address,
      String(p.asn),
      p.type,
      p.state,
      p.uptimeSeconds === null ? '-' : ago(p.uptimeSeconds),
      String(p.prefixes.received),
      String(p.prefixes.accepted),
      String(p.prefixes.advertised),
      p.lastError ? p.lastError.text : '-',
    ]);
  }
  out.push(columns(prow, '  '));
  return out;
}

/**
 * What path nrd chose for the remote nodes, and why. The lab leaves routing.mode unset, so nodes
 * run nrd's default (auto): a BGP path (native) wins over a directly connected one (direct), which
 * wins over VXLAN. The nodes share the ToR's subnet, so direct would work too; a native route via
 * the owning node's own address is the very kernel route a direct one would be.
 */
export function modeSummary(nodes: NodeRouting[]): string {
  const modes = [...new Set(nodes.map((n) => n.routes?.mode).filter(Boolean))].join('/') || '?';
  const remote = nodes.flatMap((n) => (n.routes?.routes ?? []).filter((r) => r.mode !== 'local').map((r) => ({ n, r })));
  const by: Record<string, number> = {};
  for (const { r } of remote) by[r.mode] = (by[r.mode] ?? 0) + 1;
  const straight = remote.filter(({ r }) => r.mode === 'native' && r.nextHops.length === 1 && nodes.some((x) => x.address === r.nextHops[0] && x.name === r.node)).length;
  const switches: Record<string, number> = {};
  for (const n of nodes) for (const [k, c] of Object.entries(n.routes?.switches ?? {})) switches[k] = (switches[k] ?? 0) + c;
  const pending = pendingNative(nodes);
  const lines = [
    `routing.mode ${modes} (the lab's site files leave it unset: nrd's default). auto prefers BGP (native) over directly connected (direct) over VXLAN.`,
    `remote pod CIDRs: ${Object.entries(by).map(([m, c]) => `${c} ${m}`).join(', ') || 'none'}` +
      (by.native ? `; ${straight} of ${by.native} native routes go straight to the owning node (the ToR passes the eBGP next hop on: third-party next hop, RFC 4271 §5.1.3), the same kernel route 'direct' would install` : ''),
  ];
  const sw = Object.entries(switches).map(([k, c]) => `${k} ×${c}`);
  if (sw.length) lines.push(`path switches since start: ${sw.join(', ')} (a better path is taken only after routing.failoverHoldDown)`);
  if (pending.length) lines.push(`native held down (BGP has a path; routing.failoverHoldDown not over yet): ${pending.map((p) => `${p.node} ${p.prefix} (${p.mode})`).join(', ')}`);
  return lines.join('\n');
}

function pingCell(p: PingResult | undefined): string {
  if (!p) return '-';
  if (!p.ok) return 'FAIL';
  const loss = p.received < p.sent ? ` (${p.sent - p.received}/${p.sent} lost)` : '';
  return `ok ${p.rttMs === null ? '?' : p.rttMs.toFixed(3)} ms${loss}`;
}

/** The ping matrix: one row per source, one column per destination pod. */
export function formatPings(s: LabState, pings: PingResult[]): string {
  const dsts = s.nodes.filter((n) => n.pod);
  if (!dsts.length) return 'no pods to ping';
  const sources = [...dsts.map((n) => ({ name: n.name, label: `${n.name} pod ${n.pod!.ip}` })), ...(s.tor ? [{ name: 'tor', label: `tor ${TOR_ADDRESS}` }] : [])];
  const rows = [['FROM \\ TO', ...dsts.map((d) => `${d.name} ${d.pod!.ip}`)]];
  for (const src of sources) {
    rows.push([src.label, ...dsts.map((d) => (d.name === src.name ? '-' : pingCell(pings.find((p) => p.from === src.name && p.to === d.name))))]);
  }
  const lines = [columns(rows)];
  for (const p of pings.filter((x) => !x.ok)) lines.push(`FAIL ${p.from} (${p.fromAddress}) → ${p.to} (${p.toAddress}): ${p.detail ?? 'no answer'}`);
  const ok = pings.filter((p) => p.ok).length;
  lines.push(`${ok}/${pings.length} pings answered (${PING_COUNT} echoes each, rtt = average)`);
  return lines.join('\n');
}

/** The endpoints per node: name, addresses, nrd's host veth, state. */
export function formatEndpoints(eps: readonly NodeEndpoints[]): string {
  const rows = [['NODE', 'ENDPOINT', 'ADDRESSES', 'HOST VETH', 'STATE']];
  const errors: string[] = [];
  for (const n of eps) {
    if (n.error) errors.push(`  ${n.node}: nrdctl endpoints failed: ${n.error}`);
    for (const e of n.endpoints) rows.push([n.node, e.name, e.ips.join(', '), e.hostIfname, e.state]);
  }
  return [columns(rows, '  '), ...errors].join('\n');
}

/** One line per pod: what the external host saw as the source, against the node's address. */
export function formatMasquerade(s: LabState, ms: readonly MasqResult[]): string {
  if (!s.ext) return '  no external host recorded';
  const rows = [['FROM POD', `SOURCE SEEN BY ${s.ext.address}`, 'NODE ADDRESS', '']];
  for (const m of ms) rows.push([`${m.from} ${m.podAddress}`, m.seen ?? `no answer (${m.detail ?? '?'})`, m.expected, m.ok ? 'ok (masqueraded)' : 'FAIL']);
  return columns(rows, '  ');
}

export function formatTraffic(s: LabState, t: TrafficReport): string {
  const out: string[] = ['', '== endpoints made by nrd (nrdctl endpoints) ==', formatEndpoints(t.endpoints), ''];
  out.push('== routes and BGP peers per node (GET /v1/routes, /v1/peers) ==');
  for (const n of t.nodes) out.push(...nodeSection(n, t.nodes), '');
  out.push(modeSummary(t.nodes), '');
  out.push(`== ToR ${s.tor?.ns ?? ''} kernel routes from BIRD (proto bird) ==`);
  if (t.torError) out.push(`  cannot read: ${t.torError}`);
  else if (!t.tor.length) out.push('  none: the ToR cannot forward pod traffic');
  else {
    const rows = [['PREFIX', 'VIA', 'DEV']];
    for (const r of t.tor) rows.push([r.prefix, r.nextHops.map((h) => hopLabel(h, t.nodes)).join(', ') || '-', r.dev]);
    out.push(columns(rows, '  '));
  }
  out.push('', '== pod-to-pod pings (and ToR to pod) ==', formatPings(s, t.pings));
  out.push('', `== masquerade: each pod to the external host ${s.ext?.address ?? ''}:${s.ext?.port ?? ''} (no route back to the pods) ==`,
    formatMasquerade(s, t.masquerade));
  return out.join('\n');
}
