// xxHash32 (Yann Collet's XXH32, as specified in the xxHash repository's doc/xxhash_spec.md) over
// UTF-8 text, and ids derived from it that stay the same across restarts and on every node.
// Why not node:crypto or a process hash: Maglev tables and map ids must be bit-identical on every
// node and after every restart, from a function this file pins down (the golden vectors in the
// tests are the spec's), and XXH32 is cheap enough to run per backend and per service.

const P1 = 2654435761;
const P2 = 2246822519;
const P3 = 3266489917;
const P4 = 668265263;
const P5 = 374761393;

const rotl = (x: number, r: number): number => ((x << r) | (x >>> (32 - r))) >>> 0;
const mul = (a: number, b: number): number => Math.imul(a, b) >>> 0;
const lane = (b: Uint8Array, i: number): number => (b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24)) >>> 0;
const round = (acc: number, input: number): number => mul(rotl((acc + mul(input, P2)) >>> 0, 13), P1);

/** XXH32 of `input` (text is hashed as UTF-8) with `seed`, as an unsigned 32-bit number. */
export function xxh32(input: string | Uint8Array, seed = 0): number {
  const b = typeof input === 'string' ? Buffer.from(input, 'utf8') : input;
  const len = b.length;
  let i = 0;
  let h: number;
  if (len >= 16) {
    let v1 = (seed + P1 + P2) >>> 0;
    let v2 = (seed + P2) >>> 0;
    let v3 = seed >>> 0;
    let v4 = (seed - P1) >>> 0;
    for (; i + 16 <= len; i += 16) {
      v1 = round(v1, lane(b, i));
      v2 = round(v2, lane(b, i + 4));
      v3 = round(v3, lane(b, i + 8));
      v4 = round(v4, lane(b, i + 12));
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) >>> 0;
  } else {
    h = (seed + P5) >>> 0;
  }
  h = (h + len) >>> 0;
  for (; i + 4 <= len; i += 4) h = mul(rotl((h + mul(lane(b, i), P3)) >>> 0, 17), P4);
  for (; i < len; i++) h = mul(rotl((h + mul(b[i]!, P5)) >>> 0, 11), P1);
  h = mul(h ^ (h >>> 15), P2);
  h = mul(h ^ (h >>> 13), P3);
  return (h ^ (h >>> 16)) >>> 0;
}

export interface StableIdOptions {
  /** Smallest and largest id handed out (inclusive). */
  min: number;
  max: number;
  seed: number;
  /** Ids in use before (read back from the maps): kept while the name still exists. */
  previous?: ReadonlyMap<string, number>;
}

/**
 * A numeric id per name: kept from `previous` when there is one, else min + xxh32(name) mod the
 * range, probing upwards on collision. Names are taken in sorted order, so without `previous` the
 * result is a pure function of the set of names: every node and every restart agree. With
 * `previous` an existing id never moves because a new name hashed onto it.
 */
export function stableIds(names: Iterable<string>, opts: StableIdOptions): Map<string, number> {
  const span = opts.max - opts.min + 1;
  const sorted = [...new Set(names)].sort();
  if (sorted.length > span) throw new RangeError(`${sorted.length} names for ${span} ids`);
  const out = new Map<string, number>();
  const used = new Set<number>();
  for (const n of sorted) {
    const id = opts.previous?.get(n);
    if (id !== undefined && id >= opts.min && id <= opts.max && !used.has(id)) {
      out.set(n, id);
      used.add(id);
    }
  }
  for (const n of sorted) {
    if (out.has(n)) continue;
    const id = nextStableId(n, used, opts);
    out.set(n, id);
    used.add(id);
  }
  return out;
}

/** The id stableIds gives a new `name` when `used` are taken (the caller adds it to `used`). */
export function nextStableId(name: string, used: ReadonlySet<number>, opts: Pick<StableIdOptions, 'min' | 'max' | 'seed'>): number {
  const span = opts.max - opts.min + 1;
  if (used.size >= span) throw new RangeError(`no free id in [${opts.min}, ${opts.max}]`);
  let id = opts.min + (xxh32(name, opts.seed) % span);
  while (used.has(id)) id = id === opts.max ? opts.min : id + 1;
  return id;
}
