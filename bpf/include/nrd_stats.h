/* Per-CPU counter helpers shared by nrd programs: no atomics needed, since a per-CPU slot is only
 * written by the CPU running the program (and BPF programs do not migrate mid-run). */
#ifndef NRD_STATS_H
#define NRD_STATS_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "nrd_shared.h"

static __always_inline void nrd_count(struct nrd_counter *c, __u64 bytes)
{
	if (!c)
		return;
	c->packets += 1;
	c->bytes += bytes;
}

#endif /* NRD_STATS_H */
