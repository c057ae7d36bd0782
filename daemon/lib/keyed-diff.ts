// Desired-versus-applied diff of keyed map entries (the Felix "delta tracker" shape): given two
// maps of text key → {key, value}, the entries to write (new or changed) and the keys to delete.
// Values are plain data (numbers, strings, booleans, byte arrays, nested objects), compared
// structurally, so a reconcile after a restart writes nothing that is already right.

export interface Keyed<K, V> {
  key: K;
  value: V;
}

export interface KeyedDiff<K, V> {
  set: Keyed<K, V>[];
  del: K[];
}

/** Structural equality of plain data; byte arrays compare by content. */
export function sameData(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (a instanceof Uint8Array || b instanceof Uint8Array) {
    if (!(a instanceof Uint8Array && b instanceof Uint8Array) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
    return true;
  }
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  const ra = a as Record<string, unknown>;
  const rb = b as Record<string, unknown>;
  return ka.every((k) => Object.prototype.hasOwnProperty.call(rb, k) && sameData(ra[k], rb[k]));
}

/** Entries of `next` missing from or different in `prev`, and keys of `prev` gone from `next`. */
export function diffKeyed<K, V>(prev: ReadonlyMap<string, Keyed<K, V>>, next: ReadonlyMap<string, Keyed<K, V>>): KeyedDiff<K, V> {
  const set: Keyed<K, V>[] = [];
  const del: K[] = [];
  for (const [t, e] of next) {
    const p = prev.get(t);
    if (!p || !sameData(p.value, e.value)) set.push(e);
  }
  for (const [t, e] of prev) if (!next.has(t)) del.push(e.key);
  return { set, del };
}
