// IANA protocol numbers ("Assigned Internet Protocol Numbers") of the transport protocols that
// services and policies name: the value a BPF program reads from iphdr.protocol / ipv6hdr.nexthdr.

export const IPPROTO = { tcp: 6, udp: 17, sctp: 132 } as const;
