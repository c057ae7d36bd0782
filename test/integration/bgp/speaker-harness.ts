// Harness for the speaker integration tests: runs speaker-driver.js in a test namespace and talks
// to it over its unix control socket (the real API routes plus test-only ones).
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { apiRequest } from '../../../daemon/cli/client.js';
import type { PeersResponse, PeerView, RoutesResponse } from '../../../daemon/bgp/speaker.js';
import type { Host } from '../../lib/netns.js';
import type { ManagedProcess } from '../../lib/proc.js';
import { waitFor } from '../../lib/wait.js';
import type { DriverChanges, DriverSpec } from './speaker-driver.js';

const DRIVER = fileURLToPath(new URL('./speaker-driver.js', import.meta.url));

let seq = 0;

export class SpeakerProc {
  private constructor(
    readonly host: Host,
    readonly socket: string,
    readonly proc: ManagedProcess,
  ) {}

  static async start(host: Host, spec: Omit<DriverSpec, 'socket'>, socketDir: string): Promise<SpeakerProc> {
    const socket = join(socketDir, `nrd-${seq++}.sock`);
    const env: NodeJS.ProcessEnv = { ...process.env, NRDT_SPEAKER: JSON.stringify({ ...spec, socket }) };
    // NRDT_SPEAKER_NODE_ARGS: extra node flags for the speaker process (e.g. "--cpu-prof
    // --cpu-prof-dir=/tmp/prof" when profiling the ingest benchmark).
    const nodeArgs = (process.env.NRDT_SPEAKER_NODE_ARGS ?? '').split(/\s+/).filter((a) => a.length > 0);
    const proc = host.spawn([process.execPath, ...nodeArgs, DRIVER], { env, name: `${host.name}:nrd-speaker` });
    const sp = new SpeakerProc(host, socket, proc);
    await waitFor(
      async () => {
        if (!proc.running()) throw new Error(`speaker exited: ${proc.describe()}`);
        return await sp.peers();
      },
      { timeoutMs: 15_000, intervalMs: 100, what: 'speaker control socket' },
    ).catch((e: Error) => {
      throw new Error(`${e.message}\n${proc.describe()}`);
    });
    return sp;
  }

  get<T>(path: string): Promise<T> {
    return apiRequest<T>(this.socket, path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return apiRequest<T>(this.socket, path, { method: 'POST', body });
  }

  peers(): Promise<PeersResponse> {
    return this.get<PeersResponse>('/v1/peers');
  }

  async peer(address: string): Promise<PeerView> {
    const p = (await this.peers()).peers.find((x) => x.address === address);
    if (!p) throw new Error(`no peer ${address}`);
    return p;
  }

  routes(query = ''): Promise<RoutesResponse> {
    return this.get<RoutesResponse>(`/v1/bgp/routes${query ? `?${query}` : ''}`);
  }

  changes(): Promise<DriverChanges> {
    return this.get<DriverChanges>('/test/changes');
  }

  async hasRoute(family: 'ipv4' | 'ipv6', prefix: string, peer?: string): Promise<boolean> {
    const q = new URLSearchParams({ family, prefix });
    if (peer) q.set('peer', peer);
    const r = await this.routes(q.toString());
    return r.routes.length > 0;
  }

  reload(site: unknown): Promise<{ changes: string[] }> {
    return this.post('/test/reload', { site });
  }

  setLocalPrefixes(family: 'ipv4' | 'ipv6', prefixes: string[]): Promise<unknown> {
    return this.post('/test/local-prefixes', { family, prefixes });
  }

  async waitEstablished(address: string, timeoutMs = 20_000): Promise<PeerView> {
    return waitFor(
      async () => {
        const p = await this.peer(address);
        return p.state === 'Established' ? p : false;
      },
      { timeoutMs, intervalMs: 100, what: `nrd peer ${address} Established` },
    ).catch(async (e: Error) => {
      const p = await this.peer(address).catch(() => null);
      throw new Error(`${e.message}\npeer: ${JSON.stringify(p)}\n${this.proc.describe()}`);
    });
  }

  kill9(): Promise<unknown> {
    this.proc.signal('SIGKILL');
    return this.proc.exited;
  }

  stop(): Promise<unknown> {
    return this.proc.stop(2000);
  }
}

/** The raw site config of a test node: short timers, pods in 10.244.0.0/16 and fd00:244::/48. */
export function siteConfig(o: {
  address: string;
  asn: number;
  podCIDRs: string[];
  stateDir: string;
  peers?: unknown[];
  bgp?: Record<string, unknown>;
}): Record<string, unknown> {
  return {
    node: { address: o.address, podCIDRs: o.podCIDRs, stateDir: o.stateDir },
    cluster: { podCIDRs: ['10.244.0.0/16', 'fd00:244::/48'] },
    bgp: {
      asn: o.asn,
      holdTime: 3,
      connectRetryTime: 1,
      listen: { address: '::' },
      gracefulRestart: { enabled: true, restartTime: 30, stalePathTime: 30 },
      peers: o.peers ?? [],
      ...o.bgp,
    },
    log: { level: 'warn' },
  };
}
