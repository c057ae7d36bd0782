// SPDX-License-Identifier: GPL-2.0
/* tc programs of the node's uplink and of the VXLAN device (tcx links since 6.6, cls_bpf under
 * clsact before; BPF_PROG_TYPE_SCHED_CLS, direct action).
 *
 *  ingress: reverse masquerade of replies to the node address (TCP, UDP, ICMP echo, and ICMP
 *           errors quoting a masqueraded packet, RFC 5508 §4.2), then anything addressed to a
 *           local endpoint goes straight into its namespace (bpf_redirect_peer).
 *  egress:  masquerade (RFC 3022 NAPT) of IPv4 and IPv6 from local endpoints to destinations
 *           outside the cluster pools and exclusions: source = node address (node_ip4 /
 *           node_ip6), source port (ICMP/ICMPv6 echo identifier) from the configured range.
 * IPv6 has no header checksum, but every L4 checksum (ICMPv6 too, RFC 4443 §2.3) covers the
 * pseudo-header, so an address change is one bpf_csum_diff over 16 bytes applied to it.
 * Everything else is handed on unchanged (TCX_NEXT).
 *
 * nrd departs from RFC 5508/RFC 4787 where cost says so: fragments are not translated (the
 * first one would be, the others cannot be matched without reassembly; they are handed on), and
 * an ICMP error's quoted TCP checksum is left as is (it lies past the 8 bytes every router
 * quotes, and no receiver checks it); the quoted UDP checksum is fixed. IPv6 packets with
 * extension headers before the L4 header are handed on untranslated (an endpoint's stack sends
 * none on TCP/UDP/ICMPv6 echo, and a fragment header means a fragment).
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "nrd_parse.h"
#include "nrd_endpoint.h"
#include "nrd_nat.h"
#include "nrd_nat6.h"
#include "nrd_lb.h"

char LICENSE[] SEC("license") = "GPL";

#define L3_OFF sizeof(struct ethhdr)
#define IP_CSUM_OFF (L3_OFF + 10)
#define ICMP_ECHO_REPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PARAMPROB 4 /* 1..4: unreachable, packet too big, time exceeded, parameter problem */
#define ICMPV6_ECHO_REQUEST 128
#define ICMPV6_ECHO_REPLY 129
#define L4_OFF6 (L3_OFF + sizeof(struct ipv6hdr))

/* Failure result of the ingress translations: a drop reason, kept apart from 0 ("not ours"). */
#define NAT_ERR(reason) (-1 - (reason))

/* Offset of the L4 checksum field, and the bpf_l4_csum_replace flags it needs (a UDP checksum
 * of 0 means "none" and must stay 0, BPF_F_MARK_MANGLED_0). */
static __always_inline int l4_csum(__u8 proto, __u32 l4off, __u32 *off, __u64 *flags)
{
	switch (proto) {
	case IPPROTO_TCP:
		*off = l4off + 16;
		*flags = 0;
		return 0;
	case IPPROTO_UDP:
		*off = l4off + 6;
		*flags = BPF_F_MARK_MANGLED_0;
		return 0;
	case IPPROTO_ICMP:
		*off = l4off + 2;
		*flags = 0;
		return 0;
	}
	return -1;
}

/* l4_csum for IPv6: ICMPv6 instead of ICMP. */
static __always_inline int l4_csum6(__u8 proto, __u32 l4off, __u32 *off, __u64 *flags)
{
	if (proto == IPPROTO_ICMPV6) {
		*off = l4off + 2;
		*flags = 0;
		return 0;
	}
	if (proto == IPPROTO_ICMP)
		return -1;
	return l4_csum(proto, l4off, off, flags);
}

/* Applies a pseudo-header change (diff from bpf_csum_diff) to the L4 checksum at off. Kernels
 * since 6.16 need BPF_F_IPV6 to leave a CHECKSUM_COMPLETE skb's csum alone (the address bytes
 * changed in the packet compensate the checksum change); older ones refuse the flag with
 * -EINVAL before touching anything, and are asked again without it. */
static __always_inline int l4_csum_diff6(struct __sk_buff *skb, __u32 off, __u32 diff, __u64 flags)
{
	long rc = bpf_l4_csum_replace(skb, off, 0, diff, flags | BPF_F_PSEUDO_HDR | BPF_F_IPV6);

	if (rc == -22 /* EINVAL */)
		rc = bpf_l4_csum_replace(skb, off, 0, diff, flags | BPF_F_PSEUDO_HDR);
	return rc;
}

static __always_inline int is_fragment(const struct iphdr *ip)
{
	return ip->frag_off & bpf_htons(0x3fff); /* MF or a non-zero offset */
}

/* Rewrites one IPv4 address of the (outer) header in place, checksum included. */
static __always_inline void set_addr4(struct iphdr *ip, int dst, __be32 to)
{
	__be32 from = dst ? ip->daddr : ip->saddr;

	if (dst)
		ip->daddr = to;
	else
		ip->saddr = to;
	ip->check = nrd_csum_replace4(ip->check, from, to);
}

/* Changes a 16-bit field of the ICMP message at off and keeps the ICMP checksum right. */
static __always_inline int icmp_set16(struct __sk_buff *skb, __u32 csum_off, __u32 off, __u16 from, __u16 to)
{
	if (bpf_skb_store_bytes(skb, off, &to, 2, 0))
		return -1;
	return bpf_l4_csum_replace(skb, csum_off, from, to, 2);
}

/* ---- egress: masquerade --------------------------------------------------------------------- */

/* The translated event of a new mapping (nrd_ev_masq): the flow as the endpoint sent it, the node
 * address and port it leaves with. Only on a new mapping, so once per connection. */
static __always_inline void masq_event(struct __sk_buff *skb, const __u8 *saddr, const __u8 *daddr, __u32 alen,
				       __be16 sport, __be16 dport, __u8 proto, const void *node, __be16 port)
{
	struct nrd_ev_scratch *s = nrd_ev_scratch_get();

	if (!s)
		return;
	__builtin_memset(&s->f, 0, sizeof(s->f));
	__builtin_memset(s->xaddr, 0, sizeof(s->xaddr));
	if (alen == 4) {
		__builtin_memcpy(s->f.saddr, saddr, 4);
		__builtin_memcpy(s->f.daddr, daddr, 4);
		__builtin_memcpy(s->xaddr, node, 4);
		s->f.family = 4;
	} else {
		__builtin_memcpy(s->f.saddr, saddr, 16);
		__builtin_memcpy(s->f.daddr, daddr, 16);
		__builtin_memcpy(s->xaddr, node, 16);
		s->f.family = 6;
	}
	s->f.sport_be = sport;
	s->f.dport_be = dport;
	s->f.proto = proto;
	nrd_ev_masq(skb, port);
}

static __always_inline int masquerade(struct __sk_buff *skb, struct iphdr *ip, __u32 l4off)
{
	__be32 node = node_ip4, src = ip->saddr;
	__u8 proto = ip->protocol, tcp_flags = 0;
	struct nrd_nat4_key k = { .proto = proto, .dir = NRD_NAT_DIR_OUT };
	struct nrd_nat4_entry *e;
	__u32 csum_off, port_off;
	__u64 csum_flags, now = bpf_ktime_get_ns();
	__be16 port, old;
	__u8 l4[14];

	if (l4_csum(proto, l4off, &csum_off, &csum_flags))
		return NRD_PASS; /* other protocols cannot be told apart behind one address */
	if (bpf_skb_load_bytes(skb, l4off, l4, proto == IPPROTO_TCP ? 14 : 8))
		return nrd_drop(skb, NRD_DROP_MALFORMED);
	__builtin_memcpy(k.saddr, &ip->saddr, 4);
	__builtin_memcpy(k.daddr, &ip->daddr, 4);
	if (proto == IPPROTO_ICMP) {
		/* Only echo requests open a flow; errors the endpoint sends about a translated flow
		 * would need the quoted header translated too (not done: handed on). */
		if (l4[0] != ICMP_ECHO)
			return NRD_PASS;
		__builtin_memcpy(&k.sport_be, &l4[4], 2);
		port_off = l4off + 4;
	} else {
		__builtin_memcpy(&k.sport_be, &l4[0], 2);
		__builtin_memcpy(&k.dport_be, &l4[2], 2);
		port_off = l4off;
		if (proto == IPPROTO_TCP)
			tcp_flags = l4[13];
	}
	old = k.sport_be;

	e = bpf_map_lookup_elem(&nrd_nat4, &k);
	if (e && !nrd_nat4_keep_reply(&k, e, node, now)) {
		bpf_map_delete_elem(&nrd_nat4, &k);
		e = NULL;
	}
	if (e) {
		port = e->port_be;
		e->last_seen_ns = now;
		e->state = nrd_ct_next(e->state, proto, tcp_flags, 0);
	} else {
		port = nrd_nat4_alloc(&k, node, nrd_ct_next(NRD_CT_SYN, proto, tcp_flags, 0), now);
		if (!port)
			return nrd_drop(skb, NRD_DROP_NAT_EXHAUSTED);
		masq_event(skb, k.saddr, k.daddr, 4, k.sport_be, k.dport_be, proto, &node, port);
	}

	/* Direct writes to the IP header first; after the first helper every pointer is dead. */
	set_addr4(ip, 0, node);
	if (proto != IPPROTO_ICMP &&
	    bpf_l4_csum_replace(skb, csum_off, src, node, BPF_F_PSEUDO_HDR | csum_flags | 4))
		return nrd_drop(skb, NRD_DROP_REWRITE);
	if (bpf_skb_store_bytes(skb, port_off, &port, 2, 0) ||
	    bpf_l4_csum_replace(skb, csum_off, old, port, csum_flags | 2))
		return nrd_drop(skb, NRD_DROP_REWRITE);
	return NRD_PASS;
}

/* IPv6 twin of masquerade(): the source address becomes the node's, the L4 checksum follows
 * through its pseudo-header, the port (echo identifier) comes from nrd_nat6. */
static __always_inline int masquerade6(struct __sk_buff *skb, struct ipv6hdr *ip6, const struct in6_addr *node)
{
	__u8 proto = ip6->nexthdr, tcp_flags = 0;
	struct nrd_nat6_key k = { .proto = proto, .dir = NRD_NAT_DIR_OUT };
	struct nrd_nat6_entry *e;
	__u32 csum_off, port_off, diff;
	__u64 csum_flags, now = bpf_ktime_get_ns();
	__be16 port, old;
	__u8 l4[14];

	if (l4_csum6(proto, L4_OFF6, &csum_off, &csum_flags))
		return NRD_PASS;
	if (bpf_skb_load_bytes(skb, L4_OFF6, l4, proto == IPPROTO_TCP ? 14 : 8))
		return nrd_drop(skb, NRD_DROP_MALFORMED);
	__builtin_memcpy(k.saddr, &ip6->saddr, 16);
	__builtin_memcpy(k.daddr, &ip6->daddr, 16);
	if (proto == IPPROTO_ICMPV6) {
		if (l4[0] != ICMPV6_ECHO_REQUEST)
			return NRD_PASS;
		__builtin_memcpy(&k.sport_be, &l4[4], 2);
		port_off = L4_OFF6 + 4;
	} else {
		__builtin_memcpy(&k.sport_be, &l4[0], 2);
		__builtin_memcpy(&k.dport_be, &l4[2], 2);
		port_off = L4_OFF6;
		if (proto == IPPROTO_TCP)
			tcp_flags = l4[13];
	}
	old = k.sport_be;

	e = bpf_map_lookup_elem(&nrd_nat6, &k);
	if (e && !nrd_nat6_keep_reply(&k, e, node, now)) {
		bpf_map_delete_elem(&nrd_nat6, &k);
		e = NULL;
	}
	if (e) {
		port = e->port_be;
		e->last_seen_ns = now;
		e->state = nrd_ct_next(e->state, proto, tcp_flags, 0);
	} else {
		port = nrd_nat6_alloc(&k, node, nrd_ct_next(NRD_CT_SYN, proto, tcp_flags, 0), now);
		if (!port)
			return nrd_drop(skb, NRD_DROP_NAT_EXHAUSTED);
		masq_event(skb, k.saddr, k.daddr, 16, k.sport_be, k.dport_be, proto, node, port);
	}

	diff = (__u32)bpf_csum_diff((__be32 *)k.saddr, 16, (__be32 *)node, 16, 0);
	ip6->saddr = *node;
	if (l4_csum_diff6(skb, csum_off, diff, csum_flags))
		return nrd_drop(skb, NRD_DROP_REWRITE);
	if (bpf_skb_store_bytes(skb, port_off, &port, 2, 0) ||
	    bpf_l4_csum_replace(skb, csum_off, old, port, csum_flags | 2))
		return nrd_drop(skb, NRD_DROP_REWRITE);
	return NRD_PASS;
}

static __always_inline int egress6(struct __sk_buff *skb, struct nrd_cursor *c)
{
	struct in6_addr node;
	struct ipv6hdr *ip6;

	if (!(cfg_flags & NRD_DP_F_IPV6) || !nrd_node_ip6(&node))
		return NRD_PASS;
	ip6 = nrd_pull_ipv6(c);
	if (!ip6)
		return NRD_PASS;
	if (!nrd_ep_lookup6(&ip6->saddr) || !nrd_masq_dst6(&ip6->daddr))
		return NRD_PASS;
	return masquerade6(skb, ip6, &node);
}

SEC("tc")
int nrd_dev_egress(struct __sk_buff *skb)
{
	struct nrd_cursor c = {
		.pos = (void *)(long)skb->data,
		.end = (void *)(long)skb->data_end,
	};
	struct ethhdr *eth = nrd_pull_eth(&c);
	struct iphdr *ip;

	if (!(cfg_flags & NRD_DP_F_MASQ) || !eth)
		return NRD_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return egress6(skb, &c);
	if (!node_ip4 || eth->h_proto != bpf_htons(ETH_P_IP))
		return NRD_PASS;
	ip = nrd_pull_ipv4(&c);
	if (!ip || is_fragment(ip))
		return NRD_PASS;
	/* Only local endpoints are masqueraded (not the node's own traffic, not transit), and only
	 * towards destinations outside the cluster pools and exclusions. */
	if (!nrd_ep_lookup4(ip->saddr) || !nrd_masq_dst4(ip->daddr))
		return NRD_PASS;
	return masquerade(skb, ip, (__u32)((void *)c.pos - (void *)(long)skb->data));
}

/* ---- ingress: reverse masquerade ------------------------------------------------------------ */

/* TCP/UDP reply or ICMP echo reply to the node address. Returns 1 if translated, 0 if it is not
 * a masqueraded flow, or NAT_ERR(drop reason). */
static __always_inline int unmasq_reply(struct __sk_buff *skb, struct iphdr *ip, __u32 l4off)
{
	__u8 proto = ip->protocol, tcp_flags = 0;
	struct nrd_nat4_key k = { .proto = proto, .dir = NRD_NAT_DIR_REPLY };
	struct nrd_nat4_key ok = { .proto = proto, .dir = NRD_NAT_DIR_OUT };
	struct nrd_nat4_entry *e, *out;
	__u32 csum_off, port_off;
	__u64 csum_flags;
	__be32 node = ip->daddr, ep_addr;
	__be16 old, port;
	__u8 l4[14];

	if (l4_csum(proto, l4off, &csum_off, &csum_flags))
		return 0;
	if (bpf_skb_load_bytes(skb, l4off, l4, proto == IPPROTO_TCP ? 14 : 8))
		return NAT_ERR(NRD_DROP_MALFORMED);
	__builtin_memcpy(k.saddr, &ip->saddr, 4);
	__builtin_memcpy(k.daddr, &ip->daddr, 4);
	if (proto == IPPROTO_ICMP) {
		__builtin_memcpy(&k.dport_be, &l4[4], 2);
		port_off = l4off + 4;
	} else {
		__builtin_memcpy(&k.sport_be, &l4[0], 2);
		__builtin_memcpy(&k.dport_be, &l4[2], 2);
		port_off = l4off + 2;
		if (proto == IPPROTO_TCP)
			tcp_flags = l4[13];
	}
	e = bpf_map_lookup_elem(&nrd_nat4, &k);
	if (!e)
		return 0;
	e->last_seen_ns = bpf_ktime_get_ns();
	__builtin_memcpy(&ep_addr, e->addr, 4);
	port = e->port_be;
	old = k.dport_be;

	/* The OUT entry holds the state; its key is the endpoint's view of the flow. */
	__builtin_memcpy(ok.saddr, e->addr, 4);
	__builtin_memcpy(ok.daddr, k.saddr, 4);
	ok.sport_be = port;
	ok.dport_be = k.sport_be;
	out = bpf_map_lookup_elem(&nrd_nat4, &ok);
	if (out) {
		out->state = nrd_ct_next(out->state, proto, tcp_flags, 1);
		e->state = out->state;
	}

	set_addr4(ip, 1, ep_addr);
	if (proto != IPPROTO_ICMP &&
	    bpf_l4_csum_replace(skb, csum_off, node, ep_addr, BPF_F_PSEUDO_HDR | csum_flags | 4))
		return NAT_ERR(NRD_DROP_REWRITE);
	if (bpf_skb_store_bytes(skb, port_off, &port, 2, 0) ||
	    bpf_l4_csum_replace(skb, csum_off, old, port, csum_flags | 2))
		return NAT_ERR(NRD_DROP_REWRITE);
	return 1;
}

/* The IPv4 header and first 8 bytes of L4 an ICMP error quotes (RFC 792). */
struct quoted4 {
	struct iphdr ip;
	__u8 l4[8];
};

/* ICMP error (destination unreachable, time exceeded, parameter problem) about a packet nrd
 * masqueraded: the quoted packet went out as (node:port -> remote), so the error is translated
 * back to what the endpoint sent (endpoint:port -> remote) — outer destination, quoted source
 * address, quoted IP checksum, quoted source port or echo id and the checksum covering it —
 * with the outer ICMP checksum kept right through every change. */
static __always_inline int unmasq_icmp_error(struct __sk_buff *skb, struct iphdr *ip, __u32 l4off)
{
	__u32 qoff = l4off + 8, ql4 = qoff + sizeof(struct iphdr), ocsum = l4off + 2;
	struct nrd_nat4_key k = { .dir = NRD_NAT_DIR_REPLY };
	struct nrd_nat4_entry *e;
	struct quoted4 q;
	__be32 node = ip->daddr, ep_addr;
	__u16 check, port_field, csum_field = 0;
	__be16 old, port;
	__u32 port_at, csum_at = 0;

	if (bpf_skb_load_bytes(skb, qoff, &q, sizeof(q)))
		return 0;
	/* The quoted packet must be one the node sent: from the node address, no IP options. */
	if (q.ip.ihl != 5 || q.ip.saddr != node)
		return 0;
	k.proto = q.ip.protocol;
	__builtin_memcpy(k.saddr, &q.ip.daddr, 4);
	__builtin_memcpy(k.daddr, &q.ip.saddr, 4);
	if (k.proto == IPPROTO_TCP || k.proto == IPPROTO_UDP) {
		__builtin_memcpy(&k.sport_be, &q.l4[2], 2);
		__builtin_memcpy(&k.dport_be, &q.l4[0], 2);
		port_at = ql4;
		old = k.dport_be;
		if (k.proto == IPPROTO_UDP) {
			csum_at = ql4 + 6;
			__builtin_memcpy(&csum_field, &q.l4[6], 2);
		}
	} else if (k.proto == IPPROTO_ICMP && q.l4[0] == ICMP_ECHO) {
		__builtin_memcpy(&k.dport_be, &q.l4[4], 2);
		port_at = ql4 + 4;
		old = k.dport_be;
		csum_at = ql4 + 2;
		__builtin_memcpy(&csum_field, &q.l4[2], 2);
	} else {
		return 0;
	}
	e = bpf_map_lookup_elem(&nrd_nat4, &k);
	if (!e)
		return 0;
	__builtin_memcpy(&ep_addr, e->addr, 4);
	port = e->port_be;

	set_addr4(ip, 1, ep_addr);
	/* quoted source address and the quoted IP checksum that covers it */
	check = nrd_csum_replace4(q.ip.check, node, ep_addr);
	if (bpf_skb_store_bytes(skb, qoff + 12, &ep_addr, 4, 0) ||
	    bpf_l4_csum_replace(skb, ocsum, node, ep_addr, 4) ||
	    icmp_set16(skb, ocsum, qoff + 10, q.ip.check, check))
		return NAT_ERR(NRD_DROP_REWRITE);
	/* quoted port / echo id, and the quoted UDP or ICMP checksum if present */
	if (icmp_set16(skb, ocsum, port_at, old, port))
		return NAT_ERR(NRD_DROP_REWRITE);
	if (csum_at) {
		if (csum_field || k.proto == IPPROTO_ICMP) {
			port_field = nrd_csum_replace2(csum_field, old, port);
			if (k.proto == IPPROTO_UDP) /* pseudo-header source address changed too */
				port_field = nrd_csum_replace4(port_field, node, ep_addr);
			if (icmp_set16(skb, ocsum, csum_at, csum_field, port_field))
				return NAT_ERR(NRD_DROP_REWRITE);
		}
	}
	return 1;
}

/* Hands an IPv4 packet for a local endpoint into its namespace; NRD_PASS if not one of ours. */
static __always_inline int to_endpoint4(struct __sk_buff *skb)
{
	/* First, before the cursor: a remote service backend's reply gets its VIP back (nrd_lb.h). */
	int revnat = 0, lb = nrd_lb_rev(skb, 0, &revnat);
	struct nrd_cursor c = {
		.pos = (void *)(long)skb->data,
		.end = (void *)(long)skb->data_end,
	};
	struct ethhdr *eth = nrd_pull_eth(&c);
	struct nrd_ep_value *ep;
	struct iphdr *ip;

	if (lb)
		return lb;

	if (!eth)
		return NRD_PASS;
	ip = nrd_pull_ipv4(&c);
	if (!ip)
		return NRD_PASS;
	ep = nrd_ep_lookup4(ip->daddr);
	if (!ep || nrd_ttl_dec4(ip))
		return NRD_PASS;
	return nrd_deliver_local(skb, eth, ep, revnat == NRD_LB_X_REVNAT);
}

/* ---- ingress: reverse masquerade, IPv6 ------------------------------------------------------ */

/* IPv6 twin of unmasq_reply(): TCP/UDP reply or ICMPv6 echo reply to node_ip6. */
static __always_inline int unmasq_reply6(struct __sk_buff *skb, struct ipv6hdr *ip6, const struct in6_addr *node)
{
	__u8 proto = ip6->nexthdr, tcp_flags = 0;
	struct nrd_nat6_key k = { .proto = proto, .dir = NRD_NAT_DIR_REPLY };
	struct nrd_nat6_key ok = { .proto = proto, .dir = NRD_NAT_DIR_OUT };
	struct nrd_nat6_entry *e, *out;
	struct in6_addr ep_addr;
	__u32 csum_off, port_off, diff;
	__u64 csum_flags;
	__be16 old, port;
	__u8 l4[14];

	if (l4_csum6(proto, L4_OFF6, &csum_off, &csum_flags))
		return 0;
	if (bpf_skb_load_bytes(skb, L4_OFF6, l4, proto == IPPROTO_TCP ? 14 : 8))
		return NAT_ERR(NRD_DROP_MALFORMED);
	__builtin_memcpy(k.saddr, &ip6->saddr, 16);
	__builtin_memcpy(k.daddr, node, 16);
	if (proto == IPPROTO_ICMPV6) {
		__builtin_memcpy(&k.dport_be, &l4[4], 2);
		port_off = L4_OFF6 + 4;
	} else {
		__builtin_memcpy(&k.sport_be, &l4[0], 2);
		__builtin_memcpy(&k.dport_be, &l4[2], 2);
		port_off = L4_OFF6 + 2;
		if (proto == IPPROTO_TCP)
			tcp_flags = l4[13];
	}
	e = bpf_map_lookup_elem(&nrd_nat6, &k);
	if (!e)
		return 0;
	e->last_seen_ns = bpf_ktime_get_ns();
	__builtin_memcpy(&ep_addr, e->addr, 16);
	port = e->port_be;
	old = k.dport_be;

	__builtin_memcpy(ok.saddr, e->addr, 16);
	__builtin_memcpy(ok.daddr, k.saddr, 16);
	ok.sport_be = port;
	ok.dport_be = k.sport_be;
	out = bpf_map_lookup_elem(&nrd_nat6, &ok);
	if (out) {
		out->state = nrd_ct_next(out->state, proto, tcp_flags, 1);
		e->state = out->state;
	}

	diff = (__u32)bpf_csum_diff((__be32 *)node, 16, (__be32 *)&ep_addr, 16, 0);
	ip6->daddr = ep_addr;
	if (l4_csum_diff6(skb, csum_off, diff, csum_flags))
		return NAT_ERR(NRD_DROP_REWRITE);
	if (bpf_skb_store_bytes(skb, port_off, &port, 2, 0) ||
	    bpf_l4_csum_replace(skb, csum_off, old, port, csum_flags | 2))
		return NAT_ERR(NRD_DROP_REWRITE);
	return 1;
}

/* The IPv6 header and first 8 bytes of L4 an ICMPv6 error quotes (RFC 4443 quotes as much as
 * fits; these are all nrd reads). */
struct quoted6 {
	struct ipv6hdr ip;
	__u8 l4[8];
};

/* IPv6 twin of unmasq_icmp_error() for ICMPv6 types 1-4 (packet too big included, so path MTU
 * discovery works through the masquerade). The outer ICMPv6 checksum covers its pseudo-header
 * (outer destination) and the quoted bytes (quoted source address, port, checksum); the quoted
 * UDP or ICMPv6 echo checksum covers the quoted source address through its own pseudo-header. */
static __always_inline int unmasq_icmp6_error(struct __sk_buff *skb, struct ipv6hdr *ip6, const struct in6_addr *node)
{
	__u32 qoff = L4_OFF6 + 8, ql4 = qoff + sizeof(struct ipv6hdr), ocsum = L4_OFF6 + 2;
	struct nrd_nat6_key k = { .dir = NRD_NAT_DIR_REPLY };
	struct nrd_nat6_entry *e;
	struct in6_addr ep_addr;
	struct quoted6 q;
	__u16 check, csum_field = 0;
	__u32 port_at, csum_at = 0, diff;
	__be16 old, port;

	if (bpf_skb_load_bytes(skb, qoff, &q, sizeof(q)))
		return 0;
	if (!nrd_addr6_eq(&q.ip.saddr, node))
		return 0;
	k.proto = q.ip.nexthdr;
	__builtin_memcpy(k.saddr, &q.ip.daddr, 16);
	__builtin_memcpy(k.daddr, node, 16);
	if (k.proto == IPPROTO_TCP || k.proto == IPPROTO_UDP) {
		__builtin_memcpy(&k.sport_be, &q.l4[2], 2);
		__builtin_memcpy(&k.dport_be, &q.l4[0], 2);
		port_at = ql4;
		if (k.proto == IPPROTO_UDP) {
			csum_at = ql4 + 6;
			__builtin_memcpy(&csum_field, &q.l4[6], 2);
		}
	} else if (k.proto == IPPROTO_ICMPV6 && q.l4[0] == ICMPV6_ECHO_REQUEST) {
		__builtin_memcpy(&k.dport_be, &q.l4[4], 2);
		port_at = ql4 + 4;
		csum_at = ql4 + 2;
		__builtin_memcpy(&csum_field, &q.l4[2], 2);
	} else {
		return 0;
	}
	old = k.dport_be;
	e = bpf_map_lookup_elem(&nrd_nat6, &k);
	if (!e)
		return 0;
	__builtin_memcpy(&ep_addr, e->addr, 16);
	port = e->port_be;
	diff = (__u32)bpf_csum_diff((__be32 *)node, 16, (__be32 *)&ep_addr, 16, 0);

	/* outer destination (pseudo-header), then the quoted source address (payload) */
	ip6->daddr = ep_addr;
	if (l4_csum_diff6(skb, ocsum, diff, 0) ||
	    bpf_skb_store_bytes(skb, qoff + 8, &ep_addr, 16, 0) ||
	    bpf_l4_csum_replace(skb, ocsum, 0, diff, 0))
		return NAT_ERR(NRD_DROP_REWRITE);
	if (icmp_set16(skb, ocsum, port_at, old, port))
		return NAT_ERR(NRD_DROP_REWRITE);
	/* A quoted UDP checksum of 0 is invalid in IPv6 (RFC 8200 §8.1) and stays as it came. */
	if (csum_at && csum_field) {
		check = nrd_csum_apply(nrd_csum_replace2(csum_field, old, port), diff);
		if (icmp_set16(skb, ocsum, csum_at, csum_field, check))
			return NAT_ERR(NRD_DROP_REWRITE);
	}
	return 1;
}

/* Hands an IPv6 packet for a local endpoint into its namespace; NRD_PASS if not one of ours. */
static __always_inline int to_endpoint6(struct __sk_buff *skb)
{
	/* First, before the cursor: a remote service backend's reply gets its VIP back (nrd_lb.h). */
	int revnat = 0, lb = nrd_lb_rev(skb, 1, &revnat);
	struct nrd_cursor c = {
		.pos = (void *)(long)skb->data,
		.end = (void *)(long)skb->data_end,
	};
	struct ethhdr *eth = nrd_pull_eth(&c);
	struct nrd_ep_value *ep;
	struct ipv6hdr *ip6;

	if (lb)
		return lb;

	if (!eth)
		return NRD_PASS;
	ip6 = nrd_pull_ipv6(&c);
	if (!ip6)
		return NRD_PASS;
	ep = nrd_ep_lookup6(&ip6->daddr);
	if (!ep || nrd_hop_dec6(ip6))
		return NRD_PASS;
	return nrd_deliver_local(skb, eth, ep, revnat == NRD_LB_X_REVNAT);
}

/* IPv6 on ingress: reverse masquerade of what is addressed to node_ip6, then local delivery. */
static __always_inline int ingress6(struct __sk_buff *skb, struct nrd_cursor *c)
{
	struct in6_addr node;
	struct ipv6hdr *ip6 = nrd_pull_ipv6(c);
	__u8 type;
	int rc;

	if (!ip6)
		return NRD_PASS;
	if (!(cfg_flags & NRD_DP_F_MASQ) || !nrd_node_ip6(&node) || !nrd_addr6_eq(&ip6->daddr, &node))
		return to_endpoint6(skb);
	if (ip6->nexthdr == IPPROTO_ICMPV6) {
		if (bpf_skb_load_bytes(skb, L4_OFF6, &type, 1))
			return NRD_PASS;
		if (type >= ICMPV6_DEST_UNREACH && type <= ICMPV6_PARAMPROB)
			rc = unmasq_icmp6_error(skb, ip6, &node);
		else if (type == ICMPV6_ECHO_REPLY)
			rc = unmasq_reply6(skb, ip6, &node);
		else
			rc = 0;
	} else {
		rc = unmasq_reply6(skb, ip6, &node);
	}
	if (rc < 0)
		return nrd_drop(skb, -1 - rc);
	if (rc == 0)
		return NRD_PASS; /* the node's own traffic (NDP included) */
	return to_endpoint6(skb);
}

SEC("tc")
int nrd_dev_ingress(struct __sk_buff *skb)
{
	struct nrd_cursor c = {
		.pos = (void *)(long)skb->data,
		.end = (void *)(long)skb->data_end,
	};
	struct ethhdr *eth = nrd_pull_eth(&c);
	struct iphdr *ip;

	if (!eth)
		return NRD_PASS;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		ip = nrd_pull_ipv4(&c);
		if (!ip)
			return NRD_PASS;
		if ((cfg_flags & NRD_DP_F_MASQ) && node_ip4 && ip->daddr == node_ip4 && !is_fragment(ip)) {
			__u32 l4off = (__u32)((void *)c.pos - (void *)(long)skb->data);
			__u8 type;
			int rc;

			if (ip->protocol == IPPROTO_ICMP) {
				if (bpf_skb_load_bytes(skb, l4off, &type, 1))
					return NRD_PASS;
				if (type == ICMP_DEST_UNREACH || type == ICMP_TIME_EXCEEDED ||
				    type == ICMP_PARAMETERPROB)
					rc = unmasq_icmp_error(skb, ip, l4off);
				else if (type == ICMP_ECHO_REPLY)
					rc = unmasq_reply(skb, ip, l4off);
				else
					rc = 0;
			} else {
				rc = unmasq_reply(skb, ip, l4off);
			}
			if (rc < 0)
				return nrd_drop(skb, -1 - rc);
			if (rc == 0)
				return NRD_PASS; /* the node's own traffic */
		}
		return to_endpoint4(skb);
	}
	if (eth->h_proto == bpf_htons(ETH_P_IPV6) && (cfg_flags & NRD_DP_F_IPV6))
		return ingress6(skb, &c);
	return NRD_PASS;
}
