/* Bounds-checked packet header access for XDP and tc programs (Ethernet, IPv4, IPv6). Each helper
 * returns NULL when the header does not fit in the linear data, which the verifier requires and
 * which also covers truncated packets. */
#ifndef NRD_PARSE_H
#define NRD_PARSE_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>

/* A cursor over [pos, end): the data/data_end pair of an xdp_md or __sk_buff. */
struct nrd_cursor {
	void *pos;
	void *end;
};

static __always_inline void *nrd_pull(struct nrd_cursor *c, __u32 len)
{
	void *p = c->pos;

	if (p + len > c->end)
		return NULL;
	c->pos = p + len;
	return p;
}

static __always_inline struct ethhdr *nrd_pull_eth(struct nrd_cursor *c)
{
	return nrd_pull(c, sizeof(struct ethhdr));
}

/* IPv4 header including options (ihl); NULL if truncated or ihl < 5. */
static __always_inline struct iphdr *nrd_pull_ipv4(struct nrd_cursor *c)
{
	struct iphdr *ip = c->pos;

	if ((void *)(ip + 1) > c->end)
		return NULL;
	if (ip->ihl < 5)
		return NULL;
	if ((void *)ip + ip->ihl * 4 > c->end)
		return NULL;
	c->pos = (void *)ip + ip->ihl * 4;
	return ip;
}

static __always_inline struct ipv6hdr *nrd_pull_ipv6(struct nrd_cursor *c)
{
	return nrd_pull(c, sizeof(struct ipv6hdr));
}

#endif /* NRD_PARSE_H */
