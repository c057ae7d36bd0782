// The BFD session FSM (RFC 5880 §6.2, §6.8): every state × event with an injected clock in
// microseconds, detection time, poll sequences, jitter bounds, slow TX, diagnostics, auth sequence.
import { test } from 'node:test';
import { controlPacket } from './packets.js';
import assert from 'node:assert/strict';
import { DIAG, STATE_NAMES, decodeControl, encodeControl, type AuthKey, type BfdState, type ControlPacket } from '../../../daemon/bfd/packet.js';
import { SLOW_TX_US, detectionTime, initialState, step, txInterval, type SessionAction, type SessionConfig, type SessionEvent, type SessionState } from '../../../daemon/bfd/session.js';

const MS = 1000;
const cfg: SessionConfig = { localDiscr: 100, desiredMinTx: 300 * MS, requiredMinRx: 300 * MS, detectMult: 3 };

function peer(state: BfdState, extra: Partial<ControlPacket> = {}): ControlPacket {
  return controlPacket({
    state,
    myDiscriminator: 200,
    yourDiscriminator: state === 'Down' || state === 'AdminDown' ? 0 : 100,
    desiredMinTx: 300 * MS,
    requiredMinRx: 300 * MS,
    ...extra,
  });
}
const rx = (p: ControlPacket, key?: AuthKey, seq = 0): SessionEvent => {
  const raw = encodeControl(p, key, seq);
  return { type: 'Received', packet: decodeControl(raw), raw };
};
const sends = (a: SessionAction[]): ControlPacket[] => a.flatMap((x) => (x.type === 'send' ? [x.packet] : []));
const changes = (a: SessionAction[]): string[] => a.flatMap((x) => (x.type === 'stateChange' ? [`${x.from}->${x.to}/${x.diag}`] : []));

/** A session brought to `target` by a peer that follows the RFC, at time t0. */
function sessionIn(target: BfdState, c: SessionConfig = cfg, t0 = 1_000_000): SessionState {
  let s = initialState(c, 12345);
  if (target === 'AdminDown') return s;
  s = step(s, { type: 'Start' }, t0).state;
  if (target === 'Down') return s;
  s = step(s, rx({ ...peer('Down') }), t0).state;
  if (target === 'Init') return s;
  s = step(s, rx(peer('Init')), t0).state;
  assert.equal(s.sessionState, 'Up');
  return s;
}

// The full table of §6.8.6: local state × received state → next state and diag.
const table: Record<BfdState, Record<BfdState, BfdState>> = {
  AdminDown: { AdminDown: 'AdminDown', Down: 'AdminDown', Init: 'AdminDown', Up: 'AdminDown' },
  Down: { AdminDown: 'Down', Down: 'Init', Init: 'Up', Up: 'Down' },
  Init: { AdminDown: 'Down', Down: 'Init', Init: 'Up', Up: 'Up' },
  Up: { AdminDown: 'Down', Down: 'Down', Init: 'Up', Up: 'Up' },
};

for (const local of STATE_NAMES) {
  for (const remote of STATE_NAMES) {
    test(`Received: local ${local} × remote ${remote} → ${table[local][remote]}`, () => {
      const s = sessionIn(local);
      const r = step(s, rx(peer(remote)), 2_000_000);
      assert.equal(r.state.sessionState, table[local][remote]);
      if (local === 'AdminDown') {
        assert.deepEqual(r.actions.map((a) => a.type), ['discard']);
        return;
      }
      const wentDown = table[local][remote] === 'Down' && local !== 'Down';
      if (wentDown) assert.deepEqual(changes(r.actions), [`${local}->Down/${DIAG.NeighborSignaledSessionDown}`]);
      // The peer is learned and the detection timer armed: 3 × 300 ms from now.
      assert.equal(r.state.remoteDiscr, 200);
      assert.equal(r.state.detectAt, 2_000_000 + 900 * MS);
    });
  }
}

for (const local of STATE_NAMES) {
  test(`DetectTimer in ${local}`, () => {
    const s = sessionIn(local);
    const at = s.detectAt ?? 5_000_000;
    // Early: nothing happens.
    assert.deepEqual(step(s, { type: 'DetectTimer' }, at - 1).actions, []);
    const r = step(s, { type: 'DetectTimer' }, at);
    if (local === 'Init' || local === 'Up') {
      assert.deepEqual(changes(r.actions), [`${local}->Down/${DIAG.ControlDetectionTimeExpired}`]);
      assert.equal(r.state.localDiag, DIAG.ControlDetectionTimeExpired);
      assert.equal(r.state.remoteDiscr, 0, '§6.8.1: RemoteDiscr reset when the detection time passes');
      assert.equal(r.state.desiredMinTx, SLOW_TX_US, 'back to slow TX when not Up');
    } else {
      assert.deepEqual(changes(r.actions), []);
      assert.equal(r.state.sessionState, local);
    }
  });

  test(`TxTimer in ${local}`, () => {
    const s = sessionIn(local);
    if (s.txAt === null) {
      assert.equal(local, 'AdminDown');
      assert.deepEqual(step(s, { type: 'TxTimer' }, 10_000_000).actions, []);
      return;
    }
    assert.deepEqual(step(s, { type: 'TxTimer' }, s.txAt - 1).actions, [], 'not before the deadline');
    const r = step(s, { type: 'TxTimer' }, s.txAt);
    const [p] = sends(r.actions);
    assert.ok(p);
    assert.equal(p.state, local);
    assert.equal(p.myDiscriminator, 100);
    assert.ok(r.state.txAt! > s.txAt);
  });

  test(`Start and Stop in ${local}`, () => {
    const s = sessionIn(local);
    const started = step(s, { type: 'Start' }, 3_000_000);
    if (local === 'AdminDown') {
      assert.equal(started.state.sessionState, 'Down');
      assert.equal(sends(started.actions)[0]?.state, 'Down');
      assert.equal(sends(started.actions)[0]?.desiredMinTx, SLOW_TX_US, 'slow TX while not Up (§6.8.3)');
    } else assert.deepEqual(started.actions, [], 'Start is idempotent');
    const stopped = step(s, { type: 'Stop' }, 3_000_000);
    assert.equal(stopped.state.sessionState, 'AdminDown');
    if (local !== 'AdminDown') {
      assert.deepEqual(changes(stopped.actions), [`${local}->AdminDown/${DIAG.AdministrativelyDown}`]);
      assert.equal(sends(stopped.actions)[0]?.state, 'AdminDown');
      assert.equal(stopped.state.txAt, null);
    }
  });

  test(`SetParameters in ${local}`, () => {
    const s = sessionIn(local);
    const r = step(s, { type: 'SetParameters', desiredMinTx: 100 * MS, requiredMinRx: 200 * MS, detectMult: 5 }, 3_000_000);
    assert.equal(r.state.requiredMinRx, 200 * MS);
    if (local === 'Up') {
      assert.equal(r.state.polling, true);
      assert.equal(sends(r.actions)[0]?.poll, true, 'a Poll Sequence announces the change');
      assert.equal(r.state.desiredMinTx, 100 * MS);
    } else {
      assert.equal(r.state.desiredMinTx, SLOW_TX_US, 'still slow while not Up');
      assert.deepEqual(sends(r.actions), []);
    }
  });
}

test('coming Up: slow TX ends with a Poll Sequence; the peer\'s Final ends it', () => {
  let s = sessionIn('Init');
  const r = step(s, rx(peer('Up')), 2_000_000);
  s = r.state;
  assert.equal(s.sessionState, 'Up');
  assert.equal(s.desiredMinTx, 300 * MS);
  assert.equal(s.polling, true);
  const [p] = sends(r.actions);
  assert.equal(p?.poll, true);
  assert.equal(p?.desiredMinTx, 300 * MS);
  // Until the Final, periodic packets keep P.
  assert.equal(sends(step(s, { type: 'TxTimer' }, s.txAt!).actions)[0]?.poll, true);
  s = step(s, rx(peer('Up', { final: true })), 2_100_000).state;
  assert.equal(s.polling, false);
  assert.equal(sends(step(s, { type: 'TxTimer' }, s.txAt!).actions)[0]?.poll, false);
});

test('a Poll from the peer is answered at once with Final (never P and F together)', () => {
  const s = sessionIn('Up');
  const r = step(s, rx(peer('Up', { poll: true, desiredMinTx: 500 * MS })), 2_000_000);
  const [p] = sends(r.actions);
  assert.equal(p?.final, true);
  assert.equal(p?.poll, false);
  // The new remote interval is in the detection time right away: 3 × max(300, 500) ms.
  assert.equal(r.state.detectAt, 2_000_000 + 1500 * MS);
});

test('raising TX while Up waits for the Final; lowering RX waits too (§6.8.3)', () => {
  let s = step(sessionIn('Up'), rx(peer('Up', { final: true })), 1_000_000).state;
  s = step(s, { type: 'SetParameters', desiredMinTx: 1000 * MS, requiredMinRx: 100 * MS, detectMult: 3 }, 1_100_000).state;
  assert.equal(txInterval(s), 300 * MS, 'old TX interval until the poll completes');
  s = step(s, rx(peer('Up', { desiredMinTx: 100 * MS })), 1_200_000).state;
  assert.equal(detectionTime(s), 900 * MS, 'old RX interval in the detection time until the poll completes');
  s = step(s, rx(peer('Up', { final: true, desiredMinTx: 100 * MS })), 1_300_000).state;
  assert.equal(txInterval(s), 1000 * MS);
  assert.equal(detectionTime(s), 300 * MS);
});

test('detection time = remote detect mult × max(local RequiredMinRx, remote DesiredMinTx)', () => {
  const s = sessionIn('Up');
  const r = step(s, rx(peer('Up', { detectMult: 5, desiredMinTx: 50 * MS })), 2_000_000);
  assert.equal(detectionTime(r.state), 5 * 300 * MS);
  const r2 = step(s, rx(peer('Up', { detectMult: 2, desiredMinTx: 700 * MS })), 2_000_000);
  assert.equal(detectionTime(r2.state), 2 * 700 * MS);
  assert.equal(r2.state.detectAt, 2_000_000 + 1400 * MS);
});

test('silent peer: Up goes Down with diag 1 exactly at the detection time', () => {
  let s = step(sessionIn('Up'), rx(peer('Up', { final: true })), 10_000_000).state;
  // Tick TX every deadline until the detect timer fires; nothing received.
  let now = 10_000_000;
  let down: number | null = null;
  while (now < 12_000_000 && down === null) {
    const next = Math.min(s.txAt!, s.detectAt ?? Infinity);
    now = next;
    const ev: SessionEvent = next === s.detectAt ? { type: 'DetectTimer' } : { type: 'TxTimer' };
    const r = step(s, ev, now);
    s = r.state;
    if (changes(r.actions).length) down = now;
  }
  assert.equal(down, 10_000_000 + 900 * MS);
  assert.equal(s.sessionState, 'Down');
  assert.equal(s.localDiag, DIAG.ControlDetectionTimeExpired);
});

test('TX jitter: 75–100% of the interval, at most 90% with detect mult 1 (§6.8.7)', () => {
  for (const [mult, hi] of [[3, 1.0], [1, 0.9]] as const) {
    let s = step(sessionIn('Up', { ...cfg, detectMult: mult }), rx(peer('Up', { final: true })), 0).state;
    let now = 0;
    let min = Infinity;
    let max = 0;
    for (let i = 0; i < 2000; i++) {
      now = s.txAt!;
      s = step(s, { type: 'TxTimer' }, now).state;
      const gap = s.txAt! - now;
      min = Math.min(min, gap);
      max = Math.max(max, gap);
    }
    assert.ok(min >= 0.75 * 300 * MS, `mult ${mult}: min ${min}`);
    assert.ok(max <= hi * 300 * MS, `mult ${mult}: max ${max}`);
    assert.ok(max - min > 0.1 * 300 * MS, 'jitter actually varies');
  }
});

test('TX interval = max(DesiredMinTx, RemoteMinRx); RemoteMinRx 0 stops periodic TX', () => {
  const s = sessionIn('Up');
  assert.equal(txInterval(step(s, rx(peer('Up', { final: true, requiredMinRx: 2000 * MS })), 1).state), 2000 * MS);
  const quiet = step(s, rx(peer('Up', { requiredMinRx: 0 })), 1).state;
  assert.equal(quiet.txAt, null);
});

test('packets for another discriminator are discarded and change nothing', () => {
  const s = sessionIn('Up');
  const r = step(s, rx(peer('Up', { yourDiscriminator: 999 })), 2_000_000);
  assert.deepEqual(r.actions.map((a) => a.type), ['discard']);
  assert.equal(r.state.detectAt, s.detectAt);
  assert.equal(r.state.stats.rxDiscarded, 1);
});

test('meticulous keyed SHA1: wrong key, replayed and far-off sequence numbers are discarded', () => {
  const key: AuthKey = { type: 'meticulous-keyed-sha1', keyId: 3, secret: new TextEncoder().encode('k') };
  let s = step(initialState({ ...cfg, auth: key }, 1), { type: 'Start' }, 0).state;
  const first = step(s, { type: 'TxTimer' }, s.txAt!).actions.find((a) => a.type === 'send');
  assert.ok(first);
  s = step(s, rx(peer('Down'), key, 50), 1).state;
  assert.equal(s.sessionState, 'Init');
  assert.deepEqual(step(s, rx(peer('Init'), key, 50), 2).actions.map((a) => a.type), ['discard'], 'replay: meticulous needs a greater number');
  assert.deepEqual(step(s, rx(peer('Init'), key, 50 + 3 * 3 + 1), 2).actions.map((a) => a.type), ['discard'], 'beyond 3 × detect mult');
  assert.deepEqual(step(s, rx(peer('Init'), { ...key, secret: new TextEncoder().encode('x') }, 51), 2).actions.map((a) => a.type), ['discard']);
  assert.deepEqual(step(s, rx(peer('Init')), 2).actions.map((a) => a.type), ['discard'], 'A bit clear while auth is in use');
  const ok = step(s, rx(peer('Init'), key, 51), 2);
  assert.equal(ok.state.sessionState, 'Up');
  // Our own packets carry increasing sequence numbers.
  const seqs = [first, ...ok.actions].flatMap((a) => (a.type === 'send' ? [a.sequence] : []));
  const later = step(ok.state, { type: 'TxTimer' }, ok.state.txAt!).actions.flatMap((a) => (a.type === 'send' ? [a.sequence] : []));
  assert.ok(seqs.length > 0 && later.length === 1);
  assert.ok(later[0]! > seqs[seqs.length - 1]!, 'meticulous: every packet a new sequence number');
});

test('an AdminDown session comes back with diag cleared; Down keeps the last diag for display', () => {
  let s = sessionIn('Up');
  s = step(s, { type: 'DetectTimer' }, s.detectAt!).state;
  assert.equal(s.localDiag, DIAG.ControlDetectionTimeExpired);
  s = step(s, { type: 'Stop' }, 5_000_000).state;
  assert.equal(s.localDiag, DIAG.AdministrativelyDown);
  s = step(s, { type: 'Start' }, 6_000_000).state;
  assert.equal(s.localDiag, DIAG.None);
});
