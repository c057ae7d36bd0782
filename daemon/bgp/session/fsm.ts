// The BGP finite state machine of RFC 4271 §8 as a pure function: step(state, event, now) returns
// the next state and the actions (connect, close, send, timers with absolute deadlines, deliver,
// session up/down) for the shell to execute. RFC 6608 FSM error subcodes, RFC 8203 shutdown
// communication, RFC 4271 §10 jitter. One FsmState is one connection's FSM; the shell runs a second
// instance for a colliding connection (§6.8) and settles the collision with collision.ts.
//
// Optional session attributes (RFC 4271 §8.1.1) as nrd sets them:
//   DelayOpen: config (delayOpenTime > 0). DampPeerOscillations: always on, through the IdleHoldTimer
//   with exponential backoff. PassiveTcpEstablishment: per start event. SendNOTIFICATIONwithoutOPEN,
//   CollisionDetectEstablishedState, AllowAutomaticStop: off. TrackTcpState: not applicable.
import {
  ERR_CEASE,
  ERR_FSM,
  ERR_HOLD_TIMER,
  type BgpError,
  type BgpMessage,
  type NotificationMessage,
  type OpenMessage,
  type RouteRefreshMessage,
  type UpdateMessage,
} from '../types.js';
import { backoffMs, JITTER_MIN, nextRandom } from './backoff.js';
import type { SessionConfig } from './config.js';
import { buildOpen, negotiate, type NegotiatedSession } from './negotiate.js';

export type StateName = 'Idle' | 'Connect' | 'Active' | 'OpenSent' | 'OpenConfirm' | 'Established';
export type TimerName = 'connectRetry' | 'hold' | 'keepalive' | 'delayOpen' | 'idleHold';
export const TIMER_NAMES: readonly TimerName[] = ['connectRetry', 'hold', 'keepalive', 'delayOpen', 'idleHold'];

// RFC 4486 Cease subcodes nrd sends.
export const CEASE_ADMIN_SHUTDOWN = 2;
export const CEASE_PEER_DECONFIGURED = 3;
export const CEASE_ADMIN_RESET = 4;
export const CEASE_CONNECTION_REJECTED = 5;
export const CEASE_COLLISION_RESOLUTION = 7;
// RFC 6608 FSM error subcodes: an unexpected message in OpenSent / OpenConfirm / Established.
export const FSM_ERR_OPENSENT = 1;
export const FSM_ERR_OPENCONFIRM = 2;
export const FSM_ERR_ESTABLISHED = 3;

/** Events by their RFC 4271 §8.1 names (event numbers in comments). */
export type FsmEvent =
  | { type: 'ManualStart' } // 1
  | { type: 'ManualStop'; subcode?: number; shutdownMessage?: string } // 2
  | { type: 'AutomaticStart' } // 3
  | { type: 'ManualStart_with_PassiveTcpEstablishment' } // 4
  | { type: 'AutomaticStart_with_PassiveTcpEstablishment' } // 5
  | { type: 'AutomaticStop'; subcode?: number; shutdownMessage?: string } // 8
  | { type: 'ConnectRetryTimer_Expires' } // 9
  | { type: 'HoldTimer_Expires' } // 10
  | { type: 'KeepaliveTimer_Expires' } // 11
  | { type: 'DelayOpenTimer_Expires' } // 12
  | { type: 'IdleHoldTimer_Expires' } // 13
  | { type: 'Tcp_CR_Acked' } // 16: our connect completed
  | { type: 'TcpConnectionConfirmed' } // 17: the peer's connection accepted
  | { type: 'TcpConnectionFails'; reason?: string } // 18
  | { type: 'BGPOpen'; message: OpenMessage } // 19 / 20 (with DelayOpenTimer running)
  | { type: 'BGPHeaderErr'; error: BgpError } // 21
  | { type: 'BGPOpenMsgErr'; error: BgpError } // 22
  | { type: 'OpenCollisionDump' } // 23
  | { type: 'NotifMsgVerErr'; message: NotificationMessage } // 24
  | { type: 'NotifMsg'; message: NotificationMessage } // 25
  | { type: 'KeepAliveMsg' } // 26
  | { type: 'UpdateMsg'; message: UpdateMessage; errors: readonly BgpError[] } // 27
  | { type: 'UpdateMsgErr'; error: BgpError } // 28
  // Not RFC 4271 events:
  | { type: 'RouteRefreshMsg'; message: RouteRefreshMessage } // RFC 2918
  | { type: 'RouteRefreshMsgErr'; error: BgpError } // RFC 7313 §5
  /**
   * The shell saw bytes from the peer that it has not processed yet (its consumer is busy). RFC
   * restarts the hold timer on KEEPALIVE/UPDATE processing; nrd also restarts it here so that our
   * own backlog (we stop reading while the RIB is busy) never reads as a dead peer.
   */
  | { type: 'PeerAlive' };

export type FsmEventType = FsmEvent['type'];

export type DownKind =
  | 'manual-stop'
  | 'automatic-stop'
  | 'hold-timer-expired'
  | 'tcp-failed'
  | 'notification-received'
  | 'notification-sent'
  | 'collision'
  | 'fsm-error';

/** Why a connection ended: what readiness and `nrdctl peers` show. */
export interface DownReason {
  kind: DownKind;
  text: string;
  /** The NOTIFICATION sent or received, if any. */
  notification?: { code: number; subcode: number; shutdownMessage?: string };
}

export type FsmAction =
  | { type: 'connect' }
  | { type: 'close' }
  | { type: 'send'; message: BgpMessage }
  | { type: 'timer-start'; timer: TimerName; at: number }
  | { type: 'timer-stop'; timer: TimerName }
  | { type: 'deliver-update'; message: UpdateMessage; errors: readonly BgpError[] }
  | { type: 'deliver-route-refresh'; message: RouteRefreshMessage }
  | { type: 'session-up'; negotiated: NegotiatedSession }
  | { type: 'session-down'; reason: DownReason };

export interface FsmState {
  readonly name: StateName;
  readonly cfg: SessionConfig;
  /** This run waits for the peer to connect (PassiveTcpEstablishment). */
  readonly passive: boolean;
  /** Leave Idle by itself after the IdleHoldTimer; false after ManualStop. */
  readonly autoRestart: boolean;
  /** RFC 4271 ConnectRetryCounter; also the exponent of both backoffs. */
  readonly connectRetryCounter: number;
  /** Armed timers as absolute deadlines (ms, the clock `now` is measured in). */
  readonly timers: Readonly<Partial<Record<TimerName, number>>>;
  readonly negotiated?: NegotiatedSession;
  readonly establishedAt?: number;
  readonly lastError?: DownReason;
  /** PRNG state for jitter (see backoff.ts). */
  readonly rng: number;
}

export interface StepResult {
  state: FsmState;
  actions: FsmAction[];
}

export function initialState(cfg: SessionConfig, seed: number): FsmState {
  return { name: 'Idle', cfg, passive: cfg.passive, autoRestart: false, connectRetryCounter: 0, timers: {}, rng: seed >>> 0 };
}

type Draft = { -readonly [K in keyof FsmState]: FsmState[K] } & { timers: Partial<Record<TimerName, number>> };

/** One transition being built: a mutable copy of the state plus the actions in order. */
class Tx {
  readonly s: Draft;
  readonly actions: FsmAction[] = [];
  constructor(
    state: FsmState,
    readonly now: number,
  ) {
    this.s = { ...state, timers: { ...state.timers } };
  }
  get cfg(): SessionConfig {
    return this.s.cfg;
  }
  random(): number {
    const r = nextRandom(this.s.rng);
    this.s.rng = r.seed;
    return r.value;
  }
  start(timer: TimerName, ms: number): void {
    const at = this.now + ms;
    this.s.timers[timer] = at;
    this.actions.push({ type: 'timer-start', timer, at });
  }
  stop(timer: TimerName): void {
    if (this.s.timers[timer] === undefined) return;
    delete this.s.timers[timer];
    this.actions.push({ type: 'timer-stop', timer });
  }
  stopAll(): void {
    for (const t of TIMER_NAMES) this.stop(t);
  }
  send(message: BgpMessage): void {
    this.actions.push({ type: 'send', message });
  }
  notify(code: number, subcode: number, data: Uint8Array = new Uint8Array(0), shutdownMessage?: string): void {
    const message: NotificationMessage = { type: 'notification', code, subcode, data };
    if (shutdownMessage !== undefined) message.shutdownMessage = shutdownMessage;
    this.send(message);
  }
  result(): StepResult {
    return { state: this.s, actions: this.actions };
  }
}

// ---- building blocks shared by the states ---------------------------------------------------------

function startConnectRetry(tx: Tx): void {
  const { connectRetryTime, connectRetryMax } = tx.cfg;
  tx.start('connectRetry', backoffMs(connectRetryTime, connectRetryMax, tx.s.connectRetryCounter, tx.random()));
}

function startHold(tx: Tx, seconds: number): void {
  if (seconds > 0) tx.start('hold', seconds * 1000);
  else tx.stop('hold');
}

function startKeepalive(tx: Tx): void {
  const k = tx.s.negotiated?.keepaliveTime ?? 0;
  // RFC 4271 §10 jitter: keepalives only get earlier, never later than hold/3.
  if (k > 0) tx.start('keepalive', Math.round(k * 1000 * (JITTER_MIN + (1 - JITTER_MIN) * tx.random())));
}

/** Leave for Idle: session-down if we were up, timers off, connection dropped, restart damped. */
function toIdle(tx: Tx, reason: DownReason, opts: { count: boolean; manual?: boolean }): void {
  const s = tx.s;
  if (s.name === 'Established') {
    tx.actions.push({ type: 'session-down', reason });
    if (s.establishedAt !== undefined && tx.now - s.establishedAt >= tx.cfg.stableTime * 1000) {
      s.connectRetryCounter = 0; // see SessionConfig.stableTime
    }
  }
  tx.stopAll();
  if (s.name !== 'Idle') tx.actions.push({ type: 'close' });
  if (opts.manual) {
    s.connectRetryCounter = 0;
    s.autoRestart = false;
  } else if (opts.count) {
    s.connectRetryCounter += 1;
  }
  s.lastError = reason;
  delete s.negotiated;
  delete s.establishedAt;
  s.name = 'Idle';
  if (s.autoRestart) {
    // DampPeerOscillations: the first restart waits idleHoldTime, each further failure doubles it.
    const failures = Math.max(s.connectRetryCounter - 1, 0);
    tx.start('idleHold', backoffMs(tx.cfg.idleHoldTime, tx.cfg.idleHoldMax, failures, tx.random()));
  }
}

/** Send a NOTIFICATION, then drop to Idle counting a failure. */
function notifyAndIdle(tx: Tx, code: number, subcode: number, text: string, data?: Uint8Array): void {
  tx.notify(code, subcode, data);
  toIdle(tx, { kind: code === ERR_FSM ? 'fsm-error' : 'notification-sent', text, notification: { code, subcode } }, { count: true });
}

function fsmError(tx: Tx, event: FsmEvent): void {
  const sub = tx.s.name === 'OpenSent' ? FSM_ERR_OPENSENT : tx.s.name === 'OpenConfirm' ? FSM_ERR_OPENCONFIRM : FSM_ERR_ESTABLISHED;
  notifyAndIdle(tx, ERR_FSM, sub, `unexpected ${event.type} in ${tx.s.name}`);
}

function sendOpen(tx: Tx): void {
  tx.send(buildOpen(tx.cfg));
  startHold(tx, tx.cfg.openHoldTime);
  tx.s.name = 'OpenSent';
}

/** Idle → Connect (active) or Active (passive). */
function begin(tx: Tx, passive: boolean): void {
  tx.stop('idleHold');
  tx.s.passive = passive;
  tx.s.autoRestart = true;
  delete tx.s.lastError;
  if (passive) {
    // RFC starts the ConnectRetryTimer here too, whose expiry would make a passive peer connect;
    // nrd's passive peers never connect, so it stays off.
    tx.s.name = 'Active';
  } else {
    startConnectRetry(tx);
    tx.actions.push({ type: 'connect' });
    tx.s.name = 'Connect';
  }
}

/** Stop (ManualStop/AutomaticStop) from any state but Idle. */
function stopEvent(tx: Tx, event: Extract<FsmEvent, { type: 'ManualStop' | 'AutomaticStop' }>): void {
  const manual = event.type === 'ManualStop';
  const subcode = event.subcode ?? (manual ? CEASE_ADMIN_SHUTDOWN : CEASE_PEER_DECONFIGURED);
  // SendNOTIFICATIONwithoutOPEN is off: no NOTIFICATION before our OPEN went out.
  const opened = tx.s.name === 'OpenSent' || tx.s.name === 'OpenConfirm' || tx.s.name === 'Established';
  if (opened) tx.notify(ERR_CEASE, subcode, new Uint8Array(0), event.shutdownMessage);
  const notification: DownReason['notification'] = opened ? { code: ERR_CEASE, subcode } : undefined;
  const reason: DownReason = {
    kind: manual ? 'manual-stop' : 'automatic-stop',
    text: event.shutdownMessage ?? (manual ? 'stopped by operator' : 'stopped'),
  };
  if (notification) reason.notification = notification;
  toIdle(tx, reason, { count: !manual, manual });
}

function received(message: NotificationMessage): DownReason {
  const n: DownReason['notification'] = { code: message.code, subcode: message.subcode };
  if (message.shutdownMessage !== undefined) n.shutdownMessage = message.shutdownMessage;
  return { kind: 'notification-received', text: `NOTIFICATION ${message.code}/${message.subcode} received`, notification: n };
}

/** The peer's OPEN: validate, negotiate, and on success answer with KEEPALIVE (and our OPEN when delayed). */
function acceptOpen(tx: Tx, open: OpenMessage, sendOurOpenFirst: boolean): void {
  const check = negotiate(tx.cfg, open);
  if (!check.ok) {
    if (sendOurOpenFirst) tx.send(buildOpen(tx.cfg)); // RFC 4271 §6.2: NOTIFICATION follows an OPEN
    notifyAndIdle(tx, check.error.code, check.error.subcode, check.error.reason, check.error.data);
    return;
  }
  tx.stop('connectRetry');
  tx.stop('delayOpen');
  if (sendOurOpenFirst) tx.send(buildOpen(tx.cfg));
  tx.s.negotiated = check.negotiated;
  tx.send({ type: 'keepalive' });
  startKeepalive(tx);
  startHold(tx, check.negotiated.holdTime);
  tx.s.name = 'OpenConfirm';
}

// ---- the states -------------------------------------------------------------------------------------

function idle(tx: Tx, e: FsmEvent): void {
  switch (e.type) {
    case 'ManualStart':
      tx.s.connectRetryCounter = 0;
      return begin(tx, false);
    case 'ManualStart_with_PassiveTcpEstablishment':
      tx.s.connectRetryCounter = 0;
      return begin(tx, true);
    case 'AutomaticStart':
      return begin(tx, false);
    case 'AutomaticStart_with_PassiveTcpEstablishment':
      return begin(tx, true);
    case 'IdleHoldTimer_Expires':
      return begin(tx, tx.s.passive);
    case 'ManualStop':
      // Cancels a pending automatic restart.
      tx.stop('idleHold');
      tx.s.autoRestart = false;
      tx.s.connectRetryCounter = 0;
      return;
    case 'Tcp_CR_Acked':
    case 'TcpConnectionConfirmed':
      // RFC says ignore; the shell holds a socket it must not leak, so nrd refuses it.
      tx.actions.push({ type: 'close' });
      return;
    default:
      return; // RFC 4271 §8.2.2: any other event leaves Idle unchanged.
  }
}

/** Connect and Active differ only in a few events; RFC 4271 §8.2.2. */
function connectOrActive(tx: Tx, e: FsmEvent): void {
  const inConnect = tx.s.name === 'Connect';
  const delayOpenRunning = tx.s.timers.delayOpen !== undefined;
  switch (e.type) {
    case 'ManualStart':
    case 'AutomaticStart':
    case 'ManualStart_with_PassiveTcpEstablishment':
    case 'AutomaticStart_with_PassiveTcpEstablishment':
      return;
    case 'ManualStop':
    case 'AutomaticStop':
      return stopEvent(tx, e);
    case 'ConnectRetryTimer_Expires':
      // A connect attempt that did not complete counts as a failure for the backoff
      // (RFC restarts the timer with the same value; nrd's grows, up to connectRetryMax).
      tx.s.connectRetryCounter += 1;
      if (inConnect) tx.actions.push({ type: 'close' });
      tx.stop('delayOpen');
      startConnectRetry(tx);
      tx.actions.push({ type: 'connect' });
      tx.s.name = 'Connect';
      return;
    case 'DelayOpenTimer_Expires':
      tx.stop('connectRetry');
      tx.stop('delayOpen');
      return sendOpen(tx);
    case 'Tcp_CR_Acked':
    case 'TcpConnectionConfirmed':
      tx.stop('connectRetry');
      if (tx.cfg.delayOpenTime > 0) {
        tx.start('delayOpen', tx.cfg.delayOpenTime * 1000);
        return;
      }
      return sendOpen(tx);
    case 'TcpConnectionFails':
      if (inConnect && delayOpenRunning) {
        tx.stop('delayOpen');
        tx.actions.push({ type: 'close' });
        tx.s.connectRetryCounter += 1;
        startConnectRetry(tx);
        tx.s.name = 'Active';
        return;
      }
      return toIdle(tx, { kind: 'tcp-failed', text: e.reason ?? 'TCP connection failed' }, { count: true });
    case 'BGPOpen':
      if (delayOpenRunning) return acceptOpen(tx, e.message, true);
      return toIdle(tx, { kind: 'fsm-error', text: `OPEN in ${tx.s.name} without DelayOpen` }, { count: true });
    case 'BGPHeaderErr':
    case 'BGPOpenMsgErr':
      // SendNOTIFICATIONwithoutOPEN is off: drop without a NOTIFICATION.
      return toIdle(tx, { kind: 'fsm-error', text: e.error.reason }, { count: true });
    case 'NotifMsgVerErr':
      // RFC: with DelayOpen running, a version error is not counted (the peer may retry lower).
      return toIdle(tx, received(e.message), { count: !delayOpenRunning });
    case 'HoldTimer_Expires':
    case 'KeepaliveTimer_Expires':
    case 'IdleHoldTimer_Expires':
      // Stale timers are filtered in step(); an armed one here is an FSM error per RFC.
      return toIdle(tx, { kind: 'fsm-error', text: `${e.type} in ${tx.s.name}` }, { count: true });
    case 'PeerAlive':
      return;
    case 'NotifMsg':
      return toIdle(tx, received(e.message), { count: true });
    default:
      return toIdle(tx, { kind: 'fsm-error', text: `unexpected ${e.type} in ${tx.s.name}` }, { count: true });
  }
}

function openSent(tx: Tx, e: FsmEvent): void {
  switch (e.type) {
    case 'ManualStart':
    case 'AutomaticStart':
    case 'ManualStart_with_PassiveTcpEstablishment':
    case 'AutomaticStart_with_PassiveTcpEstablishment':
    case 'Tcp_CR_Acked':
    case 'TcpConnectionConfirmed':
    case 'PeerAlive':
      return; // a second connection is the shell's collision business
    case 'ManualStop':
    case 'AutomaticStop':
      return stopEvent(tx, e);
    case 'HoldTimer_Expires':
      return notifyAndIdle(tx, ERR_HOLD_TIMER, 0, 'hold timer expired waiting for OPEN');
    case 'TcpConnectionFails':
      // RFC: back to Active and wait (the ConnectRetryTimer brings an active peer back to Connect).
      tx.stopAll();
      tx.actions.push({ type: 'close' });
      tx.s.connectRetryCounter += 1;
      tx.s.lastError = { kind: 'tcp-failed', text: e.reason ?? 'TCP connection failed in OpenSent' };
      if (!tx.s.passive) startConnectRetry(tx);
      tx.s.name = 'Active';
      return;
    case 'BGPOpen':
      return acceptOpen(tx, e.message, false);
    case 'BGPHeaderErr':
    case 'BGPOpenMsgErr':
      return notifyAndIdle(tx, e.error.code, e.error.subcode, e.error.reason, e.error.data);
    case 'OpenCollisionDump':
      return collisionDump(tx);
    case 'NotifMsgVerErr':
      return toIdle(tx, received(e.message), { count: false });
    case 'NotifMsg':
      // RFC lists NotifMsg with the FSM errors here; RFC 4271 §6.4 also says never to answer a
      // NOTIFICATION with one, so nrd just drops.
      return toIdle(tx, received(e.message), { count: true });
    default:
      return fsmError(tx, e);
  }
}

function collisionDump(tx: Tx): void {
  tx.notify(ERR_CEASE, CEASE_COLLISION_RESOLUTION);
  // Not a peer failure: the other connection carries on, so the backoff does not grow.
  toIdle(
    tx,
    { kind: 'collision', text: 'connection collision resolution', notification: { code: ERR_CEASE, subcode: CEASE_COLLISION_RESOLUTION } },
    { count: false },
  );
}

function openConfirm(tx: Tx, e: FsmEvent): void {
  switch (e.type) {
    case 'ManualStart':
    case 'AutomaticStart':
    case 'ManualStart_with_PassiveTcpEstablishment':
    case 'AutomaticStart_with_PassiveTcpEstablishment':
    case 'Tcp_CR_Acked':
    case 'TcpConnectionConfirmed':
    case 'PeerAlive':
      return;
    case 'ManualStop':
    case 'AutomaticStop':
      return stopEvent(tx, e);
    case 'HoldTimer_Expires':
      return notifyAndIdle(tx, ERR_HOLD_TIMER, 0, 'hold timer expired in OpenConfirm');
    case 'KeepaliveTimer_Expires':
      tx.send({ type: 'keepalive' });
      return startKeepalive(tx);
    case 'TcpConnectionFails':
      return toIdle(tx, { kind: 'tcp-failed', text: e.reason ?? 'TCP connection failed' }, { count: true });
    case 'NotifMsgVerErr':
      return toIdle(tx, received(e.message), { count: false });
    case 'NotifMsg':
      return toIdle(tx, received(e.message), { count: true });
    case 'BGPHeaderErr':
    case 'BGPOpenMsgErr':
      return notifyAndIdle(tx, e.error.code, e.error.subcode, e.error.reason, e.error.data);
    case 'OpenCollisionDump':
      return collisionDump(tx);
    case 'KeepAliveMsg': {
      const n = tx.s.negotiated;
      if (!n) return fsmError(tx, e); // unreachable: OpenConfirm always has a negotiation
      startHold(tx, n.holdTime);
      tx.s.name = 'Established';
      tx.s.establishedAt = tx.now;
      tx.actions.push({ type: 'session-up', negotiated: n });
      return;
    }
    default:
      return fsmError(tx, e);
  }
}

function established(tx: Tx, e: FsmEvent): void {
  const hold = tx.s.negotiated?.holdTime ?? 0;
  switch (e.type) {
    case 'ManualStart':
    case 'AutomaticStart':
    case 'ManualStart_with_PassiveTcpEstablishment':
    case 'AutomaticStart_with_PassiveTcpEstablishment':
    case 'Tcp_CR_Acked':
    case 'TcpConnectionConfirmed':
      return;
    case 'ManualStop':
    case 'AutomaticStop':
      return stopEvent(tx, e);
    case 'HoldTimer_Expires':
      return notifyAndIdle(tx, ERR_HOLD_TIMER, 0, 'hold timer expired');
    case 'KeepaliveTimer_Expires':
      tx.send({ type: 'keepalive' });
      return startKeepalive(tx);
    case 'KeepAliveMsg':
    case 'PeerAlive':
      return startHold(tx, hold);
    case 'UpdateMsg':
      startHold(tx, hold);
      tx.actions.push({ type: 'deliver-update', message: e.message, errors: e.errors });
      return;
    case 'RouteRefreshMsg':
      startHold(tx, hold);
      if (!tx.s.negotiated?.routeRefresh) {
        // RFC 2918 §4: a ROUTE-REFRESH without the negotiated capability is ignored, not an error.
        return;
      }
      tx.actions.push({ type: 'deliver-route-refresh', message: e.message });
      return;
    case 'UpdateMsgErr':
    case 'RouteRefreshMsgErr':
    case 'BGPHeaderErr':
      // RFC lists a header error among the FSM errors here; nrd reports what was wrong (§6.1).
      return notifyAndIdle(tx, e.error.code, e.error.subcode, e.error.reason, e.error.data);
    case 'OpenCollisionDump':
      return collisionDump(tx);
    case 'TcpConnectionFails':
      return toIdle(tx, { kind: 'tcp-failed', text: e.reason ?? 'TCP connection failed' }, { count: true });
    case 'NotifMsgVerErr':
    case 'NotifMsg':
      return toIdle(tx, received(e.message), { count: true });
    default:
      return fsmError(tx, e);
  }
}

const TIMER_OF_EVENT: Partial<Record<FsmEventType, TimerName>> = {
  ConnectRetryTimer_Expires: 'connectRetry',
  HoldTimer_Expires: 'hold',
  KeepaliveTimer_Expires: 'keepalive',
  DelayOpenTimer_Expires: 'delayOpen',
  IdleHoldTimer_Expires: 'idleHold',
};

/**
 * One FSM transition. Pure: the same (state, event, now) always gives the same result; randomness
 * comes from the PRNG state inside `state`.
 */
export function step(state: FsmState, event: FsmEvent, now: number): StepResult {
  const tx = new Tx(state, now);
  const timer = TIMER_OF_EVENT[event.type];
  if (timer !== undefined) {
    // A timer event for a timer that is not armed is stale: the shell's timer raced a transition
    // that stopped it. RFC treats some as FSM errors; acting on a stale one would be wrong.
    if (state.timers[timer] === undefined) return { state, actions: [] };
    delete tx.s.timers[timer];
  }
  switch (state.name) {
    case 'Idle':
      idle(tx, event);
      break;
    case 'Connect':
    case 'Active':
      connectOrActive(tx, event);
      break;
    case 'OpenSent':
      openSent(tx, event);
      break;
    case 'OpenConfirm':
      openConfirm(tx, event);
      break;
    case 'Established':
      established(tx, event);
      break;
  }
  return tx.result();
}
