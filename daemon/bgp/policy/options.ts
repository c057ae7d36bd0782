// Policy options as plain data (built from the site config by the config layer): what nrd
// accepts from peers and what it announces. No dependency on daemon/config.

/** A prefix and the longest more-specific accepted inside it (like an RPKI ROA maxLength). */
export interface PrefixRange {
  prefix: string;
  /** Longest accepted prefix length; default: the range's own length up to 32 / 128 (any). */
  maxLength?: number;
}

/** RFC 4486 max-prefix: what to do when a peer sends more accepted prefixes than `limit`. */
export interface MaxPrefixOptions {
  limit: number;
  /** warn: report once per crossing; teardown: Cease / Maximum Number of Prefixes Reached. */
  action: 'warn' | 'teardown';
}

export interface ImportPolicyOptions {
  /** Cluster pod CIDRs and configured extra ranges; prefixes outside them are rejected. */
  ranges: PrefixRange[];
  /**
   * This node's own prefixes (its pod CIDRs): a route equal to or inside one is rejected whatever
   * the ranges say. A peer announcing our CIDR, or a more-specific of it, would pull our own
   * pods' traffic away from us (a hijack, by mistake or not).
   */
  own?: string[];
  /** Per-family ceiling on prefix length applied to every range, extra ranges included (default 32 / 128). */
  maxPrefixLength?: { ipv4?: number; ipv6?: number };
  /** Max-prefix applied per peer and family; `peers` overrides `default` by peer id. */
  maxPrefix?: { default?: MaxPrefixOptions; peers?: Record<string, MaxPrefixOptions> };
}

/** Attributes set on routes this node announces. */
export interface AnnounceAttributes {
  /** RFC 1997 communities: "65000:100", a well-known name ("no-export") or a 32-bit number. */
  communities?: (string | number)[];
  /** RFC 8092 large communities: "global:local1:local2". */
  largeCommunities?: string[];
  med?: number;
  /** Sent to iBGP peers only (RFC 4271 §5.1.5). */
  localPref?: number;
  /** Extra copies of our AS prepended when sending to eBGP peers. */
  prepend?: number;
}

export interface OriginatedPrefix extends AnnounceAttributes {
  /** This node's pod CIDR or a configured extra prefix. */
  prefix: string;
}

export interface PeerExportOptions {
  /** Extra prepends of our AS toward this (eBGP) peer, for every route. */
  prepend?: number;
  /** MED sent to this peer on every route (overrides the route's MED). */
  med?: number;
  /** Next hop self also toward this iBGP peer for eBGP-learned routes. */
  nextHopSelf?: boolean;
  /** false: announce nothing to this peer (receive only). */
  announce?: boolean;
}

export interface ExportPolicyOptions {
  /** Routes the node originates (pod CIDRs, extra prefixes), with their attributes. */
  originate: OriginatedPrefix[];
  /** Defaults for originated prefixes that do not set a field themselves. */
  defaults?: AnnounceAttributes;
  /**
   * Re-advertise routes learned from peers (route reflector or transit). A node normally
   * exports only its own routes: false by default.
   */
  exportLearned?: boolean;
  /**
   * With exportLearned: whether learned routes also go to eBGP peers (transit). Default true for
   * a general router; nrd's speaker sets false: a node reflects for its iBGP clients but never
   * carries traffic between its ToRs or other external peers.
   */
  learnedToEbgp?: boolean;
  peers?: Record<string, PeerExportOptions>;
}
