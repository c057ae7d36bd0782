// Checks the service load-balancing codecs (daemon/datapath/services-layout.ts) against the BTF of
// nrd_endpoint and nrd_netdev, which both define the nrd_lb.h maps: struct sizes and offsets, each
// map's key and value types and sizes, the lb_* knobs, and a round trip of every codec.
// No privileges needed: opening an object parses the ELF without loading anything.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { btfDatasecVars, btfStructLayout, btfTypeName } from '../../../daemon/datapath/btf.js';
import { btfFree, btfParseElf, mapInfo, objectBtf, objectClose, objectFindMapByName, objectOpenFile } from '../../../daemon/datapath/libbpf.js';
import { type StructSpec, u32Codec } from '../../../daemon/datapath/maps.js';
import {
  LB_MAPS, LB_STRUCTS, backendCodec, ctEntryCodec, ctKeyCodec, revNatCodec, svcKeyCodec, svcValueCodec,
} from '../../../daemon/datapath/services-layout.js';
import { objFile } from './objects.js';

/** enum bpf_map_type: BPF_MAP_TYPE_HASH_OF_MAPS. */
const BPF_MAP_TYPE_HASH_OF_MAPS = 13;
const OBJECTS = ['nrd_endpoint', 'nrd_netdev'];
const CODECS: Record<string, { readonly size: number }> = {
  nrd_svc_key: svcKeyCodec, nrd_svc_value: svcValueCodec, nrd_backend: backendCodec,
  nrd_revnat: revNatCodec, nrd_ct_key: ctKeyCodec, nrd_ct_entry: ctEntryCodec, u32: u32Codec,
};

describe('service map codecs against BTF', () => {
  for (const [name, spec] of Object.entries(LB_STRUCTS) as Array<[string, StructSpec]>) {
    it(`struct ${name} matches in both endpoint objects`, () => {
      for (const obj of OBJECTS) {
        const btf = btfParseElf(objFile(obj));
        try {
          const l = btfStructLayout(btf, name);
          assert.equal(l.size, spec.size, `${obj}: size of ${name}`);
          assert.deepEqual(Object.keys(l.fields), spec.fields.map((f) => f.name), `${obj}: fields of ${name}`);
          for (const f of spec.fields) assert.deepEqual(l.fields[f.name], { offset: f.offset, size: f.size }, `${obj}: ${name}.${f.name}`);
        } finally {
          btfFree(btf);
        }
      }
      assert.equal(CODECS[name]?.size, spec.size);
    });
  }

  for (const [mapName, def] of Object.entries(LB_MAPS)) {
    it(`map ${mapName} has the key and value types the codecs encode`, () => {
      for (const objName of OBJECTS) {
        const obj = objectOpenFile(objFile(objName));
        try {
          const info = mapInfo(objectFindMapByName(obj, mapName));
          const btf = objectBtf(obj);
          assert.equal(info.keySize, CODECS[def.key]?.size);
          assert.equal(info.valueSize, CODECS[def.value]?.size);
          if ('mapInMap' in def) {
            assert.equal(info.type, BPF_MAP_TYPE_HASH_OF_MAPS, `${objName}: ${mapName} is a hash of maps`);
            continue;
          }
          assert.equal(btfTypeName(btf, info.btfKeyTypeId), def.key === 'u32' ? 'unsigned int' : def.key);
          assert.equal(btfTypeName(btf, info.btfValueTypeId), (def.value as string) === 'u32' ? 'unsigned int' : def.value);
        } finally {
          objectClose(obj);
        }
      }
    });
  }

  it('both objects expose lb_maglev_m and lb_flags (u32)', () => {
    for (const objName of OBJECTS) {
      const obj = objectOpenFile(objFile(objName));
      try {
        const vars = btfDatasecVars(objectBtf(obj), '.rodata');
        for (const k of ['lb_maglev_m', 'lb_flags']) assert.equal(vars.find((v) => v.name === k)?.size, 4, `${objName}: ${k}`);
      } finally {
        objectClose(obj);
      }
    }
  });

  it('codecs round-trip, with ports in network order and IPv4 in the first 4 address bytes', () => {
    const k = { family: 4 as const, addr: Uint8Array.from([10, 96, 0, 10]), port: 443, proto: 6 };
    const raw = svcKeyCodec.encode(k);
    assert.equal(raw.length, 24);
    assert.deepEqual([...raw.subarray(4, 8)], [10, 96, 0, 10]);
    assert.deepEqual([...raw.subarray(20, 23)], [0x01, 0xbb, 6]);
    assert.deepEqual(svcKeyCodec.decode(raw), k);
    const ct = { family: 6 as const, saddr: new Uint8Array(16).fill(1), daddr: new Uint8Array(16).fill(2), sport: 1, dport: 2, proto: 17, dir: 1 };
    assert.deepEqual(ctKeyCodec.decode(ctKeyCodec.encode(ct)), ct);
    const e = { backendId: 7, revNatId: 9, state: 2, lastSeenNs: 5n, createdNs: 3n };
    assert.deepEqual(ctEntryCodec.decode(ctEntryCodec.encode(e)), e);
  });
});
