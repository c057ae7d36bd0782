// BPF_PROG_TEST_RUN of nrd_netdev (tc on the uplink / VXLAN device): masquerade on egress,
// reverse translation and delivery to a local endpoint on ingress, ICMP errors about translated
// flows, port exhaustion. Every checksum the program touched is recomputed here from scratch.
// Root (CAP_BPF). Test runs cannot follow redirect_peer: verdict and bytes are asserted.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { progTestRun } from '../../../daemon/datapath/libbpf.js';
import { PerCpuMap, TypedMap, counterCodec, lpm4KeyCodec, parseCidr, sumCounters, u32Codec } from '../../../daemon/datapath/maps.js';
import { type LoadedObject, loadObject } from '../../../daemon/datapath/objects.js';
import {
  CtState,
  DropReason,
  NRD_DP_F_IPV6,
  NRD_DP_F_MASQ,
  NatDir,
  NonatKind,
  epKeyCodec,
  epValueCodec,
  ip4Knob,
  macKnob,
  nat4EntryCodec,
  nat4KeyCodec,
  nonatValueCodec,
  type Nat4Entry,
} from '../../../daemon/datapath/endpoint-layout.js';
import { icmpEcho, icmpError, inetChecksum, ipv4Packet, ipv6Packet, mac, pseudoSum, tcpSegment, udpDatagram } from './packets.js';
import { objectDir } from './env.js';

const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;
const TCX_NEXT = 0xffffffff;
const TCP = 6;
const UDP = 17;
const ICMP = 1;

const OBJ = join(objectDir, 'nrd_netdev.bpf.o');
const GW_MAC = mac('02:aa:bb:cc:dd:01');
const NODE = '192.0.2.10';
const REMOTE = '198.51.100.7';
const POD = { ip4: '10.244.1.5', ip6: 'fd00:244:1::5', ifindex: 42, mac: mac('02:00:00:00:01:05') };
const ip = (s: string): Buffer => parseCidr(s).addr;
const KNOBS = { gw_mac: macKnob(GW_MAC), cfg_flags: NRD_DP_F_IPV6 | NRD_DP_F_MASQ, node_ip4: ip4Knob(ip(NODE)) };

function load(knobs: Record<string, number | bigint> = KNOBS): LoadedObject {
  const o = loadObject({ path: OBJ, knobs });
  const eps = new TypedMap(o.mapFd('nrd_endpoints'), epKeyCodec, epValueCodec);
  eps.set({ family: 4, addr: ip(POD.ip4) }, { ifindex: POD.ifindex, id: 5, mac: POD.mac, flags: 0 });
  eps.set({ family: 6, addr: ip(POD.ip6) }, { ifindex: POD.ifindex, id: 5, mac: POD.mac, flags: 0 });
  const nonat = new TypedMap(o.mapFd('nrd_nonat4'), lpm4KeyCodec, nonatValueCodec);
  nonat.set(parseCidr('10.244.0.0/16'), { kind: NonatKind.POOL, reserved: 0 });
  nonat.set(parseCidr('172.16.0.0/12'), { kind: NonatKind.EXCLUDE, reserved: 0 });
  return o;
}

/** IPv4 header checksum and, for TCP/UDP/ICMP, the L4 checksum verify from scratch. */
function assertChecksums(frame: Buffer): void {
  const hdr = frame.subarray(14, 34);
  assert.equal(inetChecksum(hdr), 0, 'IPv4 header checksum');
  const l4 = frame.subarray(34, 14 + hdr.readUInt16BE(2));
  const proto = hdr[9];
  if (proto === ICMP) assert.equal(inetChecksum(l4), 0, 'ICMP checksum');
  else if (proto === TCP || (proto === UDP && l4.readUInt16BE(6) !== 0)) {
    assert.equal(inetChecksum(l4, pseudoSum(hdr.subarray(12, 16), hdr.subarray(16, 20), proto, l4.length)), 0, 'L4 checksum');
  }
}

const srcOf = (f: Buffer): string => [...f.subarray(26, 30)].join('.');
const dstOf = (f: Buffer): string => [...f.subarray(30, 34)].join('.');

describe('nrd_netdev masquerade (BPF_PROG_TEST_RUN)', () => {
  const objects: LoadedObject[] = [];
  let o: LoadedObject;
  let egress: number;
  let ingress: number;
  let nat: TypedMap<Parameters<typeof nat4KeyCodec.encode>[0], Nat4Entry>;
  let drops: PerCpuMap<number, { packets: bigint; bytes: bigint }>;

  before(() => {
    o = load();
    objects.push(o);
    egress = o.programFd('nrd_dev_egress');
    ingress = o.programFd('nrd_dev_ingress');
    nat = new TypedMap(o.mapFd('nrd_nat4'), nat4KeyCodec, nat4EntryCodec);
    drops = new PerCpuMap(o.mapFd('nrd_dp_drops'), u32Codec, counterCodec);
  });
  after(() => objects.forEach((x) => x.close()));

  const outKey = (proto: number, sport: number, dport: number, dst = REMOTE) =>
    ({ saddr: ip(POD.ip4), daddr: ip(dst), sport, dport, proto, dir: NatDir.OUT });
  const replyKey = (proto: number, sport: number, natPort: number, src = REMOTE) =>
    ({ saddr: ip(src), daddr: ip(NODE), sport, dport: natPort, proto, dir: NatDir.REPLY });

  let tcpPort = 0;
  it('masquerades a TCP SYN leaving the cluster: node address, port from the range, valid checksums', () => {
    const syn = ipv4Packet(POD.ip4, REMOTE, TCP, tcpSegment(POD.ip4, REMOTE, 40000, 80, 0x02, 12));
    const r = progTestRun(egress, { data: syn });
    assert.equal(r.retval, TCX_NEXT);
    const out = r.dataOut;
    assert.equal(srcOf(out), NODE);
    assert.equal(dstOf(out), REMOTE);
    tcpPort = out.readUInt16BE(34);
    assert.ok(tcpPort >= 61000 && tcpPort <= 65535, `port ${tcpPort}`);
    assertChecksums(out);
    // nothing else changed
    const want = Buffer.from(syn);
    out.copy(want, 24, 24, 30); // header checksum + source address
    out.copy(want, 34, 34, 36); // source port
    out.copy(want, 50, 50, 52); // TCP checksum
    assert.deepEqual(out, want);
    const fwd = nat.get(outKey(TCP, 40000, 80));
    assert.ok(fwd);
    assert.deepEqual([srcOf(Buffer.concat([Buffer.alloc(26), fwd.addr])), fwd.port, fwd.state], [NODE, tcpPort, CtState.SYN]);
    assert.ok(fwd.lastSeenNs > 0n && fwd.createdNs === fwd.lastSeenNs);
    const rev = nat.get(replyKey(TCP, 80, tcpPort));
    assert.ok(rev);
    assert.deepEqual([rev.addr, rev.port], [ip(POD.ip4), 40000]);
  });

  it('keeps the port for later packets of the flow', () => {
    const ack = ipv4Packet(POD.ip4, REMOTE, TCP, tcpSegment(POD.ip4, REMOTE, 40000, 80, 0x10));
    const r = progTestRun(egress, { data: ack });
    assert.equal(r.dataOut.readUInt16BE(34), tcpPort);
    assertChecksums(r.dataOut);
  });

  it('reverse-translates the SYN-ACK and delivers it to the endpoint (redirect_peer), state EST', () => {
    const synAck = ipv4Packet(REMOTE, NODE, TCP, tcpSegment(REMOTE, NODE, 80, tcpPort, 0x12, 5));
    const r = progTestRun(ingress, { data: synAck });
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const out = r.dataOut;
    assert.deepEqual(out.subarray(0, 6), POD.mac);
    assert.deepEqual(out.subarray(6, 12), GW_MAC);
    assert.equal(dstOf(out), POD.ip4);
    assert.equal(out.readUInt16BE(36), 40000);
    assert.equal(out[22], 63);
    assertChecksums(out);
    // exactly what the endpoint would have received without NAT (apart from L2 and TTL)
    const want = ipv4Packet(REMOTE, POD.ip4, TCP, tcpSegment(REMOTE, POD.ip4, 80, 40000, 0x12, 5), { ttl: 63, l2: { dst: POD.mac, src: GW_MAC } });
    assert.deepEqual(out, want);
    assert.equal(nat.get(outKey(TCP, 40000, 80))?.state, CtState.EST);
  });

  it('moves the state to FIN and CLOSED on FIN and RST', () => {
    progTestRun(egress, { data: ipv4Packet(POD.ip4, REMOTE, TCP, tcpSegment(POD.ip4, REMOTE, 40000, 80, 0x11)) });
    assert.equal(nat.get(outKey(TCP, 40000, 80))?.state, CtState.FIN);
    progTestRun(ingress, { data: ipv4Packet(REMOTE, NODE, TCP, tcpSegment(REMOTE, NODE, 80, tcpPort, 0x04)) });
    assert.equal(nat.get(outKey(TCP, 40000, 80))?.state, CtState.CLOSED);
  });

  it('starts a new connection on a closed flow\'s tuple (client port reused) over in SYN, same port', () => {
    const syn = (sport: number) => ipv4Packet(POD.ip4, REMOTE, TCP, tcpSegment(POD.ip4, REMOTE, sport, 80, 0x02, 9));
    let r = progTestRun(egress, { data: syn(40000) });
    assert.equal(r.dataOut.readUInt16BE(34), tcpPort);
    assert.equal(nat.get(outKey(TCP, 40000, 80))?.state, CtState.SYN);
    // Same after a graceful close (FIN): the reused tuple must not inherit the FIN timeout.
    progTestRun(egress, { data: ipv4Packet(POD.ip4, REMOTE, TCP, tcpSegment(POD.ip4, REMOTE, 40000, 80, 0x11)) });
    assert.equal(nat.get(outKey(TCP, 40000, 80))?.state, CtState.FIN);
    r = progTestRun(egress, { data: syn(40000) });
    assert.equal(r.dataOut.readUInt16BE(34), tcpPort);
    assert.equal(nat.get(outKey(TCP, 40000, 80))?.state, CtState.SYN);
    // A retransmitted FIN or a SYN-ACK-less segment does not reopen: only a bare SYN does.
    progTestRun(egress, { data: ipv4Packet(POD.ip4, REMOTE, TCP, tcpSegment(POD.ip4, REMOTE, 40000, 80, 0x11)) });
    progTestRun(egress, { data: ipv4Packet(POD.ip4, REMOTE, TCP, tcpSegment(POD.ip4, REMOTE, 40000, 80, 0x10)) });
    assert.equal(nat.get(outKey(TCP, 40000, 80))?.state, CtState.FIN);
  });

  let udpOut: Buffer = Buffer.alloc(0);
  let udpPort = 0;
  it('masquerades UDP and translates the reply back, checksums valid both ways', () => {
    const q = ipv4Packet(POD.ip4, REMOTE, UDP, udpDatagram(POD.ip4, REMOTE, 5353, 53, 30));
    const r = progTestRun(egress, { data: q });
    assert.equal(r.retval, TCX_NEXT);
    udpOut = r.dataOut;
    udpPort = udpOut.readUInt16BE(34);
    assert.equal(srcOf(udpOut), NODE);
    assertChecksums(udpOut);
    const reply = ipv4Packet(REMOTE, NODE, UDP, udpDatagram(REMOTE, NODE, 53, udpPort, 40));
    const back = progTestRun(ingress, { data: reply });
    assert.equal(back.retval, TC_ACT_REDIRECT);
    assert.deepEqual(back.dataOut,
      ipv4Packet(REMOTE, POD.ip4, UDP, udpDatagram(REMOTE, POD.ip4, 53, 5353, 40), { ttl: 63, l2: { dst: POD.mac, src: GW_MAC } }));
    assert.equal(nat.get(outKey(UDP, 5353, 53))?.state, CtState.EST);
  });

  it('restores an evicted REPLY half with the same port on the next outgoing packet', () => {
    assert.ok(nat.delete(replyKey(UDP, 53, udpPort)));
    const r = progTestRun(egress, { data: ipv4Packet(POD.ip4, REMOTE, UDP, udpDatagram(POD.ip4, REMOTE, 5353, 53, 30)) });
    assert.equal(r.dataOut.readUInt16BE(34), udpPort);
    const rev = nat.get(replyKey(UDP, 53, udpPort));
    assert.deepEqual([rev?.addr, rev?.port], [ip(POD.ip4), 5353]);
  });

  it('leaves a zero UDP checksum zero', () => {
    const d = udpDatagram(POD.ip4, REMOTE, 6000, 9999);
    d.writeUInt16BE(0, 6);
    const r = progTestRun(egress, { data: ipv4Packet(POD.ip4, REMOTE, UDP, d) });
    assert.equal(r.dataOut.readUInt16BE(34 + 6), 0);
    assertChecksums(r.dataOut);
  });

  it('masquerades ICMP echo by identifier and restores it on the reply', () => {
    const req = ipv4Packet(POD.ip4, REMOTE, ICMP, icmpEcho(8, 0x1234, 7));
    const r = progTestRun(egress, { data: req });
    assert.equal(r.retval, TCX_NEXT);
    const id = r.dataOut.readUInt16BE(38);
    assert.ok(id >= 61000, `id ${id}`);
    assert.equal(srcOf(r.dataOut), NODE);
    assertChecksums(r.dataOut);
    assert.equal(nat.get(outKey(ICMP, 0x1234, 0))?.port, id);
    const back = progTestRun(ingress, { data: ipv4Packet(REMOTE, NODE, ICMP, icmpEcho(0, id, 7)) });
    assert.equal(back.retval, TC_ACT_REDIRECT);
    assert.deepEqual(back.dataOut, ipv4Packet(REMOTE, POD.ip4, ICMP, icmpEcho(0, 0x1234, 7), { ttl: 63, l2: { dst: POD.mac, src: GW_MAC } }));
  });

  it('translates an ICMP time-exceeded quoting a masqueraded UDP packet back to the endpoint', () => {
    const router = '203.0.113.1';
    const err = ipv4Packet(router, NODE, ICMP, icmpError(11, 0, udpOut.subarray(14)));
    const r = progTestRun(ingress, { data: err });
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const out = r.dataOut;
    assert.equal(dstOf(out), POD.ip4);
    assertChecksums(out); // outer IP and ICMP
    const quoted = out.subarray(42);
    // the quoted packet is now what the endpoint sent (the original frame's first 28 IP bytes)
    const original = ipv4Packet(POD.ip4, REMOTE, UDP, udpDatagram(POD.ip4, REMOTE, 5353, 53, 30)).subarray(14, 42);
    assert.deepEqual(quoted, original);
    assert.equal(inetChecksum(quoted.subarray(0, 20)), 0, 'quoted IPv4 header checksum');
  });

  it('translates an ICMP error quoting a masqueraded echo request', () => {
    const req = progTestRun(egress, { data: ipv4Packet(POD.ip4, REMOTE, ICMP, icmpEcho(8, 0x0777, 1)) }).dataOut;
    const err = ipv4Packet('203.0.113.1', NODE, ICMP, icmpError(3, 1, req.subarray(14)));
    const r = progTestRun(ingress, { data: err });
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assertChecksums(r.dataOut);
    assert.deepEqual(r.dataOut.subarray(42), ipv4Packet(POD.ip4, REMOTE, ICMP, icmpEcho(8, 0x0777, 1)).subarray(14, 42));
  });

  it('does not masquerade towards cluster pools, exclusions, or traffic not from an endpoint', () => {
    for (const [src, dst] of [[POD.ip4, '10.244.2.3'], [POD.ip4, '172.16.5.5'], [NODE, REMOTE], ['10.244.9.9', REMOTE]]) {
      const pkt = ipv4Packet(src, dst, UDP, udpDatagram(src, dst, 1000, 2000));
      const r = progTestRun(egress, { data: pkt });
      assert.equal(r.retval, TCX_NEXT);
      assert.deepEqual(r.dataOut, pkt, `${src} -> ${dst}`);
    }
  });

  it('hands the node\'s own traffic on and delivers native-routed traffic to a local endpoint', () => {
    const own = ipv4Packet(REMOTE, NODE, TCP, tcpSegment(REMOTE, NODE, 443, 50000, 0x12));
    const r = progTestRun(ingress, { data: own });
    assert.equal(r.retval, TCX_NEXT);
    assert.deepEqual(r.dataOut, own);
    const v4 = progTestRun(ingress, { data: ipv4Packet('10.244.2.3', POD.ip4, UDP, udpDatagram('10.244.2.3', POD.ip4, 1, 2)) });
    assert.equal(v4.retval, TC_ACT_REDIRECT);
    assert.deepEqual(v4.dataOut.subarray(0, 6), POD.mac);
    assertChecksums(v4.dataOut);
    const v6 = progTestRun(ingress, { data: ipv6Packet('fd00:244:2::3', POD.ip6, UDP, udpDatagram('fd00:244:2::3', POD.ip6, 1, 2)) });
    assert.equal(v6.retval, TC_ACT_REDIRECT);
    assert.equal(v6.dataOut[21], 63);
  });

  it('drops with nat_exhausted when every pick of the range collides', () => {
    const tiny = load({ ...KNOBS, nat_port_min: 61000, nat_port_max: 61000 });
    objects.push(tiny);
    const tnat = new TypedMap(tiny.mapFd('nrd_nat4'), nat4KeyCodec, nat4EntryCodec);
    const tdrops = new PerCpuMap(tiny.mapFd('nrd_dp_drops'), u32Codec, counterCodec);
    tnat.set(replyKey(TCP, 80, 61000), { addr: ip('10.244.1.99'), port: 1, state: CtState.EST, flags: 0, lastSeenNs: 1n, createdNs: 1n });
    const r = progTestRun(tiny.programFd('nrd_dev_egress'), { data: ipv4Packet(POD.ip4, REMOTE, TCP, tcpSegment(POD.ip4, REMOTE, 40001, 80, 0x02)) });
    assert.equal(r.retval, TC_ACT_SHOT);
    assert.equal(sumCounters(tdrops.get(DropReason.nat_exhausted) ?? []).packets, 1n);
    assert.equal(tnat.get(outKey(TCP, 40001, 80)), undefined);
    // the same port towards another remote port is free
    const ok = progTestRun(tiny.programFd('nrd_dev_egress'), { data: ipv4Packet(POD.ip4, REMOTE, TCP, tcpSegment(POD.ip4, REMOTE, 40001, 443, 0x02)) });
    assert.equal(ok.retval, TCX_NEXT);
    assert.equal(ok.dataOut.readUInt16BE(34), 61000);
    assert.equal(sumCounters(drops.get(DropReason.nat_exhausted) ?? []).packets, 0n);
  });

  it('a closed TCP flow gives its port to a new one (reset at once, FIN after 1 s idle); a live one never does', () => {
    const tiny = load({ ...KNOBS, nat_port_min: 61001, nat_port_max: 61001 });
    objects.push(tiny);
    const tnat = new TypedMap(tiny.mapFd('nrd_nat4'), nat4KeyCodec, nat4EntryCodec);
    const syn = (sport: number) => ipv4Packet(POD.ip4, REMOTE, TCP, tcpSegment(POD.ip4, REMOTE, sport, 8080, 0x02));
    const egressT = tiny.programFd('nrd_dev_egress');
    assert.equal(progTestRun(egressT, { data: syn(41000) }).retval, TCX_NEXT, 'the first flow takes the only port');
    const reply = replyKey(TCP, 8080, 61001);
    const now = tnat.get(reply)!;
    // A FIN seen a moment ago: the flow may still be draining, the port stays taken.
    tnat.set(reply, { ...now, state: CtState.FIN });
    assert.equal(progTestRun(egressT, { data: syn(41001) }).retval, TC_ACT_SHOT);
    // The same FIN flow idle for long: its port goes to the new flow, and its OUT entry goes with it.
    tnat.set(reply, { ...now, state: CtState.FIN, lastSeenNs: 1n });
    const r = progTestRun(egressT, { data: syn(41002) });
    assert.equal(r.retval, TCX_NEXT);
    assert.equal(r.dataOut.readUInt16BE(34), 61001);
    assert.equal(tnat.get(outKey(TCP, 41000, 8080)), undefined, 'the old flow is forgotten');
    assert.equal(tnat.get(outKey(TCP, 41002, 8080))?.port, 61001);
    assert.equal(tnat.get(reply)?.port, 41002, 'replies now go to the new flow');
    // A reset flow gives its port at once.
    tnat.set(reply, { ...tnat.get(reply)!, state: CtState.CLOSED });
    const again = progTestRun(egressT, { data: syn(41003) });
    assert.equal(again.retval, TCX_NEXT);
    assert.equal(tnat.get(reply)?.port, 41003);
  });
});
