// Benchmark: programming N kernel routes (protocol 220, /24s via a connected gateway) through nrd's
// netlink KernelPort against `ip -batch` of the same routes, in the same run, inside a fresh network
// namespace; prints both rates and the ratio. Root. Usage: node route-programming.bench.js [N…] [--ecmp]
// (default N = 10000). The namespace is flushed between runs; best of 3 runs each, alternated.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { withTopology, type Host } from '../../test/lib/netns.js';

const HELPER = fileURLToPath(new URL('./program-routes.js', import.meta.url));
const args = process.argv.slice(2);
const ecmp = args.includes('--ecmp');
const sizes = args.filter((a) => /^\d+$/.test(a)).map(Number);
if (sizes.length === 0) sizes.push(10_000);
const RUNS = 3;

async function countOwned(h: Host): Promise<number> {
  const r = await h.ip(['route', 'show', 'proto', '220']);
  return r.stdout.split('\n').filter((l) => l && !l.startsWith('\t') && !l.startsWith(' ')).length;
}

async function flush(h: Host): Promise<void> {
  await h.ip(['route', 'flush', 'proto', '220']);
}

async function main(): Promise<void> {
  await withTopology('bench-routes', async (topo) => {
    const h = await topo.host('node');
    const peer = await topo.host('peer');
    await topo.link(h, peer, { nameA: 'eth0', addrA: '192.0.2.1/24', addrB: '192.0.2.2/24' });
    await topo.link(h, peer, { nameA: 'eth1', addrA: '198.51.100.1/24', addrB: '198.51.100.2/24' });
    const dir = topo.tmpdir('batch');
    for (const n of sizes) {
      const lines: string[] = [];
      for (let i = 0; i < n; i++) {
        const dst = `${10 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}.0/24`;
        lines.push(ecmp ? `route replace ${dst} proto 220 nexthop via 192.0.2.2 nexthop via 198.51.100.2` : `route replace ${dst} via 192.0.2.2 proto 220`);
      }
      const file = join(dir, `routes-${n}.batch`);
      writeFileSync(file, `${lines.join('\n')}\n`);

      const ipMs: number[] = [];
      const portMs: number[] = [];
      const portWallMs: number[] = [];
      let stats: { datagrams: number; messages: number; dumpMs: number } = { datagrams: 0, messages: 0, dumpMs: 0 };
      for (let k = 0; k < RUNS; k++) {
        await flush(h);
        let t = process.hrtime.bigint();
        await h.ip(['-batch', file], { timeoutMs: 600_000 });
        ipMs.push(Number(process.hrtime.bigint() - t) / 1e6);
        if ((await countOwned(h)) !== n) throw new Error('ip -batch did not program every route');

        await flush(h);
        t = process.hrtime.bigint();
        const r = await h.exec([process.execPath, HELPER, String(n), 'batch', ecmp ? 'ecmp' : ''], { timeoutMs: 600_000 });
        portWallMs.push(Number(process.hrtime.bigint() - t) / 1e6);
        const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { writeMs: number; dumpMs: number; readBack: number; datagrams: number; messages: number };
        if (out.readBack !== n || (await countOwned(h)) !== n) throw new Error(`port programmed ${out.readBack} of ${n}`);
        portMs.push(out.writeMs);
        stats = out;
      }
      await flush(h);
      const best = (xs: number[]): number => Math.min(...xs);
      const rate = (ms: number): string => `${Math.round((n / ms) * 1000).toLocaleString('en-US')} routes/s`;
      const ip = best(ipMs);
      const port = best(portMs);
      const wall = best(portWallMs);
      console.log(`routes: ${n}${ecmp ? ' (ECMP, 2 next hops)' : ''}, best of ${RUNS}`);
      console.log(`  ip -batch          ${ip.toFixed(1)} ms  ${rate(ip)}   (process wall time)`);
      console.log(`  nrd KernelPort     ${port.toFixed(1)} ms  ${rate(port)}   (${stats.messages} requests in ${stats.datagrams} datagrams; read-back dump ${stats.dumpMs.toFixed(1)} ms)`);
      console.log(`  nrd incl. node start ${wall.toFixed(1)} ms  ${rate(wall)}`);
      console.log(`  ratio ip-batch / nrd: ${(ip / port).toFixed(2)}x (writes), ${(ip / wall).toFixed(2)}x (wall incl. node startup and read-back)`);
    }
  });
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
