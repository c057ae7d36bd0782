// Speaker options as plain data and their translation into what the lower layers take: the
// per-peer SessionConfig (RFC 4271 timers, RFC 4724 GR capability with the RFC 8538 N-bit),
// import policy (cluster ranges, RFC 4486 max-prefix) and export policy (originated prefixes).
import { familyKey, type FamilyKey, type GracefulRestartCapability } from '../types.js';
import { sessionConfig, type SessionConfig } from '../session/config.js';
import { ExportPolicy } from '../policy/export.js';
import { ImportPolicy } from '../policy/import.js';
import type { MaxPrefixOptions } from '../policy/options.js';
import { parsePrefix } from '../policy/prefix.js';
import { canonicalAddress } from '../wire/index.js';

export const IPV4: FamilyKey = '1/1';
export const IPV6: FamilyKey = '2/1';

/** One neighbour, from the site file (static) or from etcd (node mesh). */
export interface SpeakerPeer {
  address: string;
  asn: number;
  /** TCP port of the peer; default 179. */
  port?: number;
  /** TCP MD5 key (RFC 2385); absent or "" for none. */
  password?: string;
  passive?: boolean;
  /** Negotiate graceful restart with this peer (default true; needs the speaker's GR enabled). */
  gracefulRestart?: boolean;
  /** Seconds; default SpeakerOptions.holdTime. */
  holdTime?: number;
  /** Source address for outgoing connections. */
  localAddress?: string;
  /** RFC 5082 GTSM: accept only packets from at most this many hops. */
  gtsmHops?: number;
  /** Families offered; default IPv4 and IPv6 unicast. */
  families?: FamilyKey[];
  /** RFC 4456 route-reflector client (iBGP only). */
  rrClient?: boolean;
  maxPrefix?: MaxPrefixOptions;
  description?: string;
  /** Where the peer comes from: 'static' (config) or 'mesh' (etcd node list). */
  source?: 'static' | 'mesh';
  /** Our next hop toward this peer; default the speaker's, then the session's local address. */
  nextHopSelf?: { ipv4?: string; ipv6?: string };
}

export interface ExportOptions {
  communities?: string[];
  largeCommunities?: string[];
  med?: number | null;
  localPref?: number;
  prepend?: number;
  /** Advertised besides the local (pod CIDR) prefixes. */
  extraPrefixes?: string[];
}

export interface ImportOptions {
  /** Cluster pod CIDRs plus configured extra ranges: only prefixes inside them are accepted. */
  ranges: string[];
  maxPrefixLength?: { ipv4?: number; ipv6?: number };
}

export interface GracefulRestartOptions {
  enabled: boolean;
  /** Seconds peers keep our routes while we restart (12-bit). */
  restartTime: number;
  /** Seconds a restarted peer's stale routes wait for its End-of-RIB once it is back. */
  stalePathTime: number;
  /** The R bit: this process is a restart of a speaker whose forwarding state survived. */
  restarting?: boolean;
}

export interface IngestOptions {
  /** Prefixes applied to the RIB per event-loop turn, across all peers (default 8192). */
  prefixesPerTurn?: number;
  /** Queued UPDATEs per peer above which its socket stops being read (default 64). */
  highWater?: number;
}

export interface SpeakerOptions {
  asn: number;
  routerId: string;
  /** null: no listener (every peer must be active). */
  listen: { address: string; port: number } | null;
  holdTime: number;
  connectRetryTime: number;
  /** Cap of the exponential ConnectRetry/IdleHold backoff (s); default 120. */
  connectRetryMax?: number;
  idleHoldTime?: number;
  idleHoldMax?: number;
  gracefulRestart: GracefulRestartOptions;
  ecmpMax: number;
  /** ECMP across different neighbour ASes (BGP multipath relax). */
  multipathRelax?: boolean;
  import: ImportOptions;
  export: ExportOptions;
  /** Speaker-wide next hop self per family (e.g. node.address). */
  nextHopSelf?: { ipv4?: string; ipv6?: string };
  /** Prefixes originated from the start, per family, until setLocalPrefixes replaces them. */
  localPrefixes?: string[];
  peers: SpeakerPeer[];
  /** Max-prefix of the node-mesh peers (etcd's nodes), which have no peer config of their own. */
  meshMaxPrefix?: MaxPrefixOptions;
  /** RFC 4456: set to reflect routes between clients (defaults to none: a node does not reflect). */
  clusterId?: string;
  /** Re-advertise learned routes (route reflector / transit); default false. */
  exportLearned?: boolean;
  /**
   * Keep routes rejected by import policy. false (default): an import policy change asks the
   * peers for a route refresh (RFC 2918) instead, and rejected routes cost no memory.
   */
  keepRejected?: boolean;
  ingest?: IngestOptions;
  /** Offer RFC 8654 extended messages (default true). */
  extendedMessage?: boolean;
}

export function familyFromName(name: string): FamilyKey | null {
  const n = name.toLowerCase();
  if (n === 'ipv4' || n === '1/1' || n === 'ipv4-unicast') return IPV4;
  if (n === 'ipv6' || n === '2/1' || n === 'ipv6-unicast') return IPV6;
  return null;
}

export function familyName(f: FamilyKey): string {
  return f === IPV4 ? 'ipv4' : f === IPV6 ? 'ipv6' : f;
}

export function splitFamily(f: FamilyKey): { afi: number; safi: number } {
  const [afi, safi] = f.split('/').map(Number) as [number, number];
  return { afi, safi };
}

export function familyOfPrefix(prefix: string): FamilyKey | null {
  const p = parsePrefix(prefix);
  return p ? (p.afi === 1 ? IPV4 : IPV6) : null;
}

/** ::ffff:192.0.2.1 → 192.0.2.1, lower case: the key of a peer everywhere in the speaker. */
export function peerKey(address: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return m && m[1] ? m[1] : address.toLowerCase();
}

export const peerFamilies = (p: SpeakerPeer): FamilyKey[] => (p.families && p.families.length > 0 ? p.families : [IPV4, IPV6]);

/** The RFC 4724 capability we send to `p`, or undefined when GR is off for it. */
export function gracefulRestartCapability(o: SpeakerOptions, p: SpeakerPeer): GracefulRestartCapability | undefined {
  if (!o.gracefulRestart.enabled || p.gracefulRestart === false) return undefined;
  return {
    restartState: o.gracefulRestart.restarting === true,
    // RFC 8538: a NOTIFICATION other than Hard Reset keeps the routes too (e.g. a hold timer
    // expiry while nrd is busy restarting its datapath).
    notification: true,
    restartTime: Math.min(4095, Math.max(0, o.gracefulRestart.restartTime)),
    // nrd's kernel routes and BPF state outlive the process: forwarding is preserved.
    families: peerFamilies(p).map((f) => ({ ...splitFamily(f), forwardingPreserved: true })),
  };
}

export function buildSessionConfig(o: SpeakerOptions, p: SpeakerPeer): SessionConfig {
  const base: Parameters<typeof sessionConfig>[0] = {
    localAs: o.asn,
    peerAs: p.asn,
    localId: o.routerId,
    holdTime: p.holdTime ?? o.holdTime,
    families: peerFamilies(p).map(splitFamily),
    routeRefresh: true,
    // RFC 7313 needs stale marking per refresh on the receiving side; the RIB does not have it.
    enhancedRouteRefresh: false,
    extendedMessage: o.extendedMessage ?? true,
    fourOctetAs: true,
    passive: p.passive === true,
    connectRetryTime: o.connectRetryTime,
    connectRetryMax: Math.max(o.connectRetryTime, o.connectRetryMax ?? 120),
  };
  if (o.idleHoldTime !== undefined) base.idleHoldTime = o.idleHoldTime;
  if (o.idleHoldMax !== undefined) base.idleHoldMax = o.idleHoldMax;
  const gr = gracefulRestartCapability(o, p);
  if (gr) base.gracefulRestart = gr;
  return sessionConfig(base);
}

/**
 * What the session (not the RIB) depends on: two peers with the same key can keep their session
 * across a reload. Everything else (description, max-prefix) is applied in place.
 */
export function sessionKey(o: SpeakerOptions, p: SpeakerPeer): string {
  return JSON.stringify({
    cfg: buildSessionConfig(o, p),
    port: p.port ?? 179,
    md5: p.password ?? '',
    local: p.localAddress ?? '',
    gtsm: p.gtsmHops ?? null,
    rr: p.rrClient === true,
    nh: p.nextHopSelf ?? null,
    nhs: o.nextHopSelf ?? null,
  });
}

/** Import policy: the configured ranges, never the node's own prefixes (`local`), max-prefix per peer. */
export function buildImportPolicy(o: SpeakerOptions, peers: Iterable<SpeakerPeer>, local: ReadonlyMap<FamilyKey, readonly string[]>): ImportPolicy {
  const maxPrefix: Record<string, MaxPrefixOptions> = {};
  for (const p of peers) if (p.maxPrefix && p.maxPrefix.limit > 0) maxPrefix[peerKey(p.address)] = p.maxPrefix;
  const opts: ConstructorParameters<typeof ImportPolicy>[0] = {
    ranges: o.import.ranges.map((prefix) => ({ prefix })),
    own: [...local.values()].flat(),
    maxPrefix: { peers: maxPrefix },
  };
  if (o.import.maxPrefixLength) opts.maxPrefixLength = o.import.maxPrefixLength;
  return new ImportPolicy(opts);
}

export function buildExportPolicy(o: SpeakerOptions, local: ReadonlyMap<FamilyKey, readonly string[]>): ExportPolicy {
  const seen = new Set<string>();
  const originate: { prefix: string }[] = [];
  for (const list of [...local.values(), o.export.extraPrefixes ?? []]) {
    for (const prefix of list) {
      const c = canonicalPrefix(prefix);
      if (seen.has(c)) continue;
      seen.add(c);
      originate.push({ prefix: c });
    }
  }
  const e = o.export;
  const defaults: NonNullable<ConstructorParameters<typeof ExportPolicy>[0]['defaults']> = {};
  if (e.communities?.length) defaults.communities = [...e.communities];
  if (e.largeCommunities?.length) defaults.largeCommunities = [...e.largeCommunities];
  if (e.med !== undefined && e.med !== null) defaults.med = e.med;
  if (e.localPref !== undefined) defaults.localPref = e.localPref;
  if (e.prepend) defaults.prepend = e.prepend;
  // A node is never a transit: learned routes are reflected to iBGP clients only.
  return new ExportPolicy({ originate, defaults, exportLearned: o.exportLearned === true, learnedToEbgp: false });
}

/** The text the wire decoder produces for a prefix (RIB keys are text: they must agree). */
export function canonicalPrefix(prefix: string): string {
  const slash = prefix.indexOf('/');
  const addr = slash > 0 ? canonicalAddress(prefix.slice(0, slash)) : null;
  return addr ? `${addr}${prefix.slice(slash)}` : prefix;
}

/** Canonical prefixes of one family, or an error naming the bad one. */
export function checkPrefixes(family: FamilyKey, prefixes: readonly string[]): string[] {
  const out: string[] = [];
  for (const p of prefixes) {
    const parsed = parsePrefix(p);
    if (!parsed) throw new Error(`invalid prefix "${p}" (host bits set, or not a prefix)`);
    const f = familyKey(parsed.afi, 1);
    if (f !== family) throw new Error(`prefix "${p}" is not of family ${familyName(family)}`);
    out.push(canonicalPrefix(p));
  }
  return out;
}
