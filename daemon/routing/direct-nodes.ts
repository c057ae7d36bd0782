// The remote nodes a direct (host-gw) path can reach: those whose underlay address lies in a
// subnet connected to the underlay interface (path.ts isDirect). routing.bfd runs a single-hop BFD
// session to each of them (main.ts hands the list to the BFD subsystem). Re-read when the nodes
// change and, debounced, when an address is added or removed on any link. Liveness plays no part
// here: a node whose direct path BFD reports down keeps its session, which is how it comes back.
import type { Logger } from '../lib/log.js';
import type { KernelPort, Subscription } from '../kernel/types.js';
import { canonicalPrefix } from '../kernel/addr.js';
import { isDirect } from './path.js';
import type { RemoteNode } from './types.js';

const ADDRESS_DEBOUNCE_MS = 200;

export interface DirectNode {
  name: string;
  address: string;
}

/** isDirect for a record not validated yet (the Router rejects bad addresses; so does this). */
function reachesDirectly(underlay: unknown, connected: readonly string[]): boolean {
  try {
    return typeof underlay === 'string' && isDirect(underlay, connected);
  } catch {
    return false;
  }
}

const key = (l: readonly DirectNode[]): string => l.map((n) => `${n.name}=${n.address}`).join(',');

export class DirectNodes {
  private nodes: readonly RemoteNode[] = [];
  private connected: string[] | null = null;
  private last = '';
  private current: DirectNode[] = [];
  private watch: Subscription | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;

  constructor(
    private readonly port: KernelPort,
    /** The underlay interface in use (null before routing has started). */
    private readonly underlayInterface: () => string | null,
    private readonly onChange: (nodes: readonly DirectNode[]) => void,
    private readonly log: Logger,
  ) {}

  /** Starts following address events and reads the connected subnets once. */
  async start(): Promise<void> {
    this.watch ??= this.port.subscribe((e) => {
      if (e.kind !== 'address' || this.timer !== undefined || this.closed) return;
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.refresh();
      }, ADDRESS_DEBOUNCE_MS);
      this.timer.unref?.();
    });
    await this.refresh();
  }

  setNodes(nodes: readonly RemoteNode[]): void {
    this.nodes = nodes;
    this.emit();
  }

  /** The direct nodes now. */
  list(): readonly DirectNode[] {
    return this.current;
  }

  /** Re-reads the subnets connected to the underlay interface. */
  async refresh(): Promise<void> {
    const name = this.underlayInterface();
    if (!name || this.closed) return;
    try {
      const link = await this.port.getLink(name);
      const addrs = link ? (await this.port.listAddresses()).filter((a) => a.ifindex === link.index) : [];
      this.connected = addrs.filter((a) => !a.address.startsWith('fe80:')).map((a) => canonicalPrefix(`${a.address}/${a.prefixLen}`));
    } catch (err) {
      this.log.warn({ err }, 'cannot read the underlay subnets for the direct-path BFD sessions; keeping the last view');
      return;
    }
    this.emit();
  }

  private emit(): void {
    if (this.connected === null || this.closed) return;
    const connected = this.connected;
    const next = this.nodes
      .filter((n) => typeof n.name === 'string' && n.name !== '' && reachesDirectly(n.underlay, connected))
      .map((n) => ({ name: n.name, address: n.underlay }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const k = key(next);
    if (k === this.last) return;
    this.last = k;
    this.current = next;
    this.onChange(next);
  }

  close(): void {
    this.closed = true;
    this.watch?.close();
    this.watch = undefined;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
