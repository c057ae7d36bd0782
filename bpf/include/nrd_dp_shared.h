/* Map keys, values and constants of the endpoint datapath (nrd_endpoint, nrd_netdev) shared with
 * daemon/datapath/endpoint-layout.ts, which declares the same layouts and is checked against the
 * BTF of the built objects. Same rules as nrd_shared.h: fixed-width types, explicit padding, no
 * bitfields, host byte order unless the name says _be; addresses are byte arrays in network order.
 */
#ifndef NRD_DP_SHARED_H
#define NRD_DP_SHARED_H

#include <linux/types.h>

#define NRD_ENDPOINTS_MAX_ENTRIES 16384 /* addresses of local endpoints (two per dual-stack one) */
#define NRD_EP_IFS_MAX_ENTRIES 8192     /* host-side veths */
#define NRD_NONAT_MAX_ENTRIES 1024      /* cluster pools + masquerade exclusions, per family */
#define NRD_NAT4_MAX_ENTRIES 131072     /* two entries per masqueraded flow */
#define NRD_NAT6_MAX_ENTRIES 65536      /* the same for IPv6 (keys are 2.5x the size) */

/* ---- endpoints ---------------------------------------------------------------------------- */

/* Key of nrd_endpoints: one local endpoint address. family is 4 or 6 (not AF_*: the numbers
 * the TypeScript side uses); an IPv4 address fills addr[0..3], the rest is zero. */
struct nrd_ep_key {
	__u32 family;
	__u8 addr[16];
};

/* Value of nrd_endpoints: where a packet to that address goes. */
struct nrd_ep_value {
	__u32 ifindex; /* host side of the endpoint's veth pair (bpf_redirect_peer target) */
	__u32 id;      /* endpoint id, for counters and flow events */
	__u8 mac[6];   /* the endpoint's own MAC (namespace side of the veth) */
	__u8 pad[2];
	__u32 flags;   /* reserved, 0 */
};

/* Value of nrd_ep_ifs, keyed by the host-side ifindex (__u32): who sits behind that veth, and
 * the only source addresses it may use (anti-spoofing). */
struct nrd_ep_if {
	__u32 id;
	__u32 flags;   /* NRD_EP_IF_F_* */
	__u8 ip4[4];
	__u8 pad[4];
	__u8 ip6[16];
};

#define NRD_EP_IF_F_IP4 (1U << 0) /* ip4 is set; without it every IPv4 source is spoofed */
#define NRD_EP_IF_F_IP6 (1U << 1)

/* Value of the per-CPU hash nrd_ep_stats, keyed by host-side ifindex (__u32). "from" is traffic
 * the endpoint sent (ingress of its veth), "to" is traffic nrd delivered to it by redirect. */
struct nrd_ep_counters {
	__u64 from_packets;
	__u64 from_bytes;
	__u64 to_packets;
	__u64 to_bytes;
};

/* Index into the per-CPU array nrd_dp_drops (value struct nrd_counter): why a packet was
 * dropped. Names are the metric label values the daemon exports. */
enum nrd_drop {
	NRD_DROP_MALFORMED = 0,     /* "malformed": truncated or inconsistent headers */
	NRD_DROP_UNKNOWN_EP = 1,    /* "unknown_endpoint": ingress veth not in nrd_ep_ifs */
	NRD_DROP_SPOOFED = 2,       /* "spoofed": source is not the endpoint's own address */
	NRD_DROP_NAT_EXHAUSTED = 3, /* "nat_exhausted": no free masquerade port after the retries */
	NRD_DROP_REWRITE = 4,       /* "rewrite_failed": a store or checksum helper failed */
	NRD_DROP_POLICY = 5,        /* "policy": denied by network policy (nrd_policy.h) */
	NRD_DROP_NO_BACKEND = 6,    /* "no_backend": a service without a backend for the flow, answered
				     * with a TCP RST or ICMP port unreachable instead (nrd_lb.h) */
	NRD_DROP_NO_ROUTE = 7,      /* "no_route": the FIB has a blackhole, unreachable or prohibit route;
				     * the packet is handed to the stack, which drops it (and answers
				     * with the ICMP error of the route type) */
	NRD_DROP_PREFILTER = 8,     /* "prefilter": source denied by the XDP prefilter (flow events only:
				     * the XDP program counts in nrd_xdp_stats) */
	NRD_DROP_MAX = 9,
};

/* ---- masquerade ---------------------------------------------------------------------------- */

/* Value of the LPM tries nrd_nonat4 / nrd_nonat6 (keys struct nrd_lpm4_key / nrd_lpm6_key of
 * nrd_shared.h): destinations that are never masqueraded, and why. */
struct nrd_nonat_value {
	__u32 kind; /* NRD_NONAT_* */
	__u32 reserved;
};

#define NRD_NONAT_POOL 1    /* a cluster pool: pod-to-pod traffic keeps its source */
#define NRD_NONAT_EXCLUDE 2 /* a configured exclusion (e.g. the fabric, a VPN) */

/* Key of the LRU hash nrd_nat4: a flow as seen on the wire in one direction. */
struct nrd_nat4_key {
	__u8 saddr[4];
	__u8 daddr[4];
	__u16 sport_be; /* ICMP echo: identifier in the request direction, 0 in the reply one */
	__u16 dport_be; /* ICMP echo: 0 in the request direction, identifier in the reply one */
	__u8 proto;     /* IPPROTO_TCP / UDP / ICMP */
	__u8 dir;       /* NRD_NAT_DIR_* */
	__u8 pad[2];
};

#define NRD_NAT_DIR_OUT 0   /* endpoint -> outside, before translation; value: node addr/port */
#define NRD_NAT_DIR_REPLY 1 /* outside -> node, as received; value: endpoint addr/port */

/* Value of nrd_nat4: the address and port to write, plus the connection state the daemon's GC
 * reads. Both entries of a flow carry state and last_seen_ns (bpf_ktime_get_ns, CLOCK_MONOTONIC);
 * the GC removes the pair once now - max(last_seen) exceeds the timeout of the state. */
struct nrd_nat4_entry {
	__u8 addr[4];
	__u16 port_be;
	__u8 state;  /* NRD_CT_* */
	__u8 flags;  /* reserved, 0 */
	__u64 last_seen_ns;
	__u64 created_ns;
};

/* Key of the LRU hash nrd_nat6: the IPv6 twin of nrd_nat4_key, same fields and meaning
 * (proto IPPROTO_TCP / UDP / ICMPV6). */
struct nrd_nat6_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport_be;
	__u16 dport_be;
	__u8 proto;
	__u8 dir;
	__u8 pad[2];
};

/* Value of nrd_nat6: as nrd_nat4_entry, with a 16-byte address. */
struct nrd_nat6_entry {
	__u8 addr[16];
	__u16 port_be;
	__u8 state;
	__u8 flags;
	__u8 pad[4];
	__u64 last_seen_ns;
	__u64 created_ns;
};

/* Connection states. TCP follows the flags seen in either direction; UDP and ICMP echo use
 * SYN for "no reply yet" and EST once a reply came back. Suggested GC timeouts: SYN 60 s,
 * EST 2 h (TCP) / 60 s (UDP) / 30 s (ICMP), FIN 30 s, CLOSED 10 s. */
#define NRD_CT_SYN 1
#define NRD_CT_EST 2
#define NRD_CT_FIN 3
#define NRD_CT_CLOSED 4

/* ---- load-time knobs ----------------------------------------------------------------------- */

/* cfg_flags bits of nrd_endpoint and nrd_netdev (const volatile, set before load). */
#define NRD_DP_F_IPV6 (1U << 0)    /* handle IPv6 (off: IPv6 is handed on to the stack untouched) */
#define NRD_DP_F_ARP_ANY (1U << 1) /* answer every ARP request/NS from an endpoint, not only the
				    * gateway's (probes and DAD excepted) */
#define NRD_DP_F_MASQ (1U << 2)    /* nrd_netdev: masquerade traffic leaving the cluster (IPv4 when
				    * node_ip4 is set, IPv6 when node_ip6 is set and NRD_DP_F_IPV6) */
/* (1U << 3) is NRD_DP_F_STACK_FWD of nrd_endpoint.bpf.c */
#define NRD_DP_F_FWD_EVENTS (1U << 4) /* forwarded flow events (first packet and verdict changes of
				       * every endpoint flow); drops and translations are always told */

#define NRD_NAT_PORT_MIN_DEFAULT 61000 /* above Linux's default ip_local_port_range 32768-60999 */
#define NRD_NAT_PORT_MAX_DEFAULT 65535
#define NRD_NAT_RETRIES 8 /* random port picks per new flow before nat_exhausted */

#endif /* NRD_DP_SHARED_H */
