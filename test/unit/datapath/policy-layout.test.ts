// Checks the policy and flow-event layouts (daemon/datapath/policy-layout.ts, events-layout.ts)
// against the BTF of nrd_endpoint and nrd_netdev, which both include nrd_policy.h and
// nrd_events.h: struct sizes and offsets, each map's key and value types and sizes, and the
// codecs (the policy key's prefix length is compile.ts's plus the endpoint's 32 bits).
// No privileges needed: opening an object parses the ELF without loading anything.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { btfStructLayout, btfTypeName } from '../../../daemon/datapath/btf.js';
import { btfFree, btfParseElf, mapInfo, objectBtf, objectClose, objectFindMapByName, objectOpenFile } from '../../../daemon/datapath/libbpf.js';
import type { StructSpec } from '../../../daemon/datapath/maps.js';
import { POLICY_MAPS, POLICY_STRUCTS, bpfPolicyKeyCodec } from '../../../daemon/datapath/policy-layout.js';
import { EVENT_STRUCTS, decodeFlowEvent } from '../../../daemon/datapath/events-layout.js';
import { DROP_MAX, DropReason } from '../../../daemon/datapath/endpoint-layout.js';
import { Dir } from '../../../daemon/policy/compile.js';
import { objFile } from './objects.js';

const OBJECTS = ['nrd_endpoint', 'nrd_netdev'];
const SIZES: Record<string, number> = { u32: 4, nrd_lpm4_key: 8, nrd_lpm6_key: 20 };
for (const s of Object.values(POLICY_STRUCTS)) SIZES[s.name] = s.size;
const STRUCTS: StructSpec[] = [...Object.values(POLICY_STRUCTS), ...Object.values(EVENT_STRUCTS)];

describe('policy and flow-event layouts against BTF', () => {
  for (const spec of STRUCTS) {
    // the XDP prefilter writes flow events too
    const objects = Object.values(EVENT_STRUCTS).includes(spec as never) ? [...OBJECTS, 'nrd_xdp'] : OBJECTS;
    it(`struct ${spec.name} matches in ${objects.join(', ')}`, () => {
      for (const obj of objects) {
        const btf = btfParseElf(objFile(obj));
        try {
          const l = btfStructLayout(btf, spec.name);
          assert.equal(l.size, spec.size, `${obj}: size of ${spec.name}`);
          assert.deepEqual(Object.keys(l.fields), spec.fields.map((f) => f.name), `${obj}: fields of ${spec.name}`);
          for (const f of spec.fields) assert.deepEqual(l.fields[f.name], { offset: f.offset, size: f.size }, `${obj}: ${spec.name}.${f.name}`);
        } finally {
          btfFree(btf);
        }
      }
    });
  }

  for (const [mapName, def] of Object.entries(POLICY_MAPS)) {
    it(`map ${mapName} has the key and value types the codecs encode`, () => {
      for (const objName of OBJECTS) {
        const obj = objectOpenFile(objFile(objName));
        try {
          const info = mapInfo(objectFindMapByName(obj, mapName));
          const btf = objectBtf(obj);
          assert.equal(info.keySize, SIZES[def.key]);
          assert.equal(info.valueSize, SIZES[def.value]);
          assert.equal(btfTypeName(btf, info.btfKeyTypeId), def.key === 'u32' ? 'unsigned int' : def.key);
          assert.equal(btfTypeName(btf, info.btfValueTypeId), def.value === 'u32' ? 'unsigned int' : def.value);
        } finally {
          objectClose(obj);
        }
      }
    });
  }

  it('nrd_dp_drops has room for every DropReason', () => {
    assert.equal(DropReason.policy, 5);
    assert.equal(DROP_MAX, Object.keys(DropReason).length);
    assert.deepEqual(Object.values(DropReason), [...Array(DROP_MAX).keys()]);
  });

  it('the policy key puts the endpoint first and adds its 32 bits to the prefix length', () => {
    const k = { endpoint: 7, key: { prefixlen: 48 + 12, identity: 300, dir: Dir.EGRESS, proto: 6, port: 8064 } };
    const raw = bpfPolicyKeyCodec.encode(k);
    assert.equal(raw.toString('hex'), '5c000000' + '07000000' + '2c010000' + '01' + '06' + '1f80');
    assert.deepEqual(bpfPolicyKeyCodec.decode(raw), k);
  });

  it('decodes a flow event record', () => {
    const b = Buffer.alloc(104);
    b.writeBigUInt64LE(5n, 0);
    b.writeUInt32LE(7, 8);
    b[28] = 2;
    b[29] = 5;
    b[31] = 4;
    b[32] = 6;
    b.writeUInt16BE(80, 36);
    Buffer.from([10, 0, 0, 1]).copy(b, 40);
    Buffer.from([10, 0, 0, 2]).copy(b, 56);
    const e = decodeFlowEvent(b);
    assert.deepEqual([e.tsNs, e.endpoint, e.type, e.reason, e.family, e.proto, e.dport, e.saddr, e.daddr], [5n, 7, 2, 5, 4, 6, 80, '10.0.0.1', '10.0.0.2']);
    assert.throws(() => decodeFlowEvent(Buffer.alloc(103)));
  });
});
