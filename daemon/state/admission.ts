// Admission of every record read from etcd, before anything in nrd uses it. etcd is shared by
// every node (and by whoever else holds credentials), so a record is input, not truth: a CIDR
// claim becomes a kernel route and a node address a next hop or a VXLAN peer. Each check is a
// pure function of (key, value, cluster rules) that returns the typed record or a reason with a
// stable code (the `reason` label of nrd_state_rejected_records_total). A rejected record is
// treated as absent: one bad record never stops the others.
import { nodeNameProblem } from '../config/formats.js';
import type { PoolConfig } from './cidr-alloc.js';
import { cidrContains, cidrContainsIp, formatCidr, parseCidr, parseIp, type Cidr, type Family } from './ipnet.js';
import type { Keys } from './keys.js';
import { leaf } from './keys.js';
import type { AliveValue } from './node-view.js';
import { freezeService } from './service-set.js';
import {
  parseJson,
  validateEndpoint,
  validatePolicyRecord,
  validateService,
  type CidrClaim,
  type EndpointRecord,
  type IdentityRecord,
  type NodeRecord,
  type PolicyRecord,
  type ServiceRecord,
} from './records.js';

/** Why a record was refused; a closed set, so the metric's label stays bounded. */
export type RejectReason =
  /** Not JSON, or not the record's shape. */
  | 'malformed'
  /** A node name that is not a host name (node.name's rule), or a key that disagrees with it (a service's too). */
  | 'bad_name'
  /** Not an IP, or one no node can be reached at (unspecified, loopback, multicast, …). */
  | 'bad_address'
  | 'bad_mac'
  | 'bad_asn'
  /** A CIDR-claim key that names no configured pool or holds no CIDR. */
  | 'bad_key'
  /** Not a CIDR in canonical form (host bits set, RFC 5952 text). */
  | 'bad_cidr'
  /** A CIDR or address outside every cluster pool of its family (cluster.podCIDRs). */
  | 'outside_pool'
  /** A claimed CIDR whose length is not the pool's node mask size. */
  | 'wrong_mask'
  /** Refused by the record's own validator (services, policies, endpoints): see the message. */
  | 'invalid';

export type Admission<T> = { ok: true; value: T } | { ok: false; reason: RejectReason; message: string };

/** What the cluster's configuration says a record must agree with. */
export interface AdmissionRules {
  pools: readonly PoolConfig[];
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

const ok = <T>(value: T): Admission<T> => ({ ok: true, value });
const no = <T>(reason: RejectReason, message: string): Admission<T> => ({ ok: false, reason, message });

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Ranges where no node's underlay address can be: nothing routes to them across a fabric. */
const NOT_UNDERLAY: readonly { cidr: Cidr; what: string }[] = [
  ['0.0.0.0/8', 'unspecified ("this network", RFC 1122)'],
  ['127.0.0.0/8', 'loopback'],
  ['169.254.0.0/16', 'link-local'],
  ['224.0.0.0/4', 'multicast'],
  ['240.0.0.0/4', 'reserved or broadcast (RFC 1112)'],
  ['::/128', 'unspecified'],
  ['::1/128', 'loopback'],
  ['::ffff:0:0/96', 'IPv4-mapped (use the IPv4 address)'],
  ['fe80::/10', 'link-local'],
  ['ff00::/8', 'multicast'],
].map(([c, what]) => ({ cidr: parseCidr(c!), what: what! }));

function poolCidrs(rules: AdmissionRules): { pool: PoolConfig; cidr: Cidr }[] {
  return rules.pools.map((pool) => ({ pool, cidr: parseCidr(pool.cidr) }));
}

/** Why `text` cannot be a node's underlay address, or null when it can. */
export function underlayProblem(text: string, rules: AdmissionRules): string | null {
  let a: { family: Family; addr: bigint };
  try {
    a = parseIp(text);
  } catch {
    return `"${text}" is not an IP address`;
  }
  for (const r of NOT_UNDERLAY) if (cidrContainsIp(r.cidr, a.family, a.addr)) return `${text} is ${r.what}`;
  // Pod addresses are routed towards nodes; a node addressed inside a pool would be a loop.
  for (const p of poolCidrs(rules)) if (cidrContainsIp(p.cidr, a.family, a.addr)) return `${text} is inside pod pool ${p.pool.cidr}`;
  return null;
}

/** A unicast MAC (I/G bit clear: a VXLAN FDB entry to a group address floods) and not all zero. */
export function vtepMacProblem(mac: unknown): string | null {
  if (typeof mac !== 'string' || !MAC_RE.test(mac)) return `${JSON.stringify(mac)} is not a MAC address in lower case`;
  const first = parseInt(mac.slice(0, 2), 16);
  if (first & 1) return `${mac} is a multicast MAC`;
  if (mac === '00:00:00:00:00:00') return `${mac} is the zero MAC`;
  return null;
}

/** Same range as bgp.asn in the config. */
export function asnProblem(asn: unknown): string | null {
  return typeof asn === 'number' && Number.isInteger(asn) && asn >= 1 && asn <= 4294967295 ? null : `${JSON.stringify(asn)} is not an AS number 1..4294967295`;
}

/** A node name as node.name allows it (a host name), in lower case as nrd keys it. */
export function nodeNameIssue(name: unknown): string | null {
  if (typeof name !== 'string') return `${JSON.stringify(name)} is not a node name`;
  const p = nodeNameProblem(name);
  if (p) return `"${name}" ${p}`;
  return name === name.toLowerCase() ? null : `"${name}" is not in lower case`;
}

export function admitNode(key: string, raw: string, rules: AdmissionRules): Admission<NodeRecord> {
  const o = parseJson(raw);
  if (!isObject(o) || !Array.isArray(o.podCidrs)) return no('malformed', 'not a node record');
  const nameIssue = nodeNameIssue(o.name);
  if (nameIssue) return no('bad_name', `name: ${nameIssue}`);
  if (o.name !== leaf(key)) return no('bad_name', `name "${String(o.name)}" differs from the key's (${leaf(key)})`);
  if (typeof o.address !== 'string') return no('bad_address', 'address: missing');
  const addr = underlayProblem(o.address, rules);
  if (addr) return no('bad_address', `address: ${addr}`);
  if (o.vtepMac !== undefined) {
    const m = vtepMacProblem(o.vtepMac);
    if (m) return no('bad_mac', `vtepMac: ${m}`);
  }
  if (o.asn !== undefined) {
    const a = asnProblem(o.asn);
    if (a) return no('bad_asn', `asn: ${a}`);
  }
  // podCidrs, version and capabilities are informational (routes come from the claims).
  const rec: NodeRecord = {
    name: o.name as string,
    address: o.address,
    podCidrs: o.podCidrs.filter((c): c is string => typeof c === 'string'),
    version: typeof o.version === 'string' ? o.version : '',
    capabilities: Array.isArray(o.capabilities) ? o.capabilities.filter((c): c is string => typeof c === 'string') : [],
  };
  if (o.vtepMac !== undefined) rec.vtepMac = o.vtepMac as string;
  if (o.asn !== undefined) rec.asn = o.asn as number;
  return ok(rec);
}

/**
 * A liveness key counts whatever its value (the lease is what matters, and a node wrongly seen
 * dead would lose its CIDRs after the grace period); a bad address in it is dropped and reported.
 */
export function admitAlive(key: string, raw: string, rules: AdmissionRules): { value: AliveValue; rejected?: { reason: RejectReason; message: string } } {
  const o = parseJson(raw);
  if (!isObject(o) || o.address === undefined) return { value: {} };
  const p = typeof o.address === 'string' ? underlayProblem(o.address, rules) : 'address is not a string';
  if (p) return { value: {}, rejected: { reason: 'bad_address', message: `${leaf(key)}: ${p}` } };
  return { value: { address: o.address as string } };
}

/** A claim is a route: it must be one node-sized block of the pool its key names. */
export function admitCidrClaim(keys: Keys, key: string, raw: string, rules: AdmissionRules): Admission<CidrClaim & { pool: string; cidr: string }> {
  const k = keys.parseCidrKey(key);
  if (!k) return no('bad_key', 'not a CIDR-claim key');
  const pool = rules.pools.find((p) => p.name === k.pool);
  if (!pool) return no('bad_key', `pool "${k.pool}" is not configured (cluster.podCIDRs)`);
  let c: Cidr;
  try {
    c = parseCidr(k.cidr);
  } catch (e) {
    return no('bad_cidr', (e as Error).message);
  }
  if (formatCidr(c) !== k.cidr) return no('bad_cidr', `"${k.cidr}" is not in canonical form (${formatCidr(c)})`);
  const poolCidr = parseCidr(pool.cidr);
  if (c.family !== poolCidr.family || !cidrContains(poolCidr, c)) return no('outside_pool', `${k.cidr} is not inside pool ${pool.name} (${pool.cidr})`);
  if (c.prefixLen !== pool.maskSize) return no('wrong_mask', `${k.cidr} is not a /${pool.maskSize} (the node CIDR size of pool ${pool.name})`);
  const o = parseJson(raw);
  if (!isObject(o)) return no('malformed', 'not a CIDR claim');
  const nameIssue = nodeNameIssue(o.node);
  if (nameIssue) return no('bad_name', `node: ${nameIssue}`);
  const claim: CidrClaim & { pool: string; cidr: string } = { node: o.node as string, at: typeof o.at === 'string' ? o.at : '', pool: k.pool, cidr: k.cidr };
  if (o.static === true) claim.static = true;
  return ok(claim);
}

export function admitEndpoint(key: string, raw: string, rules: AdmissionRules): Admission<EndpointRecord> {
  const r = validateEndpoint(parseJson(raw));
  if (!r.ok) return no('invalid', r.reason);
  const e = r.value;
  const pools = poolCidrs(rules);
  for (const text of e.ips) {
    const a = parseIp(text);
    if (!pools.some((p) => cidrContainsIp(p.cidr, a.family, a.addr))) return no('outside_pool', `ip ${text} is not inside a pod pool`);
  }
  // Keyed <prefix>/endpoints/<node>/<id>: a record must not speak for another node.
  if (!key.endsWith(`/${e.node}/${e.id}`)) return no('bad_name', `node/id ${e.node}/${e.id} differ from the key's`);
  return ok(e);
}

export function admitIdentity(raw: string): Admission<IdentityRecord> {
  const o = parseJson(raw);
  if (!isObject(o) || typeof o.id !== 'number' || !isObject(o.labels) || !isObject(o.refs)) return no('malformed', 'not an identity record');
  return ok(o as unknown as IdentityRecord);
}

/**
 * A service as validateService allows it, under the key of its name (names are unique in the
 * collection: consumers key services by name), deeply frozen: the state layer hands this object to
 * every consumer for as long as the key holds this value (service-set.ts).
 */
export function admitService(key: string, raw: string): Admission<ServiceRecord> {
  const r = validateService(parseJson(raw));
  if (!r.ok) return no('invalid', r.reason);
  if (r.value.name !== leaf(key)) return no('bad_name', `name "${r.value.name}" differs from the key's (${leaf(key)})`);
  return ok(freezeService(r.value));
}

export function admitPolicy(raw: string): Admission<PolicyRecord> {
  const r = validatePolicyRecord(parseJson(raw));
  return r.ok ? ok(r.value) : no('invalid', r.reason);
}
