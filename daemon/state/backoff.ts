// Retry pacing for etcd trouble: exponential backoff with jitter, and a token bucket that caps how
// often a process re-lists (so a thousand nodes reconnecting at once do not stampede etcd).

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /** Random source in [0, 1); injected for tests. */
  random?: () => number;
}

/**
 * Delay before retry number `attempt` (1-based): "equal jitter", half fixed and half random, so
 * the delay still grows when the random draw is small but peers spread out.
 */
export function backoffDelay(attempt: number, o: BackoffOptions): number {
  const rnd = o.random ?? Math.random;
  const exp = Math.min(o.maxMs, o.baseMs * 2 ** Math.max(0, Math.min(attempt - 1, 30)));
  return Math.round(exp / 2 + (exp / 2) * rnd());
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** Token bucket: `capacity` re-lists at once, then one every `1000 / perSecond` ms. */
export class TokenBucket {
  private tokens: number;
  private last: number;
  constructor(
    private readonly capacity: number,
    private readonly perSecond: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = capacity;
    this.last = now();
  }

  private refill(): void {
    const t = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((t - this.last) / 1000) * this.perSecond);
    this.last = t;
  }

  /** Milliseconds until a token is available (0 = now); takes it when 0. */
  tryTake(): number {
    this.refill();
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) / this.perSecond) * 1000);
  }

  async take(signal?: AbortSignal): Promise<void> {
    for (;;) {
      const wait = this.tryTake();
      if (wait === 0 || signal?.aborted) return;
      await sleep(wait, signal);
    }
  }
}
