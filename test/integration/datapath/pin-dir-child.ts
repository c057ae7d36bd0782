// Child of pin-dir.test.ts, started as `ip netns exec NS node pin-dir-child.js '<json>'`: there
// /sys is a fresh sysfs, so /sys/fs/bpf is a plain sysfs directory (and mkdir below it answers
// ENOENT). Runs ensurePinDir with the real mount(2) or a refusing one and prints the outcome as
// one JSON line; a mount made here lives in this command's private mount namespace only.
import { statfsSync } from 'node:fs';
import { BPF_FS_MAGIC, ensurePinDir } from '../../../daemon/datapath/pin-dir.js';

const cmd = JSON.parse(process.argv[2] ?? '{}') as { pinPath: string; mount: 'real' | 'refuse' };
const before = statfsSync('/sys/fs/bpf').type === BPF_FS_MAGIC;
let out: Record<string, unknown>;
try {
  const r = ensurePinDir(cmd.pinPath, cmd.mount === 'refuse' ? { mountBpffs: () => { throw new Error('mount: EPERM (refused by the test)'); } } : {});
  out = { ok: true, before, result: r, after: statfsSync(cmd.pinPath).type === BPF_FS_MAGIC };
} catch (e) {
  const err = e as Error & { kind?: string; code?: string };
  out = { ok: false, before, name: err.name, kind: err.kind, code: err.code, message: err.message };
}
process.stdout.write(`${JSON.stringify(out)}\n`);
