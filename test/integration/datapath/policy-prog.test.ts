// BPF_PROG_TEST_RUN of the identity policy in nrd_endpoint (bpf/include/nrd_policy.h): an endpoint
// selected for egress with no allow entry drops, an entry for the peer's
// ipcache identity and port allows, and removing it with a revision bump re-checks the
// established flow. Root (CAP_BPF). A (client) and B (server) are local endpoints.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { progTestRun, ringBufferOpen } from '../../../daemon/datapath/libbpf.js';
import { DropReason } from '../../../daemon/datapath/endpoint-layout.js';
import { EventType, decodeFlowEvent, type FlowEvent } from '../../../daemon/datapath/events-layout.js';
import { TypedMap, lpm4KeyCodec, parseCidr, u32Codec } from '../../../daemon/datapath/maps.js';
import { loadObject } from '../../../daemon/datapath/objects.js';
import { NRD_DP_F_ARP_ANY, NRD_DP_F_IPV6, NRD_EP_IF_F_IP4, epIfCodec, epKeyCodec, epValueCodec, macKnob } from '../../../daemon/datapath/endpoint-layout.js';
import { bpfPolicyKeyCodec, bpfPolicyValueCodec, ipcacheValueCodec } from '../../../daemon/datapath/policy-layout.js';
import { Dir, POLICY_ALLOW, POLICY_F_EGRESS } from '../../../daemon/policy/compile.js';
import { ipv4Packet, mac, tcpSegment } from './packets.js';
import { objectDir } from './env.js';

const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;
const LO = 1;
const GW_MAC = mac('02:aa:bb:cc:dd:01');
const A = { ifindex: LO, mac: mac('02:00:00:00:01:05'), ip4: '10.244.1.5', id: 5, identity: 300 };
const B = { ifindex: 42, mac: mac('02:00:00:00:01:06'), ip4: '10.244.1.6', id: 6, identity: 301 };
const ip = (s: string): Buffer => parseCidr(s).addr;

describe('nrd_policy in nrd_endpoint (BPF_PROG_TEST_RUN)', () => {
  it('default deny when selected, allow by identity and port, re-check after a revision bump', () => {
    const o = loadObject({ path: join(objectDir, 'nrd_endpoint.bpf.o'), knobs: { gw_mac: macKnob(GW_MAC), cfg_flags: NRD_DP_F_IPV6 | NRD_DP_F_ARP_ANY } });
    try {
      const ifs = new TypedMap(o.mapFd('nrd_ep_ifs'), u32Codec, epIfCodec);
      const eps = new TypedMap(o.mapFd('nrd_endpoints'), epKeyCodec, epValueCodec);
      const ipc = new TypedMap(o.mapFd('nrd_ipcache4'), lpm4KeyCodec, ipcacheValueCodec);
      for (const ep of [A, B]) {
        ifs.set(ep.ifindex, { id: ep.id, flags: NRD_EP_IF_F_IP4, ip4: ip(ep.ip4), ip6: Buffer.alloc(16) });
        eps.set({ family: 4, addr: ip(ep.ip4) }, { ifindex: ep.ifindex, id: ep.id, mac: ep.mac, flags: 0 });
        ipc.set({ family: 4, prefixlen: 32, addr: ip(ep.ip4) }, { identity: ep.identity, flags: 1 });
      }
      const epPol = new TypedMap(o.mapFd('nrd_ep_policy'), u32Codec, u32Codec);
      const pol = new TypedMap(o.mapFd('nrd_policy'), bpfPolicyKeyCodec, bpfPolicyValueCodec);
      const rev = new TypedMap(o.mapFd('nrd_pol_rev'), u32Codec, u32Codec);
      const prog = o.programFd('nrd_ep_ingress');
      const syn = (sport: number, dport: number): Buffer => ipv4Packet(A.ip4, B.ip4, 6, tcpSegment(A.ip4, B.ip4, sport, dport, 0x02));

      assert.equal(progTestRun(prog, { data: syn(40000, 80) }).retval, TC_ACT_REDIRECT, 'not selected: allowed');
      epPol.set(A.id, POLICY_F_EGRESS);
      assert.equal(progTestRun(prog, { data: syn(40001, 80) }).retval, TC_ACT_SHOT, 'selected, no entry: denied');
      // allow TCP 80 to B's identity (compile.ts prefix length 48 + 16)
      const key = { endpoint: A.id, key: { prefixlen: 64, identity: B.identity, dir: Dir.EGRESS, proto: 6, port: 80 } };
      pol.set(key, { flags: POLICY_ALLOW });
      assert.equal(progTestRun(prog, { data: syn(40002, 80) }).retval, TC_ACT_REDIRECT, 'allowed by identity and port');
      assert.equal(progTestRun(prog, { data: syn(40003, 81) }).retval, TC_ACT_SHOT, 'other port denied');
      // established at the same revision passes without the entry; a bump re-checks it
      pol.delete(key);
      assert.equal(progTestRun(prog, { data: syn(40002, 80) }).retval, TC_ACT_REDIRECT, 'established flow');
      rev.set(0, 1);
      // The ring buffer, read the way the daemon reads it (libbpf ring_buffer__consume): drain what
      // the runs above left, then the drop below must appear as a record with reason policy.
      const events: FlowEvent[] = [];
      const ring = ringBufferOpen(o.mapFd('nrd_events'), (r) => events.push(decodeFlowEvent(Buffer.from(r))));
      try {
        ring.consume();
        events.length = 0;
        assert.equal(progTestRun(prog, { data: syn(40002, 80) }).retval, TC_ACT_SHOT, 're-checked after the bump');
        assert.ok(ring.consume() >= 1, 'no record for the policy drop');
        const drop = events.find((e) => e.type === EventType.dropped);
        assert.ok(drop, JSON.stringify(events, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)));
        assert.equal(drop.reason, DropReason.policy);
        assert.deepEqual([drop.saddr, drop.daddr, drop.sport, drop.dport, drop.proto], [A.ip4, B.ip4, 40002, 80, 6]);
        assert.equal(drop.srcIdentity, A.identity);
        assert.equal(drop.dstIdentity, B.identity);
      } finally {
        ring.free();
      }
    } finally {
      o.close();
    }
  });
});
