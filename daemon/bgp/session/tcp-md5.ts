// TCP socket options Node's `net` cannot set, through lib/libc.ts (koffi): RFC 2385 TCP MD5 signatures
// (setsockopt TCP_MD5SIG, struct tcp_md5sig from linux/tcp.h) and RFC 5082 GTSM (IP_TTL/IP_MINTTL,
// IPV6_UNICAST_HOPS/IPV6_MINHOPCOUNT). Flat and errno-transparent: failures are LibcError.
//
// Getting at a Node socket's fd: `(socket as unknown as { _handle: { fd: number } })._handle.fd`.
// `_handle` is libuv's TCPWrap and `fd` is its file descriptor on Unix; it is not public API but
// has been stable since Node 0.x and is what every native socket-option package relies on. It is
// -1 before a handle exists (before listen/connect) and on Windows (not a target).
//
// Active peers need the key on the socket before the SYN goes out; net.Socket#connect creates the
// socket and connects in one step, so nrd creates the fd itself (socket(2), setsockopt, bind(2) for
// a source address), wraps it with `new net.Socket({ fd })` and then calls connect() on it: libuv
// opens the existing fd as a TCP handle and uv_tcp_connect connects it (verified on Linux 6.18,
// Node 20). Passive peers: keys on the listening socket, one per peer address; accepted sockets
// inherit them from the listener.
import { isIPv4, isIPv6, type Socket, type Server } from 'node:net';
import { SOCK_CLOEXEC, SOCK_NONBLOCK, bind, close, setsockopt, setsockoptInt, socket, trySetsockoptInt } from '../../lib/libc.js';
import { parseIpBytes } from '../../lib/ip.js';

const AF_INET = 2;
const AF_INET6 = 10;
const SOCK_STREAM = 1;
const SOL_SOCKET = 1;
const SO_REUSEADDR = 2;
const IPPROTO_IP = 0;
const IPPROTO_TCP = 6;
const IPPROTO_IPV6 = 41;
const TCP_MD5SIG = 14;
const IP_TTL = 2;
const IP_MINTTL = 21;
const IPV6_UNICAST_HOPS = 16;
const IPV6_V6ONLY = 26;
const IPV6_MINHOPCOUNT = 73;
/** linux/tcp.h TCP_MD5SIG_MAXKEYLEN. */
export const TCP_MD5SIG_MAXKEYLEN = 80;
/** sizeof(struct tcp_md5sig): sockaddr_storage 128 + flags, prefixlen, keylen, ifindex 8 + key 80. */
const TCP_MD5SIG_SIZE = 216;

/** The fd behind a Node socket or server (see the module comment). Throws when there is none yet. */
export function socketFd(s: Socket | Server): number {
  const fd = (s as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('socket has no file descriptor (not connected/listening yet?)');
  return fd;
}

/** Network-order bytes of an address already checked with isIPv4/isIPv6. A zone id is not encoded (the scope id stays 0). */
function addrBytes(a: string): Buffer {
  const b = parseIpBytes(a.replace(/%.*$/, ''));
  if (!b) throw new TypeError(`not an IP address: ${a}`);
  return b;
}

/**
 * Encode a sockaddr for `address` in `family` (AF_INET or AF_INET6). An IPv4 address in an AF_INET6
 * context becomes v4-mapped (::ffff:a.b.c.d), which is how a dual-stack socket sees IPv4 peers.
 */
export function sockaddr(family: number, address: string, port = 0): Buffer {
  if (family === AF_INET) {
    if (!isIPv4(address)) throw new TypeError(`not an IPv4 address: ${address}`);
    const b = Buffer.alloc(16);
    b.writeUInt16LE(AF_INET, 0);
    b.writeUInt16BE(port, 2);
    addrBytes(address).copy(b, 4);
    return b;
  }
  const a6 = isIPv4(address) ? `::ffff:${address}` : address;
  if (!isIPv6(a6)) throw new TypeError(`not an IP address: ${address}`);
  const b = Buffer.alloc(28);
  b.writeUInt16LE(AF_INET6, 0);
  b.writeUInt16BE(port, 2);
  addrBytes(a6).copy(b, 8);
  return b;
}

/** The address family of a socket by the local address it is bound to or will bind to. */
export function familyOf(address: string): number {
  return isIPv6(address) ? AF_INET6 : AF_INET;
}

/**
 * Set (or, with an empty key, delete) the RFC 2385 key for `peer` on socket `fd` of `family`.
 * Keys are at most 80 bytes (TCP_MD5SIG_MAXKEYLEN).
 */
export function setMd5Key(fd: number, family: number, peer: string, key: string | Uint8Array): void {
  const k = typeof key === 'string' ? Buffer.from(key, 'utf8') : Buffer.from(key);
  if (k.length > TCP_MD5SIG_MAXKEYLEN) throw new RangeError(`TCP MD5 key longer than ${TCP_MD5SIG_MAXKEYLEN} bytes`);
  const sig = Buffer.alloc(TCP_MD5SIG_SIZE);
  sockaddr(family, peer).copy(sig, 0); // tcpm_addr (sockaddr_storage, 128 bytes)
  // tcpm_flags (u8) = 0, tcpm_prefixlen (u8) = 0: exact address, no ifindex.
  sig.writeUInt16LE(k.length, 130); // tcpm_keylen, host order
  // tcpm_ifindex (u32) at 132 = 0.
  k.copy(sig, 136); // tcpm_key[80]
  setsockopt(fd, IPPROTO_TCP, TCP_MD5SIG, sig, 'setsockopt(TCP_MD5SIG)');
}

/**
 * RFC 5082 GTSM on a connected or listening socket: send with TTL/hop limit 255 and drop anything
 * that arrives with less than 255 - hops + 1 (hops = 1 for a directly connected peer).
 */
export function setGtsm(fd: number, family: number, hops = 1): void {
  const min = 256 - hops;
  if (family === AF_INET6) {
    setsockoptInt(fd, IPPROTO_IPV6, IPV6_UNICAST_HOPS, 255, 'setsockopt(IPV6_UNICAST_HOPS)');
    setsockoptInt(fd, IPPROTO_IPV6, IPV6_MINHOPCOUNT, min, 'setsockopt(IPV6_MINHOPCOUNT)');
    // A dual-stack socket talking to an IPv4 peer uses the IPv4 options too; failure is harmless
    // on a v6-only socket.
    trySetsockoptInt(fd, IPPROTO_IP, IP_TTL, 255);
    trySetsockoptInt(fd, IPPROTO_IP, IP_MINTTL, min);
    return;
  }
  setsockoptInt(fd, IPPROTO_IP, IP_TTL, 255, 'setsockopt(IP_TTL)');
  setsockoptInt(fd, IPPROTO_IP, IP_MINTTL, min, 'setsockopt(IP_MINTTL)');
}

export interface PreparedSocketOptions {
  /** Peer address: decides the family and is the MD5 key's address. */
  peer: string;
  md5Key?: string;
  /** Source address to bind before connecting. */
  localAddress?: string;
  localPort?: number;
  /** GTSM with this many hops (1 = directly connected). */
  gtsmHops?: number;
}

/**
 * A fresh non-blocking TCP socket fd with MD5 key, GTSM and source address applied, ready for
 * `new net.Socket({ fd }).connect(port, peer)`. The caller owns the fd (net.Socket closes it).
 */
export function prepareConnectFd(opts: PreparedSocketOptions): number {
  const family = familyOf(opts.peer);
  const fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  try {
    if (opts.md5Key) setMd5Key(fd, family, opts.peer, opts.md5Key);
    if (opts.gtsmHops !== undefined) setGtsm(fd, family, opts.gtsmHops);
    if (opts.localAddress !== undefined || opts.localPort !== undefined) {
      if (opts.localPort) setsockoptInt(fd, SOL_SOCKET, SO_REUSEADDR, 1, 'setsockopt(SO_REUSEADDR)');
      const local = opts.localAddress ?? (family === AF_INET ? '0.0.0.0' : '::');
      if (family === AF_INET6 && isIPv6(local)) setsockoptInt(fd, IPPROTO_IPV6, IPV6_V6ONLY, 1, 'setsockopt(IPV6_V6ONLY)');
      const sa = sockaddr(family, local, opts.localPort ?? 0);
      bind(fd, { addr: sa, len: sa.length });
    }
    return fd;
  } catch (e) {
    try {
      close(fd);
    } catch {
      // The setup error is the one worth reporting.
    }
    throw e;
  }
}

/** Close an fd that was never handed to Node. */
export function closeFd(fd: number): void {
  close(fd);
}

export const SOCKET_FAMILY = { AF_INET, AF_INET6 } as const;
