// Pod-CIDR allocation from a cluster pool: one CIDR per node per family, claimed with an etcd
// `Version == 0` transaction, candidates in an order seeded by the node name so racing nodes
// diverge instead of thrashing on the same subnet; bounded retries; lost replies re-read.
import type { Logger } from '../lib/log.js';
import { backoffDelay, sleep } from './backoff.js';
import { formatCidr, parseCidr, subnetAt, subnetCount, subnetIndex, cidrContains, type Cidr } from './ipnet.js';
import type { Keys } from './keys.js';
import { decodeCidrClaim, type CidrClaim } from './records.js';
import { absent, isStoreError, modIs, type KV, type Store } from './store.js';

export interface PoolConfig {
  /** Key component, e.g. "ipv4" or "ipv6". */
  name: string;
  cidr: string;
  /** Prefix length of each node's CIDR, e.g. 24 (IPv4) or 64 (IPv6). */
  maskSize: number;
}

export class StateError extends Error {
  constructor(
    readonly code: 'POOL_EXHAUSTED' | 'CIDR_CONFLICT' | 'CIDR_CONTENTION' | 'BAD_CONFIG' | 'UNAVAILABLE' | 'IP_EXHAUSTED' | 'NOT_FOUND' | 'INVALID',
    message: string,
  ) {
    super(message);
    this.name = 'StateError';
  }
}

/** 64-bit FNV-1a of a string (stable across processes and versions). */
export function fnv1a64(s: string): bigint {
  let h = 0xcbf29ce484222325n;
  for (const b of Buffer.from(s)) {
    h ^= BigInt(b);
    h = (h * 0x100000001b3n) & 0xffffffffffffffffn;
  }
  return h;
}

/**
 * A permutation of 0..n-1 (n a power of two) seeded by the node name: start at hash % n and
 * walk with an odd stride (coprime to n, so every index comes exactly once). Two nodes racing
 * for one pool start in different places and follow different walks.
 */
export function* candidateOrder(seed: string, n: bigint): Generator<bigint> {
  if (n <= 0n) return;
  const h = fnv1a64(seed);
  const start = h % n;
  const stride = n === 1n ? 1n : ((fnv1a64(`${seed}#stride`) % n) | 1n) % n || 1n;
  let idx = start;
  for (let i = 0n; i < n; i++) {
    yield idx;
    idx = (idx + stride) % n;
  }
}

export function validatePool(p: PoolConfig): Cidr {
  let pool: Cidr;
  try {
    pool = parseCidr(p.cidr);
  } catch (e) {
    throw new StateError('BAD_CONFIG', `pool ${p.name}: ${(e as Error).message}`);
  }
  const bits = pool.family === 4 ? 32 : 128;
  if (!Number.isInteger(p.maskSize) || p.maskSize < pool.prefixLen || p.maskSize > bits) {
    throw new StateError('BAD_CONFIG', `pool ${p.name}: mask size /${p.maskSize} must be between /${pool.prefixLen} and /${bits}`);
  }
  return pool;
}

export interface AllocateOptions {
  /** A CIDR set in the node's config: honoured and reserved, never chosen by the walk. */
  staticCidr?: string;
  /** Claim transactions at most (default 16). */
  maxAttempts?: number;
  log?: Logger;
  now?: () => Date;
}

export interface AllocateResult {
  cidr: string;
  /** The key already named this node (restart). */
  reused: boolean;
  /** Claim transactions sent. */
  attempts: number;
}

/** Read a key until etcd answers (bounded); used after a write whose reply was lost. */
async function reread(store: Store, key: string, tries = 5): Promise<KV | null> {
  for (let i = 1; ; i++) {
    try {
      return (await store.get(key)).kv;
    } catch (e) {
      if (i >= tries) throw e;
      await sleep(backoffDelay(i, { baseMs: 100, maxMs: 2000 }));
    }
  }
}

const claimOf = (kv: KV | null): CidrClaim | null => (kv ? decodeCidrClaim(kv.value) : null);

export async function allocateNodeCidr(store: Store, keys: Keys, poolCfg: PoolConfig, node: string, opts: AllocateOptions = {}): Promise<AllocateResult> {
  const pool = validatePool(poolCfg);
  const maxAttempts = opts.maxAttempts ?? 16;
  const now = opts.now ?? (() => new Date());
  let attempts = 0;

  const claimValue = (isStatic: boolean): string => JSON.stringify({ node, ...(isStatic ? { static: true } : {}), at: now().toISOString() } satisfies CidrClaim);

  /** One claim txn; 'ours' | 'taken' | 'retry' (reply lost and key still absent). */
  const claim = async (cidr: string, isStatic: boolean): Promise<'ours' | 'taken' | 'retry'> => {
    const key = keys.cidr(poolCfg.name, cidr);
    attempts++;
    try {
      const r = await store.txn([absent(key)], [{ type: 'put', key, value: claimValue(isStatic) }], [{ type: 'get', key }]);
      if (r.succeeded) return 'ours';
      return claimOf(r.gets[0] ?? null)?.node === node ? 'ours' : 'taken';
    } catch (e) {
      if (!isStoreError(e) || !e.maybeApplied) throw e;
      // The reply was lost: the claim may be ours already. Look before trying anything else,
      // or this node would end up holding two CIDRs.
      const kv = await reread(store, key);
      if (!kv) return 'retry';
      return claimOf(kv)?.node === node ? 'ours' : 'taken';
    }
  };

  if (opts.staticCidr !== undefined) {
    let c: Cidr;
    try {
      c = parseCidr(opts.staticCidr);
    } catch (e) {
      throw new StateError('BAD_CONFIG', `static CIDR: ${(e as Error).message}`);
    }
    if (!cidrContains(pool, c) || c.prefixLen !== poolCfg.maskSize) {
      throw new StateError('BAD_CONFIG', `static CIDR ${opts.staticCidr} is not a /${poolCfg.maskSize} inside pool ${poolCfg.name} (${poolCfg.cidr})`);
    }
    const cidr = formatCidr(c);
    for (;;) {
      const res = await claim(cidr, true);
      if (res === 'ours') return { cidr, reused: attempts > 1, attempts };
      if (res === 'taken') {
        const kv = await reread(store, keys.cidr(poolCfg.name, cidr));
        throw new StateError('CIDR_CONFLICT', `static CIDR ${cidr} is held by node ${claimOf(kv)?.node ?? '?'}`);
      }
      if (attempts >= maxAttempts) throw new StateError('CIDR_CONTENTION', `static CIDR ${cidr}: no answer after ${attempts} attempts`);
    }
  }

  const n = subnetCount(pool, poolCfg.maskSize);
  for (let round = 0; attempts < maxAttempts; round++) {
    const listed = await store.list(keys.cidrPool(poolCfg.name));
    const taken = new Set<bigint>();
    const mine: KV[] = [];
    for (const kv of listed.kvs) {
      const parsed = keys.parseCidrKey(kv.key);
      if (!parsed) continue;
      let c: Cidr;
      try {
        c = parseCidr(parsed.cidr);
      } catch {
        continue;
      }
      if (!cidrContains(pool, c) || c.prefixLen !== poolCfg.maskSize) continue;
      taken.add(subnetIndex(pool, c));
      if (claimOf(kv)?.node === node) mine.push(kv);
    }
    if (mine.length) {
      // Restart: the key still names this node, so the CIDR is still ours. More than one claim
      // (only after a manual edit) is trimmed to the first, with CAS so a racing change wins.
      for (const extra of mine.slice(1)) {
        await store.txn([modIs(extra.key, extra.modRevision)], [{ type: 'delete', key: extra.key }]).catch(() => undefined);
      }
      return { cidr: keys.parseCidrKey(mine[0]!.key)!.cidr, reused: true, attempts };
    }
    if (BigInt(taken.size) >= n) {
      throw new StateError('POOL_EXHAUSTED', `pool ${poolCfg.name} (${poolCfg.cidr}) is exhausted: all ${n} /${poolCfg.maskSize} CIDRs are taken`);
    }
    let raced = false;
    for (const idx of candidateOrder(node, n)) {
      if (taken.has(idx)) continue;
      const cidr = formatCidr(subnetAt(pool, poolCfg.maskSize, idx));
      let res = await claim(cidr, false);
      while (res === 'retry' && attempts < maxAttempts) res = await claim(cidr, false);
      if (res === 'ours') return { cidr, reused: false, attempts };
      if (attempts >= maxAttempts) break;
      taken.add(idx);
      raced = true;
      // After a lost race the listing is stale: re-list every few losses rather than walking on.
      if (attempts % 4 === 0) break;
      if (BigInt(taken.size) >= n) break;
    }
    if (!raced) break;
    opts.log?.debug({ pool: poolCfg.name, attempts, round }, 'CIDR claim raced; re-listing');
  }
  throw new StateError('CIDR_CONTENTION', `pool ${poolCfg.name}: no CIDR claimed after ${attempts} attempts (heavy contention or the pool is nearly full)`);
}

/** Release this node's claim on a CIDR (CAS: only while the key still names the node). */
export async function releaseNodeCidr(store: Store, keys: Keys, pool: string, cidr: string, node: string): Promise<boolean> {
  const key = keys.cidr(pool, cidr);
  const { kv } = await store.get(key);
  if (!kv || claimOf(kv)?.node !== node) return false;
  const r = await store.txn([modIs(key, kv.modRevision)], [{ type: 'delete', key }]);
  return r.succeeded;
}
