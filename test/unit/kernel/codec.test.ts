// rtnetlink codec: byte-exact fixtures both ways for the messages whose encoding the npm package
// leaves to us (RTA_MULTIPATH, IFLA_INFO_DATA for vxlan, AF_BRIDGE FDB), round trips, and errno
// recovery from the package's error strings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  decodeFdb,
  decodeLink,
  decodeRoute,
  encodeFdb,
  encodeRoute,
  encodeRouteDelete,
  encodeVxlanCreate,
  splitMessages,
  frame,
} from '../../../daemon/kernel/codec.js';
import { kernelErrorFrom } from '../../../daemon/kernel/channel.js';
import { bytesToIp, canonicalPrefix, ipToBytes, prefixContains, firstAddress } from '../../../daemon/kernel/addr.js';
import type { Route } from '../../../daemon/kernel/types.js';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+|#[^\n]*/g, ''), 'hex');

test('multipath route encodes rtmsg + RTA_TABLE + RTA_DST + RTA_MULTIPATH byte for byte', () => {
  const r: Route = {
    family: 4,
    dst: '10.244.2.0/24',
    table: 254,
    protocol: 220,
    type: 'unicast',
    nextHops: [{ gateway: '192.0.2.2' }, { gateway: '198.51.100.2', weight: 2 }],
  };
  const want = hex(`
    02 18 00 00 fe dc 00 01 00000000   # rtmsg: AF_INET, /24, table main, proto 220, scope universe, unicast, flags 0
    0800 0f00 fe000000                 # RTA_TABLE 254
    0800 0100 0af40200                 # RTA_DST 10.244.2.0
    2400 0900                          # RTA_MULTIPATH, 36 bytes
      1000 00 00 00000000              #   rtnexthop len 16, flags 0, hops 0 (weight 1), ifindex 0 (kernel resolves)
      0800 0500 c0000202               #   RTA_GATEWAY 192.0.2.2
      1000 00 01 00000000              #   rtnexthop len 16, hops 1 (weight 2)
      0800 0500 c6336402               #   RTA_GATEWAY 198.51.100.2
  `);
  assert.deepEqual(encodeRoute(r).toString('hex'), want.toString('hex'));
  const back = decodeRoute(want)!;
  assert.equal(back.dst, '10.244.2.0/24');
  assert.equal(back.protocol, 220);
  assert.deepEqual(back.nextHops, [
    { gateway: '192.0.2.2', weight: 1 },
    { gateway: '198.51.100.2', weight: 2 },
  ]);
});

test('onlink VXLAN route sets RTNH_F_ONLINK in rtm_flags and carries RTA_OIF; MTU goes in RTA_METRICS', () => {
  const b = encodeRoute({
    family: 4,
    dst: '10.244.5.0/24',
    table: 254,
    protocol: 220,
    type: 'unicast',
    mtu: 1400,
    nextHops: [{ gateway: '10.244.5.0', ifindex: 7, onlink: true }],
  });
  const want = hex(`
    02 18 00 00 fe dc 00 01 04000000   # rtm_flags RTNH_F_ONLINK
    0800 0f00 fe000000                 # RTA_TABLE
    0800 0100 0af40500                 # RTA_DST
    0c00 0800 0800 0200 78050000       # RTA_METRICS { RTAX_MTU 1400 }
    0800 0500 0af40500                 # RTA_GATEWAY 10.244.5.0
    0800 0400 07000000                 # RTA_OIF 7
  `);
  assert.equal(b.toString('hex'), want.toString('hex'));
  assert.deepEqual(decodeRoute(b), {
    family: 4,
    dst: '10.244.5.0/24',
    table: 254,
    protocol: 220,
    type: 'unicast',
    mtu: 1400,
    nextHops: [{ gateway: '10.244.5.0', ifindex: 7, onlink: true }],
  });
});

test('route delete uses the any-scope/any-type wildcards but keeps the protocol', () => {
  const b = encodeRouteDelete({ family: 6, dst: 'fd00:244:1::/64', table: 254, protocol: 220, type: 'unicast', metric: 1024 });
  assert.equal(b.readUInt8(0), 10); // AF_INET6
  assert.equal(b.readUInt8(1), 64);
  assert.equal(b.readUInt8(5), 220); // protocol: never a wildcard
  assert.equal(b.readUInt8(6), 255); // RT_SCOPE_NOWHERE
  assert.equal(b.readUInt8(7), 0); // any type
});

test('vxlan create: IFLA_LINKINFO { KIND "vxlan", DATA { ID, LOCAL, LINK, LEARNING 0, PORT be16 } }', () => {
  const b = encodeVxlanCreate({ name: 'nrd-vx', vni: 42, port: 4789, local: '192.0.2.1', mtu: 1450, underlayIndex: 3, mac: '02:00:00:00:00:01' });
  const want = hex(`
    00 00 0000 00000000 00000000 00000000   # ifinfomsg
    0b00 0300 6e72642d767800 00             # IFLA_IFNAME "nrd-vx\\0" + pad
    0800 0400 aa050000                      # IFLA_MTU 1450
    0a00 0100 020000000001 0000             # IFLA_ADDRESS + pad
    3c00 1200                               # IFLA_LINKINFO (60)
      0a00 0100 7678 6c61 6e00 0000         #   IFLA_INFO_KIND "vxlan\\0" + pad
      2c00 0200                             #   IFLA_INFO_DATA (44)
        0800 0100 2a000000                  #     IFLA_VXLAN_ID 42
        0800 0400 c0000201                  #     IFLA_VXLAN_LOCAL 192.0.2.1
        0800 0300 03000000                  #     IFLA_VXLAN_LINK 3
        0500 0700 00 000000                 #     IFLA_VXLAN_LEARNING 0
        0600 0f00 12b5 0000                 #     IFLA_VXLAN_PORT 4789 (network order)
  `);
  assert.equal(b.toString('hex'), want.toString('hex'));
  // Read back as the kernel reports it (same attributes, IFF_UP clear).
  const link = decodeLink(b)!;
  assert.deepEqual(link, {
    index: 0,
    name: 'nrd-vx',
    mtu: 1450,
    up: false,
    mac: '02:00:00:00:00:01',
    kind: 'vxlan',
    vxlan: { vni: 42, port: 4789, learning: false, local: '192.0.2.1', link: 3 },
  });
});

test('FDB entry: AF_BRIDGE ndmsg, NUD_PERMANENT, NTF_SELF, NDA_LLADDR, NDA_DST', () => {
  const b = encodeFdb({ ifindex: 6, mac: '02:00:00:00:00:02', dst: '192.0.2.2' });
  const want = hex(`
    07 00 0000 06000000 8000 02 00          # ndmsg: AF_BRIDGE, ifindex 6, NUD_PERMANENT, NTF_SELF
    0a00 0200 020000000002 0000             # NDA_LLADDR
    0800 0100 c0000202                      # NDA_DST 192.0.2.2
  `);
  assert.equal(b.toString('hex'), want.toString('hex'));
  assert.deepEqual(decodeFdb(b), { ifindex: 6, mac: '02:00:00:00:00:02', permanent: true, self: true, dst: '192.0.2.2' });
});

test('route encode/decode round trip (IPv4 and IPv6, 1..4 next hops)', () => {
  const v4 = fc.tuple(fc.integer({ min: 0, max: 255 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 1, max: 254 })).map(([a, b, c]) => `10.${a}.${b}.${c}`);
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 0xffffffff }),
      fc.integer({ min: 8, max: 32 }),
      fc.array(fc.record({ gateway: v4, weight: fc.integer({ min: 1, max: 256 }), ifindex: fc.integer({ min: 1, max: 1000 }) }), { minLength: 1, maxLength: 4 }),
      fc.option(fc.integer({ min: 576, max: 9000 }), { nil: undefined }),
      (addr, len, hops, mtu) => {
        const ip = [24, 16, 8, 0].map((s) => (addr >>> s) & 255).join('.');
        const dst = canonicalPrefix(`${ip}/${len}`);
        const r: Route = { family: 4, dst, table: 254, protocol: 220, type: 'unicast', nextHops: hops.length === 1 ? [{ gateway: hops[0]!.gateway, ifindex: hops[0]!.ifindex }] : hops.map((h) => ({ ...h })), metric: 0 };
        if (mtu !== undefined) r.mtu = mtu;
        const back = decodeRoute(encodeRoute(r))!;
        assert.deepEqual(back, r);
      },
    ),
  );
  const v6: Route = { family: 6, dst: 'fd00:244:1::/64', table: 1000, protocol: 220, type: 'unicast', metric: 1024, nextHops: [{ gateway: 'fd00::1', weight: 1 }, { gateway: 'fd00::2', weight: 1 }] };
  assert.deepEqual(decodeRoute(encodeRoute(v6)), v6);
});

test('framing: several messages in one datagram split back with their seq numbers', () => {
  const d = Buffer.concat([frame(24, 0x405, 7, Buffer.alloc(13, 1)), frame(25, 0x1, 8, Buffer.alloc(12, 2))]);
  const m = splitMessages(d);
  assert.equal(m.length, 2);
  assert.deepEqual(
    m.map((x) => [x.type, x.flags, x.seq, x.payload.length]),
    [
      [24, 0x405, 7, 13],
      [25, 0x1, 8, 12],
    ],
  );
});

test('errno names are recovered from the netlink package error string and from errno exceptions', () => {
  const a = kernelErrorFrom(new Error('Request rejected: EEXIST'), 'newRoute');
  assert.deepEqual([a.code, a.errno, a.call], ['EEXIST', 17, 'newRoute']);
  const b = kernelErrorFrom(new Error('Request rejected: 101'), 'newRoute');
  assert.deepEqual([b.code, b.errno], ['ENETUNREACH', 101]);
  const c = kernelErrorFrom(Object.assign(new Error('x'), { errno: -105, code: 'ENOBUFS' }), 'recvmsg');
  assert.deepEqual([c.code, c.errno], ['ENOBUFS', 105]);
});

test('address helpers', () => {
  assert.equal(bytesToIp(ipToBytes('fd00:244::1')), 'fd00:244::1');
  assert.equal(bytesToIp(ipToBytes('::ffff:192.0.2.1')), '::ffff:c000:201');
  assert.equal(canonicalPrefix('10.244.1.7/24'), '10.244.1.0/24');
  assert.equal(canonicalPrefix('FD00:244:0:0::/48'), 'fd00:244::/48');
  assert.ok(prefixContains('192.0.2.0/24', '192.0.2.77'));
  assert.ok(!prefixContains('192.0.2.0/24', '198.51.100.1'));
  assert.equal(firstAddress('10.244.3.0/24'), '10.244.3.0');
});

test('property: the batch writer produces exactly encodeRoute / encodeRouteDelete bytes', async () => {
  const { writeRoute, routeMaxBytes } = await import('../../../daemon/kernel/codec.js');
  const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((b) => b.join('.'));
  const v6 = fc.array(fc.nat(0xffff), { minLength: 8, maxLength: 8 }).map((g) => g.map((x) => x.toString(16)).join(':'));
  const hop = (addr: fc.Arbitrary<string>) =>
    fc.record(
      { gateway: addr, ifindex: fc.integer({ min: 1, max: 5000 }), onlink: fc.boolean(), weight: fc.integer({ min: 1, max: 256 }) },
      { requiredKeys: [] },
    );
  const route = fc.oneof(
    fc.tuple(fc.constant(4 as const), v4, fc.integer({ min: 0, max: 32 }), fc.array(hop(v4), { maxLength: 4 })),
    fc.tuple(fc.constant(6 as const), v6, fc.integer({ min: 0, max: 128 }), fc.array(hop(v6), { maxLength: 4 })),
  );
  fc.assert(
    fc.property(
      route,
      fc.constantFrom('unicast', 'blackhole', 'unreachable') as fc.Arbitrary<Route['type']>,
      fc.option(fc.nat(100000), { nil: undefined }),
      fc.option(fc.integer({ min: 68, max: 9000 }), { nil: undefined }),
      fc.integer({ min: 1, max: 5000 }),
      ([family, addr, len, nextHops], type, metric, mtu, table) => {
        const r: Route = { family, dst: `${addr}/${len}`, table, protocol: 220, type, nextHops };
        if (metric !== undefined) r.metric = metric;
        if (mtu !== undefined) r.mtu = mtu;
        const b = Buffer.alloc(routeMaxBytes(r) + 8);
        const end = writeRoute(b, 4, r);
        assert.ok(end - 4 <= routeMaxBytes(r));
        assert.equal(b.subarray(4, end).toString('hex'), encodeRoute(r).toString('hex'));
        const d = Buffer.alloc(routeMaxBytes({ nextHops: [] }));
        const dend = writeRoute(d, 0, { ...r, nextHops: [] }, true);
        assert.equal(d.subarray(0, dend).toString('hex'), encodeRouteDelete(r).toString('hex'));
      },
    ),
  );
  // Malformed input is refused, as by encodeRoute.
  const bad = (dst: string, family: 4 | 6 = 4) => () => writeRoute(Buffer.alloc(256), 0, { family, dst, table: 254, protocol: 220, type: 'blackhole', nextHops: [] });
  assert.throws(bad('10.0.0.0/33'));
  assert.throws(bad('10.0.0/8'));
  assert.throws(bad('fd00::/64', 4));
  assert.throws(bad('10.0.0.0/8', 6));
  assert.throws(bad('10.0.0.0/x'));
});
