// NOTIFICATION (RFC 4271 §4.5) and ROUTE-REFRESH (RFC 2918, RFC 7313 subtypes) codecs, with the
// RFC 8203/9003 shutdown communication of Cease / Administrative Shutdown and Administrative Reset.
import { ERR_CEASE, type NotificationMessage, type RouteRefreshMessage } from '../types.js';
import { CEASE_ADMIN_RESET, CEASE_ADMIN_SHUTDOWN } from './errors.js';
import { HEADER_LEN } from './header.js';
import type { Writer } from './writer.js';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8enc = new TextEncoder();

/** RFC 9003 §2: at most 255 octets of UTF-8 after a one-octet length. */
export const MAX_SHUTDOWN_MESSAGE = 255;

const carriesShutdown = (code: number, subcode: number): boolean =>
  code === ERR_CEASE && (subcode === CEASE_ADMIN_SHUTDOWN || subcode === CEASE_ADMIN_RESET);

/** Decode a NOTIFICATION frame (at least 21 octets, checked by the caller). Never fails. */
export function decodeNotification(frame: Uint8Array): NotificationMessage {
  const code = frame[HEADER_LEN]!;
  const subcode = frame[HEADER_LEN + 1]!;
  const data = frame.slice(HEADER_LEN + 2);
  const m: NotificationMessage = { type: 'notification', code, subcode, data };
  if (carriesShutdown(code, subcode) && data.length > 0) {
    // RFC 9003 §2: a length that overruns the data or invalid UTF-8 is logged and otherwise ignored;
    // the raw octets stay in `data`.
    const len = data[0]!;
    if (1 + len <= data.length) {
      try {
        m.shutdownMessage = utf8.decode(data.subarray(1, 1 + len));
      } catch {
        // not UTF-8: keep the raw data only
      }
    }
  }
  return m;
}

/** Truncate to at most `max` octets of UTF-8 without cutting a character. */
function utf8Prefix(text: string, max: number): Uint8Array {
  const b = utf8enc.encode(text);
  if (b.length <= max) return b;
  let n = max;
  while (n > 0 && (b[n]! & 0xc0) === 0x80) n--; // back off to a character boundary
  return b.subarray(0, n);
}

/**
 * Write the NOTIFICATION body. With a shutdownMessage on Cease 2/4 the data is built from it
 * (length octet + UTF-8, truncated to 255 octets); otherwise `data` is sent as is.
 */
export function encodeNotification(w: Writer, m: NotificationMessage): void {
  w.u8(m.code).u8(m.subcode);
  if (m.shutdownMessage !== undefined && carriesShutdown(m.code, m.subcode)) {
    const text = utf8Prefix(m.shutdownMessage, MAX_SHUTDOWN_MESSAGE);
    w.u8(text.length).bytes(text);
  } else w.bytes(m.data);
}

/**
 * Decode a ROUTE-REFRESH frame of exactly 23 octets (length checked by the caller). Subtypes other
 * than 0/1/2 are returned as they are: RFC 7313 §5 says the receiver ignores them, the session does.
 */
export function decodeRouteRefresh(frame: Uint8Array): RouteRefreshMessage {
  return {
    type: 'route-refresh',
    afi: (frame[HEADER_LEN]! << 8) | frame[HEADER_LEN + 1]!,
    subtype: frame[HEADER_LEN + 2]!,
    safi: frame[HEADER_LEN + 3]!,
  };
}

export function encodeRouteRefresh(w: Writer, m: RouteRefreshMessage): void {
  w.u16(m.afi).u8(m.subtype).u8(m.safi);
}
