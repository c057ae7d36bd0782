// Checks the struct layouts the TypeScript map codecs are derived from (maps.ts STRUCTS) against
// the BTF that clang emitted for the built objects (bpf/*.bpf.o): field names in order, offsets,
// sizes, struct size; map key/value types and sizes; the .rodata knobs. No privileges needed:
// opening an object parses the ELF without loading anything.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { type StructLayout, btfDatasecVars, btfStructLayout, btfTypeName } from '../../../daemon/datapath/btf.js';
import {
  btfFree,
  btfParseElf,
  mapInfo,
  objectBtf,
  objectClose,
  objectFindMapByName,
  objectOpenFile,
} from '../../../daemon/datapath/libbpf.js';
import {
  MAPS,
  STRUCTS,
  type StructSpec,
  XDP_STAT_MAX,
  counterCodec,
  denyValueCodec,
  ifKeyCodec,
  lpm4KeyCodec,
  lpm6KeyCodec,
  u32Codec,
} from '../../../daemon/datapath/maps.js';
import { objFile } from './objects.js';


const BPF_MAP_TYPE_PERCPU_HASH = 5;
const BPF_MAP_TYPE_PERCPU_ARRAY = 6;
const CODECS: Record<string, { readonly size: number }> = {
  nrd_lpm4_key: lpm4KeyCodec,
  nrd_lpm6_key: lpm6KeyCodec,
  nrd_deny_value: denyValueCodec,
  nrd_counter: counterCodec,
  nrd_if_key: ifKeyCodec,
  u32: u32Codec,
};

/** Every difference between a declared layout and the struct BTF describes, one line each. */
function layoutMismatches(spec: StructSpec, btf: StructLayout): string[] {
  const out: string[] = [];
  if (spec.size !== btf.size) out.push(`size ${spec.size} != BTF ${btf.size}`);
  const declared = spec.fields.map((f) => f.name);
  const actual = Object.keys(btf.fields);
  if (declared.join(',') !== actual.join(',')) out.push(`fields [${declared.join(', ')}] != BTF [${actual.join(', ')}]`);
  for (const f of spec.fields) {
    const b = btf.fields[f.name];
    if (!b) continue;
    if (b.offset !== f.offset) out.push(`${f.name}: offset ${f.offset} != BTF ${b.offset}`);
    if (b.size !== f.size) out.push(`${f.name}: size ${f.size} != BTF ${b.size}`);
  }
  return out;
}

describe('map codecs against BTF', () => {
  for (const [name, spec] of Object.entries(STRUCTS) as Array<[string, StructSpec]>) {
    it(`struct ${name} matches in every object that uses it`, () => {
      const users = new Set(
        Object.values(MAPS).filter((m) => m.key === name || m.value === name).map((m) => m.object),
      );
      assert.ok(users.size > 0, `${name} is used by no map`);
      for (const obj of users) {
        const btf = btfParseElf(objFile(obj));
        try {
          assert.deepEqual(layoutMismatches(spec, btfStructLayout(btf, name)), [], `${obj}: struct ${name}`);
        } finally {
          btfFree(btf);
        }
      }
      assert.equal(CODECS[name].size, spec.size, `codec size of ${name}`);
    });
  }

  it('a layout that disagrees with BTF is caught (offset, size, name, struct size)', () => {
    const btf = btfParseElf(objFile('nrd_xdp'));
    try {
      const real = btfStructLayout(btf, 'nrd_deny_value');
      const wrong: StructSpec = {
        name: 'nrd_deny_value',
        size: 12,
        fields: [
          { name: 'rule', offset: 0, size: 8, kind: 'u64' },
          { name: 'flag', offset: 8, size: 4, kind: 'u32' },
        ],
      };
      assert.deepEqual(layoutMismatches(wrong, real), [
        'size 12 != BTF 8',
        'fields [rule, flag] != BTF [rule, flags]',
        'rule: size 8 != BTF 4',
      ]);
    } finally {
      btfFree(btf);
    }
  });

  for (const [mapName, def] of Object.entries(MAPS)) {
    it(`map ${mapName} has the key and value types the codecs encode`, () => {
      const obj = objectOpenFile(objFile(def.object));
      try {
        const map = objectFindMapByName(obj, mapName);
        const info = mapInfo(map);
        const btf = objectBtf(obj);
        assert.equal(info.keySize, CODECS[def.key].size);
        assert.equal(info.valueSize, CODECS[def.value].size);
        assert.equal(btfTypeName(btf, info.btfKeyTypeId), def.key === 'u32' ? 'unsigned int' : def.key);
        assert.equal(btfTypeName(btf, info.btfValueTypeId), def.value);
        const perCpu = info.type === BPF_MAP_TYPE_PERCPU_HASH || info.type === BPF_MAP_TYPE_PERCPU_ARRAY;
        assert.equal(perCpu, def.perCpu);
        if (mapName === 'nrd_xdp_stats') assert.equal(info.maxEntries, XDP_STAT_MAX);
      } finally {
        objectClose(obj);
      }
    });
  }

  it('nrd_tc exposes cfg_flags as a 4-byte .rodata knob', () => {
    const obj = objectOpenFile(objFile('nrd_tc'));
    try {
      const vars = btfDatasecVars(objectBtf(obj), '.rodata');
      assert.deepEqual(vars.find((v) => v.name === 'cfg_flags'), { name: 'cfg_flags', offset: 0, size: 4 });
    } finally {
      objectClose(obj);
    }
  });
});
