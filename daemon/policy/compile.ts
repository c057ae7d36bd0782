// Network policy compiler: PolicyRecords (Kubernetes NetworkPolicy semantics, networking.k8s.io/v1)
// → per local endpoint, whether ingress / egress is enforced and the (peer identity, protocol,
// port range) entries that are allowed, plus the CIDR peers as an LPM trie of CIDR identities;
// and the map writes between two compilations. Pure: identities come from the ipcache and the
// identity table, nothing here reads etcd or the kernel.
//
// Semantics (the K8s ones): a policy selects the endpoints whose labels include its selector ({}
// selects all). A selected endpoint is default-deny in a direction once any policy selecting it
// applies to that direction, and then admits what any rule of any such policy names (rules and
// policies are OR'ed, additive). K8s says a policy without `policyTypes` applies to Ingress always
// and to Egress when it has egress rules; records have no policyTypes, so nrd does exactly that: a
// policy with no ingress rules denies all ingress of what it selects, and an egress-only policy
// isolates ingress too. An empty peer list is every peer (the world included), an empty port list
// every port of every protocol (ICMP included); a port without endPort is one port, with it a
// range; a {labels} peer matches cluster identities (≥ 256) whose labels include them, never a
// reserved one; a {cidr} peer matches by address, whatever the identity behind it.
//
// Representation, chosen so the datapath needs at most three O(key bits) lookups per new flow:
// * nrd_policy: per endpoint an LPM trie, key struct nrd_policy_key { __u32 prefixlen; __u32
//   identity; __u8 dir; __u8 proto; __be16 port; } (12 bytes; identity little-endian, port network
//   order). The trie compares bits after prefixlen in memory order: identity and dir always (40),
//   then the protocol (48), then the top k bits of the port (48 + k). So "all protocols" is
//   prefixlen 40, "all ports of TCP" 48, port 80 exactly 64, and a range is split into at most 30
//   aligned power-of-two blocks (rangeToPrefixes; port/bits): 8000-8080 → 8000/10, 8064/12,
//   8080/16. Value struct nrd_policy_value { __u32 flags; __u32 pad; }, flags POLICY_ALLOW.
// * nrd_policy_cidr4 / nrd_policy_cidr6: one global LPM trie (nrd_lpm4_key / nrd_lpm6_key) of every
//   prefix any policy names → a CIDR identity from the local range 0x01000000-0x01ffffff. An
//   address's longest match P is inside exactly the named prefixes that contain P, so granting
//   each rule's CIDR C to the identities of all named P ⊆ C is exact even for nested prefixes.
// * The datapath: if the direction is not enforced, allow; else allow when the endpoint's trie
//   holds a match for the peer's ipcache identity, for ANY (0), or for the peer address's CIDR
//   identity. Enforcement flags are per endpoint: nrd_ep_policy (u32 endpoint id → u32 flags).
import { cidrContains, formatCidr, formatIp, type IpCidr, ipValueToBytes, maskOf, parseCidr, parseIp } from '../lib/ip.js';
import { IPPROTO } from '../lib/ip-proto.js';
import { diffKeyed, type Keyed } from '../lib/keyed-diff.js';
import { stableIds } from '../lib/stable-hash.js';
import { MIN_IDENTITY } from '../state/identities.js';
import type { Labels, PolicyPort, PolicyRecord, PolicyRule } from '../state/records.js';
import { ReservedIdentity, type LpmKey } from './ipcache.js';

export const Dir = { INGRESS: 0, EGRESS: 1 } as const;
export type DirValue = (typeof Dir)[keyof typeof Dir];
export const POLICY_F_INGRESS = 1;
export const POLICY_F_EGRESS = 2;
export const POLICY_ALLOW = 1;
export const CIDR_IDENTITY_MIN = 0x01000000;
export const CIDR_IDENTITY_MAX = 0x01ffffff;
const SEED_CIDR = 0x63696472; // "cidr"

/** Bits of nrd_policy_key after prefixlen: identity (32) + dir (8), protocol (8), port (16). */
const PLEN_ANY_PROTO = 40;
const PLEN_ANY_PORT = 48;

export interface PolicyKey {
  prefixlen: number;
  identity: number;
  dir: DirValue;
  /** IANA protocol number; 0 when prefixlen is 40 (any protocol). */
  proto: number;
  /** Host-order number; the codec writes it big-endian. Bits below the prefix are zero. */
  port: number;
}

export interface PolicyValue {
  flags: number;
}

export interface PolicyEndpoint {
  id: string;
  labels: Labels;
  identity: number;
  ips: readonly string[];
}

export interface EndpointPolicy {
  id: string;
  /** POLICY_F_INGRESS | POLICY_F_EGRESS: the directions that are default-deny. */
  flags: number;
  /** By key text. */
  entries: Map<string, Keyed<PolicyKey, PolicyValue>>;
}

export interface CompiledPolicy {
  endpoints: Map<string, EndpointPolicy>;
  /** Global CIDR → CIDR identity, by canonical prefix text. */
  cidrs: Map<string, Keyed<LpmKey, { identity: number }>>;
}

export interface CompileInput {
  policies: readonly PolicyRecord[];
  /** The local endpoints. */
  endpoints: readonly PolicyEndpoint[];
  /** Every cluster identity: id → labels. */
  identities: ReadonlyMap<number, Labels>;
}

export function selects(selector: Labels, labels: Labels): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false;
  return true;
}

/** [lo, hi] as aligned power-of-two blocks: (port, k significant bits); at most 30 for a 16-bit range. */
export function rangeToPrefixes(lo: number, hi: number): { port: number; bits: number }[] {
  const out: { port: number; bits: number }[] = [];
  let p = lo;
  while (p <= hi) {
    let size = 1;
    let bits = 16;
    while (bits > 0 && p % (size * 2) === 0 && p + size * 2 - 1 <= hi) {
      size *= 2;
      bits--;
    }
    out.push({ port: p, bits });
    p += size;
  }
  return out;
}

export function policyKeyText(k: PolicyKey): string {
  return `${k.identity}|${k.dir}|${k.proto}|${k.port}/${k.prefixlen}`;
}

/** The (proto, port prefix) parts a rule's port list allows. */
function portKeys(ports: readonly PolicyPort[]): { prefixlen: number; proto: number; port: number }[] {
  if (ports.length === 0) return [{ prefixlen: PLEN_ANY_PROTO, proto: 0, port: 0 }];
  const out: { prefixlen: number; proto: number; port: number }[] = [];
  for (const p of ports) {
    const proto = IPPROTO[p.protocol];
    if (p.port === undefined) out.push({ prefixlen: PLEN_ANY_PORT, proto, port: 0 });
    else for (const r of rangeToPrefixes(p.port, p.endPort ?? p.port)) out.push({ prefixlen: PLEN_ANY_PORT + r.bits, proto, port: r.port });
  }
  return out;
}

function parsedCidr(text: string): IpCidr {
  const r = parseCidr(text);
  if (!r.ok) throw new RangeError(`policy CIDR ${JSON.stringify(text)}: ${r.error}`);
  return r.cidr;
}

/** Compiles the policies for the local endpoints; `previous` keeps CIDR identities stable. */
export function compilePolicy(input: CompileInput, previous?: CompiledPolicy): CompiledPolicy {
  // Every prefix named anywhere gets one CIDR identity, the same on every node.
  const named = new Map<string, IpCidr>();
  for (const p of input.policies) {
    for (const r of [...p.ingress, ...p.egress]) {
      for (const peer of r.peers) if ('cidr' in peer) {
        const c = parsedCidr(peer.cidr);
        named.set(formatCidr(c), c);
      }
    }
  }
  const prevIds = previous ? new Map([...previous.cidrs].map(([t, e]) => [t, e.value.identity])) : undefined;
  const cidrIds = stableIds(named.keys(), { min: CIDR_IDENTITY_MIN, max: CIDR_IDENTITY_MAX, seed: SEED_CIDR, previous: prevIds });
  const cidrs: CompiledPolicy['cidrs'] = new Map();
  for (const [t, c] of named) {
    cidrs.set(t, { key: { family: c.family, prefixlen: c.prefixLength, addr: ipValueToBytes(c.family, c.value) }, value: { identity: cidrIds.get(t)! } });
  }
  const cluster = [...input.identities].filter(([id]) => id >= MIN_IDENTITY);
  const peerIds = (rule: PolicyRule): number[] => {
    if (rule.peers.length === 0) return [ReservedIdentity.ANY];
    const ids = new Set<number>();
    for (const peer of rule.peers) {
      if ('labels' in peer) {
        for (const [id, l] of cluster) if (selects(peer.labels, l)) ids.add(id);
      } else {
        const c = parsedCidr(peer.cidr);
        for (const [t, inner] of named) if (cidrContains(c, inner)) ids.add(cidrIds.get(t)!);
      }
    }
    return [...ids];
  };

  const endpoints: CompiledPolicy['endpoints'] = new Map();
  for (const ep of input.endpoints) {
    const selecting = input.policies.filter((p) => selects(p.selector, ep.labels));
    let flags = 0;
    if (selecting.length > 0) flags |= POLICY_F_INGRESS;
    if (selecting.some((p) => p.egress.length > 0)) flags |= POLICY_F_EGRESS;
    const entries: EndpointPolicy['entries'] = new Map();
    for (const p of selecting) {
      for (const [dir, rules] of [[Dir.INGRESS, p.ingress], [Dir.EGRESS, p.egress]] as const) {
        for (const rule of rules) {
          const pk = portKeys(rule.ports);
          for (const identity of peerIds(rule)) {
            for (const k of pk) {
              const key: PolicyKey = { prefixlen: k.prefixlen, identity, dir, proto: k.proto, port: k.port };
              entries.set(policyKeyText(key), { key, value: { flags: POLICY_ALLOW } });
            }
          }
        }
      }
    }
    endpoints.set(ep.id, { id: ep.id, flags, entries });
  }
  return { endpoints, cidrs };
}

export type PolicyOp =
  | { op: 'set-cidr'; key: LpmKey; identity: number }
  | { op: 'set-entry'; endpoint: string; key: PolicyKey; value: PolicyValue }
  | { op: 'set-flags'; endpoint: string; flags: number }
  | { op: 'delete-entry'; endpoint: string; key: PolicyKey }
  | { op: 'delete-endpoint'; endpoint: string }
  | { op: 'delete-cidr'; key: LpmKey };

/**
 * Map writes from `prev` (applied) to `next`. Allows go in before enforcement is switched on and
 * enforcement goes off before allows are removed, so no update drops a flow both states admit;
 * CIDR identities are written before the entries that name them and deleted after.
 */
export function diffPolicy(prev: CompiledPolicy, next: CompiledPolicy): PolicyOp[] {
  const ops: PolicyOp[] = [];
  const cd = diffKeyed(prev.cidrs, next.cidrs);
  for (const e of cd.set) ops.push({ op: 'set-cidr', key: e.key, identity: e.value.identity });
  const none = new Map<string, Keyed<PolicyKey, PolicyValue>>();
  const tail: PolicyOp[] = [];
  for (const [id, ep] of next.endpoints) {
    const old = prev.endpoints.get(id);
    const d = diffKeyed(old?.entries ?? none, ep.entries);
    const loosen = old !== undefined && (old.flags & ~ep.flags) !== 0;
    if (loosen) ops.push({ op: 'set-flags', endpoint: id, flags: ep.flags });
    for (const e of d.set) ops.push({ op: 'set-entry', endpoint: id, key: e.key, value: e.value });
    if (!loosen && (!old || old.flags !== ep.flags)) ops.push({ op: 'set-flags', endpoint: id, flags: ep.flags });
    for (const k of d.del) tail.push({ op: 'delete-entry', endpoint: id, key: k });
  }
  ops.push(...tail);
  for (const id of prev.endpoints.keys()) if (!next.endpoints.has(id)) ops.push({ op: 'delete-endpoint', endpoint: id });
  for (const k of cd.del) ops.push({ op: 'delete-cidr', key: k });
  return ops;
}

/** The CIDR identity of an address: the longest named prefix containing it (as the LPM trie answers), or null. */
export function cidrIdentityOf(compiled: CompiledPolicy, ip: string): number | null {
  const a = parseIp(ip);
  if (!a) return null;
  for (let len = a.family === 4 ? 32 : 128; len >= 0; len--) {
    const e = compiled.cidrs.get(`${formatIp(a.family, a.value & maskOf(a.family, len))}/${len}`);
    if (e) return e.value.identity;
  }
  return null;
}

/**
 * The datapath's decision, written as the BPF program will do it (the reference its tests are
 * checked against): per candidate identity, a longest-prefix probe of the endpoint's trie.
 */
export function lookupPolicy(
  compiled: CompiledPolicy,
  endpoint: string,
  dir: DirValue,
  peer: { identity: number; ip: string },
  proto: number,
  port: number,
): boolean {
  const ep = compiled.endpoints.get(endpoint);
  if (!ep) return true;
  if (!(ep.flags & (dir === Dir.INGRESS ? POLICY_F_INGRESS : POLICY_F_EGRESS))) return true;
  const candidates = [peer.identity, ReservedIdentity.ANY];
  const cidrId = cidrIdentityOf(compiled, peer.ip);
  if (cidrId !== null) candidates.push(cidrId);
  for (const identity of candidates) {
    if (ep.entries.has(policyKeyText({ prefixlen: PLEN_ANY_PROTO, identity, dir, proto: 0, port: 0 }))) return true;
    for (let bits = 16; bits >= 0; bits--) {
      const masked = bits === 0 ? 0 : (port >> (16 - bits)) << (16 - bits);
      if (ep.entries.has(policyKeyText({ prefixlen: PLEN_ANY_PORT + bits, identity, dir, proto, port: masked }))) return true;
    }
  }
  return false;
}
