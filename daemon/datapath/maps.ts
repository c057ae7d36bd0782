// Codecs for the BPF map keys and values of bpf/include/nrd_shared.h, CIDR parsing for the LPM
// tries, and a typed handle over a map fd (bpf(2) BPF_MAP_* commands through libbpf.ts).
//
// Each C struct is described once, declaratively (STRUCTS: field name, offset, size, kind), and
// its encoder and decoder are derived from that description, so nothing about a layout is written
// twice. test/unit/datapath/btf-layout.test.ts checks every description against the BTF of the
// built objects (names, offsets, sizes, struct size), like Cilium's alignchecker.
import * as ip from '../lib/ip.js';
import {
  BPF_ANY,
  isBpfError,
  mapDeleteElem,
  mapGetNextKey,
  mapLookupElem,
  mapUpdateElem,
  numPossibleCpus,
} from './libbpf.js';

// ---- layouts (one per struct of nrd_shared.h) ---------------------------------------------------

/** How a field is stored: host-order integers (BPF runs on the host's byte order) or raw bytes. */
export type FieldKind = 'u32' | 'u64' | 'bytes';

export interface FieldSpec {
  readonly name: string;
  readonly offset: number;
  readonly size: number;
  readonly kind: FieldKind;
}

export interface StructSpec {
  readonly name: string;
  readonly size: number;
  readonly fields: readonly FieldSpec[];
}

export const STRUCTS = {
  nrd_lpm4_key: {
    name: 'nrd_lpm4_key',
    size: 8,
    fields: [
      { name: 'prefixlen', offset: 0, size: 4, kind: 'u32' },
      { name: 'addr', offset: 4, size: 4, kind: 'bytes' },
    ],
  },
  nrd_lpm6_key: {
    name: 'nrd_lpm6_key',
    size: 20,
    fields: [
      { name: 'prefixlen', offset: 0, size: 4, kind: 'u32' },
      { name: 'addr', offset: 4, size: 16, kind: 'bytes' },
    ],
  },
  nrd_deny_value: {
    name: 'nrd_deny_value',
    size: 8,
    fields: [
      { name: 'rule', offset: 0, size: 4, kind: 'u32' },
      { name: 'flags', offset: 4, size: 4, kind: 'u32' },
    ],
  },
  nrd_counter: {
    name: 'nrd_counter',
    size: 16,
    fields: [
      { name: 'packets', offset: 0, size: 8, kind: 'u64' },
      { name: 'bytes', offset: 8, size: 8, kind: 'u64' },
    ],
  },
  nrd_if_key: {
    name: 'nrd_if_key',
    size: 8,
    fields: [
      { name: 'ifindex', offset: 0, size: 4, kind: 'u32' },
      { name: 'dir', offset: 4, size: 4, kind: 'u32' },
    ],
  },
} as const satisfies Record<string, StructSpec>;

/** Which object defines which map, with its key and value struct (checked against BTF too). */
export const MAPS = {
  nrd_deny4: { object: 'nrd_xdp', key: 'nrd_lpm4_key', value: 'nrd_deny_value', perCpu: false },
  nrd_deny6: { object: 'nrd_xdp', key: 'nrd_lpm6_key', value: 'nrd_deny_value', perCpu: false },
  nrd_xdp_stats: { object: 'nrd_xdp', key: 'u32', value: 'nrd_counter', perCpu: true },
  nrd_if_stats: { object: 'nrd_tc', key: 'nrd_if_key', value: 'nrd_counter', perCpu: true },
} as const;

/** enum nrd_xdp_stat */
export const XdpStat = { PASS: 0, DROP_DENY4: 1, DROP_DENY6: 2, MALFORMED: 3 } as const;
export const XDP_STAT_MAX = 4;
/** enum nrd_dir */
export const Dir = { INGRESS: 0, EGRESS: 1 } as const;
/** nrd_tc load-time knob bits (cfg_flags) */
export const NRD_TC_F_STATS = 1;

// ---- codecs -------------------------------------------------------------------------------------

export interface Codec<T> {
  readonly size: number;
  encode(v: T): Buffer;
  decode(b: Buffer): T;
}

interface KindTypes {
  u32: number;
  u64: bigint;
  bytes: Buffer;
}

/** The TypeScript value of a struct: one property per field, typed by its kind. */
export type StructValue<S extends StructSpec> = { -readonly [F in S['fields'][number] as F['name']]: KindTypes[F['kind']] };

const KIND_SIZE: Partial<Record<FieldKind, number>> = { u32: 4, u64: 8 };

/**
 * The codec of a struct, derived from its layout. Refuses at once a layout whose kinds and sizes
 * disagree or whose fields overlap or overrun the struct (padding bytes encode as zero).
 */
export function structCodec<S extends StructSpec>(spec: S): Codec<StructValue<S>> {
  let end = 0;
  for (const f of [...spec.fields].sort((a, b) => a.offset - b.offset)) {
    const want = KIND_SIZE[f.kind];
    if (want !== undefined && want !== f.size) throw new Error(`${spec.name}.${f.name}: ${f.kind} is ${want} bytes, not ${f.size}`);
    if (f.offset < end || f.offset + f.size > spec.size) throw new Error(`${spec.name}.${f.name}: overlaps or overruns the struct`);
    end = f.offset + f.size;
  }
  type V = StructValue<S>;
  return {
    size: spec.size,
    encode(v: V): Buffer {
      const b = Buffer.alloc(spec.size);
      const rec = v as Record<string, number | bigint | Buffer>;
      for (const f of spec.fields) {
        const x = rec[f.name];
        if (f.kind === 'u32') b.writeUInt32LE((x as number) >>> 0, f.offset);
        else if (f.kind === 'u64') b.writeBigUInt64LE(x as bigint, f.offset);
        else {
          const bytes = x as Buffer;
          if (bytes.length > f.size) throw new RangeError(`${spec.name}.${f.name}: ${bytes.length} bytes for a ${f.size}-byte field`);
          bytes.copy(b, f.offset);
        }
      }
      return b;
    },
    decode(b: Buffer): V {
      const out: Record<string, number | bigint | Buffer> = {};
      for (const f of spec.fields) {
        out[f.name] =
          f.kind === 'u32' ? b.readUInt32LE(f.offset)
          : f.kind === 'u64' ? b.readBigUInt64LE(f.offset)
          : Buffer.from(b.subarray(f.offset, f.offset + f.size));
      }
      return out as V;
    },
  };
}

export const u32Codec: Codec<number> = {
  size: 4,
  encode(v) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v >>> 0, 0);
    return b;
  },
  decode: (b) => b.readUInt32LE(0),
};

export interface Cidr {
  family: 4 | 6;
  /** Network byte order, host bits cleared. */
  addr: Buffer;
  prefixlen: number;
}

function lpmCodec(family: 4 | 6): Codec<Cidr> {
  const key = structCodec(family === 4 ? STRUCTS.nrd_lpm4_key : STRUCTS.nrd_lpm6_key);
  return {
    size: key.size,
    encode(c) {
      if (c.family !== family) throw new Error(`IPv${c.family} CIDR for an IPv${family} LPM key`);
      return key.encode({ prefixlen: c.prefixlen, addr: c.addr });
    },
    decode(b) {
      const { prefixlen, addr } = key.decode(b);
      return { family, prefixlen, addr };
    },
  };
}

export const lpm4KeyCodec = lpmCodec(4);
export const lpm6KeyCodec = lpmCodec(6);

export type DenyValue = StructValue<typeof STRUCTS.nrd_deny_value>;
export const denyValueCodec: Codec<DenyValue> = structCodec(STRUCTS.nrd_deny_value);

export type Counter = StructValue<typeof STRUCTS.nrd_counter>;
export const counterCodec: Codec<Counter> = structCodec(STRUCTS.nrd_counter);

export function sumCounters(cs: readonly Counter[]): Counter {
  let packets = 0n;
  let bytes = 0n;
  for (const c of cs) {
    packets += c.packets;
    bytes += c.bytes;
  }
  return { packets, bytes };
}

export type IfKey = StructValue<typeof STRUCTS.nrd_if_key>;
export const ifKeyCodec: Codec<IfKey> = structCodec(STRUCTS.nrd_if_key);

// ---- CIDRs --------------------------------------------------------------------------------------

/**
 * '192.0.2.0/24', '2001:db8::/32', or a bare address (a host prefix). Host bits are cleared, so
 * '192.0.2.7/24' and '192.0.2.0/24' are the same key. Throws on anything else, naming the value.
 */
export function parseCidr(text: string): Cidr {
  const r = ip.parseCidr(text, { bareIsHost: true });
  if (r.ok) {
    const { family, value, prefixLength } = r.cidr;
    return { family, prefixlen: prefixLength, addr: ip.ipValueToBytes(family, value) };
  }
  // The address is judged first, then the length against the address's family.
  const slash = text.indexOf('/');
  const addr = ip.parseIp(slash < 0 ? text : text.slice(0, slash));
  if (!addr) throw new Error(`invalid CIDR ${JSON.stringify(text)}: not an IPv4 or IPv6 address`);
  throw new Error(`invalid CIDR ${JSON.stringify(text)}: prefix length must be 0..${ip.familyBits(addr.family)}`);
}

/** Canonical text of a CIDR ('2001:db8::/32' style for IPv6: RFC 5952). */
export function formatCidr(c: Cidr): string {
  return `${ip.formatIpBytes(c.addr.subarray(0, c.family === 4 ? 4 : 16))}/${c.prefixlen}`;
}

// ---- typed map handle ---------------------------------------------------------------------------

let cpus: number | undefined;
/** Possible CPUs (the number of per-CPU value slots), cached. */
export function possibleCpus(): number {
  cpus ??= numPossibleCpus();
  return cpus;
}

/**
 * A map fd with key and value codecs. Lookups of missing keys return undefined and deletes of
 * missing keys return false; any other kernel error is thrown as a BpfError. Does not own the fd.
 */
export class TypedMap<K, V> {
  constructor(
    readonly fd: number,
    readonly key: Codec<K>,
    readonly value: Codec<V>,
  ) {}

  get(k: K): V | undefined {
    const out = Buffer.alloc(this.value.size);
    try {
      mapLookupElem(this.fd, this.key.encode(k), out);
    } catch (e) {
      if (isBpfError(e, 'ENOENT')) return undefined;
      throw e;
    }
    return this.value.decode(out);
  }

  set(k: K, v: V, flags = BPF_ANY): void {
    mapUpdateElem(this.fd, this.key.encode(k), this.value.encode(v), flags);
  }

  delete(k: K): boolean {
    try {
      mapDeleteElem(this.fd, this.key.encode(k));
      return true;
    } catch (e) {
      if (isBpfError(e, 'ENOENT')) return false;
      throw e;
    }
  }

  /** All keys (a snapshot; safe to delete while iterating the returned array). */
  keys(): K[] {
    const out: K[] = [];
    let prev: Buffer | null = null;
    for (;;) {
      const next = Buffer.alloc(this.key.size);
      try {
        mapGetNextKey(this.fd, prev, next);
      } catch (e) {
        if (isBpfError(e, 'ENOENT')) return out;
        throw e;
      }
      out.push(this.key.decode(next));
      prev = next;
    }
  }

  entries(): Array<[K, V]> {
    const out: Array<[K, V]> = [];
    for (const k of this.keys()) {
      const v = this.get(k);
      if (v !== undefined) out.push([k, v]);
    }
    return out;
  }
}

/** A per-CPU map: values are one slot per possible CPU, each rounded up to 8 bytes. */
export class PerCpuMap<K, V> {
  private readonly stride: number;

  constructor(
    readonly fd: number,
    readonly key: Codec<K>,
    readonly value: Codec<V>,
  ) {
    this.stride = Math.ceil(value.size / 8) * 8;
  }

  /** One value per possible CPU, or undefined if the key is missing. */
  get(k: K): V[] | undefined {
    const n = possibleCpus();
    const out = Buffer.alloc(this.stride * n);
    try {
      mapLookupElem(this.fd, this.key.encode(k), out);
    } catch (e) {
      if (isBpfError(e, 'ENOENT')) return undefined;
      throw e;
    }
    const vals: V[] = [];
    for (let i = 0; i < n; i++) vals.push(this.value.decode(out.subarray(i * this.stride, i * this.stride + this.value.size)));
    return vals;
  }

  /** Sets every CPU's slot to v (e.g. zero to reset a counter). */
  setAll(k: K, v: V, flags = BPF_ANY): void {
    const n = possibleCpus();
    const buf = Buffer.alloc(this.stride * n);
    const enc = this.value.encode(v);
    for (let i = 0; i < n; i++) enc.copy(buf, i * this.stride);
    mapUpdateElem(this.fd, this.key.encode(k), buf, flags);
  }

  delete(k: K): boolean {
    try {
      mapDeleteElem(this.fd, this.key.encode(k));
      return true;
    } catch (e) {
      if (isBpfError(e, 'ENOENT')) return false;
      throw e;
    }
  }

  keys(): K[] {
    return new TypedMap(this.fd, this.key, this.value).keys();
  }
}

/**
 * Makes an IPv4 + IPv6 pair of LPM maps hold exactly `desired` (canonical CIDR text → prefix and
 * value): entries not desired, or stored with host bits set (never written by nrd), are deleted;
 * a changed value is rewritten; missing ones are added. Unchanged entries are not touched, so a
 * lookup never misses during the change.
 */
export function reconcileLpmPair<V>(
  maps: { 4: TypedMap<Cidr, V>; 6: TypedMap<Cidr, V> },
  desired: ReadonlyMap<string, { cidr: Cidr; value: V }>,
  sameValue: (a: V, b: V) => boolean,
): void {
  const seen = new Set<string>();
  for (const map of [maps[4], maps[6]]) {
    for (const [k, v] of map.entries()) {
      const text = formatCidr(k);
      const want = desired.get(text);
      if (!want || !want.cidr.addr.equals(k.addr)) {
        map.delete(k);
      } else {
        seen.add(text);
        if (!sameValue(v, want.value)) map.set(want.cidr, want.value);
      }
    }
  }
  for (const [text, { cidr, value }] of desired) if (!seen.has(text)) maps[cidr.family].set(cidr, value);
}
