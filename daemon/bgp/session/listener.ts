// The BGP listen socket (RFC 4271 §8: passive TCP establishment): one TCP server per address/port
// that hands connections from configured peers to their session and refuses everyone else at once.
// Holds the RFC 2385 MD5 keys of passive peers on the listening fd (accepted sockets inherit them).
import net from 'node:net';
import type { Logger } from '../../lib/log.js';
import { silentLogger } from '../../lib/log.js';
import { familyOf, setMd5Key, socketFd } from './tcp-md5.js';

/** What the listener needs from a session: BgpSession implements it. */
export interface IncomingHandler {
  acceptIncoming(socket: net.Socket): void;
}

export interface ListenerOptions {
  address: string;
  port: number;
  logger?: Logger;
  /** At most one "refused" log line per this many ms (remote peers can trigger it). */
  refuseLogIntervalMs?: number;
}

interface PeerEntry {
  handler: IncomingHandler;
  md5Key?: string;
}

/** ::ffff:192.0.2.1 → 192.0.2.1: how a dual-stack socket reports IPv4 peers. */
export function normalizeAddress(a: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(a);
  return m && m[1] ? m[1] : a.toLowerCase();
}

export class BgpListener {
  private readonly server: net.Server;
  private readonly peers = new Map<string, PeerEntry>();
  private readonly log: Logger;
  private readonly refuseInterval: number;
  private lastRefuseLog = -Infinity;
  private suppressed = 0;
  private listening = false;

  constructor(private readonly opts: ListenerOptions) {
    this.log = opts.logger ?? silentLogger();
    this.refuseInterval = opts.refuseLogIntervalMs ?? 10_000;
    // Paused until the session attaches its handlers, so no byte is read before the framer exists.
    this.server = net.createServer({ pauseOnConnect: true }, (s) => this.onConnection(s));
    this.server.on('error', (e) => this.log.error({ err: e }, 'listener error'));
  }

  /** Bind and listen; resolves with the bound port (useful with port 0). */
  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (e: Error): void => reject(e);
      this.server.once('error', onError);
      this.server.listen({ host: this.opts.address, port: this.opts.port, exclusive: true }, () => {
        this.server.off('error', onError);
        this.listening = true;
        // Keys of peers added before listen() could not be set yet.
        for (const [addr, p] of this.peers) if (p.md5Key) this.applyKey(addr, p.md5Key);
        const a = this.server.address();
        resolve(typeof a === 'object' && a ? a.port : this.opts.port);
      });
    });
  }

  /** Accept connections from `address` for `handler`, with an optional TCP MD5 key. */
  addPeer(address: string, handler: IncomingHandler, opts: { md5Key?: string } = {}): void {
    const key = normalizeAddress(address);
    const old = this.peers.get(key);
    if (old?.md5Key && old.md5Key !== opts.md5Key && this.listening) this.applyKey(key, '');
    const entry: PeerEntry = { handler };
    if (opts.md5Key) entry.md5Key = opts.md5Key;
    this.peers.set(key, entry);
    if (opts.md5Key && this.listening) this.applyKey(key, opts.md5Key);
  }

  removePeer(address: string): void {
    const key = normalizeAddress(address);
    const p = this.peers.get(key);
    if (!p) return;
    this.peers.delete(key);
    if (p.md5Key && this.listening) this.applyKey(key, '');
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      if (!this.listening) return resolve();
      this.listening = false;
      this.server.close(() => resolve());
    });
  }

  private applyKey(peer: string, key: string): void {
    // A listener on "::" is dual-stack: its IPv4 peers are keyed as v4-mapped addresses.
    setMd5Key(socketFd(this.server), familyOf(this.opts.address), peer, key);
  }

  private onConnection(socket: net.Socket): void {
    const remote = normalizeAddress(socket.remoteAddress ?? '');
    const peer = this.peers.get(remote);
    if (!peer) {
      socket.destroy();
      this.logRefused(remote);
      return;
    }
    peer.handler.acceptIncoming(socket);
  }

  private logRefused(remote: string): void {
    const now = Date.now();
    if (now - this.lastRefuseLog < this.refuseInterval) {
      this.suppressed++;
      return;
    }
    this.log.warn({ remote, suppressed: this.suppressed }, 'connection from an unconfigured address refused');
    this.lastRefuseLog = now;
    this.suppressed = 0;
  }
}
