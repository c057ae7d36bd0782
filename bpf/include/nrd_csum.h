/* Internet checksum helpers (RFC 1071, incremental update RFC 1624) for the endpoint datapath.
 *
 * Two kinds of update, on purpose: the IPv4 header checksum is never offloaded, so it is fixed
 * in place on direct packet memory with nrd_csum_replace*; TCP/UDP checksums may be
 * CHECKSUM_PARTIAL (a veth from a namespace hands the pseudo-header sum only), so they are
 * always changed through bpf_l4_csum_replace, which knows the skb's ip_summed state.
 * All 16-bit words are used as they lie in memory: one's-complement sums do not care about
 * byte order as long as every operand is taken the same way.
 */
#ifndef NRD_CSUM_H
#define NRD_CSUM_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

/* Folds a 32-bit one's-complement sum to 16 bits and complements it (the checksum field). */
static __always_inline __u16 nrd_csum_fold(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for one 16-bit word m -> m'. */
static __always_inline __u16 nrd_csum_replace2(__u16 check, __u16 from, __u16 to)
{
	return nrd_csum_fold((__u32)(__u16)~check + (__u16)~from + to);
}

/* The same for a 32-bit field (an IPv4 address), as two words. */
static __always_inline __u16 nrd_csum_replace4(__u16 check, __u32 from, __u32 to)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~(from & 0xffff) + (__u16)~(from >> 16);
	sum += (to & 0xffff) + (to >> 16);
	return nrd_csum_fold(sum);
}

/* Applies a sum difference (what bpf_csum_diff returns: new words minus old, unfolded) to a
 * checksum field; used for a 16-byte IPv6 address, which no fixed-size replace covers. */
static __always_inline __u16 nrd_csum_apply(__u16 check, __u32 diff)
{
	return nrd_csum_fold((__u32)(__u16)~check + (diff & 0xffff) + (diff >> 16));
}

/* Sum of len bytes (a multiple of 4, at most 512) added to seed, unfolded: bpf_csum_diff with
 * nothing removed. Used to build a checksum from scratch over a stack buffer. */
static __always_inline __u32 nrd_csum_add(const void *buf, __u32 len, __u32 seed)
{
	return (__u32)bpf_csum_diff(NULL, 0, (__be32 *)buf, len, seed);
}

#endif /* NRD_CSUM_H */
