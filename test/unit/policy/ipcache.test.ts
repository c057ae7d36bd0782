// The ipcache: endpoint addresses of every node → their identity, reserved identities for this
// node, other nodes and the world, longest-prefix lookups, conflicts, and the diff.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { EndpointRecord, NodeRecord } from '../../../daemon/state/records.js';
import { MIN_IDENTITY } from '../../../daemon/state/identities.js';
import { buildIpcache, diffIpcache, IPCACHE_F_LOCAL, lookupIpcache, ReservedIdentity } from '../../../daemon/policy/ipcache.js';

const node = (name: string, address: string): NodeRecord => ({ name, address, podCidrs: [], version: '0', capabilities: [] });
const ep = (node: string, id: string, ips: string[], identity?: number): EndpointRecord => ({ id, node, ips, netns: `/run/netns/${id}`, labels: {}, ...(identity === undefined ? {} : { identity }) });

describe('ipcache', () => {
  const nodes = [node('n1', '192.0.2.11'), node('n2', '192.0.2.12')];
  const eps = [ep('n1', 'a', ['10.244.1.5', 'fd00:244:1::5'], 300), ep('n2', 'b', ['10.244.2.5'], 301), ep('n2', 'c', ['10.244.2.6'])];

  it('reserved ids sit below the allocator range', () => {
    for (const v of Object.values(ReservedIdentity)) assert.ok(v < MIN_IDENTITY);
  });

  it('every endpoint of every node, this node as host, other nodes as remote-node, the rest as world', () => {
    const c = buildIpcache({ endpoints: eps, nodes, localNode: 'n1' });
    assert.deepEqual(lookupIpcache(c, '10.244.1.5'), { identity: 300, flags: IPCACHE_F_LOCAL });
    assert.deepEqual(lookupIpcache(c, 'fd00:244:1::5'), { identity: 300, flags: IPCACHE_F_LOCAL });
    assert.deepEqual(lookupIpcache(c, '10.244.2.5'), { identity: 301, flags: 0 });
    assert.equal(lookupIpcache(c, '10.244.2.6')!.identity, ReservedIdentity.INIT);
    assert.equal(lookupIpcache(c, '192.0.2.11')!.identity, ReservedIdentity.HOST);
    assert.equal(lookupIpcache(c, '192.0.2.12')!.identity, ReservedIdentity.REMOTE_NODE);
    assert.equal(lookupIpcache(c, '8.8.8.8')!.identity, ReservedIdentity.WORLD);
    assert.equal(lookupIpcache(c, '2001:db8::1')!.identity, ReservedIdentity.WORLD);
    const k = c.entries.get('10.244.1.5/32')!.key;
    assert.deepEqual([k.family, k.prefixlen, [...k.addr]], [4, 32, [10, 244, 1, 5]]);
    assert.equal(c.entries.size, 2 + 4 + 2);
  });

  it('an address claimed twice: one deterministic winner and a reported conflict', () => {
    const c = buildIpcache({ endpoints: [ep('n2', 'z', ['10.244.9.9'], 400), ep('n1', 'y', ['10.244.9.9'], 401)], nodes, localNode: 'n1' });
    assert.equal(lookupIpcache(c, '10.244.9.9')!.identity, 401);
    assert.deepEqual(c.conflicts, [{ address: '10.244.9.9/32', kept: 'endpoint n1/y', dropped: 'endpoint n2/z' }]);
  });

  it('diff: an endpoint moving identity is one write, a deleted one a delete, a rebuild nothing', () => {
    const a = buildIpcache({ endpoints: eps, nodes, localNode: 'n1' });
    assert.deepEqual(diffIpcache(a, buildIpcache({ endpoints: [...eps].reverse(), nodes, localNode: 'n1' })), { set: [], del: [] });
    const b = buildIpcache({ endpoints: [ep('n1', 'a', ['10.244.1.5', 'fd00:244:1::5'], 300), ep('n2', 'b', ['10.244.2.5'], 302)], nodes, localNode: 'n1' });
    const d = diffIpcache(a, b);
    assert.deepEqual(d.set.map((e) => [[...e.key.addr].join('.'), e.value.identity]), [['10.244.2.5', 302]]);
    assert.deepEqual(d.del.map((k) => [...k.addr].join('.')), ['10.244.2.6']);
  });
});
