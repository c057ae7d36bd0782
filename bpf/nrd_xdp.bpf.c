// SPDX-License-Identifier: GPL-2.0
/* XDP prefilter for the uplink (kernel XDP hook, BPF_PROG_TYPE_XDP): drops packets whose IPv4 or
 * IPv6 source address falls in a denied CIDR (LPM tries nrd_deny4/nrd_deny6, filled by the daemon
 * from datapath.xdpPrefilter.deny) and counts every verdict per CPU in nrd_xdp_stats.
 * Everything else, including non-IP and truncated frames, is passed to the stack unchanged.
 * A denied packet is also a flow event (dropped, reason prefilter; nrd_events.h), aggregated per
 * source address: one per source and second, then the shared per-CPU drop-event bucket, so a
 * flood from denied sources costs the ring buffer no more than the bucket's rate. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "nrd_shared.h"
#include "nrd_parse.h"
#include "nrd_stats.h"
#include "nrd_events.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* required for LPM tries */
	__uint(max_entries, NRD_DENY4_MAX_ENTRIES);
	__type(key, struct nrd_lpm4_key);
	__type(value, struct nrd_deny_value);
} nrd_deny4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NRD_DENY6_MAX_ENTRIES);
	__type(key, struct nrd_lpm6_key);
	__type(value, struct nrd_deny_value);
} nrd_deny6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NRD_XDP_STAT_MAX);
	__type(key, __u32);
	__type(value, struct nrd_counter);
} nrd_xdp_stats SEC(".maps");

static __always_inline int verdict(__u32 stat, int action, __u64 bytes)
{
	nrd_count(bpf_map_lookup_elem(&nrd_xdp_stats, &stat), bytes);
	return action;
}

/* The prefilter's drop event; saddr/daddr point into the packet (family 4: 4 bytes each), l4 at
 * the L4 header (ports read when in bounds). */
static __always_inline void deny_event(struct xdp_md *ctx, __u8 family, const void *saddr, const void *daddr,
				       __u8 proto, void *l4, void *end)
{
	struct nrd_ev_scratch *s = nrd_ev_scratch_get();
	struct nrd_flow_event *e;
	__u32 suppressed = 0, alen = family == 4 ? 4 : 16;

	if (!s)
		return;
	__builtin_memset(&s->f, 0, sizeof(s->f));
	s->f.family = family;
	s->f.dir = NRD_EV_KEY_SOURCE;
	if (family == 4)
		__builtin_memcpy(s->f.saddr, saddr, 4);
	else
		__builtin_memcpy(s->f.saddr, saddr, 16);
	if (!nrd_ev_drop_gate(&s->f, &s->v, NRD_EV_DROPPED << 8 | NRD_DROP_PREFILTER, &suppressed))
		return;
	e = nrd_ev_reserve();
	if (!e)
		return;
	e->ifindex = ctx->ingress_ifindex;
	e->len = ctx->data_end - ctx->data;
	e->type = NRD_EV_DROPPED;
	e->reason = NRD_DROP_PREFILTER;
	e->dir = NRD_EV_DIR_NONE;
	e->family = family;
	e->proto = proto;
	e->suppressed = suppressed;
	if (alen == 4) {
		__builtin_memcpy(e->saddr, saddr, 4);
		__builtin_memcpy(e->daddr, daddr, 4);
	} else {
		__builtin_memcpy(e->saddr, saddr, 16);
		__builtin_memcpy(e->daddr, daddr, 16);
	}
	if ((proto == IPPROTO_TCP || proto == IPPROTO_UDP) && l4 + 4 <= end) {
		__builtin_memcpy(&e->sport_be, l4, 2);
		__builtin_memcpy(&e->dport_be, l4 + 2, 2);
	}
	nrd_ev_submit(e);
}

SEC("xdp")
int nrd_xdp_prefilter(struct xdp_md *ctx)
{
	struct nrd_cursor c = {
		.pos = (void *)(long)ctx->data,
		.end = (void *)(long)ctx->data_end,
	};
	__u64 bytes = c.end - c.pos;
	struct ethhdr *eth = nrd_pull_eth(&c);

	if (!eth)
		return verdict(NRD_XDP_STAT_MALFORMED, XDP_PASS, bytes);

	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = nrd_pull_ipv4(&c);
		struct nrd_lpm4_key key = { .prefixlen = 32 };

		if (!ip)
			return verdict(NRD_XDP_STAT_MALFORMED, XDP_PASS, bytes);
		__builtin_memcpy(key.addr, &ip->saddr, sizeof(key.addr));
		if (bpf_map_lookup_elem(&nrd_deny4, &key)) {
			deny_event(ctx, 4, &ip->saddr, &ip->daddr, ip->protocol, c.pos, c.end);
			return verdict(NRD_XDP_STAT_DROP_DENY4, XDP_DROP, bytes);
		}
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = nrd_pull_ipv6(&c);
		struct nrd_lpm6_key key = { .prefixlen = 128 };

		if (!ip6)
			return verdict(NRD_XDP_STAT_MALFORMED, XDP_PASS, bytes);
		__builtin_memcpy(key.addr, &ip6->saddr, sizeof(key.addr));
		if (bpf_map_lookup_elem(&nrd_deny6, &key)) {
			deny_event(ctx, 6, &ip6->saddr, &ip6->daddr, ip6->nexthdr, c.pos, c.end);
			return verdict(NRD_XDP_STAT_DROP_DENY6, XDP_DROP, bytes);
		}
	}
	return verdict(NRD_XDP_STAT_PASS, XDP_PASS, bytes);
}
