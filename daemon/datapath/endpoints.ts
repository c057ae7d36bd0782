// The endpoint datapath's desired state and its diff against the pinned maps and links: which
// nrd_endpoints (address → endpoint) and nrd_ep_ifs (host ifindex → endpoint) entries to write or
// delete, which host veths get nrd_endpoint on tc ingress and which lose it. Pure: the worker
// (datapath.ts) reads the kernel state, asks plan(), and applies the result.
import { NrdError } from '../lib/errors.js';
import { ipValueToBytes, parseIp } from '../lib/ip.js';
import type { LocalEndpoint } from '../lib/endpoint-types.js';
import { type EpIf, type EpKey, type EpValue, NRD_EP_IF_F_IP4, NRD_EP_IF_F_IP6 } from './endpoint-layout.js';

/**
 * The u32 id the maps carry for an endpoint: FNV-1a of its string id. Stable across restarts
 * without any stored table, so a restarted daemon rewrites identical entries (no change) and
 * counters keep their meaning; the metrics label is the string id itself, not this number.
 */
export function endpointNumericId(id: string): number {
  let h = 0x811c9dc5;
  for (const b of Buffer.from(id, 'utf8')) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h === 0 ? 1 : h;
}

export function parseMac(text: string): Buffer {
  const parts = text.split(':');
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new NrdError('invalid', 'bad_mac', `not a MAC address: ${JSON.stringify(text)}`);
  }
  return Buffer.from(parts.map((p) => parseInt(p, 16)));
}

/** Wire bytes of an IPv4 or IPv6 address. */
export function addrBytes(text: string): { family: 4 | 6; addr: Buffer } {
  const a = parseIp(text);
  if (!a) throw new NrdError('invalid', 'bad_address', `not an IP address: ${JSON.stringify(text)}`);
  return { family: a.family, addr: ipValueToBytes(a.family, a.value) };
}

export const epKeyText = (k: EpKey): string => `${k.family}/${k.addr.toString('hex')}`;

export interface DesiredEndpoints {
  /** nrd_endpoints, by epKeyText. */
  eps: Map<string, { key: EpKey; value: EpValue }>;
  /** nrd_ep_ifs, by host ifindex. */
  ifs: Map<number, EpIf>;
  /** Host veths that get nrd_endpoint, and the endpoint behind each (for errors and metrics). */
  ifnames: Map<string, { id: string; ifindex: number }>;
}

/**
 * The maps' contents for a set of endpoints. A later endpoint claiming an address or a veth
 * already taken is refused (returned in `conflicts`) rather than overwriting: the first keeps
 * working, and the conflict is reported with both ids.
 */
export function desiredEndpoints(eps: readonly LocalEndpoint[]): DesiredEndpoints & { conflicts: string[] } {
  const out: DesiredEndpoints & { conflicts: string[] } = { eps: new Map(), ifs: new Map(), ifnames: new Map(), conflicts: [] };
  const byIf = new Map<number, string>();
  for (const ep of eps) {
    let mac: Buffer;
    let addrs: Array<{ family: 4 | 6; addr: Buffer }>;
    try {
      mac = parseMac(ep.mac);
      addrs = ep.ips.map(addrBytes);
    } catch (e) {
      out.conflicts.push(`${ep.id}: ${(e as Error).message}`);
      continue;
    }
    const other = byIf.get(ep.hostIfindex) ?? [...out.ifnames].find(([n]) => n === ep.hostIfname)?.[1].id;
    if (other !== undefined) {
      out.conflicts.push(`${ep.id}: ${ep.hostIfname} (ifindex ${ep.hostIfindex}) already belongs to ${other}`);
      continue;
    }
    const taken = addrs.map((a) => epKeyText(a)).find((t) => out.eps.has(t));
    if (taken !== undefined) {
      out.conflicts.push(`${ep.id}: an address is already used by another endpoint (${taken})`);
      continue;
    }
    const id = endpointNumericId(ep.id);
    const epIf: EpIf = { id, flags: 0, ip4: Buffer.alloc(4), ip6: Buffer.alloc(16) };
    for (const a of addrs) {
      out.eps.set(epKeyText(a), { key: a, value: { ifindex: ep.hostIfindex, id, mac, flags: 0 } });
      // One address per family is the contract; a second one of a family would be a source the
      // anti-spoofing check refuses, so only the first is the endpoint's source.
      if (a.family === 4 && !(epIf.flags & NRD_EP_IF_F_IP4)) {
        epIf.flags |= NRD_EP_IF_F_IP4;
        epIf.ip4 = a.addr;
      } else if (a.family === 6 && !(epIf.flags & NRD_EP_IF_F_IP6)) {
        epIf.flags |= NRD_EP_IF_F_IP6;
        epIf.ip6 = a.addr;
      }
    }
    byIf.set(ep.hostIfindex, ep.id);
    out.ifs.set(ep.hostIfindex, epIf);
    out.ifnames.set(ep.hostIfname, { id: ep.id, ifindex: ep.hostIfindex });
  }
  return out;
}

/** What the kernel holds now: the maps' entries and the veths with an nrd_endpoint pin. */
export interface CurrentEndpoints {
  eps: ReadonlyArray<readonly [EpKey, EpValue]>;
  ifs: ReadonlyArray<readonly [number, EpIf]>;
  /** ifindexes with an nrd_ep_stats entry. */
  stats: readonly number[];
  pinned: ReadonlySet<string>;
}

export interface EndpointPlan {
  /** Map writes (new or changed entries only). */
  setEps: Array<{ key: EpKey; value: EpValue }>;
  deleteEps: EpKey[];
  setIfs: Array<[number, EpIf]>;
  deleteIfs: number[];
  /** Counters of veths no longer in use (a new veth may reuse the ifindex). */
  deleteStats: number[];
  /** Every wanted veth: attach is idempotent and also repairs a link on a recreated device. */
  attach: string[];
  /** Veths with an nrd_endpoint pin that are no longer wanted (or gone). */
  detach: string[];
}

const sameEp = (a: EpValue, b: EpValue): boolean =>
  a.ifindex === b.ifindex && a.id === b.id && a.flags === b.flags && a.mac.equals(b.mac);
const sameIf = (a: EpIf, b: EpIf): boolean =>
  a.id === b.id && a.flags === b.flags && a.ip4.equals(b.ip4) && a.ip6.equals(b.ip6);

/**
 * The minimal change from current to desired. Order when applied: map writes, then attaches
 * (nrd_endpoint drops a veth's traffic as unknown_endpoint until its nrd_ep_ifs entry exists),
 * then detaches, then deletes (a veth still attached must not lose its entry first).
 */
export function planEndpoints(desired: DesiredEndpoints, current: CurrentEndpoints): EndpointPlan {
  const plan: EndpointPlan = { setEps: [], deleteEps: [], setIfs: [], deleteIfs: [], deleteStats: [], attach: [], detach: [] };
  const seenEps = new Set<string>();
  for (const [k, v] of current.eps) {
    const text = epKeyText(k);
    const want = desired.eps.get(text);
    if (!want) plan.deleteEps.push(k);
    else {
      seenEps.add(text);
      if (!sameEp(want.value, v)) plan.setEps.push(want);
    }
  }
  for (const [text, e] of desired.eps) if (!seenEps.has(text)) plan.setEps.push(e);
  const seenIfs = new Set<number>();
  for (const [ifindex, v] of current.ifs) {
    const want = desired.ifs.get(ifindex);
    if (!want) plan.deleteIfs.push(ifindex);
    else {
      seenIfs.add(ifindex);
      if (!sameIf(want, v)) plan.setIfs.push([ifindex, want]);
    }
  }
  for (const [ifindex, v] of desired.ifs) if (!seenIfs.has(ifindex)) plan.setIfs.push([ifindex, v]);
  plan.deleteStats = current.stats.filter((i) => !desired.ifs.has(i));
  plan.attach = [...desired.ifnames.keys()];
  plan.detach = [...current.pinned].filter((n) => !desired.ifnames.has(n));
  return plan;
}
