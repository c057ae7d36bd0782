// The runtime tests' cleanup of libcni's cache directory (/var/lib/cni/results, left behind empty
// by podman and ctr --cni), on temp directories: only what did not exist before and is empty again
// goes, deepest first; a directory that existed, or still holds a result, stays.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cniCacheCleanup } from './cni-lib.js';

test('cniCacheCleanup removes the cache directories the test created, and nothing else', (t) => {
  const root = mkdtempSync(join(tmpdir(), 'nrdt-cnicache-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const lib = join(root, 'cni');
  const results = join(lib, 'results');

  // Neither existed: both created by the runtime, both removed.
  let cleanup = cniCacheCleanup([results, lib]);
  mkdirSync(results, { recursive: true });
  cleanup();
  assert.equal(existsSync(lib), false);

  // The parent existed before: only results goes.
  mkdirSync(lib);
  cleanup = cniCacheCleanup([results, lib]);
  mkdirSync(results);
  cleanup();
  assert.equal(existsSync(results), false);
  assert.equal(existsSync(lib), true);

  // Still holding a cached result (another runtime's container): kept, no error.
  cleanup = cniCacheCleanup([results]);
  mkdirSync(results);
  writeFileSync(join(results, 'nrd-abc-eth0'), '{}');
  cleanup();
  assert.equal(existsSync(join(results, 'nrd-abc-eth0')), true);

  // Already gone: no error.
  rmSync(results, { recursive: true });
  cleanup();
});
