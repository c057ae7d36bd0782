// The kernel side of one endpoint, over rtnetlink: check the target namespace, create the veth pair
// (host side "nrdv…" with the gateway MAC in nrd's namespace, peer created directly inside the
// workload's namespace under its final name), and inside the workload: lo and the interface up, the
// /32 and /128 addresses (IPv6 without DAD), default routes via the link-local gateway onlink.
// Host routes and permanent neighbours are NOT made here: the endpoint owner
// (kernel/endpoint-owner.ts) reconciles them from the desired set.
// Kernel interfaces: rtnetlink (kernel/netns.ts), setns(2), stat(2) of namespace files.
import { closeSync, existsSync, openSync, statSync } from 'node:fs';
import { ENDPOINT_GATEWAY_MAC, ENDPOINT_GATEWAY_V4, ENDPOINT_GATEWAY_V6 } from '../lib/endpoint-types.js';
import { NrdError } from '../lib/errors.js';
import { LibcError } from '../lib/libc.js';
import { familyOf } from '../kernel/addr.js';
import { LinkOps, ownNetnsId, writeSysctlIn } from '../kernel/netns.js';
import { ENDPOINT_MARK, ownsLink } from '../kernel/owners.js';
import { RT_TABLE_MAIN, isKernelError, type LinkInfo, type Route } from '../kernel/types.js';

/** What plumbing one endpoint needs. */
export interface PlumbSpec {
  hostIf: string;
  netns: string;
  ifname: string;
  /** MAC of the workload side. */
  mac: string;
  ips: readonly string[];
  /** MTU of both ends (endpointMtu); undefined: the kernel's default. */
  mtu?: number;
}

/** The kernel port of the endpoints subsystem (a fake stands in for it in unit tests). */
export interface EndpointPlumber {
  /** Refuses (NrdError invalid/conflict) a namespace that is missing, not a network namespace,
   * nrd's own, or already holds `ifname`. Changes nothing. */
  check(netns: string, ifname: string): Promise<void>;
  /** Creates the veth pair and configures the workload side; returns the host side's ifindex.
   * On failure nothing it created is left behind. */
  plumb(spec: PlumbSpec): Promise<number>;
  /** Deletes the host side (the kernel deletes the peer with it); false when it was not there. */
  remove(hostIf: string): Promise<boolean>;
  /** The endpoint-owned links (veths named "nrdv…") by name. */
  hostLinks(): Promise<Map<string, LinkInfo>>;
  netnsExists(path: string): boolean;
  /** null when the kernel can make netkit devices, else why not (the errno name). */
  probeNetkit(): Promise<string | null>;
  /** MTU of the uplink: the link named `ifname`, or ("") the one that holds `address`. */
  uplinkMtu(ifname: string, address: string): Promise<number | undefined>;
  close(): void;
}

const invalid = (msg: string): NrdError => new NrdError('invalid', 'invalid', msg);

/** The default routes of a workload: via the link-local gateway that BPF answers for. */
export function workloadRoutes(ips: readonly string[], ifindex: number, protocol = ENDPOINT_MARK.protocol): Route[] {
  const fams = new Set(ips.map(familyOf));
  const out: Route[] = [];
  if (fams.has(4)) out.push({ family: 4, dst: '0.0.0.0/0', table: RT_TABLE_MAIN, protocol, type: 'unicast', nextHops: [{ gateway: ENDPOINT_GATEWAY_V4, ifindex, onlink: true }] });
  if (fams.has(6)) out.push({ family: 6, dst: '::/0', table: RT_TABLE_MAIN, protocol, type: 'unicast', nextHops: [{ gateway: ENDPOINT_GATEWAY_V6, ifindex }] });
  return out;
}

export class NetlinkPlumber implements EndpointPlumber {
  /** Requests in nrd's own namespace (opened at construction, i.e. in nrd's namespace). */
  private readonly host = LinkOps.here();

  netnsExists(path: string): boolean {
    return existsSync(path);
  }

  /** Opens a request socket inside `netns`, mapping the failures to what the operator did wrong. */
  private enter(netns: string): LinkOps {
    let st;
    try {
      st = statSync(netns);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw invalid(code === 'ENOENT' ? `netns ${netns} does not exist` : `netns ${netns}: ${code ?? String(e)}`);
    }
    const own = ownNetnsId();
    if (st.dev === own.dev && st.ino === own.ino) throw invalid(`netns ${netns} is nrd's own network namespace, not a workload's`);
    try {
      return LinkOps.in(netns);
    } catch (e) {
      if (e instanceof LibcError && e.code === 'EINVAL') throw invalid(`${netns} is not a network namespace`);
      if (e instanceof LibcError) throw invalid(`netns ${netns}: setns: ${e.code}`);
      const code = (e as NodeJS.ErrnoException).code;
      throw invalid(`netns ${netns}: ${code ?? String(e)}`);
    }
  }

  async check(netns: string, ifname: string): Promise<void> {
    const ops = this.enter(netns);
    try {
      if (await ops.getLink(ifname)) throw new NrdError('conflict', 'conflict', `interface ${ifname} exists already in netns ${netns}`);
    } finally {
      ops.close();
    }
  }

  async plumb(s: PlumbSpec): Promise<number> {
    const ops = this.enter(s.netns);
    let created = false;
    try {
      if (await ops.getLink(s.ifname)) throw new NrdError('conflict', 'conflict', `interface ${s.ifname} exists already in netns ${s.netns}`);
      // The namespace fd for IFLA_NET_NS_FD: the same file the socket was opened in. A namespace
      // replaced at that path in between is caught below (the peer is not found through `ops`).
      const fd = openSync(s.netns, 'r');
      try {
        await this.host.createVeth({ name: s.hostIf, mac: ENDPOINT_GATEWAY_MAC, ...(s.mtu !== undefined ? { mtu: s.mtu } : {}), peer: { name: s.ifname, mac: s.mac, netnsFd: fd } });
        created = true;
      } catch (e) {
        if (isKernelError(e, 'EEXIST')) throw new NrdError('conflict', 'conflict', `host interface ${s.hostIf} exists already`);
        throw e;
      } finally {
        closeSync(fd);
      }
      const hostLink = await this.host.getLink(s.hostIf);
      if (!hostLink) throw new Error(`host interface ${s.hostIf} vanished right after creation`);
      const peer = await ops.getLink(s.ifname);
      if (!peer) throw new Error(`interface ${s.ifname} not found in netns ${s.netns} after creation`);
      // No DAD on the workload side, link-local included: usable the moment the call returns.
      if (s.ips.some((ip) => familyOf(ip) === 6)) writeSysctlIn(s.netns, `net/ipv6/conf/${s.ifname}/accept_dad`, '0');
      const lo = await ops.getLink('lo');
      if (lo && !lo.up) await ops.setLinkUp(lo.index);
      for (const ip of s.ips) {
        const fam = familyOf(ip);
        await ops.replaceAddress({ ifindex: peer.index, address: ip, prefixLen: fam === 4 ? 32 : 128, nodad: fam === 6 });
      }
      await ops.setLinkUp(peer.index);
      await this.host.setLinkUp(hostLink.index);
      for (const r of workloadRoutes(s.ips, peer.index)) await ops.replaceRoute(r);
      return hostLink.index;
    } catch (e) {
      if (created) await this.remove(s.hostIf).catch(() => undefined);
      throw e;
    } finally {
      ops.close();
    }
  }

  /** A transient link with the endpoints' own name prefix, deleted at once. */
  probeNetkit(): Promise<string | null> {
    return this.host.probeLinkKind(`${ENDPOINT_MARK.linkPrefix}probe0`, 'netkit');
  }

  async uplinkMtu(ifname: string, address: string): Promise<number | undefined> {
    if (ifname) return (await this.host.getLink(ifname))?.mtu;
    if (!address) return undefined;
    const a = (await this.host.listAddresses()).find((x) => x.address === address);
    return a ? (await this.host.getLink(a.ifindex))?.mtu : undefined;
  }

  async remove(hostIf: string): Promise<boolean> {
    const l = await this.host.getLink(hostIf);
    if (!l || !ownsLink(ENDPOINT_MARK, l)) return false;
    try {
      await this.host.deleteLink(l.index);
      return true;
    } catch (e) {
      if (isKernelError(e, 'ENODEV')) return false;
      throw e;
    }
  }

  async hostLinks(): Promise<Map<string, LinkInfo>> {
    const links = await this.host.listLinks();
    return new Map(links.filter((l) => ownsLink(ENDPOINT_MARK, l)).map((l) => [l.name, l] as const));
  }

  close(): void {
    this.host.close();
  }
}
