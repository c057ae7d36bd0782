// Export policy: what goes to each peer and with which attributes. RFC 4271 §5.1 (AS_PATH
// prepend, NEXT_HOP, MED and LOCAL_PREF rules toward internal/external peers), RFC 4456 §6/§8
// (reflection rules, ORIGINATOR_ID and CLUSTER_LIST), RFC 1997 well-known communities,
// RFC 4360 §6 (non-transitive extended communities stay inside the AS), RFC 5065 (confederation
// segments are removed toward true external peers).
import {
  AS_CONFED_SEQUENCE,
  AS_CONFED_SET,
  AS_SEQUENCE,
  ORIGIN_IGP,
  familyKey,
  AFI_IPV4,
  AFI_IPV6,
  SAFI_UNICAST,
  type AsPathSegment,
  type FamilyKey,
  type LargeCommunity,
  type PathAttributes,
} from '../types.js';
import type { Path } from '../rib/path.js';
import type { PeerInfo } from '../rib/peer.js';
import { NO_ADVERTISE, NO_EXPORT, NO_EXPORT_SUBCONFED, parseCommunity, parseLargeCommunity } from '../wire/communities.js';
import type { LocalIdentity } from './import.js';
import type { ExportPolicyOptions, PeerExportOptions } from './options.js';
import { parsePrefix } from './prefix.js';

/** A route as it goes out to one peer (before interning). */
export interface OutRoute {
  readonly attrs: PathAttributes;
  /** IPv4 unicast: [NEXT_HOP]; other families: the MP_REACH next hops. */
  readonly nextHops: readonly string[];
}

export interface OriginatedRoute {
  family: FamilyKey;
  prefix: string;
  attrs: PathAttributes;
}

const V4 = familyKey(AFI_IPV4, SAFI_UNICAST);
const MAX_SEGMENT = 255;

/** Prepends `asn` `count` times to an AS_PATH (RFC 4271 §5.1.2), splitting full segments. */
export function prependAs(asPath: readonly AsPathSegment[], asn: number, count: number): AsPathSegment[] {
  const rest = asPath.filter((s) => s.type !== AS_CONFED_SEQUENCE && s.type !== AS_CONFED_SET);
  const add: number[] = new Array<number>(count).fill(asn);
  const out: AsPathSegment[] = [];
  const first = rest[0];
  let tail = rest;
  let merged = add;
  if (first && first.type === AS_SEQUENCE) {
    merged = [...add, ...first.asns];
    tail = rest.slice(1);
  }
  for (let i = 0; i < merged.length; i += MAX_SEGMENT) out.push({ type: AS_SEQUENCE, asns: merged.slice(i, i + MAX_SEGMENT) });
  return [...out, ...tail.map((s) => ({ type: s.type, asns: [...s.asns] }))];
}

/** The config layer validated these already; options built elsewhere (tests) fail loudly here. */
function community(value: string | number): number {
  const c = parseCommunity(value);
  if (c === null) throw new Error(`export policy: invalid community "${value}" (want "asn:value", a well-known name or a 32-bit number)`);
  return c;
}

function largeCommunity(value: string): LargeCommunity {
  const c = parseLargeCommunity(value);
  if (c === null) throw new Error(`export policy: invalid large community "${value}" (want "global:local1:local2")`);
  return c;
}

export class ExportPolicy {
  private readonly prepends = new Map<string, number>();
  private readonly routes: OriginatedRoute[] = [];

  constructor(readonly options: ExportPolicyOptions) {
    const d = options.defaults ?? {};
    for (const o of options.originate) {
      const p = parsePrefix(o.prefix);
      if (!p) throw new Error(`export policy: invalid originated prefix "${o.prefix}"`);
      const attrs: PathAttributes = { origin: ORIGIN_IGP, asPath: [] };
      const med = o.med ?? d.med;
      const localPref = o.localPref ?? d.localPref;
      const communities = o.communities ?? d.communities;
      const large = o.largeCommunities ?? d.largeCommunities;
      if (med !== undefined) attrs.med = med;
      if (localPref !== undefined) attrs.localPref = localPref;
      if (communities?.length) attrs.communities = communities.map(community);
      if (large?.length) attrs.largeCommunities = large.map(largeCommunity);
      this.routes.push({ family: familyKey(p.afi === 1 ? AFI_IPV4 : AFI_IPV6, SAFI_UNICAST), prefix: o.prefix, attrs });
      this.prepends.set(o.prefix, o.prepend ?? d.prepend ?? 0);
    }
  }

  /** The routes this node originates, to enter the Loc-RIB as the local source. */
  originated(): readonly OriginatedRoute[] {
    return this.routes;
  }

  peerOptions(peerId: string): PeerExportOptions | undefined {
    return this.options.peers?.[peerId];
  }

  /**
   * True when exportRoute's result depends only on (attrs, next hops, source peer, target), not
   * on the prefix: the RIB caches those results per target. Originated routes carry per-prefix
   * prepends, so they are computed each time (there are few).
   */
  cacheable(path: Path): boolean {
    return path.peer.type !== 'local';
  }

  /** False in the usual node setup: learned routes go nowhere, decided without any work. */
  get exportsLearned(): boolean {
    return this.options.exportLearned === true;
  }

  /** The route to send to `target` for Loc-RIB best path `path`, or null to send nothing. */
  exportRoute(target: PeerInfo, family: FamilyKey, path: Path, self: LocalIdentity): OutRoute | null {
    if (!target.families.includes(family)) return null;
    const peerOpts = this.options.peers?.[target.id];
    if (peerOpts?.announce === false) return null;
    const src = path.peer;
    // Never back to the peer the route came from (also the RFC 4456 originating client).
    if (src.id === target.id) return null;
    const local = src.type === 'local';
    let reflect = false;
    if (!local) {
      if (!this.options.exportLearned) return null;
      if (target.type === 'ebgp' && this.options.learnedToEbgp === false) return null;
      if (src.type === 'ibgp' && target.type === 'ibgp') {
        // RFC 4271 §9.2: iBGP-learned routes go to no iBGP peer, unless we reflect (RFC 4456
        // §6): from a client to everyone, from a non-client to clients only.
        if (self.clusterId === undefined || (!src.rrClient && !target.rrClient)) return null;
        reflect = true;
      }
    }
    const a = path.attrs;
    const ebgp = target.type === 'ebgp';
    // RFC 1997 says routes *received* with NO_ADVERTISE / NO_EXPORT(_SUBCONFED) go no further.
    // The node's own routes carry them (bgp.export.communities) for the peer to act on: nrd sends
    // them, or a configured no-export would silence the node toward its ToR.
    if (a.communities && !local) {
      if (a.communities.includes(NO_ADVERTISE)) return null;
      if (ebgp && (a.communities.includes(NO_EXPORT) || a.communities.includes(NO_EXPORT_SUBCONFED))) return null;
    }
    if (ebgp && !local) {
      // The receiver would drop it as a loop (RFC 4271 §9.1.2); do not send it at all.
      for (const s of a.asPath) if (s.asns.includes(target.asn)) return null;
    }

    const out: PathAttributes = { origin: a.origin, asPath: a.asPath };
    if (ebgp) {
      const extra = (local ? (this.prepends.get(path.prefix) ?? 0) : 0) + (peerOpts?.prepend ?? 0);
      out.asPath = prependAs(a.asPath, target.localAsn, 1 + extra);
    }

    // NEXT_HOP (RFC 4271 §5.1.3): self toward eBGP and for our own routes; a reflector never
    // changes it (RFC 4456 §10); eBGP-learned routes keep it toward iBGP unless configured.
    let nextHops: readonly string[];
    const self_ = ebgp || local || (src.type === 'ebgp' && peerOpts?.nextHopSelf === true);
    if (self_) {
      const nh = family === V4 ? target.nextHopSelf?.ipv4 : target.nextHopSelf?.ipv6;
      if (nh === undefined || (typeof nh !== 'string' && nh.length === 0)) return null;
      nextHops = typeof nh === 'string' ? [nh] : nh;
    } else {
      // A link-local next hop is only meaningful on the link it was learned on (RFC 2545 §3).
      nextHops = path.nextHops.length > 1 ? [path.nextHops[0]!] : path.nextHops;
      if (nextHops.length === 0) return null;
    }
    if (family === V4) out.nextHop = nextHops[0];

    // MED (RFC 4271 §5.1.4): ours go everywhere; one received from another AS is not passed on
    // to a different neighbouring AS.
    const med = peerOpts?.med ?? (local || !ebgp ? a.med : undefined);
    if (med !== undefined) out.med = med;
    // LOCAL_PREF only inside the AS; an eBGP-learned one was ignored on import (§5.1.5).
    if (!ebgp) out.localPref = src.type === 'ebgp' ? 100 : (a.localPref ?? 100);

    if (a.atomicAggregate) out.atomicAggregate = true;
    if (a.aggregator) out.aggregator = a.aggregator;
    if (a.communities) out.communities = a.communities;
    if (a.extCommunities) {
      // RFC 4360 §6: the non-transitive bit (0x40 of the type octet) keeps a community in the AS.
      const ext = ebgp ? a.extCommunities.filter((c) => (parseInt(c.slice(0, 2), 16) & 0x40) === 0) : a.extCommunities;
      if (ext.length > 0) out.extCommunities = ext;
    }
    if (a.largeCommunities) out.largeCommunities = a.largeCommunities;
    if (reflect) {
      // RFC 4456 §8: keep the first ORIGINATOR_ID, prepend our CLUSTER_ID.
      out.originatorId = a.originatorId ?? src.routerId;
      out.clusterList = [self.clusterId!, ...(a.clusterList ?? [])];
    }
    if (a.unknown) {
      // RFC 4271 §5: unrecognised optional transitive attributes go on with the Partial bit;
      // unrecognised non-transitive ones are dropped.
      const passed = a.unknown.filter((u) => (u.flags & 0x40) !== 0).map((u) => ({ ...u, flags: u.flags | 0x20 }));
      if (passed.length > 0) out.unknown = passed;
    }
    return { attrs: out, nextHops };
  }
}
