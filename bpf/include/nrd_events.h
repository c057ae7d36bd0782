/* Flow events of the endpoint datapath: one BPF ring buffer (nrd_events) that the daemon drains
 * (libbpf ring_buffer in the datapath worker) and fans out to `nrdctl monitor` and the metrics.
 *
 * Cost under load is bounded by aggregation, not sampling: an event is emitted on the first
 * packet of a flow and whenever the flow's verdict changes (nrd_flow_seen, an LRU keyed by the
 * 5-tuple, remembers the last verdict emitted); drops go through the same aggregation and then a
 * per-CPU token bucket, so a flood of distinct dropped flows costs at most the bucket's rate.
 * A full ring buffer loses the event, never the packet (counted in nrd_ev_stats).
 *
 * Layouts shared with daemon/datapath/events-layout.ts and policy-layout.ts (checked against BTF), same rules as
 * nrd_shared.h: fixed-width fields, explicit padding, addresses in network order.
 */
#ifndef NRD_EVENTS_H
#define NRD_EVENTS_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "nrd_shared.h"

#define NRD_EVENTS_RING_BYTES (1U << 20)  /* ~14k events of 72 bytes before the reader must run */
#define NRD_FLOW_SEEN_MAX_ENTRIES 65536
#define NRD_EV_DROP_RATE 1000             /* drop events per second and CPU, sustained */
#define NRD_EV_DROP_BURST 200             /* ... and as a burst */

/* A flow as seen on the wire. family 4 fills saddr/daddr[0..3]. ICMP echo (v4 and v6): request
 * sport = identifier, dport = 0; reply sport = 0, dport = identifier, so a reply's reversed key
 * is its request's key. Other ICMP and unknown protocols: ports 0. dir is 0 in nrd_flow_seen and
 * the checked direction (NRD_POL_DIR_*) in nrd_pol_ct. */
struct nrd_flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport_be;
	__u16 dport_be;
	__u8 proto;
	__u8 family;
	__u8 dir;
	__u8 pad;
};

/* One ring-buffer record. */
struct nrd_flow_event {
	__u64 ts_ns;        /* bpf_ktime_get_ns (CLOCK_MONOTONIC) */
	__u32 endpoint;     /* numeric id of the local endpoint concerned; 0 when none */
	__u32 ifindex;      /* the device the program ran on */
	__u32 src_identity; /* ipcache identities (0: not looked up) */
	__u32 dst_identity;
	__u32 len;          /* packet length */
	__u8 type;          /* NRD_EV_* */
	__u8 reason;        /* dropped: enum nrd_drop; forwarded: NRD_EV_R_*; translated: NRD_XLATE_* */
	__u8 dir;           /* NRD_POL_DIR_* of the endpoint; NRD_EV_DIR_NONE when none */
	__u8 family;
	__u8 proto;
	__u8 pad0;
	__u16 sport_be;
	__u16 dport_be;
	__u8 pad1[2];
	__u8 saddr[16];
	__u8 daddr[16];
};

/* Only reached through bpf_ringbuf_reserve's void pointer, which gives clang no reason to emit the
 * struct's BTF; this read-only global does, so the daemon's layout can be checked against it. */
const struct nrd_flow_event nrd_ev_layout_btf = {};

#define NRD_EV_FORWARDED 1
#define NRD_EV_DROPPED 2
#define NRD_EV_TRANSLATED 3

/* Why a packet was forwarded. */
#define NRD_EV_R_NO_POLICY 0   /* the direction is not enforced for the endpoint */
#define NRD_EV_R_POLICY 1      /* a policy entry allows it */
#define NRD_EV_R_ESTABLISHED 2 /* an allowed connection (nrd_pol_ct, same policy revision) */
#define NRD_EV_R_REPLY 3       /* the reply of an allowed connection (nrd_pol_ct, reversed) */

/* What a translation was. */
#define NRD_XLATE_SERVICE 1    /* service address -> backend */
#define NRD_XLATE_MASQ 2       /* source -> node address (masquerade) */

#define NRD_EV_DIR_NONE 0xff

/* Index into the per-CPU array nrd_ev_stats (value struct nrd_counter, packets = events). */
enum nrd_ev_stat {
	NRD_EV_STAT_EMITTED = 0,
	NRD_EV_STAT_LOST = 1,        /* ring buffer full */
	NRD_EV_STAT_RATE_LIMITED = 2, /* drop events the token bucket held back */
	NRD_EV_STAT_MAX = 3,
};

/* The per-CPU drop-event token bucket: tokens scaled by 1e9 so refills need no division. */
struct nrd_ev_bucket {
	__u64 tokens_ns;
	__u64 last_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, NRD_EVENTS_RING_BYTES);
} nrd_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NRD_FLOW_SEEN_MAX_ENTRIES);
	__type(key, struct nrd_flow_key);
	__type(value, __u32); /* last verdict emitted: type << 8 | reason (reason 0 for forwarded) */
} nrd_flow_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NRD_EV_STAT_MAX);
	__type(key, __u32);
	__type(value, struct nrd_counter);
} nrd_ev_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nrd_ev_bucket);
} nrd_ev_bucket SEC(".maps");

#define NRD_ICMP_ECHO 8
#define NRD_ICMP_ECHOREPLY 0
#define NRD_ICMP6_ECHO 128
#define NRD_ICMP6_ECHOREPLY 129

/* Fills the 5-tuple of the Ethernet frame in skb (dir 0). Reads through bpf_skb_load_bytes, so
 * no packet pointer of the caller is invalidated and nonlinear skbs work. 0, or -1 when the
 * frame is not IP or too short for its IP header. IPv6 extension headers are not walked: the
 * protocol is the first next header and the ports stay 0. */
static __always_inline int nrd_flow_parse(struct __sk_buff *skb, struct nrd_flow_key *k)
{
	__u32 l4off;
	__u8 h[10]; /* IPv4: version/ihl .. protocol; IPv6: the first 8 bytes */
	__u8 l4[8];
	__u16 frag;

	/* Loads go straight into the key: this runs inside subprograms whose stack adds to the
	 * (large) stack of the program calling them, so no whole header is copied. */
	__builtin_memset(k, 0, sizeof(*k));
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		if (bpf_skb_load_bytes(skb, ETH_HLEN, h, 10) ||
		    bpf_skb_load_bytes(skb, ETH_HLEN + 12, k->saddr, 4) ||
		    bpf_skb_load_bytes(skb, ETH_HLEN + 16, k->daddr, 4))
			return -1;
		k->family = 4;
		k->proto = h[9];
		__builtin_memcpy(&frag, &h[6], 2);
		if (frag & bpf_htons(0x1fff)) /* a later fragment: no L4 header */
			return 0;
		l4off = ETH_HLEN + (h[0] & 0xf) * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		/* saddr and daddr are adjacent in both the header and the key */
		if (bpf_skb_load_bytes(skb, ETH_HLEN, h, 8) ||
		    bpf_skb_load_bytes(skb, ETH_HLEN + 8, k->saddr, 32))
			return -1;
		k->family = 6;
		k->proto = h[6];
		l4off = ETH_HLEN + 40;
	} else {
		return -1;
	}
	switch (k->proto) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_SCTP:
		bpf_skb_load_bytes(skb, l4off, &k->sport_be, 4); /* sport, dport: adjacent as well */
		break;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if (bpf_skb_load_bytes(skb, l4off, l4, 8) == 0) {
			if (l4[0] == NRD_ICMP_ECHO || l4[0] == NRD_ICMP6_ECHO)
				__builtin_memcpy(&k->sport_be, &l4[4], 2);
			else if (l4[0] == NRD_ICMP_ECHOREPLY || l4[0] == NRD_ICMP6_ECHOREPLY)
				__builtin_memcpy(&k->dport_be, &l4[4], 2);
		}
		break;
	}
	return 0;
}

static __always_inline void nrd_ev_count(__u32 stat)
{
	nrd_count(bpf_map_lookup_elem(&nrd_ev_stats, &stat), 0);
}

/* Whether the flow's verdict differs from the last one emitted for it; records the new one.
 * flow->dir is cleared for the lookup and restored, and the verdict to store sits in *slot
 * (map memory): no copies on the stack, see nrd_policy.h for why. */
static __always_inline int nrd_ev_changed(struct nrd_flow_key *flow, __u32 *slot, __u32 verdict)
{
	__u8 dir = flow->dir;
	__u32 *seen;
	int changed = 1;

	flow->dir = 0;
	seen = bpf_map_lookup_elem(&nrd_flow_seen, flow);
	if (seen && *seen == verdict) {
		changed = 0;
	} else if (seen) {
		*seen = verdict;
	} else {
		*slot = verdict;
		bpf_map_update_elem(&nrd_flow_seen, flow, slot, BPF_ANY);
	}
	flow->dir = dir;
	return changed;
}

/* Takes one drop-event token of this CPU's bucket; 0 when empty. */
static __always_inline int nrd_ev_take_token(void)
{
	__u32 zero = 0;
	struct nrd_ev_bucket *b = bpf_map_lookup_elem(&nrd_ev_bucket, &zero);
	__u64 now = bpf_ktime_get_ns(), cap = (__u64)NRD_EV_DROP_BURST * 1000000000ULL;
	__u64 t;

	if (!b)
		return 0;
	t = b->tokens_ns + (now - b->last_ns) * NRD_EV_DROP_RATE;
	if (b->last_ns == 0 || t > cap)
		t = cap;
	b->last_ns = now;
	if (t < 1000000000ULL) {
		b->tokens_ns = t;
		nrd_ev_count(NRD_EV_STAT_RATE_LIMITED);
		return 0;
	}
	b->tokens_ns = t - 1000000000ULL;
	return 1;
}

/* Writes one event to the ring buffer. */
static __always_inline void nrd_ev_emit(struct __sk_buff *skb, const struct nrd_flow_key *flow, __u8 type,
					__u8 reason, __u8 dir, __u32 endpoint, __u32 src_id, __u32 dst_id)
{
	struct nrd_flow_event *e = bpf_ringbuf_reserve(&nrd_events, sizeof(*e), 0);

	if (!e) {
		nrd_ev_count(NRD_EV_STAT_LOST);
		return;
	}
	e->ts_ns = bpf_ktime_get_ns();
	e->endpoint = endpoint;
	e->ifindex = skb->ifindex;
	e->src_identity = src_id;
	e->dst_identity = dst_id;
	e->len = skb->len;
	e->type = type;
	e->reason = reason;
	e->dir = dir;
	e->family = flow->family;
	e->proto = flow->proto;
	e->pad0 = 0;
	e->sport_be = flow->sport_be;
	e->dport_be = flow->dport_be;
	e->pad1[0] = 0;
	e->pad1[1] = 0;
	__builtin_memcpy(e->saddr, flow->saddr, 16);
	__builtin_memcpy(e->daddr, flow->daddr, 16);
	bpf_ringbuf_submit(e, 0);
	nrd_ev_count(NRD_EV_STAT_EMITTED);
}

#endif /* NRD_EVENTS_H */
