// Checks the endpoint datapath's map codecs (daemon/datapath/endpoint-layout.ts) against the BTF
// clang emitted for nrd_endpoint and nrd_netdev: struct sizes and field offsets, each map's key
// and value types in every object that defines it, and the .rodata knobs the daemon sets.
// No privileges needed: opening an object parses the ELF without loading anything.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { type StructLayout, btfDatasecVars, btfStructLayout, btfTypeName } from '../../../daemon/datapath/btf.js';
import { btfFree, btfParseElf, mapInfo, objectBtf, objectClose, objectFindMapByName, objectOpenFile } from '../../../daemon/datapath/libbpf.js';
import { type StructSpec, counterCodec, lpm4KeyCodec, lpm6KeyCodec, u32Codec } from '../../../daemon/datapath/maps.js';
import {
  DP_MAPS,
  DP_STRUCTS,
  DROP_MAX,
  epCountersCodec,
  epIfCodec,
  epKeyCodec,
  epValueCodec,
  nat4EntryCodec,
  nat4KeyCodec,
  nat6EntryCodec,
  nat6KeyCodec,
  nonatValueCodec,
} from '../../../daemon/datapath/endpoint-layout.js';
import { objFile } from './objects.js';


const CODECS: Record<string, { readonly size: number }> = {
  nrd_ep_key: epKeyCodec,
  nrd_ep_value: epValueCodec,
  nrd_ep_if: epIfCodec,
  nrd_ep_counters: epCountersCodec,
  nrd_nonat_value: nonatValueCodec,
  nrd_nat4_key: nat4KeyCodec,
  nrd_nat4_entry: nat4EntryCodec,
  nrd_nat6_key: nat6KeyCodec,
  nrd_nat6_entry: nat6EntryCodec,
  nrd_counter: counterCodec,
  nrd_lpm4_key: lpm4KeyCodec,
  nrd_lpm6_key: lpm6KeyCodec,
  u32: u32Codec,
};
const PERCPU = new Set([5 /* PERCPU_HASH */, 6 /* PERCPU_ARRAY */]);

/** Every difference between a declared layout and the struct BTF describes, one line each. */
function layoutMismatches(spec: StructSpec, btf: StructLayout): string[] {
  const out: string[] = [];
  if (spec.size !== btf.size) out.push(`size ${spec.size} != BTF ${btf.size}`);
  const declared = spec.fields.map((f) => f.name).join(',');
  const actual = Object.keys(btf.fields).join(',');
  if (declared !== actual) out.push(`fields [${declared}] != BTF [${actual}]`);
  for (const f of spec.fields) {
    const b = btf.fields[f.name];
    if (b && b.offset !== f.offset) out.push(`${f.name}: offset ${f.offset} != BTF ${b.offset}`);
    if (b && b.size !== f.size) out.push(`${f.name}: size ${f.size} != BTF ${b.size}`);
  }
  return out;
}

describe('endpoint datapath codecs against BTF', () => {
  for (const [name, spec] of Object.entries(DP_STRUCTS) as Array<[string, StructSpec]>) {
    it(`struct ${name} matches in every object that uses it`, () => {
      const users = new Set(Object.values(DP_MAPS).filter((m) => m.key === name || m.value === name).flatMap((m) => [...m.objects]));
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

  for (const [mapName, def] of Object.entries(DP_MAPS)) {
    for (const objName of def.objects) {
      it(`map ${mapName} in ${objName} has the key and value types the codecs encode`, () => {
        const obj = objectOpenFile(objFile(objName));
        try {
          const info = mapInfo(objectFindMapByName(obj, mapName));
          const btf = objectBtf(obj);
          assert.equal(info.keySize, CODECS[def.key].size);
          assert.equal(info.valueSize, CODECS[def.value].size);
          assert.equal(btfTypeName(btf, info.btfKeyTypeId), def.key === 'u32' ? 'unsigned int' : def.key);
          assert.equal(btfTypeName(btf, info.btfValueTypeId), def.value);
          assert.equal(PERCPU.has(info.type), def.perCpu);
          if (mapName === 'nrd_dp_drops') assert.equal(info.maxEntries, DROP_MAX);
        } finally {
          objectClose(obj);
        }
      });
    }
  }

  for (const [objName, knobs] of [
    ['nrd_endpoint', { gw_mac: 8, cfg_flags: 4 }],
    ['nrd_netdev', { gw_mac: 8, cfg_flags: 4, node_ip4: 4, node_ip6: 16, nat_port_min: 2, nat_port_max: 2 }],
  ] as const) {
    it(`${objName} exposes the knobs the daemon sets, with their sizes`, () => {
      const obj = objectOpenFile(objFile(objName));
      try {
        const vars = btfDatasecVars(objectBtf(obj), '.rodata');
        for (const [name, size] of Object.entries(knobs)) assert.equal(vars.find((v) => v.name === name)?.size, size, name);
      } finally {
        objectClose(obj);
      }
    });
  }
});
