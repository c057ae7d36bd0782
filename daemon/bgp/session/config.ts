// Per-peer session configuration as the FSM sees it (RFC 4271 §8 optional attributes, §10 timers).
// Times are seconds, as BGP speaks them; the FSM turns them into absolute millisecond deadlines.
import type { AddPathFamily, GracefulRestartCapability } from '../types.js';

export interface SessionConfig {
  localAs: number;
  /** The AS the peer must announce (four-octet capability or My AS field). */
  peerAs: number;
  /** Our BGP identifier, dotted quad. */
  localId: string;
  /** Proposed hold time: 0 (no keepalives) or >= 3. */
  holdTime: number;
  /** Families we offer with the multiprotocol capability. */
  families: { afi: number; safi: number }[];
  routeRefresh: boolean;
  enhancedRouteRefresh: boolean;
  extendedMessage: boolean;
  fourOctetAs: boolean;
  gracefulRestart?: GracefulRestartCapability;
  addPath?: AddPathFamily[];
  /** Never initiate connections: wait for the peer (ManualStart_with_PassiveTcpEstablishment). */
  passive: boolean;
  /** Initial ConnectRetryTimer; grows exponentially with failed attempts up to connectRetryMax. */
  connectRetryTime: number;
  connectRetryMax: number;
  /** IdleHoldTimer after an error (DampPeerOscillations); doubles per consecutive failure. */
  idleHoldTime: number;
  idleHoldMax: number;
  /** DelayOpenTimer; 0 disables DelayOpen. */
  delayOpenTime: number;
  /** Hold timer while waiting for the peer's OPEN (RFC 4271 §8.2.2 suggests 4 minutes). */
  openHoldTime: number;
  /**
   * A session that stayed Established this long counts as healthy: its end resets the backoff.
   * RFC says the ConnectRetryCounter is zeroed only by ManualStart/ManualStop; nrd also zeroes it
   * here, so one flap after days of uptime retries quickly while a flapping peer backs off.
   */
  stableTime: number;
}

export const DEFAULT_SESSION_TIMERS = {
  holdTime: 90,
  connectRetryTime: 5,
  connectRetryMax: 120,
  idleHoldTime: 5,
  idleHoldMax: 300,
  delayOpenTime: 0,
  openHoldTime: 240,
  stableTime: 60,
} as const;

/** A full config from the required identity fields plus overrides; tests and main.ts use it. */
export function sessionConfig(
  base: Pick<SessionConfig, 'localAs' | 'peerAs' | 'localId'> & Partial<SessionConfig>,
): SessionConfig {
  return {
    ...DEFAULT_SESSION_TIMERS,
    families: [
      { afi: 1, safi: 1 },
      { afi: 2, safi: 1 },
    ],
    routeRefresh: true,
    enhancedRouteRefresh: false,
    extendedMessage: false,
    fourOctetAs: true,
    passive: false,
    ...base,
  };
}
