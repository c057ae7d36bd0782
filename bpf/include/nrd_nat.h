/* IPv4 masquerade (source NAT to the node address, RFC 3022 NAPT) for nrd_netdev: the NAT map
 * with both directions of every flow, the exclusion tries, connection state, and source-port
 * allocation from the [nat_port_min, nat_port_max] knob range.
 *
 * A flow has two entries in nrd_nat4: OUT, keyed by the endpoint's packet before translation
 * (value: node address and allocated port), and REPLY, keyed by the reply as it arrives
 * (value: endpoint address and port). The REPLY entry is inserted first with BPF_NOEXIST, which
 * is what makes a port unique per (remote address, remote port, protocol): a collision just
 * means "pick another". The connection state is kept in the OUT entry (both directions' TCP
 * flags update it); last_seen_ns in each entry is that direction's last packet.
 */
#ifndef NRD_NAT_H
#define NRD_NAT_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "nrd_shared.h"
#include "nrd_dp_shared.h"

/* Load-time knobs: the node's IPv4 address (wire-order bytes read as a u32, 0 = masquerade off)
 * and the source-port range. The range must stay clear of the host's own ephemeral ports
 * (net.ipv4.ip_local_port_range, 32768-60999 by default), since replies to both arrive on the
 * same address: a port in both would steal the host's replies. */
const volatile __u32 node_ip4 = 0;
const volatile __u16 nat_port_min = NRD_NAT_PORT_MIN_DEFAULT;
const volatile __u16 nat_port_max = NRD_NAT_PORT_MAX_DEFAULT;

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NRD_NAT4_MAX_ENTRIES);
	__type(key, struct nrd_nat4_key);
	__type(value, struct nrd_nat4_entry);
} nrd_nat4 SEC(".maps");

/* Destinations never masqueraded: the cluster pools (pod-to-pod keeps its source) and the
 * configured exclusions. Filled by the daemon. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NRD_NONAT_MAX_ENTRIES);
	__type(key, struct nrd_lpm4_key);
	__type(value, struct nrd_nonat_value);
} nrd_nonat4 SEC(".maps");

/* IPv6 exclusions: the same decision for IPv6 masquerade (nrd_nat6.h). */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NRD_NONAT_MAX_ENTRIES);
	__type(key, struct nrd_lpm6_key);
	__type(value, struct nrd_nonat_value);
} nrd_nonat6 SEC(".maps");

#define NRD_TCP_FIN 0x01
#define NRD_TCP_SYN 0x02
#define NRD_TCP_RST 0x04
#define NRD_TCP_ACK 0x10

/* Whether a destination leaves the cluster and must be masqueraded. */
static __always_inline int nrd_masq_dst4(__be32 daddr)
{
	struct nrd_lpm4_key k = { .prefixlen = 32 };

	__builtin_memcpy(k.addr, &daddr, 4);
	return bpf_map_lookup_elem(&nrd_nonat4, &k) == NULL;
}

/* The state after a packet with TCP flags (0 for UDP/ICMP) in one direction. A bare SYN from the
 * endpoint on a flow in FIN or CLOSED is a new connection reusing the tuple (a client port back
 * from TIME_WAIT, or never in it when the server closed first): it starts over in SYN, as Linux
 * conntrack reopens a TIME_WAIT entry. Left in FIN, the new connection would lose its mapping to
 * the GC after the FIN timeout however long it lives. */
static __always_inline __u8 nrd_ct_next(__u8 state, __u8 proto, __u8 flags, int reply)
{
	if (proto != IPPROTO_TCP)
		return reply ? NRD_CT_EST : state;
	if (!reply && (flags & (NRD_TCP_SYN | NRD_TCP_ACK | NRD_TCP_RST | NRD_TCP_FIN)) == NRD_TCP_SYN &&
	    (state == NRD_CT_FIN || state == NRD_CT_CLOSED))
		return NRD_CT_SYN;
	if (flags & NRD_TCP_RST)
		return NRD_CT_CLOSED;
	if (flags & NRD_TCP_FIN)
		return state == NRD_CT_CLOSED ? state : NRD_CT_FIN;
	if (reply && state == NRD_CT_SYN && (flags & NRD_TCP_ACK))
		return NRD_CT_EST;
	return state;
}

/* The REPLY key of an OUT key once its source is (node, port). */
static __always_inline void nrd_nat4_reply_key(struct nrd_nat4_key *rk, const struct nrd_nat4_key *k,
					       __be32 node, __be16 port)
{
	__builtin_memcpy(rk->saddr, k->daddr, 4);
	__builtin_memcpy(rk->daddr, &node, 4);
	rk->sport_be = k->dport_be;
	rk->dport_be = port;
	rk->proto = k->proto;
	rk->dir = NRD_NAT_DIR_REPLY;
}

/* A closed TCP flow may give its port to a new one, as Linux conntrack lets a new SYN reuse a
 * TIME_WAIT tuple: one reset (CLOSED) at once, one that exchanged FINs after this long without a
 * packet either way (a live half-closed flow still carries ACKs). Without it a closed flow holds
 * its port for the FIN timeout plus a GC period, and a busy destination exhausts the range. */
#define NRD_NAT_REUSE_FIN_IDLE_NS (1000ULL * 1000 * 1000)

static __always_inline int nrd_nat_reusable(__u8 proto, __u8 state, __u64 last_seen_ns, __u64 now)
{
	if (proto != IPPROTO_TCP)
		return 0;
	return state == NRD_CT_CLOSED || (state == NRD_CT_FIN && now - last_seen_ns >= NRD_NAT_REUSE_FIN_IDLE_NS);
}

/* Takes over the port of the closed flow whose REPLY entry is at rk: deletes that flow's OUT entry
 * (rebuilt from the REPLY entry, which names the old endpoint address and port). Returns 1 when
 * the port is free for the caller to write. */
static __always_inline int nrd_nat4_take_over(const struct nrd_nat4_key *rk, __u64 now)
{
	struct nrd_nat4_entry *old = bpf_map_lookup_elem(&nrd_nat4, rk);
	struct nrd_nat4_key ok = {};

	if (!old || !nrd_nat_reusable(rk->proto, old->state, old->last_seen_ns, now))
		return 0;
	__builtin_memcpy(ok.saddr, old->addr, 4);
	__builtin_memcpy(ok.daddr, rk->saddr, 4);
	ok.sport_be = old->port_be;
	ok.dport_be = rk->sport_be;
	ok.proto = rk->proto;
	ok.dir = NRD_NAT_DIR_OUT;
	bpf_map_delete_elem(&nrd_nat4, &ok);
	return 1;
}

/* Creates both entries of a new flow with a random port from the range; up to NRD_NAT_RETRIES
 * picks, since a random pick in a mostly free range almost always succeeds at once and a bounded
 * loop keeps the verifier's work small. Returns the port (network order) or 0 if none was free. */
static __always_inline __be16 nrd_nat4_alloc(const struct nrd_nat4_key *k, __be32 node, __u8 state, __u64 now)
{
	__u32 lo = nat_port_min, hi = nat_port_max;
	struct nrd_nat4_key rk = {};
	struct nrd_nat4_entry rv = { .state = state, .last_seen_ns = now, .created_ns = now };
	struct nrd_nat4_entry fv = { .state = state, .last_seen_ns = now, .created_ns = now };
	__u32 span;

	if (hi < lo || lo == 0)
		return 0;
	span = hi - lo + 1;
	__builtin_memcpy(rv.addr, k->saddr, 4);
	rv.port_be = k->sport_be;
	__builtin_memcpy(fv.addr, &node, 4);
	for (int i = 0; i < NRD_NAT_RETRIES; i++) {
		__be16 port = bpf_htons((__u16)(lo + bpf_get_prandom_u32() % span));

		nrd_nat4_reply_key(&rk, k, node, port);
		if (bpf_map_update_elem(&nrd_nat4, &rk, &rv, BPF_NOEXIST) &&
		    (!nrd_nat4_take_over(&rk, now) || bpf_map_update_elem(&nrd_nat4, &rk, &rv, BPF_ANY)))
			continue;
		fv.port_be = port;
		if (bpf_map_update_elem(&nrd_nat4, k, &fv, BPF_ANY)) {
			bpf_map_delete_elem(&nrd_nat4, &rk);
			return 0;
		}
		return port;
	}
	return 0;
}

/* An existing flow's OUT entry was found: make sure its REPLY half still exists. The LRU evicts
 * the least recently used entry, and a one-way flow (UDP streaming out) never touches its REPLY
 * entry, so that half goes first under pressure; without it every reply would miss. Restores it
 * with the same port, or returns 0 if another flow took that port meanwhile (the caller then
 * allocates afresh). */
static __always_inline int nrd_nat4_keep_reply(const struct nrd_nat4_key *k, const struct nrd_nat4_entry *e,
					       __be32 node, __u64 now)
{
	struct nrd_nat4_key rk = {};
	struct nrd_nat4_entry rv = { .state = e->state, .last_seen_ns = now, .created_ns = e->created_ns };

	nrd_nat4_reply_key(&rk, k, node, e->port_be);
	if (bpf_map_lookup_elem(&nrd_nat4, &rk))
		return 1;
	__builtin_memcpy(rv.addr, k->saddr, 4);
	rv.port_be = k->sport_be;
	return bpf_map_update_elem(&nrd_nat4, &rk, &rv, BPF_NOEXIST) == 0;
}

#endif /* NRD_NAT_H */
