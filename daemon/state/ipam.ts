// Endpoint IPAM and records: addresses from this node's pod CIDRs, reserved under /ips/<node>/<ip>
// in the same etcd transaction that writes the endpoint record (all or nothing), a lost reply
// re-read before any retry, and GC of endpoints whose network namespace no longer exists.
import { existsSync } from 'node:fs';
import type { Logger } from '../lib/log.js';
import { backoffDelay, sleep } from './backoff.js';
import { StateError } from './cidr-alloc.js';
import { formatIp, parseCidr, parseIp, usableRange, type Cidr } from './ipnet.js';
import type { Keys } from './keys.js';
import { decodeEndpoint, decodeIpReservation, isValidEndpointId, validateLabels as checkLabels, type EndpointRecord, type Labels } from './records.js';
import { absent, isStoreError, modIs, type Compare, type KV, type Store, type TxnOp } from './store.js';

export interface EndpointSpec {
  id: string;
  netns: string;
  ifname?: string;
  mac?: string;
  labels?: Labels;
  identity?: number;
}

export interface IpamOptions {
  log?: Logger;
  /** Whether a netns path still exists (injected for tests). */
  netnsExists?: (path: string) => boolean;
  /** Claim transactions per create before giving up (default 8). */
  maxAttempts?: number;
}

/** Pick the next free offset after `cursor` (next-fit: freed addresses are reused last). */
export function nextFree(c: Cidr, used: ReadonlySet<bigint>, cursor: bigint): bigint | null {
  const { first, last } = usableRange(c);
  const size = last - first + 1n;
  if (BigInt(used.size) >= size) return null;
  let off = cursor < first || cursor > last ? first : cursor + 1n > last ? first : cursor + 1n;
  for (let i = 0n; i < size; i++) {
    if (!used.has(c.addr + off)) return off;
    off = off + 1n > last ? first : off + 1n;
  }
  return null;
}

interface Pool {
  cidr: Cidr;
  used: Set<bigint>;
  cursor: bigint;
}

export class EndpointIpam {
  private pools: Pool[] = [];
  private loaded = false;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly netnsExists: (p: string) => boolean;
  /** Endpoints given addresses by this allocator (a create that found its record counts not). */
  allocations = 0;

  constructor(
    private readonly store: Store,
    private readonly keys: Keys,
    readonly node: string,
    cidrs: string[],
    private readonly opts: IpamOptions = {},
  ) {
    this.netnsExists = opts.netnsExists ?? existsSync;
    this.setCidrs(cidrs);
  }

  /** Replace the node's CIDRs (after allocation); addresses outside them are no longer handed out. */
  setCidrs(cidrs: string[]): void {
    this.pools = cidrs.map((c) => {
      const cidr = parseCidr(c);
      const old = this.pools.find((p) => p.cidr.family === cidr.family && p.cidr.addr === cidr.addr && p.cidr.prefixLen === cidr.prefixLen);
      return old ?? { cidr, used: new Set<bigint>(), cursor: -1n };
    });
    this.loaded = false;
  }

  /** Serialise mutations: the used-address sets are only coherent one operation at a time. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async load(): Promise<void> {
    const listed = await this.store.list(this.keys.nodeIps(this.node));
    for (const p of this.pools) p.used.clear();
    for (const kv of listed.kvs) this.markUsed(kv.key.slice(this.keys.nodeIps(this.node).length));
    this.loaded = true;
  }

  private markUsed(ipText: string, used = true): void {
    let ip: { family: 4 | 6; addr: bigint };
    try {
      ip = parseIp(ipText);
    } catch {
      return;
    }
    for (const p of this.pools) {
      if (p.cidr.family !== ip.family) continue;
      if (used) p.used.add(ip.addr);
      else p.used.delete(ip.addr);
    }
  }

  private async reread(key: string): Promise<KV | null> {
    for (let i = 1; ; i++) {
      try {
        return (await this.store.get(key)).kv;
      } catch (e) {
        if (i >= 5) throw e;
        await sleep(backoffDelay(i, { baseMs: 100, maxMs: 2000 }));
      }
    }
  }

  /** Create (or return the existing) endpoint with one address per pod CIDR. */
  create(spec: EndpointSpec): Promise<EndpointRecord> {
    return this.exclusive(() => this.createLocked(spec));
  }

  private async createLocked(spec: EndpointSpec): Promise<EndpointRecord> {
    if (!isValidEndpointId(spec.id)) throw new StateError('INVALID', `endpoint id "${spec.id}" is invalid`);
    const lab = checkLabels('endpoint.labels', spec.labels ?? {});
    if (!lab.ok) throw new StateError('INVALID', lab.reason);
    if (this.pools.length === 0) throw new StateError('IP_EXHAUSTED', `node ${this.node} has no pod CIDR yet`);
    const epKey = this.keys.endpoint(this.node, spec.id);
    const existing = await this.store.get(epKey);
    if (existing.kv) {
      const rec = decodeEndpoint(existing.kv.value);
      if (rec) return rec; // a retried ADD: the endpoint already has its addresses
    }
    if (!this.loaded) await this.load();
    const maxAttempts = this.opts.maxAttempts ?? 8;
    let attempts = 0;
    let ips: string[] | null = null;
    while (attempts < maxAttempts) {
      if (!ips) {
        ips = [];
        for (const p of this.pools) {
          const off = nextFree(p.cidr, p.used, p.cursor);
          if (off === null) throw new StateError('IP_EXHAUSTED', `no free address left in ${formatIp(p.cidr.family, p.cidr.addr)}/${p.cidr.prefixLen}`);
          p.cursor = off;
          ips.push(formatIp(p.cidr.family, p.cidr.addr + off));
        }
      }
      const rec: EndpointRecord = {
        id: spec.id,
        node: this.node,
        ips,
        netns: spec.netns,
        labels: lab.value,
        ...(spec.mac ? { mac: spec.mac.toLowerCase() } : {}),
        ...(spec.ifname ? { ifname: spec.ifname } : {}),
        ...(spec.identity !== undefined ? { identity: spec.identity } : {}),
      };
      const value = JSON.stringify(rec);
      const ipKeys = ips.map((ip) => this.keys.ip(this.node, ip));
      const reservation = JSON.stringify({ node: this.node, endpoint: spec.id });
      const compares: Compare[] = [absent(epKey), ...ipKeys.map(absent)];
      const success: TxnOp[] = [...ipKeys.map((key): TxnOp => ({ type: 'put', key, value: reservation })), { type: 'put', key: epKey, value }];
      const failure: TxnOp[] = [{ type: 'get', key: epKey }, ...ipKeys.map((key): TxnOp => ({ type: 'get', key }))];
      attempts++;
      try {
        const r = await this.store.txn(compares, success, failure);
        if (r.succeeded) {
          for (const ip of ips) this.markUsed(ip);
          this.allocations++;
          return rec;
        }
        const ep = r.gets[0] ? decodeEndpoint(r.gets[0].value) : null;
        if (ep) {
          for (const ip of ep.ips) this.markUsed(ip);
          return ep;
        }
        // An address is taken (stale local view): note it and pick again.
        r.gets.slice(1).forEach((kv, i) => {
          if (kv) this.markUsed(ips![i]!);
        });
        ips = null;
      } catch (e) {
        if (!isStoreError(e) || !e.maybeApplied) throw e;
        // Reply lost: the transaction is all-or-nothing, so the endpoint key tells whether it
        // happened. If it did, it is ours; if not, retry with the same addresses.
        const kv = await this.reread(epKey);
        const ep = kv ? decodeEndpoint(kv.value) : null;
        if (ep) {
          for (const ip of ep.ips) this.markUsed(ip);
          return ep;
        }
      }
    }
    throw new StateError('CIDR_CONTENTION', `endpoint ${spec.id}: no address reserved after ${attempts} attempts`);
  }

  /** Delete an endpoint and free its addresses atomically. Returns false if it did not exist. */
  delete(id: string): Promise<boolean> {
    return this.exclusive(() => this.deleteLocked(id));
  }

  private async deleteLocked(id: string): Promise<boolean> {
    const epKey = this.keys.endpoint(this.node, id);
    for (let attempt = 1; ; attempt++) {
      const { kv } = await this.store.get(epKey);
      if (!kv) return false;
      const rec = decodeEndpoint(kv.value);
      const ips = rec?.ips ?? [];
      const ops: TxnOp[] = [{ type: 'delete', key: epKey }, ...ips.map((ip): TxnOp => ({ type: 'delete', key: this.keys.ip(this.node, ip) }))];
      try {
        const r = await this.store.txn([modIs(epKey, kv.modRevision)], ops);
        if (r.succeeded) {
          for (const ip of ips) this.markUsed(ip, false);
          return true;
        }
      } catch (e) {
        if (!isStoreError(e) || !e.maybeApplied || attempt >= 5) throw e;
      }
      // Changed under us or reply lost: look again (the loop re-reads).
    }
  }

  /**
   * Garbage-collect: endpoints whose netns path is gone (their creator died between the etcd
   * write and the kernel work, or the workload vanished), and reservations naming no endpoint.
   */
  gc(): Promise<{ endpoints: string[]; reservations: string[] }> {
    return this.exclusive(async () => {
      const eps = await this.store.list(this.keys.nodeEndpoints(this.node));
      const removed: string[] = [];
      const live = new Set<string>();
      for (const kv of eps.kvs) {
        const rec = decodeEndpoint(kv.value);
        if (rec && this.netnsExists(rec.netns)) {
          live.add(rec.id);
          continue;
        }
        const id = kv.key.slice(this.keys.nodeEndpoints(this.node).length);
        if (await this.deleteLocked(id)) removed.push(id);
      }
      const res = await this.store.list(this.keys.nodeIps(this.node));
      const orphans: string[] = [];
      for (const kv of res.kvs) {
        const r = decodeIpReservation(kv.value);
        if (r && live.has(r.endpoint)) continue;
        // Check against etcd, not the listing above: an endpoint may have been created since.
        if (r && (await this.store.get(this.keys.endpoint(this.node, r.endpoint))).kv) continue;
        const t = await this.store.txn([modIs(kv.key, kv.modRevision)], [{ type: 'delete', key: kv.key }]);
        if (t.succeeded) orphans.push(kv.key);
      }
      await this.load();
      if (removed.length || orphans.length) this.opts.log?.info({ endpoints: removed, reservations: orphans }, 'endpoint GC');
      return { endpoints: removed, reservations: orphans };
    });
  }
}
