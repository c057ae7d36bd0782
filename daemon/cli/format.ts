// Text formatting shared by nrdctl subcommands: aligned tables, durations, and the human summary
// of `nrdctl status`. Pure functions of the API's JSON, so tests need no daemon.
import type { StatusResponse } from '../api/types.js';

export type OutputFormat = 'table' | 'json';

export function formatJson(body: unknown): string {
  return JSON.stringify(body, null, 2) + '\n';
}

/** Renders rows as aligned columns under upper-case headers (kubectl/ip style). */
export function formatTable(headers: string[], rows: Array<Array<string | number | boolean | undefined | null>>): string {
  const cells = rows.map((r) => headers.map((_, i) => {
    const v = r[i];
    return v === undefined || v === null ? '-' : String(v);
  }));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]!.length)));
  const line = (cols: string[]): string =>
    cols
      .map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers.map((h) => h.toUpperCase())), ...cells.map(line)].join('\n') + '\n';
}

/** 3725 → "1h2m5s"; 0 → "0s". */
export function formatDuration(seconds: number): string {
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  const parts: string[] = [];
  if (d) parts.push(`${d}d`);
  if (h) parts.push(`${h}h`);
  if (m) parts.push(`${m}m`);
  if (s || parts.length === 0) parts.push(`${s}s`);
  return parts.join('');
}

/** Human summary of GET /v1/status: a key/value block, then one row per subsystem. */
export function formatStatus(st: StatusResponse): string {
  const c = st.config;
  const kv: Array<[string, string]> = [
    ['Node', `${st.node} (${c.node.address} on ${c.node.interface})`],
    ['State', st.ready ? 'ready' : `NOT READY: ${st.status}`],
    ['Version', `${st.version}, pid ${st.pid}, up ${formatDuration(st.uptimeSeconds)}`],
    ['BGP', `AS ${c.bgp.asn}, router-id ${c.bgp.routerId}, ${c.bgp.peers} configured peer${c.bgp.peers === 1 ? '' : 's'}${c.bgp.nodeMesh ? ', node mesh' : ''}`],
    ['Routing', c.routing.mode],
    ['etcd', `${c.etcd.endpoints.join(', ')} (prefix ${c.etcd.prefix})`],
    ['Config', `${c.file} (loaded ${c.loadedAt}, log level ${c.logLevel})`],
  ];
  // What the datapath runs with: the endpoint device and where masquerade happens.
  const sub = (name: string): Record<string, unknown> | undefined => {
    const s = st.subsystems.find((x) => x.name === name)?.status;
    return typeof s === 'object' && s !== null ? (s as Record<string, unknown>) : undefined;
  };
  const device = sub('endpoints')?.device as { kind?: string; netkit?: string } | undefined;
  if (device?.kind) kv.push(['Endpoints', `${device.kind} pairs; netkit ${device.netkit ?? 'unknown'}`]);
  const masq = sub('datapath')?.masquerade as { mode?: string; reason?: string } | undefined;
  if (masq?.mode) kv.push(['Masquerade', `${masq.mode}${masq.reason ? ` (${masq.reason})` : ''}`]);
  const reloads = Object.entries(st.reloads).filter(([, n]) => n > 0);
  if (reloads.length > 0 || st.lastReload) {
    const last = st.lastReload ? `; last ${st.lastReload.result} at ${st.lastReload.at}` : '';
    kv.push(['Reloads', `${reloads.map(([r, n]) => `${n} ${r}`).join(', ') || 'none'}${last}`]);
  }
  const w = Math.max(...kv.map(([k]) => k.length));
  const head = kv.map(([k, v]) => `${(k + ':').padEnd(w + 1)}  ${v}`).join('\n') + '\n';
  const table = formatTable(
    ['subsystem', 'ready', 'since', 'reason'],
    st.subsystems.map((s) => [s.name, s.ready ? 'yes' : 'no', s.since, s.reason]),
  );
  return `${head}\n${table}`;
}
