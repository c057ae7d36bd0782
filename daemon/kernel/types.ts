// The kernel port: the few rtnetlink operations nrd needs (routes with nrd's rtm_protocol, the
// VXLAN link, permanent neighbours, AF_BRIDGE FDB entries, change notifications) plus sysctls, as
// plain data. Implemented over netlink by netlink-port.ts and in memory by test/lib/fake-kernel.ts.
// Kernel interfaces: rtnetlink(7) RTM_{NEW,DEL,GET}{ROUTE,LINK,NEIGH,ADDR}, /proc/sys.
import type { Family } from './addr.js';
import { ROUTING_MARK } from './owners.js';

export type { Family } from './addr.js';

/** nrd's rtm_protocol (named `nrd` through /etc/iproute2/rt_protos.d/nrd.conf). */
export const NRD_PROTOCOL = ROUTING_MARK.protocol;
export const RT_TABLE_MAIN = 254;

export type RouteType = 'unicast' | 'blackhole' | 'unreachable' | 'prohibit' | 'local' | 'broadcast' | 'other';

export interface NextHop {
  /** Gateway address; absent for a route straight onto a device. */
  gateway?: string;
  /** Output interface; absent in a request means "let the kernel resolve the gateway". */
  ifindex?: number;
  /** RTNH_F_ONLINK: the gateway is on the link even if no prefix says so (VXLAN VTEP addresses). */
  onlink?: boolean;
  /** ECMP weight, 1..256 (rtnh_hops + 1). Default 1. */
  weight?: number;
}

export interface Route {
  family: Family;
  /** Canonical prefix text. */
  dst: string;
  table: number;
  protocol: number;
  type: RouteType;
  /** RTA_PRIORITY (the `metric` of ip-route). Read back as the kernel's value (IPv6 default 1024). */
  metric?: number;
  /** RTAX_MTU inside RTA_METRICS. */
  mtu?: number;
  /** Empty for blackhole/unreachable; one entry for a plain route; more for ECMP (RTA_MULTIPATH). */
  nextHops: NextHop[];
}

/** What identifies a route to the kernel for replace/delete: table, prefix, metric (and family). */
export function routeKey(r: Pick<Route, 'family' | 'dst' | 'table' | 'metric'>): string {
  return `${r.table}|${r.dst}|${r.metric ?? defaultMetric(r.family)}`;
}

export function defaultMetric(family: Family): number {
  return family === 6 ? 1024 : 0;
}

export interface VxlanInfo {
  vni: number;
  /** UDP destination port (IANA 4789). */
  port: number;
  /** Local VTEP (underlay) address. */
  local?: string;
  learning: boolean;
  /** Underlay device index (IFLA_VXLAN_LINK), if bound. */
  link?: number;
}

export interface LinkInfo {
  index: number;
  name: string;
  mtu: number;
  /** Hardware address, lower-case colon form, when the link has one. */
  mac?: string;
  /** IFF_UP. */
  up: boolean;
  /** IFLA_INFO_KIND ("vxlan", "veth", "bridge", …) for virtual links. */
  kind?: string;
  vxlan?: VxlanInfo;
}

export interface VxlanSpec {
  name: string;
  vni: number;
  port: number;
  local: string;
  mtu: number;
  /** Underlay device to bind to (IFLA_VXLAN_LINK). */
  underlayIndex?: number;
  /** Fixed VTEP MAC; the kernel picks a random one when absent. */
  mac?: string;
}

export interface AddressInfo {
  ifindex: number;
  family: Family;
  address: string;
  prefixLen: number;
}

/** A neighbour (ARP/ND) entry; nrd writes only NUD_PERMANENT ones. */
export interface Neighbour {
  ifindex: number;
  family: Family;
  ip: string;
  /** Absent for incomplete/failed entries. */
  mac?: string;
  permanent: boolean;
}

/** An AF_BRIDGE FDB entry on a VXLAN device (NTF_SELF): frames for `mac` go to underlay `dst`. */
export interface FdbEntry {
  ifindex: number;
  mac: string;
  /** Remote VTEP underlay address (NDA_DST). */
  dst?: string;
  permanent: boolean;
  /** NTF_SELF: the entry belongs to the device itself, not to a bridge master. */
  self: boolean;
}

export type KernelEvent =
  | { kind: 'route'; op: 'new' | 'del'; route: Route }
  | { kind: 'link'; op: 'new' | 'del'; link: LinkInfo }
  /** RTNLGRP_NEIGH, AF_INET/AF_INET6: a neighbour entry appeared, changed or went away. */
  | { kind: 'neigh'; op: 'new' | 'del'; neighbour: Neighbour }
  /** RTNLGRP_NEIGH, AF_BRIDGE: an FDB entry appeared, changed or went away. */
  | { kind: 'fdb'; op: 'new' | 'del'; fdb: FdbEntry }
  /** RTNLGRP_IPV4_IFADDR / RTNLGRP_IPV6_IFADDR: an address was added to or removed from a link. */
  | { kind: 'address'; op: 'new' | 'del'; address: AddressInfo }
  /** Notifications were lost (ENOBUFS): anything may have changed; resync everything. */
  | { kind: 'overflow' };

/** One failed item of a batch write: its index in the request and the errno. */
export interface BatchFailure {
  index: number;
  error: KernelError;
}

export type RouteSelector = Pick<Route, 'family' | 'dst' | 'table' | 'metric' | 'protocol' | 'type'>;

export interface Subscription {
  close(): void;
}

/**
 * The narrow port. Every write has replace semantics unless named otherwise; every failure is a
 * KernelError carrying the errno name so callers can treat EEXIST/ENOENT as outcomes. Calls may be
 * issued concurrently: the netlink implementation pipelines them (many requests per datagram).
 */
export interface KernelPort {
  /** Routes of one family and table, all protocols (callers filter by ownership). */
  listRoutes(family: Family, table: number): Promise<Route[]>;
  /** RTM_NEWROUTE with NLM_F_CREATE|NLM_F_REPLACE. */
  replaceRoute(route: Route): Promise<void>;
  /** RTM_DELROUTE matching table, prefix, metric and protocol (never another protocol's route). */
  deleteRoute(route: RouteSelector): Promise<void>;
  /**
   * replaceRoute for many routes at once: encoded into datagrams of up to 16 KiB (channel.ts
   * WRITE_DATAGRAM_MAX) with one ACK each and one promise for the batch (what makes a 100k-route
   * table fast). Resolves with the routes that failed (empty: all applied); never rejects.
   */
  replaceRoutes(routes: readonly Route[]): Promise<BatchFailure[]>;
  /** deleteRoute for many routes at once (as replaceRoutes). */
  deleteRoutes(routes: readonly RouteSelector[]): Promise<BatchFailure[]>;

  listLinks(): Promise<LinkInfo[]>;
  /** The link with that name or index, or null. */
  getLink(nameOrIndex: string | number): Promise<LinkInfo | null>;
  createVxlan(spec: VxlanSpec): Promise<LinkInfo>;
  deleteLink(index: number): Promise<void>;
  setLinkUp(index: number): Promise<void>;
  setLinkMtu(index: number, mtu: number): Promise<void>;
  listAddresses(family?: Family): Promise<AddressInfo[]>;

  listNeighbours(family: Family, ifindex?: number): Promise<Neighbour[]>;
  /** A permanent neighbour, NLM_F_CREATE|NLM_F_REPLACE. */
  replaceNeighbour(n: { ifindex: number; ip: string; mac: string }): Promise<void>;
  deleteNeighbour(n: { ifindex: number; ip: string }): Promise<void>;

  listFdb(ifindex?: number): Promise<FdbEntry[]>;
  /** `bridge fdb append … self permanent`: adds another dst for the MAC (BUM flooding lists). */
  appendFdb(e: { ifindex: number; mac: string; dst: string }): Promise<void>;
  /** `bridge fdb replace … self permanent`. */
  replaceFdb(e: { ifindex: number; mac: string; dst: string }): Promise<void>;
  deleteFdb(e: { ifindex: number; mac: string; dst?: string }): Promise<void>;

  /** A sysctl of the current network namespace, e.g. 'net.ipv4.ip_forward'. */
  readSysctl(key: string): Promise<string>;
  writeSysctl(key: string, value: string | number): Promise<void>;

  /** Route (IPv4 and IPv6), link, neighbour and FDB change notifications. */
  subscribe(handler: (e: KernelEvent) => void): Subscription;

  /**
   * Optional: while muted (calls nest), route notifications of this rtm_protocol are dropped
   * unread — the echoes of a bulk write, which its writer replaces by a full read-back afterwards.
   */
  muteRouteEvents?(protocol: number, muted: boolean): void;
  close(): void;
}

/** A failed kernel call, errno-transparent: callers test the code, not a message. */
export class KernelError extends Error {
  constructor(
    readonly code: string,
    readonly errno: number,
    readonly call: string,
    detail?: string,
  ) {
    super(`${call}: ${code}${detail ? ` (${detail})` : ''}`);
    this.name = 'KernelError';
  }
}

export function isKernelError(e: unknown, code?: string): e is KernelError {
  return e instanceof KernelError && (code === undefined || e.code === code);
}
