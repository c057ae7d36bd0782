// Verifier-load test: every built object in bpf/ and every knob variant nrd loads must pass the
// kernel verifier, with every program loaded (root: BPF_PROG_LOAD needs CAP_BPF).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { progInfo } from '../../../daemon/datapath/libbpf.js';
import { NRD_TC_F_STATS } from '../../../daemon/datapath/maps.js';
import { NRD_DP_F_ARP_ANY, NRD_DP_F_IPV6, NRD_DP_F_MASQ } from '../../../daemon/datapath/endpoint-layout.js';
import { loadObject, type KnobValue } from '../../../daemon/datapath/objects.js';
import { objectDir } from './env.js';

const NODE6 = Buffer.from('20010db8000000010000000000000010', 'hex'); // 2001:db8:1::10
const PROGRAMS: Record<string, string[]> = {
  'nrd_xdp.bpf.o': ['nrd_xdp_prefilter'],
  'nrd_tc.bpf.o': ['nrd_tc_ingress', 'nrd_tc_egress'],
  'nrd_endpoint.bpf.o': ['nrd_ep_ingress'],
  'nrd_netdev.bpf.o': ['nrd_dev_ingress', 'nrd_dev_egress'],
  'nrd_sock.bpf.o': ['nrd_sock_connect4', 'nrd_sock_connect6', 'nrd_sock_sendmsg4', 'nrd_sock_sendmsg6',
    'nrd_sock_recvmsg4', 'nrd_sock_recvmsg6', 'nrd_sock_getpeername4', 'nrd_sock_getpeername6'],
};
const VARIANTS: Record<string, Array<Record<string, KnobValue>>> = {
  'nrd_xdp.bpf.o': [{}],
  // Maglev with the default table, random choice (M = 0) with the drain-reset bit, the largest
  // table (services.maglevTableSize: its u32[M] value sizes the table template)
  'nrd_sock.bpf.o': [{}, { lb_maglev_m: 0, lb_flags: 1 }, { lb_maglev_m: 131071 }],
  'nrd_tc.bpf.o': [{}, { cfg_flags: 0 }, { cfg_flags: NRD_TC_F_STATS }],
  // IPv4-only (the IPv6 code pruned at load) and gateway-only ARP/NDP answers
  'nrd_endpoint.bpf.o': [{}, { cfg_flags: 0 }, { cfg_flags: NRD_DP_F_IPV6 }, { cfg_flags: NRD_DP_F_ARP_ANY },
    // the service load-balancer's variants: random choice, drain with reset, a small Maglev table
    { lb_maglev_m: 0 }, { lb_flags: 1 }, { lb_maglev_m: 7 }, { lb_maglev_m: 131071 }],
  // masquerade off (no node address), IPv4-only with masquerade, dual stack with IPv4 masquerade
  // only (no node_ip6), dual stack with both, IPv6-only masquerade (node.address IPv6)
  'nrd_netdev.bpf.o': [{}, { cfg_flags: 0 }, { cfg_flags: NRD_DP_F_MASQ, node_ip4: 0x0a0200c0 },
    { cfg_flags: NRD_DP_F_MASQ | NRD_DP_F_IPV6, node_ip4: 0x0a0200c0, nat_port_min: 61000, nat_port_max: 61000 },
    { cfg_flags: NRD_DP_F_MASQ | NRD_DP_F_IPV6, node_ip4: 0x0a0200c0, node_ip6: NODE6 },
    { cfg_flags: NRD_DP_F_MASQ | NRD_DP_F_IPV6, node_ip6: NODE6 }],
};

describe('verifier load', () => {
  const built = readdirSync(objectDir).filter((f) => f.endsWith('.bpf.o')).sort();

  it('knows every built object (a new object needs its programs listed here)', () => {
    assert.ok(built.length > 0, `no objects in ${objectDir}: run make -C bpf`);
    assert.deepEqual(built, Object.keys(PROGRAMS).sort());
  });

  for (const [file, programs] of Object.entries(PROGRAMS)) {
    for (const knobs of VARIANTS[file] ?? [{}]) {
      it(`${file} ${JSON.stringify(knobs)} loads all programs`, () => {
        const obj = loadObject({ path: join(objectDir, file), knobs });
        try {
          for (const p of programs) {
            const info = progInfo(obj.programFd(p));
            assert.ok(info.id > 0);
            assert.equal(info.name, p.slice(0, 15)); // BPF_OBJ_NAME_LEN - 1
          }
        } finally {
          obj.close();
        }
      });
    }
  }
});
