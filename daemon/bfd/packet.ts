// BFD control packet codec (RFC 5880 §4.1 mandatory section, §4.2–§4.4 authentication sections) and
// the packet-level reception checks of RFC 5880 §6.8.6. Pure: no sockets, no clock, no session
// state. Checks that need the session (discriminator lookup, whether authentication is in use,
// the meticulous sequence window) are the session FSM's (session.ts); this module verifies digests
// and passwords with the key it is given.
//
// RFC says a received packet failing any §6.8.6 check "MUST be discarded"; nrd's decoder throws a
// BfdPacketError naming the check, and the shell counts and drops it (never a crash, never a reply).
import { createHash, timingSafeEqual } from 'node:crypto';

/** RFC 5880 §4.1 State (Sta). */
export const STATE = { AdminDown: 0, Down: 1, Init: 2, Up: 3 } as const;
export type BfdState = keyof typeof STATE;
export const STATE_NAMES: readonly BfdState[] = ['AdminDown', 'Down', 'Init', 'Up'];

/** RFC 5880 §4.1 Diagnostic (Diag) codes. */
export const DIAG = {
  None: 0,
  ControlDetectionTimeExpired: 1,
  EchoFunctionFailed: 2,
  NeighborSignaledSessionDown: 3,
  ForwardingPlaneReset: 4,
  PathDown: 5,
  ConcatenatedPathDown: 6,
  AdministrativelyDown: 7,
  ReverseConcatenatedPathDown: 8,
} as const;
export type DiagName = keyof typeof DIAG;
export const DIAG_NAMES: readonly DiagName[] = Object.keys(DIAG) as DiagName[];

/** Name of a diagnostic code; codes 9–31 are reserved and shown as numbers. */
export function diagName(code: number): string {
  return DIAG_NAMES[code] ?? `reserved-${code}`;
}

/** RFC 5880 §4.1 Auth Type values. */
export const AUTH_TYPE = { simple: 1, 'keyed-md5': 2, 'meticulous-keyed-md5': 3, 'keyed-sha1': 4, 'meticulous-keyed-sha1': 5 } as const;
export type AuthTypeName = keyof typeof AUTH_TYPE;

/** Length of the mandatory section (RFC 5880 §4.1). */
export const HEADER_LENGTH = 24;
export const VERSION = 1;
/** Length of the keyed/meticulous SHA1 section: type, len, key id, reserved, sequence, 20-byte hash. */
export const SHA1_AUTH_LENGTH = 28;
const MD5_AUTH_LENGTH = 24;

export type AuthSection =
  | { type: 'simple'; keyId: number; password: Uint8Array }
  | { type: 'keyed-md5' | 'meticulous-keyed-md5' | 'keyed-sha1' | 'meticulous-keyed-sha1'; keyId: number; sequence: number; digest: Uint8Array };

export interface ControlPacket {
  diag: number;
  state: BfdState;
  /** P: Poll (§6.5). */
  poll: boolean;
  /** F: Final, the answer to a Poll. */
  final: boolean;
  /** C: Control Plane Independent. */
  cpi: boolean;
  /** D: Demand mode. */
  demand: boolean;
  /** M: Multipoint (always 0 in RFC 5880; a received 1 is discarded). */
  multipoint: boolean;
  detectMult: number;
  myDiscriminator: number;
  yourDiscriminator: number;
  /** Microseconds. */
  desiredMinTx: number;
  /** Microseconds. */
  requiredMinRx: number;
  /** Microseconds; 0: no echo. */
  requiredMinEchoRx: number;
  auth?: AuthSection;
}

/** Which §6.8.6 check (or framing rule) a received packet failed. */
export type BfdPacketErrorCode =
  | 'short' // fewer bytes than a mandatory section, or than the Length field says
  | 'bad-version'
  | 'bad-length' // Length < 24 (26 with A), or an auth section that does not fill it
  | 'zero-detect-mult'
  | 'multipoint'
  | 'zero-my-discriminator'
  | 'zero-your-discriminator' // Your Discriminator 0 while State is neither Down nor AdminDown
  | 'bad-auth-type'
  | 'bad-auth-length';

export class BfdPacketError extends Error {
  constructor(
    readonly code: BfdPacketErrorCode,
    message: string,
  ) {
    super(`BFD packet discarded (${code}): ${message}`);
    this.name = 'BfdPacketError';
  }
}

const u32 = (v: number, what: string): number => {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) throw new RangeError(`${what} must be a 32-bit unsigned integer, got ${v}`);
  return v;
};

/** Key material for sending (authentication in use on a session). */
export interface AuthKey {
  type: 'simple' | 'keyed-sha1' | 'meticulous-keyed-sha1';
  keyId: number;
  /** 1–16 bytes for simple, 1–20 for SHA1 (RFC 5880 §4.2, §4.4). */
  secret: Uint8Array;
}

/**
 * Encodes a control packet. With `key` the A bit is set and an auth section is written: the
 * password (simple), or the SHA1 over the whole packet with the key in the hash field, zero-padded
 * to 20 bytes (RFC 5880 §6.7.4), carrying `sequence`.
 */
export function encodeControl(p: ControlPacket, key?: AuthKey, sequence = 0): Uint8Array {
  let authLen = 0;
  if (key) {
    if (key.type === 'simple') {
      if (key.secret.length < 1 || key.secret.length > 16) throw new RangeError('simple password must be 1..16 bytes');
      authLen = 3 + key.secret.length;
    } else {
      if (key.secret.length < 1 || key.secret.length > 20) throw new RangeError('SHA1 key must be 1..20 bytes');
      authLen = SHA1_AUTH_LENGTH;
    }
  }
  const out = new Uint8Array(HEADER_LENGTH + authLen);
  const v = new DataView(out.buffer);
  if (p.diag < 0 || p.diag > 31) throw new RangeError(`diag must be 0..31, got ${p.diag}`);
  if (p.detectMult < 0 || p.detectMult > 255) throw new RangeError(`detect mult must be 0..255, got ${p.detectMult}`);
  out[0] = (VERSION << 5) | p.diag;
  out[1] =
    (STATE[p.state] << 6) |
    (p.poll ? 0x20 : 0) |
    (p.final ? 0x10 : 0) |
    (p.cpi ? 0x08 : 0) |
    (key ? 0x04 : 0) |
    (p.demand ? 0x02 : 0) |
    (p.multipoint ? 0x01 : 0);
  out[2] = p.detectMult;
  out[3] = out.length;
  v.setUint32(4, u32(p.myDiscriminator, 'my discriminator'));
  v.setUint32(8, u32(p.yourDiscriminator, 'your discriminator'));
  v.setUint32(12, u32(p.desiredMinTx, 'desired min TX'));
  v.setUint32(16, u32(p.requiredMinRx, 'required min RX'));
  v.setUint32(20, u32(p.requiredMinEchoRx, 'required min echo RX'));
  if (key) {
    out[24] = AUTH_TYPE[key.type];
    out[25] = authLen;
    out[26] = key.keyId;
    if (key.type === 'simple') {
      out.set(key.secret, 27);
    } else {
      // out[27] reserved, 0
      v.setUint32(28, u32(sequence, 'sequence'));
      out.set(key.secret, 32); // the key, zero-padded, stands in the hash field while hashing
      out.set(sha1(out), 32);
    }
  }
  return out;
}

function sha1(b: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha1').update(b).digest());
}

/**
 * Decodes one control packet (one UDP payload) and applies the §6.8.6 checks that need no session:
 * version, length, detect mult, multipoint, discriminators, auth section shape. Throws only
 * BfdPacketError.
 */
export function decodeControl(bytes: Uint8Array): ControlPacket {
  if (bytes.length < HEADER_LENGTH) throw new BfdPacketError('short', `${bytes.length} bytes, a control packet has at least ${HEADER_LENGTH}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = bytes[0]! >> 5;
  if (version !== VERSION) throw new BfdPacketError('bad-version', `version ${version}`);
  const flags = bytes[1]!;
  const authPresent = (flags & 0x04) !== 0;
  const length = bytes[3]!;
  if (length < (authPresent ? HEADER_LENGTH + 2 : HEADER_LENGTH)) throw new BfdPacketError('bad-length', `Length ${length} with A=${authPresent ? 1 : 0}`);
  // RFC says: Length greater than the payload: discard. Extra bytes after Length are ignored.
  if (length > bytes.length) throw new BfdPacketError('short', `Length ${length} but ${bytes.length} bytes received`);
  const detectMult = bytes[2]!;
  if (detectMult === 0) throw new BfdPacketError('zero-detect-mult', 'Detect Mult is 0');
  if (flags & 0x01) throw new BfdPacketError('multipoint', 'M bit set');
  const myDiscriminator = v.getUint32(4);
  if (myDiscriminator === 0) throw new BfdPacketError('zero-my-discriminator', 'My Discriminator is 0');
  const state = STATE_NAMES[flags >> 6]!;
  const yourDiscriminator = v.getUint32(8);
  if (yourDiscriminator === 0 && state !== 'Down' && state !== 'AdminDown') {
    throw new BfdPacketError('zero-your-discriminator', `Your Discriminator is 0 in state ${state}`);
  }
  const p: ControlPacket = {
    diag: bytes[0]! & 0x1f,
    state,
    poll: (flags & 0x20) !== 0,
    final: (flags & 0x10) !== 0,
    cpi: (flags & 0x08) !== 0,
    demand: (flags & 0x02) !== 0,
    multipoint: false,
    detectMult,
    myDiscriminator,
    yourDiscriminator,
    desiredMinTx: v.getUint32(12),
    requiredMinRx: v.getUint32(16),
    requiredMinEchoRx: v.getUint32(20),
  };
  if (authPresent) p.auth = decodeAuth(bytes.subarray(HEADER_LENGTH, length));
  return p;
}

function decodeAuth(a: Uint8Array): AuthSection {
  const type = a[0]!;
  const len = a[1]!;
  // The auth section fills the rest of the packet as Length counts it.
  if (len !== a.length) throw new BfdPacketError('bad-auth-length', `Auth Len ${len}, ${a.length} bytes left in the packet`);
  const v = new DataView(a.buffer, a.byteOffset, a.byteLength);
  switch (type) {
    case AUTH_TYPE.simple:
      // Password of 1..16 bytes after type, len, key id.
      if (len < 4 || len > 19) throw new BfdPacketError('bad-auth-length', `simple password section of ${len} bytes`);
      return { type: 'simple', keyId: a[2]!, password: a.slice(3) };
    case AUTH_TYPE['keyed-md5']:
    case AUTH_TYPE['meticulous-keyed-md5']:
      if (len !== MD5_AUTH_LENGTH) throw new BfdPacketError('bad-auth-length', `MD5 section of ${len} bytes, expected ${MD5_AUTH_LENGTH}`);
      return { type: type === 2 ? 'keyed-md5' : 'meticulous-keyed-md5', keyId: a[2]!, sequence: v.getUint32(4), digest: a.slice(8) };
    case AUTH_TYPE['keyed-sha1']:
    case AUTH_TYPE['meticulous-keyed-sha1']:
      if (len !== SHA1_AUTH_LENGTH) throw new BfdPacketError('bad-auth-length', `SHA1 section of ${len} bytes, expected ${SHA1_AUTH_LENGTH}`);
      return { type: type === 4 ? 'keyed-sha1' : 'meticulous-keyed-sha1', keyId: a[2]!, sequence: v.getUint32(4), digest: a.slice(8) };
    default:
      throw new BfdPacketError('bad-auth-type', `Auth Type ${type}`);
  }
}

/** Why authentication of a received packet failed (RFC 5880 §6.7). */
export type AuthFailure = 'missing' | 'unexpected' | 'type-mismatch' | 'key-id' | 'bad-password' | 'bad-digest';

/**
 * Verifies the auth section of a decoded packet against the session's key (or its absence): the
 * A bit must match whether authentication is in use (§6.8.6), the type and key id must match,
 * and the password or SHA1 digest must be right (§6.7.2, §6.7.4). The sequence number window is
 * the session's (session.ts). Returns null when the packet is authentic.
 */
export function verifyAuth(bytes: Uint8Array, p: ControlPacket, key: AuthKey | undefined): AuthFailure | null {
  if (!key) return p.auth ? 'unexpected' : null;
  const a = p.auth;
  if (!a) return 'missing';
  if (a.type !== key.type) return 'type-mismatch';
  if (a.keyId !== key.keyId) return 'key-id';
  if (a.type === 'simple') {
    return a.password.length === key.secret.length && timingSafeEqual(a.password, key.secret) ? null : 'bad-password';
  }
  const copy = bytes.slice(0, HEADER_LENGTH + SHA1_AUTH_LENGTH);
  copy.fill(0, 32, 52);
  copy.set(key.secret, 32);
  return timingSafeEqual(sha1(copy), a.digest) ? null : 'bad-digest';
}
