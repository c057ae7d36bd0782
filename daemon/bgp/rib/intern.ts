// Attribute interning: identical path attributes (RFC 4271 §5) and next-hop lists share one frozen
// object, reference counted so a set nobody uses any more is freed. A full table has a million
// routes but only a few hundred distinct attribute sets, so routes cost a pointer, not a copy.
import type { LargeCommunity, PathAttributes, UnknownAttribute } from '../types.js';

interface Entry<T> {
  readonly value: T;
  readonly key: string;
  readonly id: number;
  refs: number;
}

/**
 * Canonical store of immutable values. `intern` returns the shared copy and takes a reference;
 * `retain`/`release` move the count of a value already interned. Releasing the last reference
 * forgets the value, so a later identical value gets a fresh object.
 */
export class Interner<T extends object> {
  private readonly byKey = new Map<string, Entry<T>>();
  private readonly byValue = new Map<T, Entry<T>>();
  private nextId = 1;

  constructor(
    private readonly keyOf: (value: T) => string,
    private readonly freeze: (value: T) => T,
  ) {}

  /** The shared copy of `value`, with one more reference. */
  intern(value: T): T {
    let e = this.byValue.get(value);
    if (!e) {
      const key = this.keyOf(value);
      e = this.byKey.get(key);
      if (!e) {
        const frozen = this.freeze(value);
        e = { value: frozen, key, id: this.nextId++, refs: 0 };
        this.byKey.set(key, e);
        this.byValue.set(frozen, e);
      }
    }
    e.refs++;
    return e.value;
  }

  retain(value: T, count = 1): void {
    this.entry(value).refs += count;
  }

  release(value: T, count = 1): void {
    const e = this.entry(value);
    if (count > e.refs) throw new Error('Interner: more releases than references');
    e.refs -= count;
    if (e.refs === 0) {
      this.byKey.delete(e.key);
      this.byValue.delete(e.value);
    }
  }

  /** Small integer naming an interned value (cache keys); 0 when not interned. */
  idOf(value: T): number {
    return this.byValue.get(value)?.id ?? 0;
  }

  refsOf(value: T): number {
    return this.byValue.get(value)?.refs ?? 0;
  }

  isInterned(value: T): boolean {
    return this.byValue.has(value);
  }

  get size(): number {
    return this.byKey.size;
  }

  private entry(value: T): Entry<T> {
    const e = this.byValue.get(value);
    if (!e) throw new Error('Interner: value is not interned (release/retain of a foreign object)');
    return e;
  }
}

/** Canonical text of a set of path attributes: equal text ⇔ equal attributes. */
export function attributesKey(a: PathAttributes): string {
  let k = `${a.origin}|`;
  for (const s of a.asPath) k += `${s.type}:${s.asns.join(' ')},`;
  k += `|${a.nextHop ?? ''}|${a.med ?? ''}|${a.localPref ?? ''}|${a.atomicAggregate ? 1 : ''}|`;
  if (a.aggregator) k += `${a.aggregator.asn}@${a.aggregator.address}`;
  k += `|${a.communities?.join(' ') ?? ''}|${a.originatorId ?? ''}|${a.clusterList?.join(' ') ?? ''}`;
  k += `|${a.extCommunities?.join(' ') ?? ''}|`;
  if (a.largeCommunities) for (const c of a.largeCommunities) k += `${c.global}:${c.local1}:${c.local2} `;
  k += '|';
  if (a.unknown) for (const u of a.unknown) k += `${u.flags}:${u.type}:${Buffer.from(u.value).toString('hex')} `;
  // `undefined` vs absent must not matter, but [] vs absent does on the wire for communities;
  // mark presence of the optional lists explicitly.
  k += `|${a.communities ? 'c' : ''}${a.extCommunities ? 'e' : ''}${a.largeCommunities ? 'l' : ''}${a.clusterList ? 'k' : ''}${a.unknown ? 'u' : ''}`;
  return k;
}

/**
 * A frozen deep copy holding only the defined fields, so equal sets are also structurally equal
 * (deepStrictEqual in tests) and nobody can mutate a shared set.
 */
export function freezeAttributes(a: PathAttributes): PathAttributes {
  const out: PathAttributes = {
    origin: a.origin,
    asPath: Object.freeze(a.asPath.map((s) => Object.freeze({ type: s.type, asns: Object.freeze([...s.asns]) }))),
  } as PathAttributes;
  if (a.nextHop !== undefined) out.nextHop = a.nextHop;
  if (a.med !== undefined) out.med = a.med;
  if (a.localPref !== undefined) out.localPref = a.localPref;
  if (a.atomicAggregate) out.atomicAggregate = true;
  if (a.aggregator) out.aggregator = Object.freeze({ ...a.aggregator });
  if (a.communities) out.communities = Object.freeze([...a.communities]) as number[];
  if (a.originatorId !== undefined) out.originatorId = a.originatorId;
  if (a.clusterList) out.clusterList = Object.freeze([...a.clusterList]) as string[];
  if (a.extCommunities) out.extCommunities = Object.freeze([...a.extCommunities]) as string[];
  if (a.largeCommunities) out.largeCommunities = Object.freeze(a.largeCommunities.map((c) => Object.freeze({ ...c }))) as LargeCommunity[];
  if (a.unknown) {
    // Typed arrays with elements cannot be frozen; the copy is private to the shared set.
    out.unknown = Object.freeze(
      a.unknown.map((u) => Object.freeze({ flags: u.flags, type: u.type, value: Uint8Array.from(u.value) })),
    ) as UnknownAttribute[];
  }
  return Object.freeze(out);
}

export function attributesInterner(): Interner<PathAttributes> {
  return new Interner<PathAttributes>(attributesKey, freezeAttributes);
}

export function nextHopsInterner(): Interner<readonly string[]> {
  return new Interner<readonly string[]>((v) => v.join(','), (v) => Object.freeze([...v]));
}
