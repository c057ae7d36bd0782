// The endpoints subsystem over fakes (record store, endpoint owner, kernel plumbing): add is all or
// nothing, delete removes everything and a second delete is not_found, the resync adopts existing
// links, re-plumbs a record without link, garbage-collects one whose namespace is gone, removes the
// link of a record deleted elsewhere, and hands the datapath the whole set each time it changes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { NrdError } from '../../../daemon/lib/errors.js';
import { silentLogger } from '../../../daemon/lib/log.js';
import type { LocalEndpoint } from '../../../daemon/lib/endpoint-types.js';
import type { EndpointKernelSpec } from '../../../daemon/kernel/endpoint-owner.js';
import type { ReconcileReport } from '../../../daemon/kernel/reconciler.js';
import type { LinkInfo } from '../../../daemon/kernel/types.js';
import { EndpointsSubsystem, type EndpointRecordStore } from '../../../daemon/endpoints/subsystem.js';
import type { EndpointPlumber, PlumbSpec } from '../../../daemon/endpoints/plumbing.js';
import { hostIfName } from '../../../daemon/endpoints/model.js';
import type { EndpointRecord } from '../../../daemon/state/records.js';

class FakeStore implements EndpointRecordStore {
  records = new Map<string, EndpointRecord>();
  /** What the watch cache shows (tests copy records into it to play the watch). */
  cache = new Map<string, EndpointRecord>();
  synced = true;
  next = 2;
  local() {
    return { node: 'n1', synced: this.synced, endpoints: [...this.cache.values()] };
  }
  async create(spec: { id: string; netns: string; ifname: string; mac: string; labels: Record<string, string> }): Promise<EndpointRecord> {
    const r: EndpointRecord = { id: spec.id, node: 'n1', ips: [`10.244.1.${this.next}`], netns: spec.netns, ifname: spec.ifname, mac: spec.mac, labels: spec.labels, identity: 5 };
    this.next++;
    this.records.set(spec.id, r);
    return r;
  }
  async delete(id: string): Promise<boolean> {
    return this.records.delete(id);
  }
  /** The watch catches up. */
  sync(): void {
    this.cache = new Map(this.records);
  }
}

class FakePlumber implements EndpointPlumber {
  links = new Map<string, LinkInfo>();
  namespaces = new Set<string>();
  failPlumb: Error | undefined;
  plumbed: PlumbSpec[] = [];
  private idx = 10;
  async check(netns: string): Promise<void> {
    if (!this.namespaces.has(netns)) throw new NrdError('invalid', 'invalid', `netns ${netns} does not exist`);
  }
  async plumb(s: PlumbSpec): Promise<number> {
    if (this.failPlumb) throw this.failPlumb;
    this.plumbed.push(s);
    const index = this.idx++;
    this.links.set(s.hostIf, { index, name: s.hostIf, mtu: 1500, up: true, kind: 'veth' });
    return index;
  }
  async remove(hostIf: string): Promise<boolean> {
    return this.links.delete(hostIf);
  }
  async hostLinks(): Promise<Map<string, LinkInfo>> {
    return new Map(this.links);
  }
  netnsExists(p: string): boolean {
    return this.namespaces.has(p);
  }
  probeNetkit = async (): Promise<string | null> => 'EOPNOTSUPP';
  uplinkMtu = async (ifname: string, address: string): Promise<number | undefined> => (ifname === 'eth0' || address === '192.0.2.10' || address === '2001:db8::10' ? 9000 : undefined);
  close(): void {}
}

const report = {} as ReconcileReport;

function setup() {
  const store = new FakeStore();
  const plumber = new FakePlumber();
  const owner = {
    last: [] as readonly EndpointKernelSpec[],
    synced: false,
    setEndpoints(specs: readonly EndpointKernelSpec[], synced: boolean) {
      this.last = specs;
      this.synced = synced;
      return [];
    },
    start: async () => report,
    stop: () => undefined,
    runNow: async () => report,
  };
  const sub = new EndpointsSubsystem({ store, owner, plumber: () => plumber, resyncMs: 3_600_000 });
  const seen: LocalEndpoint[][] = [];
  sub.onEndpoints((eps) => seen.push(eps));
  return { store, plumber, owner, sub, seen };
}

const ctx = () => ({ config: {} as never, log: silentLogger(), ready: () => undefined });

test('add: record, veth, owner specs and the datapath set; a second add of the name is a conflict', async (t) => {
  const { store, plumber, owner, sub, seen } = setup();
  await sub.start(ctx());
  t.after(() => sub.stop());
  plumber.namespaces.add('/run/netns/w1');
  const ep = await sub.add({ name: 'web-1', netns: '/run/netns/w1', labels: { app: 'web' } });
  assert.equal(ep.state, 'ready');
  assert.equal(ep.hostIfname, hostIfName('web-1'));
  assert.deepEqual(ep.gateways, ['169.254.1.1']);
  assert.deepEqual([...store.records.keys()], ['web-1']);
  assert.equal(plumber.plumbed[0]!.ifname, 'eth0');
  assert.deepEqual(owner.last.map((s) => s.hostIf), [hostIfName('web-1')]);
  assert.deepEqual(seen.at(-1)!.map((e) => e.id), ['web-1']);
  await assert.rejects(sub.add({ name: 'web-1', netns: '/run/netns/w1' }), (e: unknown) => e instanceof NrdError && e.kind === 'conflict');
});

test('add: bad input and a missing netns change nothing; a kernel failure rolls the record back', async (t) => {
  const { store, plumber, sub } = setup();
  await sub.start(ctx());
  t.after(() => sub.stop());
  await assert.rejects(sub.add({ name: 'bad/name', netns: '/x' }), (e: unknown) => e instanceof NrdError && e.kind === 'invalid');
  await assert.rejects(sub.add({ name: 'a', netns: '/run/netns/none' }), /does not exist/);
  plumber.namespaces.add('/run/netns/w1');
  plumber.failPlumb = new Error('EPERM');
  await assert.rejects(sub.add({ name: 'a', netns: '/run/netns/w1' }), (e: unknown) => e instanceof NrdError && e.kind === 'unavailable' && /EPERM/.test(e.message));
  assert.equal(store.records.size, 0);
  assert.equal(plumber.links.size, 0);
  assert.equal(sub.list().endpoints.length, 0);
});

test('delete: link and record go; a second delete is not_found', async (t) => {
  const { store, plumber, sub, seen } = setup();
  await sub.start(ctx());
  t.after(() => sub.stop());
  plumber.namespaces.add('/run/netns/w1');
  await sub.add({ name: 'a', netns: '/run/netns/w1' });
  store.sync();
  await sub.delete('a');
  assert.equal(store.records.size, 0);
  assert.equal(plumber.links.size, 0);
  assert.deepEqual(seen.at(-1), []);
  await assert.rejects(sub.delete('a'), (e: unknown) => e instanceof NrdError && e.kind === 'not_found');
});

test('resync: adopts existing links, re-plumbs a record without link, GCs one whose netns is gone, removes links of records deleted elsewhere', async (t) => {
  const { store, plumber, owner, sub } = setup();
  store.synced = false;
  const mk = (id: string, ip: string): EndpointRecord => ({ id, node: 'n1', ips: [ip], netns: `/run/netns/${id}`, ifname: 'eth0', mac: '02:00:00:00:00:0a', labels: {} });
  for (const [id, ip] of [['keep', '10.244.1.2'], ['heal', '10.244.1.3'], ['gone', '10.244.1.4']] as const) store.records.set(id, mk(id, ip));
  store.sync();
  plumber.namespaces.add('/run/netns/keep').add('/run/netns/heal');
  plumber.links.set(hostIfName('keep'), { index: 3, name: hostIfName('keep'), mtu: 1500, up: true, kind: 'veth' });
  await sub.start(ctx());
  t.after(() => sub.stop());
  // Not synced: nothing adopted, nothing deleted.
  assert.equal(owner.synced, false);
  assert.equal(store.records.size, 3);
  store.synced = true;
  await sub.resync();
  assert.equal(owner.synced, true);
  assert.deepEqual([...store.records.keys()].sort(), ['heal', 'keep']);
  assert.deepEqual(plumber.plumbed.map((p) => p.hostIf), [hostIfName('heal')]);
  assert.equal(plumber.plumbed[0]!.mac, '02:00:00:00:00:0a');
  assert.deepEqual(sub.list().endpoints.map((e) => `${e.name}:${e.state}:${e.hostIfindex}`), ['heal:ready:10', 'keep:ready:3']);
  // The record of "keep" is deleted elsewhere (e.g. decommission): its link goes too.
  store.records.delete('keep');
  store.sync();
  await sub.resync();
  assert.equal(plumber.links.has(hostIfName('keep')), false);
  assert.deepEqual(sub.list().endpoints.map((e) => e.name), ['heal']);
});

test('delete racing the GC: the namespace went, the resync collected the endpoint, the operator\'s delete still succeeds (once)', async (t) => {
  const { store, plumber, sub } = setup();
  await sub.start(ctx());
  t.after(() => sub.stop());
  plumber.namespaces.add('/run/netns/w1');
  const ep = await sub.add({ name: 'gone-1', netns: '/run/netns/w1' });
  store.sync();
  // `ip netns del w1`: the kernel removes the veth with the namespace; the resync runs first.
  plumber.namespaces.delete('/run/netns/w1');
  plumber.links.delete(ep.hostIfname);
  await sub.resync();
  assert.equal(store.records.size, 0, 'GC deleted the record');
  await sub.delete('gone-1'); // nrdctl endpoint del gone-1: not "no endpoint gone-1"
  await assert.rejects(sub.delete('gone-1'), (e: unknown) => e instanceof NrdError && e.kind === 'not_found');
  store.sync();
  await sub.resync();
  await assert.rejects(sub.delete('gone-1'), (e: unknown) => e instanceof NrdError && e.kind === 'not_found');
  await assert.rejects(sub.delete('never-was'), (e: unknown) => e instanceof NrdError && e.kind === 'not_found');
});

test('a just-added endpoint not yet back from the watch is kept (its link is in the owner set)', async (t) => {
  const { plumber, owner, sub } = setup();
  await sub.start(ctx());
  t.after(() => sub.stop());
  plumber.namespaces.add('/run/netns/w1');
  await sub.add({ name: 'new', netns: '/run/netns/w1' });
  await sub.resync(); // the cache does not have it yet
  assert.deepEqual(sub.list().endpoints.map((e) => e.name), ['new']);
  assert.deepEqual(owner.last.map((s) => s.hostIf), [hostIfName('new')]);
});

/** A running config as far as the MTU choice reads it. */
function mtuConfig(o: { mode: string; epMtu?: number; vxlanMtu?: number; address?: string; iface?: string }): never {
  return {
    node: { name: 'n1', address: o.address ?? '192.0.2.10', interface: o.iface ?? '', podCIDRs: [], stateDir: '/tmp' },
    routing: { mode: o.mode, vxlan: { vni: 1, port: 4789, device: 'nrd.vxlan', mtu: o.vxlanMtu ?? 0 }, failoverHoldDown: 30, routeProtocol: 220 },
    endpoints: { mtu: o.epMtu ?? 0 },
  } as never;
}

test('MTU: the veth pair gets the uplink MTU in native mode, the VXLAN MTU otherwise, endpoints.mtu when set; reload applies to later endpoints', async (t) => {
  const cases: Array<[Parameters<typeof mtuConfig>[0], number | undefined]> = [
    [{ mode: 'native' }, 9000],
    [{ mode: 'auto' }, 8950],
    [{ mode: 'vxlan' }, 8950],
    [{ mode: 'cross-subnet' }, 8950],
    [{ mode: 'auto', address: '2001:db8::10' }, 8930],
    [{ mode: 'auto', vxlanMtu: 1400 }, 1400],
    [{ mode: 'native', epMtu: 1300 }, 1300],
    [{ mode: 'auto', epMtu: 1300 }, 1300],
    [{ mode: 'auto', address: '192.0.2.99', iface: 'eth0' }, 8950],
    [{ mode: 'auto', address: '192.0.2.99' }, undefined],
  ];
  for (const [i, [cfg, want]] of cases.entries()) {
    const { plumber, sub } = setup();
    await sub.start({ config: mtuConfig(cfg), log: silentLogger(), ready: () => undefined });
    t.after(() => sub.stop());
    plumber.namespaces.add('/run/netns/w1');
    const ep = await sub.add({ name: `e${i}`, netns: '/run/netns/w1' });
    assert.equal(plumber.plumbed[0]!.mtu, want, JSON.stringify(cfg));
    assert.equal(ep.mtu, want, JSON.stringify(cfg));
    if (i === 0) {
      sub.reload([], mtuConfig({ mode: 'vxlan' }));
      await sub.add({ name: 'after-reload', netns: '/run/netns/w1' });
      assert.equal(plumber.plumbed[1]!.mtu, 8950, 'reload: the next endpoint gets the new MTU');
    }
  }
});
