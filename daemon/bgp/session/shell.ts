// The I/O shell of one BGP peer: owns its TCP connection(s) and timers, feeds bytes through the
// Framer and decoder into the pure FSM (fsm.ts) and executes the actions it returns. RFC 4271 §6.8
// collision handling across two connections, RFC 4724 §4.2 (a restarting peer's new connection
// replaces an Established one), RFC 2385/5082 socket options via tcp-md5.ts.
//
// Fairness: bytes are framed as they arrive but decoded and handed to the consumer in bounded
// batches, one batch per event-loop turn (setImmediate), and the socket is paused meanwhile. A peer
// pushing a million routes therefore never holds the loop for long, so other peers' keepalive and
// hold timers (timers phase) run between batches, and TCP flow control slows the sender down.
import net from 'node:net';
import type { Logger } from '../../lib/log.js';
import { silentLogger } from '../../lib/log.js';
import { Framer, decodeMessage, encodeMessage } from '../wire/index.js';
import {
  ERR_HEADER,
  ERR_OPEN,
  ERR_ROUTE_REFRESH,
  ERR_UPDATE,
  type BgpError,
  type BgpMessage,
  type RouteRefreshMessage,
  type SessionContext,
  type UpdateMessage,
} from '../types.js';
import { resolveCollision, type Direction } from './collision.js';
import type { SessionConfig } from './config.js';
import { CEASE_PEER_DECONFIGURED, initialState, step, TIMER_NAMES, type DownReason, type FsmAction, type FsmEvent, type FsmState, type StateName, type TimerName } from './fsm.js';
import { preOpenContext, type NegotiatedSession } from './negotiate.js';
import { prepareConnectFd, setGtsm, familyOf, socketFd } from './tcp-md5.js';
import { systemClock, type Clock } from '../../lib/clock.js';

export const BGP_PORT = 179;

/** The codec the shell speaks through (daemon/bgp/wire). */
export interface WireCodec {
  decode(frame: Uint8Array, ctx: SessionContext): { ok: true; message: BgpMessage; errors: readonly BgpError[] } | { ok: false; error: BgpError };
  encode(message: BgpMessage, ctx: SessionContext): Uint8Array;
}

/** The real codec. RFC 7606 AFI/SAFI-disable results arrive as errors and reset the session:
 * RFC 7606 §5.4 allows that, and nrd does not disable single families. */
export const wireCodec: WireCodec = { decode: decodeMessage, encode: encodeMessage };

/**
 * The real codec for a consumer that feeds the RIB: UPDATEs may arrive as PackedUpdate (IPv4
 * NLRI as typed arrays, see wire/packed.ts), which the RIB ingests without an object per prefix.
 */
const PACK_IPV4 = { packIpv4: true };
export const bulkWireCodec: WireCodec = {
  decode: (frame, ctx) => decodeMessage(frame, ctx, PACK_IPV4),
  encode: encodeMessage,
};

export interface ConnectOptions {
  host: string;
  port: number;
  localAddress?: string;
  localPort?: number;
  md5Key?: string;
  gtsmHops?: number;
}

/** Opens an outgoing connection; the socket emits 'connect' or 'error'. */
export type Connector = (opts: ConnectOptions) => net.Socket;

/**
 * Plain net.connect when no socket option is needed; otherwise a pre-built fd with the MD5 key,
 * GTSM and source address already applied (the key must be on the socket before the SYN).
 */
export const defaultConnector: Connector = (o) => {
  if (o.md5Key === undefined && o.gtsmHops === undefined && o.localPort === undefined) {
    const opts: net.NetConnectOpts = { host: o.host, port: o.port };
    if (o.localAddress !== undefined) opts.localAddress = o.localAddress;
    return net.connect(opts);
  }
  const prep: Parameters<typeof prepareConnectFd>[0] = { peer: o.host };
  if (o.md5Key !== undefined) prep.md5Key = o.md5Key;
  if (o.gtsmHops !== undefined) prep.gtsmHops = o.gtsmHops;
  if (o.localAddress !== undefined) prep.localAddress = o.localAddress;
  if (o.localPort !== undefined) prep.localPort = o.localPort;
  const fd = prepareConnectFd(prep);
  const s = new net.Socket({ fd, readable: true, writable: true });
  s.connect(o.port, o.host);
  return s;
};

export interface SessionConsumer {
  /**
   * One UPDATE received in Established (errors: RFC 7606 treat-as-withdraw/attribute-discard
   * findings that did not reset the session). Returning a promise pauses reading from this peer
   * until it settles: that is the backpressure from the RIB to the TCP window.
   */
  onUpdate(message: UpdateMessage, errors: readonly BgpError[]): void | Promise<void>;
  onRouteRefresh?(message: RouteRefreshMessage): void;
  onUp?(negotiated: NegotiatedSession): void;
  onDown?(reason: DownReason): void;
  onStateChange?(from: StateName, to: StateName): void;
}

export interface BgpSessionOptions {
  config: SessionConfig;
  peerAddress: string;
  peerPort?: number;
  localAddress?: string;
  localPort?: number;
  md5Key?: string;
  /** RFC 5082 GTSM: accept only packets from at most this many hops away (1 = directly connected). */
  gtsmHops?: number;
  consumer: SessionConsumer;
  /** Default: the wire codec (daemon/bgp/wire). */
  codec?: WireCodec;
  clock?: Clock;
  logger?: Logger;
  connector?: Connector;
  /** PRNG seed for jitter; random by default. */
  seed?: number;
  /** Messages decoded per event-loop turn before yielding. */
  batch?: number;
}

/** One TCP connection and the FSM instance that runs on it. */
class Conn {
  fsm: FsmState;
  socket: net.Socket | null = null;
  framer = new Framer();
  ctx: SessionContext;
  readonly timers = new Map<TimerName, unknown>();
  drainScheduled = false;
  consumerBusy = false;
  eof = false;
  eofReason = '';
  discarded = false;
  constructor(
    readonly id: number,
    public direction: Direction,
    fsm: FsmState,
    ctx: SessionContext,
  ) {
    this.fsm = fsm;
    this.ctx = ctx;
  }
}

const CLOSE_GRACE_MS = 1000;

export interface SessionInfo {
  peerAddress: string;
  state: StateName;
  /** Milliseconds since Established, or null. */
  uptimeMs: number | null;
  lastError: DownReason | null;
  negotiated: NegotiatedSession | null;
  connectRetryCounter: number;
}

export class BgpSession {
  readonly peerAddress: string;
  private readonly opts: BgpSessionOptions;
  private readonly cfg: SessionConfig;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly connector: Connector;
  private readonly batch: number;
  private readonly codec: WireCodec;
  private primary: Conn;
  private secondary: Conn | null = null;
  private nextConnId = 1;
  private queue: Array<{ conn: Conn; event: FsmEvent }> = [];
  private running = false;
  private writableWaiters: Array<() => void> = [];

  constructor(opts: BgpSessionOptions) {
    this.opts = opts;
    this.cfg = opts.config;
    this.peerAddress = opts.peerAddress;
    this.clock = opts.clock ?? systemClock;
    this.log = opts.logger ?? silentLogger();
    this.connector = opts.connector ?? defaultConnector;
    this.batch = opts.batch ?? 64;
    this.codec = opts.codec ?? wireCodec;
    const seed = opts.seed ?? Math.floor(Math.random() * 2 ** 32);
    this.primary = new Conn(this.nextConnId++, 'outgoing', initialState(this.cfg, seed), preOpenContext(this.cfg));
  }

  get state(): StateName {
    return this.primary.fsm.name;
  }

  info(): SessionInfo {
    const f = this.primary.fsm;
    return {
      peerAddress: this.peerAddress,
      state: f.name,
      uptimeMs: f.establishedAt !== undefined ? this.clock.now() - f.establishedAt : null,
      lastError: f.lastError ?? null,
      negotiated: f.negotiated ?? null,
      connectRetryCounter: f.connectRetryCounter,
    };
  }

  /** ManualStart (or its passive variant when configured passive). */
  start(): void {
    this.enqueue(this.primary, { type: this.cfg.passive ? 'ManualStart_with_PassiveTcpEstablishment' : 'ManualStart' });
  }

  /** ManualStop: Cease/Administrative Shutdown with an optional RFC 8203 message. */
  stop(shutdownMessage?: string, subcode?: number): void {
    const e: FsmEvent = { type: 'ManualStop' };
    if (shutdownMessage !== undefined) e.shutdownMessage = shutdownMessage;
    if (subcode !== undefined) e.subcode = subcode;
    if (this.secondary) this.enqueue(this.secondary, e);
    this.enqueue(this.primary, e);
  }

  /** Stop, then release every socket and timer at once (peer removed from config, shutdown). */
  destroy(shutdownMessage?: string): void {
    this.stop(shutdownMessage, CEASE_PEER_DECONFIGURED);
    if (this.secondary) this.discard(this.secondary);
    this.secondary = null;
    this.discard(this.primary);
  }

  /** Encode and send an UPDATE in Established. false: the socket buffer is full, see writable(). */
  sendUpdate(message: UpdateMessage): boolean {
    return this.sendEstablished(message);
  }

  /** Ask the peer to resend a family (RFC 2918), when negotiated. */
  sendRouteRefresh(afi: number, safi: number, subtype = 0): boolean {
    if (!this.primary.fsm.negotiated?.routeRefresh) return false;
    return this.sendEstablished({ type: 'route-refresh', afi, safi, subtype });
  }

  /** Resolves when the socket buffer has drained (or the session is gone). */
  writable(): Promise<void> {
    const s = this.primary.socket;
    if (!s || !s.writableNeedDrain) return Promise.resolve();
    return new Promise((resolve) => this.writableWaiters.push(resolve));
  }

  private sendEstablished(message: BgpMessage): boolean {
    const c = this.primary;
    if (c.fsm.name !== 'Established' || !c.socket) return false;
    return c.socket.write(this.codec.encode(message, c.ctx));
  }

  /**
   * A connection the listener accepted from this peer's address. Idle refuses it (RFC 4271 §8.2.2);
   * Connect/Active adopt it; OpenSent/OpenConfirm/Established run it as a second connection
   * until collision detection (or a graceful restart) settles which one stays.
   */
  acceptIncoming(socket: net.Socket): void {
    const p = this.primary;
    if (this.opts.gtsmHops !== undefined) {
      try {
        setGtsm(socketFd(socket), familyOf(socket.remoteAddress ?? this.peerAddress), this.opts.gtsmHops);
      } catch (e) {
        this.log.warn({ err: e }, 'GTSM on accepted socket failed');
      }
    }
    if (p.fsm.name === 'Idle') {
      this.log.debug('refusing connection in Idle');
      socket.destroy();
      return;
    }
    if (p.fsm.name === 'Connect' || p.fsm.name === 'Active') {
      this.dropSocket(p, false);
      p.direction = 'incoming';
      this.attach(p, socket);
      this.enqueue(p, { type: 'TcpConnectionConfirmed' });
      socket.resume();
      return;
    }
    if (this.secondary) {
      this.log.info('refusing a third connection');
      socket.destroy();
      return;
    }
    const s = new Conn(this.nextConnId++, 'incoming', { ...initialState(this.cfg, p.fsm.rng ^ 0x5bd1e995), passive: true }, preOpenContext(this.cfg));
    this.secondary = s;
    this.attach(s, socket);
    this.enqueue(s, { type: 'ManualStart_with_PassiveTcpEstablishment' });
    this.enqueue(s, { type: 'TcpConnectionConfirmed' });
    socket.resume();
  }

  // ---- event loop ----------------------------------------------------------------------------------

  private enqueue(conn: Conn, event: FsmEvent): void {
    this.queue.push({ conn, event });
    if (this.running) return;
    this.running = true;
    try {
      for (let item = this.queue.shift(); item; item = this.queue.shift()) {
        if (!item.conn.discarded) this.dispatch(item.conn, item.event);
      }
    } finally {
      this.running = false;
    }
  }

  private dispatch(conn: Conn, event: FsmEvent): void {
    const from = conn.fsm.name;
    const r = step(conn.fsm, event, this.clock.now());
    conn.fsm = r.state;
    for (const a of r.actions) this.execute(conn, a);
    const to = conn.fsm.name;
    if (from !== to) {
      this.log.debug({ conn: conn.id, from, to, event: event.type }, 'state change');
      if (to === 'OpenConfirm' && conn.fsm.negotiated) {
        conn.ctx = conn.fsm.negotiated.context;
        if (conn.ctx.extendedMessage) conn.framer.maxMessage = 65535;
      }
      if (conn === this.primary) this.opts.consumer.onStateChange?.(from, to);
    }
    this.settle();
  }

  /** Keep at most one connection per peer once the situation is clear (RFC 4271 §6.8). */
  private settle(): void {
    const p = this.primary;
    const s = this.secondary;
    if (!s) return;
    if (s.fsm.name === 'Idle') {
      this.discard(s);
      this.secondary = null;
      return;
    }
    if (p.fsm.name === 'Idle' || p.fsm.name === 'Connect' || p.fsm.name === 'Active') {
      // The first connection is gone (or never got anywhere): the second one carries on.
      this.promote();
      return;
    }
    // Wait until the second connection has sent its OPEN, so the loser gets a proper Cease.
    if (s.fsm.name !== 'OpenSent' && s.fsm.name !== 'OpenConfirm') return;
    const peerOpen = s.fsm.negotiated?.peerOpen ?? p.fsm.negotiated?.peerOpen;
    if (!peerOpen) return; // neither has the peer's BGP id yet
    if (p.fsm.name === 'Established') {
      if (s.fsm.name !== 'OpenConfirm') return;
      // RFC 4724 §4.2: a new OPEN from a peer we are Established with means it restarted; with
      // GR the old session ends (its routes go stale) and the new one stays. Without GR, RFC 4271
      // §6.8 keeps the Established connection.
      if (p.fsm.negotiated?.peerGracefulRestart || s.fsm.negotiated?.peerGracefulRestart) {
        this.log.info('peer reconnected while Established: graceful restart, replacing the old session');
        this.enqueue(p, { type: 'TcpConnectionFails', reason: 'peer restarted (new connection, RFC 4724)' });
      } else {
        this.enqueue(s, { type: 'OpenCollisionDump' });
      }
      return;
    }
    const keep = resolveCollision(this.cfg.localId, peerOpen.bgpId, this.cfg.localAs, this.cfg.peerAs);
    const loser = p.direction === keep ? s : p;
    this.log.info({ keep, dump: loser.direction }, 'connection collision');
    this.enqueue(loser, { type: 'OpenCollisionDump' });
  }

  private promote(): void {
    const old = this.primary;
    const s = this.secondary;
    if (!s) return;
    this.discard(old);
    // The survivor adopts the peer's configured mode and the primary's retry history.
    s.fsm = { ...s.fsm, passive: this.cfg.passive, connectRetryCounter: Math.max(s.fsm.connectRetryCounter, old.fsm.connectRetryCounter) };
    this.primary = s;
    this.secondary = null;
    if (old.fsm.name !== s.fsm.name) this.opts.consumer.onStateChange?.(old.fsm.name, s.fsm.name);
  }

  private discard(c: Conn): void {
    c.discarded = true;
    for (const t of TIMER_NAMES) this.clearTimer(c, t);
    this.dropSocket(c, true);
  }

  // ---- actions -----------------------------------------------------------------------------------

  private execute(conn: Conn, a: FsmAction): void {
    switch (a.type) {
      case 'connect':
        return this.connect(conn);
      case 'close':
        return this.dropSocket(conn, true);
      case 'send':
        if (conn.socket && !conn.socket.destroyed) {
          try {
            conn.socket.write(this.codec.encode(a.message, conn.ctx));
          } catch (e) {
            this.log.error({ err: e, message: a.message.type }, 'encode failed');
          }
        }
        if (a.message.type === 'notification') {
          this.log.warn({ code: a.message.code, subcode: a.message.subcode }, 'NOTIFICATION sent');
        }
        return;
      case 'timer-start':
        return this.armTimer(conn, a.timer, a.at);
      case 'timer-stop':
        return this.clearTimer(conn, a.timer);
      case 'deliver-update':
        return this.deliver(conn, a.message, a.errors);
      case 'deliver-route-refresh':
        this.opts.consumer.onRouteRefresh?.(a.message);
        return;
      case 'session-up':
        this.log.info({ families: a.negotiated.families, holdTime: a.negotiated.holdTime, peerAs: a.negotiated.peerAs }, 'session established');
        this.opts.consumer.onUp?.(a.negotiated);
        return;
      case 'session-down':
        this.log.warn({ reason: a.reason }, 'session down');
        this.opts.consumer.onDown?.(a.reason);
        return;
    }
  }

  private connect(conn: Conn): void {
    this.dropSocket(conn, false);
    conn.direction = 'outgoing';
    const o: ConnectOptions = { host: this.peerAddress, port: this.opts.peerPort ?? BGP_PORT };
    if (this.opts.localAddress !== undefined) o.localAddress = this.opts.localAddress;
    if (this.opts.localPort !== undefined) o.localPort = this.opts.localPort;
    if (this.opts.md5Key !== undefined) o.md5Key = this.opts.md5Key;
    if (this.opts.gtsmHops !== undefined) o.gtsmHops = this.opts.gtsmHops;
    let socket: net.Socket;
    try {
      socket = this.connector(o);
    } catch (e) {
      const reason = `connect: ${(e as Error).message}`;
      this.log.warn({ err: e }, 'connect failed');
      setImmediate(() => {
        if (!conn.discarded && conn.socket === null && conn.fsm.name === 'Connect') this.enqueue(conn, { type: 'TcpConnectionFails', reason });
      });
      return;
    }
    this.attach(conn, socket);
    socket.once('connect', () => {
      if (conn.socket !== socket) return;
      socket.setNoDelay(true);
      this.enqueue(conn, { type: 'Tcp_CR_Acked' });
    });
  }

  private attach(conn: Conn, socket: net.Socket): void {
    conn.socket = socket;
    conn.framer = new Framer();
    conn.eof = false;
    conn.ctx = preOpenContext(this.cfg);
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      if (conn.socket !== socket) return;
      conn.framer.push(chunk);
      socket.pause();
      this.scheduleDrain(conn);
    });
    const ended = (why: string): void => {
      if (conn.socket !== socket || conn.eof) return;
      conn.eof = true;
      conn.eofReason = why;
      // Process what arrived before the FIN first: it may be the peer's NOTIFICATION.
      this.scheduleDrain(conn);
    };
    socket.on('end', () => ended('connection closed by peer'));
    socket.on('error', (e: NodeJS.ErrnoException) => ended(e.code ?? e.message));
    socket.on('close', () => ended('connection closed'));
    socket.on('drain', () => {
      if (conn !== this.primary) return;
      const w = this.writableWaiters;
      this.writableWaiters = [];
      for (const f of w) f();
    });
  }

  private dropSocket(conn: Conn, graceful: boolean): void {
    const s = conn.socket;
    if (!s) return;
    conn.socket = null;
    conn.drainScheduled = false;
    conn.framer = new Framer();
    if (conn === this.primary) {
      const w = this.writableWaiters;
      this.writableWaiters = [];
      for (const f of w) f();
    }
    if (graceful && !s.destroyed && !s.connecting) {
      // Flush what is queued (a NOTIFICATION), then FIN; force it shut if the peer does not read.
      s.end();
      const t = setTimeout(() => s.destroy(), CLOSE_GRACE_MS);
      t.unref();
      s.once('close', () => clearTimeout(t));
    } else {
      s.destroy();
    }
  }

  private armTimer(conn: Conn, timer: TimerName, at: number): void {
    this.clearTimer(conn, timer);
    const h = this.clock.setTimer(() => {
      conn.timers.delete(timer);
      if (conn.discarded) return;
      this.timerFired(conn, timer);
    }, at - this.clock.now());
    conn.timers.set(timer, h);
  }

  private clearTimer(conn: Conn, timer: TimerName): void {
    const h = conn.timers.get(timer);
    if (h === undefined) return;
    this.clock.clearTimer(h);
    conn.timers.delete(timer);
  }

  private timerFired(conn: Conn, timer: TimerName): void {
    switch (timer) {
      case 'connectRetry':
        return this.enqueue(conn, { type: 'ConnectRetryTimer_Expires' });
      case 'hold':
        // Our own backlog (paused socket, busy consumer) must not read as a dead peer.
        if (conn.fsm.name === 'Established' && (conn.consumerBusy || conn.drainScheduled)) {
          this.log.debug('hold timer deferred: local backlog');
          return this.enqueue(conn, { type: 'PeerAlive' });
        }
        return this.enqueue(conn, { type: 'HoldTimer_Expires' });
      case 'keepalive':
        return this.enqueue(conn, { type: 'KeepaliveTimer_Expires' });
      case 'delayOpen':
        return this.enqueue(conn, { type: 'DelayOpenTimer_Expires' });
      case 'idleHold':
        return this.enqueue(conn, { type: 'IdleHoldTimer_Expires' });
    }
  }

  // ---- receive path ------------------------------------------------------------------------------

  private scheduleDrain(conn: Conn): void {
    if (conn.drainScheduled) return;
    conn.drainScheduled = true;
    setImmediate(() => {
      conn.drainScheduled = false;
      this.drain(conn);
    });
  }

  private drain(conn: Conn): void {
    const socket = conn.socket;
    if (conn.discarded || !socket) return;
    let n = 0;
    while (n < this.batch && !conn.consumerBusy && conn.socket === socket) {
      const r = conn.framer.next();
      if (r === null) break;
      n++;
      if (!r.ok) {
        this.enqueue(conn, { type: 'BGPHeaderErr', error: r.error });
        return;
      }
      this.onFrame(conn, r.frame);
    }
    if (conn.socket !== socket || conn.consumerBusy) return; // closed, or resumes when the consumer settles
    if (n === this.batch) {
      this.scheduleDrain(conn); // more may be buffered: yield to the loop first
      return;
    }
    if (conn.eof) {
      this.enqueue(conn, { type: 'TcpConnectionFails', reason: conn.eofReason });
      return;
    }
    socket.resume();
  }

  private onFrame(conn: Conn, frame: Uint8Array): void {
    const d = this.codec.decode(frame, conn.ctx);
    if (!d.ok) {
      const e = d.error;
      const type =
        e.code === ERR_OPEN ? 'BGPOpenMsgErr' : e.code === ERR_UPDATE ? 'UpdateMsgErr' : e.code === ERR_ROUTE_REFRESH ? 'RouteRefreshMsgErr' : 'BGPHeaderErr';
      if (e.code !== ERR_HEADER && e.code !== ERR_OPEN && e.code !== ERR_UPDATE && e.code !== ERR_ROUTE_REFRESH) {
        this.log.warn({ code: e.code, subcode: e.subcode, reason: e.reason }, 'undecodable message');
      }
      this.enqueue(conn, { type, error: e });
      return;
    }
    const m = d.message;
    switch (m.type) {
      case 'open':
        return this.enqueue(conn, { type: 'BGPOpen', message: m });
      case 'update':
        return this.enqueue(conn, { type: 'UpdateMsg', message: m, errors: d.errors });
      case 'keepalive':
        return this.enqueue(conn, { type: 'KeepAliveMsg' });
      case 'route-refresh':
        return this.enqueue(conn, { type: 'RouteRefreshMsg', message: m });
      case 'notification':
        this.log.warn({ code: m.code, subcode: m.subcode, shutdownMessage: m.shutdownMessage }, 'NOTIFICATION received');
        // RFC 4271 §8.1: Unsupported Version Number gets its own event (NotifMsgVerErr).
        return this.enqueue(conn, m.code === ERR_OPEN && m.subcode === 1 ? { type: 'NotifMsgVerErr', message: m } : { type: 'NotifMsg', message: m });
    }
  }

  private deliver(conn: Conn, message: UpdateMessage, errors: readonly BgpError[]): void {
    let r: void | Promise<void>;
    try {
      r = this.opts.consumer.onUpdate(message, errors);
    } catch (e) {
      this.log.error({ err: e }, 'UPDATE consumer threw');
      return;
    }
    if (r && typeof (r as Promise<void>).then === 'function') {
      conn.consumerBusy = true;
      const settle = (): void => {
        conn.consumerBusy = false;
        if (!conn.discarded && conn.socket) this.scheduleDrain(conn);
      };
      (r as Promise<void>).then(settle, (e: unknown) => {
        this.log.error({ err: e }, 'UPDATE consumer failed');
        settle();
      });
    }
  }
}
