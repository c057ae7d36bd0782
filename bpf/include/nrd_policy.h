/* Identity-based network policy of local endpoints: the maps the daemon fills from
 * daemon/policy/compile.ts and ipcache.ts, the per-packet check, and the per-flow verdict cache.
 *
 *  - Egress: nrd_pol_from_ep() in nrd_ep_ingress (tc ingress of the endpoint's host veth), for
 *    every IP packet the endpoint sends, once its source passed the anti-spoofing check.
 *  - Ingress: nrd_pol_to_ep() in nrd_deliver_local(), before any packet is redirected into an
 *    endpoint's namespace (same-node traffic from nrd_ep_ingress, remote traffic from
 *    nrd_netdev). The peer's identity is always the ipcache's answer for its address: identities
 *    travel between nodes as addresses, not as packet marks.
 *
 * A check: direction not enforced (nrd_ep_policy) -> allow; else allow if the endpoint's entries
 * in nrd_policy match the peer's identity, ANY (0), or the peer address's CIDR identity
 * (nrd_pol_cidr4/6). One LPM lookup per candidate: every entry is an allow, so the longest match
 * need not be the only one.
 *
 * Connections: no NAT table covers pod-to-pod flows, so nrd_pol_ct (LRU) remembers per flow and
 * checked direction that the flow was allowed, and the policy revision it was allowed under.
 * The same flow at the same revision skips the lookups ("established"); a packet whose reversed
 * flow was allowed in the opposite direction is a reply and passes ("reply"), which is what lets
 * the answer to an allowed connection through an endpoint that denies its direction. A policy
 * change bumps nrd_pol_rev, so established flows are checked again on their next packet (and
 * forgotten when now denied); policy updates are map writes only, the programs never change.
 *
 * Layouts shared with daemon/datapath/policy-layout.ts (checked against BTF).
 */
#ifndef NRD_POLICY_H
#define NRD_POLICY_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "nrd_shared.h"
#include "nrd_dp_shared.h"
#include "nrd_stats.h"
#include "nrd_events.h"
#include "nrd_compat.h"

/* Included from nrd_endpoint.h after its maps (nrd_dp_drops), before nrd_deliver_local. */

#define NRD_POLICY_MAX_ENTRIES 262144   /* all endpoints' entries (ranges split into prefixes) */
#define NRD_EP_POLICY_MAX_ENTRIES 8192  /* one per local endpoint */
#define NRD_POL_CIDR_MAX_ENTRIES 16384  /* prefixes named by any policy, per family */
#define NRD_IPCACHE_MAX_ENTRIES 131072  /* every endpoint address of the cluster, per family */
#define NRD_POL_CT_MAX_ENTRIES 131072

/* Key of the LPM trie nrd_policy. The trie compares the bits after prefixlen in memory order:
 * endpoint, identity and dir always (72), then the protocol (80 = every port of it), then the
 * top k bits of the port (80 + k). "Any protocol" is 72. Identity and endpoint little-endian. */
struct nrd_policy_key {
	__u32 prefixlen;
	__u32 endpoint;  /* numeric endpoint id (nrd_ep_value.id) */
	__u32 identity;  /* peer identity; 0 = any peer */
	__u8 dir;        /* NRD_POL_DIR_* */
	__u8 proto;
	__u16 port_be;
};

#define NRD_POL_PLEN_ANY_PROTO 72
#define NRD_POL_PLEN_FULL 96

struct nrd_policy_value {
	__u32 flags; /* NRD_POL_ALLOW */
	__u32 pad;
};

#define NRD_POL_ALLOW 1

#define NRD_POL_DIR_INGRESS 0
#define NRD_POL_DIR_EGRESS 1

/* nrd_ep_policy value bits: the directions that are default-deny for the endpoint. */
#define NRD_POL_F_INGRESS 1
#define NRD_POL_F_EGRESS 2

/* Value of the ipcache tries nrd_ipcache4/6 (keys nrd_lpm4_key / nrd_lpm6_key). */
struct nrd_ipcache_value {
	__u32 identity;
	__u32 flags; /* NRD_IPCACHE_F_* */
};

#define NRD_IPCACHE_F_LOCAL 1 /* an endpoint on this node */

/* Reserved identities (daemon/policy/ipcache.ts). */
#define NRD_ID_ANY 0
#define NRD_ID_WORLD 2

/* Value of nrd_pol_ct (key struct nrd_flow_key with dir = the direction checked). */
struct nrd_pol_ct_value {
	__u32 revision; /* nrd_pol_rev when the flow was last allowed */
	__u8 reason;    /* NRD_EV_R_NO_POLICY or NRD_EV_R_POLICY: why it was allowed */
	__u8 flags;     /* NRD_POL_CT_F_* */
	__u8 pad[2];
};

#define NRD_POL_CT_F_REPLY_SEEN 1 /* the reply's forwarded event was emitted */

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NRD_POLICY_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nrd_policy_key);
	__type(value, struct nrd_policy_value);
} nrd_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NRD_EP_POLICY_MAX_ENTRIES);
	__type(key, __u32);   /* numeric endpoint id */
	__type(value, __u32); /* NRD_POL_F_* */
} nrd_ep_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NRD_POL_CIDR_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nrd_lpm4_key);
	__type(value, __u32); /* CIDR identity */
} nrd_pol_cidr4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NRD_POL_CIDR_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nrd_lpm6_key);
	__type(value, __u32);
} nrd_pol_cidr6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NRD_IPCACHE_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nrd_lpm4_key);
	__type(value, struct nrd_ipcache_value);
} nrd_ipcache4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, NRD_IPCACHE_MAX_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nrd_lpm6_key);
	__type(value, struct nrd_ipcache_value);
} nrd_ipcache6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NRD_POL_CT_MAX_ENTRIES);
	__type(key, struct nrd_flow_key);
	__type(value, struct nrd_pol_ct_value);
} nrd_pol_ct SEC(".maps");

/* One u32: the policy revision, bumped by the daemon after every policy change. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} nrd_pol_rev SEC(".maps");

/* Per-CPU scratch for the check's keys. Why not the stack: nrd_ep_ingress, with the service
 * load balancer inlined, uses nearly all of the 512 bytes, so the check is inlined too (a
 * subprogram's frame would add to the caller's) and keeps what it needs here. A tc program
 * runs to completion on its CPU with BHs off, so one slot per CPU is never shared. */
struct nrd_pol_scratch {
	struct nrd_flow_key f;
	struct nrd_policy_key pk;
	struct nrd_lpm6_key lk; /* also used as an nrd_lpm4_key: same leading layout */
	struct nrd_pol_ct_value nv;
	struct nrd_flow_seen_value slot;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nrd_pol_scratch);
} nrd_pol_scratch SEC(".maps");

/* The ipcache identity of an address (WORLD when nothing matches, not even the daemon's 0/0
 * entries); lk is the lookup key's buffer (map memory). */
static __always_inline __u32 nrd_ipcache_identity(struct nrd_lpm6_key *lk, __u8 family, const __u8 *addr)
{
	struct nrd_ipcache_value *v;

	if (family == 4) {
		lk->prefixlen = 32;
		__builtin_memcpy(lk->addr, addr, 4);
		v = bpf_map_lookup_elem(&nrd_ipcache4, lk);
	} else {
		lk->prefixlen = 128;
		__builtin_memcpy(lk->addr, addr, 16);
		v = bpf_map_lookup_elem(&nrd_ipcache6, lk);
	}
	return v ? v->identity : NRD_ID_WORLD;
}

/* The ipcache identity of the flow's source or destination. */
static __always_inline __u32 nrd_identity_of(struct nrd_pol_scratch *s, int dst)
{
	return nrd_ipcache_identity(&s->lk, s->f.family, dst ? s->f.daddr : s->f.saddr);
}

/* The CIDR identity of the flow's source or destination, 0 when no policy names a prefix
 * containing it. */
static __always_inline __u32 nrd_cidr_identity_of(struct nrd_pol_scratch *s, int dst)
{
	__u32 *v;

	if (s->f.family == 4) {
		s->lk.prefixlen = 32;
		__builtin_memcpy(s->lk.addr, dst ? s->f.daddr : s->f.saddr, 4);
		v = bpf_map_lookup_elem(&nrd_pol_cidr4, &s->lk);
	} else {
		s->lk.prefixlen = 128;
		__builtin_memcpy(s->lk.addr, dst ? s->f.daddr : s->f.saddr, 16);
		v = bpf_map_lookup_elem(&nrd_pol_cidr6, &s->lk);
	}
	return v ? *v : 0;
}

static __always_inline int nrd_pol_match(struct nrd_pol_scratch *s, __u32 identity)
{
	struct nrd_policy_value *v;

	s->pk.identity = identity;
	v = bpf_map_lookup_elem(&nrd_policy, &s->pk);
	return v && (v->flags & NRD_POL_ALLOW);
}

/* The policy decision for a new flow: NRD_EV_R_NO_POLICY / NRD_EV_R_POLICY (allowed) or -1. */
static __always_inline int nrd_pol_decide(struct nrd_pol_scratch *s, __u32 ep, __u32 dir, __u32 peer_id)
{
	__u32 *flags = bpf_map_lookup_elem(&nrd_ep_policy, &ep);
	__u32 need = dir == NRD_POL_DIR_INGRESS ? NRD_POL_F_INGRESS : NRD_POL_F_EGRESS;
	__u32 cidr_id;

	if (!flags || !(*flags & need))
		return NRD_EV_R_NO_POLICY;
	s->pk.prefixlen = NRD_POL_PLEN_FULL;
	s->pk.endpoint = ep;
	s->pk.dir = dir;
	s->pk.proto = s->f.proto;
	/* The policy port is the destination port, whichever end is local. ICMP has none. */
	s->pk.port_be = (s->f.proto == IPPROTO_ICMP || s->f.proto == IPPROTO_ICMPV6) ? 0 : s->f.dport_be;
	if (nrd_pol_match(s, peer_id) || nrd_pol_match(s, NRD_ID_ANY))
		return NRD_EV_R_POLICY;
	cidr_id = nrd_cidr_identity_of(s, dir == NRD_POL_DIR_EGRESS);
	if (cidr_id && nrd_pol_match(s, cidr_id))
		return NRD_EV_R_POLICY;
	return -1;
}

/* Reverses the flow in place (addresses, ports, dir): the reply's key without a second copy.
 * The address swap goes through the scratch's lk.addr. */
static __always_inline void nrd_flow_reverse(struct nrd_pol_scratch *s)
{
	struct nrd_flow_key *f = &s->f;
	__u16 p = f->sport_be;

	__builtin_memcpy(s->lk.addr, f->saddr, 16);
	__builtin_memcpy(f->saddr, f->daddr, 16);
	__builtin_memcpy(f->daddr, s->lk.addr, 16);
	f->sport_be = f->dport_be;
	f->dport_be = p;
	f->dir ^= 1;
}

/* Emits the flow event of a check, identities as src/dst. */
static __always_inline void nrd_pol_event(struct __sk_buff *skb, struct nrd_pol_scratch *s, __u8 type,
					  __u8 reason, __u32 ep, __u32 dir, __u32 peer_id, __u32 suppressed)
{
	__u32 own = nrd_identity_of(s, dir == NRD_POL_DIR_INGRESS);

	if (!peer_id)
		peer_id = nrd_identity_of(s, dir == NRD_POL_DIR_EGRESS);
	nrd_ev_emit(skb, &s->f, type, reason, dir, ep, dir == NRD_POL_DIR_EGRESS ? own : peer_id,
		    dir == NRD_POL_DIR_EGRESS ? peer_id : own, suppressed);
}

/* The check of one packet for local endpoint ep in direction dir, with its flow event.
 * 0 = go on, TC_ACT_SHOT = dropped (counted as "policy", reported through nrd_ev_drop_gate).
 * Forwarded events (NRD_DP_F_FWD_EVENTS) cost nothing on the established path: they are written
 * where the flow's nrd_pol_ct entry is written (a new flow; a re-check after a revision bump only
 * when the reason changed), and a reply's where the first reply finds the forward entry
 * (NRD_POL_CT_F_REPLY_SEEN in that entry). So one per flow and checked direction: a same-node flow
 * has two, the sender's egress and the receiver's ingress. */
static __noinline int nrd_pol_check(struct __sk_buff *skb, __u32 ep, __u32 dir)
{
	__u32 zero = 0, rev, peer_id = 0, *revp, suppressed = 0;
	struct nrd_pol_scratch *s = bpf_map_lookup_elem(&nrd_pol_scratch, &zero);
	struct nrd_pol_ct_value *ct, *fwd;
	int reason;

	if (!s || nrd_flow_parse(skb, &s->f))
		return 0; /* not IP: ARP and the like are not subject to policy */
	revp = bpf_map_lookup_elem(&nrd_pol_rev, &zero);
	rev = revp ? *revp : 0;
	s->f.dir = dir;
	ct = bpf_map_lookup_elem(&nrd_pol_ct, &s->f);
	if (ct && ct->revision == rev)
		return 0; /* established: its event was emitted when the entry was written */
	nrd_flow_reverse(s);
	fwd = bpf_map_lookup_elem(&nrd_pol_ct, &s->f);
	nrd_flow_reverse(s);
	if (fwd) {
		if (fwd->flags & NRD_POL_CT_F_REPLY_SEEN)
			return 0;
		fwd->flags |= NRD_POL_CT_F_REPLY_SEEN;
		reason = NRD_EV_R_REPLY;
		goto allowed;
	}
	peer_id = nrd_identity_of(s, dir == NRD_POL_DIR_EGRESS);
	reason = nrd_pol_decide(s, ep, dir, peer_id);
	if (reason < 0) {
		__u32 drop = NRD_DROP_POLICY;

		if (ct)
			bpf_map_delete_elem(&nrd_pol_ct, &s->f);
		nrd_count(bpf_map_lookup_elem(&nrd_dp_drops, &drop), skb->len);
		if (nrd_ev_drop_gate(&s->f, &s->slot, NRD_EV_DROPPED << 8 | NRD_DROP_POLICY, &suppressed))
			nrd_pol_event(skb, s, NRD_EV_DROPPED, NRD_DROP_POLICY, ep, dir, peer_id, suppressed);
		return TC_ACT_SHOT;
	}
	if (ct) {
		/* re-checked after a revision bump: same flow, so its reply stays seen; an event only
		 * when the reason changed (e.g. newly enforced, now allowed by a rule) */
		int same = ct->reason == reason;

		ct->revision = rev;
		ct->reason = reason;
		if (same)
			return 0;
	} else {
		s->nv.revision = rev;
		s->nv.reason = reason;
		s->nv.flags = 0;
		s->nv.pad[0] = 0;
		s->nv.pad[1] = 0;
		bpf_map_update_elem(&nrd_pol_ct, &s->f, &s->nv, BPF_ANY);
	}
allowed:
	if (cfg_flags & NRD_DP_F_FWD_EVENTS)
		nrd_pol_event(skb, s, NRD_EV_FORWARDED, reason, ep, dir, peer_id, 0);
	return 0;
}

/* Egress of a local endpoint: every IP packet it sends (source already checked). */
static __always_inline int nrd_pol_from_ep(struct __sk_buff *skb, const struct nrd_ep_if *epif)
{
	return nrd_pol_check(skb, epif->id, NRD_POL_DIR_EGRESS);
}

/* Ingress of a local endpoint: every IP packet nrd delivers into its namespace. */
static __always_inline int nrd_pol_to_ep(struct __sk_buff *skb, const struct nrd_ep_value *ep)
{
	return nrd_pol_check(skb, ep->id, NRD_POL_DIR_INGRESS);
}

#endif /* NRD_POLICY_H */
