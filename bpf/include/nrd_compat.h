/* Constants newer than the Debian 12 uapi headers (linux 6.1) that nrd's programs return or use:
 * the tcx verdicts (kernel >= 6.6). Defined only when the headers lack them. */
#ifndef NRD_COMPAT_H
#define NRD_COMPAT_H

#include <linux/pkt_cls.h>

#ifndef TCX_NEXT
/* enum tcx_action_base in linux/bpf.h since 6.6: TCX_NEXT continues with the next program of
 * the tcx chain (and the legacy tc chain after it); under cls_bpf direct-action it is
 * TC_ACT_UNSPEC, which also means "not mine, go on". */
#define TCX_NEXT (-1)
#define TCX_PASS 0
#define TCX_DROP 2
#define TCX_REDIRECT 7
#endif

#endif /* NRD_COMPAT_H */
