// The lab's window on each node: the JSON answers of nrd's control API (HTTP over the node's unix
// socket, through nrdctl's own client), typed with the shapes the daemon publishes.
import { apiRequest } from '../../daemon/cli/client.js';
import type { NodesResponse } from '../../daemon/state/api-types.js';
import type { RoutesApiResponse } from '../../daemon/routing/api-types.js';
import type { PeersResponse, RoutesResponse as BgpRoutesResponse } from '../../daemon/bgp/speaker/api-types.js';

export type { NodesResponse, RoutesApiResponse, PeersResponse, BgpRoutesResponse };

const TIMEOUT_MS = 5000;

/** GET /v1/nodes (`nrdctl nodes -o json`). */
export function getNodes(socket: string): Promise<NodesResponse> {
  return apiRequest<NodesResponse>(socket, '/v1/nodes', { timeoutMs: TIMEOUT_MS });
}

/** GET /v1/routes (`nrdctl routes -o json`): every prefix the routing layer holds, with its mode. */
export function getRoutes(socket: string): Promise<RoutesApiResponse> {
  return apiRequest<RoutesApiResponse>(socket, '/v1/routes', { timeoutMs: TIMEOUT_MS });
}

/** GET /v1/peers (`nrdctl peers -o json`). */
export function getPeers(socket: string): Promise<PeersResponse> {
  return apiRequest<PeersResponse>(socket, '/v1/peers', { timeoutMs: TIMEOUT_MS });
}

/** GET /v1/bgp/routes (`nrdctl bgp routes -o json`): the Loc-RIB, best path marked. */
export function getBgpRoutes(socket: string): Promise<BgpRoutesResponse> {
  return apiRequest<BgpRoutesResponse>(socket, '/v1/bgp/routes', { timeoutMs: TIMEOUT_MS });
}

/** The node's own IPv4 pod CIDR, once its state layer has claimed one (else undefined). */
export async function ownCidr(socket: string): Promise<string | undefined> {
  const body = await getNodes(socket);
  const self = body.nodes.find((n) => n.self);
  return self?.podCidrs.find((c) => !c.includes(':'));
}
