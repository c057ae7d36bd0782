// Socket options the npm `netlink` package does not expose, set on its socket's fd found through
// procfs: NETLINK_NO_ENOBUFS and SO_RCVBUFFORCE on a notification socket.
// Kernel interfaces: netlink(7) NETLINK_NO_ENOBUFS, socket(7) SO_RCVBUFFORCE, /proc/self/net/netlink
// (port id → socket inode), /proc/self/fd (inode → fd), setsockopt(2).
//
// Why: netlink@0.3.0 reports a receive-queue overflow (ENOBUFS, EPOLLERR in its poll handler) by
// building an ErrnoException with a NULL syscall name, which throws a C++ exception nobody catches:
// std::terminate, SIGABRT. A route subscription overflows whenever nrd writes many routes at once
// (each write is multicast back). With NETLINK_NO_ENOBUFS the kernel drops the overflowing
// notifications silently instead; the reconciler resyncs after bulk writes to cover the loss.
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { setsockoptInt } from '../lib/libc.js';

const SOL_SOCKET = 1;
const SO_RCVBUFFORCE = 33;
const SOL_NETLINK = 270;
const NETLINK_NO_ENOBUFS = 5;

/** The fd of this process's netlink socket of `protocol` bound to port id `portId`, if any. */
export function netlinkFdOfPort(protocol: number, portId: number): number | undefined {
  let inode: string | undefined;
  // sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
  for (const l of readFileSync('/proc/self/net/netlink', 'utf8').split('\n').slice(1)) {
    const f = l.trim().split(/\s+/);
    if (f.length >= 10 && Number(f[1]) === protocol && Number(f[2]) === portId) inode = f[9];
  }
  if (inode === undefined) return undefined;
  const link = `socket:[${inode}]`;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === link) return Number(fd);
    } catch {
      // closed meanwhile (readdir's own fd, among others)
    }
  }
  return undefined;
}

export interface EventSocketOptions {
  /** Receive buffer forced past net.core.rmem_max (needs CAP_NET_ADMIN; skipped when 0). */
  rcvbufForce: number;
}

/**
 * Make a netlink notification socket overflow-safe: NETLINK_NO_ENOBUFS (required; throws when it
 * cannot be set) and a large receive buffer (best effort: without CAP_NET_ADMIN the buffer stays
 * at rmem_max and more notifications are dropped, which the reconciler's resync covers).
 */
export function hardenEventSocket(protocol: number, portId: number, o: EventSocketOptions): { rcvbufForced: boolean } {
  const fd = netlinkFdOfPort(protocol, portId);
  if (fd === undefined) throw new Error(`no fd found for netlink port ${portId}`);
  setsockoptInt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, 1);
  let rcvbufForced = false;
  if (o.rcvbufForce > 0) {
    try {
      setsockoptInt(fd, SOL_SOCKET, SO_RCVBUFFORCE, o.rcvbufForce);
      rcvbufForced = true;
    } catch {
      rcvbufForced = false;
    }
  }
  return { rcvbufForced };
}
