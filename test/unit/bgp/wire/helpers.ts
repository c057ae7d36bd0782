// Shared helpers of the wire codec tests: annotated hex fixtures and session contexts.
import type { FamilyKey, SessionContext } from '../../../../daemon/bgp/types.js';

/** Bytes from annotated hex: one field per line, "// comment" after it, whitespace ignored. */
export function hex(text: string): Uint8Array {
  const clean = text
    .split('\n')
    .map((l) => l.replace(/\/\/.*$/, ''))
    .join('')
    .replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new Error(`bad hex fixture: ${clean}`);
  return Uint8Array.from(clean.match(/../g) ?? [], (h) => parseInt(h, 16));
}

export const toHex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

export const MARKER = 'ffffffffffffffffffffffffffffffff';

export function ctxOf(over: Partial<SessionContext> = {}): SessionContext {
  return {
    fourOctetAs: true,
    extendedMessage: false,
    addPathReceive: new Set<FamilyKey>(),
    addPathSend: new Set<FamilyKey>(),
    peerType: 'ebgp',
    ...over,
  };
}

/** A context that decodes what it encodes (add-path both ways for the given families). */
export function symmetricCtx(over: Partial<SessionContext> & { addPath?: FamilyKey[] } = {}): SessionContext {
  const { addPath = [], ...rest } = over;
  return ctxOf({ addPathReceive: new Set(addPath), addPathSend: new Set(addPath), ...rest });
}
