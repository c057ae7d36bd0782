// nrd's BGP session shell against a real BIRD 2 in network namespaces: Established and kept up by
// keepalives with IPv4+IPv6 negotiated, passive (listener) and active TCP MD5 (RFC 2385) that
// establishes with the right key and not with a wrong one, and hold-timer expiry when the path is
// cut with nftables. The nrd side runs in its namespace as a child process: this same file started
// with NRDT_BGP_SESSION_DRIVER set, printing one JSON line per session event.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { BgpSession } from '../../../daemon/bgp/session/shell.js';
import { BgpListener } from '../../../daemon/bgp/session/listener.js';
import { sessionConfig } from '../../../daemon/bgp/session/config.js';
import { Topology, type Host } from '../../lib/netns.js';
import { startBird, type Bird } from '../../lib/bird.js';
import { waitFor } from '../../lib/wait.js';
import type { ManagedProcess } from '../../lib/proc.js';

interface DriverPeer {
  peerAddress: string;
  localAddress: string;
  md5Key?: string;
  passive: boolean;
}
interface DriverConfig {
  localAs: number;
  peerAs: number;
  localId: string;
  listen: string;
  holdTime: number;
  peers: DriverPeer[];
}
interface DriverEvent {
  peer: string;
  ev: 'state' | 'up' | 'down' | 'update';
  to?: string;
  families?: string[];
  holdTime?: number;
  reason?: { kind: string; text: string; notification?: { code: number; subcode: number } };
  t: number;
}

// ---- driver mode: the nrd side, inside its namespace ---------------------------------------------

async function runDriver(cfgText: string): Promise<void> {
  const c = JSON.parse(cfgText) as DriverConfig;
  const emit = (e: Omit<DriverEvent, 't'>): void => void process.stdout.write(JSON.stringify({ ...e, t: Date.now() }) + '\n');
  const listener = new BgpListener({ address: c.listen, port: 179 });
  const sessions: BgpSession[] = [];
  for (const p of c.peers) {
    const config = sessionConfig({
      localAs: c.localAs,
      peerAs: c.peerAs,
      localId: c.localId,
      holdTime: c.holdTime,
      passive: p.passive,
      connectRetryTime: 1,
      connectRetryMax: 4,
      idleHoldTime: 1,
      idleHoldMax: 4,
    });
    const opts: ConstructorParameters<typeof BgpSession>[0] = {
      config,
      peerAddress: p.peerAddress,
      localAddress: p.localAddress,
      consumer: {
        onUpdate: () => emit({ peer: p.peerAddress, ev: 'update' }),
        onUp: (n) => emit({ peer: p.peerAddress, ev: 'up', families: n.families, holdTime: n.holdTime }),
        onDown: (reason) => emit({ peer: p.peerAddress, ev: 'down', reason }),
        onStateChange: (_from, to) => emit({ peer: p.peerAddress, ev: 'state', to }),
      },
    };
    if (p.md5Key !== undefined) opts.md5Key = p.md5Key;
    const s = new BgpSession(opts);
    sessions.push(s);
    listener.addPeer(p.peerAddress, s, p.md5Key !== undefined ? { md5Key: p.md5Key } : {});
  }
  await listener.listen();
  for (const s of sessions) s.start();
  process.once('SIGTERM', () => {
    for (const s of sessions) s.destroy('test over');
    void listener.close();
    setTimeout(() => process.exit(0), 200).unref();
  });
}

const driverCfg = process.env.NRDT_BGP_SESSION_DRIVER;
if (driverCfg) {
  await runDriver(driverCfg);
} else {
  registerTests();
}

// ---- the tests ------------------------------------------------------------------------------------

function registerTests(): void {
  // One address pair per session: the kernel keys MD5 by peer address per socket, and BIRD has one
  // listening socket, so sessions sharing an nrd address would share (or fight over) a key.
  const NRD = '192.0.2.1';
  const PLAIN = '192.0.2.2'; // BIRD passive, nrd connects; IPv4 + IPv6 channels
  const NRD_MD5P = '192.0.2.3';
  const MD5_PASSIVE = '192.0.2.6'; // BIRD connects to nrd's listener, MD5
  const NRD_MD5A = '192.0.2.4';
  const MD5_ACTIVE = '192.0.2.7'; // nrd connects, MD5 with the right key
  const NRD_MD5W = '192.0.2.5';
  const MD5_WRONG = '192.0.2.8'; // nrd connects with the wrong key
  const KEY = 'nrd-test-key';

  let topo: Topology;
  let nrdHost: Host;
  let birdHost: Host;
  let bird: Bird;
  let driver: ManagedProcess;
  const events: DriverEvent[] = [];

  before(async () => {
    topo = new Topology(`nrdt-sess`);
    nrdHost = await topo.host('nrd');
    birdHost = await topo.host('bird');
    await topo.link(nrdHost, birdHost, { addrA: [`${NRD}/24`, `${NRD_MD5P}/24`, `${NRD_MD5A}/24`, `${NRD_MD5W}/24`], addrB: [`${PLAIN}/24`, `${MD5_PASSIVE}/24`, `${MD5_ACTIVE}/24`, `${MD5_WRONG}/24`] });
    const common = { asn: 65002, localAsn: 65002, holdTime: 3, keepaliveTime: 1 } as const;
    bird = await startBird(birdHost, {
      routerId: '192.0.2.2',
      asn: 65002,
      peers: [
        { ...common, name: 'plain', address: NRD, asn: 65001, localAddress: PLAIN, passive: true, families: ['ipv4', 'ipv6'] },
        { ...common, name: 'md5_passive', address: NRD_MD5P, asn: 65001, localAddress: MD5_PASSIVE, password: KEY },
        { ...common, name: 'md5_active', address: NRD_MD5A, asn: 65001, localAddress: MD5_ACTIVE, passive: true, password: KEY },
        { ...common, name: 'md5_wrong', address: NRD_MD5W, asn: 65001, localAddress: MD5_WRONG, passive: true, password: KEY },
      ],
    });
    const cfg: DriverConfig = {
      localAs: 65001,
      peerAs: 65002,
      localId: NRD,
      listen: '0.0.0.0',
      holdTime: 3,
      peers: [
        { peerAddress: PLAIN, localAddress: NRD, passive: false },
        { peerAddress: MD5_PASSIVE, localAddress: NRD_MD5P, passive: true, md5Key: KEY },
        { peerAddress: MD5_ACTIVE, localAddress: NRD_MD5A, passive: false, md5Key: KEY },
        { peerAddress: MD5_WRONG, localAddress: NRD_MD5W, passive: false, md5Key: 'not-the-key' },
      ],
    };
    driver = nrdHost.spawn([process.execPath, fileURLToPath(import.meta.url)], {
      env: { ...process.env, NRDT_BGP_SESSION_DRIVER: JSON.stringify(cfg), NRD_LOG_LEVEL: 'silent' },
      name: 'nrd-session-driver',
    });
    let buf = '';
    driver.child.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith('{')) events.push(JSON.parse(line) as DriverEvent);
      }
    });
  });

  after(async () => {
    await topo?.destroy();
  });

  const up = (peer: string): DriverEvent | undefined => events.find((e) => e.peer === peer && e.ev === 'up');
  const downs = (peer: string): DriverEvent[] => events.filter((e) => e.peer === peer && e.ev === 'down');
  const why = (): string => `\nnrd events: ${JSON.stringify(events.slice(-30))}\n${driver.describe()}`;

  test('nrd connects to BIRD, reaches Established with IPv4 and IPv6 unicast, and stays up on keepalives', async () => {
    await waitFor(() => up(PLAIN), { timeoutMs: 20_000, what: `nrd session to ${PLAIN} up` }).catch((e: Error) => {
      throw new Error(e.message + why());
    });
    await bird.waitEstablished('plain', 10_000);
    const u = up(PLAIN)!;
    assert.deepEqual(u.families, ['1/1', '2/1']);
    assert.equal(u.holdTime, 3);
    const birdInfo = await bird.birdc('show protocols all plain');
    assert.match(birdInfo, /ipv6/i);
    // Survive more than two hold times: only keepalives (ours every ≤1 s) keep BIRD's 3 s timer fed.
    const since = Date.now();
    await new Promise((r) => setTimeout(r, 7000));
    assert.deepEqual(downs(PLAIN).filter((e) => e.t >= since), [], why());
    const p = (await bird.protocols()).find((x) => x.name === 'plain');
    assert.ok(p && p.info.startsWith('Established'), `BIRD: ${JSON.stringify(p)}`);
  });

  test('TCP MD5: BIRD connecting to nrd\'s listener with the right key establishes', async () => {
    await waitFor(() => up(MD5_PASSIVE), { timeoutMs: 20_000, what: `nrd session to ${MD5_PASSIVE} up` }).catch((e: Error) => {
      throw new Error(e.message + why());
    });
    await bird.waitEstablished('md5_passive', 10_000);
  });

  test('TCP MD5: nrd connecting to BIRD with the right key establishes', async () => {
    await waitFor(() => up(MD5_ACTIVE), { timeoutMs: 20_000, what: `nrd session to ${MD5_ACTIVE} up` }).catch((e: Error) => {
      throw new Error(e.message + why());
    });
    await bird.waitEstablished('md5_active', 10_000);
  });

  test('TCP MD5: a wrong key never establishes and the kernel counts MD5 failures', async () => {
    // The other sessions got up meanwhile; give this one the same chance.
    await waitFor(async () => (await birdHost.exec(['nstat', '-az', 'TcpExtTCPMD5Failure'])).stdout.match(/TcpExtTCPMD5Failure\s+([1-9]\d*)/), {
      timeoutMs: 10_000,
      what: 'MD5 failures counted in the BIRD namespace',
    });
    assert.equal(up(MD5_WRONG), undefined, why());
    const p = (await bird.protocols()).find((x) => x.name === 'md5_wrong');
    assert.ok(p && !p.info.startsWith('Established'), `BIRD: ${JSON.stringify(p)}`);
  });

  test('the listener closes connections from unconfigured addresses at once', async () => {
    await birdHost.addAddress('eth0', '192.0.2.9/24');
    const py = [
      'import socket, time',
      "s = socket.socket(); s.bind(('192.0.2.9', 0)); s.settimeout(5)",
      `s.connect(('${NRD}', 179)); t = time.time()`,
      "print('closed' if s.recv(100) == b'' else 'data', round(time.time() - t, 2))",
    ].join('\n');
    const r = await birdHost.exec(['python3', '-c', py]);
    assert.match(r.stdout, /^closed /, r.stdout + r.stderr);
  });

  test('hold timer expires when the path is cut (nftables drop in the BIRD namespace)', async () => {
    await waitFor(() => up(PLAIN), { timeoutMs: 20_000, what: 'plain session up' });
    const table = `nrdt_sess_${process.pid}`;
    const nft = (args: string[]): Promise<unknown> => birdHost.exec(['nft', ...args]);
    await nft(['add', 'table', 'inet', table]);
    await nft(['add', 'chain', 'inet', table, 'in', '{ type filter hook input priority 0; }']);
    await nft(['add', 'chain', 'inet', table, 'out', '{ type filter hook output priority 0; }']);
    await nft(['add', 'rule', 'inet', table, 'in', 'ip', 'saddr', NRD, 'ip', 'daddr', PLAIN, 'drop']);
    await nft(['add', 'rule', 'inet', table, 'out', 'ip', 'saddr', PLAIN, 'ip', 'daddr', NRD, 'drop']);
    const cut = Date.now();
    try {
      const down = await waitFor(() => downs(PLAIN).find((e) => e.t >= cut), { timeoutMs: 15_000, what: 'hold timer expiry' }).catch((e: Error) => {
        throw new Error(e.message + why());
      });
      assert.equal(down.reason?.kind, 'notification-sent');
      assert.deepEqual(down.reason?.notification, { code: 4, subcode: 0 });
      // The other sessions are untouched.
      for (const peer of [MD5_PASSIVE, MD5_ACTIVE]) assert.equal(downs(peer).length, 0, `${peer} went down${why()}`);
    } finally {
      await nft(['delete', 'table', 'inet', table]);
    }
    // With the path back, the session recovers by itself (backoff capped at 4 s in this test).
    const back = Date.now();
    await waitFor(() => events.find((e) => e.peer === PLAIN && e.ev === 'up' && e.t >= back), { timeoutMs: 20_000, what: 'session back up' }).catch(
      (e: Error) => {
        throw new Error(e.message + why());
      },
    );
  });
}
