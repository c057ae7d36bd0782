// Community text forms from config: RFC 1997 communities (incl. the well-known ones of RFC 1997
// and RFC 7999) and RFC 8092 large communities.
import type { LargeCommunity } from '../types.js';

export const NO_EXPORT = 0xffffff01;
export const NO_ADVERTISE = 0xffffff02;
export const NO_EXPORT_SUBCONFED = 0xffffff03;
export const BLACKHOLE = 0xffff029a;

const WELL_KNOWN: Record<string, number> = {
  'no-export': NO_EXPORT,
  'no-advertise': NO_ADVERTISE,
  'no-export-subconfed': NO_EXPORT_SUBCONFED,
  'local-as': NO_EXPORT_SUBCONFED,
  blackhole: BLACKHOLE,
};

const U16 = 0xffff;
const U32 = 0xffffffff;

function int(text: string, max: number, what: string): number {
  if (!/^\d+$/.test(text) || Number(text) > max) throw new Error(`invalid ${what}: "${text}"`);
  return Number(text);
}

export function parseCommunity(value: string | number): number {
  if (typeof value === 'number') {
    if (!Number.isInteger(value) || value < 0 || value > U32) throw new Error(`invalid community: ${value}`);
    return value;
  }
  const wk = WELL_KNOWN[value.toLowerCase()];
  if (wk !== undefined) return wk;
  const parts = value.split(':');
  if (parts.length !== 2) throw new Error(`invalid community: "${value}" (want "asn:value")`);
  return int(parts[0]!, U16, 'community') * 0x10000 + int(parts[1]!, U16, 'community');
}

export function parseLargeCommunity(value: string): LargeCommunity {
  const parts = value.split(':');
  if (parts.length !== 3) throw new Error(`invalid large community: "${value}" (want "global:local1:local2")`);
  return {
    global: int(parts[0]!, U32, 'large community'),
    local1: int(parts[1]!, U32, 'large community'),
    local2: int(parts[2]!, U32, 'large community'),
  };
}
