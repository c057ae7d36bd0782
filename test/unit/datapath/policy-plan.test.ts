// planPolicy and PolicyDatapath (daemon/datapath/policy.ts): the ordered map writes between two
// policy states (ipcache first, allows before enforcement, deletes last), the byte layout of
// struct nrd_policy_key, and the main-thread applier: a full first apply, then only the diff.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  type PolicyInputs, type PolicyApplyArgs, type WirePolicyOp, PolicyDatapath, emptyPolicyState, explainEndpoint, planPolicy,
} from '../../../daemon/datapath/policy.js';
import { endpointNumericId } from '../../../daemon/datapath/endpoints.js';
import { bpfPolicyKeyCodec as policyKeyCodec } from '../../../daemon/datapath/policy-layout.js';
import type { EndpointRecord, NodeRecord, PolicyRecord } from '../../../daemon/state/records.js';

const node = (name: string, address: string): NodeRecord => ({ name, address, podCidrs: [], version: '0.1.0', capabilities: [] });
const ep = (id: string, nodeName: string, ip: string, labels: Record<string, string>, identity: number): EndpointRecord =>
  ({ id, node: nodeName, ips: [ip], netns: `/run/netns/${id}`, labels, identity });
const dbOnlyFromWeb: PolicyRecord = {
  name: 'db', selector: { app: 'db' },
  ingress: [{ peers: [{ labels: { app: 'web' } }], ports: [{ protocol: 'tcp', port: 5432 }] }], egress: [],
};

function inputs(over: Partial<PolicyInputs> = {}): PolicyInputs {
  return {
    localNode: 'n1',
    policies: [dbOnlyFromWeb],
    endpoints: [ep('db-1', 'n1', '10.244.1.2', { app: 'db' }, 300), ep('web-1', 'n2', '10.244.2.2', { app: 'web' }, 301)],
    identities: [{ id: 300, labels: { app: 'db' }, refs: {} }, { id: 301, labels: { app: 'web' }, refs: {} }],
    nodes: [node('n1', '192.0.2.1'), node('n2', '192.0.2.2')],
    synced: true,
    ...over,
  };
}

const kinds = (ops: WirePolicyOp[]): string[] => ops.map((o) => o.op);

describe('planPolicy', () => {
  it('first plan: ipcache, then the allow entry, then enforcement; the same inputs again plan nothing', () => {
    const { next, ops } = planPolicy(emptyPolicyState(), inputs());
    const k = kinds(ops);
    assert.ok(k.lastIndexOf('set-ipcache') < k.indexOf('set-entry'), k.join(','));
    assert.ok(k.indexOf('set-entry') < k.indexOf('set-flags'), k.join(','));
    // 0/0 and ::/0 (WORLD), two nodes, two endpoints
    assert.equal(k.filter((x) => x === 'set-ipcache').length, 6);
    const entry = ops.find((o) => o.op === 'set-entry');
    assert.deepEqual(entry, { op: 'set-entry', endpoint: endpointNumericId('db-1'), key: { prefixlen: 64, identity: 301, dir: 0, proto: 6, port: 5432 } });
    assert.deepEqual(ops.find((o) => o.op === 'set-flags'), { op: 'set-flags', endpoint: endpointNumericId('db-1'), flags: 1 });
    assert.deepEqual(planPolicy(next, inputs()).ops, []);
  });

  it('a new remote endpoint of an allowed identity is one ipcache write; its removal one delete', () => {
    const a = planPolicy(emptyPolicyState(), inputs()).next;
    const more = inputs({ endpoints: [...inputs().endpoints, ep('web-2', 'n2', '10.244.2.3', { app: 'web' }, 301)] });
    const b = planPolicy(a, more);
    assert.deepEqual(kinds(b.ops), ['set-ipcache']);
    assert.deepEqual(kinds(planPolicy(b.next, inputs()).ops), ['delete-ipcache']);
  });

  it('a local endpoint that goes: enforcement off, then its entries, its ipcache entry last', () => {
    const a = planPolicy(emptyPolicyState(), inputs()).next;
    const { ops } = planPolicy(a, inputs({ endpoints: [ep('web-1', 'n2', '10.244.2.2', { app: 'web' }, 301)] }));
    assert.deepEqual(kinds(ops), ['delete-flags', 'delete-entry', 'delete-ipcache']);
    assert.equal((ops[0] as { endpoint: number }).endpoint, endpointNumericId('db-1'));
  });

  it('a widened policy only adds (CIDR identity before the entry); a removed policy loosens before deleting', () => {
    const a = planPolicy(emptyPolicyState(), inputs()).next;
    const wider: PolicyRecord = { ...dbOnlyFromWeb, ingress: [...dbOnlyFromWeb.ingress, { peers: [{ cidr: '198.51.100.0/24' }], ports: [] }] };
    const b = planPolicy(a, inputs({ policies: [wider] }));
    assert.deepEqual(kinds(b.ops), ['set-cidr', 'set-entry']);
    const c = planPolicy(b.next, inputs({ policies: [] }));
    assert.deepEqual(kinds(c.ops), ['set-flags', 'delete-entry', 'delete-entry', 'delete-cidr']);
    assert.deepEqual(c.ops[0], { op: 'set-flags', endpoint: endpointNumericId('db-1'), flags: 0 });
  });
});

describe('nrd_policy_key as the writer encodes it', () => {
  it('struct nrd_policy_key: prefixlen counts the endpoint (32 more than compile.ts), ids LE, port BE', () => {
    const b = policyKeyCodec.encode({ endpoint: 0x11223344, key: { prefixlen: 64, identity: 301, dir: 1, proto: 6, port: 5432 } });
    assert.equal(b.toString('hex'), [
      '60000000', // prefixlen 96 (full key)
      '44332211', // endpoint
      '2d010000', // identity 301
      '01', // dir egress
      '06', // tcp
      '1538', // port 5432, network order
    ].join(''));
    assert.deepEqual(policyKeyCodec.decode(b), { endpoint: 0x11223344, key: { prefixlen: 64, identity: 301, dir: 1, proto: 6, port: 5432 } });
  });
});

describe('PolicyDatapath', () => {
  class Recorder {
    calls: Omit<PolicyApplyArgs, 'pinPath'>[] = [];
    fail = false;
    async applyPolicyOps(a: Omit<PolicyApplyArgs, 'pinPath'>): Promise<number> {
      if (this.fail) throw new Error('maps not pinned');
      this.calls.push(a);
      return a.ops.length + (a.bumpRevision ? 1 : 0);
    }
  }

  it('waits for synced inputs and the maps; applies in full first, then only the diff, bumping the revision', async () => {
    const r = new Recorder();
    let live = false;
    const dp = new PolicyDatapath(r, undefined, () => live);
    await dp.setInputs(inputs({ synced: false }));
    await dp.setInputs(inputs());
    assert.equal(r.calls.length, 0, 'nothing before the maps exist');
    live = true;
    await dp.sync({ full: true });
    assert.equal(r.calls.length, 1);
    assert.equal(r.calls[0]!.full, true);
    assert.equal(r.calls[0]!.bumpRevision, true);
    await dp.setInputs(inputs());
    assert.equal(r.calls.length, 1, 'unchanged inputs write nothing');
    await dp.setInputs(inputs({ endpoints: [...inputs().endpoints, ep('web-2', 'n2', '10.244.2.3', { app: 'web' }, 301)] }));
    assert.deepEqual({ full: r.calls[1]!.full, ops: kinds(r.calls[1]!.ops) }, { full: false, ops: ['set-ipcache'] });
    assert.equal(dp.metrics.lastApplyWrites, 2);
  });

  it('a failed apply is retried as a full apply', async () => {
    const r = new Recorder();
    const dp = new PolicyDatapath(r);
    await dp.setInputs(inputs());
    r.fail = true;
    await dp.setInputs(inputs({ policies: [] }));
    assert.equal(dp.metrics.errors, 1);
    r.fail = false;
    await dp.setInputs(inputs({ policies: [] }));
    assert.equal(r.calls.at(-1)!.full, true);
  });
});

describe('explainEndpoint', () => {
  it('names the selecting policies, the enforced directions and the peers in words', () => {
    const a = planPolicy(emptyPolicyState(), inputs()).next;
    const v = explainEndpoint(inputs(), 'db-1', a.compiled)!;
    assert.deepEqual(v.policies, ['db']);
    assert.deepEqual(v.enforcement, { ingress: true, egress: false });
    assert.deepEqual(v.ingress, [{ policy: 'db', peers: ['labels app=web'], identities: [301], ports: ['tcp/5432'] }]);
    assert.equal(v.mapEntries, 1);
    assert.equal(explainEndpoint(inputs(), 'web-1')!.enforcement.ingress, false);
    assert.equal(explainEndpoint(inputs(), 'nope'), undefined);
  });
});
