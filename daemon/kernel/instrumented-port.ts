// A KernelPort decorator that reports every kernel write (op, result) to a callback — what the
// routing subsystem turns into nrd_kernel_writes_total{op,result}. Reads and notifications pass
// through untouched. Kernel interfaces: those of the wrapped port (rtnetlink, /proc/sys).
import type {
  AddressInfo,
  BatchFailure,
  Family,
  FdbEntry,
  KernelEvent,
  KernelPort,
  LinkInfo,
  Neighbour,
  Route,
  RouteSelector,
  Subscription,
  VxlanSpec,
} from './types.js';

/** Write operations as metric label values (stable). */
export type WriteOp =
  | 'route_replace'
  | 'route_delete'
  | 'link_create'
  | 'link_delete'
  | 'link_set'
  | 'neigh_replace'
  | 'neigh_delete'
  | 'fdb_append'
  | 'fdb_replace'
  | 'fdb_delete'
  | 'sysctl_write';

/** result: 'ok' or the errno name ('EEXIST', 'ENETUNREACH', …). */
export type WriteListener = (op: WriteOp, result: string, count: number) => void;

const codeOf = (e: unknown): string => {
  const c = (e as { code?: unknown })?.code;
  return typeof c === 'string' ? c : 'error';
};

export class InstrumentedPort implements KernelPort {
  constructor(
    readonly inner: KernelPort,
    private readonly onWrite: WriteListener,
  ) {}

  private async count<T>(op: WriteOp, p: Promise<T>): Promise<T> {
    try {
      const v = await p;
      this.onWrite(op, 'ok', 1);
      return v;
    } catch (e) {
      this.onWrite(op, codeOf(e), 1);
      throw e;
    }
  }

  private async countBatch(op: WriteOp, n: number, p: Promise<BatchFailure[]>): Promise<BatchFailure[]> {
    const failures = await p;
    const byCode = new Map<string, number>();
    for (const f of failures) byCode.set(f.error.code, (byCode.get(f.error.code) ?? 0) + 1);
    if (n - failures.length > 0) this.onWrite(op, 'ok', n - failures.length);
    for (const [code, k] of byCode) this.onWrite(op, code, k);
    return failures;
  }

  listRoutes(family: Family, table: number): Promise<Route[]> {
    return this.inner.listRoutes(family, table);
  }
  replaceRoute(route: Route): Promise<void> {
    return this.count('route_replace', this.inner.replaceRoute(route));
  }
  deleteRoute(route: RouteSelector): Promise<void> {
    return this.count('route_delete', this.inner.deleteRoute(route));
  }
  replaceRoutes(routes: readonly Route[]): Promise<BatchFailure[]> {
    return this.countBatch('route_replace', routes.length, this.inner.replaceRoutes(routes));
  }
  deleteRoutes(routes: readonly RouteSelector[]): Promise<BatchFailure[]> {
    return this.countBatch('route_delete', routes.length, this.inner.deleteRoutes(routes));
  }
  listLinks(): Promise<LinkInfo[]> {
    return this.inner.listLinks();
  }
  getLink(nameOrIndex: string | number): Promise<LinkInfo | null> {
    return this.inner.getLink(nameOrIndex);
  }
  createVxlan(spec: VxlanSpec): Promise<LinkInfo> {
    return this.count('link_create', this.inner.createVxlan(spec));
  }
  deleteLink(index: number): Promise<void> {
    return this.count('link_delete', this.inner.deleteLink(index));
  }
  setLinkUp(index: number): Promise<void> {
    return this.count('link_set', this.inner.setLinkUp(index));
  }
  setLinkMtu(index: number, mtu: number): Promise<void> {
    return this.count('link_set', this.inner.setLinkMtu(index, mtu));
  }
  listAddresses(family?: Family): Promise<AddressInfo[]> {
    return this.inner.listAddresses(family);
  }
  listNeighbours(family: Family, ifindex?: number): Promise<Neighbour[]> {
    return this.inner.listNeighbours(family, ifindex);
  }
  replaceNeighbour(n: { ifindex: number; ip: string; mac: string }): Promise<void> {
    return this.count('neigh_replace', this.inner.replaceNeighbour(n));
  }
  deleteNeighbour(n: { ifindex: number; ip: string }): Promise<void> {
    return this.count('neigh_delete', this.inner.deleteNeighbour(n));
  }
  listFdb(ifindex?: number): Promise<FdbEntry[]> {
    return this.inner.listFdb(ifindex);
  }
  appendFdb(e: { ifindex: number; mac: string; dst: string }): Promise<void> {
    return this.count('fdb_append', this.inner.appendFdb(e));
  }
  replaceFdb(e: { ifindex: number; mac: string; dst: string }): Promise<void> {
    return this.count('fdb_replace', this.inner.replaceFdb(e));
  }
  deleteFdb(e: { ifindex: number; mac: string; dst?: string }): Promise<void> {
    return this.count('fdb_delete', this.inner.deleteFdb(e));
  }
  readSysctl(key: string): Promise<string> {
    return this.inner.readSysctl(key);
  }
  writeSysctl(key: string, value: string | number): Promise<void> {
    return this.count('sysctl_write', this.inner.writeSysctl(key, value));
  }
  subscribe(handler: (e: KernelEvent) => void): Subscription {
    return this.inner.subscribe(handler);
  }

  muteRouteEvents(protocol: number, muted: boolean): void {
    this.inner.muteRouteEvents?.(protocol, muted);
  }
  close(): void {
    this.inner.close();
  }
}
