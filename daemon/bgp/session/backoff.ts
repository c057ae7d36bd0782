// Retry pacing for BGP sessions: exponential backoff with RFC 4271 §10 jitter, and a small seeded
// PRNG so the FSM stays a pure function (the random state lives in the FSM state, not in Math.random).

/** mulberry32: one uint32 of state, one float in [0, 1) out. Enough for jitter, not for crypto. */
export function nextRandom(seed: number): { value: number; seed: number } {
  const s = (seed + 0x6d2b79f5) >>> 0;
  let t = s;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  const value = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  return { value, seed: s };
}

/** RFC 4271 §10: timers are jittered by a factor drawn uniformly from [0.75, 1.0]. */
export const JITTER_MIN = 0.75;

/**
 * Delay in milliseconds before attempt `failures` (0 = first): base · 2^failures capped at max,
 * then jittered down by up to 25%. The cap keeps a misconfigured peer at one attempt per `max`
 * seconds per speaker, and the jitter keeps a fleet of nodes from reconnecting in lock step.
 */
export function backoffMs(baseS: number, maxS: number, failures: number, random: number): number {
  const exp = Math.min(failures, 30);
  const s = Math.min(baseS * 2 ** exp, Math.max(maxS, baseS));
  return Math.round(s * 1000 * (JITTER_MIN + (1 - JITTER_MIN) * random));
}
