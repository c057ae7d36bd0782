// Public surface of the pure BGP wire codec (RFC 4271 and extensions): no sockets, timers or logs.
export { Reader, ShortRead } from './reader.js';
export { Writer, type Fork } from './writer.js';
export * from './errors.js';
export { Framer, type FrameResult, HEADER_LEN, MAX_MESSAGE, MAX_EXTENDED_MESSAGE, maxMessageSize } from './header.js';
export { MSG_OPEN, MSG_UPDATE, MSG_NOTIFICATION, MSG_KEEPALIVE, MSG_ROUTE_REFRESH } from './header.js';
export { decodeMessage, encodeMessage, keepaliveBytes, type DecodeResult } from './message.js';
export { AS_TRANS, BGP_VERSION, emptyCapabilities } from './open.js';
export { endOfRib, isEndOfRib, packUpdates, packWithdrawals, type DecodeUpdateOptions } from './update.js';
export { PackedUpdate } from './packed.js';
export { mergeAs4Path } from './attributes.js';
export { canonicalAddress } from './addr.js';
export { MAX_SHUTDOWN_MESSAGE } from './notification.js';
