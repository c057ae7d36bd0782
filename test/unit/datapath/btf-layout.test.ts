// Checks the TypeScript map codecs against the BTF that clang emitted for the built objects
// (bpf/*.bpf.o): struct sizes and field offsets, map key/value types and sizes, and the .rodata
// knobs. No privileges needed: opening an object parses the ELF without loading anything.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join } from 'node:path';
import { btfDatasecVars, btfStructLayout, btfTypeName } from '../../../daemon/datapath/btf.js';
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
  LAYOUTS,
  MAPS,
  XDP_STAT_MAX,
  counterCodec,
  denyValueCodec,
  ifKeyCodec,
  lpm4KeyCodec,
  lpm6KeyCodec,
  u32Codec,
} from '../../../daemon/datapath/maps.js';

const objectDir = fileURLToPath(new URL('../../../../bpf/', import.meta.url));
const objFile = (name: string): string => {
  const p = join(objectDir, `${name}.bpf.o`);
  assert.ok(existsSync(p), `${p} missing: run make -C bpf (npm run build)`);
  return p;
};

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

describe('map codecs against BTF', () => {
  for (const [name, layout] of Object.entries(LAYOUTS)) {
    it(`struct ${name} matches in every object that uses it`, () => {
      const users = new Set(
        Object.values(MAPS).filter((m) => m.key === name || m.value === name).map((m) => m.object),
      );
      assert.ok(users.size > 0, `${name} is used by no map`);
      for (const obj of users) {
        const btf = btfParseElf(objFile(obj));
        try {
          assert.deepEqual(btfStructLayout(btf, name), layout, `${obj}: struct ${name}`);
        } finally {
          btfFree(btf);
        }
      }
      assert.equal(CODECS[name].size, layout.size, `codec size of ${name}`);
    });
  }

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
