// Idempotent attachment of nrd programs to interfaces, with every link pinned on bpffs so it
// outlives the daemon: tcx links (bpf_link_create, kernel >= 6.6) with a clsact + cls_bpf fallback
// through iproute2 `tc`, and XDP links (driver mode, then generic). A pinned link that still sits
// on the same device is updated in place (bpf_link_update keeps its id, no packet sees a gap).
//
// Pin layout under <pinPath> (ownership is the directory, never a guess). Each tc "slot" is one
// nrd program per hook (tcx runs several in attach order; cls_bpf keeps them apart by pref):
//   links/<ifname>/tcx_ingress | tcx_egress | xdp_drv | xdp_skb      counters slot, XDP
//   links/<ifname>/ep_ingress                                       endpoint slot (host veths)
//   links/<ifname>/dev_ingress | dev_egress                         netdev slot (uplink, VXLAN)
//   progs/<ifname>/tc_<dir> | ep_tc_<dir> | dev_tc_<dir>            programs held by cls_bpf
// <ifname> is written with '.' as '%2e' and '%' as '%25': bpffs refuses any name with a dot
// ("reserved for future use", EPERM), and interface names often have one (nrd.vxlan, eth0.100).
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, rmdirSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import {
  BPF_LINK_TYPE_TCX,
  BPF_LINK_TYPE_XDP,
  BPF_TCX_EGRESS,
  BPF_TCX_INGRESS,
  BPF_XDP,
  BpfError,
  XDP_FLAGS_DRV_MODE,
  XDP_FLAGS_SKB_MODE,
  closeFd,
  isBpfError,
  linkCreate,
  linkDetach,
  linkInfo,
  linkUpdate,
  objGet,
  objPin,
  progInfo,
} from './libbpf.js';
import { ifNameToIndex } from './netif.js';
import { ensurePinSubdir } from './pin-dir.js';

export type TcDirection = 'ingress' | 'egress';
export type TcMode = 'auto' | 'tcx' | 'tc';
export type XdpMode = 'auto' | 'driver' | 'generic';
export type Mechanism = 'tcx' | 'tc' | 'xdp-driver' | 'xdp-generic';

export interface Attachment {
  ifname: string;
  ifindex: number;
  hook: 'tc-ingress' | 'tc-egress' | 'xdp';
  mechanism: Mechanism;
  /** Pin of the link (tcx, xdp) or of the program (tc). */
  pin: string;
  /** bpf_link id (absent for cls_bpf, which has no link). */
  linkId?: number;
  progId: number;
  progName: string;
  /** True when an existing pinned link was updated in place rather than created. */
  updated: boolean;
}

/** cls_bpf filter priority and handle nrd owns on clsact ingress/egress in tc fallback mode. */
export const NRD_TC_PREF = 0x4e52; // "NR"
export const NRD_TC_HANDLE = 1;

/** One nrd program per tc hook of an interface: its pin names and its cls_bpf pref. */
export interface TcSlot {
  /** Link pin prefix: links/<ifname>/<link>_<dir>. */
  link: string;
  /** Program pin prefix under clsact: progs/<ifname>/<prog>_<dir>. */
  prog: string;
  pref: number;
}

export const TC_SLOTS = {
  /** nrd_tc counters. */
  counters: { link: 'tcx', prog: 'tc', pref: NRD_TC_PREF },
  /** nrd_endpoint on host-side veths. Runs before the counters under cls_bpf (lower pref). */
  endpoint: { link: 'ep', prog: 'ep_tc', pref: NRD_TC_PREF - 2 },
  /** nrd_netdev on the uplink and the VXLAN device. */
  netdev: { link: 'dev', prog: 'dev_tc', pref: NRD_TC_PREF - 1 },
} as const satisfies Record<string, TcSlot>;

function checkIfname(ifname: string): void {
  // IFNAMSIZ 16 incl. NUL; '/' and whitespace are invalid in Linux interface names anyway, and
  // this keeps a name from escaping the pin directory.
  if (!/^[^/\s]{1,15}$/.test(ifname) || ifname === '.' || ifname === '..') {
    throw new Error(`invalid interface name ${JSON.stringify(ifname)}`);
  }
}

function requireIfindex(ifname: string): number {
  checkIfname(ifname);
  const ifindex = ifNameToIndex(ifname);
  if (ifindex === 0) throw new BpfError('if_nametoindex', 19 /* ENODEV */, ifname);
  return ifindex;
}

/** An interface name as a bpffs path segment (no dot: bpffs refuses dotted names). */
export function pinSegment(ifname: string): string {
  return ifname.replace(/%/g, '%25').replace(/\./g, '%2e');
}

/** The interface name a pin directory stands for. */
export function ifnameOfPinSegment(segment: string): string {
  return segment.replace(/%2e/g, '.').replace(/%25/g, '%');
}

function linkDir(pinPath: string, ifname: string): string {
  return join(pinPath, 'links', pinSegment(ifname));
}

function progDir(pinPath: string, ifname: string): string {
  return join(pinPath, 'progs', pinSegment(ifname));
}

function unlinkIfExists(path: string): void {
  try {
    unlinkSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

function rmdirIfEmpty(path: string): void {
  try {
    if (readdirSync(path).length === 0) rmdirSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
}

/**
 * Tries to update the link pinned at `pin` to run progFd. Returns the link id if the link is
 * still attached to `ifindex` with the expected type; otherwise removes the stale pin (its device
 * is gone or was recreated with a new index) and returns undefined.
 */
function updatePinnedLink(pin: string, ifindex: number, type: number, progFd: number): number | undefined {
  if (!existsSync(pin)) return undefined;
  const fd = objGet(pin);
  try {
    const info = linkInfo(fd);
    if (info.type === type && info.ifindex === ifindex) {
      // Already running this very program (a restart that adopted its pinned programs): leave
      // the link alone, so a restart changes nothing that is right.
      if (info.progId !== progInfo(progFd).id) linkUpdate(fd, progFd);
      return info.id;
    }
    try {
      linkDetach(fd);
    } catch (e) {
      if (!isBpfError(e, 'ENOLINK', 'EINVAL', 'EOPNOTSUPP')) throw e;
    }
    unlinkIfExists(pin);
    return undefined;
  } finally {
    closeFd(fd);
  }
}

/** Unpins and detaches a pinned link; false if there was none. */
export function detachPinnedLink(pin: string): boolean {
  if (!existsSync(pin)) return false;
  const fd = objGet(pin);
  try {
    try {
      linkDetach(fd);
    } catch (e) {
      // ENOLINK: already defunct (device gone). The pin still has to go.
      if (!isBpfError(e, 'ENOLINK', 'EINVAL', 'EOPNOTSUPP')) throw e;
    }
    unlinkIfExists(pin);
  } finally {
    closeFd(fd);
  }
  return true;
}

function tc(args: string[]): string {
  try {
    return execFileSync('tc', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const stderr = String((e as { stderr?: string }).stderr ?? '').trim().replace(/\s+/g, ' ');
    throw new Error(`tc ${args.join(' ')}: ${stderr || (e as Error).message}`);
  }
}

interface TcFilter {
  pref?: number;
  kind?: string;
  options?: { bpf_name?: string; handle?: string };
}

function tcFilters(ifname: string, dir: TcDirection): TcFilter[] {
  try {
    return JSON.parse(tc(['-j', 'filter', 'show', 'dev', ifname, dir]) || '[]') as TcFilter[];
  } catch {
    return []; // no clsact qdisc: no filters
  }
}

function pinnedTcProg(pinPath: string, ifname: string, dir: TcDirection, slot: TcSlot): string {
  return join(progDir(pinPath, ifname), `${slot.prog}_${dir}`);
}

/** Removes nrd's cls_bpf filter (if its pinned program marks it as ours) and the pin. */
export function detachTcLegacy(pinPath: string, ifname: string, dir: TcDirection, slot: TcSlot = TC_SLOTS.counters): boolean {
  const pin = pinnedTcProg(pinPath, ifname, dir, slot);
  if (!existsSync(pin)) return false;
  if (ifNameToIndex(ifname) !== 0 && tcFilters(ifname, dir).some((f) => f.pref === slot.pref)) {
    tc(['filter', 'del', 'dev', ifname, dir, 'pref', String(slot.pref)]);
  }
  unlinkIfExists(pin);
  rmdirIfEmpty(progDir(pinPath, ifname));
  return true;
}

function attachTcLegacy(progFd: number, pinPath: string, ifname: string, ifindex: number, dir: TcDirection, slot: TcSlot): Attachment {
  const owned = pinnedTcProg(pinPath, ifname, dir, slot);
  const foreign = tcFilters(ifname, dir).find((f) => f.pref === slot.pref);
  if (foreign && !existsSync(owned)) {
    throw new Error(`${ifname} ${dir}: a tc filter at pref ${slot.pref} exists and is not nrd's`);
  }
  ensurePinSubdir(progDir(pinPath, ifname));
  // Re-pin the new program under the same name; cls_bpf holds its own reference to the old one.
  unlinkIfExists(owned);
  objPin(progFd, owned);
  // clsact may exist already (ours from an earlier run, or shared with other tc users): add it
  // only when missing, never replace it (that would drop every other filter on the device).
  const qdiscs = JSON.parse(tc(['-j', 'qdisc', 'show', 'dev', ifname]) || '[]') as Array<{ kind?: string }>;
  if (!qdiscs.some((q) => q.kind === 'clsact')) tc(['qdisc', 'add', 'dev', ifname, 'clsact']);
  // `replace` swaps the program of an existing filter atomically.
  tc(['filter', 'replace', 'dev', ifname, dir, 'pref', String(slot.pref), 'handle', String(NRD_TC_HANDLE),
    'bpf', 'direct-action', 'object-pinned', owned]);
  const p = progInfo(progFd);
  return {
    ifname, ifindex, hook: `tc-${dir}`, mechanism: 'tc', pin: owned, progId: p.id, progName: p.name,
    updated: foreign !== undefined,
  };
}

/**
 * Attaches progFd on ifname's tc ingress or egress hook. 'auto' prefers tcx and falls back to
 * clsact + cls_bpf when the kernel refuses a tcx link (EINVAL/EOPNOTSUPP: kernel < 6.6).
 * The other mechanism's nrd attachment on the same hook is removed, so a packet is never
 * counted twice.
 */
export function attachTc(progFd: number, pinPath: string, ifname: string, dir: TcDirection, mode: TcMode = 'auto',
  slot: TcSlot = TC_SLOTS.counters): Attachment {
  const ifindex = requireIfindex(ifname);
  const pin = join(linkDir(pinPath, ifname), `${slot.link}_${dir}`);
  const p = progInfo(progFd);
  if (mode !== 'tc') {
    const id = updatePinnedLink(pin, ifindex, BPF_LINK_TYPE_TCX, progFd);
    if (id !== undefined) {
      detachTcLegacy(pinPath, ifname, dir, slot);
      return { ifname, ifindex, hook: `tc-${dir}`, mechanism: 'tcx', pin, linkId: id, progId: p.id, progName: p.name, updated: true };
    }
    let fd: number | undefined;
    try {
      fd = linkCreate(progFd, ifindex, dir === 'ingress' ? BPF_TCX_INGRESS : BPF_TCX_EGRESS);
    } catch (e) {
      if (mode === 'tcx' || !isBpfError(e, 'EINVAL', 'EOPNOTSUPP')) throw e;
    }
    if (fd !== undefined) {
      try {
        ensurePinSubdir(linkDir(pinPath, ifname));
        objPin(fd, pin);
        const info = linkInfo(fd);
        detachTcLegacy(pinPath, ifname, dir, slot);
        return { ifname, ifindex, hook: `tc-${dir}`, mechanism: 'tcx', pin, linkId: info.id, progId: p.id, progName: p.name, updated: false };
      } finally {
        closeFd(fd);
      }
    }
  } else {
    detachPinnedLink(pin);
  }
  return attachTcLegacy(progFd, pinPath, ifname, ifindex, dir, slot);
}

/** Removes nrd's program from a tc hook, whichever mechanism holds it. */
export function detachTc(pinPath: string, ifname: string, dir: TcDirection, slot: TcSlot = TC_SLOTS.counters): boolean {
  checkIfname(ifname);
  const a = detachPinnedLink(join(linkDir(pinPath, ifname), `${slot.link}_${dir}`));
  const b = detachTcLegacy(pinPath, ifname, dir, slot);
  rmdirIfEmpty(linkDir(pinPath, ifname));
  return a || b;
}

const XDP_PINS = { 'xdp-driver': 'xdp_drv', 'xdp-generic': 'xdp_skb' } as const;

/**
 * Attaches an XDP program through a link: driver (native) mode first, generic (skb) mode if the
 * driver has no XDP support. A pinned link in an acceptable mode is updated in place.
 */
export function attachXdp(progFd: number, pinPath: string, ifname: string, mode: XdpMode = 'auto'): Attachment {
  const ifindex = requireIfindex(ifname);
  const p = progInfo(progFd);
  const wanted: Array<'xdp-driver' | 'xdp-generic'> =
    mode === 'driver' ? ['xdp-driver'] : mode === 'generic' ? ['xdp-generic'] : ['xdp-driver', 'xdp-generic'];
  for (const mech of ['xdp-driver', 'xdp-generic'] as const) {
    const pin = join(linkDir(pinPath, ifname), XDP_PINS[mech]);
    if (!wanted.includes(mech)) {
      detachPinnedLink(pin);
      continue;
    }
    const id = updatePinnedLink(pin, ifindex, BPF_LINK_TYPE_XDP, progFd);
    if (id !== undefined) {
      return { ifname, ifindex, hook: 'xdp', mechanism: mech, pin, linkId: id, progId: p.id, progName: p.name, updated: true };
    }
  }
  let lastErr: unknown;
  for (const mech of wanted) {
    const pin = join(linkDir(pinPath, ifname), XDP_PINS[mech]);
    let fd: number;
    try {
      fd = linkCreate(progFd, ifindex, BPF_XDP, mech === 'xdp-driver' ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE);
    } catch (e) {
      lastErr = e;
      if (isBpfError(e, 'EOPNOTSUPP', 'EINVAL') && mech === 'xdp-driver' && wanted.length > 1) continue;
      throw e;
    }
    try {
      ensurePinSubdir(linkDir(pinPath, ifname));
      objPin(fd, pin);
      const info = linkInfo(fd);
      return { ifname, ifindex, hook: 'xdp', mechanism: mech, pin, linkId: info.id, progId: p.id, progName: p.name, updated: false };
    } finally {
      closeFd(fd);
    }
  }
  throw lastErr;
}

export function detachXdp(pinPath: string, ifname: string): boolean {
  checkIfname(ifname);
  let any = false;
  for (const name of Object.values(XDP_PINS)) any = detachPinnedLink(join(linkDir(pinPath, ifname), name)) || any;
  rmdirIfEmpty(linkDir(pinPath, ifname));
  return any;
}

/** Interfaces that have any nrd pin (links or cls_bpf programs) of the given tc slot, and XDP. */
export function pinnedInterfaces(pinPath: string, slot: TcSlot = TC_SLOTS.counters): { tc: Set<string>; xdp: Set<string> } {
  const tcSet = new Set<string>();
  const xdpSet = new Set<string>();
  const list = (d: string): string[] => (existsSync(d) ? readdirSync(d) : []);
  // Exact names, not prefixes: "tc_ingress" must not match the endpoint slot's "ep_tc_ingress".
  const links = new Set([`${slot.link}_ingress`, `${slot.link}_egress`]);
  const progs = new Set([`${slot.prog}_ingress`, `${slot.prog}_egress`]);
  for (const ifname of list(join(pinPath, 'links')).map(ifnameOfPinSegment)) {
    for (const f of list(linkDir(pinPath, ifname))) {
      if (links.has(f)) tcSet.add(ifname);
      if (f.startsWith('xdp_')) xdpSet.add(ifname);
    }
  }
  for (const ifname of list(join(pinPath, 'progs')).map(ifnameOfPinSegment)) {
    if (list(progDir(pinPath, ifname)).some((f) => progs.has(f))) tcSet.add(ifname);
  }
  return { tc: tcSet, xdp: xdpSet };
}
