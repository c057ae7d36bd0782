// BGP error codes as data: RFC 4271 §4.5/§6 NOTIFICATION codes and subcodes, RFC 7313 (ROUTE-REFRESH),
// RFC 4486 (cease subcodes) and the RFC 7606 error-handling action attached to each decode error.
import {
  ERR_HEADER,
  ERR_OPEN,
  ERR_UPDATE,
  ERR_ROUTE_REFRESH,
  type BgpError,
  type ErrorAction,
} from '../types.js';

// RFC 4271 §6.1 message header errors.
export const HDR_NOT_SYNCHRONIZED = 1;
export const HDR_BAD_LENGTH = 2;
export const HDR_BAD_TYPE = 3;

// RFC 4271 §6.2 OPEN errors (+ RFC 5492 subcode 7).
export const OPEN_UNSPECIFIC = 0;
export const OPEN_UNSUPPORTED_VERSION = 1;
export const OPEN_BAD_PEER_AS = 2;
export const OPEN_BAD_BGP_ID = 3;
export const OPEN_UNSUPPORTED_OPT_PARAM = 4;
export const OPEN_UNACCEPTABLE_HOLD_TIME = 6;
export const OPEN_UNSUPPORTED_CAPABILITY = 7;

// RFC 4271 §6.3 UPDATE errors.
export const UPD_MALFORMED_ATTR_LIST = 1;
export const UPD_UNRECOGNIZED_WELL_KNOWN = 2;
export const UPD_MISSING_WELL_KNOWN = 3;
export const UPD_ATTR_FLAGS = 4;
export const UPD_ATTR_LENGTH = 5;
export const UPD_INVALID_ORIGIN = 6;
export const UPD_INVALID_NEXT_HOP = 8;
export const UPD_OPTIONAL_ATTR = 9;
export const UPD_INVALID_NETWORK = 10;
export const UPD_MALFORMED_AS_PATH = 11;

// RFC 7313 §5 ROUTE-REFRESH errors.
export const RR_INVALID_LENGTH = 1;

// RFC 4486 / RFC 9003 cease subcodes.
export const CEASE_MAX_PREFIXES = 1;
export const CEASE_ADMIN_SHUTDOWN = 2;
export const CEASE_PEER_DECONFIGURED = 3;
export const CEASE_ADMIN_RESET = 4;
export const CEASE_CONNECTION_REJECTED = 5;
export const CEASE_OTHER_CONFIG_CHANGE = 6;
export const CEASE_COLLISION = 7;
export const CEASE_OUT_OF_RESOURCES = 8;
export const CEASE_HARD_RESET = 9; // RFC 8538

const EMPTY = new Uint8Array(0);

export function bgpError(
  code: number,
  subcode: number,
  action: ErrorAction,
  reason: string,
  data: Uint8Array = EMPTY,
): BgpError {
  return { code, subcode, data, action, reason };
}

export const u16Bytes = (v: number): Uint8Array => new Uint8Array([(v >>> 8) & 0xff, v & 0xff]);

export const headerError = (subcode: number, reason: string, data?: Uint8Array): BgpError =>
  bgpError(ERR_HEADER, subcode, 'session-reset', reason, data);

export const openError = (subcode: number, reason: string, data?: Uint8Array): BgpError =>
  bgpError(ERR_OPEN, subcode, 'session-reset', reason, data);

export const updateError = (
  subcode: number,
  action: ErrorAction,
  reason: string,
  data?: Uint8Array,
): BgpError => bgpError(ERR_UPDATE, subcode, action, reason, data);

export const routeRefreshError = (subcode: number, reason: string, data?: Uint8Array): BgpError =>
  bgpError(ERR_ROUTE_REFRESH, subcode, 'session-reset', reason, data);

const RANK: Record<ErrorAction, number> = {
  'session-reset': 3,
  'afisafi-disable': 2,
  'treat-as-withdraw': 1,
  'attribute-discard': 0,
};

/** RFC 7606 §3: when several errors are found, the strongest action applies. */
export const stronger = (a: ErrorAction, b: ErrorAction): boolean => RANK[a] > RANK[b];
