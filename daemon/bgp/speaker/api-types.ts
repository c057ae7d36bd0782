// JSON shapes of the BGP control API (GET /v1/peers, GET /v1/bgp/routes), shared by the speaker
// that produces them and nrdctl that prints them. Additive changes only.

export interface PeerErrorView {
  kind: string;
  text: string;
  /** The NOTIFICATION sent or received, if any. */
  notification?: { code: number; subcode: number; name: string; shutdownMessage?: string };
  /** When it happened (ISO 8601). */
  at: string;
}

export interface FamilyCountsView {
  received: number;
  accepted: number;
  stale: number;
  advertised: number;
}

export interface PeerView {
  address: string;
  asn: number;
  localAsn: number;
  type: 'ebgp' | 'ibgp';
  source: 'static' | 'mesh';
  description?: string;
  state: string;
  /** Seconds in Established, or null when not Established. */
  uptimeSeconds: number | null;
  /** The peer's BGP identifier once its OPEN was received. */
  routerId?: string;
  holdTime?: number;
  keepaliveTime?: number;
  /** Negotiated families ("ipv4", "ipv6"). */
  families: string[];
  prefixes: { received: number; accepted: number; stale: number; advertised: number };
  perFamily: Record<string, FamilyCountsView>;
  updates: { received: number; sent: number };
  lastError: PeerErrorView | null;
  gracefulRestart: {
    /** We announced GR to this peer (restarting-speaker role). */
    local: boolean;
    /** The peer announced GR (we act as helper), with its restart time. */
    peerRestartTime?: number;
    /** The peer sent the RFC 8538 N-bit (a NOTIFICATION keeps its routes too). */
    peerNotification?: boolean;
    /** The peer's routes are held as stale right now. */
    helping: boolean;
  };
  maxPrefix?: { limit: number; action: string };
  /** Configured but stopped by nrd (max-prefix teardown): needs a reset or a reload. */
  stopped?: string;
}

export interface PeersResponse {
  asn: number;
  routerId: string;
  peers: PeerView[];
}

export interface PathView {
  /** Peer address, or "local" for this node's own prefixes. */
  peer: string;
  best: boolean;
  /** Member of the ECMP set installed in the kernel. */
  ecmp: boolean;
  stale: boolean;
  nextHops: string[];
  /** AS_PATH as text: "65002 65003 {65004,65005}". */
  asPath: string;
  origin: 'igp' | 'egp' | 'incomplete';
  med?: number;
  localPref?: number;
  communities?: string[];
  largeCommunities?: string[];
  ageSeconds: number;
}

export interface RouteView {
  family: string;
  prefix: string;
  paths: PathView[];
}

export interface RoutesResponse {
  /** Prefixes that matched (before the limit). */
  total: number;
  /** true when `routes` was cut at the limit. */
  truncated: boolean;
  routes: RouteView[];
}
