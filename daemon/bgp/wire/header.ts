// BGP message header and stream framing (RFC 4271 §4.1, §6.1; RFC 8654 extended message size).
// The Framer cuts a TCP byte stream into whole messages; a bad marker or length is a BgpError.
import type { BgpError } from '../types.js';
import { headerError, HDR_BAD_LENGTH, HDR_NOT_SYNCHRONIZED, u16Bytes } from './errors.js';
import type { Writer } from './writer.js';

export const HEADER_LEN = 19;
export const MAX_MESSAGE = 4096;
export const MAX_EXTENDED_MESSAGE = 65535;

export const MSG_OPEN = 1;
export const MSG_UPDATE = 2;
export const MSG_NOTIFICATION = 3;
export const MSG_KEEPALIVE = 4;
export const MSG_ROUTE_REFRESH = 5;

/** Check the 16-octet all-ones marker at buf[off]. */
export function markerOk(buf: Uint8Array, off: number): boolean {
  for (let i = 0; i < 16; i++) if (buf[off + i] !== 0xff) return false;
  return true;
}

/** Validate a header's marker and length field; returns the length or the RFC 4271 §6.1 error. */
export function checkHeader(buf: Uint8Array, off: number, max: number): number | BgpError {
  if (!markerOk(buf, off)) return headerError(HDR_NOT_SYNCHRONIZED, 'marker is not all ones');
  const len = (buf[off + 16]! << 8) | buf[off + 17]!;
  if (len < HEADER_LEN || len > max) {
    return headerError(HDR_BAD_LENGTH, `message length ${len} outside ${HEADER_LEN}..${max}`, u16Bytes(len));
  }
  return len;
}

export type FrameResult = { ok: true; frame: Uint8Array } | { ok: false; error: BgpError };

/**
 * Cuts a byte stream into BGP messages. push() each chunk, then call next() (or iterate) until it
 * returns null. Frames are views into the pushed chunks when a message lies inside one chunk (no
 * copy). Octets of a message spanning chunks are appended to a buffer the framer owns, which grows
 * by doubling: a 64 KiB message arriving one octet at a time costs O(n) copied octets, not O(n²).
 * Returned frames are never overwritten: appends go past them, and growth moves only the pending
 * octets into a new buffer. After an error the framer stays failed: the stream cannot be
 * resynchronised, the session must reset.
 */
export class Framer implements Iterable<FrameResult> {
  /** Largest acceptable message: 4096, or 65535 once extended message is negotiated (RFC 8654). */
  maxMessage = MAX_MESSAGE;
  /** Octets copied so far (chunks joined across message boundaries); for tests and inspection. */
  copied = 0;
  private buf: Uint8Array = new Uint8Array(0);
  private start = 0;
  /** End of the data in `buf` (an owned buffer has spare capacity beyond it). */
  private end = 0;
  /** `buf` is the framer's own (appendable); otherwise it is a caller's chunk (read-only). */
  private owned = false;
  private failed: BgpError | null = null;

  /** Octets held that do not yet form a whole message. */
  get pending(): number {
    return this.end - this.start;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    const left = this.end - this.start;
    if (left === 0) {
      this.buf = chunk;
      this.start = 0;
      this.end = chunk.length;
      this.owned = false;
      return;
    }
    if (!this.owned || this.end + chunk.length > this.buf.length) {
      const size = Math.max(2 * (left + chunk.length), 2 * HEADER_LEN);
      const grown = new Uint8Array(size);
      grown.set(this.buf.subarray(this.start, this.end), 0);
      this.copied += left;
      this.buf = grown;
      this.start = 0;
      this.end = left;
      this.owned = true;
    }
    this.buf.set(chunk, this.end);
    this.copied += chunk.length;
    this.end += chunk.length;
  }

  next(): FrameResult | null {
    if (this.failed) return { ok: false, error: this.failed };
    const avail = this.end - this.start;
    if (avail < HEADER_LEN) return null;
    const len = checkHeader(this.buf, this.start, this.maxMessage);
    if (typeof len !== 'number') {
      this.failed = len;
      return { ok: false, error: len };
    }
    if (avail < len) return null;
    const frame = this.buf.subarray(this.start, this.start + len);
    this.start += len;
    if (this.start === this.end) {
      this.buf = new Uint8Array(0);
      this.start = 0;
      this.end = 0;
      this.owned = false;
    }
    return { ok: true, frame };
  }

  *[Symbol.iterator](): Iterator<FrameResult> {
    for (;;) {
      const r = this.next();
      if (r === null) return;
      yield r;
      if (!r.ok) return;
    }
  }
}

const MARKER = new Uint8Array(16).fill(0xff);

/** Write marker, a length placeholder and the type; returns where the message starts. */
export function beginMessage(w: Writer, type: number): number {
  const at = w.pos;
  w.bytes(MARKER).u16(0).u8(type);
  return at;
}

/** Fill the length of the message begun at `at`. Throws RangeError past `max` (caller's bug). */
export function endMessage(w: Writer, at: number, max: number): void {
  const len = w.pos - at;
  if (len > max) throw new RangeError(`message of ${len} octets exceeds the maximum ${max}`);
  w.patchU16(at + 16, len);
}

/** Largest message for this session (RFC 8654: OPEN and KEEPALIVE stay within 4096). */
export const maxMessageSize = (extended: boolean, type: number = MSG_UPDATE): number =>
  extended && type !== MSG_OPEN && type !== MSG_KEEPALIVE ? MAX_EXTENDED_MESSAGE : MAX_MESSAGE;
