// OPEN message codec: RFC 4271 §4.2/§6.2, capabilities RFC 5492 (multiprotocol RFC 4760, route
// refresh RFC 2918, enhanced route refresh RFC 7313, extended message RFC 8654, graceful restart
// RFC 4724 + N-bit RFC 8538, four-octet AS RFC 6793, add-path RFC 7911), extended optional
// parameters length RFC 9072. Pure encode/decode: validating the peer's OPEN against config and
// negotiating the session is the session layer's (session/negotiate.ts), done there once.
import type { AddPathFamily, BgpError, Capabilities, GracefulRestartCapability, OpenMessage } from '../types.js';
import { ipv4Text, parseIpv4 } from './addr.js';
import {
  HDR_BAD_LENGTH,
  headerError,
  OPEN_BAD_BGP_ID,
  OPEN_BAD_PEER_AS,
  OPEN_UNACCEPTABLE_HOLD_TIME,
  OPEN_UNSPECIFIC,
  OPEN_UNSUPPORTED_OPT_PARAM,
  OPEN_UNSUPPORTED_VERSION,
  openError,
  u16Bytes,
} from './errors.js';
import { HEADER_LEN } from './header.js';
import { Reader, ShortRead } from './reader.js';
import { Writer } from './writer.js';

export const BGP_VERSION = 4;
export const AS_TRANS = 23456;

export const CAP_MULTIPROTOCOL = 1;
export const CAP_ROUTE_REFRESH = 2;
export const CAP_EXTENDED_MESSAGE = 6;
export const CAP_GRACEFUL_RESTART = 64;
export const CAP_FOUR_OCTET_AS = 65;
export const CAP_ADD_PATH = 69;
export const CAP_ENHANCED_ROUTE_REFRESH = 70;

const PARAM_CAPABILITIES = 2;
const PARAM_EXTENDED_LENGTH = 255; // RFC 9072 marker in the Non-Ext OP Type position

export type OpenResult = { ok: true; message: OpenMessage } | { ok: false; error: BgpError };

export function emptyCapabilities(): Capabilities {
  return { multiprotocol: [], routeRefresh: false, enhancedRouteRefresh: false, extendedMessage: false, unknown: [] };
}

class CapabilityError extends Error {}

function decodeCapability(code: number, v: Reader, caps: Capabilities): void {
  const len = v.remaining;
  const exact = (n: number): void => {
    if (len !== n) throw new CapabilityError(`capability ${code} length ${len}, expected ${n}`);
  };
  switch (code) {
    case CAP_MULTIPROTOCOL: {
      exact(4);
      const afi = v.u16();
      v.skip(1); // reserved
      caps.multiprotocol.push({ afi, safi: v.u8() });
      return;
    }
    case CAP_ROUTE_REFRESH:
      exact(0);
      caps.routeRefresh = true;
      return;
    case CAP_ENHANCED_ROUTE_REFRESH:
      exact(0);
      caps.enhancedRouteRefresh = true;
      return;
    case CAP_EXTENDED_MESSAGE:
      exact(0);
      caps.extendedMessage = true;
      return;
    case CAP_FOUR_OCTET_AS:
      exact(4);
      caps.fourOctetAs = v.u32();
      return;
    case CAP_GRACEFUL_RESTART: {
      if (len < 2 || (len - 2) % 4 !== 0) throw new CapabilityError(`graceful restart length ${len}`);
      const fl = v.u16();
      const gr: GracefulRestartCapability = {
        restartState: (fl & 0x8000) !== 0,
        notification: (fl & 0x4000) !== 0,
        restartTime: fl & 0x0fff,
        families: [],
      };
      while (v.remaining > 0) {
        const afi = v.u16();
        const safi = v.u8();
        gr.families.push({ afi, safi, forwardingPreserved: (v.u8() & 0x80) !== 0 });
      }
      caps.gracefulRestart = gr;
      return;
    }
    case CAP_ADD_PATH: {
      if (len % 4 !== 0) throw new CapabilityError(`add-path length ${len}`);
      const list: AddPathFamily[] = caps.addPath ?? [];
      while (v.remaining > 0) {
        const afi = v.u16();
        const safi = v.u8();
        const mode = v.u8();
        if (mode < 1 || mode > 3) throw new CapabilityError(`add-path send/receive ${mode}`);
        list.push({ afi, safi, mode: mode as 1 | 2 | 3 });
      }
      caps.addPath = list;
      return;
    }
    default:
      caps.unknown.push({ code, value: v.bytes(len).slice() });
  }
}

/** Decode an OPEN frame (header included). Header marker/length were checked by the caller. */
export function decodeOpen(frame: Uint8Array): OpenResult {
  const r = new Reader(frame, HEADER_LEN);
  try {
    const version = r.u8();
    if (version !== BGP_VERSION) {
      return {
        ok: false,
        error: openError(OPEN_UNSUPPORTED_VERSION, `version ${version} unsupported`, u16Bytes(BGP_VERSION)),
      };
    }
    const myAs = r.u16();
    const holdTime = r.u16();
    const bgpIdBytes = r.bytes(4);
    const bgpId = ipv4Text(bgpIdBytes, 0);
    let optLen = r.u8();
    let wide = false;
    if (optLen === 255 && r.remaining > 0 && frame[r.pos] === PARAM_EXTENDED_LENGTH) {
      r.skip(1);
      optLen = r.u16();
      wide = true;
    }
    if (optLen !== r.remaining) {
      return {
        ok: false,
        error: headerError(
          HDR_BAD_LENGTH,
          `optional parameters length ${optLen} but ${r.remaining} octets follow`,
          frame.slice(16, 18),
        ),
      };
    }
    const caps = emptyCapabilities();
    while (r.remaining > 0) {
      const type = r.u8();
      const plen = wide ? r.u16() : r.u8();
      const p = r.sub(plen);
      if (type !== PARAM_CAPABILITIES) {
        return { ok: false, error: openError(OPEN_UNSUPPORTED_OPT_PARAM, `optional parameter ${type} unsupported`) };
      }
      while (p.remaining > 0) {
        const code = p.u8();
        const clen = p.u8();
        decodeCapability(code, p.sub(clen), caps);
      }
    }
    if (myAs === 0 || caps.fourOctetAs === 0) {
      return { ok: false, error: openError(OPEN_BAD_PEER_AS, 'peer AS 0') };
    }
    if (holdTime === 1 || holdTime === 2) {
      return { ok: false, error: openError(OPEN_UNACCEPTABLE_HOLD_TIME, `hold time ${holdTime} s`) };
    }
    // RFC 6286 §2.1: any non-zero 32-bit value is a valid BGP Identifier.
    if (bgpId === '0.0.0.0') return { ok: false, error: openError(OPEN_BAD_BGP_ID, 'BGP identifier 0') };
    return { ok: true, message: { type: 'open', version, myAs, holdTime, bgpId, capabilities: caps } };
  } catch (e) {
    if (e instanceof CapabilityError) return { ok: false, error: openError(OPEN_UNSPECIFIC, e.message) };
    if (e instanceof ShortRead) {
      return { ok: false, error: openError(OPEN_UNSPECIFIC, `optional parameters truncated (${e.message})`) };
    }
    throw e;
  }
}

/** Capabilities in the order BIRD 2 writes them, so its captures re-encode byte for byte. */
function encodeCapabilities(w: Writer, c: Capabilities): void {
  for (const mp of c.multiprotocol) w.u8(CAP_MULTIPROTOCOL).u8(4).u16(mp.afi).u8(0).u8(mp.safi);
  if (c.routeRefresh) w.u8(CAP_ROUTE_REFRESH).u8(0);
  if (c.extendedMessage) w.u8(CAP_EXTENDED_MESSAGE).u8(0);
  if (c.gracefulRestart) {
    const gr = c.gracefulRestart;
    w.u8(CAP_GRACEFUL_RESTART);
    const f = w.fork(1);
    w.u16((gr.restartState ? 0x8000 : 0) | (gr.notification ? 0x4000 : 0) | (gr.restartTime & 0x0fff));
    for (const fam of gr.families) w.u16(fam.afi).u8(fam.safi).u8(fam.forwardingPreserved ? 0x80 : 0);
    w.join(f);
  }
  if (c.fourOctetAs !== undefined) w.u8(CAP_FOUR_OCTET_AS).u8(4).u32(c.fourOctetAs);
  if (c.addPath && c.addPath.length > 0) {
    w.u8(CAP_ADD_PATH);
    const f = w.fork(1);
    for (const a of c.addPath) w.u16(a.afi).u8(a.safi).u8(a.mode);
    w.join(f);
  }
  if (c.enhancedRouteRefresh) w.u8(CAP_ENHANCED_ROUTE_REFRESH).u8(0);
  for (const u of c.unknown) {
    w.u8(u.code);
    const f = w.fork(1);
    w.bytes(u.value);
    w.join(f);
  }
}

const idBytes = new Uint8Array(4);

/** Write the OPEN body. Capabilities go in one optional parameter; RFC 9072 form when > 255 octets. */
export function encodeOpen(w: Writer, m: OpenMessage): void {
  if (!parseIpv4(m.bgpId, idBytes, 0)) throw new RangeError(`BGP identifier ${m.bgpId} is not dotted-quad`);
  w.u8(m.version).u16(m.myAs).u16(m.holdTime).bytes(idBytes);
  const cw = new Writer(256);
  encodeCapabilities(cw, m.capabilities);
  const caps = cw.finish();
  if (caps.length === 0) {
    w.u8(0);
  } else if (caps.length + 2 <= 255) {
    w.u8(caps.length + 2).u8(PARAM_CAPABILITIES).u8(caps.length).bytes(caps);
  } else {
    w.u8(255).u8(PARAM_EXTENDED_LENGTH).u16(caps.length + 3).u8(PARAM_CAPABILITIES).u16(caps.length).bytes(caps);
  }
}
