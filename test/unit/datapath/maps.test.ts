// Unit tests of the datapath codecs: CIDR parsing and formatting (fixtures and properties), map
// key/value encodings byte by byte, .rodata knob encoding, and deny-list validation.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  counterCodec,
  denyValueCodec,
  formatCidr,
  ifKeyCodec,
  lpm4KeyCodec,
  lpm6KeyCodec,
  parseCidr,
  STRUCTS,
  structCodec,
  sumCounters,
} from '../../../daemon/datapath/maps.js';
import { encodeKnobs } from '../../../daemon/datapath/objects.js';
import { parseDenyList } from '../../../daemon/datapath/datapath.js';
import { BpfError, isBpfError } from '../../../daemon/datapath/libbpf.js';
import { errnoName } from '../../../daemon/lib/errno.js';

describe('parseCidr / formatCidr', () => {
  const fixtures: Array<[string, string, string]> = [
    ['192.0.2.0/24', 'c0000200', '192.0.2.0/24'],
    ['192.0.2.77/24', 'c0000200', '192.0.2.0/24'], // host bits cleared
    ['203.0.113.7', 'cb007107', '203.0.113.7/32'], // bare address: host route
    ['0.0.0.0/0', '00000000', '0.0.0.0/0'],
    ['10.244.0.0/15', '0af40000', '10.244.0.0/15'],
    ['2001:db8::/32', '20010db8000000000000000000000000', '2001:db8::/32'],
    ['2001:DB8:0:0:1::1/128', '20010db8000000000001000000000001', '2001:db8::1:0:0:1/128'],
    ['::/0', '00000000000000000000000000000000', '::/0'],
    ['::ffff:192.0.2.1/128', '00000000000000000000ffffc0000201', '::ffff:c000:201/128'],
    ['fd00:244::7/48', 'fd000244000000000000000000000000', 'fd00:244::/48'],
    ['2001:db8:0:1:0:0:0:1', '20010db8000000010000000000000001', '2001:db8:0:1::1/128'],
  ];
  for (const [text, hex, canonical] of fixtures) {
    it(`${text} → ${hex} → ${canonical}`, () => {
      const c = parseCidr(text);
      assert.equal(c.addr.toString('hex'), hex);
      assert.equal(formatCidr(c), canonical);
    });
  }

  for (const bad of ['', '192.0.2.0/33', '192.0.2/24', '2001:db8::/129', '2001:db8::/-1', 'fe80::1%eth0/64',
    '10.0.0.0/ 8', 'example.com', '1:2:3:4:5:6:7:8:9/64', '192.0.2.0/08x']) {
    it(`rejects ${JSON.stringify(bad)} naming the value`, () => {
      assert.throws(() => parseCidr(bad), (e: Error) => e.message.includes(JSON.stringify(bad)));
    });
  }

  it('round-trips any IPv4 prefix (property)', () => {
    fc.assert(fc.property(fc.ipV4(), fc.integer({ min: 0, max: 32 }), (ip, len) => {
      const c = parseCidr(`${ip}/${len}`);
      const again = parseCidr(formatCidr(c));
      assert.deepEqual(again, c);
      assert.deepEqual(lpm4KeyCodec.decode(lpm4KeyCodec.encode(c)), c);
    }));
  });

  it('round-trips any IPv6 prefix, including embedded IPv4 forms (property)', () => {
    fc.assert(fc.property(fc.ipV6(), fc.integer({ min: 0, max: 128 }), (ip, len) => {
      const c = parseCidr(`${ip}/${len}`);
      assert.equal(c.family, 6);
      const again = parseCidr(formatCidr(c));
      assert.deepEqual(again, c);
      assert.deepEqual(lpm6KeyCodec.decode(lpm6KeyCodec.encode(c)), c);
    }));
  });

  it('agrees with the full 8-group form of any IPv6 address (property)', () => {
    fc.assert(fc.property(fc.array(fc.integer({ min: 0, max: 0xffff }), { minLength: 8, maxLength: 8 }), (groups) => {
      const full = groups.map((g) => g.toString(16)).join(':');
      const c = parseCidr(full);
      assert.deepEqual([...Array(8).keys()].map((i) => c.addr.readUInt16BE(i * 2)), groups);
      assert.deepEqual(parseCidr(formatCidr(c)).addr, c.addr);
    }));
  });
});

describe('map key and value encodings (little-endian host order, network-order addresses)', () => {
  it('nrd_lpm4_key: u32 prefixlen then 4 address bytes', () => {
    assert.equal(lpm4KeyCodec.encode(parseCidr('198.51.100.0/24')).toString('hex'), '18000000' + 'c6336400');
  });
  it('nrd_lpm6_key: u32 prefixlen then 16 address bytes', () => {
    assert.equal(lpm6KeyCodec.encode(parseCidr('2001:db8::/32')).toString('hex'), '20000000' + '20010db8' + '00'.repeat(12));
  });
  it('refuses an address of the wrong family', () => {
    assert.throws(() => lpm4KeyCodec.encode(parseCidr('2001:db8::/32')), /IPv6 CIDR for an IPv4/);
  });
  it('nrd_deny_value, nrd_if_key, nrd_counter', () => {
    assert.equal(denyValueCodec.encode({ rule: 3, flags: 0 }).toString('hex'), '0300000000000000');
    assert.equal(ifKeyCodec.encode({ ifindex: 0x102, dir: 1 }).toString('hex'), '0201000001000000');
    const c = { packets: 2n ** 40n + 1n, bytes: 1500n };
    assert.equal(counterCodec.encode(c).toString('hex'), '0100000000010000' + 'dc05000000000000');
    assert.deepEqual(counterCodec.decode(counterCodec.encode(c)), c);
  });
  it('sums per-CPU counters', () => {
    assert.deepEqual(sumCounters([{ packets: 1n, bytes: 10n }, { packets: 2n, bytes: 20n }]), { packets: 3n, bytes: 30n });
  });
});

describe('encodeKnobs', () => {
  const vars = [{ name: 'cfg_flags', offset: 0, size: 4 }, { name: 'cfg_ifindex', offset: 4, size: 4 },
    { name: 'cfg_wide', offset: 8, size: 8 }, { name: 'cfg_on', offset: 16, size: 1 }];
  it('writes each knob at its BTF offset and leaves the rest of the image', () => {
    const image = Buffer.alloc(17, 0xaa);
    const out = encodeKnobs(image, vars, { cfg_flags: 1, cfg_wide: 2n ** 40n, cfg_on: true });
    assert.equal(out.toString('hex'), '01000000' + 'aaaaaaaa' + '0000000000010000' + '01');
    assert.equal(image[0], 0xaa, 'input image must not be modified');
  });
  it('names an unknown knob and a value that does not fit', () => {
    assert.throws(() => encodeKnobs(Buffer.alloc(17), vars, { cfg_nope: 1 }), /knob cfg_nope: no such/);
    assert.throws(() => encodeKnobs(Buffer.alloc(17), vars, { cfg_on: 256 }), /knob cfg_on: 256 does not fit/);
  });
  it('encodes negative values in two’s complement', () => {
    assert.equal(encodeKnobs(Buffer.alloc(17), vars, { cfg_flags: -1 }).readUInt32LE(0), 0xffffffff);
  });
  it('copies a Buffer knob (an array variable) byte for byte, and only at its exact size', () => {
    const out = encodeKnobs(Buffer.alloc(17), vars, { cfg_wide: Buffer.from('2001db8000000001', 'hex') });
    assert.equal(out.subarray(8, 16).toString('hex'), '2001db8000000001');
    assert.throws(() => encodeKnobs(Buffer.alloc(17), vars, { cfg_wide: Buffer.alloc(16) }), /knob cfg_wide: 16 bytes given, the variable has 8/);
  });
});

describe('deny list validation', () => {
  it('names the index and value of a bad entry', () => {
    assert.throws(() => parseDenyList(['192.0.2.0/24', 'nope']), /datapath\.xdpPrefilter\.deny\[1\]: invalid CIDR "nope"/);
  });
  it('deduplicates equal prefixes written differently, keeping the first rule index', () => {
    const m = parseDenyList(['192.0.2.9/24', '2001:db8::/32', '192.0.2.0/24']);
    assert.deepEqual([...m.keys()], ['192.0.2.0/24', '2001:db8::/32']);
    assert.equal(m.get('192.0.2.0/24')?.rule, 0);
  });
});

describe('BpfError', () => {
  it('carries errno, code and call', () => {
    const e = new BpfError('bpf_obj_pin', 17, '/sys/fs/bpf/x');
    assert.equal(e.code, 'EEXIST');
    assert.equal(e.errno, 17);
    assert.equal(e.call, 'bpf_obj_pin');
    assert.ok(isBpfError(e, 'EEXIST'));
    assert.ok(!isBpfError(e, 'ENOENT'));
    assert.equal(errnoName(2), 'ENOENT');
    assert.equal(errnoName(4242), 'E4242');
  });
});

describe('structCodec (codecs derived from one layout)', () => {
  it('encodes every field at its offset, zero padding, and decodes back', () => {
    const spec = {
      name: 'demo',
      size: 24,
      fields: [
        { name: 'a', offset: 0, size: 4, kind: 'u32' },
        { name: 'b', offset: 8, size: 8, kind: 'u64' },
        { name: 'c', offset: 16, size: 6, kind: 'bytes' },
      ],
    } as const;
    const codec = structCodec(spec);
    const v = { a: 0xdeadbeef, b: 0x0102030405060708n, c: Buffer.from('a1b2c3d4e5f6', 'hex') };
    const b = codec.encode(v);
    // a: LE u32 | 4 bytes padding | b: LE u64 | c: 6 bytes | 2 bytes padding
    assert.equal(b.toString('hex'), 'efbeadde' + '00000000' + '0807060504030201' + 'a1b2c3d4e5f6' + '0000');
    assert.deepEqual(codec.decode(b), v);
  });

  it('refuses a layout whose kind and size disagree, or whose fields overlap or overrun', () => {
    assert.throws(() => structCodec({ name: 's', size: 8, fields: [{ name: 'x', offset: 0, size: 8, kind: 'u32' }] }), /s\.x: u32 is 4 bytes, not 8/);
    assert.throws(() => structCodec({ name: 's', size: 8, fields: [{ name: 'x', offset: 0, size: 4, kind: 'u32' }, { name: 'y', offset: 2, size: 4, kind: 'u32' }] }), /s\.y: overlaps/);
    assert.throws(() => structCodec({ name: 's', size: 4, fields: [{ name: 'x', offset: 2, size: 4, kind: 'u32' }] }), /overruns/);
  });

  it('every shipped layout builds a codec of its struct size', () => {
    for (const spec of Object.values(STRUCTS)) assert.equal(structCodec(spec).size, spec.size);
  });
});

it('pin path segments: an interface name with dots or percent signs round-trips and never contains a dot', async () => {
  const { pinSegment, ifnameOfPinSegment } = await import('../../../daemon/datapath/attach.js');
  for (const n of ['eth0', 'nrd.vxlan', 'eth0.100', 'a%2e.b', '%', '..x', 'nrdv1a2b3c4d5e6']) {
    assert.ok(!pinSegment(n).includes('.'), n);
    assert.equal(ifnameOfPinSegment(pinSegment(n)), n);
  }
});
