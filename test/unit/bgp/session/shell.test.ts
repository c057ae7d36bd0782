// The session shell with a fake clock and a scripted peer over a unix socket (no IP network, no
// privileges): OPEN exchange to Established, hold timer expiry sends 4/0, backpressure pauses
// reading while the consumer is busy, bulk input is processed in bounded batches that yield to the
// event loop, and our own backlog does not expire the hold timer (all with a fake clock).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BgpSession, type SessionConsumer } from '../../../../daemon/bgp/session/shell.js';
import type { Clock } from '../../../../daemon/lib/clock.js';
import { preOpenContext } from '../../../../daemon/bgp/session/negotiate.js';
import { Framer, decodeMessage, encodeMessage } from '../../../../daemon/bgp/wire/index.js';
import type { BgpMessage, SessionContext, UpdateMessage } from '../../../../daemon/bgp/types.js';
import { cfg, peerOpen } from './fixtures.js';

class FakeClock implements Clock {
  t = 1_000_000;
  private timers = new Map<number, { at: number; fn: () => void }>();
  private id = 0;
  now(): number {
    return this.t;
  }
  setTimer(fn: () => void, ms: number): unknown {
    const id = ++this.id;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  }
  clearTimer(h: unknown): void {
    this.timers.delete(h as number);
  }
  /** Move time forward, firing due timers in deadline order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.timers.entries()].filter(([, v]) => v.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
    }
    this.t = end;
  }
}

/** A BGP peer scripted by the test on the other end of a unix socket. */
class ScriptedPeer {
  readonly received: BgpMessage[] = [];
  socket: net.Socket | null = null;
  private readonly framer = new Framer();
  private waiters: Array<() => void> = [];
  ctx: SessionContext = { ...preOpenContext(cfg()), fourOctetAs: true };
  constructor(readonly server: net.Server) {
    server.on('connection', (s) => {
      this.socket = s;
      s.on('data', (d: Buffer) => {
        this.framer.push(d);
        for (const r of this.framer) {
          if (!r.ok) throw new Error(r.error.reason);
          const m = decodeMessage(r.frame, this.ctx);
          if (!m.ok) throw new Error(m.error.reason);
          this.received.push(m.message);
        }
        for (const w of this.waiters.splice(0)) w();
      });
    });
  }
  send(...msgs: BgpMessage[]): boolean {
    if (!this.socket) throw new Error('not connected');
    return this.socket.write(Buffer.concat(msgs.map((m) => encodeMessage(m, this.ctx))));
  }
  async waitFor(pred: (m: BgpMessage) => boolean, what: string): Promise<BgpMessage> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const m = this.received.find(pred);
      if (m) return m;
      if (Date.now() > deadline) throw new Error(`peer never received ${what}: ${JSON.stringify(this.received.map((x) => x.type))}`);
      await new Promise<void>((r) => {
        this.waiters.push(r);
        setTimeout(r, 50);
      });
    }
  }
}

async function until(cond: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timeout: ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function setup(consumer: Partial<SessionConsumer>, batch = 64): Promise<{ session: BgpSession; peer: ScriptedPeer; clock: FakeClock; done: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'nrdt-shell-'));
  const path = join(dir, 'peer.sock');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(path, r));
  const peer = new ScriptedPeer(server);
  const clock = new FakeClock();
  const session = new BgpSession({
    config: cfg({ holdTime: 9 }),
    peerAddress: '192.0.2.2',
    clock,
    seed: 1,
    batch,
    connector: () => net.connect(path),
    consumer: { onUpdate: () => undefined, ...consumer },
  });
  session.start();
  await peer.waitFor((m) => m.type === 'open', 'our OPEN');
  peer.send(peerOpen({ holdTime: 9 }), { type: 'keepalive' });
  await until(() => session.state === 'Established', 'Established');
  return {
    session,
    peer,
    clock,
    done: async () => {
      session.destroy();
      peer.socket?.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const update = (i: number): UpdateMessage => ({
  type: 'update',
  withdrawn: [],
  attrs: { origin: 0, asPath: [{ type: 2, asns: [65002] }], nextHop: '192.0.2.2' },
  nlri: [{ prefix: `10.${(i >> 8) & 255}.${i & 255}.0/24` }],
});

test('shell: OPEN exchange reaches Established; hold timer expiry sends NOTIFICATION 4/0', async () => {
  const downs: string[] = [];
  const { session, peer, clock, done } = await setup({ onDown: (r) => downs.push(r.kind) });
  try {
    assert.equal(session.info().negotiated?.holdTime, 9);
    // Keepalives go out at ≤ a third of the hold time.
    const before = peer.received.filter((m) => m.type === 'keepalive').length;
    clock.advance(3000);
    await peer.waitFor(() => peer.received.filter((m) => m.type === 'keepalive').length > before, 'a keepalive');
    clock.advance(6001);
    const n = await peer.waitFor((m) => m.type === 'notification', 'NOTIFICATION');
    assert.ok(n.type === 'notification' && n.code === 4 && n.subcode === 0);
    assert.equal(session.state, 'Idle');
    assert.deepEqual(downs, ['notification-sent']);
  } finally {
    await done();
  }
});

test('shell: a busy consumer pauses reading; the hold timer is not expired by our own backlog', async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const got: number[] = [];
  const { session, peer, clock, done } = await setup({
    onUpdate: (m) => {
      got.push(m.nlri.length);
      return got.length === 1 ? gate : undefined;
    },
  });
  try {
    peer.send(...Array.from({ length: 200 }, (_, i) => update(i)));
    await until(() => got.length === 1, 'first UPDATE');
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(got.length, 1, 'no further UPDATE while the consumer is busy');
    // Past the hold time while we are the bottleneck: the session stays up.
    clock.advance(10_000);
    assert.equal(session.state, 'Established');
    release();
    await until(() => got.length === 200, 'all UPDATEs');
    assert.equal(session.state, 'Established');
  } finally {
    await done();
  }
});

test('shell: bulk input is processed in bounded batches that yield to the event loop', async () => {
  const order: string[] = [];
  let n = 0;
  const { peer, done } = await setup(
    {
      onUpdate: () => {
        n++;
        order.push('u');
      },
    },
    10,
  );
  try {
    peer.send(...Array.from({ length: 100 }, (_, i) => update(i)));
    // A competing task that re-schedules itself on every loop turn.
    let ticking = true;
    const tick = (): void => {
      order.push('T');
      if (ticking) setImmediate(tick);
    };
    setImmediate(tick);
    await until(() => n === 100, 'all UPDATEs');
    ticking = false;
    const runs = order.join('').split('T').filter(Boolean).map((r) => r.length);
    assert.ok(Math.max(...runs) <= 10, `a batch of ${Math.max(...runs)} UPDATEs ran without yielding`);
  } finally {
    await done();
  }
});

/** Framing and decoding for one end of a socket the test holds. */
class WireEnd {
  readonly received: BgpMessage[] = [];
  private readonly framer = new Framer();
  readonly ctx: SessionContext = { ...preOpenContext(cfg()), fourOctetAs: true };
  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.framer.push(d);
      for (const r of this.framer) {
        if (!r.ok) throw new Error(r.error.reason);
        const m = decodeMessage(r.frame, this.ctx);
        if (!m.ok) throw new Error(m.error.reason);
        this.received.push(m.message);
      }
    });
  }
  send(...msgs: BgpMessage[]): void {
    this.socket.write(Buffer.concat(msgs.map((m) => encodeMessage(m, this.ctx))));
  }
  async waitFor(pred: (m: BgpMessage) => boolean, what: string): Promise<BgpMessage> {
    await until(() => this.received.some(pred), `${what} (got ${this.received.map((m) => m.type).join(',')})`);
    return this.received.find(pred)!;
  }
}

async function collision(peerId: string): Promise<{ outgoing: WireEnd; incoming: WireEnd; session: BgpSession; cleanup: () => Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'nrdt-coll-'));
  const outPath = join(dir, 'out.sock');
  const inPath = join(dir, 'in.sock');
  let outgoing!: WireEnd;
  const peerServer = net.createServer((s) => (outgoing = new WireEnd(s))); // the peer's listener
  await new Promise<void>((r) => peerServer.listen(outPath, r));
  const session = new BgpSession({
    config: cfg({ holdTime: 9 }),
    peerAddress: '192.0.2.2',
    clock: new FakeClock(),
    seed: 3,
    connector: () => net.connect(outPath),
    consumer: { onUpdate: () => undefined },
  });
  // Our listener: what it accepts goes to the session, as BgpListener does.
  const ourServer = net.createServer({ pauseOnConnect: true }, (s) => session.acceptIncoming(s));
  await new Promise<void>((r) => ourServer.listen(inPath, r));
  session.start();
  await until(() => outgoing !== undefined, 'outgoing connection');
  await outgoing.waitFor((m) => m.type === 'open', 'OPEN on the outgoing connection');
  assert.equal(session.state, 'OpenSent');
  // The peer connects to us too before answering: a collision.
  const incoming = new WireEnd(net.connect(inPath));
  await incoming.waitFor((m) => m.type === 'open', 'OPEN on the incoming connection');
  const open = peerOpen({ bgpId: peerId, holdTime: 9 });
  outgoing.send(open);
  incoming.send(open);
  return {
    outgoing,
    incoming,
    session,
    cleanup: async () => {
      session.destroy();
      outgoing.socket.destroy();
      incoming.socket.destroy();
      await Promise.all([peerServer, ourServer].map((s) => new Promise<void>((r) => s.close(() => r()))));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const isCollisionCease = (m: BgpMessage): boolean => m.type === 'notification' && m.code === 6 && m.subcode === 7;

test('shell collision: peer id higher → the connection the peer initiated stays, ours gets Cease/7', async () => {
  const c = await collision('192.0.2.200');
  try {
    await c.outgoing.waitFor(isCollisionCease, 'Cease/7 on our connection');
    await c.incoming.waitFor((m) => m.type === 'keepalive', 'KEEPALIVE on the peer connection');
    c.incoming.send({ type: 'keepalive' });
    await until(() => c.session.state === 'Established', 'Established on the incoming connection');
    assert.ok(!c.incoming.received.some(isCollisionCease));
  } finally {
    await c.cleanup();
  }
});

test('shell collision: peer id lower → our connection stays, the peer\'s gets Cease/7', async () => {
  const c = await collision('10.0.0.1');
  try {
    await c.incoming.waitFor(isCollisionCease, 'Cease/7 on the peer connection');
    await c.outgoing.waitFor((m) => m.type === 'keepalive', 'KEEPALIVE on our connection');
    c.outgoing.send({ type: 'keepalive' });
    await until(() => c.session.state === 'Established', 'Established on the outgoing connection');
    assert.ok(!c.outgoing.received.some(isCollisionCease));
  } finally {
    await c.cleanup();
  }
});
