// Shared BGP data model: the contract between the wire codec (daemon/bgp/wire), the session FSM
// (daemon/bgp/session), the RIB (daemon/bgp/rib) and policy (daemon/bgp/policy).
// RFC 4271 (BGP-4), RFC 4760 (multiprotocol), RFC 6793 (four-octet AS), RFC 1997/4360/8092
// (communities), RFC 4456 (route reflection), RFC 7911 (add-path), RFC 4724 (graceful restart).
// Prefixes are canonical text ("10.244.1.0/24", "fd00:244::/64"): cheap map keys, easy to log.

export const AFI_IPV4 = 1;
export const AFI_IPV6 = 2;
export const SAFI_UNICAST = 1;
export type Afi = typeof AFI_IPV4 | typeof AFI_IPV6;
export type Safi = number;
/** "afi/safi" key, e.g. "1/1" for IPv4 unicast, "2/1" for IPv6 unicast. */
export type FamilyKey = `${number}/${number}`;
export const familyKey = (afi: number, safi: number): FamilyKey => `${afi}/${safi}`;

export interface Nlri {
  /** Canonical prefix text, host bits zero. */
  prefix: string;
  /** RFC 7911 path identifier, present only when add-path receive was negotiated for the family. */
  pathId?: number;
}

export const ORIGIN_IGP = 0;
export const ORIGIN_EGP = 1;
export const ORIGIN_INCOMPLETE = 2;
export type Origin = 0 | 1 | 2;

export const AS_SET = 1;
export const AS_SEQUENCE = 2;
export const AS_CONFED_SEQUENCE = 3;
export const AS_CONFED_SET = 4;
export interface AsPathSegment {
  type: 1 | 2 | 3 | 4;
  asns: number[];
}

export interface LargeCommunity {
  global: number;
  local1: number;
  local2: number;
}

export interface UnknownAttribute {
  flags: number;
  type: number;
  value: Uint8Array;
}

/**
 * Path attributes of one UPDATE, after AS4_PATH/AS4_AGGREGATOR merge (RFC 6793 §4.2.3): asPath
 * always holds four-octet ASNs. MP_REACH/MP_UNREACH are not attributes here; the UPDATE carries
 * them as separate NLRI lists. Objects are treated as immutable once decoded, so the RIB can intern
 * (share) them between routes.
 */
export interface PathAttributes {
  origin: Origin;
  asPath: AsPathSegment[];
  /** IPv4 NEXT_HOP attribute (type 3). */
  nextHop?: string;
  med?: number;
  localPref?: number;
  atomicAggregate?: boolean;
  aggregator?: { asn: number; address: string };
  /** RFC 1997 communities as 32-bit unsigned integers. */
  communities?: number[];
  originatorId?: string;
  clusterList?: string[];
  /** RFC 4360 extended communities, 8 octets each, as 16-hex-digit lowercase strings. */
  extCommunities?: string[];
  largeCommunities?: LargeCommunity[];
  /** Unrecognised optional transitive attributes, passed on with the partial bit set. */
  unknown?: UnknownAttribute[];
}

export interface MpReach {
  afi: number;
  safi: number;
  /** Global next hop first; for IPv6 an optional link-local second (RFC 2545). */
  nextHops: string[];
  nlri: Nlri[];
}

export interface MpUnreach {
  afi: number;
  safi: number;
  withdrawn: Nlri[];
}

export interface UpdateMessage {
  type: 'update';
  /** IPv4 unicast withdrawals in the classic field. */
  withdrawn: Nlri[];
  /** null when the UPDATE carries no path attributes (pure withdraw or End-of-RIB). */
  attrs: PathAttributes | null;
  /** IPv4 unicast NLRI in the classic field. */
  nlri: Nlri[];
  mpReach?: MpReach;
  mpUnreach?: MpUnreach;
}

export interface GracefulRestartCapability {
  restartState: boolean; // R bit
  notification: boolean; // N bit, RFC 8538
  restartTime: number; // seconds, 12 bits
  families: { afi: number; safi: number; forwardingPreserved: boolean }[];
}

export interface AddPathFamily {
  afi: number;
  safi: number;
  /** 1 receive, 2 send, 3 both. */
  mode: 1 | 2 | 3;
}

export interface Capabilities {
  multiprotocol: { afi: number; safi: number }[];
  routeRefresh: boolean;
  enhancedRouteRefresh: boolean;
  extendedMessage: boolean;
  fourOctetAs?: number;
  gracefulRestart?: GracefulRestartCapability;
  addPath?: AddPathFamily[];
  /** Capabilities nrd does not interpret, kept as received. */
  unknown: { code: number; value: Uint8Array }[];
}

export interface OpenMessage {
  type: 'open';
  version: number;
  /** The 2-octet My AS field (AS_TRANS 23456 when the real AS is four-octet). */
  myAs: number;
  holdTime: number;
  bgpId: string;
  capabilities: Capabilities;
}

export interface NotificationMessage {
  type: 'notification';
  code: number;
  subcode: number;
  data: Uint8Array;
  /** RFC 8203/9003 shutdown communication, decoded when code 6 subcode 2 or 4 carries one. */
  shutdownMessage?: string;
}

export interface KeepaliveMessage {
  type: 'keepalive';
}

export interface RouteRefreshMessage {
  type: 'route-refresh';
  afi: number;
  safi: number;
  /** RFC 7313: 0 normal request, 1 BoRR, 2 EoRR. */
  subtype: number;
}

export type BgpMessage =
  | OpenMessage
  | UpdateMessage
  | NotificationMessage
  | KeepaliveMessage
  | RouteRefreshMessage;

/** Which capabilities both sides agreed on; decoders of UPDATEs take this as their context. */
export interface SessionContext {
  fourOctetAs: boolean;
  extendedMessage: boolean;
  /** Families for which we receive (decode) path identifiers. */
  addPathReceive: Set<FamilyKey>;
  /** Families for which we send (encode) path identifiers. */
  addPathSend: Set<FamilyKey>;
  /** eBGP or iBGP: some attribute errors are treated differently (RFC 7606 §7). */
  peerType: 'ebgp' | 'ibgp';
}

// RFC 4271 §4.5 error codes.
export const ERR_HEADER = 1;
export const ERR_OPEN = 2;
export const ERR_UPDATE = 3;
export const ERR_HOLD_TIMER = 4;
export const ERR_FSM = 5;
export const ERR_CEASE = 6;
export const ERR_ROUTE_REFRESH = 7; // RFC 7313

/** RFC 7606 §2 actions, strongest first. */
export type ErrorAction =
  | 'session-reset'
  | 'afisafi-disable'
  | 'treat-as-withdraw'
  | 'attribute-discard';

/** A decode error as data: what to send (if the action resets) and what to do. */
export interface BgpError {
  code: number;
  subcode: number;
  data: Uint8Array;
  action: ErrorAction;
  reason: string;
}
