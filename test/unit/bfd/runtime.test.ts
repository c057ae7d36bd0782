// The BFD runtime (daemon/bfd/runtime.ts) with a fake transport and clock: a thread that was not
// scheduled for longer than the detection time wakes with its detection timer due and the peer's
// packets still unread; the runtime reads them before judging the peer silent (no false Down), and
// a peer that really went silent is still declared Down.
import { test } from 'node:test';
import { controlPacket } from './packets.js';
import assert from 'node:assert/strict';
import { decodeControl, encodeControl, type ControlPacket } from '../../../daemon/bfd/packet.js';
import { BfdRuntime, type UsClock } from '../../../daemon/bfd/runtime.js';
import type { BfdSessionSpec, FromWorker } from '../../../daemon/bfd/types.js';

const MS = 1000;
const PEER = '192.0.2.9';

/** A manual clock: timers and afterIo callbacks run only when the test says so. */
class FakeClock implements UsClock {
  now = 1_000_000;
  timers = new Map<number, { at: number; fn: () => void }>();
  deferred: Array<() => void> = [];
  private id = 0;
  nowUs(): number {
    return this.now;
  }
  setTimer(fn: () => void, us: number): unknown {
    const id = ++this.id;
    this.timers.set(id, { at: this.now + us, fn });
    return id;
  }
  clearTimer(h: unknown): void {
    this.timers.delete(h as number);
  }
  wallTime(): string {
    return new Date(0).toISOString();
  }
  afterIo(fn: () => void): void {
    this.deferred.push(fn);
  }
  /** Moves time to `t` without running anything (the thread was not scheduled). */
  stall(t: number): void {
    this.now = t;
  }
  /** Runs the timers due now (the event loop's timer phase). */
  runTimers(): void {
    for (const [id, t] of [...this.timers].sort((a, b) => a[1].at - b[1].at)) {
      if (t.at > this.now || !this.timers.has(id)) continue;
      this.timers.delete(id);
      t.fn();
    }
  }
  /** The check phase: what afterIo deferred. */
  runDeferred(): void {
    const d = this.deferred;
    this.deferred = [];
    for (const fn of d) fn();
  }
  /** Advances in 1 ms steps, running everything on time. */
  advance(us: number): void {
    const end = this.now + us;
    while (this.now < end) {
      this.now = Math.min(end, this.now + MS);
      this.runTimers();
      this.runDeferred();
    }
  }
}

function rig() {
  const clock = new FakeClock();
  const sent: ControlPacket[] = [];
  const events: FromWorker[] = [];
  const rt = new BfdRuntime({ send: (_s, bytes) => sent.push(decodeControl(bytes)) }, clock, (m) => events.push(m), 7);
  const spec: BfdSessionSpec = { peer: PEER, multihop: false, minTx: 50, minRx: 50, multiplier: 3, purposes: ['peer'] };
  rt.configure([spec]);
  const local = () => sent.at(-1)!.myDiscriminator;
  const packet = (state: ControlPacket['state']): Uint8Array =>
    encodeControl(controlPacket({ state, myDiscriminator: 4242, yourDiscriminator: state === 'Down' ? 0 : local(), desiredMinTx: 50 * MS, requiredMinRx: 50 * MS }));
  const states = () => events.flatMap((e) => (e.type === 'state' ? [`${e.from}->${e.to}`] : []));
  return { clock, rt, sent, packet, states };
}

const UP = ['AdminDown->Down', 'Down->Init', 'Init->Up'];

function upSession() {
  const r = rig();
  r.rt.receive(r.packet('Down'), PEER, false);
  r.rt.receive(r.packet('Up'), PEER, false);
  assert.deepEqual(r.states(), UP);
  assert.equal(r.rt.sessions()[0]!.state, 'Up');
  return r;
}

test('a stalled thread reads the packets that arrived before judging the peer silent: no false Down', () => {
  const r = upSession();
  const detect = r.rt.sessions()[0]!.detectionTimeMs;
  // The thread sleeps past the detection time; the peer's packet arrived meanwhile (unread).
  r.clock.stall(r.clock.now + (detect + 100) * MS);
  r.clock.runTimers();
  assert.equal(r.rt.sessions()[0]!.state, 'Up', 'not judged before the packets are read');
  r.rt.receive(r.packet('Up'), PEER, false); // the poll phase
  r.clock.runDeferred();
  assert.equal(r.rt.sessions()[0]!.state, 'Up');
  assert.deepEqual(r.states(), UP);
  // And the session keeps running: packets keep it Up, the timers are armed.
  for (let i = 0; i < 10; i++) {
    r.clock.advance(40 * MS);
    r.rt.receive(r.packet('Up'), PEER, false);
  }
  assert.equal(r.rt.sessions()[0]!.state, 'Up');
});

test('a peer that really went silent is still Down after the detection time', () => {
  const r = upSession();
  const sentBefore = r.sent.length;
  r.clock.advance(200 * MS);
  assert.deepEqual(r.states(), [...UP, 'Up->Down']);
  assert.equal(r.rt.sessions()[0]!.localDiag, 'ControlDetectionTimeExpired');
  r.clock.advance(1100 * MS);
  assert.ok(r.sent.length > sentBefore, 'kept sending');
  assert.equal(r.sent.at(-1)!.state, 'Down');
});

test('stalled and nothing arrived: Down at the check phase', () => {
  const r = upSession();
  r.clock.stall(r.clock.now + 500 * MS);
  r.clock.runTimers();
  r.clock.runDeferred();
  assert.deepEqual(r.states(), [...UP, 'Up->Down']);
});
