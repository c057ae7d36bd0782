// JSON bodies of the cluster-state part of the control API (/v1/nodes, /v1/endpoints,
// /v1/services, /v1/policies), shared by the daemon that produces them and nrdctl that prints them.
// Additive changes only.
import type { EndpointRecord, PolicyRecord, ServiceRecord } from './records.js';

export interface NodeView {
  name: string;
  address: string;
  vtepMac?: string;
  asn?: number;
  /** Pod CIDRs owned by the node (from the CIDR claims in etcd). */
  podCidrs: string[];
  /** Liveness key present. */
  alive: boolean;
  /** This is the node answering. */
  self: boolean;
  version?: string;
}

export interface NodesResponse {
  /** The answering node. */
  node: string;
  /** Nodes, liveness and CIDR claims have had their first listing (else the list is partial). */
  synced: boolean;
  nodes: NodeView[];
  /** Records of nodes, liveness and CIDR claims refused on admission (absent when none). */
  rejected?: RejectedRecordView[];
}

export interface RejectedRecordView {
  /** The collection: nodes, alive or cidrs. */
  kind: string;
  key: string;
  /** Stable code, as in nrd_state_rejected_records_total. */
  reason: string;
  message: string;
}

export interface EndpointsResponse {
  node: string;
  synced: boolean;
  endpoints: EndpointRecord[];
}

/** What this node's datapath holds for a service: its id and backends with their state. */
export interface ServiceDatapathView {
  id: number;
  /** Draining: removed (or being replaced), takes no new connection, keeps its established ones. */
  backends: { ip: string; port: number; id: number; state: 'active' | 'draining' }[];
}

export interface ServicesResponse {
  /** `datapath` is absent where this node's datapath does not hold the service (yet). */
  services: (ServiceRecord & { datapath?: ServiceDatapathView })[];
}

export interface PoliciesResponse {
  policies: PolicyRecord[];
}

export interface DecommissionResponse {
  node: string;
  /** Pod CIDRs returned to the pool (empty when the node held none). */
  freedCidrs: string[];
}

export interface DeleteResponse {
  deleted: string;
}
