// Community values and their text forms, the one parser for both the site config (check-config)
// and the speaker's export policy: RFC 1997 communities with the well-known names of RFC 1997,
// RFC 3765 (NO_PEER), RFC 7999 (BLACKHOLE) and RFC 8326 (GRACEFUL_SHUTDOWN), as BIRD and FRR spell
// them, and RFC 8092 large communities. Pure: no I/O, no dependency on config or the speaker.
import type { LargeCommunity } from '../types.js';

export const GRACEFUL_SHUTDOWN = 0xffff0000;
export const BLACKHOLE = 0xffff029a;
export const NO_EXPORT = 0xffffff01;
export const NO_ADVERTISE = 0xffffff02;
export const NO_EXPORT_SUBCONFED = 0xffffff03;
export const NO_PEER = 0xffffff04;

/**
 * The well-known names nrd accepts, and nothing else: the schema's doc text of
 * bgp.export.communities lists exactly these (a unit test holds both to each other).
 */
export const WELL_KNOWN_COMMUNITIES: ReadonlyMap<string, number> = new Map([
  ['no-export', NO_EXPORT],
  ['no-advertise', NO_ADVERTISE],
  ['no-export-subconfed', NO_EXPORT_SUBCONFED],
  ['no-peer', NO_PEER],
  ['blackhole', BLACKHOLE],
  ['graceful-shutdown', GRACEFUL_SHUTDOWN],
]);

const U32 = 0xffffffff;

/** "65000:100", a well-known name (any case) or a 32-bit number → the community; null when malformed. */
export function parseCommunity(value: string | number): number | null {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0 && value <= U32 ? value : null;
  if (typeof value !== 'string') return null;
  const named = WELL_KNOWN_COMMUNITIES.get(value.toLowerCase());
  if (named !== undefined) return named;
  const m = /^(\d{1,5}):(\d{1,5})$/.exec(value);
  if (!m) return null;
  const hi = Number(m[1]);
  const lo = Number(m[2]);
  return hi > 0xffff || lo > 0xffff ? null : hi * 0x10000 + lo;
}

/** "global:local1:local2" (RFC 8092), each part 0..4294967295; null when malformed. */
export function parseLargeCommunity(value: string): LargeCommunity | null {
  if (typeof value !== 'string') return null;
  const m = /^(\d{1,10}):(\d{1,10}):(\d{1,10})$/.exec(value);
  if (!m) return null;
  const parts = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (parts.some((p) => p > U32)) return null;
  return { global: parts[0]!, local1: parts[1]!, local2: parts[2]! };
}
