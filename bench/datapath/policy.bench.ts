// Benchmark of the identity policy's per-packet cost in nrd_ep_ingress (bpf/include/nrd_policy.h):
// an allowed TCP packet from local endpoint A to local endpoint B, BPF_PROG_TEST_RUN timed by the
// kernel, with 0 (B not selected: policy off, the baseline), 10, 100, 1k and 10k allow entries
// installed for B's ingress (distinct identities and ports, the one admitting A among them). The
// sizes alternate within each of REPS rounds, so every ratio compares figures from the same run.
// Root; nothing is attached. Prints ns/packet and the ratio to the baseline; JSON to
// bench/results/policy.json.
//
// Two cases, because nrd_pol_ct makes them different paths:
//  - newFlow: the first packet of a flow: ct miss, reply probe, ipcache lookup, then the nrd_policy
//    lookups (the peer's identity, ANY, the CIDR identity). One run per call (repeat 1), a fresh
//    source port per call, nrd_pol_ct emptied before each measurement so no lookup hits an old flow.
//  - established: the same flow again (repeat REPEAT on one packet): one nrd_pol_ct hit, no
//    nrd_policy lookup, so the number of entries should not matter.
// A test run repeats the program on the same skb: the TTL starts at 255 so REPEAT (< 254) runs
// stay on the forward path.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { progTestRun } from '../../daemon/datapath/libbpf.js';
import { type Codec, TypedMap, lpm4KeyCodec, u32Codec } from '../../daemon/datapath/maps.js';
import { loadObject } from '../../daemon/datapath/objects.js';
import { NRD_DP_F_ARP_ANY, NRD_DP_F_IPV6, NRD_EP_IF_F_IP4, epIfCodec, epKeyCodec, epValueCodec, macKnob } from '../../daemon/datapath/endpoint-layout.js';
import { POLICY_STRUCTS, bpfPolicyKeyCodec, bpfPolicyValueCodec, ipcacheValueCodec } from '../../daemon/datapath/policy-layout.js';
import { Dir, POLICY_ALLOW, POLICY_F_INGRESS } from '../../daemon/policy/compile.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results', 'policy.json');
const SIZES = [0, 10, 100, 1000, 10000];
const REPS = 3;
const REPEAT = 250;
const EST_CALLS = 400;
const NEW_CALLS = 4000;
const TC_ACT_REDIRECT = 7;
const LO_IFINDEX = 1; // the device skb test runs see
const A = { id: 5, ip: [10, 244, 1, 5], identity: 300 };
const B = { id: 6, ip: [10, 244, 1, 6], identity: 301, ifindex: 42 };
const PORT = 80;

/** Ethernet + IPv4 (TTL 255, valid checksum) + a TCP SYN from A:sport to B:PORT. */
function frame(sport: number): Buffer {
  const f = Buffer.alloc(14 + 20 + 20);
  Buffer.from('020000000106', 'hex').copy(f, 0);
  Buffer.from('020000000105', 'hex').copy(f, 6);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(40, 16);
  f[22] = 255;
  f[23] = 6;
  Buffer.from(A.ip).copy(f, 26);
  Buffer.from(B.ip).copy(f, 30);
  let sum = 0;
  for (let i = 14; i < 34; i += 2) sum += f.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  f.writeUInt16BE(~sum & 0xffff, 24);
  f.writeUInt16BE(sport, 34);
  f.writeUInt16BE(PORT, 36);
  f[46] = 5 << 4;
  f[47] = 0x02;
  return f;
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

/** nrd_flow_key as opaque bytes: the bench only deletes them. */
const rawFlowKey: Codec<Buffer> = { size: POLICY_STRUCTS.nrd_flow_key.size, encode: (b) => b, decode: (b) => Buffer.from(b) };

const o = loadObject({
  path: join(ROOT, 'bpf', 'nrd_endpoint.bpf.o'),
  knobs: { gw_mac: macKnob(Buffer.from('02aabbccdd01', 'hex')), cfg_flags: NRD_DP_F_IPV6 | NRD_DP_F_ARP_ANY },
});
try {
  const prog = o.programFd('nrd_ep_ingress');
  new TypedMap(o.mapFd('nrd_ep_ifs'), u32Codec, epIfCodec).set(LO_IFINDEX, {
    id: A.id, flags: NRD_EP_IF_F_IP4, ip4: Buffer.from(A.ip), ip6: Buffer.alloc(16),
  });
  new TypedMap(o.mapFd('nrd_endpoints'), epKeyCodec, epValueCodec).set(
    { family: 4, addr: Buffer.from(B.ip) },
    { ifindex: B.ifindex, id: B.id, mac: Buffer.from('020000000106', 'hex'), flags: 0 },
  );
  const ipc = new TypedMap(o.mapFd('nrd_ipcache4'), lpm4KeyCodec, ipcacheValueCodec);
  for (const e of [A, B]) ipc.set({ family: 4, prefixlen: 32, addr: Buffer.from(e.ip) }, { identity: e.identity, flags: 1 });
  const epPol = new TypedMap(o.mapFd('nrd_ep_policy'), u32Codec, u32Codec);
  const pol = new TypedMap(o.mapFd('nrd_policy'), bpfPolicyKeyCodec, bpfPolicyValueCodec);
  const ct = new TypedMap(o.mapFd('nrd_pol_ct'), rawFlowKey, u32Codec);

  // Entry i of B's ingress: i = 0 admits A on TCP PORT exactly (compile.ts prefix length 64);
  // the others name other identities on other ports, so the trie holds n distinct leaves.
  const entry = (i: number) => ({
    endpoint: B.id,
    key: { prefixlen: 64, identity: i === 0 ? A.identity : 1000 + i, dir: Dir.INGRESS, proto: 6, port: i === 0 ? PORT : 1024 + (i % 60000) },
  });
  let installed = 0;
  const install = (n: number): void => {
    for (let i = installed; i < n; i++) pol.set(entry(i), { flags: POLICY_ALLOW });
    for (let i = n; i < installed; i++) pol.delete(entry(i));
    installed = n;
    if (n === 0) epPol.delete(B.id);
    else epPol.set(B.id, POLICY_F_INGRESS);
  };
  const clearCt = (): void => {
    for (const k of ct.keys()) ct.delete(k);
  };

  let sport = 1024;
  const nextSport = (): number => (sport = sport >= 65535 ? 1024 : sport + 1);
  const newFlow = (): number => {
    clearCt();
    const ns: number[] = [];
    for (let i = 0; i < NEW_CALLS; i++) {
      const r = progTestRun(prog, { data: frame(nextSport()) });
      if (r.retval !== TC_ACT_REDIRECT) throw new Error(`new flow: verdict ${r.retval}, want ${TC_ACT_REDIRECT}`);
      ns.push(r.durationNs);
    }
    return median(ns);
  };
  const established = (): number => {
    const pkt = frame(nextSport());
    const ns: number[] = [];
    for (let i = 0; i < EST_CALLS; i++) {
      const r = progTestRun(prog, { data: pkt, repeat: REPEAT });
      if (r.retval !== TC_ACT_REDIRECT) throw new Error(`established: verdict ${r.retval}, want ${TC_ACT_REDIRECT}`);
      ns.push(r.durationNs);
    }
    return median(ns);
  };

  install(100);
  newFlow(); // warm-up: maps, caches, the JIT image
  established();
  const samples: Record<string, { newFlow: number[]; established: number[] }> = {};
  for (const n of SIZES) samples[n] = { newFlow: [], established: [] };
  for (let rep = 0; rep < REPS; rep++) {
    // Alternate the order between rounds so a drift of the machine's load hits every size.
    for (const n of rep % 2 ? [...SIZES].reverse() : SIZES) {
      install(n);
      samples[n]!.newFlow.push(newFlow());
      samples[n]!.established.push(established());
    }
    console.log(`round ${rep + 1}/${REPS}: ${SIZES.map((n) => `${n}: ${samples[n]!.newFlow[rep]}/${samples[n]!.established[rep]} ns`).join('  ')}`);
  }
  install(0);

  const medians: Record<string, { newFlowNs: number; establishedNs: number }> = {};
  for (const n of SIZES) medians[n] = { newFlowNs: median(samples[n]!.newFlow), establishedNs: median(samples[n]!.established) };
  const base = medians[0]!;
  const ratios: Record<string, { newFlow: number; established: number }> = {};
  console.log('\nentries for B   new flow ns (ratio)     established ns (ratio)');
  for (const n of SIZES) {
    const m = medians[n]!;
    ratios[n] = { newFlow: m.newFlowNs / base.newFlowNs, established: m.establishedNs / base.establishedNs };
    const label = n === 0 ? '0 (policy off)' : String(n);
    console.log(`${label.padEnd(15)} ${String(m.newFlowNs).padStart(6)} (${ratios[n]!.newFlow.toFixed(2)})         ${String(m.establishedNs).padStart(6)} (${ratios[n]!.established.toFixed(2)})`);
  }
  console.log('NOTE: measured on a shared, noisy machine (2 cores, other jobs running); ratios from the same run are the figures to read.');
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(RESULTS, JSON.stringify({
    bench: 'datapath/policy',
    date: new Date().toISOString(),
    machine: { kernel: release(), cpus: cpus().length, quiet: false, note: 'shared machine, other jobs running' },
    params: { reps: REPS, sizes: SIZES, repeat: REPEAT, establishedCalls: EST_CALLS, newFlowCalls: NEW_CALLS, packet: 'IPv4 TCP SYN, local endpoint to local endpoint, allowed' },
    method: {
      program: 'nrd_ep_ingress, BPF_PROG_TEST_RUN, kernel-timed ns per run',
      entries: "n allow entries for the destination's ingress (distinct identities and exact ports, one admitting the source); 0 = destination not selected (policy off), the baseline",
      newFlow: 'repeat 1, a fresh source port per call, nrd_pol_ct emptied before each measurement: the full check (ct miss, reply probe, ipcache, nrd_policy lookups); median of calls',
      established: `repeat ${REPEAT} on one flow: a nrd_pol_ct hit, no nrd_policy lookup; median of calls`,
      rounds: 'sizes alternate within each round (order reversed every other round); median over rounds',
    },
    medians,
    ratios: { 'n/policy-off': ratios },
    samples,
  }, null, 2) + '\n');
  console.log(`results: ${RESULTS}`);
} finally {
  o.close();
}
