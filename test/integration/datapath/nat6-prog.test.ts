// BPF_PROG_TEST_RUN of nrd_netdev's IPv6 masquerade: TCP, UDP and ICMPv6 echo out and back,
// ICMPv6 errors (time exceeded, unreachable, packet too big) quoting a translated packet, the
// exclusions, the node_ip6 knob switching IPv6 masquerade off, and the daemon's GC on nrd_nat6.
// IPv6 has no header checksum; every L4 checksum covers the pseudo-header, and each one the
// program touched is recomputed here from scratch. Root (CAP_BPF).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { progTestRun } from '../../../daemon/datapath/libbpf.js';
import { PerCpuMap, TypedMap, counterCodec, lpm4KeyCodec, lpm6KeyCodec, parseCidr, sumCounters, u32Codec } from '../../../daemon/datapath/maps.js';
import { type LoadedObject, type KnobValue, loadObject } from '../../../daemon/datapath/objects.js';
import {
  CtState,
  DropReason,
  NRD_DP_F_IPV6,
  NRD_DP_F_MASQ,
  NatDir,
  NonatKind,
  type NatEntry,
  type NatKey,
  epKeyCodec,
  epValueCodec,
  ip4Knob,
  ip6Knob,
  macKnob,
  nat6EntryCodec,
  nat6KeyCodec,
  nonatValueCodec,
} from '../../../daemon/datapath/endpoint-layout.js';
import { planNatGc } from '../../../daemon/datapath/masquerade.js';
import { inetChecksum, ipv4Packet, ipv6Packet, mac, pseudoSum, tcpSegment, udpDatagram } from './packets.js';
import { objectDir } from './env.js';

const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;
const TCX_NEXT = 0xffffffff;
const TCP = 6;
const UDP = 17;
const ICMP6 = 58;

const OBJ = join(objectDir, 'nrd_netdev.bpf.o');
const GW_MAC = mac('02:aa:bb:cc:dd:01');
const NODE4 = '192.0.2.10';
const NODE6 = '2001:db8:1::10';
const REMOTE = '2001:db8:99::7';
const ROUTER = '2001:db8:50::1';
const POD = { ip4: '10.244.1.5', ip6: 'fd00:244:1::5', ifindex: 42, mac: mac('02:00:00:00:01:05') };
const ip = (s: string): Buffer => parseCidr(s).addr;
const KNOBS: Record<string, KnobValue> = {
  gw_mac: macKnob(GW_MAC), cfg_flags: NRD_DP_F_IPV6 | NRD_DP_F_MASQ, node_ip4: ip4Knob(ip(NODE4)), node_ip6: ip6Knob(ip(NODE6)),
};
const L2 = { dst: POD.mac, src: GW_MAC };

function load(knobs: Record<string, KnobValue> = KNOBS): LoadedObject {
  const o = loadObject({ path: OBJ, knobs });
  const eps = new TypedMap(o.mapFd('nrd_endpoints'), epKeyCodec, epValueCodec);
  eps.set({ family: 4, addr: ip(POD.ip4) }, { ifindex: POD.ifindex, id: 5, mac: POD.mac, flags: 0 });
  eps.set({ family: 6, addr: ip(POD.ip6) }, { ifindex: POD.ifindex, id: 5, mac: POD.mac, flags: 0 });
  const nonat4 = new TypedMap(o.mapFd('nrd_nonat4'), lpm4KeyCodec, nonatValueCodec);
  nonat4.set(parseCidr('10.244.0.0/16'), { kind: NonatKind.POOL, reserved: 0 });
  const nonat6 = new TypedMap(o.mapFd('nrd_nonat6'), lpm6KeyCodec, nonatValueCodec);
  nonat6.set(parseCidr('fd00:244::/32'), { kind: NonatKind.POOL, reserved: 0 });
  nonat6.set(parseCidr('2001:db8:ffff::/48'), { kind: NonatKind.EXCLUDE, reserved: 0 });
  return o;
}

/** An ICMPv6 message (type, code, 4 bytes of header data, rest) with its pseudo-header checksum. */
function icmp6(src: string, dst: string, type: number, code: number, rest: Buffer): Buffer {
  const m = Buffer.concat([Buffer.alloc(4), rest]);
  m[0] = type;
  m[1] = code;
  m.writeUInt16BE(inetChecksum(m, pseudoSum(ip(src), ip(dst), ICMP6, m.length)), 2);
  return m;
}

function echo6(src: string, dst: string, type: 128 | 129, id: number, seq = 1): Buffer {
  const rest = Buffer.alloc(4 + 16);
  rest.writeUInt16BE(id, 0);
  rest.writeUInt16BE(seq, 2);
  for (let i = 0; i < 16; i++) rest[4 + i] = i;
  return icmp6(src, dst, type, 0, rest);
}

/** ICMPv6 error quoting an IPv6 packet (no L2); word is the MTU of a packet too big, else 0. */
function error6(src: string, dst: string, type: number, code: number, quoted: Buffer, word = 0): Buffer {
  const rest = Buffer.alloc(4 + quoted.length);
  rest.writeUInt32BE(word, 0);
  quoted.copy(rest, 4);
  return icmp6(src, dst, type, code, rest);
}

const srcOf = (f: Buffer): Buffer => f.subarray(22, 38);
const dstOf = (f: Buffer): Buffer => f.subarray(38, 54);

/** The L4 checksum of an IPv6 frame (TCP, UDP, ICMPv6) verifies from scratch. */
function assertChecksum(frame: Buffer): void {
  const next = frame[20];
  const l4 = frame.subarray(54, 54 + frame.readUInt16BE(18));
  assert.equal(l4.length, frame.length - 54, 'payload length');
  if (next === TCP || next === UDP || next === ICMP6) {
    assert.equal(inetChecksum(l4, pseudoSum(srcOf(frame), dstOf(frame), next, l4.length)), 0, `checksum of next header ${next}`);
  }
}

describe('nrd_netdev IPv6 masquerade (BPF_PROG_TEST_RUN)', () => {
  const objects: LoadedObject[] = [];
  let egress: number;
  let ingress: number;
  let nat: TypedMap<NatKey, NatEntry>;

  before(() => {
    const o = load();
    objects.push(o);
    egress = o.programFd('nrd_dev_egress');
    ingress = o.programFd('nrd_dev_ingress');
    nat = new TypedMap(o.mapFd('nrd_nat6'), nat6KeyCodec, nat6EntryCodec);
  });
  after(() => objects.forEach((x) => x.close()));

  const outKey = (proto: number, sport: number, dport: number): NatKey =>
    ({ saddr: ip(POD.ip6), daddr: ip(REMOTE), sport, dport, proto, dir: NatDir.OUT });
  const replyKey = (proto: number, sport: number, natPort: number): NatKey =>
    ({ saddr: ip(REMOTE), daddr: ip(NODE6), sport, dport: natPort, proto, dir: NatDir.REPLY });

  let tcpOut: Buffer = Buffer.alloc(0);
  let tcpPort = 0;
  it('masquerades a TCP SYN: node_ip6 as source, a port from the range, only those bytes and the checksum change', () => {
    const syn = ipv6Packet(POD.ip6, REMOTE, TCP, tcpSegment(POD.ip6, REMOTE, 40000, 80, 0x02, 12));
    const r = progTestRun(egress, { data: syn });
    assert.equal(r.retval, TCX_NEXT);
    tcpOut = r.dataOut;
    assert.deepEqual(srcOf(tcpOut), ip(NODE6));
    assert.deepEqual(dstOf(tcpOut), ip(REMOTE));
    tcpPort = tcpOut.readUInt16BE(54);
    assert.ok(tcpPort >= 61000 && tcpPort <= 65535, `port ${tcpPort}`);
    assertChecksum(tcpOut);
    const want = Buffer.from(syn);
    tcpOut.copy(want, 22, 22, 38); // source address
    tcpOut.copy(want, 54, 54, 56); // source port
    tcpOut.copy(want, 70, 70, 72); // TCP checksum
    assert.deepEqual(tcpOut, want);
    const fwd = nat.get(outKey(TCP, 40000, 80));
    assert.deepEqual([fwd?.addr, fwd?.port, fwd?.state], [ip(NODE6), tcpPort, CtState.SYN]);
    const rev = nat.get(replyKey(TCP, 80, tcpPort));
    assert.deepEqual([rev?.addr, rev?.port], [ip(POD.ip6), 40000]);
  });

  it('reverse-translates the SYN-ACK into exactly what the endpoint would get without NAT, state EST', () => {
    const r = progTestRun(ingress, { data: ipv6Packet(REMOTE, NODE6, TCP, tcpSegment(REMOTE, NODE6, 80, tcpPort, 0x12, 5)) });
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.deepEqual(r.dataOut, ipv6Packet(REMOTE, POD.ip6, TCP, tcpSegment(REMOTE, POD.ip6, 80, 40000, 0x12, 5), { hop: 63, l2: L2 }));
    assert.equal(nat.get(outKey(TCP, 40000, 80))?.state, CtState.EST);
  });

  let udpOut: Buffer = Buffer.alloc(0);
  it('masquerades UDP and translates the reply back, checksums valid both ways', () => {
    const r = progTestRun(egress, { data: ipv6Packet(POD.ip6, REMOTE, UDP, udpDatagram(POD.ip6, REMOTE, 5353, 53, 30)) });
    assert.equal(r.retval, TCX_NEXT);
    udpOut = r.dataOut;
    const port = udpOut.readUInt16BE(54);
    assert.deepEqual(srcOf(udpOut), ip(NODE6));
    assertChecksum(udpOut);
    const back = progTestRun(ingress, { data: ipv6Packet(REMOTE, NODE6, UDP, udpDatagram(REMOTE, NODE6, 53, port, 40)) });
    assert.equal(back.retval, TC_ACT_REDIRECT);
    assert.deepEqual(back.dataOut, ipv6Packet(REMOTE, POD.ip6, UDP, udpDatagram(REMOTE, POD.ip6, 53, 5353, 40), { hop: 63, l2: L2 }));
    assert.equal(nat.get(outKey(UDP, 5353, 53))?.state, CtState.EST);
  });

  let echoOut: Buffer = Buffer.alloc(0);
  it('masquerades ICMPv6 echo by identifier (the checksum follows the pseudo-header) and restores the reply', () => {
    const r = progTestRun(egress, { data: ipv6Packet(POD.ip6, REMOTE, ICMP6, echo6(POD.ip6, REMOTE, 128, 0x1234, 7)) });
    assert.equal(r.retval, TCX_NEXT);
    echoOut = r.dataOut;
    const id = echoOut.readUInt16BE(58);
    assert.ok(id >= 61000, `id ${id}`);
    assert.deepEqual(srcOf(echoOut), ip(NODE6));
    assertChecksum(echoOut);
    assert.equal(nat.get(outKey(ICMP6, 0x1234, 0))?.port, id);
    const back = progTestRun(ingress, { data: ipv6Packet(REMOTE, NODE6, ICMP6, echo6(REMOTE, NODE6, 129, id, 7)) });
    assert.equal(back.retval, TC_ACT_REDIRECT);
    assert.deepEqual(back.dataOut, ipv6Packet(REMOTE, POD.ip6, ICMP6, echo6(REMOTE, POD.ip6, 129, 0x1234, 7), { hop: 63, l2: L2 }));
  });

  it('translates a time exceeded quoting a masqueraded UDP datagram, quoted checksum included', () => {
    const original = ipv6Packet(POD.ip6, REMOTE, UDP, udpDatagram(POD.ip6, REMOTE, 5353, 53, 30)).subarray(14);
    const r = progTestRun(ingress, { data: ipv6Packet(ROUTER, NODE6, ICMP6, error6(ROUTER, NODE6, 3, 0, udpOut.subarray(14))) });
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assertChecksum(r.dataOut);
    assert.deepEqual(r.dataOut, ipv6Packet(ROUTER, POD.ip6, ICMP6, error6(ROUTER, POD.ip6, 3, 0, original), { hop: 63, l2: L2 }));
  });

  it('translates a destination unreachable quoting a masqueraded echo request', () => {
    const original = ipv6Packet(POD.ip6, REMOTE, ICMP6, echo6(POD.ip6, REMOTE, 128, 0x1234, 7)).subarray(14);
    const r = progTestRun(ingress, { data: ipv6Packet(ROUTER, NODE6, ICMP6, error6(ROUTER, NODE6, 1, 3, echoOut.subarray(14))) });
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.deepEqual(r.dataOut, ipv6Packet(ROUTER, POD.ip6, ICMP6, error6(ROUTER, POD.ip6, 1, 3, original), { hop: 63, l2: L2 }));
  });

  it('translates a packet too big quoting a masqueraded TCP segment (address and port; the TCP checksum past 8 bytes stays)', () => {
    const r = progTestRun(ingress, { data: ipv6Packet(ROUTER, NODE6, ICMP6, error6(ROUTER, NODE6, 2, 0, tcpOut.subarray(14), 1280)) });
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const out = r.dataOut;
    assertChecksum(out);
    assert.deepEqual(dstOf(out), ip(POD.ip6));
    assert.equal(out.readUInt32BE(58), 1280, 'MTU untouched');
    const quoted = out.subarray(62);
    const original = ipv6Packet(POD.ip6, REMOTE, TCP, tcpSegment(POD.ip6, REMOTE, 40000, 80, 0x02, 12)).subarray(14);
    assert.deepEqual(quoted.subarray(0, 48), original.subarray(0, 48));
  });

  it('does not masquerade towards pools or exclusions, nor traffic not from a local endpoint', () => {
    for (const [src, dst] of [[POD.ip6, 'fd00:244:2::3'], [POD.ip6, '2001:db8:ffff::5'], [NODE6, REMOTE], ['fd00:244:9::9', REMOTE]]) {
      const pkt = ipv6Packet(src, dst, UDP, udpDatagram(src, dst, 1000, 2000));
      const r = progTestRun(egress, { data: pkt });
      assert.equal(r.retval, TCX_NEXT);
      assert.deepEqual(r.dataOut, pkt, `${src} -> ${dst}`);
    }
  });

  it('hands the node\'s own IPv6 traffic (no flow, neighbour solicitations) on unchanged', () => {
    for (const pkt of [
      ipv6Packet(REMOTE, NODE6, TCP, tcpSegment(REMOTE, NODE6, 443, 50000, 0x12)),
      ipv6Packet(ROUTER, NODE6, ICMP6, icmp6(ROUTER, NODE6, 135, 0, Buffer.concat([Buffer.alloc(4), ip(NODE6)])), { hop: 255 }),
      ipv6Packet(ROUTER, NODE6, ICMP6, error6(ROUTER, NODE6, 1, 4, ipv6Packet(NODE6, REMOTE, UDP, udpDatagram(NODE6, REMOTE, 1, 2)).subarray(14))),
    ]) {
      const r = progTestRun(ingress, { data: pkt });
      assert.equal(r.retval, TCX_NEXT);
      assert.deepEqual(r.dataOut, pkt);
    }
  });

  it('with node_ip6 unset masquerades IPv4 only; IPv6 is routed unchanged', () => {
    const v4only = load({ ...KNOBS, node_ip6: ip6Knob(Buffer.alloc(16)) });
    objects.push(v4only);
    const prog = v4only.programFd('nrd_dev_egress');
    const pkt6 = ipv6Packet(POD.ip6, REMOTE, UDP, udpDatagram(POD.ip6, REMOTE, 7000, 53));
    const r6 = progTestRun(prog, { data: pkt6 });
    assert.equal(r6.retval, TCX_NEXT);
    assert.deepEqual(r6.dataOut, pkt6);
    assert.equal(new TypedMap(v4only.mapFd('nrd_nat6'), nat6KeyCodec, nat6EntryCodec).keys().length, 0);
    const r4 = progTestRun(prog, { data: ipv4Packet(POD.ip4, '198.51.100.7', UDP, udpDatagram(POD.ip4, '198.51.100.7', 7000, 53)) });
    assert.deepEqual([...r4.dataOut.subarray(26, 30)].join('.'), NODE4);
  });

  it('drops with nat_exhausted when the only port is taken towards that remote', () => {
    const tiny = load({ ...KNOBS, nat_port_min: 61000, nat_port_max: 61000 });
    objects.push(tiny);
    const tnat = new TypedMap(tiny.mapFd('nrd_nat6'), nat6KeyCodec, nat6EntryCodec);
    tnat.set(replyKey(TCP, 80, 61000), { addr: ip('fd00:244:1::99'), port: 1, state: CtState.EST, flags: 0, lastSeenNs: 1n, createdNs: 1n });
    const r = progTestRun(tiny.programFd('nrd_dev_egress'), { data: ipv6Packet(POD.ip6, REMOTE, TCP, tcpSegment(POD.ip6, REMOTE, 40001, 80, 0x02)) });
    assert.equal(r.retval, TC_ACT_SHOT);
    const drops = new PerCpuMap(tiny.mapFd('nrd_dp_drops'), u32Codec, counterCodec);
    assert.equal(sumCounters(drops.get(DropReason.nat_exhausted) ?? []).packets, 1n);
  });

  it('the daemon\'s GC plan removes expired IPv6 flows in pairs from the real map', () => {
    const entries = nat.entries();
    assert.ok(entries.length >= 6 && entries.length % 2 === 0, `${entries.length} entries`);
    const newest = entries.reduce((m, [, v]) => (v.lastSeenNs > m ? v.lastSeenNs : m), 0n);
    // 61 s after the newest packet: UDP (EST 60 s) and ICMPv6 (30 s) have expired, the
    // established TCP flow (2 h) has not.
    const plan = planNatGc(entries, newest + 61n * 1_000_000_000n);
    for (const k of plan.delete) assert.ok(nat.delete(k));
    const left = nat.entries();
    assert.deepEqual(left.map(([k]) => k.proto), [TCP, TCP]);
    assert.deepEqual(left.map(([k]) => k.dir).sort(), [NatDir.OUT, NatDir.REPLY]);
  });
});
