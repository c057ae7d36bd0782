// Record types stored in etcd (JSON values) and their validation: pure functions that either
// return the normalised record or a reason naming the field and the value; nothing is written
// for input that does not validate.
import { familyOf, parseCidr } from './ipnet.js';

export type Result<T> = { ok: true; value: T } | { ok: false; reason: string };

export type Labels = Record<string, string>;

export interface NodeRecord {
  name: string;
  /** Underlay address. */
  address: string;
  vtepMac?: string;
  asn?: number;
  podCidrs: string[];
  version: string;
  capabilities: string[];
}

export interface CidrClaim {
  node: string;
  /** Set statically in the node's config (never reclaimed while the node lives). */
  static?: boolean;
  at: string;
}

export interface EndpointRecord {
  id: string;
  node: string;
  ips: string[];
  mac?: string;
  ifname?: string;
  netns: string;
  labels: Labels;
  identity?: number;
}

export interface IpReservation {
  node: string;
  endpoint: string;
}

export interface IdentityRecord {
  id: number;
  labels: Labels;
  /**
   * Per node: the endpoint ids using this identity. Sets rather than counts make acquire and
   * release idempotent, so a write whose reply was lost can simply be re-applied.
   */
  refs: Record<string, string[]>;
}

export type Protocol = 'tcp' | 'udp' | 'sctp';
export const PROTOCOLS: readonly Protocol[] = ['tcp', 'udp', 'sctp'];

export interface ServiceRecord {
  name: string;
  vip: string;
  port: number;
  protocol: Protocol;
  backends: { ip: string; port: number }[];
}

export type PolicyPeer = { labels: Labels } | { cidr: string };
export interface PolicyPort {
  port?: number;
  endPort?: number;
  protocol: Protocol;
}
export interface PolicyRule {
  peers: PolicyPeer[];
  ports: PolicyPort[];
}
export interface PolicyRecord {
  name: string;
  selector: Labels;
  ingress: PolicyRule[];
  egress: PolicyRule[];
}

// ---- validation helpers -------------------------------------------------------------------------

const NAME_RE = /^[a-z0-9]([a-z0-9._-]{0,61}[a-z0-9])?$/;
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const LABEL_KEY_RE = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,252}[A-Za-z0-9])?$/;
const LABEL_VALUE_RE = /^([A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?)?$/;
const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

class Invalid extends Error {}
const fail = (reason: string): never => {
  throw new Invalid(reason);
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  const s = JSON.stringify(v);
  return s === undefined ? String(v) : s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function onlyFields(where: string, o: Record<string, unknown>, allowed: string[]): void {
  for (const k of Object.keys(o)) if (!allowed.includes(k)) fail(`${where}: unknown field "${k}"`);
}

function str(where: string, v: unknown): string {
  if (typeof v !== 'string') fail(`${where}: expected a string, got ${show(v)}`);
  return v as string;
}

function name(where: string, v: unknown): string {
  const s = str(where, v);
  if (!NAME_RE.test(s)) fail(`${where}: "${s}" is not a valid name (lowercase letters, digits, '.', '-', '_'; at most 63)`);
  return s;
}

function port(where: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535) fail(`${where}: port must be an integer 1-65535, got ${show(v)}`);
  return v as number;
}

function protocol(where: string, v: unknown): Protocol {
  const s = typeof v === 'string' ? v.toLowerCase() : v;
  if (!PROTOCOLS.includes(s as Protocol)) fail(`${where}: protocol must be one of ${PROTOCOLS.join(', ')}, got ${show(v)}`);
  return s as Protocol;
}

function ip(where: string, v: unknown): string {
  const s = str(where, v);
  if (familyOf(s) === null) fail(`${where}: "${s}" is not an IP address`);
  return s;
}

function cidr(where: string, v: unknown): string {
  const s = str(where, v);
  try {
    parseCidr(s);
  } catch (e) {
    fail(`${where}: ${(e as Error).message}`);
  }
  return s;
}

export function labels(where: string, v: unknown): Labels {
  if (!isObject(v)) fail(`${where}: expected a map of labels, got ${show(v)}`);
  const out: Labels = {};
  for (const [k, val] of Object.entries(v as Record<string, unknown>)) {
    if (!LABEL_KEY_RE.test(k)) fail(`${where}: label key ${show(k)} is invalid`);
    if (typeof val !== 'string' || !LABEL_VALUE_RE.test(val)) fail(`${where}.${k}: label value ${show(val)} is invalid`);
    out[k] = val as string;
  }
  return out;
}

function run<T>(fn: () => T): Result<T> {
  try {
    return { ok: true, value: fn() };
  } catch (e) {
    if (e instanceof Invalid) return { ok: false, reason: e.message };
    throw e;
  }
}

// ---- records ------------------------------------------------------------------------------------

export function validateLabels(where: string, v: unknown): Result<Labels> {
  return run(() => labels(where, v));
}

export function validateService(input: unknown): Result<ServiceRecord> {
  return run(() => {
    if (!isObject(input)) fail(`service: expected an object, got ${show(input)}`);
    const o = input as Record<string, unknown>;
    onlyFields('service', o, ['name', 'vip', 'port', 'protocol', 'backends']);
    const n = name('service.name', o.name);
    const vip = ip('service.vip', o.vip);
    const p = port('service.port', o.port);
    const proto = protocol('service.protocol', o.protocol ?? 'tcp');
    const bIn = o.backends ?? [];
    if (!Array.isArray(bIn)) fail(`service.backends: expected a list, got ${show(bIn)}`);
    const seen = new Set<string>();
    const backends = (bIn as unknown[]).map((b, i) => {
      const w = `service.backends[${i}]`;
      if (!isObject(b)) fail(`${w}: expected {ip, port}, got ${show(b)}`);
      const bo = b as Record<string, unknown>;
      onlyFields(w, bo, ['ip', 'port']);
      const bip = ip(`${w}.ip`, bo.ip);
      if (familyOf(bip) !== familyOf(vip)) fail(`${w}.ip: ${bip} is not of the VIP's address family (${vip})`);
      const bport = port(`${w}.port`, bo.port ?? p);
      const k = `${bip}|${bport}`;
      if (seen.has(k)) fail(`${w}: duplicate backend ${bip} port ${bport}`);
      seen.add(k);
      return { ip: bip, port: bport };
    });
    return { name: n, vip, port: p, protocol: proto, backends };
  });
}

function rule(where: string, v: unknown, peerField: 'from' | 'to'): PolicyRule {
  if (!isObject(v)) fail(`${where}: expected a rule object, got ${show(v)}`);
  const o = v as Record<string, unknown>;
  onlyFields(where, o, [peerField, 'ports']);
  const pIn = o[peerField] ?? [];
  if (!Array.isArray(pIn)) fail(`${where}.${peerField}: expected a list, got ${show(pIn)}`);
  const peers = (pIn as unknown[]).map((p, i): PolicyPeer => {
    const w = `${where}.${peerField}[${i}]`;
    if (!isObject(p)) fail(`${w}: expected {labels} or {cidr}, got ${show(p)}`);
    const po = p as Record<string, unknown>;
    onlyFields(w, po, ['labels', 'cidr']);
    if ((po.labels === undefined) === (po.cidr === undefined)) fail(`${w}: exactly one of labels or cidr is required`);
    return po.labels !== undefined ? { labels: labels(`${w}.labels`, po.labels) } : { cidr: cidr(`${w}.cidr`, po.cidr) };
  });
  const portsIn = o.ports ?? [];
  if (!Array.isArray(portsIn)) fail(`${where}.ports: expected a list, got ${show(portsIn)}`);
  const ports = (portsIn as unknown[]).map((p, i): PolicyPort => {
    const w = `${where}.ports[${i}]`;
    if (!isObject(p)) fail(`${w}: expected {port, protocol}, got ${show(p)}`);
    const po = p as Record<string, unknown>;
    onlyFields(w, po, ['port', 'endPort', 'protocol']);
    const out: PolicyPort = { protocol: protocol(`${w}.protocol`, po.protocol ?? 'tcp') };
    if (po.port !== undefined) out.port = port(`${w}.port`, po.port);
    if (po.endPort !== undefined) {
      if (out.port === undefined) fail(`${w}.endPort: needs port`);
      out.endPort = port(`${w}.endPort`, po.endPort);
      if (out.endPort < out.port!) fail(`${w}.endPort: ${out.endPort} is below port ${out.port}`);
    }
    return out;
  });
  return { peers, ports };
}

export function validatePolicy(input: unknown): Result<PolicyRecord> {
  return run(() => {
    if (!isObject(input)) fail(`policy: expected an object, got ${show(input)}`);
    const o = input as Record<string, unknown>;
    onlyFields('policy', o, ['name', 'selector', 'ingress', 'egress']);
    const n = name('policy.name', o.name);
    if (o.selector === undefined) fail('policy.selector: required (use {} to select every endpoint)');
    const selector = labels('policy.selector', o.selector);
    const list = (field: 'ingress' | 'egress'): PolicyRule[] => {
      const v = o[field] ?? [];
      if (!Array.isArray(v)) fail(`policy.${field}: expected a list of rules, got ${show(v)}`);
      return (v as unknown[]).map((r, i) => rule(`policy.${field}[${i}]`, r, field === 'ingress' ? 'from' : 'to'));
    };
    return { name: n, selector, ingress: list('ingress'), egress: list('egress') };
  });
}

export function validateEndpoint(input: unknown): Result<EndpointRecord> {
  return run(() => {
    if (!isObject(input)) fail(`endpoint: expected an object, got ${show(input)}`);
    const o = input as Record<string, unknown>;
    onlyFields('endpoint', o, ['id', 'node', 'ips', 'mac', 'ifname', 'netns', 'labels', 'identity']);
    const id = str('endpoint.id', o.id);
    if (!ID_RE.test(id)) fail(`endpoint.id: "${id}" is invalid (letters, digits, '.', '_', ':', '-'; at most 128)`);
    const node = name('endpoint.node', o.node);
    if (!Array.isArray(o.ips)) fail(`endpoint.ips: expected a list, got ${show(o.ips)}`);
    const ips = (o.ips as unknown[]).map((x, i) => ip(`endpoint.ips[${i}]`, x));
    const rec: EndpointRecord = { id, node, ips, netns: str('endpoint.netns', o.netns), labels: labels('endpoint.labels', o.labels ?? {}) };
    if (o.mac !== undefined) {
      const mac = str('endpoint.mac', o.mac).toLowerCase();
      if (!MAC_RE.test(mac)) fail(`endpoint.mac: "${mac}" is not a MAC address`);
      rec.mac = mac;
    }
    if (o.ifname !== undefined) rec.ifname = str('endpoint.ifname', o.ifname);
    if (o.identity !== undefined) {
      if (typeof o.identity !== 'number' || !Number.isInteger(o.identity) || o.identity < 1) fail(`endpoint.identity: ${show(o.identity)} is invalid`);
      rec.identity = o.identity as number;
    }
    return rec;
  });
}

export function isValidName(s: string): boolean {
  return NAME_RE.test(s);
}

export function isValidEndpointId(s: string): boolean {
  return ID_RE.test(s);
}

/** Canonical text of a label set: sorted `k=v` joined by ','; equal sets give equal text. */
export function canonicalLabels(l: Labels): string {
  return Object.keys(l)
    .sort()
    .map((k) => `${k}=${l[k]}`)
    .join(',');
}

/** JSON.parse that returns null instead of throwing (records written by others may be corrupt). */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return null;
  }
}

export function decodeNode(raw: string): NodeRecord | null {
  const o = parseJson(raw);
  if (!isObject(o) || typeof o.name !== 'string' || typeof o.address !== 'string' || !Array.isArray(o.podCidrs)) return null;
  return o as unknown as NodeRecord;
}

export function decodeCidrClaim(raw: string): CidrClaim | null {
  const o = parseJson(raw);
  if (!isObject(o) || typeof o.node !== 'string') return null;
  return o as unknown as CidrClaim;
}

export function decodeEndpoint(raw: string): EndpointRecord | null {
  const r = validateEndpoint(parseJson(raw));
  return r.ok ? r.value : null;
}

export function decodeIpReservation(raw: string): IpReservation | null {
  const o = parseJson(raw);
  if (!isObject(o) || typeof o.node !== 'string' || typeof o.endpoint !== 'string') return null;
  return o as unknown as IpReservation;
}

export function decodeIdentity(raw: string): IdentityRecord | null {
  const o = parseJson(raw);
  if (!isObject(o) || typeof o.id !== 'number' || !isObject(o.labels) || !isObject(o.refs)) return null;
  return o as unknown as IdentityRecord;
}

/** Validates a policy as stored (normalised: `peers`; the validator reads the input form `from` / `to`). */
export function validatePolicyRecord(o: unknown): Result<PolicyRecord> {
  if (!isObject(o)) return { ok: false, reason: `policy: expected an object, got ${show(o)}` };
  const back = (rules: unknown, field: 'from' | 'to'): unknown =>
    Array.isArray(rules)
      ? rules.map((r) => {
          if (!isObject(r) || !('peers' in r)) return r;
          const { peers, ...rest } = r;
          return { ...rest, [field]: peers };
        })
      : rules;
  return validatePolicy({ ...o, ...(o.ingress !== undefined ? { ingress: back(o.ingress, 'from') } : {}), ...(o.egress !== undefined ? { egress: back(o.egress, 'to') } : {}) });
}

export function decodePolicy(raw: string): PolicyRecord | null {
  const r = validatePolicyRecord(parseJson(raw));
  return r.ok ? r.value : null;
}
