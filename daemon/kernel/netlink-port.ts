// KernelPort over rtnetlink (npm `netlink` sockets + our codec): routes, the VXLAN link, permanent
// neighbours, AF_BRIDGE FDB entries, addresses, sysctls and change notifications
// (RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE). Acts on the caller's network namespace.
import { NetlinkChannel } from './channel.js';
import { RouteWriter } from './route-writer.js';
import {
  AF_BRIDGE,
  AF_INET,
  AF_INET6,
  NLM_F_APPEND,
  NLM_F_CREATE,
  NLM_F_EXCL,
  NLM_F_REPLACE,
  RTM_DELADDR,
  RTM_DELLINK,
  RTM_DELNEIGH,
  RTM_DELROUTE,
  RTM_GETADDR,
  RTM_GETLINK,
  RTM_GETNEIGH,
  RTM_GETROUTE,
  RTM_NEWADDR,
  RTM_NEWLINK,
  RTM_NEWNEIGH,
  RTM_NEWROUTE,
  RTM_SETLINK,
  RTNLGRP_IPV4_IFADDR,
  RTNLGRP_IPV4_ROUTE,
  RTNLGRP_IPV6_IFADDR,
  RTNLGRP_IPV6_ROUTE,
  RTNLGRP_LINK,
  RTNLGRP_NEIGH,
  decodeAddress,
  decodeFdb,
  decodeLink,
  decodeNeighbour,
  decodeRoute,
  encodeAddrDumpRequest,
  encodeFdb,
  encodeLinkDelete,
  encodeLinkDumpRequest,
  encodeLinkGet,
  encodeLinkSet,
  encodeNeighDumpRequest,
  encodeNeighbour,
  encodeRoute,
  encodeRouteDelete,
  encodeRouteDumpRequest,
  encodeVxlanCreate,
  routeMaxBytes,
  writeRoute,
  type RawMessage,
} from './codec.js';
import { readSysctl, writeSysctl } from './sysctl.js';
import {
  isKernelError,
  type AddressInfo,
  type BatchFailure,
  type RouteSelector,
  type Family,
  type FdbEntry,
  type KernelEvent,
  type KernelPort,
  type LinkInfo,
  type Neighbour,
  type Route,
  type Subscription,
  type VxlanSpec,
} from './types.js';

/** Receive buffer of the notification socket (charged only while events are queued). */
const EVENT_RCVBUF = 64 * 1024 * 1024;

/** Dumped routes decoded per turn of the event loop. */
const DECODE_CHUNK = 8192;
const EMPTY_MESSAGE: RawMessage = { type: 0, flags: 0, seq: 0, port: 0, payload: Buffer.alloc(0) };

const decodeAll = <T>(msgs: RawMessage[], fn: (b: Buffer) => T | null): T[] => {
  const out: T[] = [];
  for (const m of msgs) {
    const v = fn(m.payload);
    if (v !== null) out.push(v);
  }
  return out;
};

const writeNew = (b: Buffer, off: number, r: Route): number => writeRoute(b, off, r);
const writeDel = (b: Buffer, off: number, r: RouteSelector): number => writeRoute(b, off, { ...r, nextHops: [] }, true);
const delMaxBytes = (): number => routeMaxBytes({ nextHops: [] });

export class NetlinkKernelPort implements KernelPort {
  private readonly ch = new NetlinkChannel();
  private events: NetlinkChannel | null = null;
  private readonly handlers = new Set<(e: KernelEvent) => void>();
  /** Mute counts by rtm_protocol (see muteRouteEvents). */
  private readonly muted = new Map<number, number>();
  /** Route batches go through a writer thread (made at the first batch; null: it could not start). */
  private writer: RouteWriter | null | undefined;

  /** Datagrams/messages sent by the request channel and the route writer (for the benchmark). */
  get stats(): { datagrams: number; messages: number } {
    const w = this.writer?.stats ?? { datagrams: 0, messages: 0 };
    return { datagrams: this.ch.stats.datagrams + w.datagrams, messages: this.ch.stats.messages + w.messages };
  }

  /**
   * The channel for route batches: the writer thread (the kernel applies a batch inside sendmsg,
   * seconds for a million routes, which must not be the event loop's time), or this thread's
   * channel when the writer cannot start or has failed (a failed batch is retried by the caller).
   */
  private batchChannel(): Pick<NetlinkChannel, 'writeMany'> {
    if (this.writer === undefined) {
      try {
        this.writer = new RouteWriter(this.ch.datagramLimit);
      } catch {
        this.writer = null;
      }
    }
    return this.writer?.usable ? this.writer : this.ch;
  }

  async listRoutes(family: Family, table: number): Promise<Route[]> {
    const msgs = await this.ch.dump(RTM_GETROUTE, encodeRouteDumpRequest(family), 'getRoutes');
    // Decoded a chunk per turn of the event loop: a million routes decoded at once would hold it
    // (BGP keepalives, UPDATEs) for a second or more on every full resync.
    const out: Route[] = [];
    for (let i = 0; i < msgs.length; i++) {
      if (i > 0 && i % DECODE_CHUNK === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      const r = decodeRoute(msgs[i]!.payload);
      if (r !== null && r.family === family && r.table === table) out.push(r);
      // Drop the raw message as soon as it is decoded (both lists of a million would be alive).
      msgs[i] = EMPTY_MESSAGE;
    }
    return out;
  }

  replaceRoute(route: Route): Promise<void> {
    return this.ch.write(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, encodeRoute(route), 'newRoute');
  }

  deleteRoute(route: RouteSelector): Promise<void> {
    return this.ch.write(RTM_DELROUTE, 0, encodeRouteDelete(route), 'delRoute');
  }

  replaceRoutes(routes: readonly Route[]): Promise<BatchFailure[]> {
    return this.batchChannel().writeMany(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, routes, writeNew, routeMaxBytes, 'newRoute');
  }

  deleteRoutes(routes: readonly RouteSelector[]): Promise<BatchFailure[]> {
    return this.batchChannel().writeMany(RTM_DELROUTE, 0, routes, writeDel, delMaxBytes, 'delRoute');
  }

  async listLinks(): Promise<LinkInfo[]> {
    return decodeAll(await this.ch.dump(RTM_GETLINK, encodeLinkDumpRequest(), 'getLinks'), decodeLink);
  }

  async getLink(nameOrIndex: string | number): Promise<LinkInfo | null> {
    try {
      const msgs = await this.ch.get(RTM_GETLINK, encodeLinkGet(nameOrIndex), 'getLink');
      return decodeAll(msgs, decodeLink)[0] ?? null;
    } catch (e) {
      if (isKernelError(e, 'ENODEV')) return null;
      throw e;
    }
  }

  async createVxlan(spec: VxlanSpec): Promise<LinkInfo> {
    await this.ch.write(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, encodeVxlanCreate(spec), 'newLink');
    const link = await this.getLink(spec.name);
    if (!link) throw new Error(`vxlan ${spec.name} vanished right after creation`);
    return link;
  }

  deleteLink(index: number): Promise<void> {
    return this.ch.write(RTM_DELLINK, 0, encodeLinkDelete(index), 'delLink');
  }

  setLinkUp(index: number): Promise<void> {
    return this.ch.write(RTM_SETLINK, 0, encodeLinkSet(index, { up: true }), 'setLink');
  }

  setLinkMtu(index: number, mtu: number): Promise<void> {
    return this.ch.write(RTM_SETLINK, 0, encodeLinkSet(index, { mtu }), 'setLink');
  }

  async listAddresses(family?: Family): Promise<AddressInfo[]> {
    return decodeAll(await this.ch.dump(RTM_GETADDR, encodeAddrDumpRequest(family), 'getAddresses'), decodeAddress);
  }

  async listNeighbours(family: Family, ifindex?: number): Promise<Neighbour[]> {
    const msgs = await this.ch.dump(RTM_GETNEIGH, encodeNeighDumpRequest(family === 4 ? AF_INET : AF_INET6), 'getNeighbors');
    return decodeAll(msgs, decodeNeighbour).filter((n) => n.family === family && (ifindex === undefined || n.ifindex === ifindex));
  }

  replaceNeighbour(n: { ifindex: number; ip: string; mac: string }): Promise<void> {
    return this.ch.write(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, encodeNeighbour(n), 'newNeighbor');
  }

  deleteNeighbour(n: { ifindex: number; ip: string }): Promise<void> {
    return this.ch.write(RTM_DELNEIGH, 0, encodeNeighbour(n), 'delNeighbor');
  }

  async listFdb(ifindex?: number): Promise<FdbEntry[]> {
    const msgs = await this.ch.dump(RTM_GETNEIGH, encodeNeighDumpRequest(AF_BRIDGE), 'getFdb');
    return decodeAll(msgs, decodeFdb).filter((e) => ifindex === undefined || e.ifindex === ifindex);
  }

  appendFdb(e: { ifindex: number; mac: string; dst: string }): Promise<void> {
    return this.ch.write(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_APPEND, encodeFdb(e), 'appendFdb');
  }

  replaceFdb(e: { ifindex: number; mac: string; dst: string }): Promise<void> {
    return this.ch.write(RTM_NEWNEIGH, NLM_F_CREATE | NLM_F_REPLACE, encodeFdb(e), 'replaceFdb');
  }

  deleteFdb(e: { ifindex: number; mac: string; dst?: string }): Promise<void> {
    return this.ch.write(RTM_DELNEIGH, 0, encodeFdb(e), 'delFdb');
  }

  readSysctl(key: string): Promise<string> {
    return readSysctl(key);
  }

  writeSysctl(key: string, value: string | number): Promise<void> {
    return writeSysctl(key, value);
  }

  subscribe(handler: (e: KernelEvent) => void): Subscription {
    this.handlers.add(handler);
    if (!this.events) {
      this.events = new NetlinkChannel({
        groups: [RTNLGRP_LINK, RTNLGRP_NEIGH, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV6_ROUTE, RTNLGRP_IPV4_IFADDR, RTNLGRP_IPV6_IFADDR],
        onMessage: (m) => this.notify(m),
        onError: () => this.emit({ kind: 'overflow' }),
        // Every route nrd writes comes back as a notification: a 100k-route batch overflows any
        // default buffer. NETLINK_NO_ENOBUFS keeps the process alive (netlink@0.3.0 aborts on
        // ENOBUFS); the big buffer keeps most events; the reconciler resyncs after bulk writes.
        overflowSafeRcvbuf: EVENT_RCVBUF,
      });
    }
    return {
      close: () => {
        this.handlers.delete(handler);
        if (this.handlers.size === 0 && this.events) {
          this.events.close();
          this.events = null;
        }
      },
    };
  }

  muteRouteEvents(protocol: number, muted: boolean): void {
    const n = (this.muted.get(protocol) ?? 0) + (muted ? 1 : -1);
    if (n > 0) this.muted.set(protocol, n);
    else this.muted.delete(protocol);
  }

  private notify(m: RawMessage): void {
    if (m.type === RTM_NEWROUTE || m.type === RTM_DELROUTE) {
      // rtmsg.rtm_protocol is byte 5: a muted protocol's echo is dropped before any decoding (a
      // million of them follow a million-route write, each a Route and an attribute map otherwise).
      if (this.muted.size && m.payload.length > 5 && this.muted.has(m.payload[5]!)) return;
      const route = decodeRoute(m.payload);
      if (route) this.emit({ kind: 'route', op: m.type === RTM_NEWROUTE ? 'new' : 'del', route });
    } else if (m.type === RTM_NEWNEIGH || m.type === RTM_DELNEIGH) {
      const op = m.type === RTM_NEWNEIGH ? 'new' : 'del';
      if (m.payload.length > 0 && m.payload[0] === AF_BRIDGE) {
        const fdb = decodeFdb(m.payload);
        if (fdb) this.emit({ kind: 'fdb', op, fdb });
      } else {
        const neighbour = decodeNeighbour(m.payload);
        if (neighbour) this.emit({ kind: 'neigh', op, neighbour });
      }
    } else if (m.type === RTM_NEWLINK || m.type === RTM_DELLINK) {
      const link = decodeLink(m.payload);
      if (link) this.emit({ kind: 'link', op: m.type === RTM_NEWLINK ? 'new' : 'del', link });
    } else if (m.type === RTM_NEWADDR || m.type === RTM_DELADDR) {
      const address = decodeAddress(m.payload);
      if (address) this.emit({ kind: 'address', op: m.type === RTM_NEWADDR ? 'new' : 'del', address });
    }
  }

  private emit(e: KernelEvent): void {
    for (const h of [...this.handlers]) h(e);
  }

  close(): void {
    this.writer?.close();
    this.ch.close();
    this.events?.close();
    this.events = null;
    this.handlers.clear();
  }
}
