/* Map keys, values and constants shared by the BPF programs and daemon/datapath/maps.ts.
 *
 * Every struct here has one declarative layout in maps.ts (STRUCTS: field name, offset, size,
 * kind) from which its codec is derived; test/unit/datapath/btf-layout.test.ts compares those
 * layouts with the BTF clang emits for the built objects, so a field added here without the
 * matching layout change fails the unit tests. Rules that keep the two sides simple:
 * fixed-width types only, explicit padding, no bitfields, host byte order unless the name says _be.
 */
#ifndef NRD_SHARED_H
#define NRD_SHARED_H

#include <linux/types.h>

/* Map names (<= 15 characters, BPF_OBJ_NAME_LEN) double as pin names under <pinPath>/maps/, so
 * they are unique across all nrd objects. */
#define NRD_DENY4_MAX_ENTRIES 16384
#define NRD_DENY6_MAX_ENTRIES 16384
#define NRD_IF_STATS_MAX_ENTRIES 4096

/* LPM-trie keys: prefixlen then the address in network byte order (BPF_MAP_TYPE_LPM_TRIE). */
struct nrd_lpm4_key {
	__u32 prefixlen;
	__u8 addr[4];
};

struct nrd_lpm6_key {
	__u32 prefixlen;
	__u8 addr[16];
};

/* Value of a deny-list entry: the index of the rule in datapath.xdpPrefilter.deny, so a later
 * per-rule counter or a log line can name the rule that matched. */
struct nrd_deny_value {
	__u32 rule;
	__u32 flags; /* reserved, 0 */
};

/* One counter pair; per-CPU maps hold one per CPU and the daemon sums them. */
struct nrd_counter {
	__u64 packets;
	__u64 bytes;
};

/* Index into the per-CPU array nrd_xdp_stats: what the XDP prefilter did with a packet. */
enum nrd_xdp_stat {
	NRD_XDP_STAT_PASS = 0,
	NRD_XDP_STAT_DROP_DENY4 = 1,
	NRD_XDP_STAT_DROP_DENY6 = 2,
	NRD_XDP_STAT_MALFORMED = 3, /* truncated L3 header: passed on, the stack decides */
	NRD_XDP_STAT_MAX = 4,
};

/* Key of the per-CPU hash nrd_if_stats: the interface the tc program ran on and the direction. */
enum nrd_dir {
	NRD_DIR_INGRESS = 0,
	NRD_DIR_EGRESS = 1,
};

struct nrd_if_key {
	__u32 ifindex;
	__u32 dir; /* enum nrd_dir */
};

/* Load-time knob bits of nrd_tc (const volatile cfg_flags, set before load). */
#define NRD_TC_F_STATS (1U << 0) /* count packets and bytes per interface and direction */

#endif /* NRD_SHARED_H */
