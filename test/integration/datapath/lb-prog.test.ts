// BPF_PROG_TEST_RUN of the service load balancer in nrd_endpoint (bpf/include/nrd_lb.h): DNAT of a
// VIP:port to a backend and reverse NAT of the reply, both compared byte for byte with packets whose
// checksums are computed here from scratch; stickiness of a flow across a table change; TCP RST and
// ICMP / ICMPv6 port unreachable for a service without a backend; draining (keep and reset).
// Root (CAP_BPF). Endpoint A (the client) and B (a backend) are local; C is a backend elsewhere.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { progTestRun } from '../../../daemon/datapath/libbpf.js';
import { TypedMap, parseCidr, u32Codec } from '../../../daemon/datapath/maps.js';
import { type LoadedObject, loadObject } from '../../../daemon/datapath/objects.js';
import {
  NRD_DP_F_ARP_ANY, NRD_DP_F_IPV6, NRD_EP_IF_F_IP4, NRD_EP_IF_F_IP6, epIfCodec, epKeyCodec, epValueCodec, macKnob,
} from '../../../daemon/datapath/endpoint-layout.js';
import {
  CtDir, NRD_LB_F_DRAIN_RESET, backendCodec, ctEntryCodec, ctKeyCodec, revNatCodec, svcKeyCodec, svcValueCodec,
} from '../../../daemon/datapath/services-layout.js';
import { BackendState, SVC_F_MAGLEV, SVC_F_NO_BACKEND } from '../../../daemon/services/plan.js';
import { writeTable } from '../../../daemon/datapath/services.js';
import { inetChecksum, ipv4Packet, ipv6Packet, mac, pseudoSum, tcpSegment, udpDatagram } from './packets.js';
import { objectDir } from './env.js';

const TC_ACT_REDIRECT = 7;
const TCX_NEXT = 0xffffffff;
const LO = 1; // test runs run on the loopback device of the caller's namespace
const OBJ = join(objectDir, 'nrd_endpoint.bpf.o');
const GW_MAC = mac('02:aa:bb:cc:dd:01');
const M = 7; // Maglev table size knob for the test
const A = { ifindex: LO, mac: mac('02:00:00:00:01:05'), ip4: '10.244.1.5', ip6: 'fd00:244:1::5', id: 5 };
const B = { ifindex: 42, mac: mac('02:00:00:00:01:06'), ip4: '10.244.1.6', ip6: 'fd00:244:1::6', id: 6 };
const C = { ip4: '10.244.2.7' };
const VIP = '10.96.0.10';
const VIP6 = 'fd00:96::10';
const ip = (s: string): Buffer => parseCidr(s).addr;
const ID = { B: 11, C: 12, B6: 13 };
const SVC = { web: 100, empty: 101, web6: 102, dns6empty: 103, wide: 104 };

function load(lbFlags = 0): LoadedObject {
  const o = loadObject({ path: OBJ, knobs: { gw_mac: macKnob(GW_MAC), cfg_flags: NRD_DP_F_IPV6 | NRD_DP_F_ARP_ANY, lb_maglev_m: M, lb_flags: lbFlags } });
  const ifs = new TypedMap(o.mapFd('nrd_ep_ifs'), u32Codec, epIfCodec);
  const eps = new TypedMap(o.mapFd('nrd_endpoints'), epKeyCodec, epValueCodec);
  for (const ep of [A, B]) {
    ifs.set(ep.ifindex, { id: ep.id, flags: NRD_EP_IF_F_IP4 | NRD_EP_IF_F_IP6, ip4: ip(ep.ip4), ip6: ip(ep.ip6) });
    eps.set({ family: 4, addr: ip(ep.ip4) }, { ifindex: ep.ifindex, id: ep.id, mac: ep.mac, flags: 0 });
    eps.set({ family: 6, addr: ip(ep.ip6) }, { ifindex: ep.ifindex, id: ep.id, mac: ep.mac, flags: 0 });
  }
  const m = maps(o);
  m.backends.set(ID.B, { family: 4, addr: ip(B.ip4), port: 8080, proto: 6, state: BackendState.ACTIVE });
  m.backends.set(ID.C, { family: 4, addr: ip(C.ip4), port: 8080, proto: 6, state: BackendState.ACTIVE });
  m.backends.set(ID.B6, { family: 6, addr: ip(B.ip6), port: 5353, proto: 17, state: BackendState.ACTIVE });
  setSlots(o, SVC.web, ID.B);
  setSlots(o, SVC.web6, ID.B6);
  const svc = (id: number, vip: string, port: number, proto: number, flags: number, count: number): void => {
    const family = vip.includes(':') ? 6 : 4;
    m.services.set({ family, addr: ip(vip), port, proto }, { id, backendCount: count, flags, revNatId: id });
    m.revnat.set(id, { family, addr: ip(vip), port });
  };
  svc(SVC.web, VIP, 80, 6, SVC_F_MAGLEV, 1);
  svc(SVC.empty, VIP, 53, 17, SVC_F_NO_BACKEND | SVC_F_MAGLEV, 0);
  svc(SVC.empty + 10, VIP, 443, 6, SVC_F_NO_BACKEND, 0);
  svc(SVC.web6, VIP6, 53, 17, 0, 1);
  svc(SVC.dns6empty, VIP6, 54, 17, SVC_F_NO_BACKEND, 0);
  return o;
}

function maps(o: LoadedObject) {
  return {
    services: new TypedMap(o.mapFd('nrd_services'), svcKeyCodec, svcValueCodec),
    backends: new TypedMap(o.mapFd('nrd_backends'), u32Codec, backendCodec),
    revnat: new TypedMap(o.mapFd('nrd_revnat'), u32Codec, revNatCodec),
    ct: new TypedMap(o.mapFd('nrd_ct'), ctKeyCodec, ctEntryCodec),
    ifs: new TypedMap(o.mapFd('nrd_ep_ifs'), u32Codec, epIfCodec),
  };
}

function setSlots(o: LoadedObject, svcId: number, backendId: number): void {
  writeTable(o.mapFd('nrd_svc_tables'), svcId, new Uint32Array(M).fill(backendId));
}

const fromA = { src: A.mac, dst: GW_MAC };
const syn = (sport: number, dst = VIP, dport = 80, flags = 0x02): Buffer =>
  ipv4Packet(A.ip4, dst, 6, tcpSegment(A.ip4, dst, sport, dport, flags), { l2: fromA });

describe('nrd_lb in nrd_endpoint (BPF_PROG_TEST_RUN)', () => {
  const objects: LoadedObject[] = [];
  let o: LoadedObject;
  let prog: number;
  before(() => {
    o = load();
    objects.push(o);
    prog = o.programFd('nrd_ep_ingress');
  });
  after(() => objects.forEach((x) => x.close()));

  it('DNATs a SYN to the VIP to the local backend: dst and port rewritten, checksums as computed from scratch', () => {
    const r = progTestRun(prog, { data: syn(40001) });
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const want = ipv4Packet(A.ip4, B.ip4, 6, tcpSegment(A.ip4, B.ip4, 40001, 8080, 0x02), { ttl: 63, l2: { src: GW_MAC, dst: B.mac } });
    assert.deepEqual(r.dataOut, want);
    assert.equal(inetChecksum(r.dataOut.subarray(14, 34)), 0);
    assert.equal(inetChecksum(r.dataOut.subarray(34), pseudoSum(ip(A.ip4), ip(B.ip4), 6, 20)), 0);
    const m = maps(o);
    const fwd = m.ct.get({ family: 4, saddr: ip(A.ip4), daddr: ip(VIP), sport: 40001, dport: 80, proto: 6, dir: CtDir.FWD });
    const rep = m.ct.get({ family: 4, saddr: ip(B.ip4), daddr: ip(A.ip4), sport: 8080, dport: 40001, proto: 6, dir: CtDir.REPLY });
    assert.equal(fwd?.backendId, ID.B);
    assert.equal(rep?.revNatId, SVC.web);
    assert.ok(fwd && fwd.lastSeenNs > 0n);
  });

  it('reverse-NATs the backend\'s reply (src = VIP:80) and marks the flow established', () => {
    const m = maps(o);
    // The reply leaves B: the test device (lo) is B's veth for this run.
    m.ifs.set(LO, { id: B.id, flags: NRD_EP_IF_F_IP4 | NRD_EP_IF_F_IP6, ip4: ip(B.ip4), ip6: ip(B.ip6) });
    try {
      const reply = ipv4Packet(B.ip4, A.ip4, 6, tcpSegment(B.ip4, A.ip4, 8080, 40001, 0x12), { l2: { src: B.mac, dst: GW_MAC } });
      const r = progTestRun(prog, { data: reply });
      assert.equal(r.retval, TC_ACT_REDIRECT);
      const want = ipv4Packet(VIP, A.ip4, 6, tcpSegment(VIP, A.ip4, 80, 40001, 0x12), { ttl: 63, l2: { src: GW_MAC, dst: A.mac } });
      assert.deepEqual(r.dataOut, want);
      const fwd = m.ct.get({ family: 4, saddr: ip(A.ip4), daddr: ip(VIP), sport: 40001, dport: 80, proto: 6, dir: CtDir.FWD });
      assert.equal(fwd?.state, 2 /* EST */);
    } finally {
      m.ifs.set(LO, { id: A.id, flags: NRD_EP_IF_F_IP4 | NRD_EP_IF_F_IP6, ip4: ip(A.ip4), ip6: ip(A.ip6) });
    }
  });

  it('keeps a flow on its backend after the Maglev table changed; a new flow follows the new table', () => {
    progTestRun(prog, { data: syn(40002) });
    setSlots(o, SVC.web, ID.C);
    try {
      const again = progTestRun(prog, { data: syn(40002, VIP, 80, 0x10) });
      assert.equal(again.retval, TC_ACT_REDIRECT);
      assert.deepEqual(again.dataOut.subarray(30, 34), ip(B.ip4));
      const fresh = progTestRun(prog, { data: syn(40003) });
      // C is not local: the FIB finds no route in this namespace, so the stack gets it, translated.
      assert.equal(fresh.retval, TCX_NEXT);
      assert.deepEqual(fresh.dataOut, ipv4Packet(A.ip4, C.ip4, 6, tcpSegment(A.ip4, C.ip4, 40003, 8080, 0x02), { l2: fromA }));
    } finally {
      setSlots(o, SVC.web, ID.B);
    }
  });

  it('random choice past the table: a service with more backends than M picks among the M slots, never past them', () => {
    // A table holds M slots; backend_count beyond it must not index out of the value (reject).
    const m = maps(o);
    m.services.set({ family: 4, addr: ip(VIP), port: 8080, proto: 6 }, { id: SVC.wide, backendCount: 100, flags: 0, revNatId: SVC.wide });
    m.revnat.set(SVC.wide, { family: 4, addr: ip(VIP), port: 8080 });
    setSlots(o, SVC.wide, ID.B);
    for (let i = 0; i < 32; i++) {
      const r = progTestRun(prog, { data: syn(40100 + i, VIP, 8080) });
      assert.equal(r.retval, TC_ACT_REDIRECT);
      assert.deepEqual(r.dataOut.subarray(30, 34), ip(B.ip4), `flow ${i} went to B`);
    }
  });

  it('answers a SYN to a service without backend with a RST from the VIP (RFC 793 §3.4)', () => {
    const r = progTestRun(prog, { data: syn(40010, VIP, 443) });
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const rst = Buffer.alloc(20);
    rst.writeUInt16BE(443, 0);
    rst.writeUInt16BE(40010, 2);
    rst.writeUInt32BE(1001, 8); // ack = seq + 1 for the SYN
    rst[12] = 5 << 4;
    rst[13] = 0x14; // RST|ACK
    rst.writeUInt16BE(inetChecksum(rst, pseudoSum(ip(VIP), ip(A.ip4), 6, 20)), 16);
    const want = ipv4Packet(VIP, A.ip4, 6, rst, { l2: { src: GW_MAC, dst: A.mac } });
    want.writeUInt16BE(0, 18); // IP id 0 in the reply
    want.writeUInt16BE(0, 24);
    want.writeUInt16BE(inetChecksum(want.subarray(14, 34)), 24);
    assert.deepEqual(r.dataOut, want);
  });

  it('answers UDP to a service without backend with ICMP port unreachable quoting the datagram', () => {
    const req = ipv4Packet(A.ip4, VIP, 17, udpDatagram(A.ip4, VIP, 40020, 53), { l2: fromA });
    const r = progTestRun(prog, { data: req });
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const icmp = Buffer.concat([Buffer.from([3, 3, 0, 0, 0, 0, 0, 0]), req.subarray(14, 14 + 28)]);
    icmp.writeUInt16BE(inetChecksum(icmp), 2);
    const out = r.dataOut;
    assert.equal(out.length, 14 + 20 + 36);
    assert.deepEqual(out.subarray(0, 6), A.mac);
    assert.equal(out.readUInt16BE(12), 0x0800);
    assert.equal(out[23], 1); // ICMP
    assert.deepEqual(out.subarray(26, 30), ip(VIP));
    assert.deepEqual(out.subarray(30, 34), ip(A.ip4));
    assert.equal(inetChecksum(out.subarray(14, 34)), 0);
    assert.deepEqual(out.subarray(34), icmp);
  });

  it('DNATs IPv6 UDP and answers a backendless IPv6 service with ICMPv6 port unreachable', () => {
    const req = ipv6Packet(A.ip6, VIP6, 17, udpDatagram(A.ip6, VIP6, 40030, 53), { l2: fromA });
    const r = progTestRun(prog, { data: req });
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.deepEqual(r.dataOut, ipv6Packet(A.ip6, B.ip6, 17, udpDatagram(A.ip6, B.ip6, 40030, 5353), { hop: 63, l2: { src: GW_MAC, dst: B.mac } }));

    const empty = ipv6Packet(A.ip6, VIP6, 17, udpDatagram(A.ip6, VIP6, 40031, 54), { l2: fromA });
    const e = progTestRun(prog, { data: empty });
    assert.equal(e.retval, TC_ACT_REDIRECT);
    const body = Buffer.concat([Buffer.from([1, 4, 0, 0, 0, 0, 0, 0]), empty.subarray(14, 14 + 48)]);
    body.writeUInt16BE(inetChecksum(body, pseudoSum(ip(VIP6), ip(A.ip6), 58, body.length)), 2);
    assert.deepEqual(e.dataOut, ipv6Packet(VIP6, A.ip6, 58, body, { l2: { src: GW_MAC, dst: A.mac } }));
  });

  it('draining: an existing flow keeps its backend, a new one is never given to it', () => {
    progTestRun(prog, { data: syn(40040) });
    const m = maps(o);
    m.backends.set(ID.B, { family: 4, addr: ip(B.ip4), port: 8080, proto: 6, state: BackendState.DRAINING });
    try {
      const old = progTestRun(prog, { data: syn(40040, VIP, 80, 0x10) });
      assert.equal(old.retval, TC_ACT_REDIRECT);
      assert.deepEqual(old.dataOut.subarray(30, 34), ip(B.ip4));
      // the slots still name B (the daemon rewrites them after the backend): rejected, not sent to B
      const fresh = progTestRun(prog, { data: syn(40041) });
      assert.equal(fresh.retval, TC_ACT_REDIRECT);
      assert.equal(fresh.dataOut[47], 0x14); // RST|ACK back to A
      assert.deepEqual(fresh.dataOut.subarray(26, 30), ip(VIP));
    } finally {
      m.backends.set(ID.B, { family: 4, addr: ip(B.ip4), port: 8080, proto: 6, state: BackendState.ACTIVE });
    }
  });

  it('draining with reset: an existing TCP flow of a draining backend is reset', () => {
    const r = load(NRD_LB_F_DRAIN_RESET);
    objects.push(r);
    const p = r.programFd('nrd_ep_ingress');
    assert.equal(progTestRun(p, { data: syn(40050) }).retval, TC_ACT_REDIRECT);
    maps(r).backends.set(ID.B, { family: 4, addr: ip(B.ip4), port: 8080, proto: 6, state: BackendState.DRAINING });
    const next = progTestRun(p, { data: syn(40050, VIP, 80, 0x10) });
    assert.equal(next.retval, TC_ACT_REDIRECT);
    assert.equal(next.dataOut[47], 0x04); // RST (the segment had ACK: seq = its ack)
    assert.equal(next.dataOut.readUInt32BE(38), 2000);
    assert.deepEqual(next.dataOut.subarray(26, 30), ip(VIP));
    assert.equal(maps(r).ct.get({ family: 4, saddr: ip(A.ip4), daddr: ip(VIP), sport: 40050, dport: 80, proto: 6, dir: CtDir.FWD }), undefined);
  });
});
