// Unit tests of watch-with-resync (daemon/state/reflector.ts) on the fake store: initial sync,
// watch events, compaction and disconnects re-list without events for unchanged keys.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Reflector, type Change } from '../../../daemon/state/reflector.js';
import { pino } from 'pino';
import { FakeStore } from '../../lib/fake-store.js';

async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('timeout');
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Let the watch that follows the listing get registered. */
const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 10));

function setup() {
  const store = new FakeStore();
  for (let i = 0; i < 20; i++) store.seed(`/p/k${i}`, `v${i}`);
  const r = new Reflector<string>(store, { name: 'p', prefix: '/p/', decode: (_k, raw) => (raw === 'bad' ? { ok: false, reason: 'malformed', message: 'bad' } : { ok: true, value: raw }), backoff: { baseMs: 5, maxMs: 20 } });
  const changes: Change<string>[] = [];
  r.onChange((c) => changes.push(...c));
  return { store, r, changes };
}

test('initial sync, then watch events', async (t) => {
  const { store, r, changes } = setup();
  t.after(() => r.stop());
  r.start();
  await r.whenSynced();
  await settle();
  assert.equal(r.size, 20);
  assert.equal(changes.length, 20);
  changes.length = 0;
  store.seed('/p/k1', 'changed');
  store.seed('/p/k2', 'v2'); // same value: not a change
  await store.delete('/p/k3');
  await until(() => changes.length >= 2);
  assert.deepEqual(changes.map((c) => [c.type, c.key]), [['upsert', '/p/k1'], ['delete', '/p/k3']]);
  assert.equal(r.get('/p/k1'), 'changed');
});

test('compaction past the watch: re-list, exact final state, no events for unchanged keys', async (t) => {
  const { store, r, changes } = setup();
  t.after(() => r.stop());
  r.start();
  await r.whenSynced();
  await settle();
  changes.length = 0;
  // Changes and a compaction land between a re-list and the watch that follows it, so the
  // watch asks for a compacted revision and must fail into another re-list.
  const realList = store.list.bind(store);
  let raced = 0;
  store.list = async (prefix: string) => {
    const res = await realList(prefix);
    if (raced++ === 0) {
      store.seed('/p/k5', 'new5');
      await store.delete('/p/k6');
      store.seed('/p/k7', 'v7'); // rewritten with the same value
      store.seed('/p/k8', 'bad'); // now invalid: consumers see it go
      store.compact();
    }
    return res;
  };
  const listsBefore = r.health().lists;
  store.killWatches();
  await until(() => r.health().lists >= listsBefore + 2 && r.health().connected);
  await until(() => r.get('/p/k5') === 'new5' && !r.get('/p/k6') && !r.get('/p/k8'));
  const keys = changes.map((c) => `${c.type}:${c.key}`).sort();
  assert.deepEqual(keys, ['delete:/p/k6', 'delete:/p/k8', 'upsert:/p/k5']);
  const want = new Map(store.peekPrefix('/p/').filter((kv) => kv.value !== 'bad').map((kv) => [kv.key, kv.value]));
  assert.deepEqual(new Map(r.entries()), want);
});

test('changes during an outage: no deletions while down, exact state after', async (t) => {
  const { store, r, changes } = setup();
  t.after(() => r.stop());
  r.start();
  await r.whenSynced();
  await settle();
  changes.length = 0;
  store.setDown(true);
  store.seed('/p/k1', 'changed-while-down');
  store.seed('/p/new', 'x');
  store.compact();
  await new Promise((res) => setTimeout(res, 50));
  assert.equal(r.size, 20);
  assert.equal(changes.length, 0);
  store.setDown(false);
  await until(() => r.get('/p/new') === 'x' && r.health().connected);
  assert.deepEqual(changes.map((c) => `${c.type}:${c.key}`).sort(), ['upsert:/p/k1', 'upsert:/p/new']);
});

test('outage: stays unsynced-safe, health says why, recovers', async (t) => {
  const { store, r } = setup();
  t.after(() => r.stop());
  r.start();
  await r.whenSynced();
  await settle();
  store.setDown(true);
  await until(() => !r.health().connected && r.health().retries >= 2);
  const h = r.health();
  assert.match(h.lastError!, /UNAVAILABLE/);
  assert.ok(h.troubleSince! <= Date.now());
  assert.equal(r.size, 20);
  store.setDown(false);
  await until(() => r.health().connected);
  assert.equal(r.health().retries, 0);
});

test('refused values: absent from the view, reported once per value written (not per re-list), logged at most 10 a minute', async (t) => {
  const store = new FakeStore();
  for (let i = 0; i < 30; i++) store.seed(`/q/bad${i}`, 'bad');
  store.seed('/q/good', 'ok');
  const reported: string[] = [];
  const lines: unknown[] = [];
  const log = pino({ level: 'warn' }, { write: (l: string) => void lines.push(JSON.parse(l)) });
  const r = new Reflector<string>(store, {
    name: 'q',
    prefix: '/q/',
    decode: (_k, raw) => (raw === 'bad' ? { ok: false, reason: 'malformed', message: 'bad' } : { ok: true, value: raw }),
    onReject: (c, reason) => reported.push(`${c}:${reason}`),
    log,
    backoff: { baseMs: 5, maxMs: 20 },
  });
  t.after(() => r.stop());
  r.start();
  await r.whenSynced();
  await settle();
  assert.deepEqual(r.values(), ['ok']);
  assert.equal(reported.length, 30);
  assert.equal(r.rejections().length, 30);
  assert.equal(lines.filter((l) => (l as { msg: string }).msg.startsWith('record from etcd refused')).length, 10);
  // A re-list (compaction) sees the same values: nothing reported again.
  store.compact();
  r.kick();
  await until(() => r.health().lists >= 2);
  assert.equal(reported.length, 30);
  // Fixed: admitted and forgotten as refused; deleted: forgotten too.
  store.seed('/q/bad0', 'fixed');
  await store.delete('/q/bad1');
  await until(() => r.values().includes('fixed'));
  await until(() => r.rejections().length === 28);
});
