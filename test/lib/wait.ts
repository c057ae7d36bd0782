// Polling helper for tests and the lab: poll a probe at a short interval until it yields a value
// or a generous deadline passes (instead of fixed sleeps on a shared 2-core machine).

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export interface WaitOptions {
  /** Give up after this many ms (default 10000). */
  timeoutMs?: number;
  /** Pause between probes in ms (default 50). */
  intervalMs?: number;
  /** What is being waited for, used in the timeout error ("BGP session a→b Established"). */
  what?: string;
}

export class WaitTimeoutError extends Error {
  readonly code = 'NRDT_WAIT_TIMEOUT';
  constructor(
    message: string,
    readonly lastError: unknown,
    readonly lastValue: unknown,
  ) {
    super(message);
    this.name = 'WaitTimeoutError';
  }
}

/**
 * Call `probe` until it returns a value that is not undefined, null or false, and return that value.
 * A probe that throws counts as "not yet"; the last error and the last value are in the timeout
 * error, so a failing test says why it never got there.
 */
export async function waitFor<T>(
  probe: () => T | undefined | null | false | Promise<T | undefined | null | false>,
  opts: WaitOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 50;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  let lastValue: unknown;
  for (;;) {
    try {
      const v = await probe();
      if (v !== undefined && v !== null && v !== false) return v;
      lastValue = v;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() >= deadline) break;
    await sleep(Math.min(intervalMs, Math.max(0, deadline - Date.now())));
  }
  const why =
    lastError instanceof Error ? `; last error: ${lastError.message}` : lastError !== undefined ? `; last error: ${String(lastError)}` : '';
  throw new WaitTimeoutError(`timed out after ${timeoutMs} ms waiting for ${opts.what ?? 'condition'}${why}`, lastError, lastValue);
}
