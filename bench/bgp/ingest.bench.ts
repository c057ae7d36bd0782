// BGP bulk ingest benchmark (RFC 4271 UPDATEs, ~800 IPv4 prefixes each, pre-encoded and written at
// socket speed by an injector): time from connect until every prefix is in the target's RIB, RSS
// per route, and keepalive jitter seen on a second session (1 s / 3 s timers) during the load.
// Targets in network namespaces: nrd's speaker, BIRD 2 and GoBGP, same workload, same run; prints
// nrd/BIRD and nrd/GoBGP ratios.   node dist/bench/bgp/ingest.bench.js [--routes 100000,1000000] [--targets nrd,bird,gobgp]
import net from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Framer, encodeMessage, keepaliveBytes, packUpdates } from '../../daemon/bgp/wire/index.js';
import type { OpenMessage, SessionContext } from '../../daemon/bgp/types.js';
import { Topology, type Host } from '../../test/lib/netns.js';
import { startBird } from '../../test/lib/bird.js';
import { run, type ManagedProcess } from '../../test/lib/proc.js';
import { waitFor, sleep } from '../../test/lib/wait.js';
import { SpeakerProc, siteConfig } from '../../test/integration/bgp/speaker-harness.js';

const TARGET = '192.0.2.2';
const INJ = '192.0.2.1';
const PROBE = '192.0.2.3';
const TARGET_AS = 65000;
const INJ_AS = 65100;
const PROBE_AS = 65101;
const SELF = fileURLToPath(import.meta.url);

const ctx: SessionContext = { fourOctetAs: true, extendedMessage: false, addPathReceive: new Set(), addPathSend: new Set(), peerType: 'ebgp' };

function open(asn: number, id: string, hold: number): Uint8Array {
  const m: OpenMessage = {
    type: 'open',
    version: 4,
    myAs: asn,
    holdTime: hold,
    bgpId: id,
    capabilities: { multiprotocol: [{ afi: 1, safi: 1 }], routeRefresh: true, enhancedRouteRefresh: false, extendedMessage: false, fourOctetAs: asn, unknown: [] },
  };
  return encodeMessage(m, ctx);
}

/** n distinct /24s inside 64.0.0.0/4 (2^20 of them). */
function prefixes(n: number): string[] {
  const out = new Array<string>(n);
  for (let i = 0; i < n; i++) out[i] = `${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`;
  return out;
}

/** Opens a session and resolves once the target's OPEN and KEEPALIVE arrived. */
function connect(local: string, asn: number, hold: number, onKeepalive?: () => void): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: TARGET, port: 179, localAddress: local });
    const f = new Framer();
    let up = false;
    s.on('error', reject);
    s.on('connect', () => {
      s.setNoDelay(true);
      s.write(open(asn, local, hold));
    });
    s.on('data', (d: Buffer) => {
      f.push(d);
      for (const r of f) {
        if (!r.ok) return reject(new Error(r.error.reason));
        const type = r.frame[18];
        if (type === 1) s.write(keepaliveBytes());
        else if (type === 3) reject(new Error(`NOTIFICATION ${r.frame[19]}/${r.frame[20]}`));
        else if (type === 4) {
          if (!up) {
            up = true;
            resolve(s);
          } else onKeepalive?.();
        }
      }
    });
  });
}

// ---- child roles (inside the injector namespace) --------------------------------------------------

async function injector(n: number): Promise<void> {
  const attrs = { origin: 0 as const, asPath: [{ type: 2 as const, asns: [INJ_AS] }], nextHop: INJ };
  const all = prefixes(n);
  const msgs: Uint8Array[] = [];
  for (let i = 0; i < all.length; i += 800) msgs.push(...packUpdates(attrs, all.slice(i, i + 800).map((prefix) => ({ prefix })), ctx, '1/1'));
  const blob = Buffer.concat(msgs);
  const t0 = Date.now();
  const s = await connect(INJ, INJ_AS, 240);
  const tUp = Date.now();
  s.write(blob, () => process.stdout.write(JSON.stringify({ written: Date.now() }) + '\n'));
  s.write(Buffer.from([...new Uint8Array(16).fill(0xff), 0, 23, 2, 0, 0, 0, 0])); // End-of-RIB
  process.stdout.write(JSON.stringify({ connect: t0, up: tUp, messages: msgs.length }) + '\n');
  setInterval(() => s.write(keepaliveBytes()), 30_000);
}

async function probe(): Promise<void> {
  const s = await connect(PROBE, PROBE_AS, 3, () => process.stdout.write(JSON.stringify({ ka: Date.now() }) + '\n'));
  process.stdout.write(JSON.stringify({ probeUp: Date.now() }) + '\n');
  setInterval(() => s.write(keepaliveBytes()), 1000);
}

// ---- the benchmark ------------------------------------------------------------------------------

interface Result {
  target: string;
  routes: number;
  seconds: number;
  rssBytesPerRoute: number;
  maxKeepaliveGapMs: number;
  keepalives: number;
}

function rssOf(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

function lines(p: ManagedProcess): Array<Record<string, number>> {
  return p
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, number>);
}

interface Target {
  pid(): number;
  count(): Promise<number>;
}

async function startTarget(kind: string, topo: Topology, host: Host): Promise<Target> {
  if (kind === 'nrd') {
    const site = siteConfig({
      address: TARGET,
      asn: TARGET_AS,
      podCIDRs: [],
      stateDir: topo.tmpdir('state'),
      peers: [
        // A million routes on purpose: no max-prefix limit (the default would stop the session).
        { address: INJ, asn: INJ_AS, families: ['ipv4'], passive: true, holdTime: 240, maxPrefix: { limit: 0 } },
        { address: PROBE, asn: PROBE_AS, families: ['ipv4'], passive: true },
      ],
      bgp: { import: { extraRanges: ['64.0.0.0/4'] }, listen: { address: '0.0.0.0' } },
    });
    // The driver's test-only change log (a JS object of every prefix) is not part of nrd.
    const sp = await SpeakerProc.start(host, { site, recordChanges: false }, topo.tmpdir('sock'));
    return {
      pid: () => sp.proc.pid,
      count: async () => (await sp.peer(INJ)).prefixes.accepted,
    };
  }
  if (kind === 'bird') {
    const bird = await startBird(host, {
      routerId: TARGET,
      asn: TARGET_AS,
      peers: [
        { name: 'inj', address: INJ, asn: INJ_AS, localAddress: TARGET, passive: true, export: 'none' },
        { name: 'probe', address: PROBE, asn: PROBE_AS, localAddress: TARGET, passive: true, holdTime: 3, keepaliveTime: 1, export: 'none' },
      ],
    });
    return {
      pid: () => bird.process.pid,
      count: async () => {
        const m = /(\d+) of \d+ routes/.exec(await bird.birdc('show route count'));
        return m ? Number(m[1]) : 0;
      },
    };
  }
  // GoBGP
  const dir = topo.tmpdir('gobgp');
  const conf = join(dir, 'gobgpd.toml');
  writeFileSync(
    conf,
    `[global.config]\n  as = ${TARGET_AS}\n  router-id = "${TARGET}"\n  port = 179\n` +
      `[[neighbors]]\n  [neighbors.config]\n    neighbor-address = "${INJ}"\n    peer-as = ${INJ_AS}\n  [neighbors.transport.config]\n    passive-mode = true\n` +
      `[[neighbors]]\n  [neighbors.config]\n    neighbor-address = "${PROBE}"\n    peer-as = ${PROBE_AS}\n  [neighbors.timers.config]\n    hold-time = 3\n    keepalive-interval = 1\n  [neighbors.transport.config]\n    passive-mode = true\n`,
  );
  const p = host.spawn(['gobgpd', '-f', conf, '--log-level', 'warn'], { name: 'gobgpd' });
  await waitFor(async () => (await host.exec(['gobgp', 'global'], { allowFailure: true })).code === 0, { timeoutMs: 10_000, what: 'gobgpd API' });
  return {
    pid: () => p.pid,
    count: async () => {
      const r = await host.exec(['gobgp', 'global', 'rib', 'summary', '-a', 'ipv4'], { allowFailure: true });
      const m = /Destination:\s*(\d+)/.exec(r.stdout);
      return m ? Number(m[1]) : 0;
    },
  };
}

async function measure(kind: string, n: number): Promise<Result> {
  const topo = new Topology('nrdb-ingest');
  try {
    const inj = await topo.host('inj');
    const tgt = await topo.host('tgt');
    await topo.link(inj, tgt, { addrA: [`${INJ}/24`, `${PROBE}/24`], addrB: `${TARGET}/24` });
    const target = await startTarget(kind, topo, tgt);
    const pr = inj.spawn([process.execPath, SELF], { env: { ...process.env, NRDB_ROLE: 'probe' }, name: 'probe' });
    await waitFor(() => lines(pr).some((l) => l.probeUp), { timeoutMs: 20_000, what: `probe session to ${kind}` });
    await sleep(1500);
    const rss0 = rssOf(target.pid());
    const ij = inj.spawn([process.execPath, '--max-old-space-size=4096', SELF], { env: { ...process.env, NRDB_ROLE: 'inject', NRDB_ROUTES: String(n) }, name: 'injector' });
    const started = await waitFor(() => lines(ij).find((l) => l.connect), { timeoutMs: 120_000, what: 'injector connected' });
    let got = 0;
    const t1 = await waitFor(
      async () => {
        got = await target.count();
        return got >= n ? Date.now() : false;
      },
      { timeoutMs: 600_000, intervalMs: kind === 'gobgp' ? 500 : 20, what: `${n} routes in ${kind}` },
    );
    const rss1 = rssOf(target.pid());
    const kas = lines(pr)
      .map((l) => l.ka)
      .filter((t): t is number => t !== undefined && t >= started.connect - 1000 && t <= t1 + 1000);
    let gap = 0;
    for (let i = 1; i < kas.length; i++) gap = Math.max(gap, kas[i]! - kas[i - 1]!);
    // No keepalive at all during a short load: the gap is the whole window.
    if (kas.length < 2) gap = Math.max(gap, t1 - started.connect);
    return { target: kind, routes: n, seconds: (t1 - started.connect) / 1000, rssBytesPerRoute: Math.max(0, rss1 - rss0) / n, maxKeepaliveGapMs: gap, keepalives: kas.length };
  } finally {
    await topo.destroy();
  }
}

async function main(): Promise<void> {
  const role = process.env.NRDB_ROLE;
  if (role === 'inject') return injector(Number(process.env.NRDB_ROUTES));
  if (role === 'probe') return probe();
  const { values } = parseArgs({ options: { routes: { type: 'string', default: '100000,1000000' }, targets: { type: 'string', default: 'nrd,bird,gobgp' } } });
  const sizes = values.routes!.split(',').map(Number);
  const targets = values.targets!.split(',');
  const have = (await run(['sh', '-c', 'command -v gobgpd && command -v gobgp'], { allowFailure: true })).code === 0;
  const results: Result[] = [];
  for (const n of sizes) {
    for (const t of targets) {
      if (t === 'gobgp' && !have) {
        console.log('gobgp: gobgpd/gobgp not installed, skipped');
        continue;
      }
      try {
        const r = await measure(t, n);
        results.push(r);
        console.log(`${t.padEnd(6)} ${String(n).padStart(8)} routes: ${r.seconds.toFixed(2)} s, ${Math.round(r.rssBytesPerRoute)} B/route RSS, max keepalive gap ${r.maxKeepaliveGapMs} ms (${r.keepalives} keepalives)`);
      } catch (err) {
        console.log(`${t} ${n}: failed: ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`);
      }
    }
    const get = (t: string): Result | undefined => results.find((r) => r.target === t && r.routes === n);
    const nrd = get('nrd');
    for (const other of ['bird', 'gobgp']) {
      const o = get(other);
      if (nrd && o) console.log(`  ${n} routes: nrd/${other} time ratio ${(nrd.seconds / o.seconds).toFixed(2)}, RSS ratio ${(nrd.rssBytesPerRoute / Math.max(1, o.rssBytesPerRoute)).toFixed(2)}`);
    }
  }
  process.exit(0);
}

await main();
