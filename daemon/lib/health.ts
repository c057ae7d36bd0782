// Readiness registry: each subsystem reports whether it is ready and, when not, why (which peer,
// which state, the last error), so /readyz and systemd's STATUS= explain themselves.

export interface Readiness {
  ready: boolean;
  /** One line a human can act on, e.g. "peer 192.0.2.1 in Active: ECONNREFUSED". */
  reason?: string;
  /** Structured detail for the API (JSON-serialisable). */
  detail?: unknown;
}

export interface SubsystemReadiness extends Readiness {
  name: string;
  /** When this subsystem's readiness last changed (ISO 8601). */
  since: string;
}

export interface ReadinessSnapshot {
  ready: boolean;
  subsystems: SubsystemReadiness[];
}

/** What a subsystem holds to report its own readiness. */
export type ReadinessReporter = (r: Readiness) => void;

export type ReadinessListener = (snapshot: ReadinessSnapshot) => void;

export class ReadinessRegistry {
  // Insertion order is registration order, which is start order: the first not-ready subsystem
  // listed is the one to look at first.
  private readonly entries = new Map<string, SubsystemReadiness>();
  private readonly listeners = new Set<ReadinessListener>();

  constructor(private readonly now: () => Date = () => new Date()) {}

  /** Registers a subsystem (not ready until it says so) and returns its reporter. */
  register(name: string, initial: Readiness = { ready: false, reason: 'starting' }): ReadinessReporter {
    if (this.entries.has(name)) throw new Error(`readiness: subsystem ${name} registered twice`);
    this.entries.set(name, { name, ...initial, since: this.now().toISOString() });
    this.emit();
    return (r) => this.set(name, r);
  }

  /** Removes a subsystem (it no longer gates readiness). */
  unregister(name: string): void {
    if (this.entries.delete(name)) this.emit();
  }

  set(name: string, r: Readiness): void {
    const prev = this.entries.get(name);
    if (!prev) throw new Error(`readiness: unknown subsystem ${name}`);
    const changed = prev.ready !== r.ready || prev.reason !== r.reason;
    const since = prev.ready !== r.ready ? this.now().toISOString() : prev.since;
    const next: SubsystemReadiness = { name, ready: r.ready, since };
    if (r.reason !== undefined) next.reason = r.reason;
    if (r.detail !== undefined) next.detail = r.detail;
    this.entries.set(name, next);
    // Detail alone changing (counters, timestamps) is not worth a STATUS= datagram.
    if (changed) this.emit();
  }

  get(name: string): SubsystemReadiness | undefined {
    return this.entries.get(name);
  }

  /** Ready when every registered subsystem is ready. With none registered, not ready: a daemon
   * that runs nothing is not doing its job. */
  isReady(): boolean {
    if (this.entries.size === 0) return false;
    for (const e of this.entries.values()) if (!e.ready) return false;
    return true;
  }

  snapshot(): ReadinessSnapshot {
    return { ready: this.isReady(), subsystems: [...this.entries.values()].map((e) => ({ ...e })) };
  }

  notReady(): SubsystemReadiness[] {
    return [...this.entries.values()].filter((e) => !e.ready).map((e) => ({ ...e }));
  }

  /** One line for systemd's STATUS= and logs. */
  summary(): string {
    if (this.entries.size === 0) return 'starting';
    const waiting = this.notReady();
    if (waiting.length === 0) return `ready (${[...this.entries.keys()].join(', ')})`;
    return `waiting for ${waiting.map((w) => (w.reason ? `${w.name}: ${w.reason}` : w.name)).join('; ')}`;
  }

  onChange(listener: ReadinessListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(): void {
    const snap = this.snapshot();
    for (const l of this.listeners) l(snap);
  }
}
