// Whole-message codec: RFC 4271 §4 message types and §6.1 header checks, dispatching to the
// per-type codecs. decodeMessage never throws: every input yields a message or a BgpError.
import {
  type BgpError,
  type BgpMessage,
  type FamilyKey,
  type SessionContext,
} from '../types.js';
import { HDR_BAD_LENGTH, HDR_BAD_TYPE, headerError, RR_INVALID_LENGTH, routeRefreshError, u16Bytes } from './errors.js';
import {
  beginMessage,
  checkHeader,
  endMessage,
  HEADER_LEN,
  maxMessageSize,
  MSG_KEEPALIVE,
  MSG_NOTIFICATION,
  MSG_OPEN,
  MSG_ROUTE_REFRESH,
  MSG_UPDATE,
} from './header.js';
import { decodeNotification, decodeRouteRefresh, encodeNotification, encodeRouteRefresh } from './notification.js';
import { decodeOpen, encodeOpen } from './open.js';
import { decodeUpdate, encodeUpdate, type DecodeUpdateOptions } from './update.js';
import { Writer } from './writer.js';

export type DecodeResult =
  | {
      ok: true;
      message: BgpMessage;
      /** Errors already handled (treat-as-withdraw applied, attributes discarded): log, count. */
      errors: BgpError[];
    }
  | {
      ok: false;
      /** action is session-reset (send this NOTIFICATION) or afisafi-disable (for `family`). */
      error: BgpError;
      family?: FamilyKey;
    };

const NO_ERRORS: BgpError[] = [];

/** RFC 4271 §4 minimum lengths per type (§6.1: below them is Bad Message Length). */
const MIN_LENGTH = [0, 29, 23, 21, 19, 23];

function badLength(frame: Uint8Array, why: string): DecodeResult {
  const len = (frame[16]! << 8) | frame[17]!;
  return { ok: false, error: headerError(HDR_BAD_LENGTH, why, u16Bytes(len)) };
}

/**
 * Decode one whole message (header included), e.g. a frame from the Framer. `opts.packIpv4`: an
 * UPDATE may come back as a PackedUpdate (see packed.ts); everything else is the same.
 */
export function decodeMessage(frame: Uint8Array, ctx: SessionContext, opts?: DecodeUpdateOptions): DecodeResult {
  if (frame.length < HEADER_LEN) {
    return { ok: false, error: headerError(HDR_BAD_LENGTH, `${frame.length} octets cannot hold a header`, u16Bytes(frame.length)) };
  }
  const type = frame[18]!;
  const len = checkHeader(frame, 0, maxMessageSize(ctx.extendedMessage, type));
  if (typeof len !== 'number') return { ok: false, error: len };
  if (len !== frame.length) return badLength(frame, `length field ${len} but frame has ${frame.length} octets`);
  if (type < MSG_OPEN || type > MSG_ROUTE_REFRESH) {
    return { ok: false, error: headerError(HDR_BAD_TYPE, `message type ${type}`, new Uint8Array([type])) };
  }
  if (len < MIN_LENGTH[type]!) return badLength(frame, `type ${type} message of ${len} octets is too short`);
  switch (type) {
    case MSG_OPEN: {
      const r = decodeOpen(frame);
      return r.ok ? { ok: true, message: r.message, errors: NO_ERRORS } : r;
    }
    case MSG_UPDATE: {
      const r = decodeUpdate(frame, ctx, opts);
      if (r.ok) return { ok: true, message: r.message, errors: r.errors };
      return r.family ? { ok: false, error: r.error, family: r.family } : { ok: false, error: r.error };
    }
    case MSG_NOTIFICATION:
      return { ok: true, message: decodeNotification(frame), errors: NO_ERRORS };
    case MSG_KEEPALIVE:
      if (len !== HEADER_LEN) return badLength(frame, `KEEPALIVE of ${len} octets`);
      return { ok: true, message: { type: 'keepalive' }, errors: NO_ERRORS };
    default: {
      if (len !== 23) {
        // RFC 7313 §5: a BoRR/EoRR of the wrong length is a ROUTE-REFRESH error carrying the message.
        const subtype = frame[21];
        if (subtype === 1 || subtype === 2) {
          return { ok: false, error: routeRefreshError(RR_INVALID_LENGTH, `ROUTE-REFRESH of ${len} octets`, frame.slice()) };
        }
        return badLength(frame, `ROUTE-REFRESH of ${len} octets`);
      }
      return { ok: true, message: decodeRouteRefresh(frame), errors: NO_ERRORS };
    }
  }
}

const TYPE_OF = { open: MSG_OPEN, update: MSG_UPDATE, notification: MSG_NOTIFICATION, keepalive: MSG_KEEPALIVE, 'route-refresh': MSG_ROUTE_REFRESH } as const;

/**
 * Encode one message with its header. Throws RangeError when the message is invalid or larger than
 * the session allows (a bug in the caller, never a peer's doing); use packUpdates for bulk NLRI.
 */
export function encodeMessage(msg: BgpMessage, ctx: SessionContext): Uint8Array {
  const type = TYPE_OF[msg.type];
  const w = new Writer(msg.type === 'update' ? 4096 : 64);
  const at = beginMessage(w, type);
  switch (msg.type) {
    case 'open':
      encodeOpen(w, msg);
      break;
    case 'update':
      encodeUpdate(w, msg, ctx);
      break;
    case 'notification':
      encodeNotification(w, msg);
      break;
    case 'keepalive':
      break;
    case 'route-refresh':
      encodeRouteRefresh(w, msg);
      break;
  }
  endMessage(w, at, maxMessageSize(ctx.extendedMessage, type));
  return w.finish();
}

const KEEPALIVE_BYTES = (() => {
  const w = new Writer(19);
  endMessage(w, beginMessage(w, MSG_KEEPALIVE), 19);
  return w.finish();
})();

/** The 19-octet KEEPALIVE (a fresh copy: callers may hand it to a socket). */
export const keepaliveBytes = (): Uint8Array => KEEPALIVE_BYTES.slice();
