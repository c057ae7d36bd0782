// The BFD session runner: owns every session's state (session.ts), demultiplexes received packets
// (RFC 5880 §6.3: by Your Discriminator, else by source address), arms one timer per session at
// its next TX or detection deadline, and hands encoded packets to a transport. No sockets here:
// worker.ts gives it UDP sockets; unit tests give it a fake transport and clock.
import { decodeControl, diagName, encodeControl, BfdPacketError, type AuthKey } from './packet.js';
import { detectionTime, initialState, step, txInterval, type SessionEvent, type SessionState } from './session.js';
import type { BfdSessionSpec, BfdSessionView, FromWorker } from './types.js';

/** Microsecond clock and timers. */
export interface UsClock {
  nowUs(): number;
  setTimer(fn: () => void, us: number): unknown;
  clearTimer(h: unknown): void;
  wallTime(): string;
  /**
   * Runs `fn` once the packets already received are handed to receive(): after the event loop's
   * poll phase (setImmediate). A thread that was not scheduled for a while wakes with its timers
   * due and the peer's packets still unread in the socket; judging the peer silent before reading
   * them would be a false Down.
   */
  afterIo(fn: () => void): void;
}

export interface Transport {
  /** Sends one control packet to the peer of a session (its own source port, TTL 255). */
  send(spec: BfdSessionSpec, bytes: Uint8Array): void;
}

interface Entry {
  spec: BfdSessionSpec;
  key: AuthKey | undefined;
  state: SessionState;
  timer: unknown;
  since: string;
  stateChanges: number;
}

const specKey = (peer: string, multihop: boolean): string => `${multihop ? 'mh' : 'sh'}/${peer}`;

function authKey(spec: BfdSessionSpec): AuthKey | undefined {
  return spec.auth ? { type: spec.auth.type, keyId: spec.auth.keyId, secret: new TextEncoder().encode(spec.auth.key) } : undefined;
}

export class BfdRuntime {
  private readonly byKey = new Map<string, Entry>();
  private readonly byDiscr = new Map<number, Entry>();
  private nextDiscr: number;

  constructor(
    private readonly transport: Transport,
    private readonly clock: UsClock,
    private readonly emit: (m: FromWorker) => void,
    seed = (Math.random() * 0xffffffff) >>> 0,
  ) {
    // Discriminators start at a random point so that a restarted nrd does not reuse the old ones
    // (a peer would take stale packets for the new session).
    this.nextDiscr = (seed % 0x7fffffff) + 1;
  }

  /** Adds, updates (timer parameters: a Poll Sequence) and removes sessions to match `specs`. */
  configure(specs: readonly BfdSessionSpec[]): void {
    const want = new Map(specs.map((s) => [specKey(s.peer, s.multihop), s]));
    for (const [k, e] of this.byKey) {
      const s = want.get(k);
      if (!s || JSON.stringify(s.auth) !== JSON.stringify(e.spec.auth)) this.remove(k, e);
    }
    for (const [k, s] of want) {
      const e = this.byKey.get(k);
      if (!e) this.add(k, s);
      else if (e.spec.minTx !== s.minTx || e.spec.minRx !== s.minRx || e.spec.multiplier !== s.multiplier) {
        e.spec = s;
        this.run(e, { type: 'SetParameters', desiredMinTx: s.minTx * 1000, requiredMinRx: s.minRx * 1000, detectMult: s.multiplier });
      } else e.spec = s; // purposes and node name: shown, no protocol effect
    }
  }

  private add(k: string, spec: BfdSessionSpec): void {
    let discr = this.nextDiscr;
    while (this.byDiscr.has(discr)) discr = (discr % 0xfffffffe) + 1;
    this.nextDiscr = (discr % 0xfffffffe) + 1;
    const key = authKey(spec);
    const cfg = { localDiscr: discr, desiredMinTx: spec.minTx * 1000, requiredMinRx: spec.minRx * 1000, detectMult: spec.multiplier, ...(key ? { auth: key } : {}) };
    const e: Entry = { spec, key, state: initialState(cfg, discr ^ 0x5bd1e995), timer: undefined, since: this.clock.wallTime(), stateChanges: 0 };
    this.byKey.set(k, e);
    this.byDiscr.set(discr, e);
    this.run(e, { type: 'Start' });
  }

  private remove(k: string, e: Entry): void {
    this.run(e, { type: 'Stop' });
    this.clock.clearTimer(e.timer);
    this.byKey.delete(k);
    this.byDiscr.delete(e.state.config.localDiscr);
  }

  /** AdminDown to every peer: they learn the session was taken down on purpose (RFC 5882 §3.2). */
  shutdown(): void {
    for (const [k, e] of this.byKey) this.remove(k, e);
  }

  /** One received UDP payload from `source` on the single-hop or multihop port. */
  receive(bytes: Uint8Array, source: string, multihop: boolean): void {
    let packet;
    try {
      packet = decodeControl(bytes);
    } catch (err) {
      if (err instanceof BfdPacketError) {
        const e = this.byKey.get(specKey(source, multihop));
        if (e) {
          e.state = { ...e.state, stats: { ...e.state.stats, rxDiscarded: e.state.stats.rxDiscarded + 1, lastDiscard: err.code } };
        }
        return;
      }
      throw err;
    }
    // RFC 5880 §6.8.6: Your Discriminator selects the session; 0 (the peer does not know us yet):
    // the source address and port kind do (RFC 5881 §3, RFC 5883 §3).
    const e = packet.yourDiscriminator !== 0 ? this.byDiscr.get(packet.yourDiscriminator) : this.byKey.get(specKey(source, multihop));
    if (!e || e.spec.peer !== source || e.spec.multihop !== multihop) return;
    this.run(e, { type: 'Received', packet, raw: bytes });
  }

  private run(e: Entry, ev: SessionEvent): void {
    const now = this.clock.nowUs();
    const r = step(e.state, ev, now);
    e.state = r.state;
    for (const a of r.actions) {
      if (a.type === 'send') {
        try {
          this.transport.send(e.spec, encodeControl(a.packet, e.key, a.sequence));
        } catch (err) {
          this.emit({ type: 'error', peer: e.spec.peer, message: (err as Error).message });
        }
      } else if (a.type === 'stateChange') {
        e.since = this.clock.wallTime();
        e.stateChanges++;
        this.emit({ type: 'state', peer: e.spec.peer, multihop: e.spec.multihop, from: a.from, to: a.to, diag: a.diag, remoteState: a.remoteState, at: e.since });
      }
    }
    this.arm(e);
  }

  private arm(e: Entry): void {
    this.clock.clearTimer(e.timer);
    e.timer = undefined;
    const s = e.state;
    const next = Math.min(s.txAt ?? Infinity, s.detectAt ?? Infinity);
    if (next === Infinity) return;
    e.timer = this.clock.setTimer(() => {
      e.timer = undefined;
      if (!this.byDiscr.has(e.state.config.localDiscr)) return;
      const due = (): void => {
        const now = this.clock.nowUs();
        // Detection first: a peer silent past its detection time is Down even if a TX is also due.
        if (e.state.detectAt !== null && now >= e.state.detectAt) this.run(e, { type: 'DetectTimer' });
        if (e.state.txAt !== null && now >= e.state.txAt) this.run(e, { type: 'TxTimer' });
        if (e.timer === undefined) this.arm(e);
      };
      if (e.state.detectAt === null || this.clock.nowUs() < e.state.detectAt) return due();
      // The detection time has passed: read what has arrived first (see UsClock.afterIo).
      this.clock.afterIo(() => {
        if (this.byKey.get(specKey(e.spec.peer, e.spec.multihop)) === e) due();
      });
    }, Math.max(0, next - this.clock.nowUs()));
  }

  sessions(): BfdSessionView[] {
    return [...this.byKey.values()].map((e) => {
      const s = e.state;
      return {
        peer: e.spec.peer,
        multihop: e.spec.multihop,
        purposes: [...e.spec.purposes],
        ...(e.spec.node !== undefined ? { node: e.spec.node } : {}),
        state: s.sessionState,
        remoteState: s.remoteSessionState,
        localDiscriminator: s.config.localDiscr,
        remoteDiscriminator: s.remoteDiscr,
        localDiag: diagName(s.localDiag),
        remoteDiag: diagName(s.remoteDiag),
        configured: { minTx: e.spec.minTx, minRx: e.spec.minRx, multiplier: e.spec.multiplier },
        txIntervalMs: txInterval(s) / 1000,
        detectionTimeMs: detectionTime(s) / 1000,
        remoteDetectMult: s.remoteDetectMult,
        polling: s.polling,
        auth: e.spec.auth?.type ?? 'none',
        since: e.since,
        stateChanges: e.stateChanges,
        packets: { ...s.stats },
      };
    });
  }
}
