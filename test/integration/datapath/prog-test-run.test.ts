// BPF_PROG_TEST_RUN of nrd_xdp and nrd_tc with built packets and seeded maps: verdicts, output
// bytes and counters, no network needed (root: loading programs needs CAP_BPF).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { progTestRun } from '../../../daemon/datapath/libbpf.js';
import {
  Dir,
  NRD_TC_F_STATS,
  PerCpuMap,
  TypedMap,
  XdpStat,
  counterCodec,
  denyValueCodec,
  ifKeyCodec,
  lpm4KeyCodec,
  lpm6KeyCodec,
  parseCidr,
  sumCounters,
  u32Codec,
  type Counter,
} from '../../../daemon/datapath/maps.js';
import { type LoadedObject, loadObject } from '../../../daemon/datapath/objects.js';
import { arpRequest, ipv4Udp, ipv6Udp, truncatedIpv4 } from './packets.js';
import { objectDir } from './env.js';

const XDP_DROP = 1;
const XDP_PASS = 2;
const TCX_NEXT = 0xffffffff; // -1 as the u32 retval
const LO_IFINDEX = 1; // test runs of skb programs see the loopback device of the caller's netns

describe('nrd_xdp prefilter (BPF_PROG_TEST_RUN)', () => {
  let obj: LoadedObject;
  let prog: number;
  let stats: PerCpuMap<number, Counter>;
  const counter = (i: number): Counter => sumCounters(stats.get(i) ?? []);

  before(() => {
    obj = loadObject({ path: join(objectDir, 'nrd_xdp.bpf.o') });
    prog = obj.programFd('nrd_xdp_prefilter');
    stats = new PerCpuMap(obj.mapFd('nrd_xdp_stats'), u32Codec, counterCodec);
    const deny4 = new TypedMap(obj.mapFd('nrd_deny4'), lpm4KeyCodec, denyValueCodec);
    const deny6 = new TypedMap(obj.mapFd('nrd_deny6'), lpm6KeyCodec, denyValueCodec);
    deny4.set(parseCidr('198.51.100.0/24'), { rule: 0, flags: 0 });
    deny4.set(parseCidr('203.0.113.7/32'), { rule: 1, flags: 0 });
    deny6.set(parseCidr('2001:db8:bad::/48'), { rule: 2, flags: 0 });
  });
  after(() => obj?.close());

  it('drops an IPv4 source inside a denied /24 and counts it', () => {
    const pkt = ipv4Udp('198.51.100.77', '192.0.2.1');
    const before = counter(XdpStat.DROP_DENY4);
    const r = progTestRun(prog, { data: pkt });
    assert.equal(r.retval, XDP_DROP);
    const now = counter(XdpStat.DROP_DENY4);
    assert.equal(now.packets - before.packets, 1n);
    assert.equal(now.bytes - before.bytes, BigInt(pkt.length));
  });

  it('drops a denied /32 host but passes its neighbour', () => {
    assert.equal(progTestRun(prog, { data: ipv4Udp('203.0.113.7', '192.0.2.1') }).retval, XDP_DROP);
    assert.equal(progTestRun(prog, { data: ipv4Udp('203.0.113.8', '192.0.2.1') }).retval, XDP_PASS);
  });

  it('passes other IPv4 sources unchanged and counts them as pass', () => {
    const pkt = ipv4Udp('192.0.2.10', '198.51.100.1'); // denied range as destination: irrelevant
    const before = counter(XdpStat.PASS);
    const r = progTestRun(prog, { data: pkt });
    assert.equal(r.retval, XDP_PASS);
    assert.deepEqual(r.dataOut, pkt);
    assert.equal(counter(XdpStat.PASS).packets - before.packets, 1n);
  });

  it('drops a denied IPv6 source and passes the next /48', () => {
    const before = counter(XdpStat.DROP_DENY6);
    assert.equal(progTestRun(prog, { data: ipv6Udp('2001:db8:bad:1::5', '2001:db8::1') }).retval, XDP_DROP);
    assert.equal(counter(XdpStat.DROP_DENY6).packets - before.packets, 1n);
    assert.equal(progTestRun(prog, { data: ipv6Udp('2001:db8:bae::5', '2001:db8::1') }).retval, XDP_PASS);
  });

  it('passes non-IP frames and truncated IP headers (the latter counted malformed)', () => {
    assert.equal(progTestRun(prog, { data: arpRequest() }).retval, XDP_PASS);
    const before = counter(XdpStat.MALFORMED);
    assert.equal(progTestRun(prog, { data: truncatedIpv4() }).retval, XDP_PASS);
    assert.equal(counter(XdpStat.MALFORMED).packets - before.packets, 1n);
  });

  it('counts every run of a repeated test run', () => {
    const before = counter(XdpStat.DROP_DENY4);
    assert.equal(progTestRun(prog, { data: ipv4Udp('198.51.100.1', '192.0.2.1'), repeat: 5 }).retval, XDP_DROP);
    assert.equal(counter(XdpStat.DROP_DENY4).packets - before.packets, 5n);
  });
});

describe('nrd_tc (BPF_PROG_TEST_RUN)', () => {
  const objects: LoadedObject[] = [];
  after(() => objects.forEach((o) => o.close()));

  function load(flags: number): LoadedObject {
    const o = loadObject({ path: join(objectDir, 'nrd_tc.bpf.o'), knobs: { cfg_flags: flags } });
    objects.push(o);
    return o;
  }

  it('returns TCX_NEXT and counts packets and bytes per interface and direction', () => {
    const o = load(NRD_TC_F_STATS);
    const stats = new PerCpuMap(o.mapFd('nrd_if_stats'), ifKeyCodec, counterCodec);
    const pkt = ipv4Udp('10.244.1.2', '10.244.2.3', 100);
    const ing = progTestRun(o.programFd('nrd_tc_ingress'), { data: pkt });
    assert.equal(ing.retval, TCX_NEXT);
    assert.deepEqual(ing.dataOut, pkt);
    progTestRun(o.programFd('nrd_tc_ingress'), { data: pkt });
    assert.equal(progTestRun(o.programFd('nrd_tc_egress'), { data: ipv6Udp('fd00:244::1', 'fd00:244::2') }).retval, TCX_NEXT);
    const i = sumCounters(stats.get({ ifindex: LO_IFINDEX, dir: Dir.INGRESS }) ?? []);
    assert.equal(i.packets, 2n);
    assert.equal(i.bytes, BigInt(2 * pkt.length));
    const e = sumCounters(stats.get({ ifindex: LO_IFINDEX, dir: Dir.EGRESS }) ?? []);
    assert.equal(e.packets, 1n);
    assert.deepEqual(stats.keys().map((k) => `${k.ifindex}/${k.dir}`).sort(), ['1/0', '1/1']);
  });

  it('counts nothing when the cfg_flags knob turns stats off at load time', () => {
    const o = load(0);
    const stats = new PerCpuMap(o.mapFd('nrd_if_stats'), ifKeyCodec, counterCodec);
    assert.equal(progTestRun(o.programFd('nrd_tc_ingress'), { data: arpRequest() }).retval, TCX_NEXT);
    assert.deepEqual(stats.keys(), []);
  });
});
