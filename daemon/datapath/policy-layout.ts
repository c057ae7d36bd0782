// Layouts of the identity-policy maps of bpf/include/nrd_policy.h (nrd_policy, nrd_ep_policy,
// nrd_pol_cidr4/6, nrd_ipcache4/6, nrd_pol_rev, nrd_pol_ct), described once as in
// services-layout.ts and checked against the objects' BTF by test/unit/datapath/policy-layout.test.ts.
//
// nrd_policy is one LPM trie for all local endpoints: its key starts with the numeric endpoint id,
// so the prefix length is the one daemon/policy/compile.ts computes for the (identity, dir, proto,
// port) part plus 32 (40 → 72 "any protocol", 48 → 80 "any port", 48 + k → 80 + k). The codec
// takes compile.ts's PolicyKey unchanged and adds the endpoint.
import type { DirValue, PolicyKey, PolicyValue } from '../policy/compile.js';
import type { IpcacheValue } from '../policy/ipcache.js';
import { type Codec, type StructSpec, structCodec } from './maps.js';

type Kind = 'u32' | 'u64' | 'bytes';
const fld = <N extends string, K extends Kind>(name: N, offset: number, size: number, kind: K) =>
  ({ name, offset, size, kind }) as const;

export const POLICY_STRUCTS = {
  nrd_policy_key: {
    name: 'nrd_policy_key', size: 16,
    fields: [
      fld('prefixlen', 0, 4, 'u32'), fld('endpoint', 4, 4, 'u32'), fld('identity', 8, 4, 'u32'), fld('dir', 12, 1, 'bytes'),
      fld('proto', 13, 1, 'bytes'), fld('port_be', 14, 2, 'bytes'),
    ],
  },
  nrd_policy_value: { name: 'nrd_policy_value', size: 8, fields: [fld('flags', 0, 4, 'u32'), fld('pad', 4, 4, 'u32')] },
  nrd_ipcache_value: { name: 'nrd_ipcache_value', size: 8, fields: [fld('identity', 0, 4, 'u32'), fld('flags', 4, 4, 'u32')] },
  nrd_pol_ct_value: {
    name: 'nrd_pol_ct_value', size: 8, fields: [fld('revision', 0, 4, 'u32'), fld('reason', 4, 1, 'bytes'), fld('flags', 5, 1, 'bytes'), fld('pad', 6, 2, 'bytes')],
  },
  nrd_flow_key: {
    name: 'nrd_flow_key', size: 40,
    fields: [
      fld('saddr', 0, 16, 'bytes'), fld('daddr', 16, 16, 'bytes'), fld('sport_be', 32, 2, 'bytes'), fld('dport_be', 34, 2, 'bytes'),
      fld('proto', 36, 1, 'bytes'), fld('family', 37, 1, 'bytes'), fld('dir', 38, 1, 'bytes'), fld('pad', 39, 1, 'bytes'),
    ],
  },
} as const satisfies Record<string, StructSpec>;

/** The policy maps (all defined in nrd_policy.h, so in both endpoint objects, pinned by name). */
export const POLICY_MAPS = {
  nrd_policy: { key: 'nrd_policy_key', value: 'nrd_policy_value' },
  nrd_ep_policy: { key: 'u32', value: 'u32' },
  nrd_pol_cidr4: { key: 'nrd_lpm4_key', value: 'u32' },
  nrd_pol_cidr6: { key: 'nrd_lpm6_key', value: 'u32' },
  nrd_ipcache4: { key: 'nrd_lpm4_key', value: 'nrd_ipcache_value' },
  nrd_ipcache6: { key: 'nrd_lpm6_key', value: 'nrd_ipcache_value' },
  nrd_pol_rev: { key: 'u32', value: 'u32' },
  nrd_pol_ct: { key: 'nrd_flow_key', value: 'nrd_pol_ct_value' },
} as const;
export const POLICY_MAP_NAMES = Object.keys(POLICY_MAPS) as Array<keyof typeof POLICY_MAPS>;

/** Bits of the endpoint id that lead nrd_policy_key: compile.ts prefix lengths + this. */
export const POLICY_ENDPOINT_BITS = 32;

/** Reasons a flow was allowed (nrd_pol_ct value, forwarded flow events). */
export const ForwardReason = { no_policy: 0, policy: 1, established: 2, reply: 3 } as const;

export interface BpfPolicyKey {
  /** Numeric endpoint id (nrd_ep_value.id). */
  endpoint: number;
  key: PolicyKey;
}

function adapt<R, T>(raw: Codec<R>, enc: (v: T) => R, dec: (r: R) => T): Codec<T> {
  return { size: raw.size, encode: (v) => raw.encode(enc(v)), decode: (b) => dec(raw.decode(b)) };
}

export const bpfPolicyKeyCodec: Codec<BpfPolicyKey> = adapt(
  structCodec(POLICY_STRUCTS.nrd_policy_key),
  (v) => {
    const port = Buffer.alloc(2);
    port.writeUInt16BE(v.key.port, 0);
    return {
      prefixlen: v.key.prefixlen + POLICY_ENDPOINT_BITS, endpoint: v.endpoint, identity: v.key.identity,
      dir: Buffer.from([v.key.dir]), proto: Buffer.from([v.key.proto]), port_be: port,
    };
  },
  (r) => ({
    endpoint: r.endpoint,
    key: { prefixlen: r.prefixlen - POLICY_ENDPOINT_BITS, identity: r.identity, dir: r.dir[0]! as DirValue, proto: r.proto[0]!, port: r.port_be.readUInt16BE(0) },
  }),
);

export const bpfPolicyValueCodec: Codec<PolicyValue> = adapt(
  structCodec(POLICY_STRUCTS.nrd_policy_value),
  (v) => ({ flags: v.flags, pad: 0 }),
  (r) => ({ flags: r.flags }),
);

export const ipcacheValueCodec: Codec<IpcacheValue> = adapt(
  structCodec(POLICY_STRUCTS.nrd_ipcache_value),
  (v) => v,
  (r) => ({ identity: r.identity, flags: r.flags }),
);
