// BPF_PROG_TEST_RUN of the flow events (bpf/include/nrd_events.h) of every drop site and every
// translation: each run's records are read from the nrd_events ring buffer the way the daemon
// reads them (libbpf ring_buffer__consume) and must be exactly the expected events. Drops: spoofed,
// unknown_endpoint, malformed (nrd_endpoint), no_backend (a service without backend, nrd_lb),
// no_route (a blackhole route, in a namespace of its own), nat_exhausted (nrd_netdev), prefilter
// (XDP); policy has its own test (policy-prog.test.ts). Translations: service DNAT and masquerade,
// first packet of a connection only. Rate limiting: identical drops aggregate into one event per
// flow and second (the rest counted as suppressed, and reported by the flow's next event), and a
// flood of distinct dropped flows is held to the token bucket (the rest counted as rate limited).
// Root (CAP_BPF).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { progTestRun, ringBufferOpen } from '../../../daemon/datapath/libbpf.js';
import {
  DropReason, NRD_DP_F_ARP_ANY, NRD_DP_F_FWD_EVENTS, NRD_DP_F_IPV6, NRD_DP_F_MASQ, NRD_EP_IF_F_IP4, NRD_EP_IF_F_IP6, NonatKind, epIfCodec, epKeyCodec, epValueCodec,
  ip4Knob, ip6Knob, macKnob, nat4EntryCodec, nat4KeyCodec, nonatValueCodec, NatDir, CtState,
} from '../../../daemon/datapath/endpoint-layout.js';
import { EV_DIR_NONE, EventStat, EventType, type FlowEvent, Translation, decodeFlowEvent } from '../../../daemon/datapath/events-layout.js';
import { PerCpuMap, TypedMap, counterCodec, denyValueCodec, lpm4KeyCodec, parseCidr, sumCounters, u32Codec } from '../../../daemon/datapath/maps.js';
import { type LoadedObject, loadObject } from '../../../daemon/datapath/objects.js';
import { backendCodec, revNatCodec, svcKeyCodec, svcValueCodec } from '../../../daemon/datapath/services-layout.js';
import { writeTable } from '../../../daemon/datapath/services.js';
import { BackendState, SVC_F_MAGLEV, SVC_F_NO_BACKEND } from '../../../daemon/services/plan.js';
import { ipcacheValueCodec } from '../../../daemon/datapath/policy-layout.js';
import { Cleanup, addNetns, nsExec, objectDir, run } from './env.js';
import { arpRequest, ipv4Packet, ipv6Packet, mac, tcpSegment, udpDatagram } from './packets.js';
import type { TestRunCommand, TestRunReply } from './test-run-agent.js';

const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;
const TCX_NEXT = 0xffffffff;
const XDP_DROP = 1;
const LO = 1; // the device skb test runs see
const M = 16381;
const GW_MAC = mac('02:aa:bb:cc:dd:01');
const EP_KNOBS = { gw_mac: macKnob(GW_MAC), cfg_flags: NRD_DP_F_IPV6 | NRD_DP_F_ARP_ANY | NRD_DP_F_FWD_EVENTS };
const A = { ifindex: LO, mac: mac('02:00:00:00:01:05'), ip4: '10.244.1.5', id: 5, identity: 300 };
const B = { ifindex: 42, mac: mac('02:00:00:00:01:06'), ip4: '10.244.1.6', id: 6, identity: 301 };
const VIP = '10.96.0.10';
const SVC = { web: 11, empty: 12 };
const BACKEND_B = 21;
const fromA = { src: A.mac, dst: GW_MAC };
const ip = (s: string): Buffer => parseCidr(s).addr;
const json = (x: unknown): string => JSON.stringify(x, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));

/** Runs one packet and returns the verdict and the events it left in the ring buffer. */
function runWithEvents(o: LoadedObject, prog: string, data: Buffer, repeat?: number): { retval: number; events: FlowEvent[] } {
  const events: FlowEvent[] = [];
  const ring = ringBufferOpen(o.mapFd('nrd_events'), (r) => events.push(decodeFlowEvent(Buffer.from(r))));
  try {
    ring.consume();
    events.length = 0;
    const r = progTestRun(o.programFd(prog), { data, ...(repeat ? { repeat } : {}) });
    ring.consume();
    return { retval: r.retval, events };
  } finally {
    ring.free();
  }
}

function evStats(o: LoadedObject): Record<keyof typeof EventStat, bigint> {
  const m = new PerCpuMap(o.mapFd('nrd_ev_stats'), u32Codec, counterCodec);
  const get = (i: number): bigint => sumCounters(m.get(i) ?? []).packets;
  return { emitted: get(EventStat.emitted), lost: get(EventStat.lost), rate_limited: get(EventStat.rate_limited), suppressed: get(EventStat.suppressed) };
}

function dropCount(o: LoadedObject, reason: keyof typeof DropReason): bigint {
  return sumCounters(new PerCpuMap(o.mapFd('nrd_dp_drops'), u32Codec, counterCodec).get(DropReason[reason]) ?? []).packets;
}

/** nrd_endpoint with A on the test device and B elsewhere, both in the ipcache, and two services. */
function loadEndpoint(cfgFlags = EP_KNOBS.cfg_flags): LoadedObject {
  const o = loadObject({ path: join(objectDir, 'nrd_endpoint.bpf.o'), knobs: { ...EP_KNOBS, cfg_flags: cfgFlags } });
  const ifs = new TypedMap(o.mapFd('nrd_ep_ifs'), u32Codec, epIfCodec);
  const eps = new TypedMap(o.mapFd('nrd_endpoints'), epKeyCodec, epValueCodec);
  const ipc = new TypedMap(o.mapFd('nrd_ipcache4'), lpm4KeyCodec, ipcacheValueCodec);
  for (const ep of [A, B]) {
    ifs.set(ep.ifindex, { id: ep.id, flags: NRD_EP_IF_F_IP4 | NRD_EP_IF_F_IP6, ip4: ip(ep.ip4), ip6: Buffer.alloc(16) });
    eps.set({ family: 4, addr: ip(ep.ip4) }, { ifindex: ep.ifindex, id: ep.id, mac: ep.mac, flags: 0 });
    ipc.set({ family: 4, prefixlen: 32, addr: ip(ep.ip4) }, { identity: ep.identity, flags: 1 });
  }
  const services = new TypedMap(o.mapFd('nrd_services'), svcKeyCodec, svcValueCodec);
  const revnat = new TypedMap(o.mapFd('nrd_revnat'), u32Codec, revNatCodec);
  new TypedMap(o.mapFd('nrd_backends'), u32Codec, backendCodec).set(BACKEND_B, { family: 4, addr: ip(B.ip4), port: 8080, proto: 6, state: BackendState.ACTIVE });
  writeTable(o.mapFd('nrd_svc_tables'), SVC.web, new Uint32Array(M).fill(BACKEND_B));
  services.set({ family: 4, addr: ip(VIP), port: 80, proto: 6 }, { id: SVC.web, backendCount: 1, flags: SVC_F_MAGLEV, revNatId: SVC.web });
  services.set({ family: 4, addr: ip(VIP), port: 81, proto: 6 }, { id: SVC.empty, backendCount: 0, flags: SVC_F_NO_BACKEND | SVC_F_MAGLEV, revNatId: SVC.empty });
  for (const [id, port] of [[SVC.web, 80], [SVC.empty, 81]] as const) revnat.set(id, { family: 4, addr: ip(VIP), port });
  return o;
}

/** The fields of an event a test pins down (time and ifindex aside). */
const core = (e: FlowEvent) => ({
  type: e.type, reason: e.reason, endpoint: e.endpoint, dir: e.dir, family: e.family, proto: e.proto,
  saddr: e.saddr, daddr: e.daddr, sport: e.sport, dport: e.dport,
});

describe('flow events of the endpoint datapath (BPF_PROG_TEST_RUN)', () => {
  let o: LoadedObject;
  before(() => {
    o = loadEndpoint();
  });
  after(() => o.close());

  it('spoofed: one dropped event with the endpoint, its egress, the flow and identities', () => {
    const pkt = ipv4Packet('10.244.9.9', B.ip4, 17, udpDatagram('10.244.9.9', B.ip4, 1234, 53), { l2: fromA });
    const r = runWithEvents(o, 'nrd_ep_ingress', pkt);
    assert.equal(r.retval, TC_ACT_SHOT);
    assert.equal(r.events.length, 1, json(r.events));
    assert.deepEqual(core(r.events[0]!), {
      type: EventType.dropped, reason: DropReason.spoofed, endpoint: A.id, dir: 1, family: 4, proto: 17,
      saddr: '10.244.9.9', daddr: B.ip4, sport: 1234, dport: 53,
    });
    assert.deepEqual([r.events[0]!.srcIdentity, r.events[0]!.dstIdentity, r.events[0]!.len, r.events[0]!.suppressed], [2, B.identity, pkt.length, 0]);
  });

  it('malformed: a truncated ARP request is a dropped event of a frame that is not IP', () => {
    const r = runWithEvents(o, 'nrd_ep_ingress', arpRequest().subarray(0, 14 + 10));
    assert.equal(r.retval, TC_ACT_SHOT);
    assert.equal(r.events.length, 1, json(r.events));
    assert.deepEqual([r.events[0]!.type, r.events[0]!.reason, r.events[0]!.endpoint, r.events[0]!.family], [EventType.dropped, DropReason.malformed, A.id, 0]);
  });

  it('unknown_endpoint: a veth without nrd_ep_ifs entry (the source address still names the endpoint)', () => {
    const bare = loadObject({ path: join(objectDir, 'nrd_endpoint.bpf.o'), knobs: EP_KNOBS });
    try {
      new TypedMap(bare.mapFd('nrd_endpoints'), epKeyCodec, epValueCodec).set({ family: 4, addr: ip(A.ip4) }, { ifindex: 99, id: A.id, mac: A.mac, flags: 0 });
      const r = runWithEvents(bare, 'nrd_ep_ingress', ipv4Packet(A.ip4, B.ip4, 6, tcpSegment(A.ip4, B.ip4, 4000, 80, 0x02), { l2: fromA }));
      assert.equal(r.retval, TC_ACT_SHOT);
      assert.equal(r.events.length, 1, json(r.events));
      assert.deepEqual(core(r.events[0]!), {
        type: EventType.dropped, reason: DropReason.unknown_endpoint, endpoint: A.id, dir: 1, family: 4, proto: 6,
        saddr: A.ip4, daddr: B.ip4, sport: 4000, dport: 80,
      });
    } finally {
      bare.close();
    }
  });

  it('no_backend: the SYN to a service without backend is answered with a RST and reported once, with the service', () => {
    const before = dropCount(o, 'no_backend');
    const r = runWithEvents(o, 'nrd_ep_ingress', ipv4Packet(A.ip4, VIP, 6, tcpSegment(A.ip4, VIP, 41000, 81, 0x02), { l2: fromA }));
    assert.equal(r.retval, TC_ACT_REDIRECT, 'the reject goes back out the veth');
    assert.equal(r.events.length, 1, json(r.events));
    const e = r.events[0]!;
    assert.deepEqual(core(e), {
      type: EventType.dropped, reason: DropReason.no_backend, endpoint: A.id, dir: 1, family: 4, proto: 6,
      saddr: A.ip4, daddr: VIP, sport: 41000, dport: 81,
    });
    assert.equal(e.service, SVC.empty);
    assert.equal(dropCount(o, 'no_backend'), before + 1n);
  });

  it('service translation: the first packet of a connection only, with the backend address and port, service and backend ids', () => {
    const syn = ipv4Packet(A.ip4, VIP, 6, tcpSegment(A.ip4, VIP, 42000, 80, 0x02), { l2: fromA });
    const first = runWithEvents(o, 'nrd_ep_ingress', syn);
    assert.equal(first.retval, TC_ACT_REDIRECT, 'delivered to B');
    const xl = first.events.filter((e) => e.type === EventType.translated);
    assert.equal(xl.length, 1, json(first.events));
    assert.deepEqual(core(xl[0]!), {
      type: EventType.translated, reason: Translation.service, endpoint: A.id, dir: 1, family: 4, proto: 6,
      saddr: A.ip4, daddr: VIP, sport: 42000, dport: 80,
    });
    assert.deepEqual([xl[0]!.xaddr, xl[0]!.xport, xl[0]!.service, xl[0]!.backend], [B.ip4, 8080, SVC.web, BACKEND_B]);
    assert.deepEqual([xl[0]!.srcIdentity, xl[0]!.dstIdentity], [A.identity, B.identity]);
    // the translated flow's forwarded events follow: A's egress check and B's ingress check
    const fwd = first.events.filter((e) => e.type === EventType.forwarded);
    assert.deepEqual(fwd.map((e) => [e.endpoint, e.dir, e.daddr, e.dport, e.reason]), [[A.id, 1, B.ip4, 8080, 0], [B.id, 0, B.ip4, 8080, 0]]);
    const ack = ipv4Packet(A.ip4, VIP, 6, tcpSegment(A.ip4, VIP, 42000, 80, 0x10), { l2: fromA });
    const again = runWithEvents(o, 'nrd_ep_ingress', ack, 20);
    assert.equal(again.retval, TC_ACT_REDIRECT);
    assert.deepEqual(again.events, [], 'no event for the rest of the connection');
  });

  it('forwarded: the first packet in each checked direction, then the first reply at both ends, then nothing', () => {
    const syn = ipv4Packet(A.ip4, B.ip4, 6, tcpSegment(A.ip4, B.ip4, 43001, 9000, 0x02), { l2: fromA });
    const first = runWithEvents(o, 'nrd_ep_ingress', syn);
    assert.deepEqual(first.events.map((e) => [e.type, e.reason, e.endpoint, e.dir]), [[EventType.forwarded, 0, A.id, 1], [EventType.forwarded, 0, B.id, 0]], json(first.events));
    assert.deepEqual(runWithEvents(o, 'nrd_ep_ingress', syn, 5).events, []);
    const reply = ipv4Packet(B.ip4, A.ip4, 6, tcpSegment(B.ip4, A.ip4, 9000, 43001, 0x12), { l2: { src: B.mac, dst: GW_MAC } });
    const ifs = new TypedMap(o.mapFd('nrd_ep_ifs'), u32Codec, epIfCodec);
    ifs.set(LO, { id: B.id, flags: NRD_EP_IF_F_IP4, ip4: ip(B.ip4), ip6: Buffer.alloc(16) }); // B sends on the test device
    try {
      const r1 = runWithEvents(o, 'nrd_ep_ingress', reply);
      assert.deepEqual(r1.events.map((e) => [e.type, e.reason, e.endpoint, e.dir]), [[EventType.forwarded, 3, B.id, 1], [EventType.forwarded, 3, A.id, 0]], json(r1.events));
      assert.deepEqual(runWithEvents(o, 'nrd_ep_ingress', reply, 5).events, []);
    } finally {
      ifs.set(LO, { id: A.id, flags: NRD_EP_IF_F_IP4 | NRD_EP_IF_F_IP6, ip4: ip(A.ip4), ip6: Buffer.alloc(16) });
    }
  });

  it('forwarded events off (the daemon\'s default): a new connection gives only its translation; drops are still told', () => {
    const quiet = loadEndpoint(NRD_DP_F_IPV6 | NRD_DP_F_ARP_ANY);
    try {
      const r = runWithEvents(quiet, 'nrd_ep_ingress', ipv4Packet(A.ip4, VIP, 6, tcpSegment(A.ip4, VIP, 43000, 80, 0x02), { l2: fromA }));
      assert.equal(r.retval, TC_ACT_REDIRECT);
      assert.deepEqual(r.events.map((e) => e.type), [EventType.translated]);
      const d = runWithEvents(quiet, 'nrd_ep_ingress', ipv4Packet('10.244.9.9', B.ip4, 17, udpDatagram('10.244.9.9', B.ip4, 1234, 53), { l2: fromA }));
      assert.deepEqual(d.events.map((e) => [e.type, e.reason]), [[EventType.dropped, DropReason.spoofed]]);
    } finally {
      quiet.close();
    }
  });
});

describe('flow-event rate limiting (BPF_PROG_TEST_RUN)', () => {
  it('identical drops: one event per flow and second, the rest suppressed and reported by the next event', async () => {
    const o = loadEndpoint();
    try {
      const spoofed = ipv4Packet('10.244.9.9', B.ip4, 17, udpDatagram('10.244.9.9', B.ip4, 1234, 53), { l2: fromA });
      const N = 1000;
      const r = runWithEvents(o, 'nrd_ep_ingress', spoofed, N);
      assert.equal(r.retval, TC_ACT_SHOT);
      assert.equal(r.events.length, 1, 'one event for N identical drops');
      assert.equal(dropCount(o, 'spoofed'), BigInt(N), 'every drop counted');
      assert.deepEqual(evStats(o), { emitted: 1n, lost: 0n, rate_limited: 0n, suppressed: BigInt(N - 1) });
      await new Promise((res) => setTimeout(res, 1100));
      const later = runWithEvents(o, 'nrd_ep_ingress', spoofed);
      assert.equal(later.events.length, 1, 'the flow is reported again after a second');
      assert.equal(later.events[0]!.suppressed, N - 1, 'with the drops not shown since');
    } finally {
      o.close();
    }
  });

  it('a flood of distinct dropped flows: events held to the token bucket, the rest counted as rate limited', () => {
    const o = loadEndpoint();
    try {
      const FLOWS = 3000;
      let events = 0;
      const ring = ringBufferOpen(o.mapFd('nrd_events'), () => events++);
      const t0 = process.hrtime.bigint();
      try {
        for (let i = 0; i < FLOWS; i++) {
          const sport = 10000 + i;
          const pkt = ipv4Packet('10.244.9.9', B.ip4, 17, udpDatagram('10.244.9.9', B.ip4, sport, 53), { l2: fromA });
          assert.equal(progTestRun(o.programFd('nrd_ep_ingress'), { data: pkt }).retval, TC_ACT_SHOT);
        }
        ring.consume();
      } finally {
        ring.free();
      }
      const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
      const s = evStats(o);
      // burst 200 and 1000/s per CPU; the runs may have used every CPU
      const bound = Math.ceil(2 * (200 + 1000 * seconds)) + 1;
      assert.ok(events <= bound, `${events} events for ${FLOWS} flows in ${seconds.toFixed(2)} s (bound ${bound})`);
      assert.ok(events < FLOWS, `${events} events: nothing was held back`);
      assert.equal(BigInt(events), s.emitted);
      assert.equal(s.emitted + s.rate_limited, BigInt(FLOWS), json(s));
      assert.equal(s.lost, 0n);
    } finally {
      o.close();
    }
  });
});

describe('flow events of nrd_netdev and the XDP prefilter (BPF_PROG_TEST_RUN)', () => {
  const NODE = '192.0.2.10';
  const REMOTE = '198.51.100.7';
  const POD = { ip4: '10.244.1.5', ifindex: 42, mac: mac('02:00:00:00:01:05'), id: 5 };

  function loadNetdev(knobs: Record<string, number | bigint | Buffer>): LoadedObject {
    const o = loadObject({ path: join(objectDir, 'nrd_netdev.bpf.o'), knobs });
    new TypedMap(o.mapFd('nrd_endpoints'), epKeyCodec, epValueCodec).set({ family: 4, addr: ip(POD.ip4) }, { ifindex: POD.ifindex, id: POD.id, mac: POD.mac, flags: 0 });
    new TypedMap(o.mapFd('nrd_nonat4'), lpm4KeyCodec, nonatValueCodec).set(parseCidr('10.244.0.0/16'), { kind: NonatKind.POOL, reserved: 0 });
    return o;
  }
  const KNOBS = { gw_mac: macKnob(GW_MAC), cfg_flags: NRD_DP_F_IPV6 | NRD_DP_F_MASQ, node_ip4: ip4Knob(ip(NODE)) };

  it('masquerade: a translated event at a new mapping only, with the node address and port', () => {
    const o = loadNetdev(KNOBS);
    try {
      const syn = ipv4Packet(POD.ip4, REMOTE, 6, tcpSegment(POD.ip4, REMOTE, 40000, 443, 0x02));
      const r = runWithEvents(o, 'nrd_dev_egress', syn);
      assert.equal(r.retval, TCX_NEXT);
      assert.equal(r.events.length, 1, json(r.events));
      const e = r.events[0]!;
      assert.deepEqual(core(e), {
        type: EventType.translated, reason: Translation.masquerade, endpoint: POD.id, dir: 1, family: 4, proto: 6,
        saddr: POD.ip4, daddr: REMOTE, sport: 40000, dport: 443,
      });
      const out = progTestRun(o.programFd('nrd_dev_egress'), { data: syn }).dataOut;
      assert.deepEqual([e.xaddr, e.xport], [NODE, out.readUInt16BE(34)], 'the source the packet left with');
      const again = runWithEvents(o, 'nrd_dev_egress', ipv4Packet(POD.ip4, REMOTE, 6, tcpSegment(POD.ip4, REMOTE, 40000, 443, 0x10)));
      assert.deepEqual(again.events, [], 'no event for the rest of the connection');
    } finally {
      o.close();
    }
  });

  it('nat_exhausted: a dropped event with the endpoint as the source', () => {
    const o = loadNetdev({ ...KNOBS, nat_port_min: 61000, nat_port_max: 61000 });
    try {
      new TypedMap(o.mapFd('nrd_nat4'), nat4KeyCodec, nat4EntryCodec).set(
        { saddr: ip(REMOTE), daddr: ip(NODE), sport: 80, dport: 61000, proto: 6, dir: NatDir.REPLY },
        { addr: ip('10.244.1.99'), port: 1, state: CtState.EST, flags: 0, lastSeenNs: 1n, createdNs: 1n },
      );
      const r = runWithEvents(o, 'nrd_dev_egress', ipv4Packet(POD.ip4, REMOTE, 6, tcpSegment(POD.ip4, REMOTE, 40001, 80, 0x02)));
      assert.equal(r.retval, TC_ACT_SHOT);
      assert.equal(r.events.length, 1, json(r.events));
      assert.deepEqual(core(r.events[0]!), {
        type: EventType.dropped, reason: DropReason.nat_exhausted, endpoint: POD.id, dir: 1, family: 4, proto: 6,
        saddr: POD.ip4, daddr: REMOTE, sport: 40001, dport: 80,
      });
    } finally {
      o.close();
    }
  });

  it('IPv6: a masquerade mapping, a spoofed source and a service without backends, with 16-byte addresses', () => {
    const NODE6 = '2001:db8:1::10';
    const POD6 = 'fd00:244:1::5';
    const o = loadNetdev({ ...KNOBS, node_ip6: ip6Knob(ip(NODE6)) });
    try {
      new TypedMap(o.mapFd('nrd_endpoints'), epKeyCodec, epValueCodec).set({ family: 6, addr: ip(POD6) }, { ifindex: POD.ifindex, id: POD.id, mac: POD.mac, flags: 0 });
      const r = runWithEvents(o, 'nrd_dev_egress', ipv6Packet(POD6, '2001:db8:99::7', 17, udpDatagram(POD6, '2001:db8:99::7', 5353, 53)));
      assert.equal(r.retval, TCX_NEXT);
      assert.equal(r.events.length, 1, json(r.events));
      assert.deepEqual(core(r.events[0]!), {
        type: EventType.translated, reason: Translation.masquerade, endpoint: POD.id, dir: 1, family: 6, proto: 17,
        saddr: POD6, daddr: '2001:db8:99::7', sport: 5353, dport: 53,
      });
      assert.equal(r.events[0]!.xaddr, NODE6);
    } finally {
      o.close();
    }
    const ep = loadEndpoint();
    try {
      const r = runWithEvents(ep, 'nrd_ep_ingress', ipv6Packet('fd00:244:9::9', 'fd00:244:1::6', 17, udpDatagram('fd00:244:9::9', 'fd00:244:1::6', 1, 2), { l2: fromA }));
      assert.equal(r.retval, TC_ACT_SHOT);
      assert.deepEqual(r.events.map((e) => [e.reason, e.family, e.saddr, e.daddr, e.endpoint]), [[DropReason.spoofed, 6, 'fd00:244:9::9', 'fd00:244:1::6', A.id]]);
      // UDP to an IPv6 service without backends: ICMPv6 port unreachable, a no_backend event
      const A6 = 'fd00:244:1::5';
      const VIP6 = 'fd00:96::10';
      new TypedMap(ep.mapFd('nrd_ep_ifs'), u32Codec, epIfCodec).set(LO, { id: A.id, flags: NRD_EP_IF_F_IP4 | NRD_EP_IF_F_IP6, ip4: ip(A.ip4), ip6: ip(A6) });
      new TypedMap(ep.mapFd('nrd_services'), svcKeyCodec, svcValueCodec).set({ family: 6, addr: ip(VIP6), port: 53, proto: 17 }, { id: 13, backendCount: 0, flags: SVC_F_NO_BACKEND, revNatId: 13 });
      const nb = runWithEvents(ep, 'nrd_ep_ingress', ipv6Packet(A6, VIP6, 17, udpDatagram(A6, VIP6, 5000, 53), { l2: fromA }));
      assert.equal(nb.retval, TC_ACT_REDIRECT);
      assert.deepEqual(nb.events.map((e) => [e.reason, e.family, e.saddr, e.daddr, e.sport, e.dport, e.service]), [[DropReason.no_backend, 6, A6, VIP6, 5000, 53, 13]]);
    } finally {
      ep.close();
    }
  });

  it('prefilter: a dropped event per denied source and second, whatever its ports; other sources pass without one', () => {
    const o = loadObject({ path: join(objectDir, 'nrd_xdp.bpf.o') });
    try {
      new TypedMap(o.mapFd('nrd_deny4'), lpm4KeyCodec, denyValueCodec).set(parseCidr('203.0.113.0/24'), { rule: 0, flags: 0 });
      const denied = (sport: number): Buffer => ipv4Packet('203.0.113.5', NODE, 6, tcpSegment('203.0.113.5', NODE, sport, 22, 0x02));
      const r = runWithEvents(o, 'nrd_xdp_prefilter', denied(50000));
      assert.equal(r.retval, XDP_DROP);
      assert.equal(r.events.length, 1, json(r.events));
      assert.deepEqual(core(r.events[0]!), {
        type: EventType.dropped, reason: DropReason.prefilter, endpoint: 0, dir: EV_DIR_NONE, family: 4, proto: 6,
        saddr: '203.0.113.5', daddr: NODE, sport: 50000, dport: 22,
      });
      // a scan from the same source: other ports, no more events within the second
      for (let p = 50001; p < 50100; p++) assert.deepEqual(runWithEvents(o, 'nrd_xdp_prefilter', denied(p)).events, []);
      assert.equal(evStats(o).suppressed, 99n);
      const other = runWithEvents(o, 'nrd_xdp_prefilter', ipv4Packet('198.51.100.1', NODE, 17, udpDatagram('198.51.100.1', NODE, 1, 2)));
      assert.deepEqual([other.retval, other.events], [2 /* XDP_PASS */, []]);
    } finally {
      o.close();
    }
  });
});

describe('no_route flow event (test runs inside a namespace with a blackhole route)', () => {
  const cleanup = new Cleanup();
  let ns = '';
  const agentPath = fileURLToPath(new URL('./test-run-agent.js', import.meta.url));

  before(() => {
    try {
      ns = addNetns(cleanup, 'evroute');
      nsExec(ns, 'sysctl', ['-qw', 'net.ipv4.conf.all.forwarding=1']);
      nsExec(ns, 'ip', ['link', 'set', 'lo', 'up']);
      nsExec(ns, 'ip', ['route', 'add', 'blackhole', '203.0.113.0/24']);
      nsExec(ns, 'ip', ['route', 'add', 'unreachable', '198.51.100.0/24']);
    } catch (e) {
      cleanup.run();
      throw e;
    }
  });
  after(() => cleanup.run());

  it('a blackhole or unreachable route: a dropped event no_route, the packet handed to the stack unchanged; a missing route none', () => {
    const epIf = epIfCodec.encode({ id: A.id, flags: NRD_EP_IF_F_IP4, ip4: ip(A.ip4), ip6: Buffer.alloc(16) });
    const key = Buffer.alloc(4);
    key.writeUInt32LE(LO);
    const pkts = ['203.0.113.9', '198.51.100.9', '100.64.0.1'].map((dst) => ipv4Packet(A.ip4, dst, 17, udpDatagram(A.ip4, dst, 40000, 53), { l2: fromA }));
    const cmd: TestRunCommand = {
      object: join(objectDir, 'nrd_endpoint.bpf.o'),
      knobs: Object.fromEntries(Object.entries(EP_KNOBS).map(([k, v]) => [k, String(v)])),
      seed: [{ map: 'nrd_ep_ifs', key: key.toString('hex'), value: epIf.toString('hex') }],
      runs: pkts.map((p) => ({ prog: 'nrd_ep_ingress', data: p.toString('hex') })),
      events: true,
    };
    const r = run('ip', ['netns', 'exec', ns, process.execPath, agentPath, JSON.stringify(cmd)]);
    assert.equal(r.status, 0, r.stderr);
    const replies = JSON.parse(r.stdout) as TestRunReply[];
    replies.forEach((rep, i) => {
      assert.equal(rep.retval, TCX_NEXT, `packet ${i} goes to the stack`);
      assert.deepEqual(Buffer.from(rep.data, 'hex'), pkts[i], `packet ${i} unchanged`);
    });
    const evs = replies.map((rep) => (rep.events ?? []).map((h) => decodeFlowEvent(Buffer.from(h, 'hex'))).filter((e) => e.type === EventType.dropped));
    for (const [i, dst] of [[0, '203.0.113.9'], [1, '198.51.100.9']] as const) {
      assert.equal(evs[i]!.length, 1, json(evs[i]));
      assert.deepEqual([evs[i]![0]!.reason, evs[i]![0]!.endpoint, evs[i]![0]!.daddr, evs[i]![0]!.dport], [DropReason.no_route, A.id, dst, 53]);
    }
    assert.deepEqual(evs[2], [], 'no route at all is not told from a local destination: no event');
  });
});
