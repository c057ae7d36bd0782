// The one clock type of the daemon: monotonic milliseconds and timers, injected into every pure
// core and thin shell (BGP session, reconciler, routing hold-downs) so tests advance time by hand.

export interface Clock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Runs fn after ms; the handle is opaque. Timers never keep the process alive on their own. */
  setTimer(fn: () => void, ms: number): unknown;
  clearTimer(handle: unknown): void;
}

export const systemClock: Clock = {
  now: () => performance.now(),
  setTimer: (fn, ms) => {
    const t = setTimeout(fn, Math.max(0, ms));
    t.unref?.();
    return t;
  },
  clearTimer: (h) => clearTimeout(h as NodeJS.Timeout),
};
