// The datapath manager: loads nrd's BPF objects, keeps the uplink XDP prefilter and the endpoint
// tc programs attached (pinned tcx/XDP links, updated in place across restarts), keeps the
// deny-list LPM maps equal to the configured CIDRs, and explains its readiness.
//
// Level-triggered: reconcile() computes the desired attachments and map contents and applies only
// the differences; it may be called any time. stop() leaves links and maps pinned by default, so
// a restarting daemon never interrupts traffic (DESIGN invariant 1).
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import {
  type Attachment,
  type TcMode,
  type XdpMode,
  attachTc,
  attachXdp,
  detachTc,
  detachXdp,
  pinnedInterfaces,
} from './attach.js';
import { ensurePinDir } from './pin-dir.js';
import { setLogListener } from './libbpf.js';
import { type PinMigrationCount, describePinMigration, pinMigrationCounts, setPinMigrationListener } from './pin-migrate.js';
import {
  type Cidr,
  type Counter,
  type DenyValue,
  Dir,
  NRD_TC_F_STATS,
  PerCpuMap,
  TypedMap,
  XdpStat,
  counterCodec,
  denyValueCodec,
  formatCidr,
  ifKeyCodec,
  lpm4KeyCodec,
  lpm6KeyCodec,
  parseCidr,
  sumCounters,
  reconcileLpmPair,
  u32Codec,
} from './maps.js';
import { type LoadedObject, loadObject } from './objects.js';
import { EVENT_MAP_NAMES } from './events-layout.js';
import { type EndpointDpOptions, type EndpointDpStats, type EndpointDpStatus, EndpointDatapath } from './endpoint-dp.js';

export interface DatapathOptions {
  /** bpffs directory owned by nrd (config datapath.pinPath), e.g. /sys/fs/bpf/nrd. */
  pinPath: string;
  /** Directory with nrd_xdp.bpf.o and nrd_tc.bpf.o (default: the repository's bpf/). */
  objectDir?: string;
  /** Uplink interface for the XDP prefilter; none: no XDP program is attached. */
  uplink?: string;
  /** Denied source CIDRs (config datapath.xdpPrefilter.deny), IPv4 and IPv6. */
  deny?: readonly string[];
  /** Endpoint interfaces that get nrd_tc on ingress and egress. */
  endpoints?: readonly string[];
  tcMode?: TcMode;
  xdpMode?: XdpMode;
  /** nrd_tc load-time knob cfg_flags (default NRD_TC_F_STATS). */
  tcFlags?: number;
  /** The endpoint datapath (workload veths, uplink/VXLAN programs, masquerade); absent: none. */
  endpointDp?: EndpointDpOptions;
}

/** The part of a logger the datapath uses: pino's Logger fits, and so does the worker's forwarder. */
export interface DatapathLog {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface DatapathStatus {
  ready: boolean;
  /** Why not ready (or the last reconcile error), naming the interface and the failing call. */
  reason?: string;
  attachments: Attachment[];
  deny: { ipv4: number; ipv6: number };
  errors: Array<{ ifname: string; hook: string; error: string }>;
  endpointDp?: EndpointDpStatus;
}

export interface DatapathStats {
  xdp: { pass: Counter; dropDeny4: Counter; dropDeny6: Counter; malformed: Counter };
  interfaces: Array<{ ifindex: number; dir: 'ingress' | 'egress'; counter: Counter }>;
  endpointDp?: EndpointDpStats;
  /** Pinned maps migrated or replaced because an upgrade changed their definition (pin-migrate.ts). */
  pinMigrations: PinMigrationCount[];
}

const XDP_PROG = 'nrd_xdp_prefilter';
const TC_PROGS = { ingress: 'nrd_tc_ingress', egress: 'nrd_tc_egress' } as const;

export function defaultObjectDir(): string {
  return fileURLToPath(new URL('../../../bpf/', import.meta.url));
}

/** Parses every deny CIDR up front so a bad value is reported with its position, before any change. */
export function parseDenyList(deny: readonly string[]): Map<string, { cidr: Cidr; rule: number }> {
  const out = new Map<string, { cidr: Cidr; rule: number }>();
  deny.forEach((text, i) => {
    let cidr: Cidr;
    try {
      cidr = parseCidr(text);
    } catch (e) {
      throw new Error(`datapath.xdpPrefilter.deny[${i}]: ${(e as Error).message}`);
    }
    const key = formatCidr(cidr);
    if (!out.has(key)) out.set(key, { cidr, rule: i });
  });
  return out;
}

export class Datapath {
  private opts: DatapathOptions | undefined;
  private xdpObj: LoadedObject | undefined;
  private tcObj: LoadedObject | undefined;
  private tcFlagsLoaded: number | undefined;
  /** Objects replaced by a reload, closed once the links run the new programs. */
  private staleObjects: LoadedObject[] = [];
  private attachments = new Map<string, Attachment>();
  private errors: DatapathStatus['errors'] = [];
  private lastError: string | undefined;
  private readonly endpointDp = new EndpointDatapath();
  private endpointDpStatus: EndpointDpStatus | undefined;

  constructor(private readonly log?: DatapathLog) {}

  /**
   * Makes the pin path usable (mounting bpffs on /sys/fs/bpf when needed), loads the objects
   * (reusing pinned maps), then reconciles. Throws on a bad option, an unusable pin path
   * (NrdError pin_path_not_bpffs) or a failed load.
   */
  start(options: DatapathOptions): DatapathStatus {
    if (this.log) setLogListener((line, level) => (level === 0 ? this.log?.warn({ libbpf: line }) : this.log?.debug({ libbpf: line })));
    if (this.log) setPinMigrationListener((m) => this.log?.warn({ map: m.map, pin: m.path, action: m.action, change: m.reason, carried: m.carried, lost: m.lost }, describePinMigration(m)));
    parseDenyList(options.deny ?? []);
    const pins = ensurePinDir(options.pinPath);
    if (pins.mounted) this.log?.info({ mountpoint: pins.mounted, pinPath: pins.pinPath }, `mounted a bpf filesystem on ${pins.mounted} for datapath.pinPath`);
    this.opts = options;
    return this.reconcile();
  }

  /** Applies (new) options: map contents, attachments, detaches of interfaces no longer wanted. */
  reconcile(options?: DatapathOptions): DatapathStatus {
    if (options) {
      if (this.opts && options.pinPath !== this.opts.pinPath) throw new Error('datapath.pinPath cannot change at run time');
      parseDenyList(options.deny ?? []);
      this.opts = options;
    }
    const o = this.opts;
    if (!o) throw new Error('Datapath.reconcile before start');
    this.errors = [];
    this.lastError = undefined;
    try {
      this.loadObjects(o);
      this.reconcileDeny(o);
      this.reconcileAttachments(o);
      this.endpointDpStatus = o.endpointDp
        ? this.endpointDp.reconcile(o.pinPath, o.objectDir ?? defaultObjectDir(), o.endpointDp, o.tcMode)
        : undefined;
    } catch (e) {
      this.lastError = (e as Error).message;
      this.log?.error({ err: e }, 'datapath reconcile failed');
    }
    return this.status();
  }

  private loadObjects(o: DatapathOptions): void {
    const dir = o.objectDir ?? defaultObjectDir();
    const mapsDir = join(o.pinPath, 'maps');
    this.xdpObj ??= loadObject({
      path: join(dir, 'nrd_xdp.bpf.o'),
      pinDir: mapsDir,
      // the flow-event maps too: the prefilter's drops go to the ring buffer the endpoint objects share
      pinMaps: ['nrd_deny4', 'nrd_deny6', 'nrd_xdp_stats', ...EVENT_MAP_NAMES],
    });
    const flags = o.tcFlags ?? NRD_TC_F_STATS;
    if (this.tcObj && this.tcFlagsLoaded !== flags) {
      // A knob changed: load a new object; the links are updated to it below, then the old closes.
      const old = this.tcObj;
      this.tcObj = undefined;
      this.loadTc(dir, mapsDir, flags);
      this.staleObjects.push(old);
    }
    if (!this.tcObj) this.loadTc(dir, mapsDir, flags);
  }

  private loadTc(dir: string, mapsDir: string, flags: number): void {
    this.tcObj = loadObject({
      path: join(dir, 'nrd_tc.bpf.o'),
      knobs: { cfg_flags: flags },
      pinDir: mapsDir,
      pinMaps: ['nrd_if_stats'],
    });
    this.tcFlagsLoaded = flags;
  }

  private reconcileDeny(o: DatapathOptions): void {
    const xdp = this.xdpObj;
    if (!xdp) return;
    const desired = new Map([...parseDenyList(o.deny ?? [])].map(([text, { cidr, rule }]) => [text, { cidr, value: { rule, flags: 0 } }] as const));
    const maps = {
      4: new TypedMap<Cidr, DenyValue>(xdp.mapFd('nrd_deny4'), lpm4KeyCodec, denyValueCodec),
      6: new TypedMap<Cidr, DenyValue>(xdp.mapFd('nrd_deny6'), lpm6KeyCodec, denyValueCodec),
    };
    reconcileLpmPair(maps, desired, (a, b) => a.rule === b.rule);
  }

  private attachOne(key: string, fn: () => Attachment, ifname: string, hook: string): void {
    try {
      this.attachments.set(key, fn());
    } catch (e) {
      this.attachments.delete(key);
      this.errors.push({ ifname, hook, error: (e as Error).message.split('\n')[0] });
    }
  }

  private reconcileAttachments(o: DatapathOptions): void {
    const xdp = this.xdpObj;
    const tcObj = this.tcObj;
    if (!xdp || !tcObj) return;
    const pinned = pinnedInterfaces(o.pinPath);
    const endpoints = new Set(o.endpoints ?? []);

    // The prefilter goes on the uplink only when it has something to deny: an XDP program costs
    // even when it passes everything (generic XDP on a veth copies every frame: 2.5-7x less
    // cross-node throughput measured), and attaching XDP makes some NIC drivers reset their queues.
    const xdpOn = o.uplink && (o.deny?.length ?? 0) > 0 ? o.uplink : undefined;
    // Detach first what is no longer wanted (ownership: only what has an nrd pin).
    for (const ifname of pinned.xdp) {
      if (ifname !== xdpOn) {
        detachXdp(o.pinPath, ifname);
        this.attachments.delete(`${ifname}/xdp`);
      }
    }
    for (const ifname of pinned.tc) {
      if (!endpoints.has(ifname)) {
        for (const dir of ['ingress', 'egress'] as const) {
          detachTc(o.pinPath, ifname, dir);
          this.attachments.delete(`${ifname}/tc-${dir}`);
        }
      }
    }
    if (xdpOn) {
      const uplink = xdpOn;
      const fd = xdp.programFd(XDP_PROG);
      this.attachOne(`${uplink}/xdp`, () => attachXdp(fd, o.pinPath, uplink, o.xdpMode), uplink, 'xdp');
    }
    for (const ifname of endpoints) {
      for (const dir of ['ingress', 'egress'] as const) {
        const fd = tcObj.programFd(TC_PROGS[dir]);
        this.attachOne(`${ifname}/tc-${dir}`, () => attachTc(fd, o.pinPath, ifname, dir, o.tcMode), ifname, `tc-${dir}`);
      }
    }
    for (const old of this.staleObjects.splice(0)) old.close();
  }

  /** Readiness with its reasons. Ready means every wanted attachment is in place. */
  status(): DatapathStatus {
    const o = this.opts;
    let ipv4 = 0;
    let ipv6 = 0;
    if (this.xdpObj) {
      ipv4 = new TypedMap(this.xdpObj.mapFd('nrd_deny4'), lpm4KeyCodec, denyValueCodec).keys().length;
      ipv6 = new TypedMap(this.xdpObj.mapFd('nrd_deny6'), lpm6KeyCodec, denyValueCodec).keys().length;
    }
    const reasons: string[] = [];
    if (!o) reasons.push('not started');
    if (this.lastError) reasons.push(this.lastError.split('\n')[0]);
    for (const e of this.errors) reasons.push(`${e.ifname} ${e.hook}: ${e.error}`);
    for (const e of this.endpointDpStatus?.errors ?? []) reasons.push(`${e.ifname} ${e.hook}: ${e.error}`);
    return {
      ready: reasons.length === 0,
      reason: reasons.length ? reasons.join('; ') : undefined,
      attachments: [...this.attachments.values()],
      deny: { ipv4, ipv6 },
      errors: [...this.errors],
      ...(this.endpointDpStatus ? { endpointDp: this.endpointDpStatus } : {}),
    };
  }

  /** Counters summed over CPUs. */
  stats(): DatapathStats {
    const zero = { packets: 0n, bytes: 0n };
    const xdp = { pass: zero, dropDeny4: zero, dropDeny6: zero, malformed: zero };
    if (this.xdpObj) {
      const m = new PerCpuMap(this.xdpObj.mapFd('nrd_xdp_stats'), u32Codec, counterCodec);
      const get = (i: number): Counter => sumCounters(m.get(i) ?? []);
      xdp.pass = get(XdpStat.PASS);
      xdp.dropDeny4 = get(XdpStat.DROP_DENY4);
      xdp.dropDeny6 = get(XdpStat.DROP_DENY6);
      xdp.malformed = get(XdpStat.MALFORMED);
    }
    const interfaces: DatapathStats['interfaces'] = [];
    if (this.tcObj) {
      const m = new PerCpuMap(this.tcObj.mapFd('nrd_if_stats'), ifKeyCodec, counterCodec);
      for (const k of m.keys()) {
        interfaces.push({
          ifindex: k.ifindex,
          dir: k.dir === Dir.EGRESS ? 'egress' : 'ingress',
          counter: sumCounters(m.get(k) ?? []),
        });
      }
    }
    return { xdp, interfaces, ...(this.opts?.endpointDp ? { endpointDp: this.endpointDp.stats() } : {}), pinMigrations: pinMigrationCounts() };
  }

  /** Removes expired masquerade flows (see masquerade.ts planNatGc). */
  natGc(): { deletedFlows: number; deletedEntries: number; entries: number } {
    // process.hrtime is CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns.
    return this.endpointDp.natGc(process.hrtime.bigint());
  }

  /**
   * Closes the objects. With detach: true also removes every nrd link and cls_bpf filter and
   * unpins the maps (a decommissioned node); by default everything stays pinned and attached.
   */
  stop(opts: { detach?: boolean } = {}): void {
    const o = this.opts;
    if (o && opts.detach) {
      const pinned = pinnedInterfaces(o.pinPath);
      for (const ifname of pinned.xdp) detachXdp(o.pinPath, ifname);
      for (const ifname of pinned.tc) {
        detachTc(o.pinPath, ifname, 'ingress');
        detachTc(o.pinPath, ifname, 'egress');
      }
      for (const obj of [this.xdpObj, this.tcObj]) obj?.unpinMaps();
    }
    this.endpointDp.stop(o?.pinPath, opts.detach === true);
    this.endpointDpStatus = undefined;
    for (const obj of [this.xdpObj, this.tcObj, ...this.staleObjects]) obj?.close();
    this.xdpObj = undefined;
    this.tcObj = undefined;
    this.staleObjects = [];
    this.attachments.clear();
    if (this.log) {
      setLogListener(undefined);
      setPinMigrationListener(undefined);
    }
  }
}
