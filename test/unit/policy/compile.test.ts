// Policy compiler: a table of NetworkPolicy cases (default deny, allow by label, by CIDR, by port
// range, additive policies, ingress vs egress, protocols), port-range splitting, the diff's
// ordering and minimality, and a property test: the compiled maps, looked up as the datapath will,
// agree with a direct interpreter of the rules on random (peer, protocol, port) queries.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cidrContainsIp, parseCidr, parseIp } from '../../../daemon/lib/ip.js';
import type { Labels, PolicyPeer, PolicyPort, PolicyRecord, PolicyRule, Protocol } from '../../../daemon/state/records.js';
import {
  compilePolicy, diffPolicy, Dir, type DirValue, lookupPolicy, POLICY_F_EGRESS, POLICY_F_INGRESS, rangeToPrefixes, type CompileInput,
} from '../../../daemon/policy/compile.js';
import { ReservedIdentity } from '../../../daemon/policy/ipcache.js';

const TCP = 6;
const UDP = 17;
const SCTP = 132;
const ICMP = 1;
const PROTO: Record<Protocol, number> = { tcp: TCP, udp: UDP, sctp: SCTP };

const identities = new Map<number, Labels>([
  [256, { app: 'web' }],
  [257, { app: 'db' }],
  [258, { app: 'web', tier: 'front' }],
]);
const local = { id: 'ep1', labels: { app: 'db' }, identity: 257, ips: ['10.244.0.5'] };
const pol = (name: string, selector: Labels, ingress: PolicyRule[] | undefined, egress: PolicyRule[] = []): PolicyRecord => ({ name, selector, ingress: ingress ?? [], egress });
const compile = (policies: PolicyRecord[]) => compilePolicy({ policies, endpoints: [local], identities });
const web = { identity: 256, ip: '10.244.1.7' };
const world = { identity: ReservedIdentity.WORLD, ip: '203.0.113.9' };

describe('policy compile: NetworkPolicy cases', () => {
  const cases: { name: string; policies: PolicyRecord[]; dir: DirValue; peer: { identity: number; ip: string }; proto: number; port: number; allow: boolean }[] = [
    { name: 'no policy: everything allowed', policies: [], dir: Dir.INGRESS, peer: world, proto: TCP, port: 5432, allow: true },
    { name: 'policy selecting another endpoint: no effect', policies: [pol('p', { app: 'web' }, [])], dir: Dir.INGRESS, peer: world, proto: TCP, port: 1, allow: true },
    { name: 'default deny ingress (no rules)', policies: [pol('deny', { app: 'db' }, [])], dir: Dir.INGRESS, peer: web, proto: TCP, port: 5432, allow: false },
    { name: 'default deny ingress leaves egress open', policies: [pol('deny', { app: 'db' }, [])], dir: Dir.EGRESS, peer: web, proto: TCP, port: 80, allow: true },
    { name: 'selector {} selects every endpoint', policies: [pol('deny', {}, [])], dir: Dir.INGRESS, peer: web, proto: TCP, port: 1, allow: false },
    { name: 'allow by label, right port', policies: [pol('p', { app: 'db' }, [{ peers: [{ labels: { app: 'web' } }], ports: [{ protocol: 'tcp', port: 5432 }] }])], dir: Dir.INGRESS, peer: web, proto: TCP, port: 5432, allow: true },
    { name: 'allow by label, other port denied', policies: [pol('p', { app: 'db' }, [{ peers: [{ labels: { app: 'web' } }], ports: [{ protocol: 'tcp', port: 5432 }] }])], dir: Dir.INGRESS, peer: web, proto: TCP, port: 5433, allow: false },
    { name: 'allow by label, UDP on a TCP rule denied', policies: [pol('p', { app: 'db' }, [{ peers: [{ labels: { app: 'web' } }], ports: [{ protocol: 'tcp', port: 5432 }] }])], dir: Dir.INGRESS, peer: web, proto: UDP, port: 5432, allow: false },
    { name: 'label subset matches (tier=front web)', policies: [pol('p', { app: 'db' }, [{ peers: [{ labels: { app: 'web' } }], ports: [] }])], dir: Dir.INGRESS, peer: { identity: 258, ip: '10.244.2.2' }, proto: TCP, port: 1, allow: true },
    { name: 'labels {} do not match the world', policies: [pol('p', { app: 'db' }, [{ peers: [{ labels: {} }], ports: [] }])], dir: Dir.INGRESS, peer: world, proto: TCP, port: 1, allow: false },
    { name: 'empty peers: everyone, world included', policies: [pol('p', { app: 'db' }, [{ peers: [], ports: [{ protocol: 'tcp', port: 80 }] }])], dir: Dir.INGRESS, peer: world, proto: TCP, port: 80, allow: true },
    { name: 'empty ports: every protocol, ICMP included', policies: [pol('p', { app: 'db' }, [{ peers: [{ labels: { app: 'web' } }], ports: [] }])], dir: Dir.INGRESS, peer: web, proto: ICMP, port: 0, allow: true },
    { name: 'ICMP denied by a ports rule', policies: [pol('p', { app: 'db' }, [{ peers: [], ports: [{ protocol: 'tcp' }] }])], dir: Dir.INGRESS, peer: web, proto: ICMP, port: 0, allow: false },
    { name: 'protocol without port: all its ports (SCTP)', policies: [pol('p', { app: 'db' }, [{ peers: [], ports: [{ protocol: 'sctp' }] }])], dir: Dir.INGRESS, peer: web, proto: SCTP, port: 38412, allow: true },
    { name: 'by CIDR', policies: [pol('p', { app: 'db' }, [{ peers: [{ cidr: '203.0.113.0/24' }], ports: [] }])], dir: Dir.INGRESS, peer: world, proto: TCP, port: 22, allow: true },
    { name: 'by CIDR, outside', policies: [pol('p', { app: 'db' }, [{ peers: [{ cidr: '203.0.114.0/24' }], ports: [] }])], dir: Dir.INGRESS, peer: world, proto: TCP, port: 22, allow: false },
    { name: 'nested CIDRs: the wider one still matches inside the narrower', policies: [pol('p', { app: 'db' }, [{ peers: [{ cidr: '203.0.0.0/16' }], ports: [{ protocol: 'tcp', port: 22 }] }, { peers: [{ cidr: '203.0.113.0/24' }], ports: [{ protocol: 'tcp', port: 80 }] }])], dir: Dir.INGRESS, peer: world, proto: TCP, port: 22, allow: true },
    { name: 'port range: inside', policies: [pol('p', { app: 'db' }, [{ peers: [], ports: [{ protocol: 'tcp', port: 8000, endPort: 8080 }] }])], dir: Dir.INGRESS, peer: web, proto: TCP, port: 8080, allow: true },
    { name: 'port range: just outside', policies: [pol('p', { app: 'db' }, [{ peers: [], ports: [{ protocol: 'tcp', port: 8000, endPort: 8080 }] }])], dir: Dir.INGRESS, peer: web, proto: TCP, port: 8081, allow: false },
    { name: 'two policies are additive', policies: [pol('a', { app: 'db' }, [{ peers: [], ports: [{ protocol: 'tcp', port: 1 }] }]), pol('b', { app: 'db' }, [{ peers: [], ports: [{ protocol: 'udp', port: 53 }] }])], dir: Dir.INGRESS, peer: web, proto: UDP, port: 53, allow: true },
    { name: 'egress rule: enforced egress, allowed destination', policies: [pol('e', { app: 'db' }, [], [{ peers: [{ labels: { app: 'web' } }], ports: [{ protocol: 'udp', port: 53 }] }])], dir: Dir.EGRESS, peer: web, proto: UDP, port: 53, allow: true },
    { name: 'egress rule: other destination denied', policies: [pol('e', { app: 'db' }, [], [{ peers: [{ labels: { app: 'web' } }], ports: [{ protocol: 'udp', port: 53 }] }])], dir: Dir.EGRESS, peer: world, proto: UDP, port: 53, allow: false },
    { name: 'an ingress rule does not allow egress', policies: [pol('i', { app: 'db' }, [{ peers: [], ports: [] }], [{ peers: [], ports: [{ protocol: 'tcp', port: 1 }] }])], dir: Dir.EGRESS, peer: web, proto: TCP, port: 2, allow: false },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const compiled = compile(c.policies);
      assert.equal(lookupPolicy(compiled, 'ep1', c.dir, c.peer, c.proto, c.port), c.allow);
      assert.equal(interpret(c.policies, local.labels, c.dir, c.peer, c.proto, c.port), c.allow, 'the interpreter agrees');
    });
  }

  it('enforcement flags: K8s default policyTypes (Ingress always, Egress with egress rules)', () => {
    assert.equal(compile([pol('p', { app: 'db' }, [])]).endpoints.get('ep1')!.flags, POLICY_F_INGRESS);
    assert.equal(compile([pol('p', { app: 'db' }, [], [{ peers: [], ports: [] }])]).endpoints.get('ep1')!.flags, POLICY_F_INGRESS | POLICY_F_EGRESS);
    assert.equal(compile([]).endpoints.get('ep1')!.flags, 0);
  });
});

describe('rangeToPrefixes', () => {
  it('splits ranges into aligned blocks', () => {
    assert.deepEqual(rangeToPrefixes(80, 80), [{ port: 80, bits: 16 }]);
    assert.deepEqual(rangeToPrefixes(0, 65535), [{ port: 0, bits: 0 }]);
    assert.deepEqual(rangeToPrefixes(8000, 8080), [{ port: 8000, bits: 10 }, { port: 8064, bits: 12 }, { port: 8080, bits: 16 }]);
    assert.equal(rangeToPrefixes(1, 65534).length, 30);
  });
  it('property: the blocks cover exactly [lo, hi], at most 30 of them', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 1, max: 65535 }), fc.integer({ min: 0, max: 65535 }), (a, b, q) => {
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        const blocks = rangeToPrefixes(lo, hi);
        assert.ok(blocks.length <= 30);
        const hit = blocks.filter((x) => q >> (16 - x.bits) === x.port >> (16 - x.bits) || x.bits === 0).length;
        assert.equal(hit, q >= lo && q <= hi ? 1 : 0);
      }),
      { numRuns: 300 },
    );
  });
});

describe('diffPolicy', () => {
  it('tightening writes allows before enforcement; loosening drops enforcement before allows; unchanged writes nothing', () => {
    const open = compile([]);
    const strict = compile([pol('p', { app: 'db' }, [{ peers: [{ labels: { app: 'web' } }], ports: [{ protocol: 'tcp', port: 5432 }] }, { peers: [{ cidr: '192.0.2.0/24' }], ports: [] }])]);
    const up = diffPolicy(open, strict).map((o) => o.op);
    assert.deepEqual(up, ['set-cidr', 'set-entry', 'set-entry', 'set-entry', 'set-flags']);
    const down = diffPolicy(strict, open).map((o) => o.op);
    assert.deepEqual(down, ['set-flags', 'delete-entry', 'delete-entry', 'delete-entry', 'delete-cidr']);
    const again = compile([pol('p', { app: 'db' }, [{ peers: [{ labels: { app: 'web' } }], ports: [{ protocol: 'tcp', port: 5432 }] }, { peers: [{ cidr: '192.0.2.0/24' }], ports: [] }])]);
    assert.deepEqual(diffPolicy(strict, again), []);
    const gone = compilePolicy({ policies: [], endpoints: [], identities }, strict);
    assert.deepEqual(diffPolicy(strict, gone).map((o) => o.op), ['delete-endpoint', 'delete-cidr']);
  });

  it('one port added to one policy: one entry per selected peer identity, nothing else', () => {
    const base = [pol('p', { app: 'db' }, [{ peers: [{ labels: { app: 'web' } }], ports: [{ protocol: 'tcp', port: 5432 }] }])];
    const more = [pol('p', { app: 'db' }, [{ peers: [{ labels: { app: 'web' } }], ports: [{ protocol: 'tcp', port: 5432 }, { protocol: 'tcp', port: 5433 }] }])];
    const ops = diffPolicy(compile(base), compile(more));
    assert.deepEqual(ops.map((o) => o.op), ['set-entry', 'set-entry']); // identities 256 and 258
  });
});

// ---- a direct interpreter of the records (the specification the compiled form must agree with) ----

function interpret(policies: PolicyRecord[], epLabels: Labels, dir: DirValue, peer: { identity: number; ip: string }, proto: number, port: number): boolean {
  const selecting = policies.filter((p) => Object.entries(p.selector).every(([k, v]) => epLabels[k] === v));
  const applies = dir === Dir.INGRESS ? selecting : selecting.filter((p) => p.egress.length > 0);
  if (applies.length === 0) return true;
  const peerOk = (x: PolicyPeer): boolean => {
    if ('labels' in x) {
      const l = identities.get(peer.identity);
      return peer.identity >= 256 && l !== undefined && Object.entries(x.labels).every(([k, v]) => l[k] === v);
    }
    const c = parseCidr(x.cidr);
    return c.ok && cidrContainsIp(c.cidr, parseIp(peer.ip)!);
  };
  const portOk = (x: PolicyPort): boolean => PROTO[x.protocol] === proto && (x.port === undefined || (port >= x.port && port <= (x.endPort ?? x.port)));
  return applies.some((p) => (dir === Dir.INGRESS ? p.ingress : p.egress).some((r) => (r.peers.length === 0 || r.peers.some(peerOk)) && (r.ports.length === 0 || r.ports.some(portOk))));
}

describe('policy compile: property', () => {
  const labelsArb = fc.dictionary(fc.constantFrom('app', 'tier'), fc.constantFrom('a', 'b'), { maxKeys: 2 });
  const cidrArb = fc.constantFrom('10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '10.1.2.3/32', '192.168.0.0/16', '0.0.0.0/0', 'fd00::/8');
  const peerArb: fc.Arbitrary<PolicyPeer> = fc.oneof(labelsArb.map((labels) => ({ labels })), cidrArb.map((cidr) => ({ cidr })));
  const portArb: fc.Arbitrary<PolicyPort> = fc
    .record({ protocol: fc.constantFrom<Protocol>('tcp', 'udp', 'sctp'), port: fc.option(fc.integer({ min: 1, max: 40 }), { nil: undefined }), span: fc.option(fc.integer({ min: 0, max: 20 }), { nil: undefined }) })
    .map(({ protocol, port, span }) => (port === undefined ? { protocol } : span === undefined ? { protocol, port } : { protocol, port, endPort: port + span }));
  const ruleArb: fc.Arbitrary<PolicyRule> = fc.record({ peers: fc.array(peerArb, { maxLength: 3 }), ports: fc.array(portArb, { maxLength: 3 }) });
  const policyArb = fc.record({ selector: labelsArb, ingress: fc.array(ruleArb, { maxLength: 3 }), egress: fc.array(ruleArb, { maxLength: 2 }) });
  const identityArb = fc.array(labelsArb, { minLength: 1, maxLength: 4 });
  const ipArb = fc.constantFrom('10.1.2.3', '10.1.2.4', '10.1.9.9', '10.9.9.9', '192.168.1.1', '203.0.113.1', 'fd00::1', '2001:db8::1');
  const queryArb = fc.record({
    dir: fc.constantFrom<DirValue>(Dir.INGRESS, Dir.EGRESS),
    who: fc.integer({ min: 0, max: 4 }),
    ip: ipArb,
    proto: fc.constantFrom(TCP, UDP, SCTP, ICMP),
    port: fc.integer({ min: 0, max: 65 }),
  });

  it('the compiled maps agree with the interpreter on random queries', () => {
    fc.assert(
      fc.property(fc.array(policyArb, { maxLength: 4 }), identityArb, labelsArb, fc.array(queryArb, { minLength: 20, maxLength: 20 }), (ps, idLabels, epLabels, queries) => {
        identities.clear();
        idLabels.forEach((l, i) => identities.set(256 + i, l));
        const policies = ps.map((p, i) => ({ name: `p${i}`, ...p }));
        const input: CompileInput = { policies, endpoints: [{ id: 'ep', labels: epLabels, identity: 256, ips: ['10.244.0.1'] }], identities };
        const compiled = compilePolicy(input);
        for (const q of queries) {
          // who 0..3: a cluster identity (when it exists), 4: the world
          const identity = q.who < idLabels.length ? 256 + q.who : ReservedIdentity.WORLD;
          const peer = { identity, ip: q.ip };
          assert.equal(lookupPolicy(compiled, 'ep', q.dir, peer, q.proto, q.port), interpret(policies, epLabels, q.dir, peer, q.proto, q.port), JSON.stringify({ q, peer }));
        }
      }),
      { numRuns: 400 },
    );
    identities.clear();
    identities.set(256, { app: 'web' }).set(257, { app: 'db' }).set(258, { app: 'web', tier: 'front' });
  });
});
