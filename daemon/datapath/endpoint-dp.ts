// The endpoint datapath in the worker: nrd_endpoint on tc ingress of every workload's host veth,
// nrd_netdev on tc ingress/egress of the uplink and the VXLAN device, the endpoint maps
// (nrd_endpoints, nrd_ep_ifs), the masquerade exclusion tries and the NAT map's GC.
//
// Each object is loaded once per knob set and its programs are pinned under
// <pinPath>/progs/@<object>-<hash of object file and knobs>/; the maps are pinned by name under
// <pinPath>/maps and shared by both objects. A restarted daemon whose pins match adopts them
// (bpf_obj_get) instead of loading: its links already run those programs, so nothing changes.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import type { LocalEndpoint } from '../lib/endpoint-types.js';
import { type Attachment, type TcMode, TC_SLOTS, attachTc, detachTc, pinnedInterfaces } from './attach.js';
import {
  type EpCounters,
  type EpIf,
  type EpKey,
  type EpValue,
  type NatEntry,
  type NatKey,
  type NonatValue,
  DropReason,
  NRD_DP_F_ARP_ANY,
  NRD_DP_F_FWD_EVENTS,
  NRD_DP_F_IPV6,
  NRD_DP_F_MASQ,
  epCountersCodec,
  epIfCodec,
  epKeyCodec,
  epValueCodec,
  ip4Knob,
  ip6Knob,
  macKnob,
  nat4EntryCodec,
  nat4KeyCodec,
  nat6EntryCodec,
  nat6KeyCodec,
  nonatValueCodec,
  sumEpCounters,
} from './endpoint-layout.js';
import { LB_MAP_NAMES } from './services-layout.js';
import { POLICY_MAP_NAMES } from './policy-layout.js';
import { EVENT_MAP_NAMES } from './events-layout.js';
import { type DesiredEndpoints, addrBytes, desiredEndpoints, parseMac, planEndpoints } from './endpoints.js';
import { closeFd, objGet, objPin } from './libbpf.js';
import {
  type Cidr,
  type Counter,
  PerCpuMap,
  TypedMap,
  counterCodec,
  formatCidr,
  lpm4KeyCodec,
  lpm6KeyCodec,
  parseCidr,
  sumCounters,
  reconcileLpmPair,
  u32Codec,
} from './maps.js';
import { type KnobValue, type LoadedObject, loadObject } from './objects.js';
import { ifNameToIndex } from './netif.js';
import { planNatGc } from './masquerade.js';
import { ensurePinSubdir } from './pin-dir.js';

/**
 * cfg_flags bit of nrd_endpoint: hand traffic leaving the node to the host stack instead of
 * bpf_fib_lookup + bpf_redirect_neigh. Set when masquerade runs in nftables, which only sees
 * packets that pass through the stack's POSTROUTING hook.
 */
export const NRD_DP_F_STACK_FWD = 8;

export interface EndpointDpOptions {
  endpoints: readonly LocalEndpoint[];
  /** ENDPOINT_GATEWAY_MAC. */
  gwMac: string;
  ipv6: boolean;
  /** Uplink and VXLAN device; those missing are skipped (the VXLAN device comes and goes). */
  netdevs: readonly string[];
  /** What masquerade should run as; 'bpf' needs nodeIp4 or nodeIp6 (each family masquerades
   *  only with its own node address). */
  masquerade: 'bpf' | 'nftables' | 'off';
  nodeIp4?: string;
  /** Only with ipv6: IPv6 masquerade is off without it. */
  nodeIp6?: string;
  portRange: { min: number; max: number };
  /** Cluster pools (kind POOL) and exclusions (kind EXCLUDE), IPv4 and IPv6. */
  pools: readonly string[];
  exclude: readonly string[];
  /** Service LB knobs of nrd_endpoint (nrd_lb.h): the Maglev table size and lb_flags. */
  lb?: { maglevM: number; flags: number };
  /** Flow events for forwarded traffic too (datapath.flowEvents.forwarded); drops and translations always. */
  forwardedEvents?: boolean;
}

export interface EndpointDpStatus {
  /** Endpoint id → its attachment (absent: not attached, see errors). */
  endpoints: Array<{ id: string; ifname: string; ifindex: number; attachment?: Attachment }>;
  netdevs: Attachment[];
  /** The masquerade the BPF side runs: 'bpf' only when nrd_netdev loaded with it and sits on the uplink egress. */
  bpfMasquerade: boolean;
  /** Why BPF masquerade is not running although asked for (load or attach error). */
  bpfMasqueradeError?: string;
  errors: Array<{ ifname: string; hook: string; error: string }>;
}

export interface EndpointDpStats {
  /** By host ifindex (the metrics turn it into the endpoint id). */
  endpoints: Array<{ ifindex: number; counters: EpCounters }>;
  drops: Record<keyof typeof DropReason, Counter>;
  natEntries: number;
}

const EP_OBJ = 'nrd_endpoint';
const DEV_OBJ = 'nrd_netdev';
const EP_PROG = 'nrd_ep_ingress';
const DEV_PROGS = { ingress: 'nrd_dev_ingress', egress: 'nrd_dev_egress' } as const;
// The service maps (nrd_lb.h) too: nrd_endpoint translates, nrd_netdev reverse-translates, and
// services.ts writes them through these pins.
const SHARED_MAPS = ['nrd_endpoints', 'nrd_ep_ifs', 'nrd_ep_stats', 'nrd_dp_drops', ...LB_MAP_NAMES, ...POLICY_MAP_NAMES, ...EVENT_MAP_NAMES] as const;
const DEV_MAPS = [...SHARED_MAPS, 'nrd_nat4', 'nrd_nat6', 'nrd_nonat4', 'nrd_nonat6'] as const;
const NAT_MAPS = [
  { map: 'nrd_nat4', key: nat4KeyCodec, value: nat4EntryCodec },
  { map: 'nrd_nat6', key: nat6KeyCodec, value: nat6EntryCodec },
] as const;

/** A loaded (or adopted) object: program and map fds by name. */
class ProgramSet {
  constructor(
    readonly hash: string,
    private readonly progs: Map<string, number>,
    private readonly maps: Map<string, number>,
    private readonly obj: LoadedObject | undefined,
    readonly adopted: boolean,
  ) {}

  progFd(name: string): number {
    const fd = this.progs.get(name);
    if (fd === undefined) throw new Error(`program ${name} not loaded`);
    return fd;
  }

  mapFd(name: string): number {
    const fd = this.maps.get(name);
    if (fd === undefined) throw new Error(`map ${name} not loaded`);
    return fd;
  }

  close(): void {
    if (this.obj) this.obj.close();
    else for (const fd of [...this.progs.values(), ...this.maps.values()]) closeFd(fd);
  }
}

function knobHash(path: string, knobs: Record<string, KnobValue>): string {
  const h = createHash('sha256').update(readFileSync(path));
  h.update(JSON.stringify(knobs, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
  return h.digest('hex').slice(0, 16);
}

function unlinkQuiet(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/** Adopts the pinned programs of this exact object and knob set, or loads and pins them. */
function loadProgramSet(pinPath: string, objectDir: string, object: string, programs: readonly string[],
  maps: readonly string[], knobs: Record<string, KnobValue>): ProgramSet {
  const path = join(objectDir, `${object}.bpf.o`);
  const hash = knobHash(path, knobs);
  const dir = join(pinPath, 'progs', `@${object}-${hash}`);
  const mapsDir = join(pinPath, 'maps');
  if (programs.every((p) => existsSync(join(dir, p))) && maps.every((m) => existsSync(join(mapsDir, m)))) {
    const progFds = new Map<string, number>();
    const mapFds = new Map<string, number>();
    try {
      for (const p of programs) progFds.set(p, objGet(join(dir, p)));
      for (const m of maps) mapFds.set(m, objGet(join(mapsDir, m)));
      return new ProgramSet(hash, progFds, mapFds, undefined, true);
    } catch {
      // A pin that cannot be opened is as good as none: load afresh below.
      for (const fd of [...progFds.values(), ...mapFds.values()]) closeFd(fd);
    }
  }
  const obj = loadObject({ path, knobs, pinDir: mapsDir, pinMaps: maps });
  ensurePinSubdir(dir);
  const progFds = new Map<string, number>();
  for (const p of programs) {
    const fd = obj.programFd(p);
    unlinkQuiet(join(dir, p));
    objPin(fd, join(dir, p));
    progFds.set(p, fd);
  }
  return new ProgramSet(hash, progFds, new Map(maps.map((m) => [m, obj.mapFd(m)])), obj, false);
}

/** Removes pinned program directories of an object other than the one in use. */
function prunePinnedPrograms(pinPath: string, object: string, keep: string | undefined): void {
  const root = join(pinPath, 'progs');
  if (!existsSync(root)) return;
  for (const d of readdirSync(root)) {
    if (!d.startsWith(`@${object}-`) || d === `@${object}-${keep ?? ''}`) continue;
    for (const f of readdirSync(join(root, d))) unlinkQuiet(join(root, d, f));
    rmdirSync(join(root, d));
  }
}

export class EndpointDatapath {
  private ep: ProgramSet | undefined;
  private dev: ProgramSet | undefined;
  private lastStatus: EndpointDpStatus = { endpoints: [], netdevs: [], bpfMasquerade: false, errors: [] };

  /** Applies the options; errors per interface end up in the status, never as a throw. */
  reconcile(pinPath: string, objectDir: string, o: EndpointDpOptions, tcMode: TcMode | undefined): EndpointDpStatus {
    const errors: EndpointDpStatus['errors'] = [];
    const status: EndpointDpStatus = { endpoints: [], netdevs: [], bpfMasquerade: false, errors };
    const gw = macKnob(parseMac(o.gwMac));
    const baseFlags = (o.ipv6 ? NRD_DP_F_IPV6 : 0) | NRD_DP_F_ARP_ANY | (o.forwardedEvents ? NRD_DP_F_FWD_EVENTS : 0);
    const epKnobs: Record<string, KnobValue> = { gw_mac: gw, cfg_flags: baseFlags | (o.masquerade === 'nftables' ? NRD_DP_F_STACK_FWD : 0) };
    if (o.lb) Object.assign(epKnobs, { lb_maglev_m: o.lb.maglevM, lb_flags: o.lb.flags });
    this.ep = this.swap(this.ep, () => loadProgramSet(pinPath, objectDir, EP_OBJ, [EP_PROG], SHARED_MAPS, epKnobs));

    // nrd_netdev: its failure costs BPF masquerade (the caller falls back to nftables) and the
    // direct delivery on the uplink (the kernel's routes to the veths still deliver).
    const nodeIp6 = o.ipv6 ? o.nodeIp6 : undefined;
    const masq = o.masquerade === 'bpf' && (o.nodeIp4 !== undefined || nodeIp6 !== undefined);
    const devKnobs: Record<string, KnobValue> = {
      gw_mac: gw,
      cfg_flags: baseFlags | (masq ? NRD_DP_F_MASQ : 0),
      node_ip4: masq && o.nodeIp4 ? ip4Knob(addrBytes(o.nodeIp4).addr) : 0,
      node_ip6: ip6Knob(masq && nodeIp6 ? addrBytes(nodeIp6).addr : Buffer.alloc(16)),
      nat_port_min: o.portRange.min,
      nat_port_max: o.portRange.max,
    };
    // nrd_netdev picks no backend, but it pins nrd_svc_tables too, whose table template is sized
    // by lb_maglev_m: another M than nrd_endpoint's would replace the pinned map under it.
    if (o.lb) devKnobs.lb_maglev_m = o.lb.maglevM;
    try {
      this.dev = this.swap(this.dev, () => loadProgramSet(pinPath, objectDir, DEV_OBJ, Object.values(DEV_PROGS), DEV_MAPS, devKnobs));
    } catch (e) {
      this.dev?.close();
      this.dev = undefined;
      status.bpfMasqueradeError = `${DEV_OBJ}: ${(e as Error).message.split('\n')[0]}`;
    }

    this.reconcileEndpoints(pinPath, o, tcMode, status);
    if (this.dev) {
      this.reconcileNonat(o);
      this.reconcileNetdevs(pinPath, o, tcMode, status);
      if (masq) {
        const uplinkEgress = status.netdevs.some((a) => a.ifname === o.netdevs[0] && a.hook === 'tc-egress');
        status.bpfMasquerade = uplinkEgress;
        if (!uplinkEgress) status.bpfMasqueradeError ??= errors.find((x) => x.ifname === o.netdevs[0])?.error ?? `${o.netdevs[0]}: not attached`;
      }
    }
    if (o.masquerade === 'bpf' && !masq) status.bpfMasqueradeError = 'no node address to masquerade to (node.address, or the uplink\'s global IPv6 address)';
    prunePinnedPrograms(pinPath, EP_OBJ, this.ep.hash);
    prunePinnedPrograms(pinPath, DEV_OBJ, this.dev?.hash);
    this.lastStatus = status;
    return status;
  }

  /** Keeps the current set when the knobs are the same, else loads the new one and closes the old. */
  private swap(cur: ProgramSet | undefined, load: () => ProgramSet): ProgramSet {
    const next = load();
    if (cur && cur.hash === next.hash) {
      next.close();
      return cur;
    }
    // The old fds close now; its pinned programs stay until prunePinnedPrograms, after every
    // link runs the new ones.
    cur?.close();
    return next;
  }

  private epMaps(set: ProgramSet) {
    return {
      eps: new TypedMap<EpKey, EpValue>(set.mapFd('nrd_endpoints'), epKeyCodec, epValueCodec),
      ifs: new TypedMap<number, EpIf>(set.mapFd('nrd_ep_ifs'), u32Codec, epIfCodec),
      stats: new PerCpuMap<number, EpCounters>(set.mapFd('nrd_ep_stats'), u32Codec, epCountersCodec),
    };
  }

  private reconcileEndpoints(pinPath: string, o: EndpointDpOptions, tcMode: TcMode | undefined, status: EndpointDpStatus): void {
    const set = this.ep!;
    const desired: DesiredEndpoints & { conflicts: string[] } = desiredEndpoints(o.endpoints);
    for (const c of desired.conflicts) status.errors.push({ ifname: '', hook: 'endpoint', error: c });
    // An endpoint whose veth no longer has the index it was created with is not attached: the
    // entry would point redirects at whatever device got that index.
    for (const [ifname, e] of [...desired.ifnames]) {
      const now = ifNameToIndex(ifname);
      if (now !== e.ifindex) {
        status.errors.push({ ifname, hook: 'tc-ingress', error: now === 0 ? 'no such device' : `ifindex is ${now}, endpoint says ${e.ifindex}` });
        desired.ifnames.delete(ifname);
        desired.ifs.delete(e.ifindex);
        for (const [k, v] of [...desired.eps]) if (v.value.ifindex === e.ifindex) desired.eps.delete(k);
      }
    }
    const maps = this.epMaps(set);
    const plan = planEndpoints(desired, {
      eps: maps.eps.entries(),
      ifs: maps.ifs.entries(),
      stats: maps.stats.keys(),
      pinned: pinnedInterfaces(pinPath, TC_SLOTS.endpoint).tc,
    });
    for (const { key, value } of plan.setEps) maps.eps.set(key, value);
    for (const [k, v] of plan.setIfs) maps.ifs.set(k, v);
    const attached = new Map<string, Attachment>();
    for (const ifname of plan.attach) {
      try {
        attached.set(ifname, attachTc(set.progFd(EP_PROG), pinPath, ifname, 'ingress', tcMode, TC_SLOTS.endpoint));
      } catch (e) {
        status.errors.push({ ifname, hook: 'tc-ingress', error: (e as Error).message.split('\n')[0] });
      }
    }
    for (const ifname of plan.detach) {
      try {
        detachTc(pinPath, ifname, 'ingress', TC_SLOTS.endpoint);
      } catch (e) {
        status.errors.push({ ifname, hook: 'tc-ingress', error: `detach: ${(e as Error).message.split('\n')[0]}` });
      }
    }
    for (const k of plan.deleteEps) maps.eps.delete(k);
    for (const k of plan.deleteIfs) maps.ifs.delete(k);
    for (const k of plan.deleteStats) maps.stats.delete(k);
    for (const [ifname, e] of desired.ifnames) {
      const a = attached.get(ifname);
      status.endpoints.push({ id: e.id, ifname, ifindex: e.ifindex, ...(a ? { attachment: a } : {}) });
    }
  }

  private reconcileNonat(o: EndpointDpOptions): void {
    const set = this.dev!;
    const desired = new Map<string, { cidr: Cidr; value: NonatValue }>();
    // Pools first: a pool listed again as an exclusion stays a pool.
    for (const [list, kind] of [[o.pools, 1], [o.exclude, 2]] as const) {
      for (const text of list) {
        const cidr = parseCidr(text);
        const key = formatCidr(cidr);
        if (!desired.has(key)) desired.set(key, { cidr, value: { kind, reserved: 0 } });
      }
    }
    const maps = {
      4: new TypedMap<Cidr, NonatValue>(set.mapFd('nrd_nonat4'), lpm4KeyCodec, nonatValueCodec),
      6: new TypedMap<Cidr, NonatValue>(set.mapFd('nrd_nonat6'), lpm6KeyCodec, nonatValueCodec),
    };
    reconcileLpmPair(maps, desired, (a, b) => a.kind === b.kind);
  }

  private reconcileNetdevs(pinPath: string, o: EndpointDpOptions, tcMode: TcMode | undefined, status: EndpointDpStatus): void {
    const set = this.dev!;
    const present = o.netdevs.filter((n, i) => i === 0 || ifNameToIndex(n) !== 0);
    for (const ifname of pinnedInterfaces(pinPath, TC_SLOTS.netdev).tc) {
      if (present.includes(ifname)) continue;
      for (const dir of ['ingress', 'egress'] as const) detachTc(pinPath, ifname, dir, TC_SLOTS.netdev);
    }
    for (const ifname of present) {
      for (const dir of ['ingress', 'egress'] as const) {
        try {
          status.netdevs.push(attachTc(set.progFd(DEV_PROGS[dir]), pinPath, ifname, dir, tcMode, TC_SLOTS.netdev));
        } catch (e) {
          status.errors.push({ ifname, hook: `tc-${dir}`, error: (e as Error).message.split('\n')[0] });
        }
      }
    }
  }

  status(): EndpointDpStatus {
    return this.lastStatus;
  }

  stats(): EndpointDpStats {
    const drops = Object.fromEntries(Object.keys(DropReason).map((k) => [k, { packets: 0n, bytes: 0n }])) as EndpointDpStats['drops'];
    const out: EndpointDpStats = { endpoints: [], drops, natEntries: 0 };
    const set = this.ep;
    if (!set) return out;
    const stats = new PerCpuMap<number, EpCounters>(set.mapFd('nrd_ep_stats'), u32Codec, epCountersCodec);
    for (const k of stats.keys()) out.endpoints.push({ ifindex: k, counters: sumEpCounters(stats.get(k) ?? []) });
    const dm = new PerCpuMap(set.mapFd('nrd_dp_drops'), u32Codec, counterCodec);
    for (const [name, idx] of Object.entries(DropReason)) drops[name as keyof typeof DropReason] = sumCounters(dm.get(idx) ?? []);
    const dev = this.dev;
    if (dev) for (const n of NAT_MAPS) out.natEntries += new TypedMap(dev.mapFd(n.map), n.key, n.value).keys().length;
    return out;
  }

  /** Deletes expired flows from nrd_nat4 and nrd_nat6 (now: CLOCK_MONOTONIC ns). */
  natGc(now: bigint): { deletedFlows: number; deletedEntries: number; entries: number } {
    const r = { deletedFlows: 0, deletedEntries: 0, entries: 0 };
    const dev = this.dev;
    if (!dev) return r;
    for (const n of NAT_MAPS) {
      const map = new TypedMap<NatKey, NatEntry>(dev.mapFd(n.map), n.key, n.value);
      const entries = map.entries();
      const plan = planNatGc(entries, now);
      let deleted = 0;
      for (const k of plan.delete) if (map.delete(k)) deleted++;
      r.deletedFlows += plan.flows;
      r.deletedEntries += deleted;
      r.entries += entries.length - deleted;
    }
    return r;
  }

  /** Closes fds; with detach also removes every endpoint and netdev link and the program pins. */
  stop(pinPath: string | undefined, detach: boolean): void {
    if (pinPath && detach) {
      for (const ifname of pinnedInterfaces(pinPath, TC_SLOTS.endpoint).tc) detachTc(pinPath, ifname, 'ingress', TC_SLOTS.endpoint);
      for (const ifname of pinnedInterfaces(pinPath, TC_SLOTS.netdev).tc) {
        for (const dir of ['ingress', 'egress'] as const) detachTc(pinPath, ifname, dir, TC_SLOTS.netdev);
      }
      prunePinnedPrograms(pinPath, EP_OBJ, undefined);
      prunePinnedPrograms(pinPath, DEV_OBJ, undefined);
      for (const m of DEV_MAPS) unlinkQuiet(join(pinPath, 'maps', m));
    }
    this.ep?.close();
    this.dev?.close();
    this.ep = undefined;
    this.dev = undefined;
  }
}
