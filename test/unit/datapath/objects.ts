// The built BPF objects the layout tests read BTF from (bpf/*.bpf.o, made by `make -C bpf`).
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const objectDir = fileURLToPath(new URL('../../../../bpf/', import.meta.url));

/** Path of bpf/<name>.bpf.o; fails the test with the fix when it was not built. */
export function objFile(name: string): string {
  const p = join(objectDir, `${name}.bpf.o`);
  assert.ok(existsSync(p), `${p} missing: run make -C bpf (npm run build)`);
  return p;
}
