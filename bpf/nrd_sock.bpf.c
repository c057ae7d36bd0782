/* Socket-level service load balancing for processes on the node itself (not in an endpoint):
 * cgroup sock_addr programs (kernel cgroup v2 BPF_CGROUP_INET{4,6}_CONNECT, UDP{4,6}_SENDMSG,
 * UDP{4,6}_RECVMSG, INET{4,6}_GETPEERNAME) attached to one cgroup by daemon/datapath/sock.ts.
 *
 * connect() or sendmsg() to a service VIP:port picks a backend once, at the syscall, and rewrites
 * the socket's destination: the packets then go straight to the backend and need no per-packet
 * DNAT, no nrd_ct entry and no reverse NAT on the way back (the socket talks to the backend).
 * What the application sees is kept right by remembering the translation per socket cookie in
 * nrd_sock_revnat: recvmsg() on UDP and getpeername() report VIP:port, not the backend.
 *
 *  - Backend choice: the same rule as nrd_lb.h (nrd_lb_select): Maglev slot = hash % lb_maglev_m
 *    over nrd_svc_tables, or a random slot, and only an ACTIVE backend. At connect time the source
 *    port is usually not bound yet, so the hash takes the socket cookie in place of the client
 *    address and port: stable for the socket, different between sockets.
 *  - No backend: the call fails with ECONNREFUSED (bpf_set_retval, then "reject"). A bare reject
 *    would give EPERM, which reads as a permission problem of the caller; ECONNREFUSED is what a
 *    connect to a closed port gives, and what the endpoint datapath's RST / port unreachable
 *    make the client see.
 *  - Unknown destinations and sockets that are neither TCP nor UDP pass untouched.
 *
 * The service maps come from nrd_lb.h and are reused through their pins (same definitions in
 * every object); nrd_sock_revnat is this object's own, pinned beside them.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "nrd_parse.h" /* nrd_lb.h's packet helpers need it (unused here) */
#include "nrd_lb.h"

#define NRD_SOCK_REVNAT_MAX_ENTRIES 262144
#define NRD_SOCK_ECONNREFUSED 111

#define NRD_SOCK_ALLOW 1
#define NRD_SOCK_REJECT 0

/* Key of nrd_sock_revnat: a socket and the backend it was sent to. The backend is part of the key
 * because one unconnected UDP socket may talk to several services. */
struct nrd_sock_revnat_key {
	__u64 cookie;
	__u8 addr[16]; /* backend, network order, IPv4 in the first 4 bytes */
	__be16 port;   /* backend port */
	__u8 family;   /* 4 or 6 */
	__u8 pad[5];
};

/* Value of nrd_sock_revnat: the frontend the application addressed. */
struct nrd_sock_revnat_value {
	__u8 addr[16];
	__be16 port;
	__u8 pad[2];
	__u32 rev_nat_id;
};

/* LRU: entries of closed sockets are never deleted explicitly (no close hook here); they age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NRD_SOCK_REVNAT_MAX_ENTRIES);
	__type(key, struct nrd_sock_revnat_key);
	__type(value, struct nrd_sock_revnat_value);
} nrd_sock_revnat SEC(".maps");

static __always_inline __u8 nrd_sock_proto(const struct bpf_sock_addr *ctx)
{
	__u32 p = ctx->protocol;

	return p == IPPROTO_TCP || p == IPPROTO_UDP ? (__u8)p : 0;
}

/* Forward translation. addr: the 16-byte destination (IPv4 in the first 4 bytes), rewritten in
 * place with the backend; port likewise. Returns 1 translated, 0 not a service, -1 no backend. */
static __always_inline int nrd_sock_xlate(struct bpf_sock_addr *ctx, __u8 family, __u8 *addr, __be16 *port)
{
	struct nrd_svc_key key = { .family = family, .port = *port, .proto = nrd_sock_proto(ctx) };
	struct nrd_sock_revnat_key rk = { .family = family };
	struct nrd_sock_revnat_value rv = {};
	struct nrd_lb_flow f = {};
	struct nrd_svc_value *svc;
	struct nrd_backend *be;
	__u64 cookie;
	__u32 bid;

	if (!key.proto)
		return 0;
	__builtin_memcpy(key.addr, addr, 16);
	svc = bpf_map_lookup_elem(&nrd_services, &key);
	if (!svc)
		return 0;
	cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(f.saddr, &cookie, sizeof(cookie));
	__builtin_memcpy(f.daddr, addr, 16);
	f.dport = *port;
	f.proto = key.proto;
	f.family = family;
	f.v6 = family == 6;
	be = nrd_lb_select(svc, &f, &bid);
	if (!be || be->family != family)
		return -1;

	rk.cookie = cookie;
	__builtin_memcpy(rk.addr, be->addr, 16);
	rk.port = be->port;
	__builtin_memcpy(rv.addr, addr, 16);
	rv.port = *port;
	rv.rev_nat_id = svc->rev_nat_id;
	/* A full LRU evicts; a failed update only costs the VIP in getpeername/recvmsg. */
	bpf_map_update_elem(&nrd_sock_revnat, &rk, &rv, BPF_ANY);

	__builtin_memcpy(addr, be->addr, 16);
	*port = be->port;
	return 1;
}

/* Reverse translation for recvmsg/getpeername: backend -> the VIP:port the socket addressed. */
static __always_inline int nrd_sock_rev(struct bpf_sock_addr *ctx, __u8 family, __u8 *addr, __be16 *port)
{
	struct nrd_sock_revnat_key rk = { .family = family, .port = *port };
	struct nrd_sock_revnat_value *rv;

	rk.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(rk.addr, addr, 16);
	rv = bpf_map_lookup_elem(&nrd_sock_revnat, &rk);
	if (!rv)
		return 0;
	__builtin_memcpy(addr, rv->addr, 16);
	*port = rv->port;
	return 1;
}

static __always_inline int nrd_sock_fwd4(struct bpf_sock_addr *ctx)
{
	__u8 addr[16] = {};
	__be16 port = (__be16)ctx->user_port;
	__u32 ip4 = ctx->user_ip4;
	int r;

	__builtin_memcpy(addr, &ip4, 4);
	r = nrd_sock_xlate(ctx, 4, addr, &port);
	if (r < 0) {
		bpf_set_retval(-NRD_SOCK_ECONNREFUSED);
		return NRD_SOCK_REJECT;
	}
	if (r > 0) {
		__builtin_memcpy(&ip4, addr, 4);
		ctx->user_ip4 = ip4;
		ctx->user_port = (__u32)port;
	}
	return NRD_SOCK_ALLOW;
}

static __always_inline int nrd_sock_fwd6(struct bpf_sock_addr *ctx)
{
	__u32 a[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	__be16 port = (__be16)ctx->user_port;
	int r;

	r = nrd_sock_xlate(ctx, 6, (__u8 *)a, &port);
	if (r < 0) {
		bpf_set_retval(-NRD_SOCK_ECONNREFUSED);
		return NRD_SOCK_REJECT;
	}
	if (r > 0) {
		ctx->user_ip6[0] = a[0];
		ctx->user_ip6[1] = a[1];
		ctx->user_ip6[2] = a[2];
		ctx->user_ip6[3] = a[3];
		ctx->user_port = (__u32)port;
	}
	return NRD_SOCK_ALLOW;
}

static __always_inline int nrd_sock_rev4(struct bpf_sock_addr *ctx)
{
	__u8 addr[16] = {};
	__be16 port = (__be16)ctx->user_port;
	__u32 ip4 = ctx->user_ip4;

	__builtin_memcpy(addr, &ip4, 4);
	if (nrd_sock_rev(ctx, 4, addr, &port)) {
		__builtin_memcpy(&ip4, addr, 4);
		ctx->user_ip4 = ip4;
		ctx->user_port = (__u32)port;
	}
	return NRD_SOCK_ALLOW; /* recvmsg and getpeername programs must return 1 */
}

static __always_inline int nrd_sock_rev6(struct bpf_sock_addr *ctx)
{
	__u32 a[4] = { ctx->user_ip6[0], ctx->user_ip6[1], ctx->user_ip6[2], ctx->user_ip6[3] };
	__be16 port = (__be16)ctx->user_port;

	if (nrd_sock_rev(ctx, 6, (__u8 *)a, &port)) {
		ctx->user_ip6[0] = a[0];
		ctx->user_ip6[1] = a[1];
		ctx->user_ip6[2] = a[2];
		ctx->user_ip6[3] = a[3];
		ctx->user_port = (__u32)port;
	}
	return NRD_SOCK_ALLOW;
}

SEC("cgroup/connect4")
int nrd_sock_connect4(struct bpf_sock_addr *ctx)
{
	return nrd_sock_fwd4(ctx);
}

SEC("cgroup/connect6")
int nrd_sock_connect6(struct bpf_sock_addr *ctx)
{
	return nrd_sock_fwd6(ctx);
}

SEC("cgroup/sendmsg4")
int nrd_sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return nrd_sock_fwd4(ctx);
}

SEC("cgroup/sendmsg6")
int nrd_sock_sendmsg6(struct bpf_sock_addr *ctx)
{
	return nrd_sock_fwd6(ctx);
}

SEC("cgroup/recvmsg4")
int nrd_sock_recvmsg4(struct bpf_sock_addr *ctx)
{
	return nrd_sock_rev4(ctx);
}

SEC("cgroup/recvmsg6")
int nrd_sock_recvmsg6(struct bpf_sock_addr *ctx)
{
	return nrd_sock_rev6(ctx);
}

SEC("cgroup/getpeername4")
int nrd_sock_getpeername4(struct bpf_sock_addr *ctx)
{
	return nrd_sock_rev4(ctx);
}

SEC("cgroup/getpeername6")
int nrd_sock_getpeername6(struct bpf_sock_addr *ctx)
{
	return nrd_sock_rev6(ctx);
}

char LICENSE[] SEC("license") = "GPL";
