// Import policy: which received routes enter the Loc-RIB. Prefix ranges (cluster pod CIDRs and
// extra ranges) capped at a maximum length, never the node's own prefixes or more-specifics of
// them (no hijack of our CIDR), eBGP AS_PATH loop detection (RFC 4271 §9.1.2), route-reflection loop detection
// (RFC 4456 §8: ORIGINATOR_ID and CLUSTER_LIST), and per-peer max-prefix (RFC 4486).
import { AS_CONFED_SEQUENCE, AS_CONFED_SET, type PathAttributes } from '../types.js';
import type { PeerInfo } from '../rib/peer.js';
import type { ImportPolicyOptions, MaxPrefixOptions } from './options.js';
import { maskV4, maskV6, parseIpv4, parsePrefix } from './prefix.js';

/** Who we are, for loop detection. */
export interface LocalIdentity {
  readonly localAsn: number;
  readonly routerId: string;
  /** Set when this node reflects routes (RFC 4456); defaults to the router id there. */
  readonly clusterId?: string;
}

interface V4Range {
  value: number;
  length: number;
  maxLength: number;
}
interface V6Range {
  value: bigint;
  length: number;
  maxLength: number;
}

export class ImportPolicy {
  private readonly v4: V4Range[] = [];
  private readonly v6: V6Range[] = [];
  /** Own prefixes: maxLength unused (everything inside is refused). */
  private readonly own4: V4Range[] = [];
  private readonly own6: V6Range[] = [];

  constructor(readonly options: ImportPolicyOptions) {
    const cap4 = options.maxPrefixLength?.ipv4 ?? 32;
    const cap6 = options.maxPrefixLength?.ipv6 ?? 128;
    for (const r of options.ranges) {
      const p = parsePrefix(r.prefix);
      if (!p) throw new Error(`import policy: invalid prefix range "${r.prefix}"`);
      if (p.afi === 1) this.v4.push({ value: p.value, length: p.length, maxLength: Math.min(r.maxLength ?? 32, cap4) });
      else this.v6.push({ value: p.value, length: p.length, maxLength: Math.min(r.maxLength ?? 128, cap6) });
    }
    for (const o of options.own ?? []) {
      const p = parsePrefix(o);
      if (!p) throw new Error(`import policy: invalid own prefix "${o}"`);
      if (p.afi === 1) this.own4.push({ value: p.value, length: p.length, maxLength: 32 });
      else this.own6.push({ value: p.value, length: p.length, maxLength: 128 });
    }
  }

  /**
   * Attribute checks, once per UPDATE: a reason to reject every prefix it carries, or null.
   */
  checkAttributes(peer: PeerInfo, attrs: PathAttributes, self: LocalIdentity): string | null {
    if (peer.type === 'ebgp') {
      for (const s of attrs.asPath) {
        // Confederation segments never come from a true external peer; only real AS segments loop.
        if (s.type === AS_CONFED_SEQUENCE || s.type === AS_CONFED_SET) continue;
        if (s.asns.includes(peer.localAsn) || s.asns.includes(self.localAsn)) return 'as-path-loop';
      }
    }
    if (attrs.originatorId !== undefined && attrs.originatorId === self.routerId) return 'originator-id-loop';
    if (self.clusterId !== undefined && attrs.clusterList?.includes(self.clusterId)) return 'cluster-list-loop';
    return null;
  }

  /** True when the prefix lies inside an accepted range within its maximum length. */
  acceptsPrefix(prefix: string): boolean {
    const slash = prefix.indexOf('/');
    if (slash < 0) return false;
    const length = Number(prefix.slice(slash + 1));
    const v4 = parseIpv4(prefix.slice(0, slash));
    if (v4 >= 0) return this.acceptsIpv4(v4, length);
    if (this.v6.length === 0) return false;
    const p = parsePrefix(prefix);
    if (!p || p.afi !== 2) return false;
    for (const r of this.own6) if (length >= r.length && (p.value & maskV6(r.length)) === r.value) return false;
    for (const r of this.v6) {
      if (length >= r.length && length <= r.maxLength && (p.value & maskV6(r.length)) === r.value) return true;
    }
    return false;
  }

  /** acceptsPrefix for an IPv4 prefix already parsed: address as unsigned 32-bit, length. */
  acceptsIpv4(value: number, length: number): boolean {
    for (let i = 0; i < this.own4.length; i++) {
      const r = this.own4[i]!;
      if (length >= r.length && ((value & maskV4(r.length)) >>> 0) === r.value) return false;
    }
    for (const r of this.v4) {
      if (length >= r.length && length <= r.maxLength && ((value & maskV4(r.length)) >>> 0) === r.value) return true;
    }
    return false;
  }

  maxPrefixFor(peerId: string): MaxPrefixOptions | undefined {
    return this.options.maxPrefix?.peers?.[peerId] ?? this.options.maxPrefix?.default;
  }
}

/** What the session must do about a peer over its max-prefix limit. */
export type MaxPrefixDecision =
  | { action: 'warn'; afi: number; safi: number; count: number; limit: number }
  | {
      action: 'teardown';
      afi: number;
      safi: number;
      count: number;
      limit: number;
      /** NOTIFICATION to send: Cease (6) / Maximum Number of Prefixes Reached (1). */
      notification: { code: 6; subcode: 1; data: Uint8Array };
    };

/** RFC 4486 §4: the Cease data is AFI (2 octets), SAFI (1 octet), prefix upper bound (4 octets). */
export function maxPrefixNotificationData(afi: number, safi: number, limit: number): Uint8Array {
  const data = new Uint8Array(7);
  const view = new DataView(data.buffer);
  view.setUint16(0, afi);
  view.setUint8(2, safi);
  view.setUint32(3, limit);
  return data;
}

/**
 * Checks a peer's accepted count for one family. `warned` says whether a warning was already
 * given for the current crossing, so a warn-only limit does not log on every UPDATE.
 */
export function checkMaxPrefix(
  opts: MaxPrefixOptions | undefined,
  afi: number,
  safi: number,
  count: number,
  warned: boolean,
): MaxPrefixDecision | null {
  if (!opts || count <= opts.limit) return null;
  if (opts.action === 'teardown') {
    return {
      action: 'teardown',
      afi,
      safi,
      count,
      limit: opts.limit,
      notification: { code: 6, subcode: 1, data: maxPrefixNotificationData(afi, safi, opts.limit) },
    };
  }
  return warned ? null : { action: 'warn', afi, safi, count, limit: opts.limit };
}
