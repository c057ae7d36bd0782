// Maglev consistent hashing (Eisenbud et al., "Maglev: A Fast and Reliable Software Network Load
// Balancer", NSDI 2016, §3.4): a lookup table of M slots (M prime) filled from one permutation of
// the slots per backend, so every node builds the same table from the same backends and a change
// of one backend moves about 1/N of the slots. The datapath picks slot hash(5-tuple) mod M.
//
// Each backend's permutation is offset + j·skip (mod M) with offset = h1(key) mod M and
// skip = h2(key) mod (M−1) + 1, h1 and h2 being XXH32 of the backend's stable key ("ip:port") under
// two fixed seeds: no process-dependent hash, no randomness. Backends take turns in the order of
// their keys (not of the input), so the table does not depend on how the backends were listed.
// Unweighted, each round gives every backend one slot, hence every backend gets ⌊M/N⌋ or ⌈M/N⌉
// slots. The paper recommends M ≥ 100·N to keep the disruption of a change close to 1/N.
//
// Weights (the paper's §3.4 note on weighted backends) are done by credit: each round a backend
// earns its weight, and takes one turn per max-weight of credit, so a backend of weight w gets
// about w/Σw of the slots; with equal weights this is exactly the unweighted algorithm.
import { xxh32 } from '../lib/stable-hash.js';

/** Seeds of h1 (offset) and h2 (skip); changing them reshuffles every table in the cluster. */
const SEED_OFFSET = 0x6e726430; // "nrd0"
const SEED_SKIP = 0x6e726431; // "nrd1"

export interface MaglevBackend {
  /** Stable name of the backend, the same on every node, e.g. "10.0.0.1:80" or "[fd00::1]:80". */
  key: string;
  /** Relative weight (positive integer); 1 when absent. */
  weight?: number;
}

/** Table size used when the configuration does not set one (Cilium's default too). */
export const DEFAULT_TABLE_SIZE = 16381;

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/** Offset and skip of a backend's permutation of the M slots. */
export function permutation(key: string, m: number): { offset: number; skip: number } {
  return { offset: xxh32(key, SEED_OFFSET) % m, skip: (xxh32(key, SEED_SKIP) % (m - 1)) + 1 };
}

/**
 * The lookup table: slot → index into `backends` (as given). Empty when there is no backend.
 * Throws when M is not a prime above the number of backends (the permutation needs M prime, and
 * each backend must be able to own a slot) or when two backends share a key.
 */
export function buildTable(backends: readonly MaglevBackend[], m: number): Uint32Array {
  const n = backends.length;
  if (n === 0) return new Uint32Array(0);
  if (!isPrime(m) || m < n) throw new RangeError(`Maglev table size ${m} must be a prime of at least the backend count ${n}`);
  const order = backends.map((_, i) => i).sort((a, b) => (backends[a]!.key < backends[b]!.key ? -1 : backends[a]!.key > backends[b]!.key ? 1 : 0));
  for (let i = 1; i < n; i++) {
    if (backends[order[i]!]!.key === backends[order[i - 1]!]!.key) throw new RangeError(`duplicate Maglev backend ${backends[order[i]!]!.key}`);
  }
  const weights = order.map((i) => backends[i]!.weight ?? 1);
  for (const w of weights) if (!Number.isInteger(w) || w < 1) throw new RangeError(`Maglev weight must be a positive integer, got ${w}`);
  const maxW = Math.max(...weights);
  const offset = new Uint32Array(n);
  const skip = new Uint32Array(n);
  order.forEach((bi, r) => {
    const p = permutation(backends[bi]!.key, m);
    offset[r] = p.offset;
    skip[r] = p.skip;
  });
  // pos[r]: backend r's current place in its permutation (offset, offset+skip, … mod M), walked
  // incrementally, so memory stays O(N + M) rather than the paper's O(N·M) permutation table.
  const pos = Uint32Array.from(offset);
  const credit = new Float64Array(n);
  const table = new Uint32Array(m);
  const filled = new Uint8Array(m);
  let left = m;
  while (left > 0) {
    for (let r = 0; r < n && left > 0; r++) {
      credit[r]! += weights[r]!;
      while (credit[r]! >= maxW && left > 0) {
        credit[r]! -= maxW;
        let c = pos[r]!;
        while (filled[c]) c = (c + skip[r]!) % m;
        filled[c] = 1;
        table[c] = order[r]!;
        pos[r] = (c + skip[r]!) % m;
        left--;
      }
    }
  }
  return table;
}

/** Slots whose entry differs between two tables of the same size (all slots when sizes differ). */
export function diffTables(prev: Uint32Array, next: Uint32Array): number[] {
  const out: number[] = [];
  if (prev.length !== next.length) {
    for (let i = 0; i < next.length; i++) out.push(i);
    return out;
  }
  for (let i = 0; i < next.length; i++) if (prev[i] !== next[i]) out.push(i);
  return out;
}

/** Slots per backend index (the balance a test or a status page reports). */
export function slotCounts(table: Uint32Array, backends: number): number[] {
  const out = new Array<number>(backends).fill(0);
  for (const b of table) out[b]!++;
  return out;
}
