// Benchmark of nrd_endpoint's same-node forward path (source check, endpoint lookup, L2 rewrite,
// TTL - 1 with checksum fix, bpf_redirect_peer verdict) per packet, BPF_PROG_TEST_RUN measured
// by the kernel, against the nrd_tc counter program (one per-CPU hash update) on the same frame
// in the same run. Prints ns/packet for both and the ratio. Root.
//
// A test run repeats the program on the same skb, so every repeat sees the previous one's TTL:
// a frame starting at TTL 255 stays on the forward path for REPEAT (< 254) runs per call.
//
// Then the cost of forwarded flow events (cfg_flags NRD_DP_F_FWD_EVENTS, bpf/include/nrd_events.h):
// the same program loaded with the bit and without, on an established flow (REPEAT runs of one
// packet) and on new flows (one run per call, a fresh source port each: the first packet, where
// the event is decided and written), in ROUNDS alternating rounds; ratios on/off of the medians.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { progTestRun, ringBufferOpen } from '../../daemon/datapath/libbpf.js';
import { TypedMap, u32Codec } from '../../daemon/datapath/maps.js';
import { loadObject } from '../../daemon/datapath/objects.js';
import {
  NRD_DP_F_ARP_ANY,
  NRD_DP_F_FWD_EVENTS,
  NRD_DP_F_IPV6,
  NRD_EP_IF_F_IP4,
  epIfCodec,
  epKeyCodec,
  epValueCodec,
  macKnob,
} from '../../daemon/datapath/endpoint-layout.js';

const objectDir = fileURLToPath(new URL('../../../bpf/', import.meta.url));
const RESULTS = fileURLToPath(new URL('../../../bench/results/endpoint-prog.json', import.meta.url));
const REPEAT = 250;
const CALLS = 400;
const NEW_CALLS = 3000;
const ROUNDS = 3;
const TC_ACT_REDIRECT = 7;
const LO_IFINDEX = 1; // the device skb test runs see

function frame(sport = 0): Buffer {
  const f = Buffer.alloc(64);
  Buffer.from('020000000106', 'hex').copy(f, 0); // to the gateway MAC (not checked)
  Buffer.from('020000000105', 'hex').copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(50, 16);
  f[22] = 255;
  f[23] = 17;
  Buffer.from([10, 244, 1, 5]).copy(f, 26);
  Buffer.from([10, 244, 1, 6]).copy(f, 30);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += f.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  f.writeUInt16BE(~sum & 0xffff, 24);
  f.writeUInt16BE(sport, 34); // UDP source port (the header lies in the frame's zero padding)
  return f;
}

/** Median over CALLS calls of the kernel's mean ns per run. */
function measure(prog: number, data: Buffer, want: number): number {
  const ns: number[] = [];
  for (let i = 0; i < CALLS; i++) {
    const r = progTestRun(prog, { data, repeat: REPEAT });
    if (r.retval !== want) throw new Error(`unexpected verdict ${r.retval}, want ${want}`);
    ns.push(r.durationNs);
  }
  ns.sort((a, b) => a - b);
  return ns[ns.length >> 1];
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

/** nrd_endpoint with forwarded events on or off, its maps seeded: A (the test device) and B. */
function loadEp(events: boolean) {
  const o = loadObject({
    path: join(objectDir, 'nrd_endpoint.bpf.o'),
    knobs: { gw_mac: macKnob(Buffer.from('02aabbccdd01', 'hex')), cfg_flags: NRD_DP_F_IPV6 | NRD_DP_F_ARP_ANY | (events ? NRD_DP_F_FWD_EVENTS : 0) },
  });
  new TypedMap(o.mapFd('nrd_ep_ifs'), u32Codec, epIfCodec).set(LO_IFINDEX, {
    id: 5, flags: NRD_EP_IF_F_IP4, ip4: Buffer.from([10, 244, 1, 5]), ip6: Buffer.alloc(16),
  });
  new TypedMap(o.mapFd('nrd_endpoints'), epKeyCodec, epValueCodec).set(
    { family: 4, addr: Buffer.from([10, 244, 1, 6]) },
    { ifindex: 42, id: 6, mac: Buffer.from('020000000106', 'hex'), flags: 0 },
  );
  return o;
}

let sport = 1024;
/** Median kernel ns of the first packet of NEW_CALLS new flows (the ring buffer drained as the daemon would). */
function newFlows(prog: number, drain: () => void): number {
  const ns: number[] = [];
  for (let i = 0; i < NEW_CALLS; i++) {
    sport = sport >= 65535 ? 1024 : sport + 1;
    const r = progTestRun(prog, { data: frame(sport) });
    if (r.retval !== TC_ACT_REDIRECT) throw new Error(`new flow: verdict ${r.retval}`);
    ns.push(r.durationNs);
    if (i % 500 === 0) drain();
  }
  drain();
  return median(ns);
}

const ep = loadEp(true);
const off = loadEp(false);
const tc = loadObject({ path: join(objectDir, 'nrd_tc.bpf.o') });
let records = 0;
const ring = ringBufferOpen(ep.mapFd('nrd_events'), () => records++);
try {
  const pkt = frame();
  const fwd = ep.programFd('nrd_ep_ingress');
  const base = tc.programFd('nrd_tc_ingress');
  measure(fwd, pkt, TC_ACT_REDIRECT); // warm-up: maps, caches
  const baseline = measure(base, pkt, 0xffffffff);
  const forward = measure(fwd, pkt, TC_ACT_REDIRECT);
  console.log(`nrd_tc counter (baseline):       ${baseline} ns/packet`);
  console.log(`nrd_endpoint same-node forward:  ${forward} ns/packet  ratio to baseline ${(forward / baseline).toFixed(2)}`);

  const progs = { on: ep.programFd('nrd_ep_ingress'), off: off.programFd('nrd_ep_ingress') };
  const drain = (): void => void ring.consume();
  const samples = { on: { est: [] as number[], fresh: [] as number[] }, off: { est: [] as number[], fresh: [] as number[] } };
  newFlows(progs.on, drain); // warm-up
  newFlows(progs.off, drain);
  for (let round = 0; round < ROUNDS; round++) {
    for (const k of round % 2 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
      samples[k].est.push(measure(progs[k], frame(sport), TC_ACT_REDIRECT));
      samples[k].fresh.push(newFlows(progs[k], drain));
    }
  }
  const m = { on: { est: median(samples.on.est), fresh: median(samples.on.fresh) }, off: { est: median(samples.off.est), fresh: median(samples.off.fresh) } };
  console.log(`\nforwarded flow events      established ns/packet      first packet of a flow ns`);
  console.log(`on                         ${String(m.on.est).padStart(6)}                     ${String(m.on.fresh).padStart(6)}`);
  console.log(`off                        ${String(m.off.est).padStart(6)}                     ${String(m.off.fresh).padStart(6)}`);
  console.log(`ratio on/off               ${(m.on.est / m.off.est).toFixed(3).padStart(6)}                     ${(m.on.fresh / m.off.fresh).toFixed(3).padStart(6)}`);
  console.log(`(${records} events read from the ring buffer; rounds: ${JSON.stringify(samples)})`);
  console.log('NOTE: a shared, noisy machine (2 cores, other jobs running); the same-run ratios are the figures to read.');
  mkdirSync(join(RESULTS, '..'), { recursive: true });
  writeFileSync(RESULTS, JSON.stringify({
    bench: 'datapath/endpoint-prog',
    date: new Date().toISOString(),
    machine: { kernel: release(), cpus: cpus().length, quiet: false, note: 'shared machine, other jobs running' },
    params: { repeat: REPEAT, calls: CALLS, newFlowCalls: NEW_CALLS, rounds: ROUNDS, packet: 'IPv4 UDP, local endpoint to local endpoint, no policy' },
    method: {
      program: 'nrd_ep_ingress, BPF_PROG_TEST_RUN, kernel-timed ns per run; baseline nrd_tc (one per-CPU hash update)',
      forwardedEvents: 'the same object loaded with cfg_flags NRD_DP_F_FWD_EVENTS and without; established: repeat on one flow; first packet: one run per call, a fresh source port each (two events per flow: egress and ingress check); rounds alternate the order',
    },
    medians: { baselineNs: baseline, forwardNs: forward, eventsOn: m.on, eventsOff: m.off },
    ratios: { 'forward/baseline': forward / baseline, 'events on/off established': m.on.est / m.off.est, 'events on/off first packet': m.on.fresh / m.off.fresh },
    samples,
  }, null, 2) + '\n');
  console.log(`results: ${RESULTS}`);
} finally {
  ring.free();
  ep.close();
  off.close();
  tc.close();
}
