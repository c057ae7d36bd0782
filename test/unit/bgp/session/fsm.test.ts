// RFC 4271 §8 FSM rules one by one with a fake clock: timers as absolute deadlines, hold-time
// negotiation, keepalive at a third of it, OPEN errors → NOTIFICATION, backoff, DelayOpen,
// collision dump, purity. The state × event table is in fsm-table.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  step,
  initialState,
  TIMER_NAMES,
  type FsmAction,
  type FsmEvent,
  type FsmState,
  type TimerName,
} from '../../../../daemon/bgp/session/fsm.js';
import type { NotificationMessage, OpenMessage } from '../../../../daemon/bgp/types.js';
import { EVENTS, T0, cfg, drive, peerOpen, reach, summary } from './fixtures.js';

function timerStarts(actions: readonly FsmAction[]): Partial<Record<TimerName, number>> {
  const out: Partial<Record<TimerName, number>> = {};
  for (const a of actions) if (a.type === 'timer-start') out[a.timer] = a.at;
  return out;
}

function sentNotification(actions: readonly FsmAction[]): NotificationMessage | undefined {
  for (const a of actions) if (a.type === 'send' && a.message.type === 'notification') return a.message;
  return undefined;
}

test('ManualStart connects and arms the ConnectRetryTimer within [0.75, 1] × connectRetryTime', () => {
  const r = step(initialState(cfg(), 7), EVENTS.ManualStart, T0);
  assert.equal(r.state.name, 'Connect');
  assert.deepEqual(summary(r.actions), 'connect');
  const at = timerStarts(r.actions).connectRetry;
  assert.ok(at !== undefined && at >= T0 + 3750 && at <= T0 + 5000, `connectRetry at ${at}`);
  assert.equal(r.state.timers.connectRetry, at);
});

test('passive start waits in Active with no ConnectRetryTimer and never connects', () => {
  const r = step(initialState(cfg({ passive: true }), 7), EVENTS.ManualStart_with_PassiveTcpEstablishment, T0);
  assert.equal(r.state.name, 'Active');
  assert.equal(r.actions.length, 0);
  assert.deepEqual(r.state.timers, {});
});

test('OpenSent: our OPEN carries AS, AS_TRANS for four-octet AS, hold time, id and capabilities', () => {
  const c = cfg({ localAs: 4200000001, peerAs: 65002 });
  const r = drive(initialState(c, 1), [EVENTS.ManualStart, EVENTS.Tcp_CR_Acked]);
  const sent = r.actions.find((a) => a.type === 'send');
  assert.ok(sent && sent.type === 'send' && sent.message.type === 'open');
  const open = sent.message as OpenMessage;
  assert.equal(open.myAs, 23456);
  assert.equal(open.capabilities.fourOctetAs, 4200000001);
  assert.equal(open.holdTime, 9);
  assert.equal(open.bgpId, '192.0.2.1');
  assert.deepEqual(open.capabilities.multiprotocol, [
    { afi: 1, safi: 1 },
    { afi: 2, safi: 1 },
  ]);
  // RFC 4271 §8.2.2: a large hold time (4 min) while waiting for the OPEN.
  assert.equal(r.state.timers.hold, T0 + 240_000);
  assert.equal(r.state.timers.connectRetry, undefined);
});

test('hold time negotiates to the smaller value and keepalives run at a third of it', () => {
  const now = T0 + 500;
  const s = reach('OpenSent');
  const r = step(s, { type: 'BGPOpen', message: peerOpen({ holdTime: 6 }) }, now);
  assert.equal(r.state.name, 'OpenConfirm');
  assert.equal(r.state.negotiated?.holdTime, 6);
  assert.equal(r.state.negotiated?.keepaliveTime, 2);
  assert.equal(r.state.timers.hold, now + 6000);
  const ka = r.state.timers.keepalive;
  assert.ok(ka !== undefined && ka >= now + 1500 && ka <= now + 2000, `keepalive at ${ka}`);
  // Our proposal wins when smaller.
  const r2 = step(reach('OpenSent', cfg({ holdTime: 3 })), { type: 'BGPOpen', message: peerOpen({ holdTime: 90 }) }, now);
  assert.equal(r2.state.negotiated?.holdTime, 3);
  assert.equal(r2.state.negotiated?.keepaliveTime, 1);
});

test('hold time 0 on either side: no hold timer and no keepalives', () => {
  const r = drive(reach('OpenSent'), [{ type: 'BGPOpen', message: peerOpen({ holdTime: 0 }) }, EVENTS.KeepAliveMsg]);
  assert.equal(r.state.name, 'Established');
  assert.equal(r.state.negotiated?.holdTime, 0);
  assert.equal(r.state.timers.hold, undefined);
  assert.equal(r.state.timers.keepalive, undefined);
});

test('Established: KEEPALIVE and UPDATE restart the hold timer; expiry sends 4/0 and goes down', () => {
  let s = reach('Established');
  s = step(s, EVENTS.KeepAliveMsg, T0 + 4000).state;
  assert.equal(s.timers.hold, T0 + 4000 + 6000);
  s = step(s, EVENTS.UpdateMsg, T0 + 5000).state;
  assert.equal(s.timers.hold, T0 + 5000 + 6000);
  s = step(s, EVENTS.PeerAlive, T0 + 5500).state;
  assert.equal(s.timers.hold, T0 + 5500 + 6000);
  const r = step(s, EVENTS.HoldTimer_Expires, T0 + 11_500);
  assert.equal(r.state.name, 'Idle');
  const n = sentNotification(r.actions);
  assert.deepEqual([n?.code, n?.subcode], [4, 0]);
  const down = r.actions.find((a) => a.type === 'session-down');
  assert.ok(down && down.type === 'session-down');
  assert.equal(down.reason.kind, 'notification-sent');
  assert.equal(r.state.lastError?.notification?.code, 4);
});

test('KeepaliveTimer_Expires sends a KEEPALIVE and re-arms within (0.75..1) × keepalive', () => {
  const s = reach('Established');
  const now = T0 + 2000;
  const r = step(s, EVENTS.KeepaliveTimer_Expires, now);
  assert.equal(summary(r.actions), '>ka');
  const at = r.state.timers.keepalive;
  assert.ok(at !== undefined && at >= now + 1500 && at <= now + 2000);
  assert.equal(r.state.timers.hold, s.timers.hold, 'sending does not touch the hold timer');
});

test('session-up carries the negotiated context: families, four-octet AS, route refresh, peer type', () => {
  const r = step(reach('OpenConfirm'), EVENTS.KeepAliveMsg, T0 + 10);
  const up = r.actions.find((a) => a.type === 'session-up');
  assert.ok(up && up.type === 'session-up');
  assert.deepEqual(up.negotiated.families, ['1/1', '2/1']);
  assert.equal(up.negotiated.context.fourOctetAs, true);
  assert.equal(up.negotiated.context.peerType, 'ebgp');
  assert.equal(up.negotiated.routeRefresh, true);
  assert.equal(up.negotiated.peerAs, 65002);
  assert.equal(r.state.establishedAt, T0 + 10);
});

// ---- OPEN validation → NOTIFICATION ------------------------------------------------------------------

const OPEN_ERRORS: Array<{ name: string; open: OpenMessage; code: number; subcode: number; data?: number[]; c?: Parameters<typeof cfg>[0] }> = [
  { name: 'version 3', open: peerOpen({ version: 3 }), code: 2, subcode: 1, data: [0, 4] },
  { name: 'wrong peer AS (capability)', open: peerOpen({}, { fourOctetAs: 65099 }), code: 2, subcode: 2 },
  { name: 'wrong peer AS (My AS, no capability)', open: peerOpen({ myAs: 65099 }, { fourOctetAs: undefined }), code: 2, subcode: 2 },
  {
    name: 'four-octet peer without the capability shows only AS_TRANS',
    open: peerOpen({ myAs: 23456 }, { fourOctetAs: undefined }),
    code: 2,
    subcode: 2,
    c: { peerAs: 4200000002 },
  },
  { name: 'hold time 1', open: peerOpen({ holdTime: 1 }), code: 2, subcode: 6 },
  { name: 'hold time 2', open: peerOpen({ holdTime: 2 }), code: 2, subcode: 6 },
  { name: 'BGP id 0.0.0.0', open: peerOpen({ bgpId: '0.0.0.0' }), code: 2, subcode: 3 },
  {
    name: 'iBGP peer with our BGP id',
    open: peerOpen({ myAs: 65001, bgpId: '192.0.2.1' }, { fourOctetAs: 65001 }),
    code: 2,
    subcode: 3,
    c: { peerAs: 65001 },
  },
  {
    name: 'no common family',
    open: peerOpen({}, { multiprotocol: [{ afi: 2, safi: 1 }] }),
    code: 2,
    subcode: 7,
    data: [1, 4, 0, 1, 0, 1],
    c: { families: [{ afi: 1, safi: 1 }] },
  },
];

for (const tc of OPEN_ERRORS) {
  test(`OPEN error: ${tc.name} → NOTIFICATION ${tc.code}/${tc.subcode}`, () => {
    const r = step(reach('OpenSent', cfg(tc.c)), { type: 'BGPOpen', message: tc.open }, T0 + 1);
    assert.equal(r.state.name, 'Idle');
    const n = sentNotification(r.actions);
    assert.ok(n, 'a NOTIFICATION was sent');
    assert.deepEqual([n.code, n.subcode], [tc.code, tc.subcode]);
    if (tc.data) assert.deepEqual([...n.data], tc.data);
    assert.ok(r.actions.some((a) => a.type === 'close'));
    assert.equal(r.state.lastError?.kind, 'notification-sent');
  });
}

const OPEN_OK: Array<{ name: string; open: OpenMessage; c?: Parameters<typeof cfg>[0]; check?: (s: FsmState) => void }> = [
  { name: 'four-octet AS with AS_TRANS in My AS', open: peerOpen({ myAs: 23456 }, { fourOctetAs: 4200000002 }), c: { peerAs: 4200000002 } },
  { name: 'two-octet peer without the capability', open: peerOpen({}, { fourOctetAs: undefined }), check: (s) => assert.equal(s.negotiated?.context.fourOctetAs, false) },
  { name: 'eBGP peer with our BGP id (RFC 6286)', open: peerOpen({ bgpId: '192.0.2.1' }) },
  {
    name: 'no MP capability means IPv4 unicast',
    open: peerOpen({}, { multiprotocol: [] }),
    check: (s) => assert.deepEqual(s.negotiated?.families, ['1/1']),
  },
  {
    name: 'add-path: receive where the peer sends, send where it receives',
    open: peerOpen({}, { addPath: [{ afi: 1, safi: 1, mode: 2 }, { afi: 2, safi: 1, mode: 3 }] }),
    c: { addPath: [{ afi: 1, safi: 1, mode: 3 }, { afi: 2, safi: 1, mode: 1 }] },
    check: (s) => {
      assert.deepEqual([...(s.negotiated?.context.addPathReceive ?? [])].sort(), ['1/1', '2/1']);
      assert.deepEqual([...(s.negotiated?.context.addPathSend ?? [])], []);
    },
  },
  {
    name: 'graceful restart capability of the peer is kept',
    open: peerOpen({}, { gracefulRestart: { restartState: true, notification: true, restartTime: 120, families: [{ afi: 1, safi: 1, forwardingPreserved: true }] } }),
    check: (s) => assert.equal(s.negotiated?.peerGracefulRestart?.restartTime, 120),
  },
  {
    name: 'iBGP',
    open: peerOpen({ myAs: 65001 }, { fourOctetAs: 65001 }),
    c: { peerAs: 65001 },
    check: (s) => assert.equal(s.negotiated?.context.peerType, 'ibgp'),
  },
  {
    name: 'route refresh only when both sides offer it',
    open: peerOpen({}, { routeRefresh: false }),
    check: (s) => assert.equal(s.negotiated?.routeRefresh, false),
  },
];

for (const tc of OPEN_OK) {
  test(`OPEN accepted: ${tc.name}`, () => {
    const r = step(reach('OpenSent', cfg(tc.c)), { type: 'BGPOpen', message: tc.open }, T0 + 1);
    assert.equal(r.state.name, 'OpenConfirm', JSON.stringify(r.state.lastError));
    assert.equal(summary(r.actions), '>ka');
    tc.check?.(r.state);
  });
}

// ---- backoff ------------------------------------------------------------------------------------------

test('refused connections back off exponentially through the IdleHoldTimer, jittered and capped', () => {
  const c = cfg({ idleHoldTime: 2, idleHoldMax: 60 });
  let s = initialState(c, 12345);
  let now = T0;
  s = step(s, EVENTS.ManualStart, now).state;
  const delays: number[] = [];
  for (let i = 0; i < 10; i++) {
    const r = step(s, { type: 'TcpConnectionFails', reason: 'ECONNREFUSED' }, now);
    assert.equal(r.state.name, 'Idle');
    const at = r.state.timers.idleHold;
    assert.ok(at !== undefined, 'restart is scheduled');
    delays.push(at - now);
    now = at;
    const r2 = step(r.state, EVENTS.IdleHoldTimer_Expires, now);
    assert.equal(r2.state.name, 'Connect');
    assert.ok(r2.actions.some((a) => a.type === 'connect'));
    s = r2.state;
  }
  delays.forEach((d, i) => {
    const nominal = Math.min(2000 * 2 ** i, 60_000);
    assert.ok(d >= nominal * 0.75 && d <= nominal, `attempt ${i}: ${d} ms not in [${nominal * 0.75}, ${nominal}]`);
  });
  assert.equal(s.connectRetryCounter, 10);
});

test('ConnectRetryTimer grows with each unanswered attempt, up to connectRetryMax', () => {
  const c = cfg({ connectRetryTime: 5, connectRetryMax: 40 });
  let s = step(initialState(c, 99), EVENTS.ManualStart, T0).state;
  let now = T0;
  const delays: number[] = [];
  for (let i = 0; i < 6; i++) {
    const at = s.timers.connectRetry;
    assert.ok(at !== undefined);
    delays.push(at - now);
    now = at;
    const r = step(s, EVENTS.ConnectRetryTimer_Expires, now);
    assert.equal(summary(r.actions), 'close connect');
    s = r.state;
  }
  delays.forEach((d, i) => {
    const nominal = Math.min(5000 * 2 ** i, 40_000);
    assert.ok(d >= nominal * 0.75 && d <= nominal, `attempt ${i}: ${d}`);
  });
});

test('different seeds spread the retries of a fleet (jitter is really applied)', () => {
  const at = new Set<number>();
  for (let seed = 1; seed <= 20; seed++) at.add(step(initialState(cfg(), seed), EVENTS.ManualStart, T0).state.timers.connectRetry ?? 0);
  assert.ok(at.size >= 15, `only ${at.size} distinct deadlines`);
});

test('a session that stayed up for stableTime restarts with a small backoff; a flapping one does not', () => {
  const c = cfg({ stableTime: 60, idleHoldTime: 2, idleHoldMax: 300 });
  // Build up failures first.
  let s = step(initialState(c, 5), EVENTS.ManualStart, T0).state;
  for (let i = 0; i < 5; i++) {
    s = step(s, EVENTS.TcpConnectionFails, T0).state;
    s = step(s, EVENTS.IdleHoldTimer_Expires, T0).state;
  }
  s = drive(s, [EVENTS.Tcp_CR_Acked, EVENTS.BGPOpen, EVENTS.KeepAliveMsg], T0).state;
  assert.equal(s.name, 'Established');
  const flap = step(s, EVENTS.TcpConnectionFails, T0 + 10_000).state;
  assert.ok((flap.timers.idleHold ?? 0) - (T0 + 10_000) >= 0.75 * 2000 * 2 ** 5, 'flapping session keeps backing off');
  const stable = step(s, EVENTS.TcpConnectionFails, T0 + 3_600_000).state;
  assert.equal(stable.connectRetryCounter, 1);
  assert.ok((stable.timers.idleHold ?? 0) - (T0 + 3_600_000) <= 2000, 'stable session restarts after idleHoldTime');
});

test('ManualStop cancels the automatic restart and zeroes the counter', () => {
  const s = reach('IdleAfterError');
  assert.ok(s.timers.idleHold !== undefined);
  const r = step(s, EVENTS.ManualStop, T0 + 5);
  assert.equal(r.state.timers.idleHold, undefined);
  assert.equal(r.state.autoRestart, false);
  assert.equal(r.state.connectRetryCounter, 0);
  assert.deepEqual(r.actions, [{ type: 'timer-stop', timer: 'idleHold' }]);
});

test('ManualStop in Established sends Cease/Administrative Shutdown with the RFC 8203 message', () => {
  const r = step(reach('Established'), { type: 'ManualStop', shutdownMessage: 'maintenance' }, T0 + 5);
  const n = sentNotification(r.actions);
  assert.deepEqual([n?.code, n?.subcode, n?.shutdownMessage], [6, 2, 'maintenance']);
  assert.equal(r.state.name, 'Idle');
  assert.deepEqual(r.state.timers, {});
  assert.equal(r.state.lastError?.kind, 'manual-stop');
});

test('stale timer events are ignored (their timer was stopped by a transition)', () => {
  const s = reach('Established');
  const r = step(s, EVENTS.ConnectRetryTimer_Expires, T0 + 1);
  assert.equal(r.state, s);
  assert.deepEqual(r.actions, []);
});

test('a fired timer is disarmed without a timer-stop action', () => {
  const s = reach('Established');
  const r = step(s, EVENTS.KeepaliveTimer_Expires, T0 + 3000);
  assert.ok(!r.actions.some((a) => a.type === 'timer-stop'));
});

test('TcpConnectionFails in OpenSent goes to Active and an active peer reconnects on ConnectRetry', () => {
  const r = step(reach('OpenSent'), EVENTS.TcpConnectionFails, T0 + 1);
  assert.equal(r.state.name, 'Active');
  assert.ok(r.state.timers.connectRetry !== undefined);
  assert.equal(r.state.timers.hold, undefined);
  const r2 = step(r.state, EVENTS.ConnectRetryTimer_Expires, r.state.timers.connectRetry ?? 0);
  assert.equal(r2.state.name, 'Connect');
  assert.equal(summary(r2.actions), 'connect');
});

test('a passive peer that loses its connection in OpenSent waits in Active without connecting', () => {
  const s = drive(initialState(cfg({ passive: true }), 3), [EVENTS.ManualStart_with_PassiveTcpEstablishment, EVENTS.TcpConnectionConfirmed]).state;
  assert.equal(s.name, 'OpenSent');
  const r = step(s, EVENTS.TcpConnectionFails, T0 + 1);
  assert.equal(r.state.name, 'Active');
  assert.deepEqual(r.state.timers, {});
});

// ---- DelayOpen ------------------------------------------------------------------------------------------

test('DelayOpen: connection up arms DelayOpenTimer; its expiry sends OPEN', () => {
  const c = cfg({ delayOpenTime: 3 });
  const s = drive(initialState(c, 1), [EVENTS.ManualStart, EVENTS.Tcp_CR_Acked]).state;
  assert.equal(s.name, 'Connect');
  assert.equal(s.timers.delayOpen, T0 + 3000);
  assert.equal(s.timers.connectRetry, undefined);
  const r = step(s, EVENTS.DelayOpenTimer_Expires, T0 + 3000);
  assert.equal(r.state.name, 'OpenSent');
  assert.equal(summary(r.actions), '>open');
});

test('DelayOpen: the peer OPEN first → we answer OPEN + KEEPALIVE and go to OpenConfirm', () => {
  const c = cfg({ delayOpenTime: 3 });
  const s = drive(initialState(c, 1), [EVENTS.ManualStart_with_PassiveTcpEstablishment, EVENTS.TcpConnectionConfirmed]).state;
  assert.equal(s.name, 'Active');
  const r = step(s, EVENTS.BGPOpen, T0 + 100);
  assert.equal(r.state.name, 'OpenConfirm');
  assert.equal(summary(r.actions), '>open >ka');
  assert.equal(r.state.timers.delayOpen, undefined);
});

test('DelayOpen: a bad OPEN is answered with our OPEN then the NOTIFICATION', () => {
  const c = cfg({ delayOpenTime: 3 });
  const s = drive(initialState(c, 1), [EVENTS.ManualStart, EVENTS.Tcp_CR_Acked]).state;
  const r = step(s, { type: 'BGPOpen', message: peerOpen({ holdTime: 1 }) }, T0 + 100);
  assert.equal(summary(r.actions), '>open >N2/6 close');
});

test('DelayOpen: TcpConnectionFails in Connect goes to Active with the ConnectRetryTimer', () => {
  const c = cfg({ delayOpenTime: 3 });
  const s = drive(initialState(c, 1), [EVENTS.ManualStart, EVENTS.Tcp_CR_Acked]).state;
  const r = step(s, EVENTS.TcpConnectionFails, T0 + 100);
  assert.equal(r.state.name, 'Active');
  assert.ok(r.state.timers.connectRetry !== undefined);
  assert.equal(r.state.timers.delayOpen, undefined);
});

// ---- collision dump ---------------------------------------------------------------------------------------

test('OpenCollisionDump sends Cease/7 and does not grow the backoff', () => {
  for (const from of ['OpenSent', 'OpenConfirm'] as const) {
    const s = reach(from);
    const r = step(s, EVENTS.OpenCollisionDump, T0 + 1);
    const n = sentNotification(r.actions);
    assert.deepEqual([n?.code, n?.subcode], [6, 7]);
    assert.equal(r.state.connectRetryCounter, s.connectRetryCounter);
    assert.equal(r.state.lastError?.kind, 'collision');
  }
});

// ---- properties ---------------------------------------------------------------------------------------------

const anyEvent = fc.constantFrom(...Object.values(EVENTS));

test('property: step is pure and deterministic, and state.timers is the replay of timer actions', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(anyEvent, fc.integer({ min: 0, max: 10_000 })), { maxLength: 60 }), fc.boolean(), (events, passive) => {
      let s = initialState(cfg({ passive, delayOpenTime: passive ? 2 : 0 }), 77);
      let now = T0;
      if (passive) events = events.filter(([e]) => e.type !== 'ManualStart' && e.type !== 'AutomaticStart');
      const armed = new Map<TimerName, number>();
      for (const [e, dt] of events) {
        now += dt;
        const frozen = JSON.stringify(s, (_k, v: unknown) => (v instanceof Set ? [...v] : v));
        const r1 = step(s, e, now);
        const r2 = step(s, e, now);
        assert.equal(JSON.stringify(s, (_k, v: unknown) => (v instanceof Set ? [...v] : v)), frozen, 'input state not mutated');
        assert.deepEqual(r1, r2);
        const fired = { ConnectRetryTimer_Expires: 'connectRetry', HoldTimer_Expires: 'hold', KeepaliveTimer_Expires: 'keepalive', DelayOpenTimer_Expires: 'delayOpen', IdleHoldTimer_Expires: 'idleHold' }[
          e.type as string
        ] as TimerName | undefined;
        if (fired && s.timers[fired] !== undefined) armed.delete(fired);
        for (const a of r1.actions) {
          if (a.type === 'timer-start') armed.set(a.timer, a.at);
          if (a.type === 'timer-stop') armed.delete(a.timer);
        }
        s = r1.state;
        for (const t of TIMER_NAMES) assert.equal(s.timers[t], armed.get(t), `timer ${t} after ${e.type} in ${s.name}`);
        assert.equal(s.name === 'Established' || s.name === 'OpenConfirm', s.negotiated !== undefined);
        if (s.name === 'Idle') assert.ok(s.timers.hold === undefined && s.timers.keepalive === undefined);
        if (passive) assert.ok(!r1.actions.some((a) => a.type === 'connect'), 'a passive peer never connects');
      }
    }),
    { numRuns: 300 },
  );
});
