// The contract between the endpoints subsystem (which creates workload endpoints: veth pair,
// addresses, host routes, etcd record) and the datapath (which attaches the endpoint programs to
// each host-side veth and writes the endpoint maps). main.ts hands the endpoints' current set to the
// datapath, level-triggered: the whole set every time, the datapath reconciles towards it.

/** One workload endpoint on this node, as the datapath needs it. */
export interface LocalEndpoint {
  /** Endpoint id (the name given to `nrdctl endpoint add`, or the CNI container id). */
  readonly id: string;
  /** Host side of the veth pair (name starts with the endpoints' link prefix "nrdv"). */
  readonly hostIfname: string;
  readonly hostIfindex: number;
  /** MAC of the interface inside the workload's namespace (the L2 destination of its traffic). */
  readonly mac: string;
  /** Its addresses, one per cluster family (canonical text, no prefix length). */
  readonly ips: readonly string[];
  /** Security identity of its label set (policy); 0 when none yet. */
  readonly identity: number;
}

/** The link-local gateway every endpoint routes through; answered by BPF, configured nowhere. */
export const ENDPOINT_GATEWAY_V4 = '169.254.1.1';
export const ENDPOINT_GATEWAY_V6 = 'fe80::1';
/** The MAC the BPF programs answer for the gateway, and that every host-side veth carries (so a
 * packet handed to the host stack is PACKET_HOST there). Locally administered; "nrd" in ASCII. */
export const ENDPOINT_GATEWAY_MAC = '02:6e:72:64:00:01';
