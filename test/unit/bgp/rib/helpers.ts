// Builders for RIB tests: peers, attributes, UPDATEs, and a RIB with nrd-like default policies.
import type { FamilyKey, PathAttributes, UpdateMessage } from '../../../../daemon/bgp/types.js';
import { Rib, type RibOptions } from '../../../../daemon/bgp/rib/rib.js';
import type { PeerInfo } from '../../../../daemon/bgp/rib/peer.js';
import { ImportPolicy } from '../../../../daemon/bgp/policy/import.js';
import { ExportPolicy } from '../../../../daemon/bgp/policy/export.js';
import type { ExportPolicyOptions, ImportPolicyOptions } from '../../../../daemon/bgp/policy/options.js';

export const V4: FamilyKey = '1/1';
export const V6: FamilyKey = '2/1';
export const LOCAL_AS = 65000;
export const ROUTER_ID = '192.0.2.1';

/** Peer n: address 192.0.2.(10+n), router id 198.51.100.(10+n) unless overridden. */
export function peer(n: number, over: Partial<PeerInfo> = {}): PeerInfo {
  const address = over.address ?? `192.0.2.${10 + n}`;
  const type = over.type ?? 'ebgp';
  return {
    id: over.id ?? address,
    address,
    asn: over.asn ?? (type === 'ibgp' ? LOCAL_AS : 65100 + n),
    localAsn: LOCAL_AS,
    routerId: over.routerId ?? `198.51.100.${10 + n}`,
    type,
    rrClient: over.rrClient ?? false,
    families: over.families ?? [V4, V6],
    nextHopSelf: over.nextHopSelf ?? { ipv4: '192.0.2.1', ipv6: ['2001:db8::1'] },
  };
}

/** Attributes of a route from `asns` (one AS_SEQUENCE), IGP origin, next hop nh. */
export function attrs(asns: number[], over: Partial<PathAttributes> = {}): PathAttributes {
  return { origin: 0, asPath: asns.length ? [{ type: 2, asns: [...asns] }] : [], nextHop: '192.0.2.99', ...over };
}

export function update(prefixes: string[], a: PathAttributes | null, withdrawn: string[] = []): UpdateMessage {
  return {
    type: 'update',
    withdrawn: withdrawn.map((prefix) => ({ prefix })),
    attrs: a,
    nlri: a ? prefixes.map((prefix) => ({ prefix })) : [],
  };
}

export function update6(prefixes: string[], a: PathAttributes | null, nextHops: string[], withdrawn: string[] = []): UpdateMessage {
  const u: UpdateMessage = { type: 'update', withdrawn: [], attrs: a, nlri: [] };
  if (a && prefixes.length) u.mpReach = { afi: 2, safi: 1, nextHops, nlri: prefixes.map((prefix) => ({ prefix })) };
  if (withdrawn.length) u.mpUnreach = { afi: 2, safi: 1, withdrawn: withdrawn.map((prefix) => ({ prefix })) };
  return u;
}

export const IMPORT_DEFAULT: ImportPolicyOptions = {
  ranges: [
    { prefix: '10.0.0.0/8', maxLength: 32 },
    { prefix: 'fd00::/8', maxLength: 128 },
  ],
};

export function makeRib(
  over: Partial<RibOptions> & { import?: ImportPolicyOptions; export?: ExportPolicyOptions } = {},
): Rib {
  return new Rib({
    localAsn: LOCAL_AS,
    routerId: ROUTER_ID,
    importPolicy: new ImportPolicy(over.import ?? IMPORT_DEFAULT),
    exportPolicy: new ExportPolicy(over.export ?? { originate: [] }),
    ...over,
  });
}

/** Peer ids of the ECMP set, best first. */
export function ecmpIds(rib: Rib, family: FamilyKey, prefix: string): string[] {
  return rib.selection(family, prefix).ecmp.map((p) => p.peerId);
}

export function bestId(rib: Rib, family: FamilyKey, prefix: string): string | null {
  return rib.selection(family, prefix).best?.peerId ?? null;
}
