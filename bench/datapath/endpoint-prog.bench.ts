// Benchmark of nrd_endpoint's same-node forward path (source check, endpoint lookup, L2 rewrite,
// TTL - 1 with checksum fix, bpf_redirect_peer verdict) per packet, BPF_PROG_TEST_RUN measured
// by the kernel, against the nrd_tc counter program (one per-CPU hash update) on the same frame
// in the same run. Prints ns/packet for both and the ratio. Root.
//
// A test run repeats the program on the same skb, so every repeat sees the previous one's TTL:
// a frame starting at TTL 255 stays on the forward path for REPEAT (< 254) runs per call.
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { progTestRun } from '../../daemon/datapath/libbpf.js';
import { TypedMap, u32Codec } from '../../daemon/datapath/maps.js';
import { loadObject } from '../../daemon/datapath/objects.js';
import {
  NRD_DP_F_ARP_ANY,
  NRD_DP_F_IPV6,
  NRD_EP_IF_F_IP4,
  epIfCodec,
  epKeyCodec,
  epValueCodec,
  macKnob,
} from '../../daemon/datapath/endpoint-layout.js';

const objectDir = fileURLToPath(new URL('../../../bpf/', import.meta.url));
const REPEAT = 250;
const CALLS = 400;
const TC_ACT_REDIRECT = 7;
const LO_IFINDEX = 1; // the device skb test runs see

function frame(): Buffer {
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

const ep = loadObject({
  path: join(objectDir, 'nrd_endpoint.bpf.o'),
  knobs: { gw_mac: macKnob(Buffer.from('02aabbccdd01', 'hex')), cfg_flags: NRD_DP_F_IPV6 | NRD_DP_F_ARP_ANY },
});
const tc = loadObject({ path: join(objectDir, 'nrd_tc.bpf.o') });
try {
  new TypedMap(ep.mapFd('nrd_ep_ifs'), u32Codec, epIfCodec).set(LO_IFINDEX, {
    id: 5, flags: NRD_EP_IF_F_IP4, ip4: Buffer.from([10, 244, 1, 5]), ip6: Buffer.alloc(16),
  });
  new TypedMap(ep.mapFd('nrd_endpoints'), epKeyCodec, epValueCodec).set(
    { family: 4, addr: Buffer.from([10, 244, 1, 6]) },
    { ifindex: 42, id: 6, mac: Buffer.from('020000000106', 'hex'), flags: 0 },
  );
  const pkt = frame();
  const fwd = ep.programFd('nrd_ep_ingress');
  const base = tc.programFd('nrd_tc_ingress');
  measure(fwd, pkt, TC_ACT_REDIRECT); // warm-up: maps, caches
  const baseline = measure(base, pkt, 0xffffffff);
  const forward = measure(fwd, pkt, TC_ACT_REDIRECT);
  console.log(`nrd_tc counter (baseline):       ${baseline} ns/packet`);
  console.log(`nrd_endpoint same-node forward:  ${forward} ns/packet  ratio to baseline ${(forward / baseline).toFixed(2)}`);
} finally {
  ep.close();
  tc.close();
}
