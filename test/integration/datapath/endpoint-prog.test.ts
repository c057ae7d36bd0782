// BPF_PROG_TEST_RUN of nrd_endpoint (tc ingress of an endpoint's host-side veth) with built
// packets and seeded maps: ARP and NDP answers for the gateway, same-node forwarding, the source
// check, and FIB forwarding against routes in a namespace the test creates. Root (CAP_BPF).
// Test runs cannot follow a redirect: they assert the verdict and the bytes the program left.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { progTestRun } from '../../../daemon/datapath/libbpf.js';
import { PerCpuMap, TypedMap, counterCodec, parseCidr, sumCounters, u32Codec } from '../../../daemon/datapath/maps.js';
import { type LoadedObject, loadObject } from '../../../daemon/datapath/objects.js';
import {
  DropReason,
  NRD_DP_F_ARP_ANY,
  NRD_DP_F_IPV6,
  NRD_EP_IF_F_IP4,
  NRD_EP_IF_F_IP6,
  epCountersCodec,
  epIfCodec,
  epKeyCodec,
  epValueCodec,
  macKnob,
  sumEpCounters,
} from '../../../daemon/datapath/endpoint-layout.js';
import {
  arpRequestFor,
  inetChecksum,
  ipv4Packet,
  ipv6Packet,
  mac,
  neighborSolicitation,
  pseudoSum,
  udpDatagram,
} from './packets.js';
import { Cleanup, addNetns, nsExec, objectDir, run } from './env.js';
import type { TestRunCommand, TestRunReply } from './test-run-agent.js';

const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;
const TCX_NEXT = 0xffffffff; // -1 as the u32 retval
const LO_IFINDEX = 1; // skb test runs run "on" the loopback device of the caller's namespace

const OBJ = join(objectDir, 'nrd_endpoint.bpf.o');
const GW_MAC = mac('02:aa:bb:cc:dd:01');
const A = { ifindex: LO_IFINDEX, mac: mac('02:00:00:00:01:05'), ip4: '10.244.1.5', ip6: 'fd00:244:1::5', id: 5 };
const B = { ifindex: 42, mac: mac('02:00:00:00:01:06'), ip4: '10.244.1.6', ip6: 'fd00:244:1::6', id: 6 };
const ip = (s: string): Buffer => parseCidr(s).addr;
const KNOBS = { gw_mac: macKnob(GW_MAC), cfg_flags: NRD_DP_F_IPV6 | NRD_DP_F_ARP_ANY };

/** The seeded maps as raw entries: endpoint A sits behind "lo" (the test-run device), B behind 42. */
function seedEntries(): Array<{ map: string; key: Buffer; value: Buffer }> {
  const out: Array<{ map: string; key: Buffer; value: Buffer }> = [];
  for (const ep of [A, B]) {
    out.push({
      map: 'nrd_ep_ifs', key: u32Codec.encode(ep.ifindex),
      value: epIfCodec.encode({ id: ep.id, flags: NRD_EP_IF_F_IP4 | NRD_EP_IF_F_IP6, ip4: ip(ep.ip4), ip6: ip(ep.ip6) }),
    });
    for (const [family, a] of [[4, ep.ip4], [6, ep.ip6]] as const) {
      out.push({
        map: 'nrd_endpoints', key: epKeyCodec.encode({ family, addr: ip(a) }),
        value: epValueCodec.encode({ ifindex: ep.ifindex, id: ep.id, mac: ep.mac, flags: 0 }),
      });
    }
  }
  return out;
}

function load(knobs: Record<string, number | bigint> = KNOBS, seed = true): LoadedObject {
  const o = loadObject({ path: OBJ, knobs });
  if (seed) {
    for (const e of seedEntries()) new TypedMap(o.mapFd(e.map), { size: e.key.length, encode: (b: Buffer) => b, decode: (b) => b },
      { size: e.value.length, encode: (b: Buffer) => b, decode: (b) => b }).set(e.key, e.value);
  }
  return o;
}

/** Expected IPv4 frame after same-node delivery: MACs rewritten, TTL - 1, checksum recomputed. */
function routedV4(pkt: Buffer, dstMac: Buffer): Buffer {
  const out = Buffer.from(pkt);
  dstMac.copy(out, 0);
  GW_MAC.copy(out, 6);
  out[14 + 8] -= 1;
  out.writeUInt16BE(0, 14 + 10);
  out.writeUInt16BE(inetChecksum(out.subarray(14, 34)), 14 + 10);
  return out;
}

describe('nrd_endpoint (BPF_PROG_TEST_RUN)', () => {
  const objects: LoadedObject[] = [];
  let o: LoadedObject;
  let prog: number;
  let drops: PerCpuMap<number, { packets: bigint; bytes: bigint }>;
  const dropped = (reason: number): bigint => sumCounters(drops.get(reason) ?? []).packets;
  const runPkt = (data: Buffer, p = prog) => progTestRun(p, { data });

  before(() => {
    o = load();
    objects.push(o);
    prog = o.programFd('nrd_ep_ingress');
    drops = new PerCpuMap(o.mapFd('nrd_dp_drops'), u32Codec, counterCodec);
  });
  after(() => objects.forEach((x) => x.close()));

  it('answers an ARP request for 169.254.1.1 with the gateway MAC, back out the same veth', () => {
    const req = arpRequestFor(A.mac, A.ip4, '169.254.1.1');
    const r = runPkt(req);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const want = Buffer.concat([
      A.mac, GW_MAC, Buffer.from('0806', 'hex'), // Ethernet: to the asker, from the gateway
      Buffer.from('0001' + '0800' + '06' + '04' + '0002', 'hex'), // Ethernet/IPv4, op reply
      GW_MAC, ip('169.254.1.1'), // sender: the gateway
      A.mac, ip(A.ip4), // target: the asker
    ]);
    assert.deepEqual(r.dataOut, want);
  });

  it('answers ARP for any other address (ARP_ANY) but never probes or the endpoint\'s own address', () => {
    const other = runPkt(arpRequestFor(A.mac, A.ip4, '10.244.1.99'));
    assert.equal(other.retval, TC_ACT_REDIRECT);
    assert.deepEqual(other.dataOut.subarray(22, 28), GW_MAC);
    assert.deepEqual(other.dataOut.subarray(28, 32), ip('10.244.1.99'));
    for (const pkt of [arpRequestFor(A.mac, '0.0.0.0', A.ip4), arpRequestFor(A.mac, A.ip4, A.ip4), arpRequestFor(A.mac, '10.244.1.50', A.ip4)]) {
      const r = runPkt(pkt);
      assert.equal(r.retval, TCX_NEXT);
      assert.deepEqual(r.dataOut, pkt);
    }
  });

  it('answers only the gateway when the ARP_ANY knob is off', () => {
    const g = load({ ...KNOBS, cfg_flags: NRD_DP_F_IPV6 });
    objects.push(g);
    const p = g.programFd('nrd_ep_ingress');
    assert.equal(runPkt(arpRequestFor(A.mac, A.ip4, '10.244.1.99'), p).retval, TCX_NEXT);
    assert.equal(runPkt(arpRequestFor(A.mac, A.ip4, '169.254.1.1'), p).retval, TC_ACT_REDIRECT);
  });

  it('IPv4-only variant: drops routable IPv6 as spoofed, leaves link-scope IPv6 to the stack', () => {
    const v4only = load({ ...KNOBS, cfg_flags: NRD_DP_F_ARP_ANY });
    objects.push(v4only);
    const p = v4only.programFd('nrd_ep_ingress');
    assert.equal(runPkt(ipv6Packet(A.ip6, B.ip6, 17, udpDatagram(A.ip6, B.ip6, 1, 2)), p).retval, TC_ACT_SHOT);
    const ns = neighborSolicitation(A.mac, 'fe80::5', 'fe80::1');
    assert.equal(runPkt(ns, p).retval, TCX_NEXT);
    assert.equal(runPkt(ipv4Packet(A.ip4, B.ip4, 17, udpDatagram(A.ip4, B.ip4, 1, 2)), p).retval, TC_ACT_REDIRECT);
  });

  for (const sll of [true, false]) {
    it(`answers a neighbour solicitation for fe80::1 (${sll ? 'with' : 'without'} source LL option) with a valid NA`, () => {
      const src = 'fe80::5';
      const r = runPkt(neighborSolicitation(A.mac, src, 'fe80::1', sll));
      assert.equal(r.retval, TC_ACT_REDIRECT);
      const na = Buffer.alloc(32);
      na[0] = 136; // Neighbor Advertisement, code 0
      na.writeUInt32BE(0xe0000000, 4); // R, S, O
      ip('fe80::1').copy(na, 8);
      na[24] = 2; // target link-layer address option, 1 x 8 octets
      na[25] = 1;
      GW_MAC.copy(na, 26);
      na.writeUInt16BE(inetChecksum(na, pseudoSum(ip('fe80::1'), ip(src), 58, 32)), 2);
      const want = ipv6Packet('fe80::1', src, 58, na, { hop: 255, l2: { src: GW_MAC, dst: A.mac } });
      assert.deepEqual(r.dataOut, want);
      // and the checksum verifies from scratch over pseudo-header + message
      assert.equal(inetChecksum(r.dataOut.subarray(54), pseudoSum(ip('fe80::1'), ip(src), 58, 32)), 0);
    });
  }

  it('leaves DAD solicitations and solicitations for the endpoint\'s own address to the stack', () => {
    for (const pkt of [neighborSolicitation(A.mac, '::', 'fe80::1234'), neighborSolicitation(A.mac, 'fe80::5', A.ip6)]) {
      const r = runPkt(pkt);
      assert.equal(r.retval, TCX_NEXT);
      assert.deepEqual(r.dataOut, pkt);
    }
  });

  it('delivers IPv4 to a same-node endpoint: MACs rewritten, TTL - 1, checksum fixed, redirect', () => {
    const stats = new PerCpuMap(o.mapFd('nrd_ep_stats'), u32Codec, epCountersCodec);
    const fromBefore = sumEpCounters(stats.get(A.ifindex) ?? []);
    const pkt = ipv4Packet(A.ip4, B.ip4, 17, udpDatagram(A.ip4, B.ip4, 40000, 53), { l2: { src: A.mac, dst: GW_MAC } });
    const r = runPkt(pkt);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    assert.deepEqual(r.dataOut, routedV4(pkt, B.mac));
    assert.equal(r.dataOut[22], 63);
    assert.equal(inetChecksum(r.dataOut.subarray(14, 34)), 0);
    const from = sumEpCounters(stats.get(A.ifindex) ?? []);
    assert.equal(from.from_packets - fromBefore.from_packets, 1n);
    assert.equal(from.from_bytes - fromBefore.from_bytes, BigInt(pkt.length));
    assert.equal(sumEpCounters(stats.get(B.ifindex) ?? []).to_packets >= 1n, true);
  });

  it('delivers IPv6 to a same-node endpoint with hop limit - 1', () => {
    const pkt = ipv6Packet(A.ip6, B.ip6, 17, udpDatagram(A.ip6, B.ip6, 40000, 53), { l2: { src: A.mac, dst: GW_MAC } });
    const r = runPkt(pkt);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const want = Buffer.from(pkt);
    B.mac.copy(want, 0);
    GW_MAC.copy(want, 6);
    want[14 + 7] = 63;
    assert.deepEqual(r.dataOut, want);
  });

  it('hands a TTL-1 packet to the stack unchanged (it sends the time-exceeded)', () => {
    const pkt = ipv4Packet(A.ip4, B.ip4, 17, udpDatagram(A.ip4, B.ip4, 40000, 53), { ttl: 1 });
    const r = runPkt(pkt);
    assert.equal(r.retval, TCX_NEXT);
    assert.deepEqual(r.dataOut, pkt);
  });

  it('drops and counts a spoofed IPv4 or IPv6 source', () => {
    const before = dropped(DropReason.spoofed);
    const v4 = runPkt(ipv4Packet('10.244.1.77', B.ip4, 17, udpDatagram('10.244.1.77', B.ip4, 1, 2)));
    assert.equal(v4.retval, TC_ACT_SHOT);
    const v6 = runPkt(ipv6Packet('fd00:244:1::77', B.ip6, 17, udpDatagram('fd00:244:1::77', B.ip6, 1, 2)));
    assert.equal(v6.retval, TC_ACT_SHOT);
    assert.equal(dropped(DropReason.spoofed) - before, 2n);
  });

  it('drops everything from a veth that is not a known endpoint', () => {
    const bare = load(KNOBS, false);
    objects.push(bare);
    const d = new PerCpuMap(bare.mapFd('nrd_dp_drops'), u32Codec, counterCodec);
    const r = runPkt(arpRequestFor(A.mac, A.ip4, '169.254.1.1'), bare.programFd('nrd_ep_ingress'));
    assert.equal(r.retval, TC_ACT_SHOT);
    assert.equal(sumCounters(d.get(DropReason.unknown_endpoint) ?? []).packets, 1n);
  });
});

describe('nrd_endpoint FIB forwarding (test runs inside a namespace with its own routes)', () => {
  const cleanup = new Cleanup();
  let ns = '';
  const agentPath = fileURLToPath(new URL('./test-run-agent.js', import.meta.url));

  before(() => {
    try {
      ns = addNetns(cleanup, 'epfib');
      nsExec(ns, 'sysctl', ['-qw', 'net.ipv4.conf.all.forwarding=1', 'net.ipv6.conf.all.forwarding=1']);
      const ipn = (...args: string[]): string => nsExec(ns, 'ip', args);
      ipn('link', 'set', 'lo', 'up');
      ipn('link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up1'); // no dummy module here
      ipn('link', 'set', 'up1', 'up');
      ipn('link', 'set', 'up0', 'up');
      ipn('addr', 'add', '192.0.2.1/24', 'dev', 'up0');
      ipn('-6', 'addr', 'add', '2001:db8:1::1/64', 'dev', 'up0', 'nodad');
      ipn('route', 'add', '198.51.100.0/24', 'via', '192.0.2.254', 'dev', 'up0');
      ipn('neigh', 'add', '192.0.2.254', 'lladdr', '02:00:00:00:00:fe', 'dev', 'up0', 'nud', 'permanent');
      ipn('route', 'add', '203.0.113.0/24', 'via', '192.0.2.253', 'dev', 'up0'); // no neighbour entry
      ipn('-6', 'route', 'add', '2001:db8:99::/48', 'via', '2001:db8:1::fe', 'dev', 'up0');
      ipn('-6', 'neigh', 'add', '2001:db8:1::fe', 'lladdr', '02:00:00:00:00:fe', 'dev', 'up0', 'nud', 'permanent');
    } catch (e) {
      cleanup.run();
      throw e;
    }
  });
  after(() => cleanup.run());

  function runInNs(packets: Buffer[]): TestRunReply[] {
    const cmd: TestRunCommand = {
      object: OBJ,
      knobs: Object.fromEntries(Object.entries(KNOBS).map(([k, v]) => [k, String(v)])),
      seed: seedEntries().map((e) => ({ map: e.map, key: e.key.toString('hex'), value: e.value.toString('hex') })),
      runs: packets.map((p) => ({ prog: 'nrd_ep_ingress', data: p.toString('hex') })),
    };
    const r = run('ip', ['netns', 'exec', ns, process.execPath, agentPath, JSON.stringify(cmd)]);
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as TestRunReply[];
  }

  it('redirects (redirect_neigh) a routed destination with TTL - 1, and an unresolved nexthop too', () => {
    const hit = ipv4Packet(A.ip4, '198.51.100.7', 17, udpDatagram(A.ip4, '198.51.100.7', 40000, 53), { l2: { src: A.mac, dst: GW_MAC } });
    const noNeigh = ipv4Packet(A.ip4, '203.0.113.9', 17, udpDatagram(A.ip4, '203.0.113.9', 40000, 53), { l2: { src: A.mac, dst: GW_MAC } });
    const v6 = ipv6Packet(A.ip6, '2001:db8:99::7', 17, udpDatagram(A.ip6, '2001:db8:99::7', 40000, 53), { l2: { src: A.mac, dst: GW_MAC } });
    const [r1, r2, r3] = runInNs([hit, noNeigh, v6]);
    for (const [r, pkt] of [[r1, hit], [r2, noNeigh]] as const) {
      assert.equal(r.retval, TC_ACT_REDIRECT);
      const out = Buffer.from(r.data, 'hex');
      // L2 is left to the neighbour layer; only TTL and checksum change here.
      const want = Buffer.from(pkt);
      want[22] = 63;
      want.writeUInt16BE(0, 24);
      want.writeUInt16BE(inetChecksum(want.subarray(14, 34)), 24);
      assert.deepEqual(out, want);
    }
    assert.equal(r3.retval, TC_ACT_REDIRECT);
    assert.equal(Buffer.from(r3.data, 'hex')[21], 63);
  });

  it('hands FIB misses and node-local destinations to the stack unchanged', () => {
    const pkts = [
      ipv4Packet(A.ip4, '100.64.0.1', 17, udpDatagram(A.ip4, '100.64.0.1', 40000, 53)), // no route
      ipv4Packet(A.ip4, '192.0.2.1', 17, udpDatagram(A.ip4, '192.0.2.1', 40000, 53)), // local address
      ipv6Packet(A.ip6, '2001:db8:77::1', 17, udpDatagram(A.ip6, '2001:db8:77::1', 40000, 53)), // no route
    ];
    const res = runInNs(pkts);
    res.forEach((r, i) => {
      assert.equal(r.retval, TCX_NEXT, `packet ${i}`);
      assert.deepEqual(Buffer.from(r.data, 'hex'), pkts[i]);
    });
  });
});
