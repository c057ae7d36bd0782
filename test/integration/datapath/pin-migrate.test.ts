// An upgrade that changed pinned maps' definitions, on a real bpffs: before the datapath starts,
// maps are pinned as an older nrd would have left them (made with bpf_map_create): nrd_dp_drops
// one entry shorter (a drop reason was added), nrd_ep_stats with another value size, nrd_ct
// exactly as the object defines it, each holding an entry. DatapathSubsystem then starts in a
// fresh process in a node namespace (endpoint-dp-agent.ts, as nrd does after an upgrade): the
// datapath must load, nrd_dp_drops migrated with its counters, nrd_ep_stats replaced, nrd_ct kept
// (same map, same entry), the programs using the new maps, and a restart changing nothing more.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { DatapathView } from '../../../daemon/datapath/subsystem.js';
import {
  type MapInfo,
  closeFd,
  mapCreate,
  mapInfo,
  mapInfoByFd,
  mapLookupElem,
  mapUpdateElem,
  numPossibleCpus,
  objGet,
  objPin,
  objectClose,
  objectFindMapByName,
  objectOpenFile,
} from '../../../daemon/datapath/libbpf.js';
import { Cleanup, addNetns, mountBpffs, objectDir, run, sh } from './env.js';

const NODE_IP = '198.51.100.1';
const MAPS = ['nrd_ct', 'nrd_dp_drops', 'nrd_ep_stats'] as const;
type Name = (typeof MAPS)[number];

interface AgentOut {
  view: DatapathView;
  metrics: string;
  warnings: Array<{ msg?: string; map?: string; action?: string }>;
}

/** The object's own definitions of the maps (bpf_object__open only, nothing loaded). */
function objectDefs(): Record<Name, MapInfo> {
  const obj = objectOpenFile(join(objectDir, 'nrd_endpoint.bpf.o'));
  try {
    return Object.fromEntries(MAPS.map((m) => [m, mapInfo(objectFindMapByName(obj, m))])) as Record<Name, MapInfo>;
  } finally {
    objectClose(obj);
  }
}

/** Opens a pin, runs fn with its fd, closes it. */
function withPin<T>(path: string, fn: (fd: number) => T): T {
  const fd = objGet(path);
  try {
    return fn(fd);
  } finally {
    closeFd(fd);
  }
}

/** A per-CPU value of struct nrd_counter { u64 packets; u64 bytes; }: packets = base + cpu. */
function perCpuCounters(base: number): Buffer {
  const n = numPossibleCpus();
  const b = Buffer.alloc(16 * n);
  for (let c = 0; c < n; c++) {
    b.writeBigUInt64LE(BigInt(base + c), 16 * c);
    b.writeBigUInt64LE(1500n, 16 * c + 8);
  }
  return b;
}

function progMapIds(path: string): number[] {
  return (JSON.parse(sh('bpftool', ['-j', 'prog', 'show', 'pinned', path])) as { map_ids?: number[] }).map_ids ?? [];
}

describe('pinned maps of an older definition (upgrade)', () => {
  const cleanup = new Cleanup();
  let nsN = '';
  let pinPath = '';
  const defs = objectDefs();
  const ctKey = Buffer.alloc(defs.nrd_ct.keySize, 0x5a);
  const ctValue = Buffer.from(Array.from({ length: defs.nrd_ct.valueSize }, (_v, i) => (i * 7 + 3) & 0xff));
  const oldIds: Partial<Record<Name, number>> = {};

  before(() => {
    try {
      pinPath = join(mountBpffs(cleanup), 'nrd');
      nsN = addNetns(cleanup, 'pinmig');
      sh('ip', ['-n', nsN, 'link', 'set', 'lo', 'up']);
      sh('ip', ['-n', nsN, 'link', 'add', 'up0', 'type', 'veth', 'peer', 'name', 'up1']);
      sh('ip', ['-n', nsN, 'link', 'set', 'up1', 'up']);
      sh('ip', ['-n', nsN, 'addr', 'add', `${NODE_IP}/24`, 'dev', 'up0']);
      sh('ip', ['-n', nsN, 'link', 'set', 'up0', 'up']);
      mkdirSync(join(pinPath, 'maps'), { recursive: true });
      const pin = (name: Name, def: MapInfo, key: Buffer, value: Buffer): void => {
        const fd = mapCreate(def, name);
        try {
          mapUpdateElem(fd, key, value);
          objPin(fd, join(pinPath, 'maps', name));
          oldIds[name] = mapInfoByFd(fd).id;
        } finally {
          closeFd(fd);
        }
      };
      // What the old nrd left: conntrack as defined today, one drop reason fewer, an older
      // per-endpoint counter layout.
      const idx1 = Buffer.alloc(4);
      idx1.writeUInt32LE(1);
      pin('nrd_ct', defs.nrd_ct, ctKey, ctValue);
      pin('nrd_dp_drops', { ...defs.nrd_dp_drops, maxEntries: defs.nrd_dp_drops.maxEntries - 1 }, idx1, perCpuCounters(7));
      const epKey = Buffer.alloc(defs.nrd_ep_stats.keySize, 1);
      const oldEpValue = Math.ceil((defs.nrd_ep_stats.valueSize + 8) / 8) * 8 * numPossibleCpus();
      pin('nrd_ep_stats', { ...defs.nrd_ep_stats, valueSize: defs.nrd_ep_stats.valueSize + 8 }, epKey, Buffer.alloc(oldEpValue, 9));
    } catch (e) {
      cleanup.run();
      throw e;
    }
  });
  after(() => cleanup.run());

  function agent(): AgentOut {
    const cmd = {
      site: {
        node: { name: 'n1', address: NODE_IP, interface: 'up0' },
        cluster: { podCIDRs: ['10.244.0.0/16'] },
        datapath: { pinPath },
      },
      objectDir,
      endpoints: [],
      warnings: true,
    };
    const agentPath = new URL('./endpoint-dp-agent.js', import.meta.url).pathname;
    const r = run('ip', ['netns', 'exec', nsN, process.execPath, agentPath, JSON.stringify(cmd)]);
    if (r.status !== 0) throw new Error(`agent failed (${r.status}): ${r.stderr}`);
    return JSON.parse(r.stdout) as AgentOut;
  }
  const mapPin = (m: Name): string => join(pinPath, 'maps', m);
  const progPin = (object: string, prog: string): string => {
    const dir = readdirSync(join(pinPath, 'progs')).filter((d) => d.startsWith(`@${object}-`));
    assert.equal(dir.length, 1, `one pinned program set of ${object}: ${dir.join(', ')}`);
    return join(pinPath, 'progs', dir[0]!, prog);
  };

  it('the datapath loads: nrd_dp_drops migrated with its counters, nrd_ep_stats replaced, nrd_ct kept', () => {
    const out = agent();
    assert.equal(out.view.lastError, null);
    assert.ok(out.view.status?.endpointDp, `endpoint datapath not loaded: ${out.view.status?.reason}`);
    // nrd_netdev loaded too (over the maps nrd_endpoint had already migrated).
    assert.equal(out.view.masquerade.mode, 'bpf', out.view.masquerade.reason);
    assert.match(out.metrics, /nrd_datapath_pin_migrations_total\{map="nrd_dp_drops",action="migrated"\} 1\n/);
    assert.match(out.metrics, /nrd_datapath_pin_migrations_total\{map="nrd_ep_stats",action="replaced"\} 1\n/);
    assert.doesNotMatch(out.metrics, /pin_migrations_total\{map="nrd_ct"/);
    // Logged at warn: which map, what changed, what happened to its entries.
    const said = out.warnings.map((w) => w.msg ?? '');
    const dropsMax = `max_entries ${defs.nrd_dp_drops.maxEntries - 1} → ${defs.nrd_dp_drops.maxEntries}`;
    assert.ok(said.includes(`pinned map nrd_dp_drops does not match the new object (${dropsMax}): migrated ${defs.nrd_dp_drops.maxEntries - 1} entries into a new map`), said.join('\n'));
    assert.ok(said.some((m) => m.startsWith(`pinned map nrd_ep_stats does not match the new object (value_size ${defs.nrd_ep_stats.valueSize + 8} → ${defs.nrd_ep_stats.valueSize}): replaced by an empty map, 1 entry dropped (the key or value layout changed)`)), said.join('\n'));
    assert.ok(!said.some((m) => m.includes('nrd_ct')), said.join('\n'));

    // nrd_ct: the very map pinned before, entry and all.
    withPin(mapPin('nrd_ct'), (fd) => {
      assert.equal(mapInfoByFd(fd).id, oldIds.nrd_ct);
      const v = Buffer.alloc(defs.nrd_ct.valueSize);
      mapLookupElem(fd, ctKey, v);
      assert.deepEqual(v, ctValue);
    });
    // nrd_dp_drops: a new map of today's size holding the old counters.
    const drops = withPin(mapPin('nrd_dp_drops'), (fd) => {
      const info = mapInfoByFd(fd);
      assert.equal(info.maxEntries, defs.nrd_dp_drops.maxEntries);
      assert.notEqual(info.id, oldIds.nrd_dp_drops);
      const key = Buffer.alloc(4);
      key.writeUInt32LE(1);
      const v = Buffer.alloc(16 * numPossibleCpus());
      mapLookupElem(fd, key, v);
      assert.deepEqual(v, perCpuCounters(7));
      return info.id;
    });
    // nrd_ep_stats: today's layout, started empty.
    const epStats = withPin(mapPin('nrd_ep_stats'), (fd) => {
      const info = mapInfoByFd(fd);
      assert.equal(info.valueSize, defs.nrd_ep_stats.valueSize);
      assert.notEqual(info.id, oldIds.nrd_ep_stats);
      return info.id;
    });
    // The programs use the new maps and the kept one, not the old ones.
    for (const p of [progPin('nrd_endpoint', 'nrd_ep_ingress'), progPin('nrd_netdev', 'nrd_dev_egress')]) {
      const ids = progMapIds(p);
      assert.ok(ids.includes(drops), `${p} does not use the new nrd_dp_drops: ${ids.join(',')}`);
      assert.ok(!ids.includes(oldIds.nrd_dp_drops!), `${p} still uses the old nrd_dp_drops`);
      assert.ok(!ids.includes(oldIds.nrd_ep_stats!), `${p} still uses the old nrd_ep_stats`);
      if (p.includes('nrd_ep_ingress')) assert.ok(ids.includes(epStats), `${p} does not use the new nrd_ep_stats`);
    }
    assert.ok(progMapIds(progPin('nrd_netdev', 'nrd_dev_ingress')).includes(oldIds.nrd_ct!), 'nrd_netdev lost nrd_ct');
  });

  it('a restart after the upgrade migrates nothing more and keeps every map', () => {
    const ids = Object.fromEntries(MAPS.map((m) => [m, withPin(mapPin(m), (fd) => mapInfoByFd(fd).id)]));
    const out = agent();
    assert.equal(out.view.lastError, null);
    assert.doesNotMatch(out.metrics, /nrd_datapath_pin_migrations_total\{/);
    assert.deepEqual(Object.fromEntries(MAPS.map((m) => [m, withPin(mapPin(m), (fd) => mapInfoByFd(fd).id)])), ids);
  });
});
