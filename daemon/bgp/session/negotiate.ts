// OPEN building and validation, capability negotiation into a SessionContext: the daemon's one
// negotiation (the codec, wire/open.ts, only encodes and decodes).
// RFC 4271 §6.2 (OPEN errors), RFC 5492 (capabilities), RFC 6793 (four-octet AS, AS_TRANS),
// RFC 6286 (BGP identifier), RFC 4760 (multiprotocol), RFC 7911 (add-path), RFC 4724 (GR),
// RFC 2918/7313 (route refresh), RFC 8654 (extended message).
import { familyKey, type Capabilities, type FamilyKey, type GracefulRestartCapability, type OpenMessage, type SessionContext, type BgpError } from '../types.js';
import {
  AS_TRANS,
  BGP_VERSION,
  OPEN_BAD_BGP_ID,
  OPEN_BAD_PEER_AS,
  OPEN_UNACCEPTABLE_HOLD_TIME,
  OPEN_UNSUPPORTED_CAPABILITY,
  OPEN_UNSUPPORTED_VERSION,
  openError as openBgpError,
} from '../wire/index.js';
import type { SessionConfig } from './config.js';

/** What both sides agreed on when the session came up. */
export interface NegotiatedSession {
  context: SessionContext;
  /** Families both sides announced (IPv4 unicast implied when the peer sends no MP capability). */
  families: FamilyKey[];
  holdTime: number;
  /** A third of the hold time (0 when the hold time is 0: no keepalives). */
  keepaliveTime: number;
  peerAs: number;
  peerId: string;
  routeRefresh: boolean;
  enhancedRouteRefresh: boolean;
  /** The peer's GR capability, if it sent one (we act as helper for its families). */
  peerGracefulRestart?: GracefulRestartCapability;
  /** Ours, if we sent one. */
  localGracefulRestart?: GracefulRestartCapability;
  peerOpen: OpenMessage;
}

export type OpenCheck = { ok: true; negotiated: NegotiatedSession } | { ok: false; error: BgpError };

/** The OPEN we send, from config. */
export function buildOpen(cfg: SessionConfig): OpenMessage {
  const capabilities: Capabilities = {
    multiprotocol: cfg.families.map((f) => ({ afi: f.afi, safi: f.safi })),
    routeRefresh: cfg.routeRefresh,
    enhancedRouteRefresh: cfg.enhancedRouteRefresh,
    extendedMessage: cfg.extendedMessage,
    unknown: [],
  };
  if (cfg.fourOctetAs) capabilities.fourOctetAs = cfg.localAs;
  if (cfg.gracefulRestart) capabilities.gracefulRestart = cfg.gracefulRestart;
  if (cfg.addPath && cfg.addPath.length > 0) capabilities.addPath = cfg.addPath;
  return {
    type: 'open',
    version: BGP_VERSION,
    myAs: cfg.localAs > 0xffff ? AS_TRANS : cfg.localAs,
    holdTime: cfg.holdTime,
    bgpId: cfg.localId,
    capabilities,
  };
}

function openError(subcode: number, reason: string, data?: Uint8Array): OpenCheck {
  return { ok: false, error: openBgpError(subcode, reason, data) };
}

/** RFC 5492 §3: the data of an Unsupported Capability NOTIFICATION lists the capabilities, TLV-encoded. */
function mpCapabilityTlvs(families: { afi: number; safi: number }[]): Uint8Array {
  const out = new Uint8Array(families.length * 6);
  families.forEach((f, i) => {
    const o = i * 6;
    out[o] = 1; // capability code: multiprotocol
    out[o + 1] = 4;
    out[o + 2] = f.afi >> 8;
    out[o + 3] = f.afi & 0xff;
    out[o + 4] = 0;
    out[o + 5] = f.safi;
  });
  return out;
}

/** Validate the peer's OPEN against config and negotiate the session (RFC 4271 §6.2). */
export function negotiate(cfg: SessionConfig, open: OpenMessage): OpenCheck {
  if (open.version !== BGP_VERSION) {
    // Data: the largest version we support, two octets.
    return openError(OPEN_UNSUPPORTED_VERSION, `unsupported version ${open.version}`, Uint8Array.of(0, BGP_VERSION));
  }
  const caps = open.capabilities;
  const fourOctet = cfg.fourOctetAs && caps.fourOctetAs !== undefined;
  // RFC 6793 §4.1: with the capability, the real AS is in the capability; My AS may be AS_TRANS.
  const peerAs = caps.fourOctetAs !== undefined ? caps.fourOctetAs : open.myAs;
  if (peerAs !== cfg.peerAs) {
    return openError(OPEN_BAD_PEER_AS, `peer AS ${peerAs} (My AS ${open.myAs}), configured ${cfg.peerAs}`);
  }
  // RFC 6793 §4.1 says My AS SHOULD be AS_TRANS for a four-octet AS; a peer that puts something
  // else there is tolerated (BIRD and FRR do the same): the capability is authoritative.
  if (open.holdTime === 1 || open.holdTime === 2) {
    return openError(OPEN_UNACCEPTABLE_HOLD_TIME, `unacceptable hold time ${open.holdTime}`);
  }
  const peerType = peerAs === cfg.localAs ? 'ibgp' : 'ebgp';
  // RFC 6286 §2.2: zero is invalid; equal to ours is invalid only for an internal peer.
  if (open.bgpId === '0.0.0.0' || (peerType === 'ibgp' && open.bgpId === cfg.localId)) {
    return openError(OPEN_BAD_BGP_ID, `bad BGP identifier ${open.bgpId}`);
  }

  // RFC 4760 §8: a peer without the multiprotocol capability speaks IPv4 unicast only.
  const peerFamilies = caps.multiprotocol.length > 0 ? caps.multiprotocol : [{ afi: 1, safi: 1 }];
  const peerSet = new Set(peerFamilies.map((f) => familyKey(f.afi, f.safi)));
  const families = cfg.families.map((f) => familyKey(f.afi, f.safi)).filter((k) => peerSet.has(k));
  if (families.length === 0) {
    return openError(
      OPEN_UNSUPPORTED_CAPABILITY,
      `no common address family (peer offers ${[...peerSet].join(',')})`,
      mpCapabilityTlvs(cfg.families),
    );
  }
  const familySet = new Set(families);

  // RFC 7911 §4: we receive path ids where we can receive and the peer can send, and vice versa.
  const addPathReceive = new Set<FamilyKey>();
  const addPathSend = new Set<FamilyKey>();
  for (const ours of cfg.addPath ?? []) {
    const key = familyKey(ours.afi, ours.safi);
    if (!familySet.has(key)) continue;
    const theirs = caps.addPath?.find((p) => p.afi === ours.afi && p.safi === ours.safi);
    if (!theirs) continue;
    if (ours.mode & 1 && theirs.mode & 2) addPathReceive.add(key);
    if (ours.mode & 2 && theirs.mode & 1) addPathSend.add(key);
  }

  const holdTime = Math.min(cfg.holdTime, open.holdTime);
  const negotiated: NegotiatedSession = {
    context: {
      fourOctetAs: fourOctet,
      extendedMessage: cfg.extendedMessage && caps.extendedMessage,
      addPathReceive,
      addPathSend,
      peerType,
    },
    families,
    holdTime,
    keepaliveTime: Math.floor(holdTime / 3),
    peerAs,
    peerId: open.bgpId,
    routeRefresh: cfg.routeRefresh && (caps.routeRefresh || caps.enhancedRouteRefresh),
    enhancedRouteRefresh: cfg.enhancedRouteRefresh && caps.enhancedRouteRefresh,
    peerOpen: open,
  };
  if (caps.gracefulRestart) negotiated.peerGracefulRestart = caps.gracefulRestart;
  if (cfg.gracefulRestart) negotiated.localGracefulRestart = cfg.gracefulRestart;
  return { ok: true, negotiated };
}

/** The context to decode with before the OPEN exchange is complete (OPEN, NOTIFICATION, KEEPALIVE). */
export function preOpenContext(cfg: SessionConfig): SessionContext {
  return {
    fourOctetAs: false,
    extendedMessage: false,
    addPathReceive: new Set(),
    addPathSend: new Set(),
    peerType: cfg.localAs === cfg.peerAs ? 'ibgp' : 'ebgp',
  };
}
