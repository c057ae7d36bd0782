// A struct nrd_flow_event record built field by field (bpf/include/nrd_events.h), shared by the
// event decoder tests and the monitor API tests.
import { FLOW_EVENT_SIZE } from '../../../daemon/datapath/events.js';

/** A dropped TCP SYN 10.244.2.2:40000 -> 10.244.1.2:5432, ingress of endpoint 0xaabbccdd, reason 5 (policy), 3 earlier drops suppressed. */
export function droppedRecord(over: { type?: number; reason?: number; endpoint?: number; family?: number } = {}): Uint8Array {
  const b = Buffer.alloc(FLOW_EVENT_SIZE);
  b.writeBigUInt64LE(5_000_000_000n, 0); // ts_ns
  b.writeUInt32LE(over.endpoint ?? 0xaabbccdd, 8); // endpoint
  b.writeUInt32LE(7, 12); // ifindex
  b.writeUInt32LE(301, 16); // src_identity
  b.writeUInt32LE(300, 20); // dst_identity
  b.writeUInt32LE(74, 24); // len
  b[28] = over.type ?? 2; // type: dropped
  b[29] = over.reason ?? 5; // reason: NRD_DROP_POLICY
  b[30] = 0; // dir: ingress
  b[31] = over.family ?? 4; // family
  b[32] = 6; // proto tcp
  b.writeUInt16BE(40000, 34); // sport_be
  b.writeUInt16BE(5432, 36); // dport_be
  Buffer.from([10, 244, 2, 2]).copy(b, 40); // saddr
  Buffer.from([10, 244, 1, 2]).copy(b, 56); // daddr
  b.writeUInt32LE(3, 96); // suppressed
  return b;
}
