// Helpers shared by the config unit tests: load YAML text with a clean environment, find issues.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { loadConfigText, type ConfigIssue, type LoadOptions, type LoadResult, type NrdConfig } from '../../../daemon/config/index.js';

/** The repository root, from dist/test/unit/config/ (compiled) or test/unit/config/ (source). */
export const REPO_ROOT = fileURLToPath(
  new URL(import.meta.url.includes('/dist/') ? '../../../../' : '../../../', import.meta.url),
);
export const EXAMPLE_FILE = join(REPO_ROOT, 'config', 'site.example.yaml');

/** A minimal valid site; tests add the keys they exercise. */
export const MINIMAL = 'node: {address: 192.0.2.11}\n';

/** Loads YAML with an empty environment (the test runner's NRD_* must not leak in). */
export function load(yaml: string, opts: LoadOptions = {}): LoadResult {
  return loadConfigText(yaml, { env: {}, hostname: 'node-a', ...opts });
}

export function loadOk(yaml: string, opts: LoadOptions = {}): NrdConfig {
  const r = load(yaml, opts);
  assert.ok(r.ok, `expected a valid config, got:\n${r.ok ? '' : r.issues.map((i) => `${i.key}: ${i.message}`).join('\n')}`);
  return r.config;
}

export function issuesOf(yaml: string, opts: LoadOptions = {}): ConfigIssue[] {
  const r = load(yaml, opts);
  assert.ok(!r.ok, 'expected issues, the config was accepted');
  return r.issues;
}

/** The one issue with this key (fails listing all issues otherwise). */
export function issueAt(issues: ConfigIssue[], key: string): ConfigIssue {
  const found = issues.filter((i) => i.key === key);
  assert.equal(found.length, 1, `expected one issue at ${key}, got:\n${issues.map((i) => `${i.key}: ${i.message}`).join('\n')}`);
  return found[0]!;
}

/** A temp dir removed after the test. */
export function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'nrd-config-test-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function writeFile(dir: string, name: string, text: string): string {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
}
