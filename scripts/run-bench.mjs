#!/usr/bin/env node
// Runs the compiled benchmarks (dist/bench/**/*.bench.js), or those whose path contains one of the
// arguments: `npm run bench -- routing`. Each benchmark measures nrd and its peer in the same run
// and prints ratios; nothing here asserts on time.
import { readdirSync, statSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const dir = join(root, 'dist', 'bench');
function find(d) {
  if (!existsSync(d)) return [];
  return readdirSync(d).sort().flatMap((n) => {
    const p = join(d, n);
    return statSync(p).isDirectory() ? find(p) : n.endsWith('.bench.js') ? [p] : [];
  });
}
const filters = process.argv.slice(2).filter((a) => !a.startsWith('--'));
const passthrough = process.argv.slice(2).filter((a) => a.startsWith('--'));
const files = find(dir).filter((f) => filters.length === 0 || filters.some((x) => f.includes(x)));
if (files.length === 0) {
  console.error('no benchmark found (run `npm run build` first)');
  process.exit(1);
}
let failed = 0;
for (const f of files) {
  console.log(`\n== ${f.slice(dir.length + 1)}`);
  const r = spawnSync(process.execPath, ['--expose-gc', f, ...passthrough], { stdio: 'inherit', cwd: root });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
