// Graceful restart (RFC 4724) between nrd's speaker and a real BIRD 2, both roles:
// nrd restarting (kill -9): BIRD keeps nrd's pod CIDR as stale and, once nrd is back and sends
// End-of-RIB, never withdrew it; BIRD restarting (kill -9, then `bird -R`, its graceful restart
// recovery): nrd keeps BIRD's routes as stale, never withdraws them, and un-stales them at EOR.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { Topology, type Host } from '../../lib/netns.js';
import { startBird, type Bird } from '../../lib/bird.js';
import { waitFor } from '../../lib/wait.js';
import { SpeakerProc, siteConfig } from './speaker-harness.js';

const NRD = '192.0.2.1';
const TOR = '192.0.2.2';

let topo: Topology;
let nrdHost: Host;
let torHost: Host;
let bird: Bird;
let nrd: SpeakerProc;
let site: Record<string, unknown>;
let sockDir: string;

async function birdRoute(prefix: string): Promise<boolean> {
  const text = await bird.birdc(`show route ${prefix} protocol tor`).catch(() => '');
  return text.includes(prefix);
}

async function birdProto(): Promise<string> {
  return bird.birdc('show protocols all tor');
}

/** Polls `probe` every 100 ms until stopped; records every time it was false. */
function watch(probe: () => Promise<boolean>): { misses: number; stop: () => Promise<void> } {
  const w = { misses: 0, running: true, done: Promise.resolve() };
  w.done = (async () => {
    while (w.running) {
      if (!(await probe())) w.misses++;
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  return {
    get misses() {
      return w.misses;
    },
    stop: async () => {
      w.running = false;
      await w.done;
    },
  };
}

before(async () => {
  topo = new Topology('nrdt-spk-gr');
  nrdHost = await topo.host('nrd');
  torHost = await topo.host('tor');
  await topo.link(nrdHost, torHost, { addrA: `${NRD}/24`, addrB: `${TOR}/24` });
  bird = await startBird(torHost, {
    routerId: TOR,
    asn: 65000,
    staticRoutes: ['10.244.9.0/24'],
    peers: [{ name: 'tor', address: NRD, localAddress: TOR, asn: 65001, holdTime: 3, keepaliveTime: 1, gracefulRestart: 30, families: ['ipv4'] }],
  });
  site = siteConfig({
    address: NRD,
    asn: 65001,
    podCIDRs: ['10.244.1.0/24'],
    stateDir: topo.tmpdir('state'),
    peers: [{ address: TOR, asn: 65000, families: ['ipv4'] }],
  });
  sockDir = topo.tmpdir('sock');
  nrd = await SpeakerProc.start(nrdHost, { site }, sockDir);
  await nrd.waitEstablished(TOR);
  await waitFor(() => birdRoute('10.244.1.0/24'), { timeoutMs: 10_000, what: 'nrd route in BIRD' });
  await waitFor(() => nrd.hasRoute('ipv4', '10.244.9.0/24', TOR), { timeoutMs: 10_000, what: 'BIRD route in nrd' });
});

after(async () => {
  await topo?.destroy();
});

test('nrd killed with SIGKILL: BIRD keeps its CIDR as stale; nrd back sends End-of-RIB; nothing was withdrawn', async () => {
  const w = watch(() => birdRoute('10.244.1.0/24'));
  try {
    await nrd.kill9();
    await waitFor(async () => /Neighbor graceful restart active/i.test(await birdProto()), { timeoutMs: 10_000, what: 'BIRD in GR helper mode' });
    assert.equal(await birdRoute('10.244.1.0/24'), true, 'BIRD dropped the route of the restarting nrd');
    nrd = await SpeakerProc.start(nrdHost, { site, restarting: true }, sockDir);
    await nrd.waitEstablished(TOR);
    // BIRD ends its helper mode when nrd's End-of-RIB arrives.
    await waitFor(async () => !/Neighbor graceful restart active/i.test(await birdProto()), { timeoutMs: 15_000, what: 'BIRD GR done (End-of-RIB)' });
    assert.equal(await birdRoute('10.244.1.0/24'), true);
  } finally {
    await w.stop();
  }
  assert.equal(w.misses, 0, 'nrd route was missing from BIRD during the restart');
});

test('BIRD killed and restarted with graceful restart recovery: nrd keeps its routes stale until End-of-RIB', async () => {
  await nrd.waitEstablished(TOR);
  await waitFor(() => nrd.hasRoute('ipv4', '10.244.9.0/24', TOR), { timeoutMs: 10_000, what: 'BIRD route in nrd' });
  const key = '1/1 10.244.9.0/24';
  const before = (await nrd.changes()).withdrawn[key] ?? 0;
  bird.process.signal('SIGKILL');
  await bird.process.exited;
  const stale = await waitFor(
    async () => {
      const t = (await nrd.changes()).table[key];
      return t?.stale ? t : false;
    },
    { timeoutMs: 10_000, what: 'BIRD route stale in nrd' },
  );
  assert.equal(stale.peer, TOR);
  const p = await nrd.peer(TOR);
  assert.equal(p.gracefulRestart.helping, true);
  // BIRD again, in graceful restart recovery (-R): it sets the F bit and sends End-of-RIB last.
  const dir = dirname(bird.configPath);
  torHost.spawn(['bird', '-f', '-R', '-c', bird.configPath, '-s', bird.socket, '-P', join(dir, 'bird2.pid')], { name: 'tor:bird-restarted' });
  await nrd.waitEstablished(TOR, 30_000);
  await waitFor(
    async () => {
      const t = (await nrd.changes()).table[key];
      return t && !t.stale;
    },
    { timeoutMs: 20_000, what: 'BIRD route refreshed (not stale) after its End-of-RIB' },
  );
  assert.equal((await nrd.changes()).withdrawn[key] ?? 0, before, 'the route was withdrawn during BIRD\'s restart');
  assert.equal((await nrd.peer(TOR)).prefixes.stale, 0);
});
