// When the datapath subsystem attaches, re-attaches or detaches the socket hooks (sock.ts) for
// services.cgroupPath. Kept apart from subsystem.ts so the decision can be tested with a fake
// worker. The hooks read the service maps nrd_endpoint pins, so the subsystem calls sync() only
// once the endpoint datapath has loaded. A failure is recorded for the status view and never
// thrown: a node whose cgroups cannot take the hooks still routes and still balances pod traffic.
import type { Logger } from '../lib/log.js';
import type { SockLbOptions, SockReply, SockRequest } from './sock.js';

/** The datapath status view's socket-hook entry. */
export interface SockLbView {
  /** services.cgroupPath ("": disabled). */
  cgroup: string;
  attached: boolean;
  /** Why the hooks are not attached (not a cgroup v2 directory, kernel refusal). */
  error?: string;
  /** The bpf_link ids, one per hook (stable across restarts: the pinned links are adopted). */
  linkIds?: number[];
}

/** The part of the datapath host this needs: the worker's sock op. */
export interface SockPort {
  sock(r: SockRequest): Promise<SockReply>;
}

export class SockLbControl {
  /** What the last successful sync established: the options' key, 'off' once detached, else unknown. */
  private done: string | undefined;
  private current: SockLbView = { cgroup: '', attached: false };

  /** Set by the subsystem at start (its logger is not known before). */
  log: Logger | undefined;

  get view(): SockLbView {
    return this.current;
  }

  /** Forgets what was done, so the next sync applies again (idempotent: pinned links are adopted). */
  invalidate(): void {
    this.done = undefined;
  }

  /**
   * Attaches to o.cgroupPath with o's knobs (cgroupPath "": detaches whatever an earlier run
   * pinned under pinPath). Skips the worker when nothing changed since the last success; a failed
   * apply is tried again on the next sync.
   */
  async sync(port: SockPort, o: SockLbOptions): Promise<void> {
    if (o.cgroupPath === '') {
      if (this.done === 'off') return;
      try {
        // Not known at start whether a previous run left links pinned: detaching is a no-op then.
        const r = await port.sock({ detach: o.pinPath });
        if ('detached' in r && r.detached) this.log?.info({}, 'socket hooks detached (services.cgroupPath is "")');
        this.done = 'off';
        this.current = { cgroup: '', attached: false };
      } catch (err) {
        this.done = undefined;
        this.current = { cgroup: '', attached: false, error: `detach: ${(err as Error).message}` };
        this.log?.warn({ err }, 'socket hooks: detach failed');
      }
      return;
    }
    const key = JSON.stringify([o.pinPath, o.objectDir, o.cgroupPath, o.lb.maglevM, o.lb.flags]);
    if (this.done === key) return;
    try {
      const r = await port.sock({ apply: o });
      if (!('status' in r)) throw new Error('the datapath worker answered an apply with a detach');
      this.done = key;
      this.current = { cgroup: o.cgroupPath, attached: true, linkIds: r.status.links.map((l) => l.linkId) };
      this.log?.info({ cgroup: o.cgroupPath, adopted: r.status.adopted, updated: r.status.links.filter((l) => l.updated).length }, 'socket hooks attached');
    } catch (err) {
      this.done = undefined;
      this.current = { cgroup: o.cgroupPath, attached: false, error: (err as Error).message };
      this.log?.warn({ err, cgroup: o.cgroupPath }, 'socket hooks not attached; node processes reach services only through routing');
    }
  }
}
