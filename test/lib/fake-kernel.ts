// Stateful in-memory fake of the KernelPort (daemon/kernel/types.ts) for unit tests: links with
// addresses, routes keyed like the kernel (table, prefix, metric) with NLM_F_REPLACE semantics that
// ignore the protocol (as IPv4 does), deletes that honour it (ESRCH otherwise), gateway checks
// (ENETUNREACH unless on a connected subnet or onlink), neighbours, FDB entries, sysctls, and
// change notifications (routes, links, neighbours, FDB). Batch writes (replaceRoutes/deleteRoutes)
// apply item by item and report failures by index, like the netlink port. Every write is logged so tests can assert "nothing was written".
import type { Clock } from '../../daemon/lib/clock.js';
import { errnoNumber } from '../../daemon/lib/errno.js';
import { canonicalMac, canonicalPrefix, familyOf, prefixContains, type Family } from '../../daemon/kernel/addr.js';
import {
  KernelError,
  defaultMetric,
  type BatchFailure,
  type RouteSelector,
  routeKey,
  type AddressInfo,
  type FdbEntry,
  type KernelEvent,
  type KernelPort,
  type LinkInfo,
  type Neighbour,
  type Route,
  type Subscription,
  type VxlanSpec,
} from '../../daemon/kernel/types.js';

export interface FakeWrite {
  call: string;
  key: string;
}

export class FakeKernel implements KernelPort {
  private nextIndex = 1;
  readonly links = new Map<number, LinkInfo>();
  readonly addresses: AddressInfo[] = [];
  /** Routes by `${family}|${routeKey}`. */
  readonly routeTable = new Map<string, Route>();
  readonly neighbours = new Map<string, Neighbour>();
  readonly fdb: FdbEntry[] = [];
  readonly sysctls = new Map<string, string>([['net.ipv4.ip_forward', '0']]);
  readonly writes: FakeWrite[] = [];
  private readonly handlers = new Set<(e: KernelEvent) => void>();
  /** Make the next call named `call` fail with `code` (one shot each). */
  readonly failNext = new Map<string, string>();
  closed = false;

  constructor() {
    this.addLink({ name: 'lo', mtu: 65536, up: true });
  }

  // ---- test set-up helpers (not part of the port)

  addLink(l: Omit<LinkInfo, 'index'> & { index?: number }): LinkInfo {
    const link: LinkInfo = { ...l, index: l.index ?? this.nextIndex++ };
    this.nextIndex = Math.max(this.nextIndex, link.index + 1);
    this.links.set(link.index, link);
    return link;
  }

  addAddress(ifname: string, cidr: string): void {
    const link = this.byName(ifname);
    if (!link) throw new Error(`no link ${ifname}`);
    const [address, len] = cidr.split('/');
    const a: AddressInfo = { ifindex: link.index, family: familyOf(address!), address: address!, prefixLen: Number(len) };
    this.addresses.push(a);
    this.emit({ kind: 'address', op: 'new', address: { ...a } });
  }

  removeAddress(ifname: string, cidr: string): void {
    const link = this.byName(ifname);
    const [address, len] = cidr.split('/');
    const i = this.addresses.findIndex((a) => a.ifindex === link?.index && a.address === address && a.prefixLen === Number(len));
    if (i < 0) throw new Error(`no address ${cidr} on ${ifname}`);
    const [a] = this.addresses.splice(i, 1);
    this.emit({ kind: 'address', op: 'del', address: a! });
  }

  /** Routes with nrd's protocol (or all), sorted, as comparable plain data. */
  dumpRoutes(protocol?: number): Route[] {
    return [...this.routeTable.values()].filter((r) => protocol === undefined || r.protocol === protocol).sort((a, b) => (a.dst < b.dst ? -1 : a.dst > b.dst ? 1 : 0));
  }

  /** Simulate `ip route del` by someone else: removed and announced. */
  removeRouteByHand(dst: string, table = 254): boolean {
    for (const [k, r] of this.routeTable) {
      if (r.dst === canonicalPrefix(dst) && r.table === table) {
        this.routeTable.delete(k);
        this.emit({ kind: 'route', op: 'del', route: r });
        return true;
      }
    }
    return false;
  }

  /** Simulate `ip neigh del` by someone else: removed and announced (RTM_DELNEIGH). */
  removeNeighbourByHand(ifindex: number, ip: string): boolean {
    const k = `${ifindex}|${ip}`;
    const n = this.neighbours.get(k);
    if (!n) return false;
    this.neighbours.delete(k);
    this.emit({ kind: 'neigh', op: 'del', neighbour: n });
    return true;
  }

  /** Simulate `bridge fdb del` by someone else: removed and announced (RTM_DELNEIGH, AF_BRIDGE). */
  removeFdbByHand(ifindex: number, mac: string): boolean {
    const i = this.fdb.findIndex((x) => x.ifindex === ifindex && x.mac === canonicalMac(mac));
    if (i < 0) return false;
    const [e] = this.fdb.splice(i, 1);
    this.emit({ kind: 'fdb', op: 'del', fdb: e! });
    return true;
  }

  /** Batch calls seen (replaceRoutes/deleteRoutes) with their sizes. */
  readonly batches: Array<{ call: string; size: number }> = [];

  /** Insert a route as another program would (no write log). */
  injectRoute(r: Route): void {
    this.routeTable.set(`${r.family}|${routeKey(r)}`, structuredClone(r));
  }

  byName(name: string): LinkInfo | undefined {
    for (const l of this.links.values()) if (l.name === name) return l;
    return undefined;
  }

  private fail(call: string, code: string, detail?: string): never {
    throw new KernelError(code, errnoNumber(code) ?? 5, call, detail);
  }

  private check(call: string): void {
    if (this.closed) this.fail(call, 'EIO', 'closed');
    const code = this.failNext.get(call);
    if (code) {
      this.failNext.delete(call);
      this.fail(call, code, 'injected');
    }
  }

  private log(call: string, key: string): void {
    this.writes.push({ call, key });
  }

  private emit(e: KernelEvent): void {
    for (const h of [...this.handlers]) h(structuredClone(e));
  }

  // ---- routes

  async listRoutes(family: Family, table: number): Promise<Route[]> {
    this.check('getRoutes');
    return [...this.routeTable.values()].filter((r) => r.family === family && r.table === table).map((r) => structuredClone(r));
  }

  private connected(gateway: string): number | undefined {
    for (const a of this.addresses) {
      if (a.family === familyOf(gateway) && prefixContains(`${a.address}/${a.prefixLen}`, gateway)) return a.ifindex;
    }
    return undefined;
  }

  async replaceRoute(route: Route): Promise<void> {
    this.check('newRoute');
    const r: Route = structuredClone({ ...route, dst: canonicalPrefix(route.dst) });
    if (r.metric === undefined) r.metric = defaultMetric(r.family);
    for (const nh of r.nextHops) {
      if (nh.ifindex !== undefined && !this.links.has(nh.ifindex)) this.fail('newRoute', 'ENODEV');
      if (nh.gateway && !nh.onlink) {
        const ifi = this.connected(nh.gateway);
        if (ifi === undefined || (nh.ifindex !== undefined && nh.ifindex !== ifi)) this.fail('newRoute', 'ENETUNREACH', nh.gateway);
        nh.ifindex = ifi;
      }
      if (nh.gateway && nh.onlink && nh.ifindex === undefined) this.fail('newRoute', 'EINVAL', 'onlink without device');
      if (r.nextHops.length > 1) nh.weight = nh.weight ?? 1;
    }
    // Like IPv4's NLM_F_REPLACE: the route with that table/prefix/metric is replaced, whoever owns it.
    const k = `${r.family}|${routeKey(r)}`;
    this.routeTable.set(k, r);
    this.log('newRoute', k);
    this.emit({ kind: 'route', op: 'new', route: r });
  }

  async deleteRoute(route: RouteSelector): Promise<void> {
    this.check('delRoute');
    const k = `${route.family}|${routeKey({ ...route, dst: canonicalPrefix(route.dst) })}`;
    const have = this.routeTable.get(k);
    if (!have || have.protocol !== route.protocol) this.fail('delRoute', 'ESRCH', route.dst);
    this.routeTable.delete(k);
    this.log('delRoute', k);
    this.emit({ kind: 'route', op: 'del', route: have });
  }

  async replaceRoutes(routes: readonly Route[]): Promise<BatchFailure[]> {
    this.batches.push({ call: 'replaceRoutes', size: routes.length });
    return this.each(routes, (r) => this.replaceRoute(r));
  }

  async deleteRoutes(routes: readonly RouteSelector[]): Promise<BatchFailure[]> {
    this.batches.push({ call: 'deleteRoutes', size: routes.length });
    return this.each(routes, (r) => this.deleteRoute(r));
  }

  private async each<T>(items: readonly T[], fn: (x: T) => Promise<void>): Promise<BatchFailure[]> {
    const out: BatchFailure[] = [];
    for (let index = 0; index < items.length; index++) {
      try {
        await fn(items[index]!);
      } catch (e) {
        if (!(e instanceof KernelError)) throw e;
        out.push({ index, error: e });
      }
    }
    return out;
  }

  // ---- links

  async listLinks(): Promise<LinkInfo[]> {
    this.check('getLinks');
    return [...this.links.values()].map((l) => structuredClone(l));
  }

  async getLink(nameOrIndex: string | number): Promise<LinkInfo | null> {
    this.check('getLink');
    const l = typeof nameOrIndex === 'number' ? this.links.get(nameOrIndex) : this.byName(nameOrIndex);
    return l ? structuredClone(l) : null;
  }

  async createVxlan(spec: VxlanSpec): Promise<LinkInfo> {
    this.check('newLink');
    if (this.byName(spec.name)) this.fail('newLink', 'EEXIST', spec.name);
    const mac = spec.mac ? canonicalMac(spec.mac) : `02:00:00:${[1, 2, 3].map(() => Math.floor(Math.random() * 256).toString(16).padStart(2, '0')).join(':')}`;
    const link = this.addLink({
      name: spec.name,
      mtu: spec.mtu,
      up: false,
      mac,
      kind: 'vxlan',
      vxlan: { vni: spec.vni, port: spec.port, local: spec.local, learning: false, ...(spec.underlayIndex ? { link: spec.underlayIndex } : {}) },
    });
    this.log('newLink', spec.name);
    this.emit({ kind: 'link', op: 'new', link });
    return structuredClone(link);
  }

  async deleteLink(index: number): Promise<void> {
    this.check('delLink');
    const l = this.links.get(index);
    if (!l) this.fail('delLink', 'ENODEV');
    this.links.delete(index);
    // The kernel drops everything that hung off the device.
    for (const [k, r] of this.routeTable) if (r.nextHops.some((n) => n.ifindex === index)) this.routeTable.delete(k);
    for (const [k, n] of this.neighbours) if (n.ifindex === index) this.neighbours.delete(k);
    for (let i = this.fdb.length - 1; i >= 0; i--) if (this.fdb[i]!.ifindex === index) this.fdb.splice(i, 1);
    this.log('delLink', l.name);
    this.emit({ kind: 'link', op: 'del', link: l });
  }

  async setLinkUp(index: number): Promise<void> {
    this.check('setLink');
    const l = this.links.get(index);
    if (!l) this.fail('setLink', 'ENODEV');
    l.up = true;
    this.log('setLink', `${l.name} up`);
    this.emit({ kind: 'link', op: 'new', link: l });
  }

  async setLinkMtu(index: number, mtu: number): Promise<void> {
    this.check('setLink');
    const l = this.links.get(index);
    if (!l) this.fail('setLink', 'ENODEV');
    l.mtu = mtu;
    this.log('setLink', `${l.name} mtu`);
    this.emit({ kind: 'link', op: 'new', link: l });
  }

  async listAddresses(family?: Family): Promise<AddressInfo[]> {
    return this.addresses.filter((a) => family === undefined || a.family === family).map((a) => ({ ...a }));
  }

  // ---- neighbours

  async listNeighbours(family: Family, ifindex?: number): Promise<Neighbour[]> {
    this.check('getNeighbors');
    return [...this.neighbours.values()].filter((n) => n.family === family && (ifindex === undefined || n.ifindex === ifindex)).map((n) => ({ ...n }));
  }

  async replaceNeighbour(n: { ifindex: number; ip: string; mac: string }): Promise<void> {
    this.check('newNeighbor');
    if (!this.links.has(n.ifindex)) this.fail('newNeighbor', 'ENODEV');
    const k = `${n.ifindex}|${n.ip}`;
    const entry: Neighbour = { ifindex: n.ifindex, ip: n.ip, mac: canonicalMac(n.mac), family: familyOf(n.ip), permanent: true };
    this.neighbours.set(k, entry);
    this.log('newNeighbor', k);
    this.emit({ kind: 'neigh', op: 'new', neighbour: entry });
  }

  async deleteNeighbour(n: { ifindex: number; ip: string }): Promise<void> {
    this.check('delNeighbor');
    const k = `${n.ifindex}|${n.ip}`;
    const had = this.neighbours.get(k);
    if (!had || !this.neighbours.delete(k)) this.fail('delNeighbor', 'ENOENT');
    this.log('delNeighbor', k);
    this.emit({ kind: 'neigh', op: 'del', neighbour: had });
  }

  // ---- FDB

  async listFdb(ifindex?: number): Promise<FdbEntry[]> {
    this.check('getFdb');
    return this.fdb.filter((e) => ifindex === undefined || e.ifindex === ifindex).map((e) => ({ ...e }));
  }

  async appendFdb(e: { ifindex: number; mac: string; dst: string }): Promise<void> {
    this.check('appendFdb');
    if (!this.links.has(e.ifindex)) this.fail('appendFdb', 'ENODEV');
    const mac = canonicalMac(e.mac);
    if (this.fdb.some((x) => x.ifindex === e.ifindex && x.mac === mac && x.dst === e.dst)) this.fail('appendFdb', 'EEXIST');
    const entry: FdbEntry = { ifindex: e.ifindex, mac, dst: e.dst, permanent: true, self: true };
    this.fdb.push(entry);
    this.log('appendFdb', `${e.ifindex}|${mac}|${e.dst}`);
    this.emit({ kind: 'fdb', op: 'new', fdb: entry });
  }

  async replaceFdb(e: { ifindex: number; mac: string; dst: string }): Promise<void> {
    this.check('replaceFdb');
    if (!this.links.has(e.ifindex)) this.fail('replaceFdb', 'ENODEV');
    const mac = canonicalMac(e.mac);
    const i = this.fdb.findIndex((x) => x.ifindex === e.ifindex && x.mac === mac);
    const entry: FdbEntry = { ifindex: e.ifindex, mac, dst: e.dst, permanent: true, self: true };
    if (i >= 0) this.fdb[i] = entry;
    else this.fdb.push(entry);
    this.log('replaceFdb', `${e.ifindex}|${mac}|${e.dst}`);
  }

  async deleteFdb(e: { ifindex: number; mac: string; dst?: string }): Promise<void> {
    this.check('delFdb');
    const mac = canonicalMac(e.mac);
    const i = this.fdb.findIndex((x) => x.ifindex === e.ifindex && x.mac === mac && (e.dst === undefined || x.dst === e.dst));
    if (i < 0) this.fail('delFdb', 'ENOENT');
    const [had] = this.fdb.splice(i, 1);
    this.log('delFdb', `${e.ifindex}|${mac}|${e.dst ?? ''}`);
    this.emit({ kind: 'fdb', op: 'del', fdb: had! });
  }

  // ---- sysctl

  async readSysctl(key: string): Promise<string> {
    const v = this.sysctls.get(key);
    if (v === undefined) this.fail('readSysctl', 'ENOENT', key);
    return v;
  }

  async writeSysctl(key: string, value: string | number): Promise<void> {
    this.sysctls.set(key, String(value));
    this.log('writeSysctl', key);
  }

  // ---- events

  subscribe(handler: (e: KernelEvent) => void): Subscription {
    this.handlers.add(handler);
    return { close: () => void this.handlers.delete(handler) };
  }

  close(): void {
    this.handlers.clear();
  }
}

/** A manual clock for the reconciler and router (the Clock of daemon/lib/clock.ts). */
export class ManualClock implements Clock {
  private t: number;
  private timers: Array<{ at: number; fn: () => void; id: number }> = [];
  private nextId = 1;

  constructor(start = 1_000_000) {
    this.t = start;
  }

  now(): number {
    return this.t;
  }

  setTimer(fn: () => void, ms: number): unknown {
    const id = this.nextId++;
    this.timers.push({ at: this.t + ms, fn, id });
    return id;
  }

  clearTimer(h: unknown): void {
    this.timers = this.timers.filter((x) => x.id !== h);
  }

  /** Move time forward, firing due timers in order. */
  advance(ms: number): void {
    const end = this.t + ms;
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at);
      const next = this.timers[0];
      if (!next || next.at > end) break;
      this.timers.shift();
      this.t = Math.max(this.t, next.at);
      next.fn();
    }
    this.t = end;
  }

  pending(): number {
    return this.timers.length;
  }
}
