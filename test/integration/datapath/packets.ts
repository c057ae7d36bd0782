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
