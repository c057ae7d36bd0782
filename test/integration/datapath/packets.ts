// Builds Ethernet frames for BPF_PROG_TEST_RUN: IPv4/UDP, IPv6/UDP and ARP, with valid lengths
// and an IPv4 header checksum, so the programs see what a NIC would hand them.
import { parseCidr } from '../../../daemon/datapath/maps.js';

const SRC_MAC = Buffer.from('02000000000a', 'hex');
const DST_MAC = Buffer.from('02000000000b', 'hex');

function eth(type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  DST_MAC.copy(h, 0);
  SRC_MAC.copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

function addr(text: string): Buffer {
  return parseCidr(text).addr;
}

function udp(payloadLen: number): Buffer {
  const u = Buffer.alloc(8 + payloadLen);
  u.writeUInt16BE(40000, 0);
  u.writeUInt16BE(4789, 2);
  u.writeUInt16BE(8 + payloadLen, 4);
  return u;
}

export function ipv4Udp(src: string, dst: string, payloadLen = 18): Buffer {
  const body = udp(payloadLen);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + body.length, 2);
  ip[8] = 64; // TTL
  ip[9] = 17; // UDP
  addr(src).copy(ip, 12);
  addr(dst).copy(ip, 16);
  let sum = 0;
  for (let i = 0; i < 20; i += 2) sum += ip.readUInt16BE(i);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  ip.writeUInt16BE(~sum & 0xffff, 10);
  return eth(0x0800, Buffer.concat([ip, body]));
}

export function ipv6Udp(src: string, dst: string, payloadLen = 18): Buffer {
  const body = udp(payloadLen);
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(body.length, 4);
  ip[6] = 17; // next header UDP
  ip[7] = 64; // hop limit
  addr(src).copy(ip, 8);
  addr(dst).copy(ip, 24);
  return eth(0x86dd, Buffer.concat([ip, body]));
}

export function arpRequest(): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0);
  a.writeUInt16BE(0x0800, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(1, 6);
  return eth(0x0806, a);
}

/** An IPv4 frame cut inside the IP header (the XDP program must pass it, counted malformed). */
export function truncatedIpv4(): Buffer {
  return ipv4Udp('192.0.2.1', '192.0.2.2').subarray(0, 14 + 12);
}

// ---- endpoint datapath frames (explicit MACs, ports and valid L4 checksums) ----------------------

/** RFC 1071 one's-complement sum of buf (odd length padded), folded and complemented. */
export function inetChecksum(buf: Buffer, seed = 0): number {
  let sum = seed;
  for (let i = 0; i + 1 < buf.length; i += 2) sum += buf.readUInt16BE(i);
  if (buf.length % 2) sum += buf[buf.length - 1] << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

/** Unfolded sum of the TCP/UDP/ICMPv6 pseudo-header (RFC 793, RFC 8200 §8.1). */
export function pseudoSum(src: Buffer, dst: Buffer, proto: number, len: number): number {
  const p = Buffer.alloc(src.length * 2 + (src.length === 4 ? 4 : 8));
  src.copy(p, 0);
  dst.copy(p, src.length);
  if (src.length === 4) {
    p[9] = proto;
    p.writeUInt16BE(len, 10);
  } else {
    p.writeUInt32BE(len, 32);
    p[39] = proto;
  }
  let sum = 0;
  for (let i = 0; i < p.length; i += 2) sum += p.readUInt16BE(i);
  return sum;
}

export function mac(text: string): Buffer {
  return Buffer.from(text.replace(/:/g, ''), 'hex');
}

function ethFrame(dst: Buffer, src: Buffer, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  dst.copy(h, 0);
  src.copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

export interface L2 {
  src?: Buffer;
  dst?: Buffer;
}

/** An IPv4 header (no options, DF clear, id 0x1234) with a valid checksum, then body. */
export function ipv4Packet(src: string, dst: string, proto: number, body: Buffer, opts: { ttl?: number; l2?: L2 } = {}): Buffer {
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + body.length, 2);
  ip.writeUInt16BE(0x1234, 4);
  ip[8] = opts.ttl ?? 64;
  ip[9] = proto;
  addr(src).copy(ip, 12);
  addr(dst).copy(ip, 16);
  ip.writeUInt16BE(inetChecksum(ip), 10);
  return ethFrame(opts.l2?.dst ?? DST_MAC, opts.l2?.src ?? SRC_MAC, 0x0800, Buffer.concat([ip, body]));
}

/** A TCP segment (20-byte header, flags e.g. 0x02 SYN) with its checksum over src/dst. */
export function tcpSegment(src: string, dst: string, sport: number, dport: number, flags: number, payloadLen = 0): Buffer {
  const t = Buffer.alloc(20 + payloadLen);
  t.writeUInt16BE(sport, 0);
  t.writeUInt16BE(dport, 2);
  t.writeUInt32BE(1000, 4);
  t.writeUInt32BE(flags & 0x10 ? 2000 : 0, 8);
  t[12] = 5 << 4;
  t[13] = flags;
  t.writeUInt16BE(64240, 14);
  for (let i = 0; i < payloadLen; i++) t[20 + i] = i & 0xff;
  t.writeUInt16BE(inetChecksum(t, pseudoSum(addr(src), addr(dst), 6, t.length)), 16);
  return t;
}

/** A UDP datagram with its checksum over src/dst (IPv4 or IPv6). */
export function udpDatagram(src: string, dst: string, sport: number, dport: number, payloadLen = 16): Buffer {
  const u = Buffer.alloc(8 + payloadLen);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(u.length, 4);
  for (let i = 0; i < payloadLen; i++) u[8 + i] = (i * 7) & 0xff;
  const c = inetChecksum(u, pseudoSum(addr(src), addr(dst), 17, u.length));
  u.writeUInt16BE(c === 0 ? 0xffff : c, 6);
  return u;
}

/** ICMP echo request (type 8) or reply (type 0) with identifier id. */
export function icmpEcho(type: 0 | 8, id: number, seq = 1, payloadLen = 16): Buffer {
  const m = Buffer.alloc(8 + payloadLen);
  m[0] = type;
  m.writeUInt16BE(id, 4);
  m.writeUInt16BE(seq, 6);
  for (let i = 0; i < payloadLen; i++) m[8 + i] = i;
  m.writeUInt16BE(inetChecksum(m), 2);
  return m;
}

/** An ICMP error (e.g. type 11 code 0) quoting the first 28 bytes of an IPv4 packet (no L2). */
export function icmpError(type: number, code: number, quotedIp: Buffer): Buffer {
  const m = Buffer.concat([Buffer.alloc(8), quotedIp.subarray(0, 28)]);
  m[0] = type;
  m[1] = code;
  m.writeUInt16BE(inetChecksum(m), 2);
  return m;
}

/** An IPv6 header (hop limit 64 unless given) then body. */
export function ipv6Packet(src: string, dst: string, next: number, body: Buffer, opts: { hop?: number; l2?: L2 } = {}): Buffer {
  const ip = Buffer.alloc(40);
  ip[0] = 0x60;
  ip.writeUInt16BE(body.length, 4);
  ip[6] = next;
  ip[7] = opts.hop ?? 64;
  addr(src).copy(ip, 8);
  addr(dst).copy(ip, 24);
  return ethFrame(opts.l2?.dst ?? DST_MAC, opts.l2?.src ?? SRC_MAC, 0x86dd, Buffer.concat([ip, body]));
}

/** ARP request (Ethernet broadcast) from senderMac/senderIp for targetIp. */
export function arpRequestFor(senderMac: Buffer, senderIp: string, targetIp: string): Buffer {
  const a = Buffer.alloc(28);
  a.writeUInt16BE(1, 0);
  a.writeUInt16BE(0x0800, 2);
  a[4] = 6;
  a[5] = 4;
  a.writeUInt16BE(1, 6);
  senderMac.copy(a, 8);
  addr(senderIp).copy(a, 14);
  addr(targetIp).copy(a, 24);
  return ethFrame(Buffer.alloc(6, 0xff), senderMac, 0x0806, a);
}

/** Neighbor Solicitation for target from src (to the solicited-node multicast address unless
 *  dst is given), with a source link-layer address option when sll is true. */
export function neighborSolicitation(srcMac: Buffer, src: string, target: string, sll = true, dst?: string): Buffer {
  const t = addr(target);
  const d = dst ?? `ff02::1:ff${t.subarray(13).toString('hex').replace(/^(..)(....)$/, '$1:$2')}`;
  const ns = Buffer.alloc(24 + (sll ? 8 : 0));
  ns[0] = 135;
  t.copy(ns, 8);
  if (sll) {
    ns[24] = 1;
    ns[25] = 1;
    srcMac.copy(ns, 26);
  }
  ns.writeUInt16BE(inetChecksum(ns, pseudoSum(addr(src), addr(d), 58, ns.length)), 2);
  const dmac = Buffer.from([0x33, 0x33, 0xff, t[13], t[14], t[15]]);
  return ipv6Packet(src, d, 58, ns, { hop: 255, l2: { src: srcMac, dst: dmac } });
}
