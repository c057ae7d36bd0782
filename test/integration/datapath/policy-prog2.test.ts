// BPF_PROG_TEST_RUN of the identity policy in nrd_endpoint with maps written from what
// daemon/policy/compile.ts compiles (policy-layout.ts codecs, in diffPolicy's order): CIDR peers
// (IPv4 and IPv6), a port range split into prefixes, the reply of an allowed connection through an
// endpoint that denies its direction, the ingress check at local delivery, and random policy sets
// whose every verdict must equal lookupPolicy's. Root (CAP_BPF); nothing is attached.
//
// A test run always sees the packet arrive on ifindex 1, so "the endpoint sending" is whichever
// endpoint nrd_ep_ifs maps ifindex 1 to: sendAs() rewrites that entry.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { progTestRun } from '../../../daemon/datapath/libbpf.js';
import { NRD_DP_F_ARP_ANY, NRD_DP_F_IPV6, NRD_EP_IF_F_IP4, NRD_EP_IF_F_IP6, epIfCodec, epKeyCodec, epValueCodec, macKnob } from '../../../daemon/datapath/endpoint-layout.js';
import { TypedMap, lpm4KeyCodec, lpm6KeyCodec, parseCidr, u32Codec } from '../../../daemon/datapath/maps.js';
import { type LoadedObject, loadObject } from '../../../daemon/datapath/objects.js';
import { bpfPolicyKeyCodec, bpfPolicyValueCodec, ipcacheValueCodec } from '../../../daemon/datapath/policy-layout.js';
import { type CompiledPolicy, Dir, type DirValue, compilePolicy, diffPolicy, lookupPolicy } from '../../../daemon/policy/compile.js';
import { ReservedIdentity } from '../../../daemon/policy/ipcache.js';
import type { Labels, PolicyPeer, PolicyPort, PolicyRecord, PolicyRule } from '../../../daemon/state/records.js';
import { ipv4Packet, ipv6Packet, mac, tcpSegment, udpDatagram } from './packets.js';
import { objectDir } from './env.js';

const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;
const LO = 1;
const TCP = 6;
const UDP = 17;

interface Ep {
  name: string;
  id: number;
  ifindex: number;
  mac: Buffer;
  ip4: string;
  ip6: string;
  identity: number;
  labels: Labels;
}

const ep = (n: number, labels: Labels): Ep => ({
  name: `ep${n}`, id: n, ifindex: 40 + n, mac: mac(`02:00:00:00:01:${n.toString(16).padStart(2, '0')}`),
  ip4: `10.244.1.${n}`, ip6: `fd00:1::${n.toString(16)}`, identity: 300 + n, labels,
});
const ip = (s: string): Buffer => parseCidr(s).addr;
const family = (a: string): 4 | 6 => (a.includes(':') ? 6 : 4);

/** The endpoint object with its maps, and the writes a test needs. */
class Harness {
  readonly o: LoadedObject;
  readonly prog: number;
  private readonly ifs;
  private readonly eps;
  private readonly ipc4;
  private readonly ipc6;
  private sport = 20000;

  constructor(readonly locals: readonly Ep[]) {
    this.o = loadObject({ path: join(objectDir, 'nrd_endpoint.bpf.o'), knobs: { gw_mac: macKnob(mac('02:aa:bb:cc:dd:01')), cfg_flags: NRD_DP_F_IPV6 | NRD_DP_F_ARP_ANY } });
    this.prog = this.o.programFd('nrd_ep_ingress');
    this.ifs = new TypedMap(this.o.mapFd('nrd_ep_ifs'), u32Codec, epIfCodec);
    this.eps = new TypedMap(this.o.mapFd('nrd_endpoints'), epKeyCodec, epValueCodec);
    this.ipc4 = new TypedMap(this.o.mapFd('nrd_ipcache4'), lpm4KeyCodec, ipcacheValueCodec);
    this.ipc6 = new TypedMap(this.o.mapFd('nrd_ipcache6'), lpm6KeyCodec, ipcacheValueCodec);
    for (const e of locals) {
      for (const a of [e.ip4, e.ip6]) {
        this.eps.set({ family: family(a), addr: ip(a) }, { ifindex: e.ifindex, id: e.id, mac: e.mac, flags: 0 });
        this.ipcache(a, e.identity, true);
      }
    }
  }

  ipcache(addr: string, identity: number, local = false): void {
    const key = { family: family(addr), prefixlen: family(addr) === 4 ? 32 : 128, addr: ip(addr) };
    (key.family === 4 ? this.ipc4 : this.ipc6).set(key, { identity, flags: local ? 1 : 0 });
  }

  /** The endpoint whose host veth the next test run's packet comes from. */
  sendAs(e: Ep): void {
    this.ifs.set(LO, { id: e.id, flags: NRD_EP_IF_F_IP4 | NRD_EP_IF_F_IP6, ip4: ip(e.ip4), ip6: ip(e.ip6) });
  }

  /** Writes a compilation from scratch as the daemon would (diffPolicy's ops, policy-layout codecs). */
  install(compiled: CompiledPolicy): void {
    const ids = new Map(this.locals.map((e) => [e.name, e.id]));
    const numId = (name: string): number => {
      const n = ids.get(name);
      if (n === undefined) throw new Error(`no endpoint ${name}`);
      return n;
    };
    const pol = new TypedMap(this.o.mapFd('nrd_policy'), bpfPolicyKeyCodec, bpfPolicyValueCodec);
    const epPol = new TypedMap(this.o.mapFd('nrd_ep_policy'), u32Codec, u32Codec);
    const c4 = new TypedMap(this.o.mapFd('nrd_pol_cidr4'), lpm4KeyCodec, u32Codec);
    const c6 = new TypedMap(this.o.mapFd('nrd_pol_cidr6'), lpm6KeyCodec, u32Codec);
    for (const op of diffPolicy({ endpoints: new Map(), cidrs: new Map() }, compiled)) {
      if (op.op === 'set-cidr') (op.key.family === 4 ? c4 : c6).set(op.key, op.identity);
      else if (op.op === 'set-entry') pol.set({ endpoint: numId(op.endpoint), key: op.key }, op.value);
      else if (op.op === 'set-flags') epPol.set(numId(op.endpoint), op.flags);
      else throw new Error(`unexpected op ${op.op} from an empty state`);
    }
  }

  /** A packet from `from` (the sender's veth) to dst; a fresh source port unless given. */
  run(from: Ep, src: string, dst: string, proto: number, dport: number, sport = this.sport++): number {
    this.sendAs(from);
    const l4 = proto === TCP ? tcpSegment(src, dst, sport, dport, 0x02) : udpDatagram(src, dst, sport, dport);
    const pkt = family(src) === 4 ? ipv4Packet(src, dst, proto, l4) : ipv6Packet(src, dst, proto, l4);
    return progTestRun(this.prog, { data: pkt }).retval;
  }

  close(): void {
    this.o.close();
  }
}

function compile(locals: readonly Ep[], policies: PolicyRecord[], extraIdentities: ReadonlyMap<number, Labels> = new Map()): CompiledPolicy {
  const identities = new Map<number, Labels>([...locals.map((e): [number, Labels] => [e.identity, e.labels]), ...extraIdentities]);
  return compilePolicy({ policies, endpoints: locals.map((e) => ({ id: e.name, labels: e.labels, identity: e.identity, ips: [e.ip4, e.ip6] })), identities });
}

const egress = (name: string, selector: Labels, rules: PolicyRule[]): PolicyRecord => ({ name, selector, ingress: [], egress: rules });
const ingress = (name: string, selector: Labels, rules: PolicyRule[]): PolicyRecord => ({ name, selector, ingress: rules, egress: [] });

describe('nrd_policy with compiled maps (BPF_PROG_TEST_RUN)', () => {
  it('allows by CIDR peer, IPv4 and IPv6, whatever the identity behind the address', () => {
    const A = ep(5, { app: 'a' });
    const B = ep(6, { app: 'b' }); // inside both prefixes
    const C = ep(0x30, { app: 'c' }); // 10.244.1.48 / fd00:1::30: outside both
    const h = new Harness([A, B, C]);
    try {
      h.install(compile([A, B, C], [egress('cidr', { app: 'a' }, [{ peers: [{ cidr: '10.244.1.0/28' }, { cidr: 'fd00:1::/124' }], ports: [{ port: 80, protocol: 'tcp' }] }])]));
      for (const [dst, other] of [[B.ip4, C.ip4], [B.ip6, C.ip6]] as const) {
        const src = family(dst) === 4 ? A.ip4 : A.ip6;
        assert.equal(h.run(A, src, dst, TCP, 80), TC_ACT_REDIRECT, `${dst}: in the prefix`);
        assert.equal(h.run(A, src, other, TCP, 80), TC_ACT_SHOT, `${other}: outside the prefix`);
        assert.equal(h.run(A, src, dst, TCP, 81), TC_ACT_SHOT, `${dst}: other port`);
        assert.equal(h.run(A, src, dst, UDP, 80), TC_ACT_SHOT, `${dst}: other protocol`);
      }
      // The CIDR identity wins over the ipcache one: B is still allowed under another identity.
      h.ipcache(B.ip4, 999);
      assert.equal(h.run(A, A.ip4, B.ip4, TCP, 80), TC_ACT_REDIRECT, 'by address, not identity');
    } finally {
      h.close();
    }
  });

  it('allows a port range through its prefixes and nothing beside it', () => {
    const A = ep(5, { app: 'a' });
    const B = ep(6, { app: 'b' });
    const h = new Harness([A, B]);
    try {
      const compiled = compile([A, B], [egress('range', { app: 'a' }, [{ peers: [{ labels: { app: 'b' } }], ports: [{ port: 8000, endPort: 8100, protocol: 'tcp' }] }])]);
      assert.ok(compiled.endpoints.get(A.name)!.entries.size > 1, 'the range is several prefixes');
      h.install(compiled);
      for (const p of [7999, 8101, 8192, 7936, 9000]) assert.equal(h.run(A, A.ip4, B.ip4, TCP, p), TC_ACT_SHOT, `port ${p}`);
      for (const p of [8000, 8050, 8063, 8064, 8096, 8100]) assert.equal(h.run(A, A.ip4, B.ip4, TCP, p), TC_ACT_REDIRECT, `port ${p}`);
      assert.equal(h.run(A, A.ip4, B.ip4, UDP, 8050), TC_ACT_SHOT, 'UDP in the range');
      assert.equal(h.run(A, A.ip6, B.ip6, TCP, 8050), TC_ACT_REDIRECT, 'IPv6 in the range');
      assert.equal(h.run(A, A.ip6, B.ip6, TCP, 8101), TC_ACT_SHOT, 'IPv6 beside the range');
    } finally {
      h.close();
    }
  });

  it('passes the reply of an allowed connection through an endpoint that denies its direction', () => {
    // An egress-only policy isolates A's ingress too (no ingress rule: all ingress denied), so
    // B's answer gets to A only as the reply of A's allowed connection.
    const A = ep(5, { app: 'a' });
    const B = ep(6, { app: 'b' });
    const h = new Harness([A, B]);
    try {
      h.install(compile([A, B], [egress('out', { app: 'a' }, [{ peers: [{ labels: { app: 'b' } }], ports: [{ port: 80, protocol: 'tcp' }] }])]));
      for (const [a, b] of [[A.ip4, B.ip4], [A.ip6, B.ip6]] as const) {
        assert.equal(h.run(B, b, a, TCP, 40000, 80), TC_ACT_SHOT, `${a}: no connection yet, A's ingress denies`);
        assert.equal(h.run(A, a, b, TCP, 80, 40000), TC_ACT_REDIRECT, `${a}: A connects`);
        assert.equal(h.run(B, b, a, TCP, 40000, 80), TC_ACT_REDIRECT, `${a}: the reply`);
        assert.equal(h.run(B, b, a, TCP, 40001, 80), TC_ACT_SHOT, `${a}: not a reply (other port)`);
        assert.equal(h.run(B, b, a, UDP, 40000, 80), TC_ACT_SHOT, `${a}: not a reply (other protocol)`);
      }
    } finally {
      h.close();
    }
  });

  it('checks ingress at local delivery, from an endpoint that has no policy', () => {
    const A = ep(5, { app: 'a' });
    const B = ep(6, { app: 'b' });
    const C = ep(7, { app: 'c' });
    const h = new Harness([A, B, C]);
    try {
      h.install(compile([A, B, C], [ingress('in', { app: 'b' }, [{ peers: [{ labels: { app: 'a' } }], ports: [{ port: 443, protocol: 'tcp' }] }])]));
      for (const v of [4, 6] as const) {
        const a = (e: Ep): string => (v === 4 ? e.ip4 : e.ip6);
        assert.equal(h.run(A, a(A), a(B), TCP, 443), TC_ACT_REDIRECT, `v${v}: A -> B:443 allowed`);
        assert.equal(h.run(A, a(A), a(B), TCP, 80), TC_ACT_SHOT, `v${v}: A -> B:80 denied at B`);
        assert.equal(h.run(C, a(C), a(B), TCP, 443), TC_ACT_SHOT, `v${v}: C -> B:443 denied at B`);
        assert.equal(h.run(C, a(C), a(A), TCP, 80), TC_ACT_REDIRECT, `v${v}: A is not selected`);
        assert.equal(h.run(B, a(B), a(C), UDP, 53), TC_ACT_REDIRECT, `v${v}: B's egress is not enforced`);
      }
    } finally {
      h.close();
    }
  });

  it('gives lookupPolicy\'s verdict for random policy sets', () => {
    // Deterministic (a fixed-seed LCG) so that a failure reproduces; the seed is in the message.
    const totals = { allowed: 0, denied: 0 };
    for (const seed of [1, 2, 3, 4, 5, 6]) {
      let s = seed * 7919;
      const rnd = (n: number): number => {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        return (s >>> 8) % n;
      };
      const pick = <T>(xs: readonly T[]): T => xs[rnd(xs.length)]!;
      const apps = ['a', 'b', 'c'];
      const tiers = ['web', 'db'];
      const locals = [5, 6, 7, 8].map((n) => ep(n, { app: pick(apps), tier: pick(tiers) }));
      // Remote endpoints: cluster identities known by address; world addresses have none.
      const remotes = [1, 2, 3].map((n) => ({ ip4: `10.244.2.${n}`, ip6: `fd00:2::${n}`, identity: 400 + n, labels: { app: pick(apps), tier: pick(tiers) } }));
      const world = ['192.0.2.9', '198.51.100.7', '2001:db8::9'];
      const cidrs = ['10.244.0.0/16', '10.244.1.0/29', '10.244.2.2/32', '192.0.2.0/24', '0.0.0.0/0', 'fd00::/8', 'fd00:1::/125', '2001:db8::/32'];
      const ports = [53, 80, 443, 8000, 8080, 9000];
      const peer = (): PolicyPeer => (rnd(3) === 0 ? { cidr: pick(cidrs) } : { labels: rnd(4) === 0 ? {} : rnd(2) ? { app: pick(apps) } : { tier: pick(tiers) } });
      const port = (): PolicyPort => {
        const protocol = pick(['tcp', 'udp'] as const);
        const r = rnd(4);
        if (r === 0) return { protocol };
        const p = pick(ports);
        return r === 1 ? { port: p, endPort: p + rnd(200), protocol } : { port: p, protocol };
      };
      const rule = (): PolicyRule => ({ peers: Array.from({ length: rnd(3) }, peer), ports: Array.from({ length: rnd(3) }, port) });
      const policies: PolicyRecord[] = Array.from({ length: 1 + rnd(3) }, (_, i): PolicyRecord => ({
        name: `p${i}`,
        selector: rnd(4) === 0 ? ({} as Labels) : { app: pick(apps) },
        ingress: Array.from({ length: rnd(3) }, rule),
        egress: Array.from({ length: rnd(3) }, rule),
      }));
      const compiled = compile(locals, policies, new Map(remotes.map((r): [number, Labels] => [r.identity, r.labels])));
      const h = new Harness(locals);
      try {
        for (const r of remotes) for (const a of [r.ip4, r.ip6]) h.ipcache(a, r.identity);
        h.install(compiled);
        const identityOf = (a: string): number =>
          locals.find((e) => e.ip4 === a || e.ip6 === a)?.identity ?? remotes.find((r) => r.ip4 === a || r.ip6 === a)?.identity ?? ReservedIdentity.WORLD;
        const allowed = (e: string, dir: DirValue, peerIp: string, proto: number, dport: number): boolean =>
          lookupPolicy(compiled, e, dir, { identity: identityOf(peerIp), ip: peerIp }, proto, dport);
        for (let i = 0; i < 150; i++) {
          const from = pick(locals);
          const v6 = rnd(2) === 1;
          const dsts = [
            ...locals.filter((e) => e !== from).map((e) => (v6 ? e.ip6 : e.ip4)),
            ...remotes.map((r) => (v6 ? r.ip6 : r.ip4)),
            ...world.filter((w) => (family(w) === 6) === v6),
          ];
          const dst = pick(dsts);
          const src = v6 ? from.ip6 : from.ip4;
          const proto = pick([TCP, UDP]);
          const dport = rnd(3) === 0 ? 1 + rnd(10000) : pick(ports) + rnd(3) * 50;
          const to = locals.find((e) => e.ip4 === dst || e.ip6 === dst);
          const want = allowed(from.name, Dir.EGRESS, dst, proto, dport) && (!to || allowed(to.name, Dir.INGRESS, src, proto, dport));
          const got = h.run(from, src, dst, proto, dport);
          totals[want ? 'allowed' : 'denied']++;
          // Allowed to a remote address is whatever the FIB path answers; only policy drops here.
          assert.equal(got === TC_ACT_SHOT, !want, `seed ${seed} packet ${i}: ${from.name} ${src} -> ${dst} proto ${proto} port ${dport}: got ${got}, lookupPolicy ${want ? 'allows' : 'denies'}; policies ${JSON.stringify(policies)}`);
          if (to && want) assert.equal(got, TC_ACT_REDIRECT);
        }
      } finally {
        h.close();
      }
    }
    // Both verdicts must have been exercised, or the comparison proved little.
    assert.ok(totals.allowed > 50 && totals.denied > 50, JSON.stringify(totals));
  });
});
