// JSON shapes of the routing layer's control API (GET /v1/routes), shared by the subsystem that
// serves them and by nrdctl that prints them.
import type { PathMode, RoutingMode } from './types.js';

export interface RouteEntryView {
  prefix: string;
  /** Remote node name; absent for the own CIDR and for BGP prefixes of no known node. */
  node?: string;
  mode: PathMode;
  /** Gateways (native/direct), the remote underlay address (vxlan), none (local). */
  nextHops: string[];
  /** When the prefix took this mode (ISO 8601). */
  since: string;
  sinceSeconds: number;
}

export interface RoutesApiResponse {
  /** routing.mode of the site config. */
  mode: RoutingMode;
  vxlan: { device: string; mac: string | null; mtu: number | null };
  /** Prefixes per path mode (all of them, before any filter or limit). */
  counts: Partial<Record<PathMode, number>>;
  /** Path switches since start by "from->to". */
  switches: Record<string, number>;
  /** Entries matching the filter; `routes` holds at most `limit` of them. */
  total: number;
  truncated: boolean;
  routes: RouteEntryView[];
}
