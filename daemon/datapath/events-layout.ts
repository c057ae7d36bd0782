// Layout of the flow-event records of bpf/include/nrd_events.h (ring buffer nrd_events) and of the
// event counters, shared by the daemon's reader (events.ts) and the tests; checked against the
// objects' BTF by test/unit/datapath/policy-layout.test.ts.
import { formatIpBytes } from '../lib/ip.js';
import { type StructSpec, structCodec } from './maps.js';

type Kind = 'u32' | 'u64' | 'bytes';
const fld = <N extends string, K extends Kind>(name: N, offset: number, size: number, kind: K) =>
  ({ name, offset, size, kind }) as const;

export const EVENT_STRUCTS = {
  nrd_flow_event: {
    name: 'nrd_flow_event', size: 104,
    fields: [
      fld('ts_ns', 0, 8, 'u64'), fld('endpoint', 8, 4, 'u32'), fld('ifindex', 12, 4, 'u32'), fld('src_identity', 16, 4, 'u32'),
      fld('dst_identity', 20, 4, 'u32'), fld('len', 24, 4, 'u32'), fld('type', 28, 1, 'bytes'), fld('reason', 29, 1, 'bytes'),
      fld('dir', 30, 1, 'bytes'), fld('family', 31, 1, 'bytes'), fld('proto', 32, 1, 'bytes'), fld('pad0', 33, 1, 'bytes'),
      fld('sport_be', 34, 2, 'bytes'), fld('dport_be', 36, 2, 'bytes'), fld('xport_be', 38, 2, 'bytes'),
      fld('saddr', 40, 16, 'bytes'), fld('daddr', 56, 16, 'bytes'), fld('xaddr', 72, 16, 'bytes'),
      fld('service', 88, 4, 'u32'), fld('backend', 92, 4, 'u32'), fld('suppressed', 96, 4, 'u32'), fld('pad2', 100, 4, 'u32'),
    ],
  },
  nrd_ev_bucket: { name: 'nrd_ev_bucket', size: 16, fields: [fld('tokens_ns', 0, 8, 'u64'), fld('last_ns', 8, 8, 'u64')] },
  nrd_flow_seen_value: {
    name: 'nrd_flow_seen_value', size: 16, fields: [fld('verdict', 0, 4, 'u32'), fld('suppressed', 4, 4, 'u32'), fld('last_ns', 8, 8, 'u64')],
  },
} as const satisfies Record<string, StructSpec>;

export const EVENTS_MAP = 'nrd_events';
/** Per-CPU array of struct nrd_counter, indexed by EventStat. */
export const EVENT_STATS_MAP = 'nrd_ev_stats';
export const EventStat = { emitted: 0, lost: 1, rate_limited: 2, suppressed: 3 } as const;
/** Maps of nrd_events.h the daemon shares between objects (pinned by name). */
export const EVENT_MAP_NAMES = ['nrd_events', 'nrd_flow_seen', 'nrd_ev_stats', 'nrd_ev_bucket'] as const;

export const EventType = { forwarded: 1, dropped: 2, translated: 3 } as const;
/** reason of a translated event. */
export const Translation = { service: 1, masquerade: 2 } as const;
/** dir when no endpoint direction applies. */
export const EV_DIR_NONE = 0xff;

export interface FlowEvent {
  tsNs: bigint;
  endpoint: number;
  ifindex: number;
  srcIdentity: number;
  dstIdentity: number;
  len: number;
  type: number;
  /** Dropped: DropReason; forwarded: ForwardReason (policy-layout.ts); translated: Translation. */
  reason: number;
  dir: number;
  /** 0: a frame that is not IP (addresses '' and ports 0). */
  family: 0 | 4 | 6;
  proto: number;
  sport: number;
  dport: number;
  saddr: string;
  daddr: string;
  /** Translated: the new address and port ('' and 0 otherwise). */
  xaddr: string;
  xport: number;
  service: number;
  backend: number;
  suppressed: number;
}

const raw = structCodec(EVENT_STRUCTS.nrd_flow_event);
export const FLOW_EVENT_SIZE = EVENT_STRUCTS.nrd_flow_event.size;

const isZero = (b: Buffer): boolean => b.every((x) => x === 0);

/** Decodes one ring-buffer record; throws RangeError on a wrong size or family (a layout mismatch). */
export function decodeFlowEvent(b: Buffer): FlowEvent {
  if (b.length !== FLOW_EVENT_SIZE) throw new RangeError(`flow event of ${b.length} bytes, want ${FLOW_EVENT_SIZE}`);
  const r = raw.decode(b);
  const family = r.family[0];
  if (family !== 0 && family !== 4 && family !== 6) throw new RangeError(`flow event family ${String(family)}`);
  const n = family === 4 ? 4 : 16;
  const addr = (a: Buffer): string => (family === 0 ? '' : formatIpBytes(a.subarray(0, n)));
  return {
    tsNs: r.ts_ns, endpoint: r.endpoint, ifindex: r.ifindex, srcIdentity: r.src_identity, dstIdentity: r.dst_identity, len: r.len,
    type: r.type[0]!, reason: r.reason[0]!, dir: r.dir[0]!, family, proto: r.proto[0]!,
    sport: r.sport_be.readUInt16BE(0), dport: r.dport_be.readUInt16BE(0),
    saddr: addr(r.saddr), daddr: addr(r.daddr),
    xaddr: family === 0 || isZero(r.xaddr) ? '' : addr(r.xaddr), xport: r.xport_be.readUInt16BE(0),
    service: r.service, backend: r.backend, suppressed: r.suppressed,
  };
}
