/* Service load balancing (DNAT of a VIP:port to a backend, reverse NAT of the replies) for the
 * endpoint datapath: nrd_endpoint calls nrd_lb4/nrd_lb6 on every IP packet an endpoint sends,
 * nrd_netdev calls nrd_lb_rev before delivering a packet from another node to a local endpoint.
 * The maps are written by daemon/datapath/services.ts from daemon/services/plan.ts.
 *
 *  - A new TCP/UDP flow to a service picks a backend: Maglev (slot hash(5-tuple) mod lb_maglev_m)
 *    or random (slot rand mod backend_count). Only an ACTIVE backend takes a new flow; a service
 *    without one is rejected: TCP RST, or ICMP / ICMPv6 port unreachable, built here and sent
 *    back out the client's veth (never a silent drop: the client learns at once).
 *  - The choice is kept in nrd_ct, so every later packet of the flow keeps its backend even after
 *    the slots changed; a DRAINING backend keeps its flows (or resets them: NRD_LB_F_DRAIN_RESET).
 *  - The backend's replies (src backend, dst client) hit the REPLY entry and get src = VIP:port.
 *
 * Why nrd_ct and not nrd_nat4/6: the connection table of masquerade lives with nrd_netdev and is
 * keyed by what leaves the node; a service flow is translated on the client's veth, before any
 * route is known, and a flow to a service whose backend is outside the cluster needs both a DNAT
 * and a masquerade entry. Keeping them apart lets `nrdctl ct flush` forget service flows without
 * breaking masqueraded ones, and lets a flood of masqueraded flows not evict service flows (two
 * LRUs). The entries share the connection states (NRD_CT_*) and the last_seen/created stamps,
 * and the daemon runs the same GC timeouts over both (daemon/datapath/services.ts).
 *
 * Layouts are mirrored in daemon/datapath/services-layout.ts (checked against BTF). Family is 4
 * or 6 (not AF_*), addresses are 16-byte network-order arrays (IPv4 in the first 4 bytes).
 */
#ifndef NRD_LB_H
#define NRD_LB_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "nrd_endpoint.h"

#define NRD_SERVICES_MAX_ENTRIES 65536
#define NRD_BACKENDS_MAX_ENTRIES 65536
#define NRD_CT_MAX_ENTRIES 262144            /* two entries per service flow */

/* Key of nrd_services: a frontend. */
struct nrd_svc_key {
	__u32 family;
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 pad;
};

struct nrd_svc_value {
	__u32 id;
	__u32 backend_count; /* ACTIVE backends, the random pick's range */
	__u32 flags;         /* NRD_SVC_F_* */
	__u32 rev_nat_id;
	__u32 table_id;      /* key of the service's selection table in nrd_svc_tables */
};

#define NRD_SVC_F_NO_BACKEND (1U << 0)
#define NRD_SVC_F_MAGLEV (1U << 1)

/* Value of nrd_backends, keyed by a u32 backend id. */
struct nrd_backend {
	__u32 family;
	__u8 addr[16];
	__be16 port;
	__u8 proto;
	__u8 state; /* NRD_BE_* */
};

#define NRD_BE_ACTIVE 0
#define NRD_BE_DRAINING 1

/* A service's selection table: one value of u32[M] backend ids (M = lb_maglev_m; Maglev uses all
 * M slots, random the first min(backend_count, M)), the single element of an inner array of
 * nrd_svc_tables under the service's table_id. One element holding the whole table, not M
 * elements of one u32: the kernel lays array elements 8 bytes apart, so a u32 element costs 8
 * bytes (128 KiB per table at M = 16381; 64 KiB this way, as Cilium's Maglev maps do). Any update
 * of a map-in-map waits for an RCU grace period (milliseconds), so the daemon keeps spare tables
 * already inserted: a new or changed service takes a spare, fills it through mmap and points its
 * nrd_services value at it (one hash update, which switches table and backend count together: a
 * new flow sees the old table or the new one, never a mix). A table let go is reused only after a
 * quarantine far longer than any program run. The template's value_size here is that of the
 * default M; the loader sets it to 4 * lb_maglev_m (daemon/datapath/objects.ts), and the kernel
 * takes only inner maps of that exact value size. No BTF value type: its size would not match. */
#define NRD_LB_TABLE_DEFAULT_M 16381
struct nrd_svc_table {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_INNER_MAP | BPF_F_MMAPABLE);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, NRD_LB_TABLE_DEFAULT_M * sizeof(__u32));
};

/* Value of nrd_revnat, keyed by the u32 rev-NAT id: the frontend a reply appears to come from. */
struct nrd_revnat {
	__u32 family;
	__u8 addr[16];
	__be16 port;
	__u8 pad[2];
};

/* Key of nrd_ct. FWD: the client's packet before DNAT (client -> VIP). REPLY: the backend's
 * reply as it is sent (backend -> client). */
struct nrd_ct_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 dir;    /* NRD_CT_DIR_* */
	__u8 family;
	__u8 pad;
};

#define NRD_CT_DIR_FWD 0
#define NRD_CT_DIR_REPLY 1

struct nrd_ct_entry {
	__u32 backend_id;
	__u32 rev_nat_id;
	__u8 state; /* NRD_CT_* of nrd_dp_shared.h */
	__u8 flags; /* reserved, 0 */
	__u8 pad[6];
	__u64 last_seen_ns;
	__u64 created_ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NRD_SERVICES_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nrd_svc_key);
	__type(value, struct nrd_svc_value);
} nrd_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NRD_BACKENDS_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct nrd_backend);
} nrd_backends SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, NRD_SERVICES_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__array(values, struct nrd_svc_table);
} nrd_svc_tables SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NRD_SERVICES_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u32);
	__type(value, struct nrd_revnat);
} nrd_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NRD_CT_MAX_ENTRIES);
	__type(key, struct nrd_ct_key);
	__type(value, struct nrd_ct_entry);
} nrd_ct SEC(".maps");

/* Load-time knobs (same values in every object): the Maglev table size M (a prime, what the
 * daemon built the tables with) and NRD_LB_F_* behaviour bits. */
const volatile __u32 lb_maglev_m = NRD_LB_TABLE_DEFAULT_M;
const volatile __u32 lb_flags = 0;

#define NRD_LB_F_DRAIN_RESET (1U << 0) /* reset flows of a DRAINING backend instead of keeping them */

/* nrd_lb4/6 result: carry on forwarding (the packet may have been translated). */
#define NRD_LB_GO (-100)

/* What nrd_lb4/6/rev did to a packet they let go on (*xlated). */
#define NRD_LB_X_NONE 0
#define NRD_LB_X_DNAT 1   /* client -> frontend became client -> backend */
#define NRD_LB_X_REVNAT 2 /* backend -> client became frontend -> client */

#define NRD_LB_TCP_FIN 0x01
#define NRD_LB_TCP_SYN 0x02
#define NRD_LB_TCP_RST 0x04
#define NRD_LB_TCP_ACK 0x10

/* The flow of a packet as the load balancer sees it. */
struct nrd_lb_flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__be16 sport;
	__be16 dport;
	__u8 proto;
	__u8 family;
	__u8 tcp_flags;
	__u8 v6;
	__u32 l4off;
	__u32 csum_off;
	__u64 csum_flags; /* BPF_F_MARK_MANGLED_0 for UDP over IPv4 (checksum 0 = none) */
	__u32 payload;    /* L4 payload bytes, for the ack number of a RST */
	__u32 tcp_seq;
	__u32 tcp_ack;
};

/* Pseudo-header of IPv4 (RFC 793 §3.1) and IPv6 (RFC 8200 §8.1) for the checksums built here. */
struct nrd_lb_ph4 {
	__be32 src;
	__be32 dst;
	__u8 zero;
	__u8 proto;
	__be16 len;
};

struct nrd_lb_ph6 {
	__u8 src[16];
	__u8 dst[16];
	__be32 len;
	__u8 zero[3];
	__u8 next;
};

struct nrd_lb_tcp {
	__be16 sport;
	__be16 dport;
	__be32 seq;
	__be32 ack;
	__u8 doff; /* data offset << 4 */
	__u8 flags;
	__be16 win;
	__be16 csum;
	__be16 urg;
};

/* Every per-packet buffer of the load balancer: the flow, the map keys, the header copies of the
 * parse and the packet a reject is built from. Why not the stack: nrd_ep_ingress inlines the
 * load balancer, the neighbour answers and the policy check into one program with a 512-byte
 * stack, and the LB's buffers alone took over 250 bytes of it (the frame was 504 bytes; the
 * policy check did not fit, neither inlined nor as a subprogram, whose frame adds to the
 * caller's). A per-CPU array needs no loader support, unlike tail calls through a PROG_ARRAY that
 * the daemon and every test would have to fill, and it keeps one program per hook. A tc program
 * runs to completion on its CPU (no preemption inside a BPF program, no nesting: redirects take
 * effect after the program returns), so one slot per CPU is never shared by two packets. Fields
 * are zeroed where the code relied on "= {}" before. Not shared between objects (not pinned):
 * nothing survives a packet. */
struct nrd_lb_scratch {
	struct nrd_lb_flow f;
	struct nrd_svc_key sk;
	struct nrd_ct_key k;
	struct nrd_ct_key rk;
	struct nrd_ct_entry ne;
	__u8 hdr[40]; /* the IPv4 or IPv6 header being parsed */
	__u8 l4[16];
	/* reject */
	struct ethhdr eth;
	__u8 mac[ETH_ALEN];
	__u8 quote[48];
	struct ipv6hdr ip6;
	struct iphdr ip;
	struct nrd_lb_ph6 ph6;
	struct nrd_lb_ph4 ph4;
	struct nrd_lb_tcp t;
	__u8 icmp[8 + 28];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nrd_lb_scratch);
} nrd_lb_scratch SEC(".maps");

static __always_inline struct nrd_lb_scratch *nrd_lb_scratch_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&nrd_lb_scratch, &zero);
}

/* Connection state after one packet: like masquerade's, except that on the FWD side the client's
 * bare ACK (the third packet of the handshake) also means established. */
static __always_inline __u8 nrd_lb_ct_next(__u8 state, const struct nrd_lb_flow *f, int reply)
{
	if (f->proto != IPPROTO_TCP)
		return reply ? NRD_CT_EST : state;
	if (f->tcp_flags & NRD_LB_TCP_RST)
		return NRD_CT_CLOSED;
	if (f->tcp_flags & NRD_LB_TCP_FIN)
		return state == NRD_CT_CLOSED ? state : NRD_CT_FIN;
	if (state == NRD_CT_SYN && (f->tcp_flags & NRD_LB_TCP_ACK))
		return NRD_CT_EST;
	return state;
}

/* Reads the 5-tuple of an IPv4/IPv6 TCP or UDP packet at l3off into s->f (zeroed first). Returns
 * 0, or -1 if the packet is not one the load balancer handles (other protocols, IPv4 fragments
 * after the first, IPv6 with extension headers), which is then forwarded untouched. */
static __always_inline int nrd_lb_parse(struct __sk_buff *skb, __u32 l3off, int v6, struct nrd_lb_scratch *s)
{
	struct nrd_lb_flow *f = &s->f;
	__u8 *l4 = s->l4;
	__u32 tot;

	__builtin_memset(f, 0, sizeof(*f));
	if (v6) {
		struct ipv6hdr *h = (struct ipv6hdr *)s->hdr;

		if (bpf_skb_load_bytes(skb, l3off, s->hdr, sizeof(*h)))
			return -1;
		f->proto = h->nexthdr;
		__builtin_memcpy(f->saddr, &h->saddr, 16);
		__builtin_memcpy(f->daddr, &h->daddr, 16);
		f->l4off = l3off + sizeof(*h);
		tot = bpf_ntohs(h->payload_len);
		f->family = 6;
	} else {
		struct iphdr *h = (struct iphdr *)s->hdr;

		if (bpf_skb_load_bytes(skb, l3off, s->hdr, sizeof(*h)))
			return -1;
		if (h->frag_off & bpf_htons(0x1fff)) /* a later fragment carries no ports */
			return -1;
		f->proto = h->protocol;
		__builtin_memcpy(f->saddr, &h->saddr, 4);
		__builtin_memcpy(f->daddr, &h->daddr, 4);
		f->l4off = l3off + h->ihl * 4;
		tot = bpf_ntohs(h->tot_len) - h->ihl * 4;
		f->family = 4;
	}
	f->v6 = v6;
	if (f->proto == IPPROTO_TCP) {
		if (bpf_skb_load_bytes(skb, f->l4off, l4, 16))
			return -1;
		f->csum_off = f->l4off + 16;
		f->tcp_flags = l4[13];
		__builtin_memcpy(&f->tcp_seq, &l4[4], 4);
		__builtin_memcpy(&f->tcp_ack, &l4[8], 4);
		f->payload = tot - (l4[12] >> 4) * 4;
	} else if (f->proto == IPPROTO_UDP) {
		if (bpf_skb_load_bytes(skb, f->l4off, l4, 8))
			return -1;
		f->csum_off = f->l4off + 6;
		f->csum_flags = v6 ? 0 : BPF_F_MARK_MANGLED_0;
	} else {
		return -1;
	}
	__builtin_memcpy(&f->sport, &l4[0], 2);
	__builtin_memcpy(&f->dport, &l4[2], 2);
	return 0;
}

/* Rewrites the destination (dst = 1) or source address and port, with the IPv4 header checksum
 * and the L4 checksum (pseudo-header included) kept right. Every packet pointer dies here. */
static __always_inline int nrd_lb_rewrite(struct __sk_buff *skb, const struct nrd_lb_flow *f, __u32 l3off, int dst,
					  const __u8 *to_addr, __be16 to_port)
{
	const __u8 *from_addr = dst ? f->daddr : f->saddr;
	__be16 from_port = dst ? f->dport : f->sport;
	__u32 port_off = f->l4off + (dst ? 2 : 0);

	if (f->v6) {
		__u32 diff = (__u32)bpf_csum_diff((__be32 *)from_addr, 16, (__be32 *)to_addr, 16, 0);

		if (bpf_skb_store_bytes(skb, l3off + (dst ? 24 : 8), to_addr, 16, 0) ||
		    bpf_l4_csum_replace(skb, f->csum_off, 0, diff, BPF_F_PSEUDO_HDR | f->csum_flags))
			return -1;
	} else {
		__be32 from4, to4;

		__builtin_memcpy(&from4, from_addr, 4);
		__builtin_memcpy(&to4, to_addr, 4);
		if (bpf_skb_store_bytes(skb, l3off + (dst ? 16 : 12), &to4, 4, 0) ||
		    bpf_l3_csum_replace(skb, l3off + 10, from4, to4, 4) ||
		    bpf_l4_csum_replace(skb, f->csum_off, from4, to4, BPF_F_PSEUDO_HDR | f->csum_flags | 4))
			return -1;
	}
	if (bpf_skb_store_bytes(skb, port_off, &to_port, 2, 0) ||
	    bpf_l4_csum_replace(skb, f->csum_off, from_port, to_port, f->csum_flags | 2))
		return -1;
	return 0;
}

/* ---- rejects: TCP RST and ICMP / ICMPv6 port unreachable ------------------------------------ */

/* RFC 793 §3.4 reset generation for a segment to a closed port: if the segment has ACK, the RST
 * takes its seq from that ack; else seq 0 and RST|ACK acknowledging everything the segment
 * occupied (SYN and FIN count one each). */
static __always_inline void nrd_lb_rst_hdr(struct nrd_lb_tcp *t, const struct nrd_lb_flow *f)
{
	__u32 len = f->payload;

	__builtin_memset(t, 0, sizeof(*t));
	t->sport = f->dport;
	t->dport = f->sport;
	t->doff = 5 << 4;
	if (f->tcp_flags & NRD_LB_TCP_ACK) {
		t->seq = f->tcp_ack;
		t->flags = NRD_LB_TCP_RST;
		return;
	}
	if (f->tcp_flags & NRD_LB_TCP_SYN)
		len += 1;
	if (f->tcp_flags & NRD_LB_TCP_FIN)
		len += 1;
	t->ack = bpf_htonl(bpf_ntohl(f->tcp_seq) + len);
	t->flags = NRD_LB_TCP_RST | NRD_LB_TCP_ACK;
}

/* Builds the reject in place of the packet and sends it back out the veth it came from. The
 * reply's source is the frontend the client addressed (for the RST, the VIP:port its socket is
 * connected to; for ICMP, the address its error handling matches against). All buffers are the
 * scratch's (s->f is the packet's flow). */
static __always_inline int nrd_lb_reject(struct __sk_buff *skb, struct nrd_lb_scratch *s)
{
	const struct nrd_lb_flow *f = &s->f;
	struct ethhdr *eth = &s->eth;
	struct nrd_lb_tcp *t = &s->t;
	__u8 *quote = s->quote, *icmp = s->icmp;
	__u32 sum, l3len;

	if (bpf_skb_load_bytes(skb, 0, eth, sizeof(*eth)))
		return nrd_drop(skb, NRD_DROP_MALFORMED);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	nrd_gw_mac(s->mac);
	__builtin_memcpy(eth->h_source, s->mac, ETH_ALEN);
	/* What an ICMP error quotes: the IP header and the first 8 bytes of L4 (RFC 792; for ICMPv6,
	 * RFC 4443 §3.1 allows up to the minimum MTU, nrd quotes as much as the IPv4 case needs
	 * for the socket lookup: addresses, protocol and ports). */
	if (!f->v6 && f->l4off != sizeof(struct ethhdr) + 20) /* IPv4 options: not quoted */
		return nrd_drop(skb, NRD_DROP_MALFORMED);
	if (bpf_skb_load_bytes(skb, sizeof(*eth), quote, f->v6 ? 48 : 28))
		return nrd_drop(skb, NRD_DROP_MALFORMED);
	__builtin_memset(icmp, 0, 8);

	if (f->v6) {
		struct ipv6hdr *ip6 = &s->ip6;
		struct nrd_lb_ph6 *ph = &s->ph6;

		__builtin_memset(ip6, 0, sizeof(*ip6));
		__builtin_memset(ph, 0, sizeof(*ph));
		ip6->version = 6;
		ip6->hop_limit = 64;
		__builtin_memcpy(&ip6->saddr, f->daddr, 16);
		__builtin_memcpy(&ip6->daddr, f->saddr, 16);
		__builtin_memcpy(ph->src, f->daddr, 16);
		__builtin_memcpy(ph->dst, f->saddr, 16);
		if (f->proto == IPPROTO_TCP) {
			nrd_lb_rst_hdr(t, f);
			l3len = sizeof(*t);
			ip6->nexthdr = IPPROTO_TCP;
			ph->next = IPPROTO_TCP;
			ph->len = bpf_htonl(sizeof(*t));
			sum = nrd_csum_add(ph, sizeof(*ph), 0);
			sum = nrd_csum_add(t, sizeof(*t), sum);
			t->csum = nrd_csum_fold(sum);
		} else {
			icmp[0] = 1; /* destination unreachable */
			icmp[1] = 4; /* port unreachable */
			l3len = 8 + 48;
			ip6->nexthdr = IPPROTO_ICMPV6;
			ph->next = IPPROTO_ICMPV6;
			ph->len = bpf_htonl(l3len);
			sum = nrd_csum_add(ph, sizeof(*ph), 0);
			sum = nrd_csum_add(icmp, 8, sum);
			sum = nrd_csum_add(quote, 48, sum);
			*(__u16 *)&icmp[2] = nrd_csum_fold(sum);
		}
		ip6->payload_len = bpf_htons(l3len);
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		/* Packet pointers are dead from here: only offsets and the scratch copies are used. */
		if (bpf_skb_change_tail(skb, sizeof(*eth) + sizeof(*ip6) + l3len, 0) ||
		    bpf_skb_store_bytes(skb, 0, eth, sizeof(*eth), 0) ||
		    bpf_skb_store_bytes(skb, sizeof(*eth), ip6, sizeof(*ip6), 0))
			return nrd_drop(skb, NRD_DROP_REWRITE);
		if (f->proto == IPPROTO_TCP) {
			if (bpf_skb_store_bytes(skb, sizeof(*eth) + sizeof(*ip6), t, sizeof(*t), 0))
				return nrd_drop(skb, NRD_DROP_REWRITE);
		} else if (bpf_skb_store_bytes(skb, sizeof(*eth) + sizeof(*ip6), icmp, 8, 0) ||
			   bpf_skb_store_bytes(skb, sizeof(*eth) + sizeof(*ip6) + 8, quote, 48, 0)) {
			return nrd_drop(skb, NRD_DROP_REWRITE);
		}
	} else {
		struct iphdr *ip = &s->ip;
		struct nrd_lb_ph4 *ph = &s->ph4;

		__builtin_memset(ip, 0, sizeof(*ip));
		__builtin_memset(ph, 0, sizeof(*ph));
		ip->version = 4;
		ip->ihl = 5;
		ip->ttl = 64;
		__builtin_memcpy(&ip->saddr, f->daddr, 4);
		__builtin_memcpy(&ip->daddr, f->saddr, 4);
		if (f->proto == IPPROTO_TCP) {
			nrd_lb_rst_hdr(t, f);
			l3len = sizeof(*t);
			ip->protocol = IPPROTO_TCP;
			ph->src = ip->saddr;
			ph->dst = ip->daddr;
			ph->proto = IPPROTO_TCP;
			ph->len = bpf_htons(sizeof(*t));
			sum = nrd_csum_add(ph, sizeof(*ph), 0);
			sum = nrd_csum_add(t, sizeof(*t), sum);
			t->csum = nrd_csum_fold(sum);
		} else {
			icmp[0] = 3; /* destination unreachable */
			icmp[1] = 3; /* port unreachable */
			__builtin_memcpy(&icmp[8], quote, 28);
			l3len = sizeof(s->icmp);
			ip->protocol = IPPROTO_ICMP;
			*(__u16 *)&icmp[2] = nrd_csum_fold(nrd_csum_add(icmp, sizeof(s->icmp), 0));
		}
		ip->tot_len = bpf_htons(sizeof(*ip) + l3len);
		ip->check = nrd_csum_fold(nrd_csum_add(ip, sizeof(*ip), 0));
		eth->h_proto = bpf_htons(ETH_P_IP);
		if (bpf_skb_change_tail(skb, sizeof(*eth) + sizeof(*ip) + l3len, 0) ||
		    bpf_skb_store_bytes(skb, 0, eth, sizeof(*eth), 0) ||
		    bpf_skb_store_bytes(skb, sizeof(*eth), ip, sizeof(*ip), 0))
			return nrd_drop(skb, NRD_DROP_REWRITE);
		if (f->proto == IPPROTO_TCP) {
			if (bpf_skb_store_bytes(skb, sizeof(*eth) + sizeof(*ip), t, sizeof(*t), 0))
				return nrd_drop(skb, NRD_DROP_REWRITE);
		} else if (bpf_skb_store_bytes(skb, sizeof(*eth) + sizeof(*ip), icmp, sizeof(s->icmp), 0)) {
			return nrd_drop(skb, NRD_DROP_REWRITE);
		}
	}
	return bpf_redirect(skb->ifindex, 0);
}

/* ---- forward and reply ---------------------------------------------------------------------- */

/* A simple 5-tuple hash (murmur3 finaliser over the words); the same on every node. */
static __always_inline __u32 nrd_lb_hash(const struct nrd_lb_flow *f)
{
	const __u32 *s = (const __u32 *)f->saddr, *d = (const __u32 *)f->daddr;
	__u32 h = 0x9747b28c;

#pragma unroll
	for (int i = 0; i < 4; i++) {
		h ^= s[i];
		h *= 0xcc9e2d51;
		h = (h << 15) | (h >> 17);
		h ^= d[i];
		h *= 0x1b873593;
	}
	h ^= ((__u32)f->sport << 16) | f->dport;
	h ^= (__u32)f->proto << 8;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* A new flow's backend, or NULL when the service has none that takes new flows. */
static __always_inline struct nrd_backend *nrd_lb_select(const struct nrd_svc_value *svc, const struct nrd_lb_flow *f,
							 __u32 *bid_out)
{
	__u32 table_id = svc->table_id, m = lb_maglev_m, zero = 0, slot, n;
	struct nrd_backend *be;
	__u32 *slots, bid;
	void *table;
	__u64 idx;

	if ((svc->flags & NRD_SVC_F_NO_BACKEND) || svc->backend_count == 0 || m == 0)
		return NULL;
	if (svc->flags & NRD_SVC_F_MAGLEV) {
		slot = nrd_lb_hash(f) % m;
	} else {
		n = svc->backend_count < m ? svc->backend_count : m; /* a table holds at most M */
		slot = bpf_get_prandom_u32() % n;
	}
	table = bpf_map_lookup_elem(&nrd_svc_tables, &table_id);
	if (!table)
		return NULL;
	slots = bpf_map_lookup_elem(table, &zero);
	if (!slots)
		return NULL;
	/* lb_maglev_m is a known constant to the verifier (frozen .rodata) and the table's value is
	 * that many u32s: this check proves the index in bounds (the verifier does not follow the
	 * range of a modulo). Read again (volatile) so the compiler cannot drop it as always false;
	 * a u64 index, so the register checked is the register added (no zero-extended copy). */
	idx = slot;
	if (idx >= lb_maglev_m)
		return NULL;
	bid = slots[idx];
	be = bpf_map_lookup_elem(&nrd_backends, &bid);
	/* The slots may still point at a backend the daemon just turned DRAINING (it rewrites the
	 * slots after the backend): never give it a new flow. */
	if (!be || be->state != NRD_BE_ACTIVE)
		return NULL;
	*bid_out = bid;
	return be;
}

static __always_inline void nrd_lb_ct_key(struct nrd_ct_key *k, const __u8 *s, const __u8 *d, __be16 sport,
					  __be16 dport, const struct nrd_lb_flow *f, __u8 dir)
{
	k->pad = 0;
	__builtin_memcpy(k->saddr, s, 16);
	__builtin_memcpy(k->daddr, d, 16);
	k->sport = sport;
	k->dport = dport;
	k->proto = f->proto;
	k->dir = dir;
	k->family = f->family;
}

/* A packet from a client to a frontend (svc found): DNAT to the flow's backend. */
static __always_inline int nrd_lb_forward(struct __sk_buff *skb, struct nrd_lb_scratch *s, const struct nrd_svc_value *svc)
{
	struct nrd_lb_flow *f = &s->f;
	struct nrd_ct_entry *e, *ne = &s->ne;
	struct nrd_backend *be = NULL;
	__u64 now = bpf_ktime_get_ns();
	__u32 bid = 0;

	nrd_lb_ct_key(&s->k, f->saddr, f->daddr, f->sport, f->dport, f, NRD_CT_DIR_FWD);
	e = bpf_map_lookup_elem(&nrd_ct, &s->k);
	if (e) {
		bid = e->backend_id;
		be = bpf_map_lookup_elem(&nrd_backends, &bid);
		if (be && be->state == NRD_BE_DRAINING && (lb_flags & NRD_LB_F_DRAIN_RESET)) {
			bpf_map_delete_elem(&nrd_ct, &s->k);
			if (f->proto == IPPROTO_TCP)
				return nrd_lb_reject(skb, s);
			be = NULL; /* UDP: the next datagram is a new flow to an active backend */
		}
		if (be) {
			e->last_seen_ns = now;
			e->state = nrd_lb_ct_next(e->state, f, 0);
		}
	}
	if (!be) {
		/* New flow, or its backend is gone: a TCP segment that is not a SYN then reaches a
		 * backend without the connection and is reset by it, which is what removal means. */
		be = nrd_lb_select(svc, f, &bid);
		if (!be)
			return nrd_lb_reject(skb, s);
		__builtin_memset(ne, 0, sizeof(*ne));
		ne->backend_id = bid;
		ne->rev_nat_id = svc->rev_nat_id;
		ne->last_seen_ns = now;
		ne->created_ns = now;
		ne->state = nrd_lb_ct_next(NRD_CT_SYN, f, 0);
		/* REPLY first, so a reply can never arrive before its translation exists. */
		nrd_lb_ct_key(&s->rk, be->addr, f->saddr, be->port, f->sport, f, NRD_CT_DIR_REPLY);
		if (bpf_map_update_elem(&nrd_ct, &s->rk, ne, BPF_ANY) ||
		    bpf_map_update_elem(&nrd_ct, &s->k, ne, BPF_ANY))
			return nrd_drop(skb, NRD_DROP_REWRITE);
	}
	if (nrd_lb_rewrite(skb, f, sizeof(struct ethhdr), 1, be->addr, be->port))
		return nrd_drop(skb, NRD_DROP_REWRITE);
	return NRD_LB_GO;
}

/* A reply of a service flow (REPLY entry found): src = the frontend. Returns 1 if translated,
 * 0 if it is no service flow, -1 on a rewrite failure. */
static __always_inline int nrd_lb_reply(struct __sk_buff *skb, struct nrd_lb_scratch *s)
{
	struct nrd_lb_flow *f = &s->f;
	struct nrd_ct_entry *e, *fe;
	struct nrd_revnat *rn;
	__u32 id;

	nrd_lb_ct_key(&s->k, f->saddr, f->daddr, f->sport, f->dport, f, NRD_CT_DIR_REPLY);
	e = bpf_map_lookup_elem(&nrd_ct, &s->k);
	if (!e)
		return 0;
	id = e->rev_nat_id;
	rn = bpf_map_lookup_elem(&nrd_revnat, &id);
	if (!rn)
		return 0;
	e->last_seen_ns = bpf_ktime_get_ns();
	e->state = nrd_lb_ct_next(e->state, f, 1);
	/* The FWD entry carries the state the GC reads for the client's side as well. */
	nrd_lb_ct_key(&s->rk, f->daddr, rn->addr, f->dport, rn->port, f, NRD_CT_DIR_FWD);
	fe = bpf_map_lookup_elem(&nrd_ct, &s->rk);
	if (fe)
		fe->state = nrd_lb_ct_next(fe->state, f, 1);
	return nrd_lb_rewrite(skb, f, sizeof(struct ethhdr), 0, rn->addr, rn->port) ? -1 : 1;
}

/* Every IP packet a local endpoint sends (after the source check), from nrd_endpoint. Returns
 * NRD_LB_GO to forward the (possibly translated) packet as usual, or a verdict. *xlated is set
 * to 1 when the packet was translated (DNAT or reverse NAT), for the flow event. */
static __always_inline int nrd_lb_ep(struct __sk_buff *skb, int v6, int *xlated)
{
	struct nrd_lb_scratch *s = nrd_lb_scratch_get();
	struct nrd_svc_value *svc;
	int v;

	/* The lookup of index 0 of a one-entry array cannot fail; the verifier wants the check. */
	if (!s || nrd_lb_parse(skb, sizeof(struct ethhdr), v6, s))
		return NRD_LB_GO;
	__builtin_memset(&s->sk, 0, sizeof(s->sk));
	s->sk.family = s->f.family;
	__builtin_memcpy(s->sk.addr, s->f.daddr, 16);
	s->sk.port = s->f.dport;
	s->sk.proto = s->f.proto;
	svc = bpf_map_lookup_elem(&nrd_services, &s->sk);
	if (svc) {
		v = nrd_lb_forward(skb, s, svc);
		*xlated = v == NRD_LB_GO ? NRD_LB_X_DNAT : NRD_LB_X_NONE;
		return v;
	}
	v = nrd_lb_reply(skb, s);
	if (v < 0)
		return nrd_drop(skb, NRD_DROP_REWRITE);
	*xlated = v ? NRD_LB_X_REVNAT : NRD_LB_X_NONE;
	return NRD_LB_GO;
}

/* nrd_endpoint's call: nrd_lb_ep, then the headers again (a rewrite invalidated them). */
static __always_inline int nrd_lb4(struct __sk_buff *skb, struct ethhdr **eth, struct iphdr **ip, int *xlated)
{
	struct nrd_cursor c;
	int v = nrd_lb_ep(skb, 0, xlated);

	if (v != NRD_LB_GO)
		return v;
	c.pos = (void *)(long)skb->data;
	c.end = (void *)(long)skb->data_end;
	*eth = nrd_pull_eth(&c);
	*ip = nrd_pull_ipv4(&c);
	if (!*eth || !*ip)
		return nrd_drop(skb, NRD_DROP_MALFORMED);
	return NRD_LB_GO;
}

static __always_inline int nrd_lb6(struct __sk_buff *skb, struct ethhdr **eth, struct ipv6hdr **ip6, int *xlated)
{
	struct nrd_cursor c;
	int v = nrd_lb_ep(skb, 1, xlated);

	if (v != NRD_LB_GO)
		return v;
	c.pos = (void *)(long)skb->data;
	c.end = (void *)(long)skb->data_end;
	*eth = nrd_pull_eth(&c);
	*ip6 = nrd_pull_ipv6(&c);
	if (!*eth || !*ip6)
		return nrd_drop(skb, NRD_DROP_MALFORMED);
	return NRD_LB_GO;
}

/* nrd_netdev's call before delivering a packet from another node to a local endpoint: the reply
 * of a remote backend gets its frontend source back. Returns 0, or a drop verdict; *xlated as
 * for nrd_lb4. */
static __always_inline int nrd_lb_rev(struct __sk_buff *skb, int v6, int *xlated)
{
	struct nrd_lb_scratch *s = nrd_lb_scratch_get();
	int v;

	if (!s || nrd_lb_parse(skb, sizeof(struct ethhdr), v6, s))
		return 0;
	v = nrd_lb_reply(skb, s);
	if (v < 0)
		return nrd_drop(skb, NRD_DROP_REWRITE);
	*xlated = v ? NRD_LB_X_REVNAT : NRD_LB_X_NONE;
	return 0;
}

#endif /* NRD_LB_H */
