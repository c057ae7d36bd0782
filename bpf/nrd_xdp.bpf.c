// SPDX-License-Identifier: GPL-2.0
/* XDP prefilter for the uplink (kernel XDP hook, BPF_PROG_TYPE_XDP): drops packets whose IPv4 or
 * IPv6 source address falls in a denied CIDR (LPM tries nrd_deny4/nrd_deny6, filled by the daemon
 * from datapath.xdpPrefilter.deny) and counts every verdict per CPU in nrd_xdp_stats.
 * Everything else, including non-IP and truncated frames, is passed to the stack unchanged. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "nrd_shared.h"
#include "nrd_parse.h"
#include "nrd_stats.h"

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
		if (bpf_map_lookup_elem(&nrd_deny4, &key))
			return verdict(NRD_XDP_STAT_DROP_DENY4, XDP_DROP, bytes);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = nrd_pull_ipv6(&c);
		struct nrd_lpm6_key key = { .prefixlen = 128 };

		if (!ip6)
			return verdict(NRD_XDP_STAT_MALFORMED, XDP_PASS, bytes);
		__builtin_memcpy(key.addr, &ip6->saddr, sizeof(key.addr));
		if (bpf_map_lookup_elem(&nrd_deny6, &key))
			return verdict(NRD_XDP_STAT_DROP_DENY6, XDP_DROP, bytes);
	}
	return verdict(NRD_XDP_STAT_PASS, XDP_PASS, bytes);
}
