// The test runner's watchdog (scripts/test-idle-watchdog.mjs, preloaded into each test file's
// process by scripts/run-tests.mjs instead of --test-force-exit): a file that stays alive after
// its tests fails and names what keeps it alive; a file that exits normally is untouched and its
// whole report arrives (force-exit cut the end of reports off, so the test count varied).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../../', import.meta.url));
const WATCHDOG = join(ROOT, 'scripts', 'test-idle-watchdog.mjs');

function runFiles(dir: string, files: Record<string, string>, idleMs: number): { status: number | null; out: string } {
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  const r = spawnSync(process.execPath, [`--import=${WATCHDOG}`, '--test', '--test-reporter=spec', ...Object.keys(files).map((f) => join(dir, f))], {
    // Without NODE_TEST_CONTEXT (set for this file by the runner): a nested `node --test` would
    // otherwise take itself for a test file and run nothing.
    encoding: 'utf8', env: { ...process.env, NODE_TEST_CONTEXT: undefined, NRD_TEST_IDLE_MS: String(idleMs) }, timeout: 60_000,
  });
  return { status: r.status, out: `${r.stdout}${r.stderr}` };
}

test('run-tests.mjs preloads the watchdog and no longer force-exits', () => {
  const text = readFileSync(join(ROOT, 'scripts', 'run-tests.mjs'), 'utf8');
  assert.match(text, /--import=\$\{watchdog\}/);
  assert.doesNotMatch(text, /'--test-force-exit'/);
});

test('a file that leaks a timer fails after the idle time and names it; a clean one passes with its whole report', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nrdt-watchdog-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const many = Array.from({ length: 400 }, (_v, i) => `it('case ${i} ${'x'.repeat(60)}', () => {});`).join('\n');
  // Generous here: the report of 400 tests may take a while to go out on a loaded machine.
  const clean = runFiles(dir, { 'clean.test.js': `import { it } from 'node:test';\n${many}\n` }, 15_000);
  assert.equal(clean.status, 0, clean.out);
  assert.match(clean.out, /ℹ tests 400\n/);
  assert.doesNotMatch(clean.out, /nrdt:/);

  const leak = runFiles(dir, { 'leak.test.js': "import { it } from 'node:test';\nit('passes', () => { setTimeout(() => {}, 30_000); });\n" }, 1000);
  assert.equal(leak.status, 1, leak.out);
  assert.match(leak.out, /leak\.test\.js: its tests finished 1 s ago but the process is still running \(a leaked handle\)\. Active resources: Timeout/);
  assert.match(leak.out, /✔ passes/);
});
