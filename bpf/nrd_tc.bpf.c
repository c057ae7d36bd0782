// SPDX-License-Identifier: GPL-2.0
/* tc program for endpoint interfaces (tcx links since kernel 6.6, cls_bpf under clsact before:
 * BPF_PROG_TYPE_SCHED_CLS, direct action). This first slice counts packets and bytes per
 * interface and direction in the per-CPU hash nrd_if_stats and hands every packet on with
 * TCX_NEXT (TC_ACT_UNSPEC under cls_bpf), so it never changes what the stack or later programs
 * decide. Forwarding and proxy-ARP come later. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "nrd_shared.h"
#include "nrd_compat.h"
#include "nrd_stats.h"

char LICENSE[] SEC("license") = "GPL";

/* Load-time knobs (.rodata, set by the daemon before load; the verifier then prunes dead
 * branches). NRD_TC_F_STATS is on by default so an object loaded without knobs still counts. */
const volatile __u32 cfg_flags = NRD_TC_F_STATS;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NRD_IF_STATS_MAX_ENTRIES);
	__type(key, struct nrd_if_key);
	__type(value, struct nrd_counter);
} nrd_if_stats SEC(".maps");

static __always_inline void count(struct __sk_buff *skb, __u32 dir)
{
	struct nrd_if_key key = { .ifindex = skb->ifindex, .dir = dir };
	struct nrd_counter *c;

	if (!(cfg_flags & NRD_TC_F_STATS))
		return;
	c = bpf_map_lookup_elem(&nrd_if_stats, &key);
	if (!c) {
		struct nrd_counter zero = {};

		/* BPF_NOEXIST: a racing CPU may have created it; either way look it up again. */
		bpf_map_update_elem(&nrd_if_stats, &key, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&nrd_if_stats, &key);
	}
	nrd_count(c, skb->len);
}

SEC("tc")
int nrd_tc_ingress(struct __sk_buff *skb)
{
	count(skb, NRD_DIR_INGRESS);
	return TCX_NEXT;
}

SEC("tc")
int nrd_tc_egress(struct __sk_buff *skb)
{
	count(skb, NRD_DIR_EGRESS);
	return TCX_NEXT;
}
