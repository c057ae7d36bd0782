// The endpoints' owner of kernel objects: what the endpoint datapath hands over as a level-triggered
// desired set (per endpoint its host-side veth, its addresses, and permanent neighbours on that veth)
// becomes host routes (/32, /128 onto the veth), kept links and neighbours, reconciled through the
// one shared KernelPort under the endpoint mark (owners.ts: rtm_protocol 221 "nrd-ep", links "nrdv…"
// of kind veth). It never lists, replaces or deletes routing's objects nor anyone else's.
// Kernel interfaces: rtnetlink via KernelPort (RTM_*ROUTE, RTM_*LINK, RTM_*NEIGH).
//
// The veth pair itself is created by whoever plumbs the endpoint (CNI ADD): this owner keeps the
// host side up, and once its inputs are in sync deletes owned veths no endpoint wants any more.
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/log.js';
import { canonicalMac, canonicalPrefix, familyOf } from './addr.js';
import { ENDPOINT_MARK, ownsLink } from './owners.js';
import { Reconciler, type DesiredState, type ReconcileReport, type ReconcilerOptions } from './reconciler.js';
import type { KernelPort } from './types.js';

/** One endpoint's kernel objects in the host namespace. */
export interface EndpointKernelSpec {
  /** Host-side veth name; must carry the endpoint prefix (ENDPOINT_MARK.linkPrefix). */
  hostIf: string;
  /** The endpoint's addresses: each becomes a host route onto hostIf. */
  addresses: readonly string[];
  /** MTU of the host-side veth (absent: left as created). */
  mtu?: number;
  /** Permanent neighbours on hostIf (the endpoint's MAC for its address, so no ARP is needed). */
  neighbours?: ReadonlyArray<{ ip: string; mac: string }>;
}

export interface EndpointOwnerDeps {
  log: Logger;
  clock?: Clock;
  /** Reconciler knobs (tests shorten the debounce, turn off the periodic resync). */
  reconciler?: Partial<Omit<ReconcilerOptions, 'log' | 'clock' | 'mark' | 'protocol'>>;
}

/** A spec the owner refused, and why (a bad spec never stops the other endpoints). */
export interface RejectedEndpoint {
  hostIf: string;
  reason: string;
}

/** The endpoints' desired kernel state, as plain data (pure: the unit tests call it directly). */
export function endpointDesired(specs: readonly EndpointKernelSpec[]): { desired: DesiredState; rejected: RejectedEndpoint[] } {
  const desired: DesiredState = { links: [], fdb: [], neighbours: [], routes: [] };
  const rejected: RejectedEndpoint[] = [];
  const seen = new Set<string>();
  for (const s of specs) {
    try {
      if (!ownsLink(ENDPOINT_MARK, { name: s.hostIf, kind: ENDPOINT_MARK.linkKind })) throw new Error(`host interface must start with ${ENDPOINT_MARK.linkPrefix}`);
      if (seen.has(s.hostIf)) throw new Error('host interface listed twice');
      const routes = s.addresses.map((a) => {
        const host = a.includes('/') ? a.slice(0, a.indexOf('/')) : a;
        return canonicalPrefix(`${host}/${familyOf(host) === 4 ? 32 : 128}`);
      });
      const neighbours = (s.neighbours ?? []).map((n) => ({ dev: s.hostIf, ip: canonicalPrefix(n.ip).split('/')[0]!, mac: canonicalMac(n.mac) }));
      seen.add(s.hostIf);
      desired.links!.push(s.mtu !== undefined ? { name: s.hostIf, mtu: s.mtu } : { name: s.hostIf });
      for (const dst of routes) desired.routes.push({ dst, type: 'unicast', nextHops: [{ dev: s.hostIf }] });
      desired.neighbours.push(...neighbours);
    } catch (e) {
      rejected.push({ hostIf: s.hostIf, reason: e instanceof Error ? e.message : String(e) });
    }
  }
  return { desired, rejected };
}

export class EndpointKernelOwner {
  readonly reconciler: Reconciler;
  private lastRejected = '';

  constructor(
    port: KernelPort,
    private readonly deps: EndpointOwnerDeps,
  ) {
    this.reconciler = new Reconciler(port, { ...deps.reconciler, mark: ENDPOINT_MARK, log: deps.log, ...(deps.clock ? { clock: deps.clock } : {}) });
  }

  /**
   * The full set of this node's endpoints (level-triggered: every call replaces the last). Until
   * `synced` (the endpoint store's first list is complete) nothing of ours is replaced or deleted.
   * Returns the specs refused; the others are programmed.
   */
  setEndpoints(specs: readonly EndpointKernelSpec[], synced: boolean): RejectedEndpoint[] {
    const { desired, rejected } = endpointDesired(specs);
    const key = JSON.stringify(rejected);
    if (rejected.length && key !== this.lastRejected) this.deps.log.warn({ rejected }, 'endpoint kernel objects refused');
    this.lastRejected = key;
    this.reconciler.setSynced(synced);
    this.reconciler.setDesired(desired);
    return rejected;
  }

  /** Subscribe to kernel changes and run the first full pass. */
  start(): Promise<ReconcileReport> {
    return this.reconciler.start();
  }

  /** Leaves every object in place (the next start adopts them). */
  stop(): void {
    this.reconciler.stop();
  }

  /** Run a full pass now (tests, and the datapath after plumbing an endpoint). */
  runNow(): Promise<ReconcileReport> {
    return this.reconciler.runNow();
  }

  get lastReport(): ReconcileReport | null {
    return this.reconciler.lastReport;
  }
}
