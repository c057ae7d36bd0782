/* Endpoint datapath pieces shared by nrd_endpoint (veth ingress) and nrd_netdev (uplink/VXLAN):
 * the gateway constants, the endpoint maps, drop and endpoint counters, and the delivery of a
 * routed packet into a local endpoint's namespace (L2 rewrite, TTL/hop limit, bpf_redirect_peer).
 *
 * Maps are defined here once so both objects declare them identically; the daemon pins them
 * (map names are pin names) and loads the second object against the same pins.
 */
#ifndef NRD_ENDPOINT_H
#define NRD_ENDPOINT_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "nrd_shared.h"
#include "nrd_dp_shared.h"
#include "nrd_compat.h"
#include "nrd_csum.h"
#include "nrd_stats.h"

/* The endpoints' default gateway: 169.254.1.1 and fe80::1, never configured on any interface.
 * Endpoints reach it on-link (route "default via 169.254.1.1 dev eth0 onlink"); BPF answers ARP
 * and neighbour solicitations for it with gw_mac. */
#define NRD_GW4 bpf_htonl(0xa9fe0101) /* 169.254.1.1 */
static const __u8 nrd_gw6[16] = { 0xfe, 0x80, [15] = 0x01 }; /* fe80::1 */

/* Load-time knobs shared by both programs (the daemon sets the same values in both objects).
 * gw_mac: the gateway MAC in the low 6 bytes of the little-endian u64 (bytes 0..5 in memory are
 * the MAC in wire order). The daemon must also give every host-side veth this MAC, so that
 * packets handed to the stack are PACKET_HOST there. Default: 02:6e:72:64:00:01 ("nrd"). */
const volatile __u64 gw_mac = 0x010064726e02ULL;
const volatile __u32 cfg_flags = NRD_DP_F_IPV6 | NRD_DP_F_ARP_ANY | NRD_DP_F_MASQ | NRD_DP_F_FWD_EVENTS;

/* "Not mine, carry on": the next tcx program, or the stack (TC_ACT_UNSPEC under cls_bpf). */
#define NRD_PASS TCX_NEXT

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NRD_ENDPOINTS_MAX_ENTRIES);
	__type(key, struct nrd_ep_key);
	__type(value, struct nrd_ep_value);
} nrd_endpoints SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NRD_EP_IFS_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct nrd_ep_if);
} nrd_ep_ifs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NRD_EP_IFS_MAX_ENTRIES);
	__type(key, __u32);
	__type(value, struct nrd_ep_counters);
} nrd_ep_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NRD_DROP_MAX);
	__type(key, __u32);
	__type(value, struct nrd_counter);
} nrd_dp_drops SEC(".maps");

static __noinline int nrd_ev_drop(struct __sk_buff *skb, __u32 reason);

/* Counts the drop and reports it as a flow event (nrd_ev_drop, below: a subprogram, so the
 * event's buffers cost the many inlined drop sites neither stack nor instructions). */
static __always_inline int nrd_drop(struct __sk_buff *skb, __u32 reason)
{
	nrd_count(bpf_map_lookup_elem(&nrd_dp_drops, &reason), skb->len);
	nrd_ev_drop(skb, reason);
	return TC_ACT_SHOT;
}

/* Adds one packet to the "from" (to = 0) or "to" (to = 1) counters of a host-side ifindex. */
static __always_inline void nrd_ep_count(__u32 ifindex, int to, __u64 bytes)
{
	struct nrd_ep_counters *c = bpf_map_lookup_elem(&nrd_ep_stats, &ifindex);

	if (!c) {
		struct nrd_ep_counters zero = {};

		bpf_map_update_elem(&nrd_ep_stats, &ifindex, &zero, BPF_NOEXIST);
		c = bpf_map_lookup_elem(&nrd_ep_stats, &ifindex);
		if (!c)
			return;
	}
	if (to) {
		c->to_packets += 1;
		c->to_bytes += bytes;
	} else {
		c->from_packets += 1;
		c->from_bytes += bytes;
	}
}

static __always_inline struct nrd_ep_value *nrd_ep_lookup4(__be32 addr)
{
	struct nrd_ep_key key = { .family = 4 };

	__builtin_memcpy(key.addr, &addr, 4);
	return bpf_map_lookup_elem(&nrd_endpoints, &key);
}

static __always_inline struct nrd_ep_value *nrd_ep_lookup6(const struct in6_addr *addr)
{
	struct nrd_ep_key key = { .family = 6 };

	__builtin_memcpy(key.addr, addr, 16);
	return bpf_map_lookup_elem(&nrd_endpoints, &key);
}

static __always_inline void nrd_gw_mac(__u8 out[6])
{
	__u64 m = gw_mac;

	__builtin_memcpy(out, &m, 6);
}

static __always_inline int nrd_addr6_eq(const void *a, const void *b)
{
	const __u32 *x = a, *y = b;

	return x[0] == y[0] && x[1] == y[1] && x[2] == y[2] && x[3] == y[3];
}

/* Decrements the IPv4 TTL with the header checksum fixed in place (RFC 1624). Returns 0, or -1
 * when the TTL would reach 0: the caller hands the packet to the stack, which sends the ICMP
 * time-exceeded that nrd does not build itself. */
static __always_inline int nrd_ttl_dec4(struct iphdr *ip)
{
	__u16 old, new;

	if (ip->ttl <= 1)
		return -1;
	old = *(__u16 *)&ip->ttl; /* ttl and protocol form one 16-bit word */
	ip->ttl -= 1;
	new = *(__u16 *)&ip->ttl;
	ip->check = nrd_csum_replace2(ip->check, old, new);
	return 0;
}

static __always_inline int nrd_hop_dec6(struct ipv6hdr *ip6)
{
	if (ip6->hop_limit <= 1)
		return -1;
	ip6->hop_limit -= 1;
	return 0;
}

/* The policy check needs the maps above (nrd_dp_drops) and the delivery below needs the check. */
#include "nrd_policy.h"

/* ---- flow events of drops and translations -------------------------------------------------- */

/* The numeric id of the local endpoint with the flow's source (dst = 0) or destination address,
 * 0 when it is none. */
static __always_inline __u32 nrd_ev_local_ep(struct nrd_ev_scratch *s, int dst)
{
	struct nrd_ep_value *ep;

	s->ek.family = s->f.family;
	__builtin_memcpy(s->ek.addr, dst ? s->f.daddr : s->f.saddr, 16);
	ep = bpf_map_lookup_elem(&nrd_endpoints, &s->ek);
	return ep ? ep->id : 0;
}

/* Endpoint, direction and identities of the flow in s->f: the endpoint behind the veth the
 * program runs on (its egress), else a local endpoint sending (egress) or receiving (ingress). */
static __always_inline void nrd_ev_where(struct __sk_buff *skb, struct nrd_ev_scratch *s, struct nrd_flow_event *e)
{
	__u32 ifindex = skb->ifindex;
	struct nrd_ep_if *epif = bpf_map_lookup_elem(&nrd_ep_ifs, &ifindex);

	e->ifindex = ifindex;
	e->len = skb->len;
	e->dir = NRD_EV_DIR_NONE;
	if (epif) {
		e->endpoint = epif->id;
		e->dir = NRD_POL_DIR_EGRESS;
	}
	if (s->f.family != 4 && s->f.family != 6)
		return;
	if (!epif) {
		e->endpoint = nrd_ev_local_ep(s, 0);
		if (e->endpoint) {
			e->dir = NRD_POL_DIR_EGRESS;
		} else {
			e->endpoint = nrd_ev_local_ep(s, 1);
			if (e->endpoint)
				e->dir = NRD_POL_DIR_INGRESS;
		}
	}
	e->src_identity = nrd_ipcache_identity(&s->lk, s->f.family, s->f.saddr);
	e->dst_identity = nrd_ipcache_identity(&s->lk, s->f.family, s->f.daddr);
}

/* A reserved record with the flow in s->f, where it happened, its type and reason; NULL when the
 * ring buffer is full. */
static __always_inline struct nrd_flow_event *nrd_ev_begin(struct __sk_buff *skb, struct nrd_ev_scratch *s, __u8 type,
							   __u8 reason)
{
	struct nrd_flow_event *e = nrd_ev_reserve();

	if (!e)
		return NULL;
	nrd_ev_set_flow(e, &s->f);
	nrd_ev_where(skb, s, e);
	e->type = type;
	e->reason = reason;
	return e;
}

/* The event of a drop counted by nrd_drop: the flow read from the packet as it is now (every drop
 * site drops before rewriting, or after a failed rewrite of the packet it read). */
static __noinline __attribute__((unused)) int nrd_ev_drop(struct __sk_buff *skb, __u32 reason)
{
	struct nrd_ev_scratch *s = nrd_ev_scratch_get();
	struct nrd_flow_event *e;
	__u32 suppressed = 0;

	if (!s)
		return 0;
	if (nrd_flow_parse(skb, &s->f))
		__builtin_memset(&s->f, 0, sizeof(s->f)); /* not IP: one key for all of them */
	if (!nrd_ev_drop_gate(&s->f, &s->v, NRD_EV_DROPPED << 8 | (reason & 0xff), &suppressed))
		return 0;
	e = nrd_ev_begin(skb, s, NRD_EV_DROPPED, reason);
	if (!e)
		return 0;
	e->suppressed = suppressed;
	nrd_ev_submit(e);
	return 0;
}

/* The event of a new masquerade mapping: s->f is the flow as the endpoint sent it, s->xaddr the
 * node address it now leaves with, port the source port (echo identifier) it was given. */
static __noinline __attribute__((unused)) int nrd_ev_masq(struct __sk_buff *skb, __u32 port_be)
{
	struct nrd_ev_scratch *s = nrd_ev_scratch_get();
	struct nrd_flow_event *e;

	if (!s)
		return 0;
	e = nrd_ev_begin(skb, s, NRD_EV_TRANSLATED, NRD_XLATE_MASQ);
	if (!e)
		return 0;
	e->xport_be = port_be;
	__builtin_memcpy(e->xaddr, s->xaddr, 16);
	nrd_ev_submit(e);
	return 0;
}

/* Delivers an IP packet to a local endpoint: Ethernet source = gateway MAC, destination = the
 * endpoint's MAC, then bpf_redirect_peer to the namespace side of its veth (no backlog queue,
 * no second pass through the host stack). The caller has already decremented TTL/hop limit.
 * Only valid from tc ingress; returns TC_ACT_REDIRECT (the kernel refuses the peer redirect at
 * run time on egress).
 * The endpoint's ingress policy is checked here, so same-node and remote traffic pass the same
 * check; except (revnat set) for a reply that nrd_lb just translated back from a backend to its
 * service address: the connection was checked on its way out (client egress, backend ingress,
 * against the backend), and its reversed key is not the one the check recorded (the client
 * sent to the VIP, the check saw the backend), so the reply rule could not recognise it. */
static __always_inline int nrd_deliver_local(struct __sk_buff *skb, struct ethhdr *eth,
					     const struct nrd_ep_value *ep, int revnat)
{
	__u32 ifindex = ep->ifindex;

	if (!revnat && nrd_pol_to_ep(skb, ep))
		return TC_ACT_SHOT;

	__builtin_memcpy(eth->h_dest, ep->mac, ETH_ALEN);
	nrd_gw_mac(eth->h_source);
	nrd_ep_count(ifindex, 1, skb->len);
	return bpf_redirect_peer(ifindex, 0);
}

#endif /* NRD_ENDPOINT_H */
