#!/usr/bin/env node
// Runs the compiled node:test suites: `unit` (no privileges), `integration` (root, network
// namespaces, real etcd/BIRD), or both (default). In CI a privileged suite that cannot run is a
// failure, never a skip.
import { readdirSync, statSync, existsSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const which = process.argv[2] ?? 'all';
const extra = process.argv.slice(3);
const root = new URL('..', import.meta.url).pathname;
const dist = join(root, 'dist', 'test');

function find(dir) {
  if (!existsSync(dir)) return [];
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...find(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}

const suites = which === 'all' ? ['unit', 'integration'] : [which];
const isRoot = process.getuid?.() === 0;
let files = [];
for (const s of suites) {
  const found = find(join(dist, s));
  if (s === 'integration' && !isRoot) {
    if (process.env.CI) {
      console.error('integration tests need root; CI runs as root, so this is a failure');
      process.exit(1);
    }
    console.error(`skipping ${found.length} integration test files: not root`);
    continue;
  }
  files.push(...found);
}
if (extra.length) files = files.filter((f) => extra.some((e) => f.includes(e)));
if (files.length === 0) {
  console.error('no test files found under dist/test (did the build run?)');
  process.exit(1);
}
const concurrency = process.env.NRD_TEST_CONCURRENCY ?? '3';
// No --test-force-exit: it ended a file's process before its report had all gone through the
// pipe (the count of tests changed from run to run). A file that stays alive after its tests
// instead fails, naming the leaked handle (test-idle-watchdog.mjs, preloaded into each file's
// process); --test-timeout: a test that hangs fails after 5 minutes instead of holding CI until
// its limit.
const watchdog = join(root, 'scripts', 'test-idle-watchdog.mjs');
// A file that says `// nrd-test: solo` in its first lines (a million-route ingest, say) runs alone
// after the others: on a 2-core machine whose kernel does not preempt itself it would starve the
// files running beside it (3 s hold timers expired in a BGP test), and they would disturb what it
// measures (BFD at 50 ms).
const solo = files.filter(isSolo);
const shared = files.filter((f) => !isSolo(f));
let status = 0;
for (const [group, c] of [[shared, concurrency], [solo, '1']]) {
  if (group.length === 0) continue;
  const r = spawnSync(process.execPath, [`--import=${watchdog}`, '--test', `--test-concurrency=${c}`, '--test-timeout=300000', '--test-reporter=spec', ...group], {
    stdio: 'inherit',
    cwd: root,
  });
  if (r.status !== 0) status = r.status ?? 1;
}
process.exit(status);

function isSolo(file) {
  const fd = openSync(file, 'r');
  try {
    const buf = Buffer.alloc(4096);
    const n = readSync(fd, buf, 0, buf.length, 0);
    return /^\/\/ nrd-test: solo\b/m.test(buf.subarray(0, n).toString('utf8'));
  } finally {
    closeSync(fd);
  }
}
