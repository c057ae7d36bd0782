// `nrd cleanup`: removes every kernel object nrd owns, for an operator taking nrd off a node (the
// package's removal runs it). It selects by the ownership marks alone (kernel/owners.ts and
// docs/design.md "ownership is marked, never guessed"): routes of nrd's rtm_protocols, VXLAN links
// "nrd…" and veth links "nrdv…", nrd's cls_bpf filters (tc fallback), the pins under
// datapath.pinPath (unpinning a tcx/XDP link detaches it) and `table inet nrd`. Anything else on
// the node is left alone, even when it looks like nrd's (a veth named "nrd…", a route of proto 12).
// Kernel interfaces: iproute2's ip(8) and tc(8), nft(8), bpffs. Those tools, not the netlink port:
// this runs once, from a shell or a maintainer script, after the daemon has stopped, and their
// filtering and error messages are what an operator would check the result with.
import { execFileSync } from 'node:child_process';
import { readdirSync, rmSync, rmdirSync, statfsSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { ENDPOINT_MARK, ROUTING_MARK, ownsLink, type OwnerMark } from './kernel/owners.js';
import { NRD_TC_PREF } from './datapath/attach.js';
import { NFT_TABLE, nftDeleteScript } from './datapath/masquerade.js';

/** statfs(2) f_type of a BPF filesystem (linux/magic.h): pins are only ever removed from one. */
export const BPF_FS_MAGIC = 0xcafe4a11;

/** What cleanup needs from the site file (and the defaults of its schema when there is none). */
export interface CleanupTarget {
  /** routing.routeProtocol: the routing owner's rtm_protocol (220 unless moved). */
  routeProtocol: number;
  pinPath: string;
  /** api.socket: a daemon answering here would re-create everything at once. */
  socket: string;
}

export const DEFAULT_TARGET: CleanupTarget = { routeProtocol: ROUTING_MARK.protocol, pinPath: '/sys/fs/bpf/nrd', socket: '/run/nrd/nrd.sock' };

export interface ObservedLink {
  name: string;
  kind?: string | undefined;
}

export interface ObservedFilter {
  ifname: string;
  dir: 'ingress' | 'egress';
  pref: number;
  kind?: string | undefined;
}

/** The owner marks with the routing protocol the site file chose. */
export function marksFor(t: CleanupTarget): OwnerMark[] {
  return [{ ...ROUTING_MARK, protocol: t.routeProtocol }, ENDPOINT_MARK];
}

/** The links nrd owns: the name prefix AND the kind of one of its owners. */
export function ownedLinks(links: readonly ObservedLink[], marks: readonly OwnerMark[]): ObservedLink[] {
  return links.filter((l) => marks.some((m) => ownsLink(m, l)));
}

/**
 * nrd's cls_bpf filters: the three prefs attach.ts uses (NRD_TC_PREF-2 … NRD_TC_PREF), kind bpf.
 * attach.ts refuses to attach at a pref where a foreign filter sits, so such a filter is nrd's.
 */
export function ownedFilters(filters: readonly ObservedFilter[]): ObservedFilter[] {
  return filters.filter((f) => f.kind === 'bpf' && f.pref >= NRD_TC_PREF - 2 && f.pref <= NRD_TC_PREF);
}

export interface CleanupReport {
  removed: string[];
  failed: string[];
}

export interface CleanupOptions {
  ip?: string;
  tc?: string;
  nft?: string;
}

function run(bin: string, args: string[], input?: string): string {
  return execFileSync(bin, args, { encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], ...(input !== undefined ? { input } : {}) });
}

function why(err: unknown): string {
  const stderr = (err as { stderr?: unknown }).stderr;
  const text = typeof stderr === 'string' && stderr.trim() ? stderr : (err as Error).message;
  return text.trim().replace(/\s+/g, ' ');
}

interface IpLink {
  ifname: string;
  linkinfo?: { info_kind?: string };
}

interface IpRoute {
  dst: string;
  /** Absent for the main table. */
  table?: string;
}

/** Whether something accepts connections on the control socket (a running nrd). */
export function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection(path);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Removes nrd's objects in this network namespace and below target.pinPath; never throws. */
export function cleanup(target: CleanupTarget, o: CleanupOptions = {}): CleanupReport {
  const ip = o.ip ?? 'ip';
  const tc = o.tc ?? 'tc';
  const nft = o.nft ?? 'nft';
  const report: CleanupReport = { removed: [], failed: [] };
  const step = (what: string, f: () => void): void => {
    try {
      f();
      report.removed.push(what);
    } catch (err) {
      report.failed.push(`${what}: ${why(err)}`);
    }
  };
  const marks = marksFor(target);

  // Links first: deleting an endpoint veth takes its host route and its tc programs with it.
  let links: IpLink[] = [];
  try {
    links = JSON.parse(run(ip, ['-j', '-d', 'link', 'show']) || '[]') as IpLink[];
  } catch (err) {
    report.failed.push(`list links: ${why(err)}`);
  }
  const owned = ownedLinks(links.map((l) => ({ name: l.ifname, kind: l.linkinfo?.info_kind })), marks);
  for (const l of owned) step(`link ${l.name} (${l.kind})`, () => run(ip, ['link', 'del', 'dev', l.name]));

  // Routes by protocol, in every table and both families. -N: numeric protocols, so the
  // selection does not depend on rt_protos.d naming them.
  for (const proto of new Set(marks.map((m) => m.protocol))) {
    for (const fam of ['-4', '-6']) {
      let routes: IpRoute[] = [];
      try {
        routes = JSON.parse(run(ip, ['-j', '-N', fam, 'route', 'show', 'table', 'all', 'proto', String(proto)]) || '[]') as IpRoute[];
      } catch (err) {
        report.failed.push(`list ${fam} routes of proto ${proto}: ${why(err)}`);
        continue;
      }
      for (const r of routes) {
        const table = r.table ?? 'main';
        // No type: a delete without one matches any (blackhole, unreachable, unicast); with -N
        // ip prints the type as a number that `ip route del` would not parse.
        const args = [fam, 'route', 'del', r.dst, 'table', table, 'proto', String(proto)];
        step(`route ${r.dst} table ${table} proto ${proto}`, () => run(ip, args));
      }
    }
  }

  // cls_bpf filters of the tc fallback on links that stay (the uplink).
  const gone = new Set(owned.map((l) => l.name));
  for (const l of links) {
    if (gone.has(l.ifname)) continue;
    for (const dir of ['ingress', 'egress'] as const) {
      let filters: Array<{ pref?: number; kind?: string }> = [];
      try {
        filters = JSON.parse(run(tc, ['-j', 'filter', 'show', 'dev', l.ifname, dir]) || '[]') as typeof filters;
      } catch {
        continue; // no clsact qdisc on this link: no filters of anyone's
      }
      const observed = filters.filter((f) => f.pref !== undefined).map((f) => ({ ifname: l.ifname, dir, pref: f.pref!, kind: f.kind }));
      for (const pref of new Set(ownedFilters(observed).map((f) => f.pref))) {
        step(`tc filter ${l.ifname} ${dir} pref ${pref}`, () => run(tc, ['filter', 'del', 'dev', l.ifname, dir, 'pref', String(pref)]));
      }
    }
  }

  // Pins: only on a bpffs, so that a mistyped pinPath can never remove ordinary files.
  let fsType: number | undefined;
  try {
    fsType = Number(statfsSync(target.pinPath).type);
  } catch {
    fsType = undefined; // no pin directory: nothing pinned
  }
  if (fsType !== undefined && fsType !== BPF_FS_MAGIC) {
    report.failed.push(`pins: ${target.pinPath} is not on a BPF filesystem; left alone`);
  } else if (fsType === BPF_FS_MAGIC) {
    for (const name of readdirSync(target.pinPath)) {
      step(`pin ${join(target.pinPath, name)}`, () => rmSync(join(target.pinPath, name), { recursive: true, force: true }));
    }
    try {
      rmdirSync(target.pinPath);
    } catch {
      // the mount point of sys-fs-bpf-nrd.mount (EBUSY): it stays, empty
    }
  }

  // nftables: the masquerade table, as a whole; absent nft or table is nothing to do.
  let hasTable = false;
  try {
    run(nft, ['list', 'table', 'inet', NFT_TABLE]);
    hasTable = true;
  } catch {
    hasTable = false;
  }
  if (hasTable) step(`nft table inet ${NFT_TABLE}`, () => run(nft, ['-f', '-'], nftDeleteScript()));
  return report;
}
