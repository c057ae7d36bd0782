// Netlink in another network namespace, and the link/address calls the endpoints need that the
// shared KernelPort does not carry: a veth pair whose peer is created inside the workload's
// namespace (IFLA_NET_NS_FD), addresses with IFA_F_NODAD, and routes/links inside that namespace.
// Kernel interfaces: setns(2) with CLONE_NEWNET, netlink(7) rtnetlink RTM_NEWLINK (veth,
// VETH_INFO_PEER), RTM_NEWADDR, RTM_NEWROUTE, /proc/thread-self/ns/net.
//
// How a socket lands in another namespace: a netlink socket belongs for its whole life to the
// namespace its creating thread was in. The `netlink` package creates its socket synchronously in
// the RawNetlinkSocket constructor (socket(2) in the native binding), so the main thread setns()es
// into the target, constructs the channel, and setns()es back before returning: no other JavaScript
// runs in between, and libuv's worker threads never change namespace. This is Go's
// netlink.NewHandleAt, without threads to lock.
import { closeSync, openSync, statSync, writeFileSync } from 'node:fs';
import { CLONE_NEWNET, setns } from '../lib/libc.js';
import { familyOf, ipToBytes, macToBytes } from './addr.js';
import { NetlinkChannel } from './channel.js';
import {
  AF_INET,
  AF_INET6,
  AttrWriter,
  IFA_ADDRESS,
  IFA_LOCAL,
  IFLA_ADDRESS,
  IFLA_IFNAME,
  IFLA_INFO_DATA,
  IFLA_INFO_KIND,
  IFLA_LINKINFO,
  IFLA_MTU,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  RTM_DELLINK,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWROUTE,
  RTM_SETLINK,
  RT_SCOPE_UNIVERSE,
  decodeAddress,
  decodeLink,
  encodeAddrDumpRequest,
  encodeLinkDelete,
  encodeLinkDumpRequest,
  encodeLinkGet,
  encodeLinkSet,
  encodeRoute,
  type RawMessage,
} from './codec.js';
import { NetlinkKernelPort } from './netlink-port.js';
import { isKernelError, type AddressInfo, type Family, type LinkInfo, type Route } from './types.js';

const IFLA_NET_NS_FD = 28;
const VETH_INFO_PEER = 1;
const IFA_FLAGS = 8;
/** IFA_F_NODAD: no duplicate address detection, the IPv6 address is usable at once. */
const IFA_F_NODAD = 0x02;

/** The namespace of the calling thread (not /proc/self: that is the main thread's, the same here). */
const OWN_NETNS = '/proc/thread-self/ns/net';

/** Identity of a namespace file: equal (dev, ino) means the same namespace. */
export interface NetnsId {
  dev: number;
  ino: number;
}

export function netnsId(path: string): NetnsId {
  const st = statSync(path);
  return { dev: st.dev, ino: st.ino };
}

/** The namespace nrd itself runs in. */
export function ownNetnsId(): NetnsId {
  return netnsId(OWN_NETNS);
}

/**
 * Runs `fn` synchronously with the calling thread inside the network namespace at `path`, then
 * returns to the original one. `fn` must be synchronous (it only creates sockets). A failure to
 * return is fatal: the daemon would go on in the wrong namespace, so that error is rethrown after
 * marking it (callers let it crash the process).
 */
export function inNetns<T>(path: string, fn: (targetFd: number) => T): T {
  const own = openSync(OWN_NETNS, 'r');
  let target: number;
  try {
    target = openSync(path, 'r');
  } catch (e) {
    closeSync(own);
    throw e;
  }
  try {
    setns(target, CLONE_NEWNET); // EINVAL: the file is not a network namespace
    try {
      return fn(target);
    } finally {
      try {
        setns(own, CLONE_NEWNET);
      } catch (e) {
        process.stderr.write(`nrd: FATAL: could not return to the own network namespace: ${String(e)}\n`);
        process.exit(70);
      }
    }
  } finally {
    closeSync(target);
    closeSync(own);
  }
}

/**
 * A KernelPort whose request socket lives in the namespace at `path` (routes, links, addresses,
 * neighbours there). Its subscribe() would open a socket in the caller's namespace: requests only.
 */
export function openKernelPortIn(path: string): NetlinkKernelPort {
  return inNetns(path, () => new NetlinkKernelPort());
}

/**
 * Writes a sysctl of the namespace at `path` (e.g. 'net/ipv6/conf/eth0/accept_dad'). /proc/sys/net
 * answers for the namespace of the thread that opens it, so the write is synchronous, inside
 * inNetns: an async fs call would run on a libuv thread, in nrd's own namespace.
 * Returns false when the key does not exist there (e.g. IPv6 disabled).
 */
export function writeSysctlIn(path: string, key: string, value: string): boolean {
  if (!/^[A-Za-z0-9_.\/-]+$/.test(key) || key.includes('..')) throw new Error(`invalid sysctl key ${JSON.stringify(key)}`);
  return inNetns(path, () => {
    try {
      writeFileSync(`/proc/sys/${key}`, value);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw e;
    }
  });
}

/** A veth pair: the host side here, the peer created directly inside another namespace. */
export interface VethSpec {
  name: string;
  mac: string;
  mtu?: number;
  peer: { name: string; mac: string; netnsFd: number };
}

/** An address to add (`ip addr replace ADDR/LEN dev IF [nodad]`). */
export interface AddressSpec {
  ifindex: number;
  address: string;
  prefixLen: number;
  /** IPv6: skip DAD so the address is usable at once. */
  nodad?: boolean;
}

function writeIfinfomsg(w: AttrWriter, index = 0): void {
  w.u8(0).u8(0).u16(0).s32(index).u32(0).u32(0);
}

/** RTM_NEWLINK payload for `ip link add NAME address MAC type veth peer name P address M netns FD`. */
export function encodeVethCreate(s: VethSpec): Buffer {
  const w = new AttrWriter(160);
  writeIfinfomsg(w);
  w.attrString(IFLA_IFNAME, s.name);
  w.attr(IFLA_ADDRESS, macToBytes(s.mac));
  if (s.mtu !== undefined) w.attrU32(IFLA_MTU, s.mtu);
  const li = w.forkAttr(IFLA_LINKINFO);
  w.attrString(IFLA_INFO_KIND, 'veth');
  const data = w.forkAttr(IFLA_INFO_DATA);
  // VETH_INFO_PEER carries a whole struct ifinfomsg followed by the peer's IFLA_* attributes.
  const peer = w.forkAttr(VETH_INFO_PEER);
  writeIfinfomsg(w);
  w.attrString(IFLA_IFNAME, s.peer.name);
  w.attr(IFLA_ADDRESS, macToBytes(s.peer.mac));
  if (s.mtu !== undefined) w.attrU32(IFLA_MTU, s.mtu);
  w.attrU32(IFLA_NET_NS_FD, s.peer.netnsFd);
  w.join(peer);
  w.join(data);
  w.join(li);
  return w.finish();
}

/** RTM_NEWLINK payload for `ip link add NAME type KIND` with no other attribute (a probe). */
export function encodeLinkKindProbe(name: string, kind: string): Buffer {
  const w = new AttrWriter(64);
  writeIfinfomsg(w);
  w.attrString(IFLA_IFNAME, name);
  const li = w.forkAttr(IFLA_LINKINFO);
  w.attrString(IFLA_INFO_KIND, kind);
  w.join(li);
  return w.finish();
}

/** RTM_NEWADDR payload (ifaddrmsg + IFA_LOCAL/IFA_ADDRESS + IFA_FLAGS). */
export function encodeAddress(a: AddressSpec): Buffer {
  const fam = familyOf(a.address);
  const bytes = ipToBytes(a.address);
  const flags = a.nodad ? IFA_F_NODAD : 0;
  const w = new AttrWriter(64);
  w.u8(fam === 4 ? AF_INET : AF_INET6).u8(a.prefixLen).u8(flags).u8(RT_SCOPE_UNIVERSE).u32(a.ifindex);
  if (fam === 4) w.attr(IFA_LOCAL, bytes);
  w.attr(IFA_ADDRESS, bytes);
  w.attrU32(IFA_FLAGS, flags);
  return w.finish();
}

const decodeAll = <T>(msgs: RawMessage[], fn: (b: Buffer) => T | null): T[] => msgs.map((m) => fn(m.payload)).filter((v): v is T => v !== null);

/**
 * The link, address and route calls of one namespace over one request socket: what plumbing an
 * endpoint needs on the host side (create the veth) and inside the workload (addresses, routes).
 */
export class LinkOps {
  private constructor(private readonly ch: NetlinkChannel) {}

  /** Over a socket in the caller's namespace. */
  static here(): LinkOps {
    return new LinkOps(new NetlinkChannel());
  }

  /** Over a socket in the namespace at `path` (EINVAL from setns: not a network namespace). */
  static in(path: string): LinkOps {
    return inNetns(path, () => new LinkOps(new NetlinkChannel()));
  }

  createVeth(s: VethSpec): Promise<void> {
    return this.ch.write(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, encodeVethCreate(s), 'newLink');
  }

  /**
   * Whether this kernel can create links of `kind` (e.g. "netkit"): creates `name` and deletes it
   * again. null when it can; otherwise the errno name (EOPNOTSUPP: the kind is unknown here).
   */
  async probeLinkKind(name: string, kind: string): Promise<string | null> {
    try {
      await this.ch.write(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, encodeLinkKindProbe(name, kind), 'newLink');
    } catch (e) {
      return isKernelError(e) ? e.code : String(e);
    }
    const made = await this.getLink(name);
    if (made) await this.deleteLink(made.index);
    return null;
  }

  async getLink(nameOrIndex: string | number): Promise<LinkInfo | null> {
    try {
      return decodeAll(await this.ch.get(RTM_GETLINK, encodeLinkGet(nameOrIndex), 'getLink'), decodeLink)[0] ?? null;
    } catch (e) {
      if (isKernelError(e, 'ENODEV')) return null;
      throw e;
    }
  }

  async listLinks(): Promise<LinkInfo[]> {
    return decodeAll(await this.ch.dump(RTM_GETLINK, encodeLinkDumpRequest(), 'getLinks'), decodeLink);
  }

  setLinkUp(index: number): Promise<void> {
    return this.ch.write(RTM_SETLINK, 0, encodeLinkSet(index, { up: true }), 'setLink');
  }

  deleteLink(index: number): Promise<void> {
    return this.ch.write(RTM_DELLINK, 0, encodeLinkDelete(index), 'delLink');
  }

  /** `ip addr replace`: the same address again is not an error. */
  replaceAddress(a: AddressSpec): Promise<void> {
    return this.ch.write(RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE, encodeAddress(a), 'newAddr');
  }

  async listAddresses(family?: Family): Promise<AddressInfo[]> {
    return decodeAll(await this.ch.dump(RTM_GETADDR, encodeAddrDumpRequest(family), 'getAddresses'), decodeAddress);
  }

  replaceRoute(r: Route): Promise<void> {
    return this.ch.write(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, encodeRoute(r), 'newRoute');
  }

  close(): void {
    this.ch.close();
  }
}
