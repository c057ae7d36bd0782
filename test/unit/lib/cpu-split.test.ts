// The BFD thread and the route writer thread on disjoint CPUs (lib/cpu-split.ts): a kernel that does
// not preempt itself keeps a CPU for a whole sendmsg, so a BFD thread woken on the writer's CPU waits.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { cpusFor } from '../../../daemon/lib/cpu-split.js';
import { threadAffinity } from '../../../daemon/lib/libc.js';

test('cpusFor: one CPU leaves both threads alone; otherwise BFD gets the last CPU and the writer the rest', () => {
  assert.equal(cpusFor('bfd', [3]), null);
  assert.equal(cpusFor('route-writer', [3]), null);
  assert.deepEqual(cpusFor('bfd', [0, 1]), [1]);
  assert.deepEqual(cpusFor('route-writer', [0, 1]), [0]);
  assert.deepEqual(cpusFor('bfd', [2, 5, 7]), [7]);
  assert.deepEqual(cpusFor('route-writer', [2, 5, 7]), [2, 5]);
});

test('property: the two sets are disjoint, non-empty and within the allowed CPUs', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 1023 }), { minLength: 2, maxLength: 64 }), (raw) => {
      const allowed = [...raw].sort((a, b) => a - b);
      const bfd = cpusFor('bfd', allowed)!;
      const writer = cpusFor('route-writer', allowed)!;
      assert.equal(bfd.length, 1);
      assert.ok(writer.length >= 1);
      assert.ok(!writer.includes(bfd[0]!));
      assert.deepEqual([...writer, ...bfd].sort((a, b) => a - b), allowed);
    }),
  );
});

/** Runs pinThread(role) in a new thread; resolves with what it returned and its affinity after. */
function pinInWorker(role: string): Promise<{ pinned: number[] | null; after: number[] }> {
  const lib = new URL('../../../daemon/lib/', import.meta.url).href;
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    (async () => {
      const { pinThread } = await import(workerData.lib + 'cpu-split.js');
      const { threadAffinity } = await import(workerData.lib + 'libc.js');
      const pinned = pinThread(workerData.role);
      parentPort.postMessage({ pinned, after: threadAffinity() });
    })().catch((e) => parentPort.postMessage({ error: String(e) }));`;
  return new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: { lib, role } });
    w.once('message', (m: { pinned: number[] | null; after: number[]; error?: string }) => {
      void w.terminate();
      if (m.error) reject(new Error(m.error));
      else resolve(m);
    });
    w.once('error', reject);
  });
}

test('pinThread pins only the calling thread, to the CPUs of its role', async () => {
  const before = threadAffinity();
  assert.ok(before.length >= 1);
  const bfd = await pinInWorker('bfd');
  const writer = await pinInWorker('route-writer');
  assert.deepEqual(bfd.pinned, cpusFor('bfd', before));
  assert.deepEqual(writer.pinned, cpusFor('route-writer', before));
  assert.deepEqual(bfd.after, bfd.pinned ?? before);
  assert.deepEqual(writer.after, writer.pinned ?? before);
  if (before.length >= 2) assert.ok(!writer.after.includes(bfd.after[0]!), 'the writer never runs on the BFD CPU');
  assert.deepEqual(threadAffinity(), before, "the main thread's CPUs are unchanged");
});
