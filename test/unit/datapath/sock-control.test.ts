// When the datapath subsystem attaches, re-attaches and detaches the socket hooks (sock-control.ts),
// against a fake worker that records every sock request.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SockLbControl, type SockPort } from '../../../daemon/datapath/sock-control.js';
import type { SockLbOptions, SockReply, SockRequest } from '../../../daemon/datapath/sock.js';

class FakeWorker implements SockPort {
  readonly calls: SockRequest[] = [];
  fail: string | undefined;
  private nextLink = 100;
  sock(r: SockRequest): Promise<SockReply> {
    this.calls.push(r);
    if (this.fail !== undefined) return Promise.reject(new Error(this.fail));
    if ('detach' in r) return Promise.resolve({ detached: true });
    const links = [1, 2].map((i) => ({ prog: `p${i}`, attachType: i, linkId: this.nextLink++, progId: 7, updated: false }));
    return Promise.resolve({ status: { cgroupPath: r.apply.cgroupPath, cgroupId: '1', adopted: false, links } });
  }
  kinds(): string[] {
    return this.calls.map((c) => ('apply' in c ? `apply ${c.apply.cgroupPath} m=${c.apply.lb.maglevM} f=${c.apply.lb.flags}` : `detach ${c.detach}`));
  }
}

const opts = (o: Partial<SockLbOptions> = {}): SockLbOptions =>
  ({ pinPath: '/pin', objectDir: '/obj', cgroupPath: '/cg/a', lb: { maglevM: 7, flags: 0 }, ...o });

test('applies once, skips an unchanged sync, re-applies on a knob or cgroup change or after invalidate', async () => {
  const w = new FakeWorker();
  const c = new SockLbControl();
  await c.sync(w, opts());
  await c.sync(w, opts());
  assert.deepEqual(w.kinds(), ['apply /cg/a m=7 f=0']);
  assert.deepEqual(c.view, { cgroup: '/cg/a', attached: true, linkIds: [100, 101] });
  await c.sync(w, opts({ lb: { maglevM: 16381, flags: 1 } }));
  await c.sync(w, opts({ cgroupPath: '/cg/b', lb: { maglevM: 16381, flags: 1 } }));
  c.invalidate();
  await c.sync(w, opts({ cgroupPath: '/cg/b', lb: { maglevM: 16381, flags: 1 } }));
  assert.deepEqual(w.kinds(), ['apply /cg/a m=7 f=0', 'apply /cg/a m=16381 f=1', 'apply /cg/b m=16381 f=1', 'apply /cg/b m=16381 f=1']);
  assert.equal(c.view.cgroup, '/cg/b');
});

test('cgroupPath "" detaches (once, also at start when nothing is known), and a later path attaches again', async () => {
  const w = new FakeWorker();
  const c = new SockLbControl();
  await c.sync(w, opts({ cgroupPath: '' }));
  await c.sync(w, opts({ cgroupPath: '' }));
  assert.deepEqual(w.kinds(), ['detach /pin']);
  assert.deepEqual(c.view, { cgroup: '', attached: false });
  await c.sync(w, opts());
  await c.sync(w, opts({ cgroupPath: '' }));
  assert.deepEqual(w.kinds(), ['detach /pin', 'apply /cg/a m=7 f=0', 'detach /pin']);
  assert.deepEqual(c.view, { cgroup: '', attached: false });
});

test('a failed apply is reported, not thrown, and tried again on the next sync', async () => {
  const w = new FakeWorker();
  const c = new SockLbControl();
  w.fail = 'services.cgroupPath /cg/a is not on a cgroup v2 file system';
  await c.sync(w, opts());
  assert.deepEqual(c.view, { cgroup: '/cg/a', attached: false, error: w.fail });
  w.fail = undefined;
  await c.sync(w, opts());
  assert.equal(w.calls.length, 2);
  assert.equal(c.view.attached, true);
  assert.equal(c.view.error, undefined);
});
