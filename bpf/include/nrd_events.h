/* Flow events of nrd's datapath: one BPF ring buffer (nrd_events) that the daemon drains
 * (libbpf ring_buffer in the datapath worker) and fans out to `nrdctl monitor` and the metrics.
 * Written by nrd_endpoint and nrd_netdev (tc) and by the XDP prefilter; the maps below are pinned
 * by name and shared by all three objects.
 *
 * Cost under load is bounded by aggregation, not sampling:
 *  - forwarded (cfg_flags NRD_DP_F_FWD_EVENTS, off by default in the daemon): from the policy
 *    check (nrd_policy.h), where it writes a flow's nrd_pol_ct entry (the first packet in each
 *    checked direction, a changed reason after a re-check) and at the first reply; an established
 *    packet costs no event work at all.
 *  - translated: once per connection (a new nrd_ct entry, a new masquerade mapping).
 *  - dropped: per flow at most once per NRD_EV_DROP_REPEAT_NS (nrd_flow_seen, an LRU keyed by the
 *    5-tuple, keeps the time and the drops in between, which the flow's next event reports as
 *    `suppressed`), then a per-CPU token bucket, so a flood of distinct dropped flows costs at
 *    most the bucket's rate.
 * A full ring buffer loses the event, never the packet. Every outcome is counted in nrd_ev_stats.
 *
 * Layouts shared with daemon/datapath/events-layout.ts and policy-layout.ts (checked against BTF),
 * same rules as nrd_shared.h: fixed-width fields, explicit padding, addresses in network order.
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
#include "nrd_dp_shared.h"

#define NRD_EVENTS_RING_BYTES (1U << 20)  /* ~9.5k events of 104 bytes before the reader must run */
#define NRD_FLOW_SEEN_MAX_ENTRIES 65536
#define NRD_EV_DROP_RATE 1000             /* drop events per second and CPU, sustained */
#define NRD_EV_DROP_BURST 200             /* ... and as a burst */
#define NRD_EV_DROP_REPEAT_NS 1000000000ULL /* a flow that keeps dropping: one event per second */

/* A flow as seen on the wire. family 4 fills saddr/daddr[0..3]. ICMP echo (v4 and v6): request
 * sport = identifier, dport = 0; reply sport = 0, dport = identifier, so a reply's reversed key
 * is its request's key. Other ICMP and unknown protocols: ports 0. dir is 0 in nrd_flow_seen and
 * the checked direction (NRD_POL_DIR_*) in nrd_pol_ct; NRD_EV_KEY_SOURCE marks the per-source key
 * of the XDP prefilter (saddr and family only). family 0: not IP (everything else zero). */
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
	__u8 family;        /* 4, 6, or 0 for a frame that is not IP (addresses and ports zero) */
	__u8 proto;
	__u8 pad0;
	__u16 sport_be;     /* the packet as it was before any translation */
	__u16 dport_be;
	__u16 xport_be;     /* translated: the new port (service: backend port; masquerade: source port) */
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 xaddr[16];     /* translated: the new address (service: backend; masquerade: node address) */
	__u32 service;      /* service id (translated service, dropped no_backend); 0 otherwise */
	__u32 backend;      /* backend id of a service translation */
	__u32 suppressed;   /* dropped: drops of this flow not reported since its previous event */
	__u32 pad2;
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
	NRD_EV_STAT_LOST = 1,         /* ring buffer full */
	NRD_EV_STAT_RATE_LIMITED = 2, /* drop events the token bucket held back */
	NRD_EV_STAT_SUPPRESSED = 3,   /* drops aggregated into their flow's event of the last second */
	NRD_EV_STAT_MAX = 4,
};

#define NRD_EV_KEY_SOURCE 2 /* nrd_flow_key.dir of a per-source aggregation key */

/* Value of nrd_flow_seen: the last drop reported for the flow (type << 8 | reason), when (0: retry
 * at the next drop), and the drops not reported since. */
struct nrd_flow_seen_value {
	__u32 verdict;
	__u32 suppressed;
	__u64 last_ns;
};

/* Per-CPU buffers of the event paths that run outside the policy check (drops, translations, the
 * prefilter): map keys must not cost the stack of the programs they run in. Not shared between
 * objects; nothing survives a packet. */
struct nrd_ev_scratch {
	struct nrd_flow_key f;
	struct nrd_flow_seen_value v;
	struct nrd_lpm6_key lk;   /* also an nrd_lpm4_key: same leading layout */
	struct nrd_ep_key ek;
	__u8 xaddr[16];
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
	__type(value, struct nrd_flow_seen_value);
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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nrd_ev_scratch);
} nrd_ev_scratch SEC(".maps");

static __always_inline struct nrd_ev_scratch *nrd_ev_scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&nrd_ev_scratch, &zero);
}

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

/* Whether a drop of the flow gets an event: not when the flow had the same drop reported less
 * than NRD_EV_DROP_REPEAT_NS ago (counted in the flow's entry and as suppressed), nor when this
 * CPU's token bucket is empty (counted as rate limited; the flow's next drop tries again). On
 * yes, *suppressed is the number of the flow's drops not reported since its previous event.
 * flow->dir is cleared for the lookup (and restored) unless it is NRD_EV_KEY_SOURCE; the value to
 * insert is built in *slot (map memory): no copies on the stack of the programs that inline this. */
static __always_inline int nrd_ev_drop_gate(struct nrd_flow_key *flow, struct nrd_flow_seen_value *slot, __u32 verdict,
					    __u32 *suppressed)
{
	__u8 dir = flow->dir;
	struct nrd_flow_seen_value *seen;
	__u64 now = bpf_ktime_get_ns();
	int emit = 0;

	if (dir != NRD_EV_KEY_SOURCE)
		flow->dir = 0;
	seen = bpf_map_lookup_elem(&nrd_flow_seen, flow);
	if (seen && seen->verdict == verdict && now - seen->last_ns < NRD_EV_DROP_REPEAT_NS) {
		seen->suppressed += 1;
		nrd_ev_count(NRD_EV_STAT_SUPPRESSED);
	} else if (!nrd_ev_take_token()) {
		if (seen) {
			if (seen->verdict != verdict)
				seen->suppressed = 0;
			seen->verdict = verdict;
			seen->suppressed += 1;
			seen->last_ns = 0;
		} else {
			slot->verdict = verdict;
			slot->suppressed = 1;
			slot->last_ns = 0;
			bpf_map_update_elem(&nrd_flow_seen, flow, slot, BPF_ANY);
		}
	} else {
		emit = 1;
		if (seen) {
			*suppressed = seen->verdict == verdict ? seen->suppressed : 0;
			seen->verdict = verdict;
			seen->suppressed = 0;
			seen->last_ns = now;
		} else {
			*suppressed = 0;
			slot->verdict = verdict;
			slot->suppressed = 0;
			slot->last_ns = now;
			bpf_map_update_elem(&nrd_flow_seen, flow, slot, BPF_ANY);
		}
	}
	flow->dir = dir;
	return emit;
}

/* A zeroed record with its timestamp, or NULL when the ring buffer is full (counted lost). The
 * caller fills it and hands it to nrd_ev_submit. */
static __always_inline struct nrd_flow_event *nrd_ev_reserve(void)
{
	struct nrd_flow_event *e = bpf_ringbuf_reserve(&nrd_events, sizeof(*e), 0);

	if (!e) {
		nrd_ev_count(NRD_EV_STAT_LOST);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->ts_ns = bpf_ktime_get_ns();
	return e;
}

static __always_inline void nrd_ev_set_flow(struct nrd_flow_event *e, const struct nrd_flow_key *flow)
{
	e->family = flow->family;
	e->proto = flow->proto;
	e->sport_be = flow->sport_be;
	e->dport_be = flow->dport_be;
	__builtin_memcpy(e->saddr, flow->saddr, 16);
	__builtin_memcpy(e->daddr, flow->daddr, 16);
}

/* The daemon drains the ring buffer on a timer (ring_buffer__consume), never waiting for data:
 * no wakeup, which would cost every event an irq_work. */
static __always_inline void nrd_ev_submit(struct nrd_flow_event *e)
{
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	nrd_ev_count(NRD_EV_STAT_EMITTED);
}

/* Writes one event of a tc program to the ring buffer. */
static __always_inline void nrd_ev_emit(struct __sk_buff *skb, const struct nrd_flow_key *flow, __u8 type,
					__u8 reason, __u8 dir, __u32 endpoint, __u32 src_id, __u32 dst_id, __u32 suppressed)
{
	struct nrd_flow_event *e = nrd_ev_reserve();

	if (!e)
		return;
	e->endpoint = endpoint;
	e->ifindex = skb->ifindex;
	e->src_identity = src_id;
	e->dst_identity = dst_id;
	e->len = skb->len;
	e->type = type;
	e->reason = reason;
	e->dir = dir;
	e->suppressed = suppressed;
	nrd_ev_set_flow(e, flow);
	nrd_ev_submit(e);
}

#endif /* NRD_EVENTS_H */
