// Attach test in network namespaces: the Datapath runs (as a fresh child process per step, i.e. a
// daemon restart) inside node namespace A, whose veth0 faces endpoint namespace B. Checks tcx
// and XDP links on veth0, traffic and counters, in-place link updates across restarts, the deny
// list end to end, the clsact/cls_bpf fallback, and that detach leaves nothing behind.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { type DatapathStatus, type DatapathOptions } from '../../../daemon/datapath/datapath.js';
import { closeFd, objGet } from '../../../daemon/datapath/libbpf.js';
import { type Codec, Dir, PerCpuMap, XdpStat, counterCodec, ifKeyCodec, sumCounters, u32Codec } from '../../../daemon/datapath/maps.js';
import { type Attachment, NRD_TC_PREF } from '../../../daemon/datapath/attach.js';
import { Cleanup, addNetns, agent, mountBpffs, nsExec, nsRun, objectDir, sh } from './env.js';

interface AgentOut {
  status: DatapathStatus;
}

const A_ADDR = '192.0.2.1';
const B_ADDR = '192.0.2.2';

describe('datapath attach in a network namespace', () => {
  const cleanup = new Cleanup();
  let nsA = '';
  let nsB = '';
  let pinPath = '';

  before(() => {
    try {
      pinPath = join(mountBpffs(cleanup), 'nrd');
      nsA = addNetns(cleanup, 'dpa');
      nsB = addNetns(cleanup, 'dpb');
      sh('ip', ['-n', nsA, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1', 'netns', nsB]);
      sh('ip', ['-n', nsA, 'addr', 'add', `${A_ADDR}/24`, 'dev', 'veth0']);
      sh('ip', ['-n', nsB, 'addr', 'add', `${B_ADDR}/24`, 'dev', 'veth1']);
      sh('ip', ['-n', nsA, 'link', 'set', 'veth0', 'up']);
      sh('ip', ['-n', nsB, 'link', 'set', 'veth1', 'up']);
    } catch (e) {
      cleanup.run();
      throw e;
    }
  });
  after(() => cleanup.run());

  const opts = (extra: Partial<DatapathOptions> = {}): DatapathOptions => ({
    // One unrelated deny rule: the prefilter is attached only when it has something to deny.
    pinPath, objectDir, uplink: 'veth0', endpoints: ['veth0'], deny: ['203.0.113.99/32'], ...extra,
  });
  const start = (extra: Partial<DatapathOptions> = {}): DatapathStatus =>
    agent<AgentOut>(nsA, { action: 'start', options: opts(extra) }).status;
  const find = (s: DatapathStatus, hook: Attachment['hook']): Attachment => {
    const a = s.attachments.find((x) => x.ifname === 'veth0' && x.hook === hook);
    assert.ok(a, `no ${hook} attachment on veth0: ${JSON.stringify(s)}`);
    return a;
  };
  const ping = (count = 3): boolean =>
    nsRun(nsB, 'ping', ['-c', String(count), '-i', '0.2', '-W', '1', '-q', A_ADDR]).status === 0;
  /** Packets of a pinned per-CPU counter map, read from the test process (pins are not per-netns). */
  function pinnedPackets<K>(map: string, codec: Codec<K>, key: K): bigint {
    const fd = objGet(join(pinPath, 'maps', map));
    try {
      return sumCounters(new PerCpuMap(fd, codec, counterCodec).get(key) ?? []).packets;
    } finally {
      closeFd(fd);
    }
  }
  const ifPackets = (ifindex: number, dir: number): bigint => pinnedPackets('nrd_if_stats', ifKeyCodec, { ifindex, dir });
  const xdpPackets = (stat: number): bigint => pinnedPackets('nrd_xdp_stats', u32Codec, stat);
  const linkIds = (): Map<number, { type: string; prog_id: number }> => {
    const links = JSON.parse(sh('bpftool', ['-j', 'link', 'show'])) as Array<{ id: number; type: string | number; prog_id: number }>;
    return new Map(links.map((l) => [l.id, { type: String(l.type), prog_id: l.prog_id }]));
  };

  let first: DatapathStatus;

  it('attaches tcx ingress/egress and an XDP link, pinned, and is ready', () => {
    first = start();
    assert.equal(first.ready, true, first.reason);
    for (const hook of ['tc-ingress', 'tc-egress'] as const) {
      const a = find(first, hook);
      assert.equal(a.mechanism, 'tcx');
      assert.equal(a.updated, false);
      assert.ok(existsSync(a.pin));
    }
    const x = find(first, 'xdp');
    assert.match(x.mechanism, /^xdp-(driver|generic)$/);
    // bpftool 7.1 (Debian 12) predates tcx: `bpftool net` shows the XDP link, `bpftool link`
    // shows the tcx links as link type 11 with our program ids.
    const net = JSON.parse(nsExec(nsA, 'bpftool', ['-j', 'net', 'show', 'dev', 'veth0'])) as Array<{ xdp: Array<{ id: number; devname: string }> }>;
    assert.deepEqual(net[0].xdp.map((e) => [e.devname, e.id]), [['veth0', x.progId]]);
    const links = linkIds();
    for (const hook of ['tc-ingress', 'tc-egress'] as const) {
      const a = find(first, hook);
      assert.equal(links.get(a.linkId ?? -1)?.prog_id, a.progId);
    }
  });

  it('passes traffic across the veth and the counters move', () => {
    const ifindex = find(first, 'tc-ingress').ifindex;
    const ingBefore = ifPackets(ifindex, Dir.INGRESS);
    const egBefore = ifPackets(ifindex, Dir.EGRESS);
    const passBefore = xdpPackets(XdpStat.PASS);
    assert.ok(ping(), 'ping across veth0 failed with programs attached');
    assert.ok(ifPackets(ifindex, Dir.INGRESS) - ingBefore >= 3n);
    assert.ok(ifPackets(ifindex, Dir.EGRESS) - egBefore >= 3n);
    assert.ok(xdpPackets(XdpStat.PASS) - passBefore >= 3n);
  });

  it('a restart updates the pinned links in place (same link ids, new programs)', () => {
    const again = start();
    assert.equal(again.ready, true, again.reason);
    for (const hook of ['tc-ingress', 'tc-egress', 'xdp'] as const) {
      const a = find(again, hook);
      const b = find(first, hook);
      assert.equal(a.updated, true, hook);
      assert.equal(a.linkId, b.linkId, hook);
      assert.notEqual(a.progId, b.progId, hook);
      assert.equal(linkIds().get(a.linkId ?? -1)?.prog_id, a.progId, hook);
    }
    assert.ok(ping(2));
  });

  it('drops a denied source at XDP, and forwards again once the rule is removed', () => {
    const dropsBefore = xdpPackets(XdpStat.DROP_DENY4);
    const denied = start({ deny: [`${B_ADDR}/32`, '2001:db8::/32'] });
    assert.deepEqual(denied.deny, { ipv4: 1, ipv6: 1 });
    assert.equal(ping(1), false, 'ping from a denied source got through');
    assert.ok(xdpPackets(XdpStat.DROP_DENY4) > dropsBefore);
    const open = start();
    assert.deepEqual(open.deny, { ipv4: 1, ipv6: 0 });
    assert.equal(find(open, 'xdp').linkId, find(first, 'xdp').linkId);
    assert.ok(ping(2), 'ping still fails after the deny rule was removed');
  });

  it('an empty deny list detaches the prefilter (an XDP program costs even when it passes all), a rule attaches it again', () => {
    const empty = start({ deny: [] });
    assert.equal(empty.ready, true, empty.reason);
    assert.ok(!empty.attachments.some((a) => a.hook === 'xdp'), JSON.stringify(empty.attachments));
    const net = JSON.parse(nsExec(nsA, 'bpftool', ['-j', 'net', 'show', 'dev', 'veth0'])) as Array<{ xdp: unknown[] }>;
    assert.deepEqual(net[0].xdp, []);
    assert.ok(ping(2));
    const back = start();
    assert.match(find(back, 'xdp').mechanism, /^xdp-(driver|generic)$/);
  });

  it('falls back to clsact + cls_bpf in tc mode, and returns to tcx', () => {
    const legacy = start({ tcMode: 'tc' });
    assert.equal(legacy.ready, true, legacy.reason);
    assert.equal(find(legacy, 'tc-ingress').mechanism, 'tc');
    assert.ok(!existsSync(find(first, 'tc-ingress').pin), 'tcx pin left behind in tc mode');
    for (const dir of ['ingress', 'egress']) {
      const filters = JSON.parse(nsExec(nsA, 'tc', ['-j', 'filter', 'show', 'dev', 'veth0', dir])) as Array<{ pref: number; options?: { prog?: { name: string } } }>;
      assert.ok(filters.some((f) => f.pref === NRD_TC_PREF && f.options?.prog?.name === `nrd_tc_${dir}`), dir);
    }
    const ifindex = find(legacy, 'tc-ingress').ifindex;
    const before = ifPackets(ifindex, Dir.INGRESS);
    assert.ok(ping(2));
    assert.ok(ifPackets(ifindex, Dir.INGRESS) - before >= 2n);

    const back = start({ tcMode: 'tcx' });
    assert.equal(back.ready, true, back.reason);
    assert.equal(find(back, 'tc-ingress').mechanism, 'tcx');
    const filters = JSON.parse(nsExec(nsA, 'tc', ['-j', 'filter', 'show', 'dev', 'veth0', 'ingress'])) as unknown[];
    assert.deepEqual(filters, []);
  });

  it('replaces links whose device was recreated, and unpins interfaces no longer wanted', () => {
    sh('ip', ['-n', nsA, 'link', 'add', 'epx0', 'type', 'veth', 'peer', 'name', 'epx1']);
    const withDummy = start({ endpoints: ['veth0', 'epx0'] });
    assert.equal(withDummy.ready, true, withDummy.reason);
    const old = withDummy.attachments.find((a) => a.ifname === 'epx0' && a.hook === 'tc-ingress');
    assert.ok(old);
    sh('ip', ['-n', nsA, 'link', 'del', 'epx0']);
    sh('ip', ['-n', nsA, 'link', 'add', 'epx0', 'type', 'veth', 'peer', 'name', 'epx1']);
    const again = start({ endpoints: ['veth0', 'epx0'] });
    assert.equal(again.ready, true, again.reason);
    const now = again.attachments.find((a) => a.ifname === 'epx0' && a.hook === 'tc-ingress');
    assert.ok(now);
    assert.equal(now.updated, false);
    assert.notEqual(now.linkId, old.linkId);
    assert.notEqual(now.ifindex, old.ifindex);
    // A missing endpoint is reported by name, and does not stop the others.
    sh('ip', ['-n', nsA, 'link', 'del', 'epx0']);
    const missing = start({ endpoints: ['veth0', 'epx0'] });
    assert.equal(missing.ready, false);
    assert.match(missing.reason ?? '', /epx0 tc-ingress: if_nametoindex \(epx0\): ENODEV/);
    assert.ok(missing.attachments.some((a) => a.ifname === 'veth0' && a.hook === 'tc-ingress'));
    const gone = start({ endpoints: ['veth0'] });
    assert.equal(gone.ready, true, gone.reason);
    assert.ok(!existsSync(join(pinPath, 'links', 'epx0')), 'epx0 pins left behind');
  });

  it('attaches to an interface whose name has a dot (nrd.vxlan, eth0.100): bpffs refuses dotted names, the pin directory escapes them', () => {
    sh('ip', ['-n', nsA, 'link', 'add', 'ep.x0', 'type', 'veth', 'peer', 'name', 'epy1']);
    const s = start({ endpoints: ['veth0', 'ep.x0'] });
    assert.equal(s.ready, true, s.reason);
    assert.ok(s.attachments.some((a) => a.ifname === 'ep.x0' && a.hook === 'tc-ingress'));
    assert.ok(existsSync(join(pinPath, 'links', 'ep%2ex0')), 'escaped pin directory');
    // A restart finds the dotted interface back from its escaped pin directory and unpins it.
    sh('ip', ['-n', nsA, 'link', 'del', 'ep.x0']);
    const gone = start({ endpoints: ['veth0'] });
    assert.equal(gone.ready, true, gone.reason);
    assert.ok(!existsSync(join(pinPath, 'links', 'ep%2ex0')), 'ep.x0 pins left behind');
  });

  it('detach removes every link, filter and pin', () => {
    agent(nsA, { action: 'stop-detach', options: opts() });
    const net = JSON.parse(nsExec(nsA, 'bpftool', ['-j', 'net', 'show', 'dev', 'veth0'])) as Array<{ xdp: unknown[]; tc: unknown[] }>;
    assert.deepEqual(net[0].xdp, []);
    assert.deepEqual(net[0].tc, []);
    const links = linkIds();
    for (const a of first.attachments) assert.ok(!links.has(a.linkId ?? -1), `link ${a.linkId} still exists`);
    const xdpLink = JSON.parse(nsExec(nsA, 'ip', ['-j', 'link', 'show', 'veth0'])) as Array<{ xdp?: unknown }>;
    assert.equal(xdpLink[0].xdp, undefined);
    const leftovers: string[] = [];
    const walk = (d: string): void => {
      for (const e of readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(join(d, e.name));
        else leftovers.push(join(d, e.name));
      }
    };
    walk(pinPath);
    assert.deepEqual(leftovers, []);
    assert.ok(ping(2));
  });
});
