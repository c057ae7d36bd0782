// Integration test of the etcd test harness itself: start, read/write through etcdctl, outage by
// kill and by pause, restart on the same data, final stop removes the temp directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { startEtcd } from '../../lib/etcd.js';

test('startEtcd: start, kill + restart keeps data, pause/resume, stop cleans up', async (t) => {
  const etcd = await startEtcd();
  t.after(() => etcd.stop());
  assert.match(etcd.endpoints[0]!, /^http:\/\/127\.0\.0\.1:\d+$/);
  assert.ok(etcd.pid > 0);
  etcd.etcdctl(['put', '/nrdt/k', 'v1']);
  assert.equal(etcd.etcdctl(['get', '/nrdt/k', '--print-value-only']).trim(), 'v1');

  const pid1 = etcd.pid;
  await etcd.kill();
  assert.equal(etcd.running, false);
  assert.throws(() => etcd.etcdctl(['get', '/nrdt/k', '--command-timeout=500ms']));
  await etcd.restart();
  assert.notEqual(etcd.pid, pid1);
  assert.equal(etcd.etcdctl(['get', '/nrdt/k', '--print-value-only']).trim(), 'v1');

  etcd.pause();
  assert.throws(() => etcd.etcdctl(['get', '/nrdt/k', '--command-timeout=300ms']));
  etcd.resume();
  assert.equal(etcd.etcdctl(['get', '/nrdt/k', '--print-value-only']).trim(), 'v1');

  const base = etcd.baseDir;
  await etcd.stop();
  assert.equal(existsSync(base), false);
  assert.equal(etcd.running, false);
});
