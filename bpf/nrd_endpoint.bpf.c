// SPDX-License-Identifier: GPL-2.0
/* tc ingress of an endpoint's host-side veth, i.e. every packet the endpoint sends (tcx ingress
 * link since 6.6, cls_bpf under clsact before; BPF_PROG_TYPE_SCHED_CLS, direct action).
 *
 *  - ARP requests (RFC 826) and IPv6 Neighbor Solicitations (RFC 4861 §7.2.4) for the gateway
 *    169.254.1.1 / fe80::1 are answered here with gw_mac and sent back out the same veth: no
 *    kernel proxy_arp, which answers only when the host has a route out another interface.
 *  - The source must be the endpoint's own address (nrd_ep_ifs), else "spoofed".
 *  - To a local endpoint (nrd_endpoints): L2 rewrite, TTL/hop limit - 1, bpf_redirect_peer.
 *  - Otherwise bpf_fib_lookup as a forwarded packet and bpf_redirect_neigh to the egress device
 *    (the uplink for native routes, the VXLAN device for encapsulated ones); masquerade happens
 *    on that device's egress (nrd_netdev), so the host stack is bypassed end to end.
 *  - IPv4-only variant (cfg_flags without NRD_DP_F_IPV6): routable IPv6 is dropped as spoofed.
 *  - Anything nrd does not forward itself (node-local destinations, link-scope IPv6, ARP
 *    replies to the host, TTL expiry, MTU exceeded, unreachable) is handed on unchanged, so the
 *    stack answers it as it would without nrd.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "nrd_parse.h"
#include "nrd_endpoint.h"
#include "nrd_lb.h"

char LICENSE[] SEC("license") = "GPL";

#define NRD_AF_INET 2
#define NRD_AF_INET6 10

/* ---- ARP ------------------------------------------------------------------------------------ */

/* From linux/if_arp.h, which drags in libc headers a BPF target cannot include. */
#define ARPHRD_ETHER 1
#define ARPOP_REQUEST 1
#define ARPOP_REPLY 2

/* Ethernet/IPv4 ARP body (RFC 826): the fixed header then the four addresses, unaligned. */
struct nrd_arp {
	__be16 hrd;
	__be16 pro;
	__u8 hln;
	__u8 pln;
	__be16 op;
	__u8 sha[ETH_ALEN];
	__u8 spa[4];
	__u8 tha[ETH_ALEN];
	__u8 tpa[4];
} __attribute__((packed));

/* Which ARP requests nrd answers. The endpoint routes everything via the gateway, so it only
 * ever asks for 169.254.1.1; but a workload configured with an on-link /24 asks for its peers
 * too, and since nrd routes at L3 the gateway MAC is the right answer for those as well
 * (NRD_DP_F_ARP_ANY, on by default, as Calico does). Never answered: RFC 5227 probes (sender
 * 0.0.0.0) and announcements or questions about the endpoint's own address — a reply would tell
 * the workload its address is taken. */
static __always_inline int arp_answers(const struct nrd_arp *arp, const struct nrd_ep_if *epif)
{
	__u32 spa, tpa;

	__builtin_memcpy(&spa, arp->spa, 4);
	__builtin_memcpy(&tpa, arp->tpa, 4);
	if (tpa == NRD_GW4)
		return 1;
	if (!(cfg_flags & NRD_DP_F_ARP_ANY) || spa == 0 || spa == tpa)
		return 0;
	if ((epif->flags & NRD_EP_IF_F_IP4) && tpa == *(const __u32 *)epif->ip4)
		return 0;
	return 1;
}

/* Turns the request into the reply in place and sends it back out the veth it came in on. */
static __always_inline int arp_reply(struct __sk_buff *skb, struct ethhdr *eth, struct nrd_arp *arp)
{
	__u8 mac[ETH_ALEN];
	__u8 ip[4];

	nrd_gw_mac(mac);
	__builtin_memcpy(eth->h_dest, arp->sha, ETH_ALEN);
	__builtin_memcpy(eth->h_source, mac, ETH_ALEN);
	arp->op = bpf_htons(ARPOP_REPLY);
	__builtin_memcpy(ip, arp->tpa, 4);
	__builtin_memcpy(arp->tha, arp->sha, ETH_ALEN);
	__builtin_memcpy(arp->tpa, arp->spa, 4);
	__builtin_memcpy(arp->sha, mac, ETH_ALEN);
	__builtin_memcpy(arp->spa, ip, 4);
	return bpf_redirect(skb->ifindex, 0);
}

static __always_inline int handle_arp(struct __sk_buff *skb, struct nrd_cursor *c, struct ethhdr *eth,
				      const struct nrd_ep_if *epif)
{
	struct nrd_arp *arp = nrd_pull(c, sizeof(*arp));

	if (!arp)
		return nrd_drop(skb, NRD_DROP_MALFORMED);
	if (arp->hrd != bpf_htons(ARPHRD_ETHER) || arp->pro != bpf_htons(ETH_P_IP) ||
	    arp->hln != ETH_ALEN || arp->pln != 4)
		return NRD_PASS;
	/* Replies go to the stack: they answer the host's own requests for the endpoint. */
	if (arp->op != bpf_htons(ARPOP_REQUEST) || !arp_answers(arp, epif))
		return NRD_PASS;
	return arp_reply(skb, eth, arp);
}

/* ---- IPv6 neighbour discovery --------------------------------------------------------------- */

#define NDISC_NEIGHBOUR_SOLICITATION 135 /* RFC 4861 §4.3 */
#define NDISC_NEIGHBOUR_ADVERTISEMENT 136 /* RFC 4861 §4.4 */

struct nrd_ns {
	__u8 type;
	__u8 code;
	__u16 csum;
	__u32 reserved;
	struct in6_addr target;
};

/* Neighbor Advertisement with one Target Link-Layer Address option (RFC 4861 §4.4, §4.6.1). */
struct nrd_na {
	__u8 type;
	__u8 code;
	__u16 csum;
	__be32 flags;
	struct in6_addr target;
	__u8 opt_type;
	__u8 opt_len; /* in units of 8 octets */
	__u8 mac[ETH_ALEN];
};

struct nrd_pseudo6 {
	struct in6_addr src;
	struct in6_addr dst;
	__be32 len;
	__u8 zero[3];
	__u8 next;
};

#define NRD_NA_FLAGS bpf_htonl(0xe0000000) /* R (we route), S (solicited), O (override) */
#define NRD_NA_LEN (sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + sizeof(struct nrd_na))

static __always_inline int ns_answers(const struct ipv6hdr *ip6, const struct nrd_ns *ns,
				      const struct nrd_ep_if *epif)
{
	if (nrd_addr6_eq(&ns->target, nrd_gw6))
		return 1;
	if (!(cfg_flags & NRD_DP_F_ARP_ANY))
		return 0;
	/* DAD (source ::) and the endpoint's own address: same reasoning as for ARP probes. */
	if (!(ip6->saddr.s6_addr32[0] | ip6->saddr.s6_addr32[1] | ip6->saddr.s6_addr32[2] |
	      ip6->saddr.s6_addr32[3]))
		return 0;
	if ((epif->flags & NRD_EP_IF_F_IP6) && nrd_addr6_eq(&ns->target, epif->ip6))
		return 0;
	return 1;
}

/* Replaces the solicitation with the advertisement (the frame is resized to exactly the NA:
 * an NS may carry a source link-layer option or not) and sends it back out the same veth. */
static __always_inline int ns_reply(struct __sk_buff *skb, const struct ethhdr *eth,
				    const struct ipv6hdr *ip6, const struct nrd_ns *ns)
{
	struct ethhdr e = {};
	struct ipv6hdr h = {};
	struct nrd_na na = {};
	struct nrd_pseudo6 ph = {};
	__u32 sum;

	__builtin_memcpy(e.h_dest, eth->h_source, ETH_ALEN);
	nrd_gw_mac(e.h_source);
	e.h_proto = bpf_htons(ETH_P_IPV6);
	h.version = 6;
	h.payload_len = bpf_htons(sizeof(na));
	h.nexthdr = IPPROTO_ICMPV6;
	h.hop_limit = 255;
	h.saddr = ns->target;
	h.daddr = ip6->saddr;
	na.type = NDISC_NEIGHBOUR_ADVERTISEMENT;
	na.flags = NRD_NA_FLAGS;
	na.target = ns->target;
	na.opt_type = 2; /* ND_OPT_TARGET_LL_ADDR */
	na.opt_len = 1;
	nrd_gw_mac(na.mac);
	ph.src = h.saddr;
	ph.dst = h.daddr;
	ph.len = bpf_htonl(sizeof(na));
	ph.next = IPPROTO_ICMPV6;
	sum = nrd_csum_add(&ph, sizeof(ph), 0);
	sum = nrd_csum_add(&na, sizeof(na), sum);
	na.csum = nrd_csum_fold(sum);

	/* Every packet pointer is dead from here: only offsets and the stack copies are used. */
	if (bpf_skb_change_tail(skb, NRD_NA_LEN, 0) ||
	    bpf_skb_store_bytes(skb, 0, &e, sizeof(e), 0) ||
	    bpf_skb_store_bytes(skb, sizeof(e), &h, sizeof(h), 0) ||
	    bpf_skb_store_bytes(skb, sizeof(e) + sizeof(h), &na, sizeof(na), 0))
		return nrd_drop(skb, NRD_DROP_REWRITE);
	return bpf_redirect(skb->ifindex, 0);
}

/* Returns 1 if the packet was a solicitation nrd answered (*verdict set), 0 to go on. */
static __always_inline int try_ns(struct __sk_buff *skb, struct nrd_cursor c, const struct ethhdr *eth,
				  const struct ipv6hdr *ip6, const struct nrd_ep_if *epif, int *verdict)
{
	struct nrd_ns *ns;

	if (ip6->nexthdr != IPPROTO_ICMPV6)
		return 0;
	ns = nrd_pull(&c, sizeof(*ns));
	if (!ns || ns->type != NDISC_NEIGHBOUR_SOLICITATION)
		return 0;
	/* RFC 4861 §7.1.1 validity: hop limit 255 (not forwarded), code 0. An invalid NS and the
	 * ones nrd does not answer go to the stack, which ignores or answers them itself. */
	if (ip6->hop_limit != 255 || ns->code != 0 || !ns_answers(ip6, ns, epif))
		return 0;
	*verdict = ns_reply(skb, eth, ip6, ns);
	return 1;
}

/* ---- forwarding ----------------------------------------------------------------------------- */

/* bpf_fib_lookup with flags 0 is the forwarding lookup of a packet that arrived on the veth
 * (flowi iif = the veth): it honours iif policy rules and the forwarding sysctl of the veth,
 * exactly as the stack would route it. BPF_FIB_LOOKUP_OUTPUT would be the lookup of a locally
 * generated packet, which is not what this is.
 *   SUCCESS  -> bpf_redirect_neigh with the nexthop the lookup found;
 *   NO_NEIGH -> the same: the kernel resolves the neighbour and queues the packet, exactly what
 *               the stack would do, without a pass through it (and its conntrack) first;
 *   anything else (local or broadcast destination, no route, blackhole/unreachable/prohibit,
 *   MTU exceeded, forwarding disabled) -> the stack, which drops or answers with ICMP. */
/* cfg_flags bit: hand everything leaving the node to the stack (no FIB redirect), because
 * masquerade then runs in nftables, whose POSTROUTING hook a redirected packet never passes. */
#define NRD_DP_F_STACK_FWD (1U << 3)

static __always_inline int fib_forward(struct __sk_buff *skb, struct bpf_fib_lookup *p)
{
	struct bpf_redir_neigh nh = {};
	long rc;

	if (cfg_flags & NRD_DP_F_STACK_FWD)
		return -1;
	rc = bpf_fib_lookup(skb, p, sizeof(*p), 0);

	/* A route that drops: counted and reported here, the stack still drops it (with its ICMP
	 * error). A missing route is NOT_FWDED, the same answer as a local destination: not told. */
	if (rc == BPF_FIB_LKUP_RET_BLACKHOLE || rc == BPF_FIB_LKUP_RET_UNREACHABLE || rc == BPF_FIB_LKUP_RET_PROHIBIT)
		nrd_drop(skb, NRD_DROP_NO_ROUTE);
	if (rc != BPF_FIB_LKUP_RET_SUCCESS && rc != BPF_FIB_LKUP_RET_NO_NEIGH)
		return -1;
	nh.nh_family = p->family;
	if (p->family == NRD_AF_INET)
		nh.ipv4_nh = p->ipv4_dst;
	else
		__builtin_memcpy(nh.ipv6_nh, p->ipv6_dst, 16);
	return bpf_redirect_neigh(p->ifindex, &nh, sizeof(nh), 0);
}

/* ---- flow events of the service load balancer ------------------------------------------------ */

/* nrd_lb4/6 leave what these events need in their per-CPU scratch (nrd_lb.h): s->f is the client's
 * packet as it was sent (to the frontend), s->sk the frontend's key, and s->ne the nrd_ct entry
 * built when the packet opened a new connection. lb_mark() clears ne.created_ns before the call,
 * so a non-zero value after it means "this packet opened the connection". */
static __always_inline void lb_mark(void)
{
	struct nrd_lb_scratch *ls = nrd_lb_scratch_get();

	if (ls)
		ls->ne.created_ns = 0;
}

/* verdict: what nrd_lb4/6 returned; xlated: what they did. A reject (TC_ACT_REDIRECT: the packet
 * became the RST or ICMP error) is a no_backend drop; a DNAT that opened a connection is a
 * service translation (client -> frontend becomes client -> backend). */
static __noinline int lb_event(struct __sk_buff *skb, int verdict, int xlated)
{
	struct nrd_lb_scratch *ls = nrd_lb_scratch_get();
	struct nrd_ev_scratch *s = nrd_ev_scratch_get();
	struct nrd_svc_value *svc;
	struct nrd_backend *be = NULL;
	struct nrd_flow_event *e;
	__u32 suppressed = 0;
	int reject = verdict == TC_ACT_REDIRECT;

	if (!ls || !s)
		return 0;
	if (!reject && !(xlated == NRD_LB_X_DNAT && ls->ne.created_ns))
		return 0;
	__builtin_memset(&s->f, 0, sizeof(s->f));
	__builtin_memcpy(s->f.saddr, ls->f.saddr, 16);
	__builtin_memcpy(s->f.daddr, ls->f.daddr, 16);
	s->f.sport_be = ls->f.sport;
	s->f.dport_be = ls->f.dport;
	s->f.proto = ls->f.proto;
	s->f.family = ls->f.family;
	if (reject) {
		__u32 drop = NRD_DROP_NO_BACKEND;

		nrd_count(bpf_map_lookup_elem(&nrd_dp_drops, &drop), skb->len);
		if (!nrd_ev_drop_gate(&s->f, &s->v, NRD_EV_DROPPED << 8 | NRD_DROP_NO_BACKEND, &suppressed))
			return 0;
	} else {
		be = bpf_map_lookup_elem(&nrd_backends, &ls->ne.backend_id);
	}
	svc = bpf_map_lookup_elem(&nrd_services, &ls->sk);
	e = nrd_ev_begin(skb, s, reject ? NRD_EV_DROPPED : NRD_EV_TRANSLATED, reject ? NRD_DROP_NO_BACKEND : NRD_XLATE_SERVICE);
	if (!e)
		return 0;
	e->service = svc ? svc->id : 0;
	e->suppressed = suppressed;
	if (!reject) {
		e->backend = ls->ne.backend_id;
		if (be) {
			__builtin_memcpy(e->xaddr, be->addr, 16);
			e->xport_be = be->port;
		}
		/* the backend's identity, as the DNAT's peer */
		e->dst_identity = nrd_ipcache_identity(&s->lk, s->f.family, e->xaddr);
	}
	nrd_ev_submit(e);
	return 0;
}

static __always_inline int handle_ipv4(struct __sk_buff *skb, struct nrd_cursor *c, struct ethhdr *eth,
				       const struct nrd_ep_if *epif)
{
	struct iphdr *ip = nrd_pull_ipv4(c);
	struct nrd_ep_value *ep;
	struct bpf_fib_lookup p = {};
	int verdict, xlated = 0;

	if (!ip)
		return nrd_drop(skb, NRD_DROP_MALFORMED);
	if (!(epif->flags & NRD_EP_IF_F_IP4) || ip->saddr != *(const __u32 *)epif->ip4)
		return nrd_drop(skb, NRD_DROP_SPOOFED);
	nrd_ep_count(skb->ifindex, 0, skb->len);
	/* Service VIP -> backend, or a backend's reply -> from the VIP (nrd_lb.h). */
	lb_mark();
	verdict = nrd_lb4(skb, &eth, &ip, &xlated);
	if (verdict != NRD_LB_GO) {
		if (verdict == TC_ACT_REDIRECT)
			lb_event(skb, verdict, xlated);
		return verdict;
	}
	if (xlated == NRD_LB_X_DNAT)
		lb_event(skb, verdict, xlated);
	/* Egress policy after the DNAT: the peer is the backend. A translated reply was allowed as
	 * its connection's forward packets were (see nrd_deliver_local). The check reads the
	 * packet through helpers only, so eth and ip stay valid across it. */
	if (xlated != NRD_LB_X_REVNAT && nrd_pol_from_ep(skb, epif))
		return TC_ACT_SHOT;

	ep = nrd_ep_lookup4(ip->daddr);
	if (ep) {
		if (nrd_ttl_dec4(ip))
			return NRD_PASS;
		return nrd_deliver_local(skb, eth, ep, xlated == NRD_LB_X_REVNAT);
	}

	p.family = NRD_AF_INET;
	p.tos = ip->tos;
	p.l4_protocol = ip->protocol;
	p.ipv4_src = ip->saddr;
	p.ipv4_dst = ip->daddr;
	p.ifindex = skb->ifindex;
	if (ip->ttl <= 1) /* the stack sends the time-exceeded */
		return NRD_PASS;
	verdict = fib_forward(skb, &p);
	if (verdict < 0)
		return NRD_PASS;
	/* Neither helper touches packet data, so ip is still valid; the TTL changes only once the
	 * packet is certainly forwarded (the stack must see it intact). */
	nrd_ttl_dec4(ip);
	return verdict;
}

static __always_inline int is_link_scope6(const struct in6_addr *a)
{
	return a->s6_addr[0] == 0xff ||                                /* multicast */
	       (a->s6_addr[0] == 0xfe && (a->s6_addr[1] & 0xc0) == 0x80) || /* fe80::/10 */
	       !(a->s6_addr32[0] | a->s6_addr32[1] | a->s6_addr32[2] | a->s6_addr32[3]);
}

static __always_inline int handle_ipv6(struct __sk_buff *skb, struct nrd_cursor *c, struct ethhdr *eth,
				       const struct nrd_ep_if *epif)
{
	struct ipv6hdr *ip6 = nrd_pull_ipv6(c);
	struct nrd_ep_value *ep;
	struct bpf_fib_lookup p = {};
	int verdict, xlated = 0;

	if (!ip6)
		return nrd_drop(skb, NRD_DROP_MALFORMED);
	if (try_ns(skb, *c, eth, ip6, epif, &verdict))
		return verdict;
	/* Link-scope traffic (NDP with the host, MLD, ...) belongs to the link: the stack. */
	if (is_link_scope6(&ip6->saddr) || is_link_scope6(&ip6->daddr))
		return NRD_PASS;
	if (!(epif->flags & NRD_EP_IF_F_IP6) || !nrd_addr6_eq(&ip6->saddr, epif->ip6))
		return nrd_drop(skb, NRD_DROP_SPOOFED);
	nrd_ep_count(skb->ifindex, 0, skb->len);
	lb_mark();
	verdict = nrd_lb6(skb, &eth, &ip6, &xlated);
	if (verdict != NRD_LB_GO) {
		if (verdict == TC_ACT_REDIRECT)
			lb_event(skb, verdict, xlated);
		return verdict;
	}
	if (xlated == NRD_LB_X_DNAT)
		lb_event(skb, verdict, xlated);
	if (xlated != NRD_LB_X_REVNAT && nrd_pol_from_ep(skb, epif))
		return TC_ACT_SHOT;

	ep = nrd_ep_lookup6(&ip6->daddr);
	if (ep) {
		if (nrd_hop_dec6(ip6))
			return NRD_PASS;
		return nrd_deliver_local(skb, eth, ep, xlated == NRD_LB_X_REVNAT);
	}

	if (ip6->hop_limit <= 1)
		return NRD_PASS;
	p.family = NRD_AF_INET6;
	p.flowinfo = *(__be32 *)ip6 & bpf_htonl(0x0fffffff);
	p.l4_protocol = ip6->nexthdr;
	__builtin_memcpy(p.ipv6_src, &ip6->saddr, 16);
	__builtin_memcpy(p.ipv6_dst, &ip6->daddr, 16);
	p.ifindex = skb->ifindex;
	verdict = fib_forward(skb, &p);
	if (verdict < 0)
		return NRD_PASS;
	nrd_hop_dec6(ip6);
	return verdict;
}

/* IPv4-only variant: link-scope IPv6 still goes to the stack (which owns the link), but a
 * routable IPv6 packet cannot carry the endpoint's own address (it has none), and handing it on
 * would let the host forward it with any source. */
static __always_inline int ipv6_off(struct __sk_buff *skb, struct nrd_cursor *c)
{
	struct ipv6hdr *ip6 = nrd_pull_ipv6(c);

	if (!ip6)
		return nrd_drop(skb, NRD_DROP_MALFORMED);
	if (is_link_scope6(&ip6->saddr) || is_link_scope6(&ip6->daddr))
		return NRD_PASS;
	return nrd_drop(skb, NRD_DROP_SPOOFED);
}

SEC("tc")
int nrd_ep_ingress(struct __sk_buff *skb)
{
	struct nrd_cursor c = {
		.pos = (void *)(long)skb->data,
		.end = (void *)(long)skb->data_end,
	};
	struct ethhdr *eth = nrd_pull_eth(&c);
	__u32 ifindex = skb->ifindex;
	struct nrd_ep_if *epif;

	if (!eth)
		return nrd_drop(skb, NRD_DROP_MALFORMED);
	/* The daemon fills nrd_ep_ifs before it attaches: a veth without an entry is a leftover or
	 * a bug, and letting it through would skip the source check. */
	epif = bpf_map_lookup_elem(&nrd_ep_ifs, &ifindex);
	if (!epif)
		return nrd_drop(skb, NRD_DROP_UNKNOWN_EP);

	if (eth->h_proto == bpf_htons(ETH_P_ARP))
		return handle_arp(skb, &c, eth, epif);
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		return handle_ipv4(skb, &c, eth, epif);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		if (cfg_flags & NRD_DP_F_IPV6)
			return handle_ipv6(skb, &c, eth, epif);
		return ipv6_off(skb, &c);
	}
	return NRD_PASS;
}
