// Ownership marks of the kernel objects nrd writes, one per owner inside nrd (routing now,
// endpoints next), all over the one KernelPort that daemon/main.ts builds. An owner's reconcile lists,
// replaces and deletes only objects that carry its own mark; objects of another owner and foreign
// (unmarked) objects are never touched (docs/design.md, "ownership is marked, never guessed").
// Kernel interfaces: rtm_protocol of rtnetlink routes, interface names (IFNAMSIZ 16).
//
// The marks:
//   routing    routes with rtm_protocol 220 ("nrd", routing.routeProtocol may move it); VXLAN links whose name
//              starts with "nrd" (the VXLAN device, e.g. nrd.vxlan); neighbours and FDB entries that
//              live on those links.
//   endpoints  routes with rtm_protocol 221 ("nrd-ep"): the endpoints' /32 and /128 host routes;
//              veth links whose name starts with "nrdv" (the host side of each endpoint's veth
//              pair); neighbours that live on those links (the gateway/endpoint entries).
// "nrdv" begins with "nrd": a link belongs to the owner with the LONGEST matching prefix, and each
// owner also names the link kind it owns, so neither can mistake the other's links for its own.
// Both protocol numbers are named in /etc/iproute2/rt_protos.d/nrd.conf so `ip route` shows them.
// Why 220/221: a protocol number is an ownership mark, so it must be one no other routing software
// on the node writes. FRR's zebra takes 186..198 (196 is its staticd, 197 openfabric), BIRD 12,
// Quagga/zebra 11, keepalived 18, babel 42, Open/R 99 (iproute2's rt_protos and FRR's frr.conf);
// an earlier nrd used 196 and would have deleted FRR's static routes on a node running FRR.

/** rtm_protocol values that other routing software on a node writes: never nrd's mark. */
export const FOREIGN_PROTOCOLS: ReadonlyMap<number, string> = new Map([
  [8, 'gated'], [9, 'ra (IPv6 router advertisements)'], [10, 'mrt'], [11, 'zebra'], [12, 'BIRD'], [13, 'dnrouted'],
  [14, 'XORP'], [15, 'ntk'], [16, 'dhcp'], [17, 'mrouted'], [18, 'keepalived'], [42, 'babel'], [99, 'Open/R'],
  ...[186, 187, 188, 189, 190, 191, 192, 193, 194, 195, 196, 197, 198].map((n): [number, string] => [n, 'FRR (zebra)']),
]);

export type OwnerName = 'routing' | 'endpoints';

export interface OwnerMark {
  readonly owner: OwnerName;
  /** rtm_protocol of every route of this owner. */
  readonly protocol: number;
  /** The name of the protocol in rt_protos (what `ip route` prints). */
  readonly protocolName: string;
  /** Every link of this owner starts with this. */
  readonly linkPrefix: string;
  /** IFLA_INFO_KIND of the links this owner creates, adopts and deletes. */
  readonly linkKind: string;
}

export const ROUTING_MARK: OwnerMark = Object.freeze({ owner: 'routing', protocol: 220, protocolName: 'nrd', linkPrefix: 'nrd', linkKind: 'vxlan' });
export const ENDPOINT_MARK: OwnerMark = Object.freeze({ owner: 'endpoints', protocol: 221, protocolName: 'nrd-ep', linkPrefix: 'nrdv', linkKind: 'veth' });

export const OWNER_MARKS: readonly OwnerMark[] = Object.freeze([ROUTING_MARK, ENDPOINT_MARK]);

/** The rt_protos.d lines naming nrd's route protocols (what systemd/ installs). */
export function rtProtosLines(): string {
  return OWNER_MARKS.map((m) => `${m.protocol}\t${m.protocolName}`).join('\n') + '\n';
}

/**
 * The owner whose link prefix is the longest match for `name` (null: not nrd's). A link is owned by
 * that owner only if its kind is also the owner's kind: use ownsLink for the full test.
 */
export function linkOwnerByName(name: string, marks: readonly OwnerMark[] = OWNER_MARKS): OwnerMark | null {
  let best: OwnerMark | null = null;
  for (const m of marks) if (name.startsWith(m.linkPrefix) && (!best || m.linkPrefix.length > best.linkPrefix.length)) best = m;
  return best;
}

/** Does `mark` own a link of this name and kind? */
export function ownsLink(mark: OwnerMark, link: { name: string; kind?: string | undefined }): boolean {
  return link.kind === mark.linkKind && linkOwnerByName(link.name)?.owner === mark.owner;
}
