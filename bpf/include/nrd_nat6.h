/* IPv6 masquerade (source NAT of endpoint addresses to the node's IPv6 address, the NAPT of
 * RFC 3022 applied to IPv6; RFC 6296 NPTv6 would be stateless but needs a prefix per node, and
 * nrd has one address) for nrd_netdev: the NAT map nrd_nat6, the node_ip6 knob and the
 * exclusion lookup. Same scheme as nrd_nat.h (OUT and REPLY entries, REPLY inserted first with
 * BPF_NOEXIST to make a port unique per remote address/port/protocol, state in the OUT entry);
 * the port range knobs and the connection states are shared with IPv4.
 */
#ifndef NRD_NAT6_H
#define NRD_NAT6_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/in6.h>
#include <bpf/bpf_helpers.h>

#include "nrd_nat.h"

/* The node's IPv6 address (wire order, as four u32 words so the program reads it with aligned
 * loads); all zero = IPv6 masquerade off. */
const volatile __u32 node_ip6[4] = {};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NRD_NAT6_MAX_ENTRIES);
	__type(key, struct nrd_nat6_key);
	__type(value, struct nrd_nat6_entry);
} nrd_nat6 SEC(".maps");

/* Copies node_ip6 into out; returns whether it is set. */
static __always_inline int nrd_node_ip6(struct in6_addr *out)
{
	out->in6_u.u6_addr32[0] = node_ip6[0];
	out->in6_u.u6_addr32[1] = node_ip6[1];
	out->in6_u.u6_addr32[2] = node_ip6[2];
	out->in6_u.u6_addr32[3] = node_ip6[3];
	return (node_ip6[0] | node_ip6[1] | node_ip6[2] | node_ip6[3]) != 0;
}

static __always_inline int nrd_masq_dst6(const struct in6_addr *daddr)
{
	struct nrd_lpm6_key k = { .prefixlen = 128 };

	__builtin_memcpy(k.addr, daddr, 16);
	return bpf_map_lookup_elem(&nrd_nonat6, &k) == NULL;
}

static __always_inline void nrd_nat6_reply_key(struct nrd_nat6_key *rk, const struct nrd_nat6_key *k,
					       const struct in6_addr *node, __be16 port)
{
	__builtin_memcpy(rk->saddr, k->daddr, 16);
	__builtin_memcpy(rk->daddr, node, 16);
	rk->sport_be = k->dport_be;
	rk->dport_be = port;
	rk->proto = k->proto;
	rk->dir = NRD_NAT_DIR_REPLY;
}

/* nrd_nat4_alloc for IPv6: both entries of a new flow, a random port from the shared range. */
/* nrd_nat4_take_over for IPv6: frees the port of a closed TCP flow for a new one. */
static __always_inline int nrd_nat6_take_over(const struct nrd_nat6_key *rk, __u64 now)
{
	struct nrd_nat6_entry *old = bpf_map_lookup_elem(&nrd_nat6, rk);
	struct nrd_nat6_key ok = {};

	if (!old || !nrd_nat_reusable(rk->proto, old->state, old->last_seen_ns, now))
		return 0;
	__builtin_memcpy(ok.saddr, old->addr, 16);
	__builtin_memcpy(ok.daddr, rk->saddr, 16);
	ok.sport_be = old->port_be;
	ok.dport_be = rk->sport_be;
	ok.proto = rk->proto;
	ok.dir = NRD_NAT_DIR_OUT;
	bpf_map_delete_elem(&nrd_nat6, &ok);
	return 1;
}

static __always_inline __be16 nrd_nat6_alloc(const struct nrd_nat6_key *k, const struct in6_addr *node,
					     __u8 state, __u64 now)
{
	__u32 lo = nat_port_min, hi = nat_port_max;
	struct nrd_nat6_key rk = {};
	struct nrd_nat6_entry rv = { .state = state, .last_seen_ns = now, .created_ns = now };
	struct nrd_nat6_entry fv = { .state = state, .last_seen_ns = now, .created_ns = now };
	__u32 span;

	if (hi < lo || lo == 0)
		return 0;
	span = hi - lo + 1;
	__builtin_memcpy(rv.addr, k->saddr, 16);
	rv.port_be = k->sport_be;
	__builtin_memcpy(fv.addr, node, 16);
	for (int i = 0; i < NRD_NAT_RETRIES; i++) {
		__be16 port = bpf_htons((__u16)(lo + bpf_get_prandom_u32() % span));

		nrd_nat6_reply_key(&rk, k, node, port);
		if (bpf_map_update_elem(&nrd_nat6, &rk, &rv, BPF_NOEXIST) &&
		    (!nrd_nat6_take_over(&rk, now) || bpf_map_update_elem(&nrd_nat6, &rk, &rv, BPF_ANY)))
			continue;
		fv.port_be = port;
		if (bpf_map_update_elem(&nrd_nat6, k, &fv, BPF_ANY)) {
			bpf_map_delete_elem(&nrd_nat6, &rk);
			return 0;
		}
		return port;
	}
	return 0;
}

/* nrd_nat4_keep_reply for IPv6: restores an evicted REPLY half with the same port. */
static __always_inline int nrd_nat6_keep_reply(const struct nrd_nat6_key *k, const struct nrd_nat6_entry *e,
					       const struct in6_addr *node, __u64 now)
{
	struct nrd_nat6_key rk = {};
	struct nrd_nat6_entry rv = { .state = e->state, .last_seen_ns = now, .created_ns = e->created_ns };

	nrd_nat6_reply_key(&rk, k, node, e->port_be);
	if (bpf_map_lookup_elem(&nrd_nat6, &rk))
		return 1;
	__builtin_memcpy(rv.addr, k->saddr, 16);
	rv.port_be = k->sport_be;
	return bpf_map_update_elem(&nrd_nat6, &rk, &rv, BPF_NOEXIST) == 0;
}

#endif /* NRD_NAT6_H */
