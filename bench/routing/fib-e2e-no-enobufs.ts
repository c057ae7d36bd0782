// Opt-in preload for the FIB benchmark's nrd (`node --import …/fib-e2e-no-enobufs.js main.js`),
// NOT part of nrd: sets NETLINK_NO_ENOBUFS (netlink(7)) on every netlink socket that joins a
// multicast group, so that an overflowing event socket drops notifications silently instead of
// reporting ENOBUFS. Why: netlink@0.3.0 turns that error (EPOLLERR → libuv UV_EBADF in its poll
// handler) into ErrnoException(…, syscall = NULL), whose Napi::String::New(NULL) throws a C++
// exception nobody catches: std::terminate, SIGABRT. nrd subscribes to route events, so writing
// ~100k routes aborts it. This preload measures the rest of the pipeline until nrd fixes that.
// Kernel interfaces: /proc/self/net/netlink (port id → socket inode), /proc/self/fd, setsockopt(2).
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';
import koffi from 'koffi';
import { RawNetlinkSocket } from 'netlink';

const SOL_NETLINK = 270;
const NETLINK_NO_ENOBUFS = 5;
const NETLINK_ROUTE = 0;

const setsockopt = koffi.load('libc.so.6').func('int setsockopt(int fd, int level, int name, const void *val, uint32_t len)') as (
  fd: number,
  level: number,
  name: number,
  val: Buffer,
  len: number,
) => number;

/** The fd of this process's NETLINK_ROUTE socket bound to `portId`, if any. */
function fdOfPort(portId: number): number | undefined {
  let inode: string | undefined;
  for (const l of readFileSync('/proc/self/net/netlink', 'utf8').split('\n').slice(1)) {
    const f = l.trim().split(/\s+/);
    if (f.length >= 10 && Number(f[1]) === NETLINK_ROUTE && Number(f[2]) === portId) inode = f[9];
  }
  if (inode === undefined) return undefined;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === `socket:[${inode}]`) return Number(fd);
    } catch {
      // fd closed meanwhile
    }
  }
  return undefined;
}

const done = new WeakSet<object>();
const proto = RawNetlinkSocket.prototype as unknown as { addMembership(group: number): void; address(): { port: number } };
const orig = proto.addMembership;
proto.addMembership = function (this: typeof proto, group: number): void {
  orig.call(this, group);
  if (done.has(this)) return;
  done.add(this);
  const fd = fdOfPort(this.address().port);
  const one = Buffer.alloc(4);
  one.writeInt32LE(1);
  const rc = fd === undefined ? -1 : setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, one, 4);
  process.stderr.write(`fib-e2e preload: NETLINK_NO_ENOBUFS on netlink port ${this.address().port} (fd ${fd ?? '?'}): ${rc === 0 ? 'set' : 'FAILED'}\n`);
};
