// Test-side client of agent.ts: starts the agent inside a topology host's namespace (tracked by the
// topology so teardown stops it) and sends JSON-line requests.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { ManagedProcess } from '../../lib/proc.js';
import type { Host } from '../../lib/netns.js';

const AGENT = fileURLToPath(new URL('./agent.js', import.meta.url));

export class AgentError extends Error {
  constructor(
    readonly code: string | undefined,
    readonly errno: number | undefined,
    readonly call: string | undefined,
    message: string,
  ) {
    super(message);
    this.name = 'AgentError';
  }
}

export class Agent {
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  readonly proc: ManagedProcess;
  private readonly ready: Promise<void>;

  constructor(readonly host: Host, env: NodeJS.ProcessEnv = {}) {
    const argv = host.wrap([process.execPath, AGENT]);
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...env } });
    child.on('error', () => undefined);
    this.proc = host.topo.track(new ManagedProcess(child, argv, { name: `${host.name}:agent` }));
    let readyResolve!: () => void;
    this.ready = new Promise((r) => (readyResolve = r));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      let m: { id: number; ok: boolean; result?: unknown; error?: { code?: string; errno?: number; call?: string; message: string } };
      try {
        m = JSON.parse(line);
      } catch {
        return;
      }
      if (m.id === 0) return readyResolve();
      const w = this.waiting.get(m.id);
      if (!w) return;
      this.waiting.delete(m.id);
      if (m.ok) w.resolve(m.result);
      else w.reject(new AgentError(m.error?.code, m.error?.errno, m.error?.call, m.error?.message ?? 'agent error'));
    });
    void this.proc.exited.then(() => {
      for (const w of this.waiting.values()) w.reject(new Error(`agent exited: ${this.proc.describe()}`));
      this.waiting.clear();
    });
  }

  async call<T = unknown>(op: string, args: unknown[] = [], method?: string): Promise<T> {
    await Promise.race([this.ready, this.proc.exited.then(() => Promise.reject(new Error(`agent died: ${this.proc.describe()}`)))]);
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.waiting.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.proc.child.stdin!.write(`${JSON.stringify({ id, op, method, args })}\n`);
    });
  }

  port<T = unknown>(method: string, ...args: unknown[]): Promise<T> {
    return this.call<T>('port', args, method);
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    this.proc.signal(signal);
    await this.proc.exited;
  }
}
