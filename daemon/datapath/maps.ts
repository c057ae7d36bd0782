// Codecs for the BPF map keys and values of bpf/include/nrd_shared.h, CIDR parsing for the LPM
// tries, and a typed handle over a map fd (bpf(2) BPF_MAP_* commands through libbpf.ts).
//
// Each codec declares the C layout it expects (LAYOUTS); test/unit/datapath/btf-layout.test.ts
// checks those against the BTF of the built objects, like Cilium's alignchecker.
import * as ip from '../lib/ip.js';
import type { StructLayout } from './btf.js';
import {
  BPF_ANY,
  isBpfError,
  mapDeleteElem,
  mapGetNextKey,
  mapLookupElem,
  mapUpdateElem,
  numPossibleCpus,
} from './libbpf.js';

// ---- layouts (must match nrd_shared.h) ----------------------------------------------------------

export const LAYOUTS = {
  nrd_lpm4_key: { name: 'nrd_lpm4_key', size: 8, fields: { prefixlen: { offset: 0, size: 4 }, addr: { offset: 4, size: 4 } } },
  nrd_lpm6_key: { name: 'nrd_lpm6_key', size: 20, fields: { prefixlen: { offset: 0, size: 4 }, addr: { offset: 4, size: 16 } } },
  nrd_deny_value: { name: 'nrd_deny_value', size: 8, fields: { rule: { offset: 0, size: 4 }, flags: { offset: 4, size: 4 } } },
  nrd_counter: { name: 'nrd_counter', size: 16, fields: { packets: { offset: 0, size: 8 }, bytes: { offset: 8, size: 8 } } },
  nrd_if_key: { name: 'nrd_if_key', size: 8, fields: { ifindex: { offset: 0, size: 4 }, dir: { offset: 4, size: 4 } } },
} as const satisfies Record<string, StructLayout>;

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
  const alen = family === 4 ? 4 : 16;
  return {
    size: 4 + alen,
    encode(c) {
      if (c.family !== family) throw new Error(`IPv${c.family} CIDR for an IPv${family} LPM key`);
      const b = Buffer.alloc(4 + alen);
      b.writeUInt32LE(c.prefixlen, 0);
      c.addr.copy(b, 4, 0, alen);
      return b;
    },
    decode(b) {
      return { family, prefixlen: b.readUInt32LE(0), addr: Buffer.from(b.subarray(4, 4 + alen)) };
    },
  };
}

export const lpm4KeyCodec = lpmCodec(4);
export const lpm6KeyCodec = lpmCodec(6);

export interface DenyValue {
  rule: number;
  flags: number;
}

export const denyValueCodec: Codec<DenyValue> = {
  size: 8,
  encode(v) {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(v.rule >>> 0, 0);
    b.writeUInt32LE(v.flags >>> 0, 4);
    return b;
  },
  decode: (b) => ({ rule: b.readUInt32LE(0), flags: b.readUInt32LE(4) }),
};

export interface Counter {
  packets: bigint;
  bytes: bigint;
}

export const counterCodec: Codec<Counter> = {
  size: 16,
  encode(v) {
    const b = Buffer.alloc(16);
    b.writeBigUInt64LE(v.packets, 0);
    b.writeBigUInt64LE(v.bytes, 8);
    return b;
  },
  decode: (b) => ({ packets: b.readBigUInt64LE(0), bytes: b.readBigUInt64LE(8) }),
};

export function sumCounters(cs: readonly Counter[]): Counter {
  let packets = 0n;
  let bytes = 0n;
  for (const c of cs) {
    packets += c.packets;
    bytes += c.bytes;
  }
  return { packets, bytes };
}

export interface IfKey {
  ifindex: number;
  dir: number;
}

export const ifKeyCodec: Codec<IfKey> = {
  size: 8,
  encode(v) {
    const b = Buffer.alloc(8);
    b.writeUInt32LE(v.ifindex >>> 0, 0);
    b.writeUInt32LE(v.dir >>> 0, 4);
    return b;
  },
  decode: (b) => ({ ifindex: b.readUInt32LE(0), dir: b.readUInt32LE(4) }),
};

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
