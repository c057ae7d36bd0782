// Harness self-test (root): namespaces, veths and bridges carry traffic; teardown leaves nothing
// (namespaces, processes, temp dirs) even when the test body throws; BIRD launched by bird.ts
// establishes an eBGP session (RFC 4271) and exchanges a static route.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Topology, useTopology, withTopology, listNamespaces } from '../../lib/netns.js';
import { pidAlive, run, spawnProcess } from '../../lib/proc.js';
import { startBird, parseRoutes, parseProtocols, birdConfig } from '../../lib/bird.js';
import { waitFor } from '../../lib/wait.js';

async function assertGone(prefix: string, pids: number[], dirs: string[]): Promise<void> {
  assert.deepEqual(await listNamespaces(prefix), [], `namespaces with prefix ${prefix} left`);
  for (const pid of pids) assert.equal(pidAlive(pid), false, `process ${pid} still alive`);
  for (const d of dirs) assert.equal(existsSync(d), false, `dir ${d} still exists`);
}

test('two namespaces ping each other over a veth; destroy leaves nothing', async () => {
  const topo = new Topology(`nrdt-hs-${process.pid}`);
  try {
    const a = await topo.host('a');
    const b = await topo.host('b');
    const l = await topo.link(a, b, { addrA: '192.0.2.1/24', addrB: '192.0.2.2/24' });
    assert.equal(l.ifA, 'eth0');
    assert.equal(l.ifB, 'eth0');
    assert.ok(await a.ping('192.0.2.2'), 'a cannot ping b');
    assert.ok(await b.ping('192.0.2.1'), 'b cannot ping a');
    // The addresses exist only inside the namespaces.
    const rootAddrs = (await run(['ip', '-o', 'addr', 'show'])).stdout;
    assert.ok(!rootAddrs.includes('192.0.2.1/24'), 'fabric address leaked into the root namespace');
    const sleeper = a.spawn(['sleep', '600']);
    const dir = topo.tmpdir('x');
    const st = topo.state();
    assert.equal(st.namespaces.length, 2);
    await topo.destroy();
    await topo.destroy(); // idempotent
    await assertGone(topo.prefix, [sleeper.pid], [dir]);
    assert.equal(sleeper.running(), false);
  } finally {
    await topo.destroy();
  }
});

test('a bridge joins three hosts; routes and sysctls apply inside the namespace', async (t) => {
  const topo = useTopology(t, `br-${process.pid}`);
  const sw = await topo.host('sw');
  const hosts = await Promise.all(['h1', 'h2', 'h3'].map((n) => topo.host(n)));
  const ports: string[] = [];
  for (const [i, h] of hosts.entries()) {
    const l = await topo.link(h, sw, { addrA: `192.0.2.${11 + i}/24`, nameB: `p${i}` });
    ports.push(l.ifB);
  }
  await topo.bridge(sw, 'br0', ports, { addr: '192.0.2.1/24' });
  assert.ok(await hosts[0]!.ping('192.0.2.13'), 'h1 cannot reach h3 across the bridge');
  assert.ok(await hosts[2]!.ping('192.0.2.1'), 'h3 cannot reach the bridge address');
  await sw.sysctl('net.ipv4.ip_forward', 1);
  const fwd = await sw.exec(['cat', '/proc/sys/net/ipv4/ip_forward']);
  assert.equal(fwd.stdout.trim(), '1');
  await hosts[0]!.addRoute('198.51.100.0/24', { via: '192.0.2.1' });
  const routes = await hosts[0]!.routes();
  assert.ok(routes.some((r) => r.dst === '198.51.100.0/24' && r.gateway === '192.0.2.1'));
});

test('teardown runs when the test body throws', async () => {
  let seen: { prefix: string; pids: number[]; dirs: string[] } | null = null;
  await assert.rejects(
    withTopology(`thr-${process.pid}`, async (topo) => {
      const a = await topo.host('a');
      const p = a.spawn(['sleep', '600']);
      const d = topo.tmpdir();
      seen = { prefix: topo.prefix, pids: [p.pid], dirs: [d] };
      throw new Error('boom');
    }),
    /boom/,
  );
  assert.ok(seen);
  const s = seen as { prefix: string; pids: number[]; dirs: string[] };
  await assertGone(s.prefix, s.pids, s.dirs);
});

// A child test file whose test fails: its t.after hook must still tear the topology down.
const FAILING_TEST = `
import { test } from 'node:test';
import { useTopology } from ${JSON.stringify(new URL('../../lib/netns.js', import.meta.url).href)};
test('fails', async (t) => {
  const topo = useTopology(t, 'fail-' + process.pid);
  const a = await topo.host('a');
  const p = a.spawn(['sleep', '600']);
  console.log('STATE ' + JSON.stringify({ prefix: topo.prefix, pids: [p.pid], dirs: [topo.tmpdir()] }));
  throw new Error('expected failure');
});
`;

// A child process killed by SIGTERM (a test runner timeout, Ctrl-C): the exit hook tears down.
const KILLED_SCRIPT = `
import { Topology } from ${JSON.stringify(new URL('../../lib/netns.js', import.meta.url).href)};
const topo = new Topology('nrdt-sig-' + process.pid);
const a = await topo.host('a');
const p = a.spawn(['sleep', '600']);
console.log('STATE ' + JSON.stringify({ prefix: topo.prefix, pids: [p.pid], dirs: [topo.tmpdir()] }));
setInterval(() => {}, 1000);
`;

type Seen = { prefix: string; pids: number[]; dirs: string[] };

function stateLine(out: string): Seen {
  const line = out.split('\n').find((l) => l.includes('STATE {'));
  assert.ok(line, `child printed no state:\n${out}`);
  return JSON.parse(line.slice(line.indexOf('STATE ') + 6)) as Seen;
}

test('a failing test still tears down its t.after topology', async (t) => {
  const dir = useTopology(t, `tf-${process.pid}`).tmpdir('child');
  const file = join(dir, 'failing.test.mjs');
  writeFileSync(file, FAILING_TEST);
  // Without NODE_TEST_CONTEXT the child is a test run of its own, not a subtest streamed to us.
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const r = await run([process.execPath, '--test', '--test-reporter=tap', file], { allowFailure: true, env });
  assert.notEqual(r.code, 0, 'the child test was supposed to fail');
  await assertGone(...(Object.values(stateLine(r.stdout)) as [string, number[], string[]]));
});

test('SIGTERM to a process with a live topology tears it down', async (t) => {
  const dir = useTopology(t, `ts-${process.pid}`).tmpdir('child');
  const file = join(dir, 'killed.mjs');
  writeFileSync(file, KILLED_SCRIPT);
  const child = spawnProcess([process.execPath, file]);
  const seen = await waitFor(() => (child.output().includes('STATE {') ? stateLine(child.output()) : undefined), {
    what: 'child to build its topology',
  });
  assert.equal((await listNamespaces(seen.prefix)).length, 1);
  child.signal('SIGTERM');
  const ex = await child.exited;
  assert.equal(ex.code, 128 + 15);
  await assertGone(seen.prefix, seen.pids, seen.dirs);
});

test('BIRD to BIRD eBGP session establishes and exchanges a static route', async (t) => {
  const topo = useTopology(t, `bgp-${process.pid}`);
  const r1 = await topo.host('r1');
  const r2 = await topo.host('r2');
  await topo.link(r1, r2, { addrA: '192.0.2.1/24', addrB: '192.0.2.2/24' });
  const b1 = await startBird(r1, {
    routerId: '192.0.2.1',
    asn: 65000,
    peers: [{ name: 'r2', address: '192.0.2.2', asn: 64512, holdTime: 9, password: 'lab-md5' }],
    staticRoutes: ['10.244.1.0/24'],
    kernel: true,
  });
  const b2 = await startBird(r2, {
    routerId: '192.0.2.2',
    asn: 64512,
    peers: [{ name: 'r1', address: '192.0.2.1', asn: 65000, holdTime: 9, password: 'lab-md5', gracefulRestart: 60 }],
    staticRoutes: ['10.244.2.0/24'],
    kernel: true,
  });
  await b1.waitEstablished('r2');
  await b2.waitEstablished('192.0.2.1');
  const learned = await waitFor(
    async () => (await b2.routes()).find((r) => r.prefix === '10.244.1.0/24' && r.protocol === 'r1'),
    { what: 'r2 learns 10.244.1.0/24 from r1' },
  );
  assert.equal(learned.attrs['BGP.as_path'], '65000');
  assert.equal(learned.attrs['BGP.next_hop'], '192.0.2.1');
  assert.deepEqual(learned.nexthops, [{ via: '192.0.2.1', dev: 'eth0' }]);
  assert.equal(learned.primary, true);
  // kernel protocol: the learned route is in r2's FIB (and only in r2's namespace).
  await waitFor(async () => (await r2.routes()).some((r) => r.dst === '10.244.1.0/24' && r.gateway === '192.0.2.1'), {
    what: '10.244.1.0/24 in r2 FIB',
  });
  await waitFor(async () => (await r1.routes()).some((r) => r.dst === '10.244.2.0/24'), { what: '10.244.2.0/24 in r1 FIB' });
  const protos = await b1.protocols();
  assert.equal(protos.find((p) => p.name === 'r2')?.state, 'up');
  await b2.stop();
  assert.equal(b2.process.running(), false);
});

test('bird.ts parsers and config generator', () => {
  const routes = parseRoutes(
    [
      'Table master4:',
      '10.244.1.0/24        unicast [r1 21:46:22.363 from 192.0.2.1] * (100) [AS65000i]',
      '\tvia 192.0.2.1 on eth0',
      '\tType: BGP univ',
      '\tBGP.as_path: 65000',
      '                     unicast [r3 21:46:22.363 from 192.0.2.3] (100) [AS65001i]',
      '\tvia 192.0.2.3 on eth0 weight 2',
      '\tBGP.community: (65000,1) (65000,2)',
      '10.244.9.0/24        blackhole [static_4 21:46:22.363] * (200)',
      '\tType: static univ',
    ].join('\n'),
  );
  assert.equal(routes.length, 3);
  assert.equal(routes[1]!.prefix, '10.244.1.0/24');
  assert.equal(routes[1]!.primary, false);
  assert.deepEqual(routes[1]!.nexthops, [{ via: '192.0.2.3', dev: 'eth0', weight: 2 }]);
  assert.equal(routes[1]!.attrs['BGP.community'], '(65000,1) (65000,2)');
  assert.equal(routes[2]!.type, 'blackhole');
  assert.equal(routes[2]!.preference, 200);
  const protos = parseProtocols(
    'Name       Proto      Table      State  Since         Info\n' +
      'device1    Device     ---        up     21:46:22.363  \n' +
      'p1         BGP        ---        start  21:46:22.363  Active        Socket: Connection refused\n',
  );
  assert.deepEqual(protos[1], { name: 'p1', proto: 'BGP', table: '---', state: 'start', since: '21:46:22.363', info: 'Active        Socket: Connection refused' });
  const cfg = birdConfig({
    routerId: '192.0.2.1',
    asn: 65000,
    peers: [{ address: '192.0.2.11', asn: 65000, rrClient: true, passive: true, multihop: 2, import: { where: 'net ~ 10.244.0.0/16+' } }],
  });
  assert.match(cfg, /protocol bgp peer_192_0_2_11 \{/);
  assert.match(cfg, /rr client;/);
  assert.match(cfg, /multihop 2;/);
  assert.match(cfg, /import where net ~ 10\.244\.0\.0\/16\+;/);
  assert.throws(() => birdConfig({ routerId: '1.1.1.1', asn: 1, peers: [{ address: '192.0.2.2', asn: 2, password: 'a"b' }] }));
});
