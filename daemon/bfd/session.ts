// One BFD session (RFC 5880) as a pure state machine: step(state, event, now) → {state, actions}.
// States of §6.2 (AdminDown, Down, Init, Up) and the state variables of §6.8.1; reception of
// control packets per §6.8.6 (after the packet checks of packet.ts), transmission per §6.8.7 with
// the jitter of §6.8.7 (75–100% of the interval, at most 90% when Detect Mult is 1), timer
// negotiation per §6.8.2–§6.8.4 with Poll Sequences (§6.5) for changes while Up, detection time per
// §6.8.4 (asynchronous mode: remote Detect Mult × max(RequiredMinRx, remote DesiredMinTx)),
// authentication sequence windows per §6.7.3/§6.7.4. Asynchronous mode only.
//
// Time is in microseconds (the unit of BFD's interval fields); `now` is any monotonic clock.
// The shell (worker.ts) sends what `send` actions carry and arms `tx`/`detect` timers at the
// absolute deadlines the state holds.
//
// RFC says Demand mode and the Echo function MAY be supported / nrd does neither: it never sets D,
// advertises Required Min Echo RX 0, and runs a session in asynchronous mode even if the peer sets D
// (RFC 5880 §6.6 lets a system keep sending periodically; the peer's D only stops ITS transmissions
// when both agree, which nrd never does).
import { DIAG, verifyAuth, type AuthKey, type BfdState, type ControlPacket } from './packet.js';

/** RFC 5880 §6.8.3: while not Up, DesiredMinTxInterval is at least one second. */
export const SLOW_TX_US = 1_000_000;

export interface SessionConfig {
  /** bfd.LocalDiscr: nonzero, unique per system. */
  localDiscr: number;
  /** Microseconds: DesiredMinTxInterval once Up. */
  desiredMinTx: number;
  /** Microseconds: RequiredMinRxInterval; 0 would mean "send me nothing" (nrd never uses it). */
  requiredMinRx: number;
  detectMult: number;
  auth?: AuthKey;
}

export interface SessionState {
  readonly config: SessionConfig;
  sessionState: BfdState;
  remoteSessionState: BfdState;
  remoteDiscr: number;
  /** bfd.LocalDiag: why the session last went Down or AdminDown (kept while Up, for operators). */
  localDiag: number;
  /** The peer's diagnostic in its last packet. */
  remoteDiag: number;
  /** bfd.DesiredMinTxInterval as advertised now (slow while not Up). */
  desiredMinTx: number;
  /** The desired TX the transmit timer uses: lags desiredMinTx during a Poll Sequence that raises it. */
  txIntervalInEffect: number;
  requiredMinRx: number;
  /** The RequiredMinRx the detection time uses: lags requiredMinRx during a Poll Sequence that lowers it. */
  rxIntervalInEffect: number;
  remoteMinRx: number;
  remoteDesiredMinTx: number;
  remoteDetectMult: number;
  /** A Poll Sequence is in progress: every packet carries P until a packet with F arrives. */
  polling: boolean;
  /** Absolute µs of the next periodic transmission; null: none. */
  txAt: number | null;
  /** Absolute µs at which the detection time expires; null: not armed. */
  detectAt: number | null;
  /** Authentication: next sequence number to send; received sequence state (§6.8.1). */
  xmitAuthSeq: number;
  rcvAuthSeq: number;
  authSeqKnown: boolean;
  /** When authSeqKnown last got a valid packet (it is cleared after 2 × detection time idle). */
  lastRxAt: number | null;
  /** PRNG state for the TX jitter (deterministic under test). */
  rng: number;
  /** Counters for operators. */
  stats: { rx: number; tx: number; rxDiscarded: number; lastDiscard: string | null };
}

export type SessionEvent =
  /** Administrative enable: AdminDown → Down, start sending (slowly). */
  | { type: 'Start' }
  /** Administrative disable: → AdminDown with diag 7, tell the peer (§6.8.16). */
  | { type: 'Stop' }
  /** A packet that passed decodeControl and was demultiplexed to this session; raw for auth. */
  | { type: 'Received'; packet: ControlPacket; raw: Uint8Array }
  | { type: 'TxTimer' }
  | { type: 'DetectTimer' }
  /** New timer parameters (config reload): a Poll Sequence when Up (§6.8.3). */
  | { type: 'SetParameters'; desiredMinTx: number; requiredMinRx: number; detectMult: number };

export type SessionAction =
  | { type: 'send'; packet: ControlPacket; sequence: number }
  | { type: 'stateChange'; from: BfdState; to: BfdState; diag: number; remoteState: BfdState }
  | { type: 'discard'; reason: string };

export interface StepResult {
  state: SessionState;
  actions: SessionAction[];
}

export function initialState(config: SessionConfig, seed = 0x9e3779b9): SessionState {
  if (config.localDiscr === 0) throw new RangeError('localDiscr must be nonzero');
  return {
    config,
    sessionState: 'AdminDown',
    remoteSessionState: 'Down',
    remoteDiscr: 0,
    localDiag: DIAG.None,
    remoteDiag: DIAG.None,
    desiredMinTx: Math.max(SLOW_TX_US, config.desiredMinTx),
    txIntervalInEffect: Math.max(SLOW_TX_US, config.desiredMinTx),
    requiredMinRx: config.requiredMinRx,
    rxIntervalInEffect: config.requiredMinRx,
    remoteMinRx: 1, // §6.8.1: initialized to 1
    remoteDesiredMinTx: 0,
    remoteDetectMult: 0,
    polling: false,
    txAt: null,
    detectAt: null,
    xmitAuthSeq: seed >>> 0, // §6.8.1: SHOULD be initialized to a random value
    rcvAuthSeq: 0,
    authSeqKnown: false,
    lastRxAt: null,
    rng: seed >>> 0 || 1,
    stats: { rx: 0, tx: 0, rxDiscarded: 0, lastDiscard: null },
  };
}

/** The interval between transmissions before jitter: max(DesiredMinTx in effect, RemoteMinRx). */
export function txInterval(s: SessionState): number {
  return Math.max(s.txIntervalInEffect, s.remoteMinRx);
}

/** Detection time in asynchronous mode (§6.8.4); 0 before anything was received. */
export function detectionTime(s: SessionState): number {
  return s.remoteDetectMult * Math.max(s.rxIntervalInEffect, s.remoteDesiredMinTx);
}

function clone(s: SessionState): SessionState {
  return { ...s, stats: { ...s.stats } };
}

/** xorshift32: enough for jitter, reproducible in tests. */
function nextRandom(s: SessionState): number {
  let x = s.rng;
  x ^= x << 13;
  x >>>= 0;
  x ^= x >>> 17;
  x ^= x << 5;
  x >>>= 0;
  s.rng = x || 1;
  return s.rng / 0x100000000;
}

/** §6.8.7: the interval reduced by 0–25% (by 10–25% when Detect Mult is 1). */
function jittered(s: SessionState, interval: number): number {
  const r = nextRandom(s);
  const hi = s.config.detectMult === 1 ? 0.9 : 1.0;
  return Math.floor(interval * (0.75 + r * (hi - 0.75)));
}

function buildPacket(s: SessionState, final: boolean): ControlPacket {
  return {
    diag: s.localDiag,
    state: s.sessionState,
    // §6.8.7: P is set during a Poll Sequence, never together with F.
    poll: s.polling && !final,
    final,
    cpi: false,
    demand: false,
    multipoint: false,
    detectMult: s.config.detectMult,
    myDiscriminator: s.config.localDiscr,
    yourDiscriminator: s.remoteDiscr,
    desiredMinTx: s.desiredMinTx,
    requiredMinRx: s.requiredMinRx,
    requiredMinEchoRx: 0,
  };
}

function send(s: SessionState, actions: SessionAction[], final = false): void {
  const seq = s.xmitAuthSeq;
  // §6.7.3/§6.7.4: meticulous increments on every packet; keyed MAY; nrd increments for both.
  if (s.config.auth && s.config.auth.type !== 'simple') s.xmitAuthSeq = (s.xmitAuthSeq + 1) >>> 0;
  s.stats.tx++;
  actions.push({ type: 'send', packet: buildPacket(s, final), sequence: seq });
}

function scheduleTx(s: SessionState, now: number): void {
  // §6.8.7: no periodic packets while the peer asks for none (RemoteMinRx 0) or while AdminDown
  // (after the few that announce it).
  if (s.sessionState === 'AdminDown' || s.remoteMinRx === 0) s.txAt = null;
  else s.txAt = now + jittered(s, txInterval(s));
}

function armDetect(s: SessionState, now: number): void {
  const d = detectionTime(s);
  s.detectAt = d > 0 ? now + d : null;
}

function setState(s: SessionState, to: BfdState, diag: number | null, now: number, actions: SessionAction[]): void {
  const from = s.sessionState;
  if (from === to) return;
  s.sessionState = to;
  if (diag !== null) s.localDiag = diag;
  if (to === 'Up') {
    // Leave slow TX: the configured interval, announced with a Poll Sequence (§6.8.3). Lowering
    // the TX interval takes effect at once.
    s.desiredMinTx = s.config.desiredMinTx;
    s.txIntervalInEffect = Math.min(s.txIntervalInEffect, s.desiredMinTx);
    s.polling = true;
  } else if (from === 'Up') {
    s.desiredMinTx = Math.max(SLOW_TX_US, s.config.desiredMinTx);
    s.txIntervalInEffect = s.desiredMinTx;
    s.polling = false;
  }
  actions.push({ type: 'stateChange', from, to, diag: s.localDiag, remoteState: s.remoteSessionState });
  if (to === 'Down' || to === 'AdminDown') {
    // §6.8.1: RemoteDiscr is kept while the peer is heard, so that it can come back up; the
    // detection timer clears it when the peer falls silent.
    void now;
  }
}

function discard(s: SessionState, reason: string): StepResult {
  s.stats.rxDiscarded++;
  s.stats.lastDiscard = reason;
  return { state: s, actions: [{ type: 'discard', reason }] };
}

/** The one transition function. Never throws for a received packet: bad ones become `discard`. */
export function step(state: SessionState, event: SessionEvent, now: number): StepResult {
  const s = clone(state);
  const actions: SessionAction[] = [];
  switch (event.type) {
    case 'Start': {
      if (s.sessionState !== 'AdminDown') return { state: s, actions };
      setState(s, 'Down', s.localDiag === DIAG.AdministrativelyDown ? DIAG.None : s.localDiag, now, actions);
      send(s, actions);
      scheduleTx(s, now);
      return { state: s, actions };
    }
    case 'Stop': {
      if (s.sessionState === 'AdminDown') return { state: s, actions };
      setState(s, 'AdminDown', DIAG.AdministrativelyDown, now, actions);
      // §6.8.16: the peer learns of AdminDown from our packets; one is sent now, the shell sends
      // no more (the session is removed or held silent).
      send(s, actions);
      s.txAt = null;
      s.detectAt = null;
      return { state: s, actions };
    }
    case 'SetParameters': {
      const cfg: SessionConfig = { ...s.config, desiredMinTx: event.desiredMinTx, requiredMinRx: event.requiredMinRx, detectMult: event.detectMult };
      (s as { config: SessionConfig }).config = cfg;
      const up = s.sessionState === 'Up';
      const newTx = up ? event.desiredMinTx : Math.max(SLOW_TX_US, event.desiredMinTx);
      const changed = newTx !== s.desiredMinTx || event.requiredMinRx !== s.requiredMinRx;
      s.desiredMinTx = newTx;
      s.requiredMinRx = event.requiredMinRx;
      // §6.8.3: a raised TX interval waits for the poll to end (the peer's detection time must
      // grow first); a lowered one applies now. A lowered RX requirement waits (§6.8.3); a raised
      // one applies now.
      if (!up || newTx < s.txIntervalInEffect) s.txIntervalInEffect = newTx;
      if (!up || event.requiredMinRx > s.rxIntervalInEffect) s.rxIntervalInEffect = event.requiredMinRx;
      if (up && changed) {
        s.polling = true;
        send(s, actions);
        scheduleTx(s, now);
      }
      return { state: s, actions };
    }
    case 'TxTimer': {
      if (s.txAt === null || now < s.txAt) return { state: s, actions };
      send(s, actions);
      scheduleTx(s, now);
      return { state: s, actions };
    }
    case 'DetectTimer': {
      if (s.detectAt === null || now < s.detectAt) return { state: s, actions };
      s.detectAt = null;
      if (s.sessionState === 'Init' || s.sessionState === 'Up') {
        setState(s, 'Down', DIAG.ControlDetectionTimeExpired, now, actions);
        scheduleTx(s, now);
      }
      // §6.8.1: RemoteDiscr is reset when the detection time passes without a valid packet; the
      // peer's parameters go with it (RemoteMinRx back to 1 so that we keep sending).
      s.remoteDiscr = 0;
      s.remoteSessionState = 'Down';
      s.remoteMinRx = 1;
      s.polling = false;
      return { state: s, actions };
    }
    case 'Received':
      return receive(s, event.packet, event.raw, now, actions);
  }
}

function receive(s: SessionState, p: ControlPacket, raw: Uint8Array, now: number, actions: SessionAction[]): StepResult {
  // §6.8.6 session-level checks (packet-level ones were decodeControl's).
  if (p.yourDiscriminator !== 0 && p.yourDiscriminator !== s.config.localDiscr) return discard(s, 'your discriminator is not ours');
  const authFail = verifyAuth(raw, p, s.config.auth);
  if (authFail) return discard(s, `authentication: ${authFail}`);
  if (p.auth && p.auth.type !== 'simple' && s.config.auth) {
    // §6.7.3/§6.7.4 sequence windows: meticulous needs a strictly greater number, keyed allows
    // equal; both within 3 × Detect Mult of the last one. authSeqKnown is cleared after 2 ×
    // detection time without a valid packet (§6.8.1).
    if (s.authSeqKnown && s.lastRxAt !== null && detectionTime(s) > 0 && now - s.lastRxAt > 2 * detectionTime(s)) s.authSeqKnown = false;
    if (s.authSeqKnown) {
      const meticulous = p.auth.type === 'meticulous-keyed-sha1' || p.auth.type === 'meticulous-keyed-md5';
      const lo = meticulous ? 1 : 0;
      const d = (p.auth.sequence - s.rcvAuthSeq) >>> 0;
      if (d < lo || d > 3 * s.config.detectMult) return discard(s, `authentication: sequence ${p.auth.sequence} outside the window after ${s.rcvAuthSeq}`);
    }
    s.rcvAuthSeq = p.auth.sequence;
    s.authSeqKnown = true;
  }
  if (s.sessionState === 'AdminDown') return discard(s, 'session is AdminDown');
  s.stats.rx++;
  s.lastRxAt = now;
  s.remoteDiscr = p.myDiscriminator;
  s.remoteSessionState = p.state;
  s.remoteDiag = p.diag;
  s.remoteDesiredMinTx = p.desiredMinTx;
  s.remoteDetectMult = p.detectMult;
  const oldRemoteMinRx = s.remoteMinRx;
  s.remoteMinRx = p.requiredMinRx;
  // §6.8.6: F terminates our Poll Sequence; the changed intervals now apply in full.
  if (p.final && s.polling) {
    s.polling = false;
    s.txIntervalInEffect = s.desiredMinTx;
    s.rxIntervalInEffect = s.requiredMinRx;
  }
  // State machine (§6.8.6).
  if (p.state === 'AdminDown') {
    if (s.sessionState !== 'Down') {
      setState(s, 'Down', DIAG.NeighborSignaledSessionDown, now, actions);
    }
  } else if (s.sessionState === 'Down') {
    if (p.state === 'Down') setState(s, 'Init', null, now, actions);
    else if (p.state === 'Init') setState(s, 'Up', null, now, actions);
  } else if (s.sessionState === 'Init') {
    if (p.state === 'Init' || p.state === 'Up') setState(s, 'Up', null, now, actions);
  } else if (s.sessionState === 'Up') {
    if (p.state === 'Down') setState(s, 'Down', DIAG.NeighborSignaledSessionDown, now, actions);
  }
  armDetect(s, now);
  if (p.poll) {
    // §6.8.7: a Poll is answered at once with F, whatever the TX timer says.
    send(s, actions, true);
  } else if (actions.some((a) => a.type === 'stateChange')) {
    // A state change is announced now rather than at the next (possibly slow) tick: the peer
    // comes Up one round trip sooner. RFC 5880 §6.8.7 allows packets beyond the periodic ones
    // as long as the rate stays bounded: one per received packet is.
    send(s, actions);
  }
  // A peer that lowers RemoteMinRx (or starts a new session) gets the faster rate now, not after
  // the old, longer interval (§6.8.7 "MUST be sent at the new rate").
  if (s.txAt === null || s.remoteMinRx < oldRemoteMinRx || actions.some((a) => a.type === 'send')) scheduleTx(s, now);
  return { state: s, actions };
}
