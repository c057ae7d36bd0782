// A BFD Control packet (RFC 5880 §4.1) for the unit tests: every field at a plain value
// (single-hop defaults, no flags, no auth) unless the test says otherwise.
import type { ControlPacket } from '../../../daemon/bfd/packet.js';

export function controlPacket(over: Partial<ControlPacket> = {}): ControlPacket {
  return {
    diag: 0,
    state: 'Down',
    poll: false,
    final: false,
    cpi: false,
    demand: false,
    multipoint: false,
    detectMult: 3,
    myDiscriminator: 0x01020304,
    yourDiscriminator: 0,
    desiredMinTx: 1_000_000,
    requiredMinRx: 300_000,
    requiredMinEchoRx: 0,
    ...over,
  };
}
