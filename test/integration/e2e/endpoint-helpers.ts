// Workload endpoints in the e2e fabric, made the way users make them: a namespace from `ip netns
// add` (a topology host, so teardown removes it) and `nrdctl endpoint add NAME --netns PATH`
// against the node's API socket. Traffic between them: ping, arping, a small TCP echo (a Node
// script run inside the namespace: the server prints the peer address it sees, the client sends
// N bytes and checks they come back), iperf3. What a node keeps for an endpoint: its nrdv link,
// its proto nrd-ep routes, its entries in the pinned nrd_endpoints map, its etcd keys.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { EndpointView } from '../../../daemon/endpoints/api-types.js';
import type { Fabric, FabricNode } from '../../lib/fabric.js';
import type { Host } from '../../lib/netns.js';
import type { ManagedProcess } from '../../lib/proc.js';
import { run } from '../../lib/proc.js';
import { waitFor } from '../../lib/wait.js';

/** rtm_protocol of the endpoints' host routes (nrd-ep). */
export const EP_ROUTE_PROTOCOL = 221;

export interface Workload {
  host: Host;
  /** /run/netns/<ns>: what --netns gets. */
  netns: string;
  ep: EndpointView;
  v4: string;
  v6: string | undefined;
  node: FabricNode;
}

/** A namespace created with `ip netns add` (the topology's), and the endpoint nrdctl puts in it. */
export async function addWorkload(fabric: Fabric, node: FabricNode, name: string): Promise<Workload> {
  const host = await fabric.topo.host(name);
  const netns = `/run/netns/${host.ns}`;
  const ep = await node.nrdctl<EndpointView>(['endpoint', 'add', name, '--netns', netns]).catch((e: unknown) => {
    throw new Error(`nrdctl endpoint add ${name} on ${node.name}: ${String(e)}\n${node.describe()}`);
  });
  const v4 = ep.ips.find((ip) => !ip.includes(':'));
  assert.ok(v4, `${name}: no IPv4 address in ${JSON.stringify(ep)}`);
  return { host, netns, ep, v4, v6: ep.ips.find((ip) => ip.includes(':')), node };
}

/** Wait until `from` gets an answer from `to` (ping -c 1 with retries); the failure says why. */
export async function waitPing(from: Workload | Host, to: string, what: string, timeoutMs = 15_000): Promise<void> {
  const h = 'host' in from ? from.host : from;
  await waitFor(() => h.ping(to), { timeoutMs, intervalMs: 200, what: `ping ${what} (${to})` });
}

/** `arping -c N -I eth0 ADDR` in a workload: how many replies (Habets' arping: "N packets received"). */
export async function arping(w: Workload, addr: string, count = 2): Promise<{ received: number; out: string }> {
  const r = await w.host.exec(['arping', '-c', String(count), '-w', '3', '-I', 'eth0', addr], { allowFailure: true, timeoutMs: 10_000 });
  const out = r.stdout + r.stderr;
  const m = /(\d+) packets? received/.exec(out) ?? /Received (\d+) response/.exec(out);
  return { received: m ? Number(m[1]) : 0, out };
}

const SERVER = `
const net = require('net');
const [addr, port] = process.argv.slice(1);
const s = net.createServer((c) => {
  console.log('PEER ' + c.remoteAddress.replace(/^::ffff:/, '') + ' ' + c.remotePort);
  c.on('error', () => {});
  c.pipe(c);
});
s.listen({ host: addr, port: Number(port), ipv6Only: false }, () => console.log('LISTENING'));
`;

const CLIENT = `
const net = require('net');
const [addr, port, n, to] = process.argv.slice(1);
const N = Number(n);
const buf = Buffer.alloc(N);
for (let i = 0; i < N; i++) buf[i] = (i * 7 + 13) & 255;
const t0 = Date.now();
const got = [];
let len = 0;
setTimeout(() => { console.log('TIMEOUT after ' + len + ' of ' + N + ' bytes back'); process.exit(2); }, Number(to));
const c = net.connect({ host: addr, port: Number(port) }, () => { console.log('LOCAL ' + c.localAddress); c.end(buf); });
c.on('data', (d) => {
  got.push(d);
  len += d.length;
  if (len < N) return;
  const ok = Buffer.concat(got).subarray(0, N).equals(buf);
  console.log(ok ? 'OK ' + N + ' ' + (Date.now() - t0) : 'MISMATCH');
  process.exit(ok ? 0 : 3);
});
c.on('error', (e) => { console.log('ERROR ' + e.message); process.exit(4); });
`;

/** A TCP echo server in a namespace (all addresses, both families); `peers()` says who connected. */
export class EchoServer {
  private constructor(
    readonly proc: ManagedProcess,
    readonly port: number,
  ) {}

  static async start(host: Host, port = 7007): Promise<EchoServer> {
    const proc = host.spawn([process.execPath, '-e', SERVER, '::', String(port)], { name: `${host.name}:echo`, captureBytes: 64 * 1024 });
    await waitFor(() => proc.output().includes('LISTENING') || (!proc.running() ? Promise.reject(new Error(`echo server exited: ${proc.output()}`)) : false), {
      timeoutMs: 10_000,
      intervalMs: 50,
      what: `echo server in ${host.name}`,
    });
    return new EchoServer(proc, port);
  }

  /** Peer addresses of the connections so far, in order. */
  peers(): string[] {
    return [...this.proc.output().matchAll(/^PEER (\S+) \d+$/gm)].map((m) => m[1]!);
  }

  stop(): Promise<unknown> {
    return this.proc.stop(1000);
  }
}

/** Send `bytes` to an echo server from a namespace and check they come back; the client's output. */
export async function tcpEcho(from: Host, addr: string, port: number, bytes: number, timeoutMs = 10_000): Promise<string> {
  const r = await from.exec([process.execPath, '-e', CLIENT, addr, String(port), String(bytes), String(timeoutMs)], { allowFailure: true, timeoutMs: timeoutMs + 5000 });
  assert.equal(r.code, 0, `TCP ${bytes} bytes ${from.name} → [${addr}]:${port}: ${r.stdout}${r.stderr}`);
  return r.stdout;
}

/** iperf3 -t SECONDS from `client` to a one-off server in `server`; bytes received by the server. */
export async function iperf3(server: Workload, client: Workload, addr: string, seconds = 1): Promise<number> {
  // --forceflush: its stdout is a pipe, and "Server listening" would wait in a buffer.
  const srv = server.host.spawn(['iperf3', '-s', '-1', '-p', '5201', '--forceflush'], { name: `${server.host.name}:iperf3`, captureBytes: 64 * 1024 });
  try {
    await waitFor(() => /listening/i.test(srv.output()), { timeoutMs: 5000, intervalMs: 20, what: `iperf3 server listening: ${srv.output()}` });
    const r = await client.host.exec(['iperf3', '-c', addr, '-p', '5201', '-t', String(seconds), '-J', '--connect-timeout', '3000'], {
      allowFailure: true,
      timeoutMs: (seconds + 10) * 1000,
    });
    assert.equal(r.code, 0, `iperf3 ${client.host.name} → ${addr}: ${r.stdout.slice(-1500)}${r.stderr}`);
    const j = JSON.parse(r.stdout) as { end: { sum_received: { bytes: number } } };
    return j.end.sum_received.bytes;
  } finally {
    await srv.stop(1000);
  }
}

/** Outgoing IP fragments a node made so far (Ip: FragCreates of /proc/net/snmp, its netns). */
export async function fragCreates(node: FabricNode): Promise<number> {
  const r = await node.host.exec(['cat', '/proc/net/snmp']);
  const ip = r.stdout.split('\n').filter((l) => l.startsWith('Ip: '));
  const names = ip[0]!.split(/\s+/);
  const values = ip[1]!.split(/\s+/);
  return Number(values[names.indexOf('FragCreates')]);
}

/** MTU of a link in a namespace. */
export async function linkMtu(h: Host, ifname: string): Promise<number> {
  const r = await h.ip(['-j', 'link', 'show', 'dev', ifname]);
  return (JSON.parse(r.stdout) as Array<{ mtu: number }>)[0]!.mtu;
}

/** The node's links named nrdv…. */
export async function nrdvLinks(node: FabricNode): Promise<string[]> {
  const r = await node.host.ip(['-j', 'link', 'show']);
  return (JSON.parse(r.stdout) as Array<{ ifname: string }>).map((l) => l.ifname).filter((n) => n.startsWith('nrdv'));
}

/** The node's endpoint host routes (proto nrd-ep), both families, as text lines. */
export async function epRouteLines(node: FabricNode): Promise<string[]> {
  const out: string[] = [];
  for (const fam of ['-4', '-6']) {
    const r = await node.host.ip([fam, 'route', 'show', 'table', 'all']);
    out.push(...r.stdout.split('\n').filter((l) => new RegExp(`proto (nrd-ep|${EP_ROUTE_PROTOCOL})\\b`).test(l)));
  }
  return out;
}

/** Bytes of an IPv4 or IPv6 address. */
function addrBytes(ip: string): number[] {
  if (!ip.includes(':')) return ip.split('.').map(Number);
  const [head, tail] = ip.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail !== undefined && tail !== '' ? tail.split(':') : [];
  const groups = [...h, ...Array(8 - h.length - t.length).fill('0'), ...t].map((g) => parseInt(g, 16));
  return groups.flatMap((g) => [g >> 8, g & 255]);
}

/** Entries of the node's pinned nrd_endpoints map whose key holds one of `ips`. */
export async function mapEntriesFor(node: FabricNode, ips: readonly string[]): Promise<unknown[]> {
  const path = join(node.pinPath, 'maps', 'nrd_endpoints');
  const r = await run(['bpftool', '-j', 'map', 'dump', 'pinned', path]);
  const entries = JSON.parse(r.stdout) as Array<{ key: string[] | number[] }>;
  const wanted = ips.map(addrBytes);
  const contains = (hay: number[], needle: number[]): boolean => hay.some((_, i) => needle.every((b, j) => hay[i + j] === b));
  return entries.filter((e) => {
    const key = (e.key ?? []).map((b) => (typeof b === 'string' ? parseInt(b, 16) : b));
    return wanted.some((w) => contains(key, w));
  });
}

/** etcd keys under /nrd/v1/ that name the endpoint or one of its addresses. */
export function etcdKeysFor(fabric: Fabric, name: string, ips: readonly string[]): string[] {
  const keys = fabric.etcd.etcdctl(['get', '--prefix', '/nrd/v1/', '--keys-only']).split('\n').filter(Boolean);
  return keys.filter((k) => k.split('/').includes(name) || ips.some((ip) => k.endsWith(`/${ip}`)));
}
