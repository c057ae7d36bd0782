// Unit tests of the pinned-map comparison that decides, before a load, whether a pin is reused,
// migrated (entries copied) or replaced, of the operator's log message, and of the bpf_map_info
// decoder (fixture and fuzz). The kernel side is in test/integration/datapath/pin-migrate.test.ts.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { type MapDef, compareInnerDef, comparePinnedMap, describePinMigration } from '../../../daemon/datapath/pin-migrate.js';
import { decodeMapInfo } from '../../../daemon/datapath/libbpf.js';

const PERCPU_ARRAY = 6;
const LRU_HASH = 9;
const HASH = 1;
const RINGBUF = 27;
const drops: MapDef = { type: PERCPU_ARRAY, keySize: 4, valueSize: 16, maxEntries: 6, mapFlags: 0 };

describe('comparePinnedMap', () => {
  it('an identical definition is reused as it is', () => {
    assert.deepEqual(comparePinnedMap(drops, { ...drops }), { changes: [] });
  });

  it('a table that grew, or new flags, keeps its entries (migrated)', () => {
    assert.deepEqual(comparePinnedMap({ ...drops, maxEntries: 5 }, drops), { changes: ['max_entries 5 → 6'] });
    assert.deepEqual(comparePinnedMap({ ...drops, type: HASH, mapFlags: 0 }, { ...drops, type: HASH, mapFlags: 1 }),
      { changes: ['map_flags 0x0 → 0x1'] });
  });

  it('a changed layout or type cannot carry entries (replaced), and says why', () => {
    assert.deepEqual(comparePinnedMap({ ...drops, valueSize: 24 }, drops),
      { changes: ['value_size 24 → 16'], notCarried: 'the key or value layout changed' });
    assert.deepEqual(comparePinnedMap({ ...drops, keySize: 8, maxEntries: 5 }, drops),
      { changes: ['key_size 8 → 4', 'max_entries 5 → 6'], notCarried: 'the key or value layout changed' });
    assert.deepEqual(comparePinnedMap({ ...drops, type: HASH }, { ...drops, type: LRU_HASH }),
      { changes: ['type hash → lru_hash'], notCarried: 'the map type changed' });
    const ring: MapDef = { type: RINGBUF, keySize: 0, valueSize: 0, maxEntries: 1 << 16, mapFlags: 0 };
    assert.equal(comparePinnedMap({ ...ring, maxEntries: 1 << 12 }, ring).notCarried, 'a ringbuf map\'s entries cannot be copied');
  });

  it('property: no change exactly when every compared field is equal; carried only with the same type and layout', () => {
    const def = fc.record({
      type: fc.constantFrom(1, 2, 5, 6, 9, 10, 11, 27, 99),
      keySize: fc.constantFrom(0, 4, 8),
      valueSize: fc.constantFrom(0, 8, 16),
      maxEntries: fc.constantFrom(1, 5, 6, 65536),
      mapFlags: fc.constantFrom(0, 1),
    });
    fc.assert(fc.property(def, def, (a, b) => {
      const c = comparePinnedMap(a, b);
      const same = a.type === b.type && a.keySize === b.keySize && a.valueSize === b.valueSize && a.maxEntries === b.maxEntries && a.mapFlags === b.mapFlags;
      assert.equal(c.changes.length === 0, same);
      if (!same && c.notCarried === undefined) {
        assert.equal(a.type, b.type);
        assert.equal(a.keySize, b.keySize);
        assert.equal(a.valueSize, b.valueSize);
        assert.ok([1, 2, 5, 6, 9, 10, 11].includes(b.type));
      }
    }));
  });
});

describe('compareInnerDef (a map-in-map\'s inner template)', () => {
  const table = { type: 2, keySize: 4, valueSize: 4 * 16381, maxEntries: 1, mapFlags: (1 << 12) | (1 << 10) };
  it('the previous service-table layout (u32 elements) and another M are told apart from the u32[M] template', () => {
    assert.deepEqual(compareInnerDef({ ...table, valueSize: 4 }, table), [`inner value_size 4 → ${4 * 16381}`]);
    assert.deepEqual(compareInnerDef({ ...table, valueSize: 4 * 251 }, table), [`inner value_size 1004 → ${4 * 16381}`]);
  });
  it('max_entries counts only without BPF_F_INNER_MAP, as in the kernel', () => {
    assert.deepEqual(compareInnerDef({ ...table, maxEntries: 16381 }, table), []);
    const fixed = { ...table, mapFlags: 1 << 10 };
    assert.deepEqual(compareInnerDef({ ...fixed, maxEntries: 2 }, fixed), ['inner max_entries 2 → 1']);
    assert.deepEqual(compareInnerDef({ ...fixed, maxEntries: 2 }, table), ['inner map_flags 0x400 → 0x1400']);
  });
});

describe('describePinMigration', () => {
  it('names the map, the change and what happened to the entries', () => {
    assert.equal(describePinMigration({ map: 'nrd_dp_drops', path: '/p', action: 'migrated', reason: 'max_entries 5 → 6', carried: 5, lost: 0 }),
      'pinned map nrd_dp_drops does not match the new object (max_entries 5 → 6): migrated 5 entries into a new map');
    assert.equal(describePinMigration({ map: 'nrd_ct', path: '/p', action: 'migrated', reason: 'max_entries 10 → 2', carried: 2, lost: 8, lostWhy: 'bpf_map_update_elem: E2BIG' }),
      'pinned map nrd_ct does not match the new object (max_entries 10 → 2): migrated 2 entries into a new map, 8 did not fit (bpf_map_update_elem: E2BIG)');
    assert.equal(describePinMigration({ map: 'nrd_ep_stats', path: '/p', action: 'replaced', reason: 'value_size 40 → 32', carried: 0, lost: 3, lostWhy: 'the key or value layout changed' }),
      'pinned map nrd_ep_stats does not match the new object (value_size 40 → 32): replaced by an empty map, 3 entries dropped (the key or value layout changed)');
  });
});

describe('decodeMapInfo (struct bpf_map_info)', () => {
  it('decodes the fields at their offsets', () => {
    const b = Buffer.alloc(88);
    [6, 42, 4, 16, 6, 1].forEach((v, i) => b.writeUInt32LE(v, i * 4));
    b.write('nrd_dp_drops', 24);
    assert.deepEqual(decodeMapInfo(b), { type: 6, id: 42, keySize: 4, valueSize: 16, maxEntries: 6, mapFlags: 1, name: 'nrd_dp_drops' });
  });

  it('a 16-byte name without NUL is taken whole; a short buffer is an error', () => {
    const b = Buffer.alloc(40);
    b.write('abcdefghijklmnop', 24);
    assert.equal(decodeMapInfo(b).name, 'abcdefghijklmnop');
    assert.throws(() => decodeMapInfo(Buffer.alloc(39)), /39 bytes, at least 40/);
  });

  it('fuzz: any buffer decodes or is refused with a clear error, never anything else', () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 120 }), (bytes) => {
      const b = Buffer.from(bytes);
      if (b.length < 40) {
        assert.throws(() => decodeMapInfo(b), /bpf_map_info/);
        return;
      }
      const info = decodeMapInfo(b);
      assert.equal(info.maxEntries, b.readUInt32LE(16));
      assert.ok(Buffer.byteLength(info.name) <= 16 * 3);
    }));
  });
});
