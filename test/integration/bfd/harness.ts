// Harness for the BFD integration tests and the BFD failover bench: runs driver.js in a test
// namespace and reads its control socket; link cuts with nftables inside a namespace.
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { apiRequest } from '../../../daemon/cli/client.js';
import type { PeersResponse } from '../../../daemon/bgp/speaker.js';
import type { BfdSessionView } from '../../../daemon/bfd/types.js';
import type { Host } from '../../lib/netns.js';
import type { ManagedProcess } from '../../lib/proc.js';
import { waitFor } from '../../lib/wait.js';
import type { BfdDriverEvents, BfdDriverSpec } from './driver.js';

const DRIVER = fileURLToPath(new URL('./driver.js', import.meta.url));
let seq = 0;

export class BfdNrd {
  private constructor(
    readonly host: Host,
    readonly socket: string,
    readonly proc: ManagedProcess,
  ) {}

  static async start(host: Host, spec: Omit<BfdDriverSpec, 'socket'>, socketDir: string): Promise<BfdNrd> {
    const socket = join(socketDir, `nrd-bfd-${seq++}.sock`);
    const env: NodeJS.ProcessEnv = { ...process.env, NRDT_BFD: JSON.stringify({ ...spec, socket }) };
    const proc = host.spawn([process.execPath, DRIVER], { env, name: `${host.name}:nrd-bfd` });
    const n = new BfdNrd(host, socket, proc);
    await waitFor(
      async () => {
        if (!proc.running()) throw new Error(`driver exited: ${proc.describe()}`);
        return await n.get<PeersResponse>('/v1/peers');
      },
      { timeoutMs: 15_000, intervalMs: 100, what: 'BFD driver control socket' },
    );
    return n;
  }

  get<T>(path: string): Promise<T> {
    return apiRequest<T>(this.socket, path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return apiRequest<T>(this.socket, path, { method: 'POST', body });
  }

  async session(peer: string): Promise<BfdSessionView | undefined> {
    return (await this.get<{ sessions: BfdSessionView[] }>('/v1/bfd')).sessions.find((s) => s.peer === peer);
  }

  async bgpState(peer: string): Promise<string | undefined> {
    return (await this.get<PeersResponse>('/v1/peers')).peers.find((p) => p.address === peer)?.state;
  }

  events(): Promise<BfdDriverEvents> {
    return this.get<BfdDriverEvents>('/test/events');
  }

  async nowMs(): Promise<number> {
    return (await this.get<{ nowMs: number }>('/test/now')).nowMs;
  }

  async waitBfd(peer: string, state: string, timeoutMs = 20_000): Promise<BfdSessionView> {
    return waitFor(
      async () => {
        const s = await this.session(peer);
        return s?.state === state ? s : undefined;
      },
      { timeoutMs, intervalMs: 100, what: `BFD ${peer} ${state}` },
    );
  }

  async waitBgp(peer: string, state: string, timeoutMs = 30_000): Promise<void> {
    await waitFor(async () => (await this.bgpState(peer)) === state, { timeoutMs, intervalMs: 100, what: `BGP ${peer} ${state}` });
  }
}

/**
 * Cuts the link silently inside `host`: nftables drops BFD (UDP 3784/4784) and BGP (TCP 179) both
 * ways, so no TCP reset and no NOTIFICATION tells anybody. Only in the test namespace.
 */
export async function cutLink(host: Host): Promise<void> {
  const rules = [
    'add table inet nrdtcut',
    'add chain inet nrdtcut in { type filter hook input priority -10 ; }',
    'add chain inet nrdtcut out { type filter hook output priority -10 ; }',
    'add rule inet nrdtcut in udp dport { 3784, 4784 } drop',
    'add rule inet nrdtcut in tcp dport 179 drop',
    'add rule inet nrdtcut in tcp sport 179 drop',
    'add rule inet nrdtcut out udp dport { 3784, 4784 } drop',
    'add rule inet nrdtcut out tcp dport 179 drop',
    'add rule inet nrdtcut out tcp sport 179 drop',
  ];
  await host.exec(['nft', rules.join('; ')]);
}

export async function healLink(host: Host): Promise<void> {
  await host.exec(['nft', 'delete table inet nrdtcut']);
}

/** Site config of an nrd node with BGP peers (and their bfd blocks). */
export function bfdSite(o: { address: string; asn: number; podCIDRs: string[]; stateDir: string; peers: unknown[]; holdTime?: number }): Record<string, unknown> {
  return {
    node: { address: o.address, podCIDRs: o.podCIDRs, stateDir: o.stateDir },
    cluster: { podCIDRs: ['10.244.0.0/16'] },
    bgp: {
      asn: o.asn,
      holdTime: o.holdTime ?? 9,
      connectRetryTime: 1,
      listen: { address: '0.0.0.0' },
      gracefulRestart: { enabled: false, restartTime: 30, stalePathTime: 30 },
      peers: o.peers,
    },
    log: { level: 'warn' },
  };
}
