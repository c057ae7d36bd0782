// The pure core of the endpoints subsystem: validation of an add request, the host-side interface
// name of an endpoint (stable, owner-marked, within IFNAMSIZ), and the desired sets computed from
// the known endpoints (the endpoint owner's kernel specs, the datapath's LocalEndpoint list).
// No I/O here: the unit tests call every function directly.
import { createHash, randomBytes } from 'node:crypto';
import { ENDPOINT_MARK } from '../kernel/owners.js';
import type { EndpointKernelSpec } from '../kernel/endpoint-owner.js';
import { NrdError } from '../lib/errors.js';
import type { LocalEndpoint } from '../lib/endpoint-types.js';
import { isValidEndpointId, validateLabels, type EndpointRecord, type Labels } from '../state/records.js';

/** Interface name inside the workload when the request names none (what CNI and Docker use). */
export const DEFAULT_IFNAME = 'eth0';
/** IFNAMSIZ 16 with the NUL. */
export const IFNAME_MAX = 15;
/** Hex digits of the hash in a host interface name: "nrdv" + 11 = 15 characters, 44 bits. */
const HASH_DIGITS = IFNAME_MAX - ENDPOINT_MARK.linkPrefix.length;

/**
 * The host side of an endpoint's veth: the endpoints' mark ("nrdv") and the first hex digits of
 * SHA-256 of the id. Stable across restarts and nodes (the name is how a restarted nrd finds the
 * link of a record), never longer than IFNAMSIZ-1, and free of any character the id may hold.
 */
export function hostIfName(id: string): string {
  return ENDPOINT_MARK.linkPrefix + createHash('sha256').update(id, 'utf8').digest('hex').slice(0, HASH_DIGITS);
}

/** Kernel interface names: 1..15 bytes, no '/', ':', whitespace; not "." or "..". */
const IFNAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

export function ifnameIssue(name: string): string | undefined {
  if (!IFNAME_RE.test(name)) return `"${name}" is not an interface name (1-${IFNAME_MAX} of letters, digits, '_', '.', '-')`;
  if (name === '.' || name === '..') return `"${name}" is not an interface name`;
  if (name === 'lo') return '"lo" is the loopback of the namespace';
  return undefined;
}

/** A validated add request. */
export interface AddRequest {
  name: string;
  netns: string;
  ifname: string;
  labels: Labels;
}

const FIELDS = ['name', 'netns', 'ifname', 'labels'];

/** Checks a POST /v1/endpoints body; every refusal is NrdError('invalid') naming the field. */
export function validateAddRequest(body: unknown): AddRequest {
  const bad = (msg: string): never => {
    throw new NrdError('invalid', 'invalid', msg);
  };
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return bad('endpoint: expected a JSON object {name, netns, ifname?, labels?}');
  const o = body as Record<string, unknown>;
  for (const k of Object.keys(o)) if (!FIELDS.includes(k)) bad(`endpoint: unknown field "${k}" (allowed: ${FIELDS.join(', ')})`);
  if (typeof o.name !== 'string') return bad('endpoint.name: required, a string');
  if (!isValidEndpointId(o.name)) bad(`endpoint.name: "${o.name}" is invalid (letters, digits, '.', '_', ':', '-'; at most 128)`);
  if (typeof o.netns !== 'string' || o.netns === '') return bad('endpoint.netns: required, the path of a network namespace (e.g. /run/netns/NAME)');
  if (!o.netns.startsWith('/')) bad(`endpoint.netns: "${o.netns}" is not an absolute path`);
  if (o.netns.includes('\0')) bad('endpoint.netns: contains a NUL byte');
  const ifname = o.ifname === undefined ? DEFAULT_IFNAME : o.ifname;
  if (typeof ifname !== 'string') return bad('endpoint.ifname: expected a string');
  const issue = ifnameIssue(ifname);
  if (issue) bad(`endpoint.ifname: ${issue}`);
  const labels = validateLabels('endpoint.labels', o.labels ?? {});
  if (!labels.ok) return bad(labels.reason);
  return { name: o.name, netns: o.netns, ifname, labels: labels.value };
}

/** A random unicast, locally administered MAC for the workload side (as the kernel would pick). */
export function randomMac(): string {
  const b = randomBytes(6);
  b[0] = (b[0]! & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** What nrd knows of one local endpoint: its record and its host link as last seen. */
export interface KnownEndpoint {
  record: EndpointRecord;
  hostIf: string;
  /** 0 when the link is not (yet) there. */
  hostIfindex: number;
}

/** The endpoint owner's desired set: one host route per address, the endpoint's MAC pinned. */
export function kernelSpecs(eps: Iterable<KnownEndpoint>): EndpointKernelSpec[] {
  const out: EndpointKernelSpec[] = [];
  for (const e of eps) {
    if (e.hostIfindex === 0) continue; // no link: a route onto it would only fail
    const mac = e.record.mac;
    out.push({ hostIf: e.hostIf, addresses: e.record.ips, ...(mac ? { neighbours: e.record.ips.map((ip) => ({ ip, mac })) } : {}) });
  }
  return out.sort((a, b) => a.hostIf.localeCompare(b.hostIf));
}

/** The datapath's view: the endpoints whose host link exists, sorted by id. */
export function localEndpoints(eps: Iterable<KnownEndpoint>): LocalEndpoint[] {
  const out: LocalEndpoint[] = [];
  for (const e of eps) {
    if (e.hostIfindex === 0 || !e.record.mac) continue;
    out.push({ id: e.record.id, hostIfname: e.hostIf, hostIfindex: e.hostIfindex, mac: e.record.mac, ips: [...e.record.ips], identity: e.record.identity ?? 0 });
  }
  return out.sort((a, b) => a.id.localeCompare(b.id));
}

/** Parses `k=v,k2=v2` (nrdctl --labels); validation of keys and values is nrd's. */
export function parseLabelList(text: string): Labels | string {
  const out: Labels = {};
  if (text.trim() === '') return out;
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq <= 0) return `label "${part}" is not k=v`;
    const k = part.slice(0, eq).trim();
    if (k in out) return `label "${k}" given twice`;
    out[k] = part.slice(eq + 1).trim();
  }
  return out;
}

/** VXLAN encapsulation overhead (outer IP + UDP 8 + VXLAN 8 + inner Ethernet 14), per underlay family. */
export const VXLAN_OVERHEAD = { 4: 50, 6: 70 } as const;

/** What decides the MTU of an endpoint's veth pair. */
export interface MtuInputs {
  /** endpoints.mtu: 0 = auto. */
  configured: number;
  /** routing.mode. */
  mode: 'native' | 'vxlan' | 'auto' | 'cross-subnet';
  /** routing.vxlan.mtu: 0 = uplink minus the overhead. */
  vxlanMtu: number;
  /** The uplink's MTU (undefined: not found). */
  uplinkMtu: number | undefined;
  /** Family of the underlay address (node.address). */
  underlayFamily: 4 | 6;
}

/**
 * The MTU of both ends of an endpoint's veth, as Calico and Cilium choose it: a configured value
 * wins; with routing.mode native traffic never leaves encapsulated, so the uplink's MTU; in every
 * other mode a packet may be redirected into the VXLAN device, so its MTU (routing.vxlan.mtu, else
 * uplink minus 50 over IPv4, 70 over IPv6) — a full-size segment of a larger MTU would be dropped
 * there. Undefined when the uplink is unknown and nothing is configured (the kernel's default).
 */
export function endpointMtu(i: MtuInputs): number | undefined {
  if (i.configured > 0) return i.configured;
  if (i.mode === 'native') return i.uplinkMtu;
  if (i.vxlanMtu > 0) return i.vxlanMtu;
  if (i.uplinkMtu === undefined) return undefined;
  return i.uplinkMtu - VXLAN_OVERHEAD[i.underlayFamily];
}
