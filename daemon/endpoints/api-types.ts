// JSON shapes of the endpoints API (POST/GET/DELETE /v1/endpoints…, GET /v1/local/endpoints), shared
// by nrd, nrdctl and the CNI plugin. Additive changes only.
import type { Labels } from '../state/records.js';

/** Body of POST /v1/endpoints. */
export interface EndpointAddBody {
  name: string;
  /** Path of the workload's network namespace, e.g. /run/netns/NAME or /proc/PID/ns/net. */
  netns: string;
  /** Interface inside the namespace (default eth0). */
  ifname?: string;
  labels?: Labels;
}

/**
 * `ready`: veth, addresses and routes in place; `no-link`: the record exists but its host link does
 * not (being re-plumbed, see `error`); `pending`: just created, not yet seen back from etcd.
 */
export type EndpointState = 'ready' | 'no-link' | 'pending';

/** One endpoint of this node. */
export interface EndpointView {
  name: string;
  node: string;
  netns: string;
  ifname: string;
  /** One address per cluster family, no prefix length. */
  ips: string[];
  /** The gateway of each family (169.254.1.1, fe80::1), in the order of `ips`. */
  gateways: string[];
  /** MAC of the interface inside the namespace. */
  mac?: string;
  /** MAC the workload sees for its gateway (the host side of the veth carries it). */
  gatewayMac: string;
  /** MTU of the veth pair (both ends), as plumbed or as the host side has it. */
  mtu?: number;
  hostIfname: string;
  /** 0 when the host link does not exist. */
  hostIfindex: number;
  identity: number;
  labels: Labels;
  state: EndpointState;
  /** The last failure to plumb it, when not ready. */
  error?: string;
}

/** GET /v1/local/endpoints. */
export interface LocalEndpointsResponse {
  node: string;
  /** The etcd list of this node's endpoints is complete (before that, nothing is deleted). */
  synced: boolean;
  endpoints: EndpointView[];
}

/** DELETE /v1/endpoints/:name. */
export interface EndpointDeleteResponse {
  deleted: string;
}
