// Flow events of the datapath (bpf/include/nrd_events.h): the decoder of the 104-byte
// struct nrd_flow_event records of the nrd_events ring buffer, the filters of `nrdctl monitor`
// (GET /v1/monitor), the hub that fans decoded events out to subscribers on the main thread, and
// the pump that drains the ring buffer in the datapath worker.
//
// Why a pump on a timer and not a blocking poll: the worker serves one request at a time on its
// event loop, so a blocking ring_buffer__poll would hold up map writes and status calls. The pump
// consumes what is there (timeout 0) every EVENT_BATCH_MS and posts one batch to the main thread;
// records that arrive meanwhile wait in the ring buffer (1 MiB, ~9.5k events), and a full ring
// loses events in BPF, never packets (nrd_ev_stats "lost").
import { join } from 'node:path';
import { EVENTS_MAP, EVENT_STATS_MAP, EventStat, EventType, FLOW_EVENT_SIZE, type FlowEvent as RawFlowEvent, Translation, decodeFlowEvent as decodeRaw } from './events-layout.js';
import { ForwardReason } from './policy-layout.js';
import { closeFd, objGet, ringBufferOpen } from './libbpf.js';
import { PerCpuMap, counterCodec, sumCounters, u32Codec } from './maps.js';
import { DropReason } from './endpoint-layout.js';

export { FLOW_EVENT_SIZE, EventType };
/** How often the worker drains the ring buffer and posts a batch to the main thread. */
export const EVENT_BATCH_MS = 50;

export type EventTypeName = keyof typeof EventType;
export type Verdict = EventTypeName;

const byValue = (o: Record<string, number>): ReadonlyMap<number, string> => new Map(Object.entries(o).map(([n, v]) => [v, n]));
/** enum nrd_drop, NRD_EV_R_* and NRD_XLATE_* by value: the names the API and nrdctl show. */
const DROP_REASONS = byValue(DropReason);
const FORWARD_REASONS = byValue(ForwardReason);
const XLATE_REASONS = byValue(Translation);

/** One decoded flow event: what `nrdctl monitor -o json` prints per line. */
export interface FlowEvent {
  /** CLOCK_MONOTONIC nanoseconds (bpf_ktime_get_ns), as a decimal string (64 bits). */
  tsNs: string;
  /** Wall-clock time of the event, derived from tsNs when decoded. */
  time: string;
  type: EventTypeName | `type-${number}`;
  /** Drop reason (malformed, spoofed, policy, no_backend, …), forward reason (policy, reply, …), or translation kind (service, masquerade). */
  reason: string;
  /** The local endpoint concerned (its string id when known), null when none. */
  endpoint: string | null;
  endpointNumericId: number;
  /** Direction of the endpoint's traffic that was checked; null when none. */
  dir: 'ingress' | 'egress' | null;
  ifindex: number;
  /** 0: a frame that is not IP (src and dst empty). */
  family: 0 | 4 | 6;
  proto: number;
  /** The packet as it was before any translation. */
  src: string;
  dst: string;
  sport: number;
  dport: number;
  srcIdentity: number;
  dstIdentity: number;
  len: number;
  /** Translated: the new address and port (service: the backend; masquerade: the node's source); null otherwise. */
  translated: { addr: string; port: number } | null;
  /** The service of a service translation or a no_backend drop, by its datapath id; 0 when none. */
  serviceId: number;
  /** The backend of a service translation, by its datapath id; 0 when none. */
  backendId: number;
  /** Dropped: drops of the same flow not reported since its previous event (aggregated or rate-limited). */
  suppressed: number;
}

export class EventDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'EventDecodeError';
  }
}

/** Clock mapping: monotonic ns → wall-clock ms; the default reads both clocks now. */
export interface EventClock {
  monoNs: bigint;
  wallMs: number;
}

export function nowClock(): EventClock {
  return { monoNs: process.hrtime.bigint(), wallMs: Date.now() };
}

function reasonText(type: number, reason: number): string {
  if (type === EventType.dropped) return DROP_REASONS.get(reason) ?? `drop-${reason}`;
  if (type === EventType.forwarded) return FORWARD_REASONS.get(reason) ?? `reason-${reason}`;
  if (type === EventType.translated) return XLATE_REASONS.get(reason) ?? `xlate-${reason}`;
  return `reason-${reason}`;
}

const TYPE_NAMES = new Map<number, EventTypeName>(Object.entries(EventType).map(([n, v]) => [v, n as EventTypeName]));

/**
 * Decodes one struct nrd_flow_event. `names` maps numeric endpoint ids to string ids (the
 * datapath's endpoints; FNV of the id, see endpoints.ts). Throws EventDecodeError on a record
 * of the wrong size or an unknown address family, which only a layout mismatch can produce.
 */
export function decodeFlowEvent(b: Uint8Array, names: ReadonlyMap<number, string> = new Map(), clock: EventClock = nowClock()): FlowEvent {
  if (b.length !== FLOW_EVENT_SIZE) throw new EventDecodeError(`flow event of ${b.length} bytes, expected ${FLOW_EVENT_SIZE}`);
  let r: RawFlowEvent;
  try {
    r = decodeRaw(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
  } catch (e) {
    throw new EventDecodeError((e as Error).message);
  }
  const wall = new Date(Math.round(clock.wallMs - Number(clock.monoNs - r.tsNs) / 1e6));
  if (Number.isNaN(wall.getTime())) throw new EventDecodeError(`flow event timestamp ${r.tsNs} is out of range`);
  return {
    tsNs: r.tsNs.toString(),
    time: wall.toISOString(),
    type: TYPE_NAMES.get(r.type) ?? `type-${r.type}`,
    reason: reasonText(r.type, r.reason),
    endpoint: r.endpoint === 0 ? null : (names.get(r.endpoint) ?? String(r.endpoint)),
    endpointNumericId: r.endpoint,
    dir: r.dir === 0 ? 'ingress' : r.dir === 1 ? 'egress' : null,
    ifindex: r.ifindex,
    family: r.family,
    proto: r.proto,
    src: r.saddr,
    dst: r.daddr,
    sport: r.sport,
    dport: r.dport,
    srcIdentity: r.srcIdentity,
    dstIdentity: r.dstIdentity,
    len: r.len,
    translated: r.xaddr === '' ? null : { addr: r.xaddr, port: r.xport },
    serviceId: r.service,
    backendId: r.backend,
    suppressed: r.suppressed,
  };
}

// ---- filters ------------------------------------------------------------------------------------

export interface EventFilter {
  /** String endpoint id. */
  endpoint?: string;
  /** forwarded | dropped | translated (the verdict is the event type). */
  verdict?: Verdict;
  /** Reason (e.g. policy, spoofed, service) or event type name. */
  type?: string;
}

export class EventFilterError extends Error {
  readonly code = 'bad_filter';
  constructor(message: string) {
    super(message);
    this.name = 'EventFilterError';
  }
}

/** The filter of a query string (?endpoint=&verdict=&type=); empty values mean "any". */
export function parseEventFilter(q: URLSearchParams): EventFilter {
  const f: EventFilter = {};
  for (const k of q.keys()) if (!['endpoint', 'verdict', 'type'].includes(k)) throw new EventFilterError(`unknown monitor filter ${JSON.stringify(k)} (endpoint, verdict, type)`);
  const endpoint = q.get('endpoint');
  if (endpoint) f.endpoint = endpoint;
  const verdict = q.get('verdict');
  if (verdict) {
    if (!(verdict in EventType)) throw new EventFilterError(`unknown verdict ${JSON.stringify(verdict)} (${Object.keys(EventType).join(', ')})`);
    f.verdict = verdict as Verdict;
  }
  const type = q.get('type');
  if (type) f.type = type;
  return f;
}

export function matchesFilter(e: FlowEvent, f: EventFilter): boolean {
  if (f.endpoint !== undefined && e.endpoint !== f.endpoint) return false;
  if (f.verdict !== undefined && e.type !== f.verdict) return false;
  if (f.type !== undefined && e.reason !== f.type && e.type !== f.type) return false;
  return true;
}

// ---- hub (main thread) ---------------------------------------------------------------------------

export type EventListener = (e: FlowEvent) => void;

/** What the API needs to stream events: subscribe with a filter, get an unsubscribe function. */
export interface EventSource {
  subscribe(filter: EventFilter, cb: EventListener): () => void;
}

/**
 * Fans decoded events out to subscribers. Decoding happens once per record and only while anyone
 * listens or counts; a record that does not decode is counted, never thrown at the worker's batch.
 */
export class EventHub implements EventSource {
  private readonly subs = new Set<{ filter: EventFilter; cb: EventListener }>();
  /** Events decoded, by type; and records that did not decode. */
  readonly counts = { received: 0, undecodable: 0, byType: new Map<string, number>() };

  constructor(private readonly names: () => ReadonlyMap<number, string> = () => new Map()) {}

  get subscribers(): number {
    return this.subs.size;
  }

  subscribe(filter: EventFilter, cb: EventListener): () => void {
    const s = { filter, cb };
    this.subs.add(s);
    return () => this.subs.delete(s);
  }

  /** One batch of raw records from the worker (concatenated, FLOW_EVENT_SIZE each). */
  publishRaw(batch: Uint8Array, clock: EventClock = nowClock()): void {
    const names = this.names();
    for (let off = 0; off + FLOW_EVENT_SIZE <= batch.length; off += FLOW_EVENT_SIZE) {
      let e: FlowEvent;
      try {
        e = decodeFlowEvent(batch.subarray(off, off + FLOW_EVENT_SIZE), names, clock);
      } catch {
        this.counts.undecodable++;
        continue;
      }
      this.publish(e);
    }
  }

  publish(e: FlowEvent): void {
    this.counts.received++;
    this.counts.byType.set(e.type, (this.counts.byType.get(e.type) ?? 0) + 1);
    for (const s of [...this.subs]) {
      if (!matchesFilter(e, s.filter)) continue;
      try {
        s.cb(e);
      } catch {
        // A failing subscriber (a client gone mid-write) must not starve the others.
      }
    }
  }
}

// ---- pump (datapath worker) ----------------------------------------------------------------------

/** A consumer of the nrd_events ring buffer: the libbpf ring_buffer binding behind it. */
export interface RingReader {
  /** Consumes every available record (ring_buffer__consume / poll with timeout 0), calling onRecord. */
  consume(): number;
  close(): void;
}

export type OpenRing = (onRecord: (rec: Uint8Array) => void) => RingReader;

/**
 * Drains a ring buffer every `everyMs` and hands the records of each round, concatenated, to
 * `post`. Rounds with no record post nothing. Records of an unexpected size are skipped (counted).
 */
export class EventPump {
  private timer: NodeJS.Timeout | undefined;
  private ring: RingReader | undefined;
  private pending: Uint8Array[] = [];
  readonly counts = { records: 0, badSize: 0, batches: 0 };

  constructor(
    private readonly open: OpenRing,
    private readonly post: (batch: Uint8Array) => void,
    private readonly everyMs = EVENT_BATCH_MS,
  ) {}

  get running(): boolean {
    return this.ring !== undefined;
  }

  start(): void {
    if (this.ring) return;
    this.ring = this.open((rec) => {
      if (rec.length !== FLOW_EVENT_SIZE) {
        this.counts.badSize++;
        return;
      }
      // The record's memory belongs to the ring and is released after the callback: copy it.
      this.pending.push(Uint8Array.from(rec));
    });
    this.timer = setInterval(() => this.round(), this.everyMs);
  }

  /** One drain; public for tests. */
  round(): void {
    if (!this.ring) return;
    this.ring.consume();
    if (this.pending.length === 0) return;
    const batch = new Uint8Array(this.pending.length * FLOW_EVENT_SIZE);
    this.pending.forEach((r, i) => batch.set(r, i * FLOW_EVENT_SIZE));
    this.counts.records += this.pending.length;
    this.counts.batches++;
    this.pending = [];
    this.post(batch);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.ring?.close();
    this.ring = undefined;
    this.pending = [];
  }
}

// ---- worker side: the ring buffer and nrd_ev_stats -------------------------------------------------

/** nrd_ev_stats summed over CPUs: events written, lost to a full ring, held back by the drop-event
 *  bucket, and drops aggregated into their flow's event of the last second. */
export interface EventStats {
  emitted: bigint;
  lost: bigint;
  rateLimited: bigint;
  suppressed: bigint;
}

export type EventsStartResult = { running: true } | { running: false; reason: string };

/** Opens the pinned nrd_events ring buffer: the libbpf ring_buffer binding (registered by its module). */
export type RingOpener = (mapFd: number, onRecord: (rec: Uint8Array) => void) => RingReader;

/** libbpf's ring-buffer consumer (ring_buffer__new/__consume/__free through koffi). */
const libbpfRing: RingOpener = (mapFd, onRecord) => {
  const rb = ringBufferOpen(mapFd, onRecord);
  return { consume: () => rb.consume(), close: () => rb.free() };
};

let ringOpener: RingOpener | undefined = libbpfRing;

/** Replaces the ring-buffer binding (tests); undefined: the worker reports events as unavailable. */
export function setRingOpener(open: RingOpener | undefined): void {
  ringOpener = open;
}

/** The worker's flow-event state: one pump over <pinPath>/maps/nrd_events, and the stats reader. */
export class EventsWorker {
  private pump: EventPump | undefined;
  private ringFd: number | undefined;

  constructor(private readonly post: (batch: Uint8Array) => void) {}

  start(pinPath: string): EventsStartResult {
    if (this.pump?.running) return { running: true };
    const open = ringOpener;
    if (!open) return { running: false, reason: 'the libbpf ring-buffer binding is not available' };
    let fd: number;
    try {
      fd = objGet(join(pinPath, 'maps', EVENTS_MAP));
    } catch (e) {
      return { running: false, reason: `nrd_events not pinned: ${(e as Error).message}` };
    }
    this.ringFd = fd;
    this.pump = new EventPump((onRecord) => open(fd, onRecord), this.post);
    try {
      this.pump.start();
    } catch (e) {
      this.stop();
      return { running: false, reason: (e as Error).message };
    }
    return { running: true };
  }

  stop(): void {
    this.pump?.stop();
    this.pump = undefined;
    if (this.ringFd !== undefined) closeFd(this.ringFd);
    this.ringFd = undefined;
  }

  /** Reads nrd_ev_stats (absent before the BPF side has it: all zero). */
  stats(pinPath: string): EventStats {
    let fd: number;
    try {
      fd = objGet(join(pinPath, 'maps', EVENT_STATS_MAP));
    } catch {
      return { emitted: 0n, lost: 0n, rateLimited: 0n, suppressed: 0n };
    }
    try {
      const m = new PerCpuMap(fd, u32Codec, counterCodec);
      const sum = (i: number): bigint => sumCounters(m.get(i) ?? []).packets;
      return { emitted: sum(EventStat.emitted), lost: sum(EventStat.lost), rateLimited: sum(EventStat.rate_limited), suppressed: sum(EventStat.suppressed) };
    } finally {
      closeFd(fd);
    }
  }
}
